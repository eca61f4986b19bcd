"""How many votes would have to go for a verdict or a ranking to change.

Intervals say how noisy a figure is under resampling; they do not say how much it leans on a
handful of votes. Dropping 2 of 57,477 Chatbot Arena votes flips its top model (Broderick,
Giordano & Meager, "An automatic finite-sample robustness metric", 2023), and bootstrap
intervals do not reveal it. So beside every verdict and every Bradley–Terry ranking we report
the smallest number of votes whose removal flips it.

- Win rate (a mean): exact. Removing k votes leaves the mean and the interval lowest when the
  k most favourable votes go, so dropping them first finds the smallest k.
- Bradley–Terry top source: an upper bound found greedily (the approximate maximum influence
  perturbation): each step ranks the votes by their first-order influence on the gap between
  the top source and its runner-up, drops the most influential ones and refits, until the top
  source changes. The true minimum can be smaller, never larger.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from workbench.preference.bradley_terry import (
    Comparisons,
    fit_bradley_terry,
    fit_params,
    hessian,
    is_soft,
    one_blas_thread,
    vote_gradients,
)
from workbench.preference.intervals import LEVEL, wilson_interval


def win_rate_fragility(result: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """For results in [0, 1] (the candidate's side): ``votes_to_flip_winner``, the fewest
    votes whose removal puts the win rate on the other side of (or at) 0.5, and
    ``votes_to_undecide``, the fewest whose removal makes the ``level`` interval include 0.5
    (None with a ``note`` when there is no winner or the interval already includes 0.5)."""
    r = np.asarray(result, dtype=np.float64)
    n = len(r)
    out: dict[str, Any] = {"n": n, "level": level, "winner": None, "votes_to_flip_winner": None,
                           "votes_to_undecide": None, "exact": True, "note": ""}
    if n == 0:
        out["note"] = "no votes"
        return out
    mean = float(r.mean())
    if abs(mean - 0.5) < 1e-12:
        out["note"] = "win rate is exactly 0.5: no winner to flip"
        return out
    # Work on the winner's side: its most favourable votes are the largest values.
    side = r if mean > 0.5 else 1.0 - r
    out["winner"] = "candidate" if mean > 0.5 else "opponent"
    dropped = np.concatenate([[0.0], np.cumsum(np.sort(side)[::-1])])[:n]  # sum of the k best, k = 0..n-1
    k = np.arange(n, dtype=np.float64)
    left_sum, left_n = side.sum() - dropped, n - k
    flips = np.flatnonzero(left_sum / left_n <= 0.5 + 1e-12)
    out["votes_to_flip_winner"] = int(flips[0]) if len(flips) else None
    lo, _ = wilson_interval(left_sum, left_n, level)
    if lo[0] <= 0.5:
        out["note"] = f"the {level:.0%} interval already includes 0.5"
    else:
        undecided = np.flatnonzero(lo <= 0.5)
        out["votes_to_undecide"] = int(undecided[0]) if len(undecided) else None
    return out


def fragility_text(f: dict[str, Any]) -> str:
    """One line for tables: how many of the n votes would have to go."""
    if f["winner"] is None:
        return f["note"]
    parts = []
    if f["votes_to_flip_winner"] is not None:
        parts.append(f"dropping {f['votes_to_flip_winner']} of {f['n']} votes flips the winner")
    parts.append(f"dropping {f['votes_to_undecide']} makes the interval include 0.5" if f["votes_to_undecide"] is not None
                 else f["note"])
    return "; ".join(p for p in parts if p)


def ranking_fragility(comparisons: Comparisons, *, ties: str = "davidson", l2: float = 0.01,
                      max_steps: int = 200) -> dict[str, Any]:
    """The fewest votes found whose removal changes the top Bradley–Terry source: an upper
    bound, found greedily by first-order influence on the top-vs-runner-up gap with a refit
    after each batch (``votes_to_change_top`` None when ``max_steps`` batches did not)."""
    with one_blas_thread():
        return _ranking_fragility(comparisons, ties, l2, max_steps)


def _ranking_fragility(comparisons: Comparisons, ties: str, l2: float, max_steps: int) -> dict[str, Any]:
    if is_soft(comparisons):
        ties = "half"
    m, n = len(comparisons.items), len(comparisons)
    keep = np.ones(n, dtype=bool)
    first = fit_bradley_terry(comparisons, ties=ties, l2=l2, intervals=False)
    top = int(np.argmax(first.theta))
    out: dict[str, Any] = {"n": n, "top": comparisons.items[top], "votes_to_change_top": None, "new_top": None,
                           "upper_bound": True, "note": ""}
    for _ in range(max_steps):
        sub = comparisons.subset(keep)
        x = fit_params(sub, ties, l2)
        theta = x[:m]
        if int(np.argmax(theta)) != top or np.isclose(theta.max(), theta[top]) and np.sum(np.isclose(theta, theta.max())) > 1:
            out["votes_to_change_top"] = int(n - keep.sum())
            out["new_top"] = comparisons.items[int(np.argmax(np.where(np.arange(m) == top, -np.inf, theta)))]
            out["note"] = (f"dropping {out['votes_to_change_top']} of {n} votes makes {out['new_top']} the top source "
                           "(an upper bound, found greedily)")
            return out
        others = np.where(np.arange(m) == top, -np.inf, theta)
        runner = int(np.argmax(others))
        gap = theta[top] - theta[runner]
        direction = np.zeros(len(x))
        direction[top], direction[runner] = 1.0, -1.0
        # Removing vote k moves the fit by H⁻¹ ∇f_k (one Newton step), so the gap by this much.
        shift = vote_gradients(sub, ties, l2, x) @ np.linalg.solve(hessian(sub, ties, l2, x), direction)
        order = np.argsort(shift)
        helpful = order[shift[order] < 0]
        if not len(helpful) or keep.sum() <= 1:
            break
        reach = np.flatnonzero(gap + np.cumsum(shift[helpful]) <= 0)
        batch = max(1, (int(reach[0]) + 1) // 2) if len(reach) else max(1, len(helpful) // 10)
        keep[np.flatnonzero(keep)[helpful[:batch]]] = False
    out["note"] = f"no removal of votes found that changes the top source ({comparisons.items[top]})"
    return out
