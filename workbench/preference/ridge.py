"""Ridge regression with its penalty chosen by exact leave-one-out error: torch-free, so the
benchmarks and the core share one implementation (``reward_heads`` fits rating heads with it)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ridge_loo(x: np.ndarray, y: np.ndarray, grid: Sequence[float], *, intercept: bool = False) -> tuple[np.ndarray, float]:
    """Ridge of ``y`` on ``x`` (with an unpenalised ``intercept``: on the centred data) and its
    L2, the one of ``grid`` with the smallest exact leave-one-out squared error: one SVD serves
    the whole grid, as the held-out residual of row i is its fitted residual / (1 − its
    leverage). The intercept adds 1/n to every leverage; without it, centring alone would make
    a near-interpolating fit look perfect."""
    y = np.asarray(y, dtype=np.float64)
    if intercept:
        x, y = x - x.mean(0), y - y.mean()
    base = 1 / len(y) if intercept else 0.0
    try:
        u, sv, vt = np.linalg.svd(x, full_matrices=False)
    except np.linalg.LinAlgError:  # LAPACK's divide-and-conquer SVD fails on some few-row matrices; the QR route does not
        import scipy.linalg  # only on that failure

        u, sv, vt = scipy.linalg.svd(x, full_matrices=False, lapack_driver="gesvd")
    uty = u.T @ y
    best, chosen = np.inf, float(grid[0])
    for lam in grid:
        shrink = sv**2 / (sv**2 + lam)
        leverage = base + np.einsum("ik,k,ik->i", u, shrink, u)
        loo = float(np.mean(((y - u @ (shrink * uty)) / (1 - leverage)) ** 2))
        if loo < best:
            best, chosen = loo, float(lam)
    return vt.T @ (sv / (sv**2 + chosen) * uty), chosen
