"""What explains these votes: a logistic regression of the outcome on simple response factors.

For each decisive vote, every factor is measured on both responses and the model is
logit P(A wins) = Σ_k β_k · (x_k(A) − x_k(B)), with no intercept, so swapping A and B flips
the sign of both sides and the fit does not depend on which response was called A. Factors
(after the factor-level studies of human vs LLM preference):

- ``length``: characters, in units of 100;
- ``list_items``: lines that start a bullet or numbered item;
- ``markdown``: headings, bold/italic spans and code fences;
- ``hedging``: hedging words ("might", "perhaps", "it depends", …);
- ``refusal``: 1 when the response contains a refusal phrase ("I can't", "as an AI", …);
- recorded attributes: for pairs whose metadata names an ``attribute`` with ``a_pole`` and
  ``b_pole``, an indicator per pole ("verbosity=verbose" is +1 for the response at that pole),
  the alphabetically first pole of each attribute being the reference.

Coefficients come with Wald confidence intervals from the Fisher information; a factor that
never differs between the two responses is left out and listed as such, and votes on which no
factor differs at all are refused (``DataError``) rather than fitted.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from workbench.data.types import Judgment, Pair
from workbench.errors import DataError

HEDGES = ("might", "perhaps", "possibly", "probably", "maybe", "it depends", "could be", "generally", "typically",
          "i think", "i believe", "likely", "not sure", "may ")
REFUSALS = ("i can't", "i cannot", "i can not", "i won't", "i'm not able", "i am not able", "i'm unable", "i am unable",
            "as an ai", "i'm sorry, but", "i apologize, but", "not able to help", "cannot help with", "can't help with")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+", re.MULTILINE)
_MARKDOWN = re.compile(r"^\s*#{1,6}\s|\*\*[^*\n]+\*\*|__[^_\n]+__|```|(?<!\*)\*[^*\s][^*\n]*\*(?!\*)", re.MULTILINE)
TEXT_FACTORS = ("length", "list_items", "markdown", "hedging", "refusal")


def text_factors(text: str) -> dict[str, float]:
    """The text factors of one response."""
    low = text.lower()
    return {
        "length": len(text) / 100.0,
        "list_items": float(len(_LIST_ITEM.findall(text))),
        "markdown": float(len(_MARKDOWN.findall(text))),
        "hedging": float(sum(low.count(h) for h in HEDGES)),
        "refusal": float(any(r in low for r in REFUSALS)),
    }


@dataclass
class LogisticFit:
    coef: np.ndarray
    se: np.ndarray
    converged: bool


def fit_logistic(x: np.ndarray, y: np.ndarray, *, intercept: bool = False, l2: float = 1e-6, max_iter: int = 100) -> LogisticFit:
    """Maximum-likelihood logistic regression (Newton's method) with Wald standard errors.

    ``y`` may be fractional (a tie is 0.5: half a win and half a loss). A tiny L2 keeps
    separable data finite. Newton needs a handful of steps on these few-column designs,
    which matters when a bootstrap refits it hundreds of times.
    """
    x = np.asarray(x, dtype=np.float64)
    if intercept:
        x = np.column_stack([np.ones(len(x)), x])
    y = np.asarray(y, dtype=np.float64)
    b = np.zeros(x.shape[1])
    ridge = l2 * np.eye(x.shape[1])
    converged = False
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(x @ b)))
        info = (x * (p * (1 - p))[:, None]).T @ x + ridge
        step = np.linalg.solve(info, x.T @ (y - p) - l2 * b)
        b += step
        if np.max(np.abs(step)) < 1e-9:
            converged = True
            break
    p = 1 / (1 + np.exp(-(x @ b)))
    info = (x * (p * (1 - p))[:, None]).T @ x + ridge
    se = np.sqrt(np.clip(np.diag(np.linalg.pinv(info)), 0, None))
    return LogisticFit(b, se, converged)


def vote_factor_rows(pairs: Sequence[Pair], judgments: Sequence[Judgment]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(factor names, X = factors(A) − factors(B) per decisive vote, y = 1 if A won)."""
    by_id = {p.id: p for p in pairs}
    seen: dict[str, set[str]] = {}
    for p in pairs:
        m = p.metadata or {}
        if isinstance(m.get("attribute"), str):
            seen.setdefault(m["attribute"], set()).update(m[k] for k in ("a_pole", "b_pole") if isinstance(m.get(k), str))
    # The alphabetically first pole of each attribute is the reference (its indicator would be
    # minus the others' sum, so keeping it makes the design singular).
    poles = [f"{attr}={pole}" for attr in sorted(seen) for pole in sorted(seen[attr])[1:]]
    names = [*TEXT_FACTORS, *poles]
    cache: dict[str, np.ndarray] = {}
    rows, ys = [], []
    for j in judgments:
        outcome = getattr(j.outcome, "value", j.outcome)
        pair = by_id.get(j.pair_id)
        if outcome not in ("A", "B") or pair is None:
            continue
        if pair.id not in cache:
            fa, fb = text_factors(pair.response_a), text_factors(pair.response_b)
            meta = pair.metadata or {}
            diff = [fa[k] - fb[k] for k in TEXT_FACTORS]
            diff += [float(f"{meta.get('attribute')}={meta.get('a_pole')}" == pole) - float(f"{meta.get('attribute')}={meta.get('b_pole')}" == pole)
                     for pole in poles]
            cache[pair.id] = np.asarray(diff)
        rows.append(cache[pair.id])
        ys.append(1.0 if outcome == "A" else 0.0)
    return names, np.asarray(rows).reshape(-1, len(names)), np.asarray(ys)


def explain_votes(pairs: Sequence[Pair], judgments: Sequence[Judgment], *, level: float = 0.95, min_votes: int = 10) -> dict:
    """Coefficients (log-odds per unit of factor difference) with CIs, odds ratios, and the factors left out."""
    names, x, y = vote_factor_rows(pairs, judgments)
    if len(y) < min_votes:
        raise DataError(f"Explaining votes needs at least {min_votes} A/B votes; there are {len(y)}.",
                        hint="Label more pairs (ties, both-bad and skips are not used here).")
    varying = np.flatnonzero(np.any(x != 0, axis=0))
    if not len(varying):  # a fit with no columns has no coefficients, only a singular information matrix
        raise DataError(f"No response factor ({', '.join(names)}) differs between the two responses of any of the {len(y)} "
                        "A/B votes, so none of them can explain the votes.",
                        hint="The pairs' responses are alike in every measured factor; compare responses that differ "
                             "(e.g. in length or structure), or record an attribute with a_pole/b_pole in the pairs' metadata.")
    constant = [names[i] for i in range(len(names)) if i not in set(varying)]
    fit = fit_logistic(x[:, varying], y)
    z = norm.ppf(0.5 + level / 2)
    factors = []
    for k, i in enumerate(varying):
        b, se = float(fit.coef[k]), float(fit.se[k])
        factors.append({"factor": names[i], "coef": b, "low": b - z * se, "high": b + z * se, "se": se,
                        "odds_ratio": float(np.exp(b)), "p_value": float(2 * norm.sf(abs(b) / se)) if se > 0 else float("nan"),
                        "mean_abs_difference": float(np.mean(np.abs(x[:, i])))})
    factors.sort(key=lambda r: -abs(r["coef"] / r["se"]) if r["se"] > 0 else 0)
    return {"n_votes": int(len(y)), "level": level, "factors": factors, "not_varying": constant, "converged": fit.converged,
            "model": "logit P(A wins) = sum_k coef_k * (factor_k(A) - factor_k(B)), no intercept"}
