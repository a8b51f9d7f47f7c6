#!/usr/bin/env bash
# Install what the dashboard needs (first time only) and open it: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
exec .venv/bin/python -m streamlit run app.py \
    --server.headless true --browser.gatherUsageStats false "$@"
