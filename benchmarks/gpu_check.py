"""One-GPU check: the activation, lens, steering, SAE and 20-step DPO benchmarks on CUDA in bf16.

    python benchmarks/gpu_check.py [--budget 470]

Each benchmark runs as its own process (a crash or hang in one does not hide the others'
figures) with its share of the budget, which is under 8 minutes in all; every figure the
benchmarks print is passed through, and a summary says which ones finished. Without CUDA it
prints why it skipped and exits 0, so CI machines without a GPU can run it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# (name, script and arguments, share of the budget). The model loads in bf16: --dtype where a
# script takes it, and dtype "auto" (bf16 on GPUs that support it) elsewhere.
STEPS: list[tuple[str, list[str], float]] = [
    ("activations", ["activations.py", "--n", "256", "--batch-size", "32", "--rounds", "8", "--device", "cuda", "--dtype", "bfloat16"], 0.27),
    ("lens", ["lens.py", "--n", "128", "--batch-size", "32", "--rounds", "8", "--device", "cuda"], 0.17),
    ("steering", ["steering.py", "--tokens", "64", "--rounds", "8", "--n", "8", "--fit-pairs", "60"], 0.17),
    ("sae", ["sae.py", "--rows", "50000", "--samples", "50000", "--sequences", "20000", "--rounds", "8"], 0.11),
    ("dpo", ["training.py", "--steps", "20", "--pairs", "48", "--pal-pairs", "2000", "--pal-epochs", "2"], 0.28),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=470.0, help="seconds for all benchmarks together (default 470)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: skipped: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
              "run it on a machine with an NVIDIA GPU and a CUDA build of torch.")
        return 0
    name = torch.cuda.get_device_name(0)
    print(f"gpu_check: {name}, bf16 supported: {torch.cuda.is_bf16_supported()}, torch {torch.__version__}, "
          f"budget {args.budget:.0f} s")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    status = {}
    start = time.perf_counter()
    for step, cmd, share in STEPS:
        limit = share * args.budget
        print(f"\n===== {step}: {' '.join(cmd)} (limit {limit:.0f} s) =====", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, *cmd], cwd=HERE, env=env, timeout=limit, stdin=subprocess.DEVNULL)
            status[step] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            status[step] = f"stopped at its {limit:.0f} s limit"
        print(f"[{step}: {status[step]}, {time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"\ngpu_check summary ({time.perf_counter() - start:.0f} s): " + ", ".join(f"{k} {v}" for k, v in status.items()))
    return 0 if all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
