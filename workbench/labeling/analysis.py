"""A session's statistics in one call: source ratings, win rates, agreement, annotators.

This is what the labeling tab's analysis panel and the notebook show; it only reads the
store and calls the pure statistics in ``workbench.preference``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.data.types import Judgment, Pair
from workbench.labeling.selection import stopping_hint
from workbench.labeling.sessions import LabelingStore, pair_sources
from workbench.preference.agreement import agreement_report, annotator_stats
from workbench.preference.bradley_terry import BTResult, Comparisons, fit_bradley_terry, win_rate_matrix


def source_comparisons(pairs: Sequence[Pair], judgments: Sequence[Judgment]) -> Comparisons:
    """Each A/B/tie vote on a pair with source metadata, as a comparison between its sources."""
    sources = {p.id: pair_sources(p.metadata) for p in pairs}
    records = []
    for j in judgments:
        src = sources.get(j.pair_id)
        outcome = getattr(j.outcome, "value", j.outcome)
        if src and outcome in ("A", "B", "tie"):
            records.append((src[0], src[1], outcome))
    return Comparisons.from_records(records)


def session_report(labeling: LabelingStore, session: str, *, ties: str = "davidson", n_boot: int = 200) -> dict[str, Any]:
    """Everything the analysis panel shows for ``session`` (plain data, JSON-friendly)."""
    info = labeling.session(session)
    pairs = labeling.pairs(session)
    judgments = labeling.judgments(session)
    comparisons = source_comparisons(pairs, judgments)
    sources = {p.id: src for p in pairs if (src := pair_sources(p.metadata))}
    bt: BTResult | None = None
    if len(comparisons) and len(comparisons.items) >= 2:
        bt = fit_bradley_terry(comparisons, ties=ties, n_boot=n_boot)
    rate, count = win_rate_matrix(comparisons) if len(comparisons.items) else (np.zeros((0, 0)), np.zeros((0, 0)))
    progress = labeling.session_progress(session)
    return {
        "session": info.to_dict(),
        "progress": progress,
        "ratings": bt.table() if bt else [],
        "tie_model": ties,
        "davidson_nu": bt.nu if bt else None,
        "rank_stability": bt.rank_stability if bt else None,
        "win_rate": {"items": comparisons.items, "rate": rate.tolist(), "count": count.astype(int).tolist()},
        "agreement": agreement_report(judgments, sources),
        "annotators": annotator_stats(judgments, info.settings.gold),
        "stopping_hint": stopping_hint(bt, progress["covered"], progress["needed"]),
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
    return [
        ("Cohen's κ (mean over annotator pairs)", value(agreement["cohen_mean"])),
        (f"Fleiss' κ ({agreement['items_with_overlap']} items with ≥ 2 votes)", value(agreement["fleiss_kappa"])),
        ("Krippendorff's α, nominal outcome", value(agreement["alpha_nominal"])),
        ("Krippendorff's α, ordinal strength", value(agreement["alpha_ordinal_strength"])),
        ("left response wins (position bias)", left),
    ]
