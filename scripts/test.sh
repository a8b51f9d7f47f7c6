#!/usr/bin/env bash
# Install everything the tests need (Python packages; Debian's Chromium for the browser tests
# and iproute2 for the pilot's network-namespace test, when missing), then lint, type-check
# and run the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k cli
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v ip > /dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing="$missing iproute2"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq $missing > /dev/null
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
mkdir -p artifacts
exec .venv/bin/python -m pytest "$@"
