#!/usr/bin/env bash
# Install what is needed and run the whole test suite (lint, types, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test,bench
# The demo page's browser test drives Debian's headless Chromium through Selenium.
if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -qq --no-install-recommends chromium chromium-driver \
             fonts-liberation; } >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  else
    echo "test: tests/e2e/test_demo_page.py needs chromium and chromium-driver" \
         "(apt-get install chromium chromium-driver)" >&2
  fi
fi
.venv/bin/ruff check streamserver tests benchmarks
.venv/bin/mypy streamserver
exec .venv/bin/python -m pytest "$@"
