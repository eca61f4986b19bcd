#!/usr/bin/env bash
# Quick start, command 1: set everything up, then serve the workbench at http://127.0.0.1:7860
# with the embedded demo model and demo data. Extra arguments go to `workbench serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# On a desktop (a display, or macOS) the app opens in the default browser once it answers.
open_flag=()
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; then open_flag=(--open); fi
exec .venv/bin/workbench serve --model SmolLM2-135M-Instruct "${open_flag[@]}" "$@"
