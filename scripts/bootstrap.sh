#!/usr/bin/env bash
# Creates .venv and installs streamserver into it (idempotent; fast when done).
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. scripts/bootstrap.sh test,bench
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/apt.sh
extras="${1:-}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || { echo "bootstrap: need Python >= 3.11 (apt-get install python3)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv/ensurepip separately.
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt_install python3-venv || exit 1
    else
      echo "bootstrap: '$PY -m venv' failed; install python3-venv" >&2; exit 1
    fi
    "$PY" -m venv .venv
  fi
fi
stamp=".venv/.installed-$(cat pyproject.toml | cksum | cut -d' ' -f1)-${extras//,/_}"
if [ ! -e "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  spec="."
  [ -n "$extras" ] && spec=".[${extras}]"
  log=$(mktemp)
  if ! .venv/bin/python -m pip install -q -e "$spec" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  .venv/bin/python -c "import streamserver, faster_whisper, presidio_analyzer"
  touch "$stamp"
fi
# jemalloc: `serve` runs under it when installed (allocator=auto; README "Memory").
# Without root or apt the server falls back to tuned glibc malloc.
if ! .venv/bin/python -c "import sys; from streamserver.memory import find_jemalloc; \
sys.exit(find_jemalloc() is None)" && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt_install libjemalloc2 || exit 1
fi
