"""Active pair selection: ask next about the pair whose outcome is least settled.

Coverage comes first: among the pairs still open to an annotator, those with the fewest
votes go first, so every pair gets its first vote before any gets its second. Within a
coverage level, each pair's P(A wins) gets a Beta posterior whose prior mean is the
Bradley–Terry prediction for its two sources (0.5 when the pair has no source metadata or
the sources are unrated), with a prior weight of two votes; the pair with the largest
posterior variance — the most uncertain outcome — is asked first. Ties count half to
each side. A stable per-annotator hash breaks ties, so annotators spread over pairs.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from workbench.preference.bradley_terry import BTResult

PRIOR_WEIGHT = 2.0


def posterior_variance(p0: np.ndarray, a_wins: np.ndarray, b_wins: np.ndarray) -> np.ndarray:
    """Variance of Beta(w·p0 + a, w·(1 − p0) + b): high when few votes and a close call."""
    alpha = PRIOR_WEIGHT * p0 + a_wins
    beta = PRIOR_WEIGHT * (1 - p0) + b_wins
    s = alpha + beta
    return alpha * beta / (s**2 * (s + 1))


def rank_active(open_ids: Sequence[str], votes: Sequence[tuple[str, str]], sources: dict[str, tuple[str, str]],
                counts: dict[str, int], *, salt: str, bt: BTResult | None = None) -> list[str]:
    """``open_ids`` reordered: fewest votes first, then most uncertain outcome first."""
    a_wins: dict[str, float] = defaultdict(float)
    b_wins: dict[str, float] = defaultdict(float)
    for pid, outcome in votes:
        if outcome == "A":
            a_wins[pid] += 1
        elif outcome == "B":
            b_wins[pid] += 1
        elif outcome == "tie":
            a_wins[pid] += 0.5
            b_wins[pid] += 0.5
    ids = list(open_ids)
    p0 = np.full(len(ids), 0.5)
    if bt is not None:
        rated = set(bt.items)
        for k, pid in enumerate(ids):
            src = sources.get(pid)
            if src and src[0] in rated and src[1] in rated:
                p0[k] = bt.win_probability(*src)
    var = posterior_variance(p0, np.array([a_wins[p] for p in ids]), np.array([b_wins[p] for p in ids]))
    keys = {pid: (counts.get(pid, 0), -round(float(v), 12), hashlib.sha256(f"{salt}:{pid}".encode()).digest())
            for pid, v in zip(ids, var, strict=True)}
    return sorted(ids, key=keys.__getitem__)


def stopping_hint(bt: BTResult | None, covered: int, needed: int, stable_at: float = 0.95) -> str:
    """A one-line suggestion whether more votes would still change the ranking."""
    if needed and covered >= needed:
        return f"Every pair has its planned votes ({covered}/{needed}); labeling can stop."
    if bt is None or bt.rank_stability is None:
        return f"Keep labeling: {covered}/{needed} planned votes, too few to rank the sources yet."
    share = bt.rank_stability
    if share >= stable_at:
        return (f"The ranking is stable: the same order in {share:.0%} of {bt.n_boot} bootstrap resamples "
                f"({covered}/{needed} planned votes). More votes are unlikely to change it.")
    return f"Keep labeling: the ranking holds in only {share:.0%} of bootstrap resamples ({covered}/{needed} planned votes)."
