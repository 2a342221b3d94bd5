#!/usr/bin/env bash
# Install what is needed and run the whole test suite (lint, types, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test,bench
.venv/bin/ruff check streamserver tests benchmarks
.venv/bin/mypy streamserver
exec .venv/bin/python -m pytest "$@"
