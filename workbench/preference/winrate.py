"""Did it win? Bradley–Terry of the sources, the win rate, and the length-controlled win rate.

A fine-tune that only learned to write longer answers wins raw votes from annotators who
like long answers, which says nothing about whether it got better. The length-controlled
win rate (the idea of length-controlled AlpacaEval, Dubois et al. 2024) regresses each vote's
outcome on the length difference,

    logit P(candidate wins) = α + β · tanh(Δlen / σ),   Δlen = len(candidate) − len(opponent) in characters,

(σ the spread of Δlen over the votes; tanh bounds the pull of extreme lengths) and reports
σ(α), the win rate the model predicts at equal length. Ties count as half a win in both rates.
Confidence intervals are percentile bootstraps over votes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.data.types import Judgment, Pair
from workbench.errors import DataError
from workbench.labeling.analysis import source_comparisons
from workbench.labeling.sessions import LabelingStore, pair_sources
from workbench.preference.agreement import position_bias
from workbench.preference.bradley_terry import fit_bradley_terry
from workbench.preference.factors import fit_logistic

RESULT = {"A": 1.0, "B": 0.0, "tie": 0.5}


@dataclass
class Duels:
    """Votes between the candidate source and others, from the candidate's side."""

    candidate: str
    result: np.ndarray  # 1 win, 0 loss, 0.5 tie
    length_diff: np.ndarray  # characters, candidate minus opponent
    opponents: list[str]

    def __len__(self) -> int:
        return len(self.result)


def duels(pairs: Sequence[Pair], judgments: Sequence[Judgment], candidate: str, baseline: str | None = None) -> Duels:
    """Every A/B/tie vote on a pair where ``candidate`` wrote one response (and ``baseline`` the other, if given)."""
    by_id = {p.id: p for p in pairs}
    sources = {p.id: pair_sources(p.metadata or {}) for p in pairs}
    seen = sorted({s for src in sources.values() if src for s in src})
    if candidate not in seen or (baseline is not None and baseline not in seen):
        missing = candidate if candidate not in seen else baseline
        raise DataError(f"No pair has a response from source {missing!r}.",
                        hint=f"Sources in these pairs: {', '.join(seen) or 'none recorded (source_a/source_b metadata)'}.")
    result, diff, opponents = [], [], []
    for j in judgments:
        outcome = getattr(j.outcome, "value", j.outcome)
        src = sources.get(j.pair_id)
        if outcome not in RESULT or not src or candidate not in src or src[0] == src[1]:
            continue
        side = "A" if src[0] == candidate else "B"
        other = src[1] if side == "A" else src[0]
        if baseline is not None and other != baseline:
            continue
        pair = by_id[j.pair_id]
        mine, theirs = (pair.response_a, pair.response_b) if side == "A" else (pair.response_b, pair.response_a)
        result.append(RESULT[outcome] if side == "A" else 1.0 - RESULT[outcome])
        diff.append(len(mine) - len(theirs))
        opponents.append(other)
    return Duels(candidate, np.asarray(result, dtype=np.float64), np.asarray(diff, dtype=np.float64), opponents)


def _lc(result: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(win rate at equal length, length coefficient β) of one fit."""
    if not np.any(x):
        return float(result.mean()), 0.0
    coef = fit_logistic(x[:, None], result, intercept=True).coef
    return float(1 / (1 + np.exp(-coef[0]))), float(coef[1])


def win_rates(d: Duels, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Raw and length-controlled win rate of the candidate, each with a bootstrap CI."""
    n = len(d)
    if n == 0:
        raise DataError(f"No A/B/tie votes involve source {d.candidate!r}.", hint="Label pairs where it wrote one of the responses.")
    sigma = float(d.length_diff.std())
    x = np.tanh(d.length_diff / sigma) if sigma > 0 else np.zeros(n)
    lc, beta = _lc(d.result, x)
    rng = np.random.default_rng(seed)
    raw_b, lc_b = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        raw_b[b], lc_b[b] = d.result[idx].mean(), _lc(d.result[idx], x[idx])[0]
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {
        "candidate": d.candidate, "n": n, "wins": int(np.sum(d.result == 1)), "losses": int(np.sum(d.result == 0)),
        "ties": int(np.sum(d.result == 0.5)), "opponents": sorted(set(d.opponents)),
        "win_rate": float(d.result.mean()),
        "win_rate_ci": [float(np.quantile(raw_b, lo)), float(np.quantile(raw_b, hi))] if n_boot else None,
        "lc_win_rate": lc, "lc_win_rate_ci": [float(np.quantile(lc_b, lo)), float(np.quantile(lc_b, hi))] if n_boot else None,
        "length_coef": beta, "length_scale_chars": sigma, "mean_length_diff_chars": float(d.length_diff.mean()),
        "level": level, "n_boot": n_boot,
    }


def did_it_win(pairs: Sequence[Pair], judgments: Sequence[Judgment], candidate: str, *, baseline: str | None = None,
               ties: str = "davidson", n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The whole answer: BT ratings of all sources with CIs, the candidate's raw and
    length-controlled win rates, and the position-bias check (confound-aware)."""
    comparisons = source_comparisons(pairs, judgments)
    if len(comparisons.items) < 2:
        raise DataError(f"These votes compare {len(comparisons.items)} source(s) ({', '.join(comparisons.items) or 'none'}); "
                        "a win rate needs at least 2.", hint="Make a session whose pairs have responses from two sources.")
    bt = fit_bradley_terry(comparisons, ties=ties, n_boot=min(n_boot, 200), ci=level, seed=seed)
    sources = {p.id: src for p in pairs if (src := pair_sources(p.metadata or {}))}
    return {"bradley_terry": bt.table(), "rank_stability": bt.rank_stability, "tie_model": ties,
            **win_rates(duels(pairs, judgments, candidate, baseline), n_boot=n_boot, level=level, seed=seed),
            "position_bias": position_bias(judgments, sources).__dict__}


def session_did_it_win(labeling: LabelingStore, session: str, candidate: str, **kw: Any) -> dict[str, Any]:
    """``did_it_win`` on a labeling session's votes that currently count."""
    return {"session": session, **did_it_win(labeling.pairs(session), labeling.judgments(session), candidate, **kw)}
