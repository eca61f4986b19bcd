"""Did it win? Bradley–Terry of the sources, the win rate, and the length-controlled win rate.

A fine-tune that only learned to write longer answers wins raw votes from annotators who
like long answers, which says nothing about whether it got better. The length-controlled
win rate (the idea of length-controlled AlpacaEval, Dubois et al. 2024) regresses each vote's
outcome on the length difference,

    logit P(candidate wins) = α + β · tanh(Δlen / σ),   Δlen = len(candidate) − len(opponent) in characters,

(σ the spread of Δlen over the votes; tanh bounds the pull of extreme lengths) and reports
σ(α), the win rate the model predicts at equal length. That is an extrapolation when nearly
every pair has the candidate longer, so ``length_support`` says which share of votes sit on
each side of equal length and shows the empirical win rate within an equal-length band (±10 %
of the longer response, ±25 characters when only differences are known) with its n; ``extrapolates`` is true when ≥ 80 % sit on one side.

Ties count as half a win; a judge's soft probability counts as that fraction (``vote_value``),
and then the discrete figures are reported beside (``discrete``). The raw win rate's interval
is the continuity-corrected Wilson interval (``workbench.preference.intervals``), which keeps
its coverage at small n; the length-controlled one is the fit's Wald interval on α with a
Student-t quantile. When the interval includes 0.5 the verdict is "not enough votes to tell"
with the number of votes needed. Pairs whose two responses are identical are left out and
counted (``identical``): they cannot say which source is better. Beside the verdict sits its
fragility: how many votes would have to go for it to flip (``workbench.preference.fragility``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import t as student_t

from workbench.data.types import Judgment, Pair, identical_responses, identical_votes, pair_sources, vote_value
from workbench.errors import DataError
from workbench.preference.agreement import position_bias
from workbench.preference.bradley_terry import fit_bradley_terry, is_soft, source_comparisons
from workbench.preference.factors import fit_logistic
from workbench.preference.fragility import ranking_fragility, win_rate_fragility
from workbench.preference.intervals import LEVEL, rate_interval, rate_summary

EQUAL_LENGTH_BAND = 0.10  # |Δlen| within 10 % of the longer response counts as equal length
EQUAL_LENGTH_CHARS = 25.0  # ... or within 25 characters when only the length differences are known
ONE_SIDED = 0.8  # this share of votes on one side of equal length makes the LC number an extrapolation


@dataclass
class Duels:
    """Votes between the candidate source and others, from the candidate's side."""

    candidate: str
    result: np.ndarray  # 1 win, 0 loss, 0.5 tie, or a judge's probability (vote_value)
    length_diff: np.ndarray  # characters, candidate minus opponent
    opponents: list[str]
    hard: np.ndarray | None = None  # the discrete results (vote_value(soft=False)); None = same as result
    own_length: np.ndarray | None = None  # characters of the candidate's response
    identical: int = 0  # votes left out because both responses were the same text

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
    result, hard, diff, own, opponents = [], [], [], [], []
    identical = 0
    for j in judgments:
        value, discrete = vote_value(j), vote_value(j, soft=False)
        src = sources.get(j.pair_id)
        if value is None or discrete is None or not src or candidate not in src or src[0] == src[1]:
            continue
        side = "A" if src[0] == candidate else "B"
        other = src[1] if side == "A" else src[0]
        if baseline is not None and other != baseline:
            continue
        pair = by_id[j.pair_id]
        if identical_responses(pair):
            identical += 1
            continue
        mine, theirs = (pair.response_a, pair.response_b) if side == "A" else (pair.response_b, pair.response_a)
        result.append(value if side == "A" else 1.0 - value)
        hard.append(discrete if side == "A" else 1.0 - discrete)
        diff.append(len(mine) - len(theirs))
        own.append(len(mine))
        opponents.append(other)
    return Duels(candidate, np.asarray(result, dtype=np.float64), np.asarray(diff, dtype=np.float64), opponents,
                 hard=np.asarray(hard, dtype=np.float64), own_length=np.asarray(own, dtype=np.float64), identical=identical)


def _lc(result: np.ndarray, x: np.ndarray, level: float) -> tuple[float, float, list[float] | None]:
    """(win rate at equal length, length coefficient β, interval of the former) of one fit."""
    n = len(result)
    if not np.any(x) or n < 3:  # no length variation to control for: the raw rate and its interval
        return float(result.mean()), 0.0, rate_interval(result, level)
    fit = fit_logistic(x[:, None], result, intercept=True)
    q = float(student_t.ppf(0.5 + level / 2, n - 2))
    alpha, se = fit.coef[0], fit.se[0]
    return float(expit(alpha)), float(fit.coef[1]), [float(expit(alpha - q * se)), float(expit(alpha + q * se))]


def length_support(d: Duels, level: float = LEVEL) -> dict[str, Any]:
    """Where the votes sit relative to equal length, and the empirical win rate within the
    equal-length band with its interval and n: the evidence the LC number rests on."""
    longer, shorter = float(np.mean(d.length_diff > 0)), float(np.mean(d.length_diff < 0))
    if d.own_length is not None and len(d.own_length) == len(d):
        width = EQUAL_LENGTH_BAND * np.maximum(np.maximum(d.own_length, d.own_length - d.length_diff), 1)
        rule = f"±{EQUAL_LENGTH_BAND:.0%}"
    else:  # only the differences are known (e.g. imported judge annotations)
        width, rule = np.full(len(d), EQUAL_LENGTH_CHARS), f"±{EQUAL_LENGTH_CHARS:.0f} characters"
    band = np.abs(d.length_diff) <= width
    inside = rate_summary(d.result[band], level)
    extrapolates = max(longer, shorter) >= ONE_SIDED
    side = "longer" if longer >= shorter else "shorter"
    note = (f"{max(longer, shorter):.0%} of votes have the candidate {side}: the length-controlled rate extrapolates; "
            f"within {rule} of equal length it is {inside['rate']:.3f} over {inside['n']} vote{'s' if inside['n'] != 1 else ''}"
            if extrapolates and inside["n"] else
            f"{max(longer, shorter):.0%} of votes have the candidate {side}, none within {rule} of "
            "equal length: the length-controlled rate extrapolates" if extrapolates else "")
    return {"share_longer": longer, "share_shorter": shorter, "band": rule, "band_n": inside["n"],
            "band_win_rate": None if not inside["n"] else inside["rate"], "band_win_rate_ci": inside["ci"],
            "extrapolates": extrapolates, "note": note}


def win_rates(d: Duels, *, level: float = LEVEL) -> dict[str, Any]:
    """Raw and length-controlled win rate of the candidate with intervals, the verdict
    ("not enough votes to tell" with the number needed), its fragility and length support."""
    n = len(d)
    if n == 0:
        if d.identical:
            raise DataError(f"No difference to judge: all {d.identical} votes involving {d.candidate!r} are on pairs "
                            "whose two responses are identical.",
                            hint="Regenerate the responses with sampling (a temperature above 0) so the sources differ.")
        raise DataError(f"No A/B/tie votes involve source {d.candidate!r}.", hint="Label pairs where it wrote one of the responses.")
    sigma = float(d.length_diff.std())
    x = np.tanh(d.length_diff / sigma) if sigma > 0 else np.zeros(n)
    lc, beta, lc_ci = _lc(d.result, x, level)
    raw = rate_summary(d.result, level)
    hard = d.hard if d.hard is not None and len(d.hard) == n else d.result
    soft = bool(np.any(hard != d.result))
    out = {
        "candidate": d.candidate, "n": n, "wins": int(np.sum(hard == 1)), "losses": int(np.sum(hard == 0)),
        "ties": int(np.sum(hard == 0.5)), "opponents": sorted(set(d.opponents)), "identical": d.identical,
        "win_rate": raw["rate"], "win_rate_ci": raw["ci"], "decided": raw["decided"], "votes_needed": raw["votes_needed"],
        "verdict": raw["note"], "fragility": win_rate_fragility(d.result, level),
        "lc_win_rate": lc, "lc_win_rate_ci": lc_ci, "length_support": length_support(d, level),
        "length_coef": beta, "length_scale_chars": sigma, "mean_length_diff_chars": float(d.length_diff.mean()),
        "level": level, "soft": soft, "discrete": None,
    }
    if soft:
        discrete = rate_summary(hard, level)
        out["discrete"] = {"win_rate": discrete["rate"], "win_rate_ci": discrete["ci"], "verdict": discrete["note"],
                           "fragility": win_rate_fragility(hard, level)}
    return out


def did_it_win(pairs: Sequence[Pair], judgments: Sequence[Judgment], candidate: str, *, baseline: str | None = None,
               ties: str = "davidson", level: float = LEVEL) -> dict[str, Any]:
    """The whole answer: BT ratings of all sources with intervals, the top source against the
    runner-up and how many votes would change it, the candidate's raw and length-controlled
    win rates with their verdict and fragility, and the position-bias check (confound-aware)."""
    comparisons = source_comparisons(pairs, judgments)
    same_votes, same_pairs = identical_votes(pairs, judgments)
    if len(comparisons.items) < 2 and same_votes:
        raise DataError(f"No difference to judge: all {same_votes} votes are on the {same_pairs} pair(s) whose two responses "
                        "are identical.", hint="Regenerate the responses with sampling (a temperature above 0) so the sources differ.")
    if len(comparisons.items) < 2:
        raise DataError(f"These votes compare {len(comparisons.items)} source(s) ({', '.join(comparisons.items) or 'none'}); "
                        "a win rate needs at least 2.", hint="Make a session whose pairs have responses from two sources.")
    bt = fit_bradley_terry(comparisons, ties=ties, ci=level)
    sources = {p.id: src for p in pairs if (src := pair_sources(p.metadata or {}))}
    discrete = None
    if is_soft(comparisons):  # judges' probabilities: the A/B/tie fit beside
        discrete = fit_bradley_terry(source_comparisons(pairs, judgments, soft=False), ties=ties, ci=level).table()
    return {"bradley_terry": bt.table(), "bradley_terry_discrete": discrete, "top_gap": bt.top_gap,
            "ranking_fragility": ranking_fragility(comparisons, ties=bt.ties),
            "tie_model": bt.ties, **win_rates(duels(pairs, judgments, candidate, baseline), level=level),
            "position_bias": position_bias(judgments, sources).__dict__}

