#!/usr/bin/env bash
# Install what is needed and run the whole test suite (lint, types, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/apt.sh
bash scripts/bootstrap.sh test,bench
# Debian packages some tests need: headless Chromium for the demo page's browser
# test (Selenium), espeak-ng and flite for the dialogue corpus smoke test.
need=()
{ [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null 2>&1; } ||
  need+=(chromium chromium-driver fonts-liberation)
{ command -v espeak-ng >/dev/null 2>&1 && command -v flite >/dev/null 2>&1; } ||
  need+=(espeak-ng flite)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_install "${need[@]}" || exit 1
  else
    echo "test: tests/e2e/test_demo_page.py, tests/test_benchmarks_smoke.py and tests/cluster need" \
         "${need[*]} (apt-get install ${need[*]})" >&2
  fi
fi
.venv/bin/ruff check streamserver tests benchmarks
.venv/bin/mypy streamserver
exec .venv/bin/python -m pytest "$@"
