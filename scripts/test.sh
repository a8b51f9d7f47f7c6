#!/usr/bin/env bash
# Install everything the tests need (Python packages, and Debian's Chromium for the browser
# tests when it is missing), then lint, type-check and run the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k cli
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium > /dev/null
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
mkdir -p artifacts
exec .venv/bin/python -m pytest "$@"
