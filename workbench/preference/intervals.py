"""Confidence intervals for a win rate, the one place every verdict, table and page gets them.

A percentile bootstrap of three identical outcomes is the single point [1, 1]: it claims
certainty from three votes. The Wilson score interval with continuity correction (Newcombe
1998, method 4) keeps its coverage at small n: a seeded simulation over true p ∈ {0.5, 0.7,
0.9} and n ∈ {3, 10, 30, 100} covers the truth in ≥ 95 % of sessions in every cell
(tests/test_intervals.py), where plain Wilson and Jeffreys dip to 92 % at n = 10.

Votes are results in [0, 1] (1 win, 0 loss, ½ tie, or a judge's probability); the interval
uses their sum as the successes out of n votes. Ties and soft votes vary less than 0/1 votes,
so this errs on the wide side.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from workbench.errors import ConfigError

LEVEL = 0.95


def z_value(level: float) -> float:
    """The two-sided normal quantile of ``level``; refuses levels outside (0, 1)."""
    if not 0 < level < 1:
        raise ConfigError(f"level must be between 0 and 1, got {level}.", hint="Use e.g. 0.95 for a 95% interval.")
    return NormalDist().inv_cdf(0.5 + level / 2)  # the standard library's: no scipy import for an interval


def wilson_interval(successes: np.ndarray | float, n: np.ndarray | float,
                    level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Continuity-corrected Wilson interval of ``successes / n`` (arrays broadcast; n > 0)."""
    z = z_value(level)
    s, m = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    p = s / m
    z2, denom = z * z, 2 * (m + z * z)
    lo = (2 * m * p + z2 - 1 - z * np.sqrt(np.maximum(z2 - 2 - 1 / m + 4 * p * (m * (1 - p) + 1), 0))) / denom
    hi = (2 * m * p + z2 + 1 + z * np.sqrt(np.maximum(z2 + 2 - 1 / m + 4 * p * (m * (1 - p) - 1), 0))) / denom
    lo = np.where(p <= 0, 0.0, np.clip(lo, 0.0, 1.0))
    hi = np.where(p >= 1, 1.0, np.clip(hi, 0.0, 1.0))
    return lo, hi


def rate_interval(result: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """``[low, high]`` of the mean of results in [0, 1]; None without votes."""
    r = np.asarray(result, dtype=np.float64)
    if not len(r):
        return None
    lo, hi = wilson_interval(r.sum(), len(r), level)
    return [float(lo), float(hi)]


def decided(interval: list[float] | None) -> bool:
    """Whether the interval excludes 0.5, i.e. the votes say which side is better."""
    return interval is not None and (interval[0] > 0.5 or interval[1] < 0.5)


def votes_needed(rate: float, level: float = LEVEL, max_n: int = 100_000) -> int | None:
    """The fewest votes at which a win rate of ``rate`` would have an interval excluding 0.5
    (None at exactly 0.5, or beyond ``max_n``): the "number needed" of an undecided verdict."""
    if abs(rate - 0.5) < 1e-12:
        return None
    n = np.arange(1, max_n + 1, dtype=np.float64)
    lo, hi = wilson_interval(rate * n, n, level)
    ok = np.flatnonzero((lo > 0.5) | (hi < 0.5))
    return int(n[ok[0]]) if len(ok) else None


def rate_summary(result: np.ndarray, level: float = LEVEL) -> dict[str, object]:
    """Win rate, its interval and what it says: ``decided``, and when not, ``votes_needed``
    and a sentence ("not enough votes to tell …") shown wherever a win rate is."""
    r = np.asarray(result, dtype=np.float64)
    n = len(r)
    rate = float(r.mean()) if n else float("nan")
    ci = rate_interval(r, level)
    done = decided(ci)
    needed = None if done or not n else votes_needed(rate, level)
    if not n:
        note = "no votes yet"
    elif done:
        note = f"{'better' if rate > 0.5 else 'worse'}: the {level:.0%} interval excludes 0.5"
    elif needed is None:
        note = f"not enough votes to tell: a win rate of {rate:.3f} is even, more votes are needed to tell either way"
    else:
        note = (f"not enough votes to tell: at a win rate of {rate:.3f} about {needed} votes "
                f"({max(needed - n, 1)} more) would decide it")
    return {"n": n, "rate": rate, "ci": ci, "decided": done, "votes_needed": needed, "note": note}
