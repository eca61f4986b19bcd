"""A session's statistics in one call: source ratings, win rates, agreement, annotators.

This is what the labeling tab's analysis panel and the notebook show; it only reads the
store and calls the pure statistics in ``workbench.preference``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.data.types import Pair, identical_votes, pair_sources
from workbench.labeling.selection import stopping_hint
from workbench.labeling.sessions import LabelingStore
from workbench.preference.agreement import agreement_report, annotator_stats
from workbench.preference.bradley_terry import BTResult, Comparisons, fit_bradley_terry, source_comparisons, win_rate_matrix
from workbench.preference.fragility import ranking_fragility
from workbench.preference.intervals import LEVEL, rate_summary


def recorded_candidate(pairs: Sequence[Pair]) -> str | None:
    """The source under test as recorded when the pairs were made (``metadata.candidate``: the
    tuned model of a from-run session, the steered setting of a steering one), if any."""
    named = {m["candidate"] for p in pairs if isinstance(m := (p.metadata or {}), dict) and isinstance(m.get("candidate"), str)
             and m["candidate"] in (pair_sources(m) or ())}  # a dataset's own "candidate" field that names no source is not it
    return named.pop() if len(named) == 1 else None




def head_to_head(comparisons: Comparisons, source: str, other: str | None = None) -> np.ndarray:
    """Results from ``source``'s side of its votes against ``other`` (any source when None)."""
    if source not in comparisons.items:
        return np.zeros(0)
    i = comparisons.items.index(source)
    j = None if other is None else comparisons.items.index(other)
    as_a = (comparisons.a == i) & ((comparisons.b == j) if j is not None else True)
    as_b = (comparisons.b == i) & ((comparisons.a == j) if j is not None else True)
    return np.concatenate([comparisons.result[as_a], 1.0 - comparisons.result[as_b]])


def session_question(comparisons: Comparisons, bt: BTResult | None, candidate: str | None,
                     level: float = LEVEL) -> dict[str, Any] | None:
    """What the session is asking, as a ``rate_summary``: the recorded candidate against the
    others, else the top Bradley–Terry source against the runner-up; None without two sources."""
    if bt is None:
        return None
    if candidate in comparisons.items:
        others = [s for s in comparisons.items if s != candidate]
        label, result = f"{candidate} vs {', '.join(others)}", head_to_head(comparisons, candidate)
    else:
        first, second = bt.ranking()[:2]
        label, result = f"{first} vs {second}", head_to_head(comparisons, first, second)
    return {**rate_summary(result, level), "label": label}


def session_report(labeling: LabelingStore, session: str, *, ties: str = "davidson", level: float = LEVEL,
                   precision: float | None = None) -> dict[str, Any]:
    """Everything the analysis panel shows for ``session`` (plain data, JSON-friendly).
    ``precision``: a win-rate half-width at which labeling may stop even if undecided."""
    info = labeling.session(session)
    pairs = labeling.pairs(session)
    judgments = labeling.judgments(session)
    comparisons = source_comparisons(pairs, judgments)
    sources = {p.id: src for p in pairs if (src := pair_sources(p.metadata))}
    bt: BTResult | None = None
    if len(comparisons) and len(comparisons.items) >= 2:
        bt = fit_bradley_terry(comparisons, ties=ties, ci=level)
    rate, count = win_rate_matrix(comparisons) if len(comparisons.items) else (np.zeros((0, 0)), np.zeros((0, 0)))
    progress = labeling.session_progress(session)
    question = session_question(comparisons, bt, recorded_candidate(pairs), level)
    same_votes, same_pairs = identical_votes(pairs, judgments)
    return {
        "session": info.to_dict(),
        "progress": progress,
        "ratings": bt.table() if bt else [],
        "tie_model": bt.ties if bt else ties,
        "davidson_nu": bt.nu if bt else None,
        "level": level,
        "top_gap": bt.top_gap if bt else None,
        "ranking_fragility": ranking_fragility(comparisons, ties=bt.ties) if bt else None,
        "question": question,
        "identical": {"votes": same_votes, "pairs": same_pairs},
        "win_rate": {"items": comparisons.items, "rate": rate.tolist(), "count": count.astype(int).tolist()},
        "agreement": agreement_report(judgments, sources),
        "annotators": annotator_stats(judgments, info.settings.gold),
        "stopping_hint": stopping_hint(question, progress["covered"], progress["needed"], precision),
    }


def fmt_num(x: Any, fmt: str = ".3f") -> str:
    """A statistic for display: "—" for missing or NaN, floats to ``fmt``."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt) if isinstance(x, float) else str(x)


NEEDS_OVERLAP = "needs overlap ≥ 2: no pair has votes from two annotators"


def agreement_rows(agreement: dict[str, Any]) -> list[tuple[str, str]]:
    """(measure, value) rows of the agreement table, each "—" saying why it is missing.

    One copy for the Labeling tab and ``workbench label stats``.
    """
    why = "" if agreement["items_with_overlap"] else f" ({NEEDS_OVERLAP})"

    def value(x: Any) -> str:
        text = fmt_num(x)
        return text + why if text == "—" else text

    bias = agreement["position_bias"]
    if bias["confounded"]:
        left = f"{fmt_num(bias['rate'])} of {bias['decisive']}; {bias['note']}"
    else:
        left = f"{fmt_num(bias['rate'])} of {bias['decisive']}, p = {fmt_num(bias['p_value'])}"
    rows = [
        ("Cohen's κ (mean over annotator pairs)", value(agreement["cohen_mean"])),
        (f"Fleiss' κ ({agreement['items_with_overlap']} items with ≥ 2 votes)", value(agreement["fleiss_kappa"])),
        ("Krippendorff's α, nominal outcome", value(agreement["alpha_nominal"])),
        ("Krippendorff's α, ordinal strength", value(agreement["alpha_ordinal_strength"])),
    ]
    if soft := agreement.get("alpha_vote_value"):  # only a session with soft votes has it
        ci = f" [{soft['ci'][0]:.2f}, {soft['ci'][1]:.2f}]" if soft["ci"] else ""
        rows.append((f"Krippendorff's α, {soft['metric']} ({agreement['soft_votes']} soft votes)",
                     f"{fmt_num(soft['alpha'])}{ci}, {soft['items']} items, {soft['values']} values"))
    return [*rows, ("left response wins (position bias)", left)]
