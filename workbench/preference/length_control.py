"""AlpacaEval's length-controlled win rate (``length_controlled_v1``), as its authors define it.

Dubois et al. (2024), tatsu-lab/alpaca_eval ``src/alpaca_eval/metrics/glm_winrate.py``: for
each candidate m against the baseline, a logistic GLM on the judge's probability that m wins,

    logit P(m wins on instruction i) = a·tanh(Δlen_i / sd(Δlen)) + b·γ_i + c,
    Δlen = len(baseline output) − len(candidate output) in characters,

fitted on soft labels (each vote a probability, not a rounded win), and the length-controlled
win rate is the mean over the candidate's instructions of σ(b·γ_i + c), the prediction at
Δlen = 0. γ_i is the instruction's difficulty; the authors add rows of the baseline's own
verbose and concise variants (``<baseline>_verbose``/``_concise``, intercept fixed at 0) with
weight λ = 0.2, which pulls a and b toward what the judge does with baseline-quality answers
of other lengths ("regularisation toward the baseline").

Two things the authors download from the hub (``df_gamed.csv``, ``instruction_difficulty.csv``)
we cannot, so, as ``difficulty`` and ``regularisation`` in every result say:

- γ is estimated jointly from every candidate in the session that shares the instructions
  and the baseline, with the authors' own joint model (their ``instruction_difficulty``
  notebook): per-candidate length slope and bias plus one fixed effect per instruction, an L1
  logistic fit whose strength is picked by 5-fold cross-validation. With one candidate there
  is nothing to pool, and the difficulty term is left out (``length_controlled_minimal``).
- The regularisation rows are the baseline's verbose/concise variants when the session holds
  them (exactly the authors' model). Otherwise they are the other candidates' votes, each
  with its quality (bias) from the joint fit as a fixed offset, weight λ shared among them: the
  same pull of a and b toward what the judge does with answers of other lengths and known
  quality. With neither, the fit is unregularised (``length_controlled_noreg``).

The authors pick an L1 strength for each candidate's three coefficients by cross-validation;
on 805 votes it is weak, and we fit the maximum-likelihood coefficients (a 1e-3 ridge keeps a
candidate that wins or loses every vote finite). Measured on 20 released files, their
per-candidate L1 cross-validation gave the same ranking (Spearman 0.977 with the published LC,
mean absolute difference 1.14 against 1.11 points) at 13x the time (85 s against 6.5 s). Their ``lc_standard_error`` (the standard
error of the mean of the predictions) is reported as they define it; the interval is ours:
the delta method on the GLM's sandwich covariance, γ held fixed.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.stats import norm

from workbench.data.types import Judgment, Pair, prompt_text, vote_value
from workbench.errors import DataError

LAMBDA = 0.2
"""``regularize_to_baseline_lambda`` of length_controlled_v1."""
CS = np.logspace(-4, 4, 10)
"""The L1 strengths scikit-learn's LogisticRegressionCV tries by default (the authors' joint fit)."""
N_SPLITS = 5
RIDGE = 1e-3
GAMED = ("_verbose", "_concise")
"""Suffixes of the baseline's own length-gamed variants, the authors' regularisation rows."""


@dataclass
class Matchups:
    """One candidate's votes against the baseline, in AlpacaEval's terms (one row per vote)."""

    candidate: str
    instruction: np.ndarray  # index into the session's instruction list
    delta_len: np.ndarray  # len(baseline) − len(candidate), characters (AlpacaEval's sign)
    soft: np.ndarray  # P(candidate better): the judge's probability, or 1 / 0 / ½
    hard: np.ndarray  # the discrete result: 1 / 0 / ½ (a tie, or a probability of exactly ½)
    own_len: np.ndarray | None = None  # characters of the candidate's output (for the equal-length band)

    def __len__(self) -> int:
        return len(self.soft)

    @property
    def tanh_len(self) -> np.ndarray:
        """tanh(Δlen / sd(Δlen)), the authors' bounded length feature (sd over this candidate's votes)."""
        sd = float(np.std(self.delta_len, ddof=1)) if len(self) > 1 else 0.0
        return np.tanh(self.delta_len / sd) if sd > 0 else np.zeros(len(self))


@dataclass
class Difficulty:
    """Instruction difficulty γ (one per instruction) and the joint fit it came from."""

    gamma: np.ndarray
    bias: dict[str, float] = field(default_factory=dict)  # each candidate's quality in the joint fit
    estimate: str = ""


def matchups(pairs: Sequence[Pair], judgments: Sequence[Judgment], baseline: str,
             sources: dict[str, tuple[str, str]]) -> tuple[dict[str, Matchups], list[str]]:
    """Every A/B/tie vote between ``baseline`` and another source, by candidate, and the
    instructions (prompt texts) the rows index. ``sources`` maps pair id → (source A, source B)."""
    by_id = {p.id: p for p in pairs}
    instructions: dict[str, int] = {}
    rows: dict[str, list[tuple[int, float, float, float, float]]] = {}
    for j in judgments:
        soft, hard = vote_value(j), vote_value(j, soft=False)
        src = sources.get(j.pair_id)
        if soft is None or hard is None or not src or baseline not in src or src[0] == src[1]:
            continue
        pair = by_id[j.pair_id]
        if src[0] == baseline:
            candidate, soft, hard, base_text, cand_text = src[1], 1.0 - soft, 1.0 - hard, pair.response_a, pair.response_b
        else:
            candidate, base_text, cand_text = src[0], pair.response_b, pair.response_a
        i = instructions.setdefault(prompt_text(pair.prompt), len(instructions))
        rows.setdefault(candidate, []).append((i, float(len(base_text) - len(cand_text)), soft, hard, float(len(cand_text))))
    table = {}
    for candidate, r in sorted(rows.items()):
        a = np.asarray(r, dtype=np.float64)
        table[candidate] = Matchups(candidate, a[:, 0].astype(np.int64), a[:, 1], a[:, 2], a[:, 3], a[:, 4])
    return table, list(instructions)


def _soft_duplicate(X: Any, y: np.ndarray, w: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """Soft labels for a 0/1 classifier, as the authors do: each row twice, labelled 1 with
    weight w·y and 0 with weight w·(1 − y)."""
    stack = sparse.vstack if sparse.issparse(X) else np.vstack
    return stack([X, X]), np.r_[np.ones(len(y)), np.zeros(len(y))], np.r_[w * y, w * (1 - y)]


def _l1_fit(X: Any, y: np.ndarray, C: float) -> np.ndarray:
    import sklearn  # 0.6 s to import; only the joint fit needs it
    from sklearn.linear_model import LogisticRegression

    Xd, yd, sw = _soft_duplicate(X, y, np.ones(len(y)))
    # scikit-learn 1.8 spells L1 as l1_ratio=1 (penalty= is deprecated); older ones ignore l1_ratio without penalty="l1".
    major, minor = (int(v) for v in re.match(r"(\d+)\.(\d+)", sklearn.__version__).groups())
    l1 = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    model = LogisticRegression(C=C, solver="liblinear", fit_intercept=False, random_state=123, **l1)
    return model.fit(Xd, yd, sample_weight=sw).coef_[0]


def _soft_log_loss(X: Any, y: np.ndarray, coef: np.ndarray) -> float:
    p = np.clip(1 / (1 + np.exp(-(X @ coef))), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def instruction_difficulty(table: dict[str, Matchups], n_instructions: int) -> Difficulty:
    """γ from the authors' joint model over every candidate: per-candidate tanh-length slope
    and bias, one effect per instruction (the first instruction the reference, 0), L1 strength
    by 5-fold cross-validation on held-out soft log loss. Fewer than two candidates: γ = 0."""
    names = list(table)
    if len(names) < 2:
        return Difficulty(np.zeros(n_instructions),
                          estimate="none: one candidate shares the instructions and baseline, so the difficulty term is "
                                   "left out (length_controlled_minimal)")
    K = len(names)
    inst = np.concatenate([table[m].instruction for m in names])
    who = np.concatenate([np.full(len(table[m]), k) for k, m in enumerate(names)])
    tanh = np.concatenate([table[m].tanh_len for m in names])
    y = np.concatenate([table[m].soft for m in names])
    n = len(y)
    rows = np.arange(n)
    keep = inst > 0  # treatment coding: instruction 0 is the reference level
    X = sparse.hstack([sparse.csr_matrix((tanh, (rows, who)), shape=(n, K)),
                       sparse.csr_matrix((np.ones(n), (rows, who)), shape=(n, K)),
                       sparse.csr_matrix((np.ones(keep.sum()), (rows[keep], inst[keep] - 1)), shape=(n, max(n_instructions - 1, 1)))
                       ]).tocsr()
    folds = np.random.default_rng(123).permutation(n) % N_SPLITS
    losses = []
    for C in CS:
        loss = 0.0
        for f in range(N_SPLITS):
            train, test = folds != f, folds == f
            loss += _soft_log_loss(X[test], y[test], _l1_fit(X[train], y[train], C))
        losses.append(loss)
    C = float(CS[int(np.argmin(losses))])
    coef = _l1_fit(X, y, C)
    gamma = np.r_[0.0, coef[2 * K:2 * K + n_instructions - 1]]
    return Difficulty(gamma, {m: float(coef[K + k]) for k, m in enumerate(names)},
                      estimate=f"joint fit over the {K} candidates sharing the instructions and baseline "
                               f"(L1 logistic, C={C:.3g} by {N_SPLITS}-fold cross-validation)")


@dataclass
class Rows:
    """Design rows of one GLM fit: features (tanh length, γ, intercept), soft label, weight, fixed offset."""

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    offset: np.ndarray


def _rows(m: Matchups, gamma: np.ndarray, *, intercept: float, weight: float, offset: float) -> Rows:
    n = len(m)
    return Rows(np.c_[m.tanh_len, gamma[m.instruction], np.full(n, intercept)], m.soft, np.full(n, weight), np.full(n, offset))


def _newton(rows: Rows, ridge: float = RIDGE, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Weighted soft-label logistic regression with offsets; (coefficients, inverse Hessian)."""
    X, y, w, off = rows.X, rows.y, rows.w, rows.offset
    beta = np.zeros(X.shape[1])
    eye = ridge * np.eye(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ beta + off)))
        H = (X * (w * p * (1 - p))[:, None]).T @ X + eye
        step = np.linalg.solve(H, X.T @ (w * (p - y)) + ridge * beta)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    p = 1 / (1 + np.exp(-(X @ beta + off)))
    H = (X * (w * p * (1 - p))[:, None]).T @ X + eye
    return beta, np.linalg.inv(H)


def length_controlled(table: dict[str, Matchups], baseline: str, difficulty: Difficulty, *, lam: float = LAMBDA,
                      level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Each candidate's length-controlled win rate (percent, as AlpacaEval prints it) with its
    standard error as the authors define it, a ``level`` interval, and the GLM's coefficients."""
    gamed = [m for m in table if m in {baseline + s for s in GAMED}]
    out = {}
    for name, m in table.items():
        if len(m) == 0:
            continue
        reg: list[Rows] = []
        if lam and gamed:
            reg = [_rows(table[g], difficulty.gamma, intercept=0.0, weight=lam / len(gamed), offset=0.0) for g in gamed if g != name]
            how = f"toward the baseline: its variants {', '.join(gamed)} (λ={lam})"
        elif lam and difficulty.bias:
            others = [o for o in table if o != name]
            reg = [_rows(table[o], difficulty.gamma, intercept=0.0, weight=lam / len(others), offset=difficulty.bias[o])
                   for o in others]
            how = (f"toward the {len(others)} other candidates' length and difficulty slopes, each at its joint-fit quality "
                   f"(λ={lam}; the session holds no {baseline}{GAMED[0]}/{GAMED[1]} rows, the authors' choice)")
        else:
            how = "none (nothing to regularise toward: length_controlled_noreg)"
        own = _rows(m, difficulty.gamma, intercept=1.0, weight=1.0, offset=0.0)
        rows = Rows(*(np.concatenate([getattr(r, f) for r in [own, *reg]]) for f in ("X", "y", "w", "offset")))
        beta, cov = _newton(rows)
        g = difficulty.gamma[m.instruction]
        pred = 1 / (1 + np.exp(-(beta[1] * g + beta[2])))
        # Sandwich covariance (soft labels are not Bernoulli draws), then the delta method for mean σ(bγ + c).
        X, r = rows.X, rows.w * (1 / (1 + np.exp(-(rows.X @ beta + rows.offset))) - rows.y)
        sand = cov @ ((X * (r ** 2)[:, None]).T @ X) @ cov
        grad = np.array([0.0, np.mean(pred * (1 - pred) * g), np.mean(pred * (1 - pred))])
        se = float(np.sqrt(max(grad @ sand @ grad, 0.0)))
        lc, z = float(pred.mean()), float(norm.ppf(0.5 + level / 2))
        out[name] = {"lc_win_rate": 100 * lc,
                     "lc_win_rate_ci": [100 * max(lc - z * se, 0.0), 100 * min(lc + z * se, 1.0)],
                     "lc_standard_error": 100 * float(np.std(pred, ddof=1) / np.sqrt(len(pred))) if len(pred) > 1 else 0.0,
                     "length_coef": float(beta[0]), "difficulty_coef": float(beta[1]), "intercept": float(beta[2]),
                     "regularisation": how}
    return out


def win_rates(m: Matchups) -> dict[str, float]:
    """AlpacaEval's ``win_rate`` (mean probability that the candidate wins, percent) and
    ``discrete_win_rate`` (each vote rounded to its nearer side, ties half)."""
    if not len(m):
        raise DataError(f"Source '{m.candidate}' has no votes against the baseline.", hint="Import or cast votes first.")
    return {"win_rate": 100 * float(m.soft.mean()), "discrete_win_rate": 100 * float(m.hard.mean()),
            "standard_error": 100 * float(np.std(m.soft, ddof=1) / np.sqrt(len(m))) if len(m) > 1 else 0.0}
