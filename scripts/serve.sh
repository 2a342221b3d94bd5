#!/usr/bin/env bash
# Install what is needed and start the server on its embedded defaults
# (127.0.0.1:8080, bundled tiny.en, pace and delay chosen per session).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/streamserver serve "$@"
