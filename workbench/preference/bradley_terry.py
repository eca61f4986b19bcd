"""Bradley–Terry ratings of sources (models, decoding settings) from pairwise votes.

Each comparison says which of two sources wrote the better response, or that they tied.
Ties are handled one of two documented ways:

- ``"davidson"`` (default): Davidson (1970). P(i beats j) = π_i / D, P(tie) = ν·√(π_i π_j) / D
  with D = π_i + π_j + ν·√(π_i π_j); ν ≥ 0 is fitted too. A tie is evidence that the two are
  close, not half a win each, and the fitted ν reports how tie-prone the annotators are.
- ``"half"``: a tie counts as half a win for each side (the usual Elo/Chatbot-Arena shortcut).

Log-strengths θ = log π are the MAP fit under a weak Gaussian prior (an L2 penalty, so a
source that never lost still has a finite rating), centred to mean 0. Intervals are the
Laplace approximation of that posterior (the inverse Hessian at the MAP, with a Student-t
quantile for the estimated curvature): where votes are few or one-sided the curvature is small
and the interval is wide, instead of the single point a
percentile bootstrap of identical outcomes gives. ``top_gap`` is the top source's rating
against the runner-up's with the interval of the difference, which is what "is the ranking
settled" asks; ``workbench.preference.fragility.ranking_fragility`` adds how many votes would
have to go for the top source to change.

Votes enter as numbers in [0, 1] (``vote_value``): a judge's soft probability is a fractional
win. Davidson's tie model needs discrete outcomes, so with soft votes the fit uses half wins
and says so (``extras["soft_votes"]``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

from workbench.data.types import Judgment, Pair, identical_responses, pair_sources, vote_value
from workbench.errors import DataError
from workbench.preference.intervals import LEVEL

TIE_MODELS = ("davidson", "half")
HARD = {"A": 1.0, "B": 0.0, "tie": 0.5}
ELO_SCALE = 400 / np.log(10)


@dataclass
class Comparisons:
    """Votes between sources: ``a[k]`` vs ``b[k]`` (indices into ``items``), ``result[k]`` is
    1 when a won, 0 when b won, 0.5 for a tie, or a judge's probability that a is better.
    ``weight[k]`` (default 1) scales vote k's log-likelihood: an annotator's competence weight
    (``workbench.preference.annotators``); the Laplace interval then rests on the summed weights."""

    items: list[str]
    a: np.ndarray
    b: np.ndarray
    result: np.ndarray
    weight: np.ndarray | None = None

    @property
    def w(self) -> np.ndarray:
        """The votes' weights (ones when none were given)."""
        return np.ones(len(self.result)) if self.weight is None else self.weight

    @classmethod
    def from_records(cls, records: Sequence[tuple[str, str, str | float]], items: Sequence[str] | None = None) -> Comparisons:
        """From ``(source_a, source_b, outcome)`` with outcome "A", "B", "tie" or a number in
        [0, 1] (``vote_value`` of a judgment); other outcomes are left out."""
        kept = [(sa, sb, HARD.get(o, o) if isinstance(o, str) else float(o)) for sa, sb, o in records
                if (o in HARD or not isinstance(o, str)) and sa != sb]
        names = list(items) if items is not None else sorted({s for sa, sb, _ in kept for s in (sa, sb)})
        index = {n: i for i, n in enumerate(names)}
        missing = sorted({s for sa, sb, _ in kept for s in (sa, sb)} - set(index))
        if missing:
            raise DataError(f"Sources {', '.join(missing)} are not among the items given.", hint="Pass items=None to use every source.")
        a = np.array([index[sa] for sa, _, _ in kept], dtype=np.int64)
        b = np.array([index[sb] for _, sb, _ in kept], dtype=np.int64)
        result = np.array([o for _, _, o in kept], dtype=np.float64)
        return cls(names, a, b, result)

    def __len__(self) -> int:
        return len(self.result)

    def subset(self, idx: np.ndarray) -> Comparisons:
        """The comparisons at ``idx`` (an index array or boolean mask), same items."""
        return Comparisons(self.items, self.a[idx], self.b[idx], self.result[idx], None if self.weight is None else self.weight[idx])


@dataclass
class BTResult:
    items: list[str]
    theta: np.ndarray  # log-strengths, mean 0
    ties: str
    nu: float | None  # Davidson tie parameter (None for half-wins)
    n: int
    low: np.ndarray | None = None  # Laplace interval of the centred theta
    high: np.ndarray | None = None
    cov: np.ndarray | None = None  # Laplace covariance of the centred theta
    level: float = LEVEL
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def elo(self) -> np.ndarray:
        """θ on the familiar Elo scale (400 points = 10:1 odds), centred at 1000."""
        return 1000 + ELO_SCALE * self.theta

    def ranking(self) -> list[str]:
        """Sources, best first."""
        return [self.items[i] for i in np.argsort(-self.theta, kind="stable")]

    def win_probability(self, i: str, j: str) -> float:
        """P(i beats j | not a tie) under the fitted model."""
        ti, tj = self.theta[self.items.index(i)], self.theta[self.items.index(j)]
        return float(1 / (1 + np.exp(tj - ti)))

    def difference(self, i: str, j: str) -> dict[str, float | str | bool | None]:
        """θ_i − θ_j with its Laplace interval (None without intervals) and whether it excludes 0."""
        a, b = self.items.index(i), self.items.index(j)
        gap = float(self.theta[a] - self.theta[b])
        if self.cov is None:
            return {"source": i, "other": j, "gap": gap, "low": None, "high": None, "separated": None, "level": self.level}
        sd = float(np.sqrt(max(self.cov[a, a] + self.cov[b, b] - 2 * self.cov[a, b], 0.0)))
        q = self.extras["quantile"]
        lo, hi = gap - q * sd, gap + q * sd
        return {"source": i, "other": j, "gap": gap, "low": lo, "high": hi, "separated": bool(lo > 0 or hi < 0),
                "level": self.level}

    @property
    def top_gap(self) -> dict[str, float | str | bool | None]:
        """The top source against the runner-up: is the first place settled?"""
        first, second = self.ranking()[:2]
        return self.difference(first, second)

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
    w = c.w
    ll = np.sum(w * (win * ta + loss * tb + tie * (log_nu + (ta + tb) / 2) - np.log(d)))
    ga = w * (win + 0.5 * tie - (ea + 0.5 * tie_term) / d)
    gb = w * (loss + 0.5 * tie - (eb + 0.5 * tie_term) / d)
    grad = np.zeros(m + 1)
    grad[:m] = np.bincount(c.a, ga, minlength=m) + np.bincount(c.b, gb, minlength=m)
    grad[m] = np.sum(w * (tie - tie_term / d))
    ll -= 0.5 * l2 * np.sum(theta**2)
    grad[:m] -= l2 * theta
    return -ll, -grad


def _half_nll(theta: np.ndarray, c: Comparisons, m: int, l2: float) -> tuple[float, np.ndarray]:
    z = theta[c.a] - theta[c.b]
    y = c.result
    ll = np.sum(c.w * (y * -np.logaddexp(0, -z) + (1 - y) * -np.logaddexp(0, z))) - 0.5 * l2 * np.sum(theta**2)
    g = c.w * (y - 1 / (1 + np.exp(-z)))
    grad = np.bincount(c.a, g, minlength=m) - np.bincount(c.b, g, minlength=m) - l2 * theta
    return -ll, -grad


Objective = Callable[[np.ndarray, "Comparisons", int, float], tuple[float, np.ndarray]]


def _nll(ties: str) -> Objective:
    """The penalised negative log-likelihood (value, gradient) of the tie model."""
    return _davidson_nll if ties == "davidson" else _half_nll


def fit_params(c: Comparisons, ties: str, l2: float) -> np.ndarray:
    """MAP parameters: θ (and log ν for Davidson)."""
    from scipy.optimize import minimize  # scipy only when fitting: the labeling store imports this module's types

    m = len(c.items)
    if ties == "davidson":
        x0 = np.zeros(m + 1)
        x0[m] = np.log(max(np.mean(c.result == 0.5), 1e-3) * 2)
        res = minimize(_davidson_nll, x0, args=(c, m, l2), jac=True, method="L-BFGS-B",
                       bounds=[(None, None)] * m + [(-12, 5)])
    else:
        res = minimize(_half_nll, np.zeros(m), args=(c, m, l2), jac=True, method="L-BFGS-B")
    return res.x


def hessian(c: Comparisons, ties: str, l2: float, x: np.ndarray) -> np.ndarray:
    """Hessian of the penalised negative log-likelihood at ``x``, by central differences of
    the analytic gradient (a handful of sources, so m + 1 gradient pairs are cheap)."""
    m, f = len(c.items), _nll(ties)
    h = 1e-5
    out = np.empty((len(x), len(x)))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h
        out[:, i] = (f(x + e, c, m, l2)[1] - f(x - e, c, m, l2)[1]) / (2 * h)
    return (out + out.T) / 2


def vote_gradients(c: Comparisons, ties: str, l2: float, x: np.ndarray) -> np.ndarray:
    """Each vote's gradient of the negative log-likelihood, rows of length len(x): what
    removing that vote pulls the fit by (first order), for ``ranking_fragility``."""
    m, n = len(c.items), len(c)
    out = np.zeros((n, len(x)))
    rows = np.arange(n)
    theta = x[:m]
    ta, tb = theta[c.a], theta[c.b]
    if ties == "davidson":
        ea, eb = np.exp(ta), np.exp(tb)
        tie_term = np.exp(x[m] + (ta + tb) / 2)
        d = ea + eb + tie_term
        win, loss, tie = (c.result == 1.0), (c.result == 0.0), (c.result == 0.5)
        np.add.at(out, (rows, c.a), -(win + 0.5 * tie - (ea + 0.5 * tie_term) / d))
        np.add.at(out, (rows, c.b), -(loss + 0.5 * tie - (eb + 0.5 * tie_term) / d))
        out[:, m] = -(tie - tie_term / d)
    else:
        g = c.result - 1 / (1 + np.exp(-(ta - tb)))
        np.add.at(out, (rows, c.a), -g)
        np.add.at(out, (rows, c.b), g)
    return out * c.w[:, None]


def one_blas_thread() -> threadpool_limits:
    """BLAS limited to one thread while fitting: L-BFGS-B on a few parameters makes hundreds of
    tiny LAPACK calls, and OpenBLAS waking its threads for each made a 3-vote fit take 0.25 s
    instead of 4 ms on a busy 2-core machine (measured)."""
    return threadpool_limits(1, user_api="blas")


def is_soft(c: Comparisons) -> bool:
    """Whether any vote is a fractional probability rather than a win, loss or tie."""
    return bool(np.any((c.result != 0.0) & (c.result != 0.5) & (c.result != 1.0)))


def fit_bradley_terry(comparisons: Comparisons, *, ties: str = "davidson", l2: float = 0.01, intervals: bool = True,
                      ci: float = LEVEL, n_boot: int | None = None) -> BTResult:
    """Fit ratings; with ``intervals`` add Laplace intervals and covariance (``top_gap``).
    ``n_boot=0`` is the old spelling of ``intervals=False`` (no resampling happens any more)."""
    if n_boot == 0:
        intervals = False
    if ties not in TIE_MODELS:
        raise DataError(f"Unknown tie treatment {ties!r}.", hint=f"Choose one of: {', '.join(TIE_MODELS)}.")
    if len(comparisons) == 0 or len(comparisons.items) < 2:
        raise DataError(f"Bradley–Terry needs comparisons between at least two sources; got {len(comparisons)} "
                        f"comparisons over {len(comparisons.items)} sources.",
                        hint="Pairs need source metadata (source_a/source_b, model_a/model_b or generator_1/generator_2) and A/B/tie votes.")
    soft = is_soft(comparisons)
    if soft:
        ties = "half"
    m = len(comparisons.items)
    with one_blas_thread():
        x = fit_params(comparisons, ties, l2)
    theta = x[:m] - x[:m].mean()
    nu = float(np.exp(x[m])) if ties == "davidson" else None
    result = BTResult(list(comparisons.items), theta, ties, nu, len(comparisons), level=ci,
                      extras={"soft_votes": float(soft), "l2": l2})
    if intervals:
        with one_blas_thread():
            cov = np.linalg.inv(hessian(comparisons, ties, l2, x))[:m, :m]
        centre = np.eye(m) - 1.0 / m
        result.cov = centre @ cov @ centre
        sd = np.sqrt(np.maximum(np.diag(result.cov), 0.0))
        # Student-t quantile with n − (m − 1) degrees of freedom: the curvature is itself
        # estimated from the votes, and with the normal quantile a 10-vote session covers
        # p = 0.9 in only 93 % (tests/test_bradley_terry.py checks ≥ 93 % per cell).
        from scipy.stats import t as student_t  # see fit_params: scipy only when fitting
        q = float(student_t.ppf(0.5 + ci / 2, max(len(comparisons) - (m - 1), 1)))
        result.extras["quantile"] = q
        result.low, result.high = theta - q * sd, theta + q * sd
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


def source_comparisons(pairs: Sequence[Pair], judgments: Sequence[Judgment], *, soft: bool = True) -> Comparisons:
    """Each A/B/tie vote on a pair with source metadata, as a comparison between its sources,
    valued by ``vote_value`` (a judge's soft probability unless ``soft=False``); pairs whose two
    responses are identical are left out (``identical_votes`` counts them)."""
    by_id = {p.id: p for p in pairs}
    sources = {p.id: pair_sources(p.metadata) for p in pairs}
    records = []
    for j in judgments:
        src, value = sources.get(j.pair_id), vote_value(j, soft=soft)
        if src and value is not None and not identical_responses(by_id[j.pair_id]):
            records.append((src[0], src[1], value))
    return Comparisons.from_records(records)
