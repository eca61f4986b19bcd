#!/usr/bin/env bash
# Quick start, command 2: set everything up (including headless Chromium), then run the
# whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -ra --durations=25 "$@"
