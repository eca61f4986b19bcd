"""Benchmark: projections and relative encoding (workbench.geometry).

Measures, in one run on one machine:
  1. UMAP fit time for ``--points`` points (default 20,000) against the cache hit for the same
     request (hash the array, read the .npy): the ratio is what a repeated view costs less;
  2. relative encoding of ``--rows`` x ``--anchors`` (default 100,000 x 1,000) with the chunked
     matrix product against a naive loop that computes one row's cosines at a time.
Inputs are synthetic clustered vectors of embedder width (384), so no data is needed.

Usage: python benchmarks/projection.py [--points 20000] [--rows 100000] [--anchors 1000] [--dim 384]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench.geometry import ProjectionCache, project, relative_encode


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(32, dim)) * 2
    return (centers[rng.integers(32, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


def naive_relative(x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """One input at a time: normalize it, dot it with each normalized anchor (numpy per row)."""
    out = np.empty((len(x), len(anchors)), dtype=np.float32)
    unit_anchors = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    for i in range(len(x)):
        row = x[i] / np.linalg.norm(x[i])
        out[i] = unit_anchors @ row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--anchors", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()

    x = clustered(args.points, args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ProjectionCache(Path(tmp))
        project(x[:500], "umap")  # compile numba kernels first, so the fit time is the fit
        t0 = time.perf_counter()
        fit = project(x, "umap", cache=cache)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        hit = project(x, "umap", cache=cache)
        hit_s = time.perf_counter() - t0
    assert hit.from_cache and np.array_equal(hit.coords, fit.coords)
    print(f"UMAP fit, {args.points:,} x {args.dim}: {fit_s:.2f} s")
    print(f"cache hit (hash + read):      {hit_s * 1000:.1f} ms")
    print(f"ratio fit / cache hit:        {fit_s / hit_s:,.0f}x")

    rows = clustered(args.rows, args.dim, seed=1)
    anchors = rows[np.random.default_rng(2).choice(args.rows, args.anchors, replace=False)]
    t0 = time.perf_counter()
    fast = relative_encode(rows, anchors, normalize="none")
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = naive_relative(rows, anchors)
    slow_s = time.perf_counter() - t0
    assert np.allclose(fast, slow, atol=1e-4)
    t0 = time.perf_counter()
    relative_encode(rows, anchors, normalize="standardize")
    std_s = time.perf_counter() - t0
    print(f"\nrelative encoding, {args.rows:,} x {args.anchors:,} anchors, d = {args.dim}")
    print(f"chunked matrix product:       {fast_s:.2f} s   ({args.rows / fast_s:,.0f} rows/s)")
    print(f"  with standardize:           {std_s:.2f} s")
    print(f"naive per-row loop:           {slow_s:.2f} s   ({args.rows / slow_s:,.0f} rows/s)")
    print(f"ratio naive / chunked:        {slow_s / fast_s:.1f}x")


if __name__ == "__main__":
    main()
