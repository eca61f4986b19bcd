"""Bradley–Terry ratings of sources (models, decoding settings) from pairwise votes.

Each comparison says which of two sources wrote the better response, or that they tied.
Ties are handled one of two documented ways:

- ``"davidson"`` (default): Davidson (1970). P(i beats j) = π_i / D, P(tie) = ν·√(π_i π_j) / D
  with D = π_i + π_j + ν·√(π_i π_j); ν ≥ 0 is fitted too. A tie is evidence that the two are
  close, not half a win each, and the fitted ν reports how tie-prone the annotators are.
- ``"half"``: a tie counts as half a win for each side (the usual Elo/Chatbot-Arena shortcut).

Log-strengths θ = log π are fitted by maximum likelihood with a small L2 penalty (so a
source that never lost still has a finite rating) and centred to mean 0. Confidence
intervals come from a percentile bootstrap over comparisons.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from workbench.errors import DataError

TIE_MODELS = ("davidson", "half")
ELO_SCALE = 400 / np.log(10)


@dataclass
class Comparisons:
    """Votes between sources: ``a[k]`` vs ``b[k]`` (indices into ``items``), ``result[k]`` is
    1 when a won, 0 when b won and 0.5 for a tie."""

    items: list[str]
    a: np.ndarray
    b: np.ndarray
    result: np.ndarray

    @classmethod
    def from_records(cls, records: Sequence[tuple[str, str, str]], items: Sequence[str] | None = None) -> Comparisons:
        """From ``(source_a, source_b, outcome)`` with outcome "A", "B" or "tie" (others are left out)."""
        kept = [(sa, sb, o) for sa, sb, o in records if o in ("A", "B", "tie") and sa != sb]
        names = list(items) if items is not None else sorted({s for sa, sb, _ in kept for s in (sa, sb)})
        index = {n: i for i, n in enumerate(names)}
        missing = sorted({s for sa, sb, _ in kept for s in (sa, sb)} - set(index))
        if missing:
            raise DataError(f"Sources {', '.join(missing)} are not among the items given.", hint="Pass items=None to use every source.")
        a = np.array([index[sa] for sa, _, _ in kept], dtype=np.int64)
        b = np.array([index[sb] for _, sb, _ in kept], dtype=np.int64)
        result = np.array([{"A": 1.0, "B": 0.0, "tie": 0.5}[o] for _, _, o in kept], dtype=np.float64)
        return cls(names, a, b, result)

    def __len__(self) -> int:
        return len(self.result)

    def subset(self, idx: np.ndarray) -> Comparisons:
        return Comparisons(self.items, self.a[idx], self.b[idx], self.result[idx])


@dataclass
class BTResult:
    items: list[str]
    theta: np.ndarray  # log-strengths, mean 0
    ties: str
    nu: float | None  # Davidson tie parameter (None for half-wins)
    n: int
    low: np.ndarray | None = None  # bootstrap CI of theta
    high: np.ndarray | None = None
    rank_stability: float | None = None  # share of bootstrap fits with the same ranking
    n_boot: int = 0
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def elo(self) -> np.ndarray:
        """θ on the familiar Elo scale (400 points = 10:1 odds), centred at 1000."""
        return 1000 + ELO_SCALE * self.theta

    def ranking(self) -> list[str]:
        return [self.items[i] for i in np.argsort(-self.theta, kind="stable")]

    def win_probability(self, i: str, j: str) -> float:
        """P(i beats j | not a tie) under the fitted model."""
        ti, tj = self.theta[self.items.index(i)], self.theta[self.items.index(j)]
        return float(1 / (1 + np.exp(tj - ti)))

    def table(self) -> list[dict[str, float | str | None]]:
        """One row per source, best first."""
        rows = []
        for i in np.argsort(-self.theta, kind="stable"):
            rows.append({"source": self.items[i], "theta": float(self.theta[i]), "elo": float(self.elo[i]),
                         "low": None if self.low is None else float(self.low[i]),
                         "high": None if self.high is None else float(self.high[i])})
        return rows


def _davidson_nll(params: np.ndarray, c: Comparisons, m: int, l2: float) -> tuple[float, np.ndarray]:
    theta, log_nu = params[:m], params[m]
    ta, tb = theta[c.a], theta[c.b]
    ea, eb = np.exp(ta), np.exp(tb)
    tie_term = np.exp(log_nu + (ta + tb) / 2)
    d = ea + eb + tie_term
    win, loss, tie = (c.result == 1.0), (c.result == 0.0), (c.result == 0.5)
    ll = np.sum(win * ta + loss * tb + tie * (log_nu + (ta + tb) / 2) - np.log(d))
    ga = win + 0.5 * tie - (ea + 0.5 * tie_term) / d
    gb = loss + 0.5 * tie - (eb + 0.5 * tie_term) / d
    grad = np.zeros(m + 1)
    grad[:m] = np.bincount(c.a, ga, minlength=m) + np.bincount(c.b, gb, minlength=m)
    grad[m] = np.sum(tie - tie_term / d)
    ll -= 0.5 * l2 * np.sum(theta**2)
    grad[:m] -= l2 * theta
    return -ll, -grad


def _half_nll(theta: np.ndarray, c: Comparisons, m: int, l2: float) -> tuple[float, np.ndarray]:
    z = theta[c.a] - theta[c.b]
    y = c.result
    ll = np.sum(y * -np.logaddexp(0, -z) + (1 - y) * -np.logaddexp(0, z)) - 0.5 * l2 * np.sum(theta**2)
    g = y - 1 / (1 + np.exp(-z))
    grad = np.bincount(c.a, g, minlength=m) - np.bincount(c.b, g, minlength=m) - l2 * theta
    return -ll, -grad


def _fit(c: Comparisons, ties: str, l2: float) -> tuple[np.ndarray, float | None]:
    m = len(c.items)
    if ties == "davidson":
        x0 = np.zeros(m + 1)
        x0[m] = np.log(max(np.mean(c.result == 0.5), 1e-3) * 2)
        res = minimize(_davidson_nll, x0, args=(c, m, l2), jac=True, method="L-BFGS-B",
                       bounds=[(None, None)] * m + [(-12, 5)])
        theta, nu = res.x[:m], float(np.exp(res.x[m]))
    else:
        res = minimize(_half_nll, np.zeros(m), args=(c, m, l2), jac=True, method="L-BFGS-B")
        theta, nu = res.x, None
    return theta - theta.mean(), nu


def fit_bradley_terry(comparisons: Comparisons, *, ties: str = "davidson", l2: float = 0.01, n_boot: int = 200,
                      ci: float = 0.95, seed: int = 0) -> BTResult:
    """Fit ratings; with ``n_boot > 0`` add percentile bootstrap CIs and the ranking's stability."""
    if ties not in TIE_MODELS:
        raise DataError(f"Unknown tie treatment {ties!r}.", hint=f"Choose one of: {', '.join(TIE_MODELS)}.")
    if len(comparisons) == 0 or len(comparisons.items) < 2:
        raise DataError(f"Bradley–Terry needs comparisons between at least two sources; got {len(comparisons)} "
                        f"comparisons over {len(comparisons.items)} sources.",
                        hint="Pairs need source metadata (source_a/source_b, model_a/model_b or generator_1/generator_2) and A/B/tie votes.")
    theta, nu = _fit(comparisons, ties, l2)
    result = BTResult(list(comparisons.items), theta, ties, nu, len(comparisons))
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        n = len(comparisons)
        boots = np.stack([_fit(comparisons.subset(rng.integers(0, n, n)), ties, l2)[0] for _ in range(n_boot)])
        alpha = (1 - ci) / 2
        result.low, result.high = np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)
        point = np.argsort(-theta, kind="stable")
        result.rank_stability = float(np.mean([np.array_equal(np.argsort(-b, kind="stable"), point) for b in boots]))
        result.n_boot = n_boot
    return result


def win_rate_matrix(comparisons: Comparisons) -> tuple[np.ndarray, np.ndarray]:
    """``(rate, count)``: rate[i, j] = share of i-vs-j votes i won (ties count half), NaN if never compared."""
    m = len(comparisons.items)
    wins = np.zeros((m, m))
    count = np.zeros((m, m))
    np.add.at(wins, (comparisons.a, comparisons.b), comparisons.result)
    np.add.at(wins, (comparisons.b, comparisons.a), 1 - comparisons.result)
    np.add.at(count, (comparisons.a, comparisons.b), 1)
    np.add.at(count, (comparisons.b, comparisons.a), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, wins / count, np.nan)
    return rate, count
