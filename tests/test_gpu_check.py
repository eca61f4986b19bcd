"""benchmarks/gpu_check.py skips cleanly (exit 0, a message saying why) on a machine without CUDA."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_skips_with_a_clear_message_without_cuda():
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this checks the skip path on every machine.
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr
    assert "gpu_check: skipped: no CUDA GPU is visible" in proc.stdout
