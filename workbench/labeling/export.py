"""Export a session's votes: TRL DPO data for trainers, the raw long table for analysts.

DPO rows come from the votes that currently count (undone votes never appear). With
``aggregate="judgment"`` every A/B vote is one row (an ``annotator`` column says whose);
with ``"majority"`` each pair gives at most one row, when A or B has strictly more votes
than every other outcome. Ties, both-bad, skips and pairs without a majority cannot be
trained on; they are left out and counted in the report. Strength (1 slight, 2 clear) is
written as an optional ``margin`` column (mean strength of the winning votes, empty when
no vote had one). Files are written through the exporters' atomic rename.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.data.exporters import EXPORT_FORMATS, export_long_table, trl_rows, write_trl_rows
from workbench.data.types import Pair
from workbench.errors import DataError
from workbench.labeling.sessions import LabelingStore

AGGREGATES = ("judgment", "majority")


def dpo_rows(labeling: LabelingStore, session: str, aggregate: str = "judgment") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """TRL rows (prompt/chosen/rejected/id[/annotator]/margin) and ``{"written", "skipped": {reason: n}}``."""
    if aggregate not in AGGREGATES:
        raise DataError(f"Unknown aggregation {aggregate!r}.", hint=f"Choose one of: {', '.join(AGGREGATES)}.")
    pairs = {p.id: p for p in labeling.pairs(session)}
    judgments = labeling.judgments(session)
    skipped: Counter[str] = Counter()
    chosen: list[tuple[Pair, dict[str, Any]]] = []
    if aggregate == "judgment":
        for j in judgments:
            outcome = j.outcome.value
            if outcome in ("A", "B"):
                chosen.append((replace(pairs[j.pair_id], preferred=outcome), {"annotator": j.annotator, "margin": j.strength}))
            else:
                skipped[outcome] += 1
    else:
        by_pair: dict[str, list[Any]] = defaultdict(list)
        for j in judgments:
            by_pair[j.pair_id].append(j)
        for pid, votes in by_pair.items():
            tally = Counter(v.outcome.value for v in votes if v.outcome.value != "skip")
            ranked = tally.most_common()
            if not ranked:
                skipped["skip"] += 1
                continue
            top, n_top = ranked[0]
            if top not in ("A", "B") or (len(ranked) > 1 and ranked[1][1] == n_top):
                skipped[top if len(ranked) == 1 or ranked[1][1] < n_top else "no_majority"] += 1
                continue
            strengths = [v.strength for v in votes if v.outcome.value == top and v.strength is not None]
            chosen.append((replace(pairs[pid], preferred=top),
                           {"votes": n_top, "margin": sum(strengths) / len(strengths) if strengths else None}))
    rows, _ = trl_rows([p for p, _ in chosen])
    for row, (_, extra) in zip(rows, chosen, strict=True):
        row.update(extra)
    return rows, {"written": len(rows), "skipped": dict(skipped)}


def export_session(labeling: LabelingStore, session: str, path: str | Path, format: str = "trl-jsonl", *,
                   aggregate: str = "judgment") -> dict[str, Any]:
    """Write DPO data (``trl-jsonl``, ``trl-parquet``, ``hf-dataset``); returns the report with counts."""
    path = Path(path).expanduser()
    if format not in EXPORT_FORMATS:
        raise DataError(f"Unknown export format '{format}'.", path=path, hint=f"Choose one of: {', '.join(EXPORT_FORMATS)}.")
    rows, report = dpo_rows(labeling, session, aggregate)
    if not rows:
        counts = ", ".join(f"{n} {k}" for k, n in report["skipped"].items()) or "no votes at all"
        raise DataError(f"Nothing to export from session '{session}': no A/B preference ({counts}).", path=path,
                        hint="Label some pairs first; ties, both-bad and skips cannot be trained on.")
    write_trl_rows(rows, path, format)
    return {"path": str(path), "format": format, "aggregate": aggregate, **report}


def export_session_long_table(labeling: LabelingStore, session: str, path: str | Path) -> int:
    """One row per vote that counts (CSV or Parquet by suffix), ties and disagreement kept."""
    return export_long_table(labeling.judgments(session), labeling.pairs(session), path)


# The one vocabulary of session exports (CLI, Labeling tab, notebooks): format name -> file suffix.
SESSION_EXPORT_FORMATS = {**EXPORT_FORMATS, "long-table-csv": ".csv", "long-table-parquet": ".parquet"}


def export_session_as(labeling: LabelingStore, session: str, path: str | Path, format: str, *,
                      aggregate: str = "judgment") -> dict[str, Any]:
    """Any of ``SESSION_EXPORT_FORMATS``: DPO data (the report with counts) or the long table (``rows``)."""
    path = Path(path).expanduser()
    if format not in SESSION_EXPORT_FORMATS:
        raise DataError(f"Unknown export format '{format}'.", path=path, hint=f"Choose one of: {', '.join(SESSION_EXPORT_FORMATS)}.")
    if not format.startswith("long-table"):
        return export_session(labeling, session, path, format, aggregate=aggregate)
    suffix = SESSION_EXPORT_FORMATS[format]
    if path.suffix.lower() != suffix:
        raise DataError(f"Format {format} writes a {suffix} file, but the name ends in '{path.suffix or '(nothing)'}'.", path=path,
                        hint=f"Name the file …{suffix}, or pick the format that matches the name.")
    return {"path": str(path), "format": format, "rows": export_session_long_table(labeling, session, path)}
