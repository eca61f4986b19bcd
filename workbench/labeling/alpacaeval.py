"""Import AlpacaEval-style annotations as judgments, so a public judge's votes can be ranked,
checked for position bias and compared with humans exactly like the workbench's own votes.

Records with the same instruction and outputs become one pair (several judges on one pair
is what agreement needs). Each record's ``annotator`` field names the judge (default
``alpaca_eval``); ``generator_1``/``generator_2`` name the sources. ``preference`` 1 is a win
for output_1 (A), 2 for output_2 (B), 1.5 a tie, fractional values go to the nearer side;
records without a preference are stored as pairs only. output_1 was shown first, so the
displayed order is recorded as "AB".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.data.readers import read_pairs
from workbench.data.types import Pair
from workbench.errors import DataError
from workbench.labeling.errors import Conflict
from workbench.labeling.sessions import LabelingStore, SessionSettings


def import_alpacaeval(labeling: LabelingStore, path: str | Path, session: str, *, dataset: str | None = None,
                      default_annotator: str = "alpaca_eval") -> dict[str, Any]:
    """Store the pairs as dataset ``dataset`` (default: the session name), create ``session`` and
    record every judge's vote. Returns counts: pairs, votes, annotators, unlabeled, repeated."""
    if session in {s.name for s in labeling.list_sessions()}:
        raise Conflict(f"A labeling session named '{session}' already exists.", hint="Import under another session name.")
    records = read_pairs(path, format="alpacaeval")
    unique: dict[str, Pair] = {}
    votes: list[tuple[str, str, str]] = []
    unlabeled = 0
    for record in records:
        key = record.content_id()
        if key not in unique:
            unique[key] = Pair(record.prompt, record.response_a, record.response_b, id=key,
                               metadata={k: v for k, v in record.metadata.items() if k not in ("annotator", "preference")})
        if record.preferred is None:
            unlabeled += 1
            continue
        judge = record.metadata.get("annotator")
        votes.append((key, judge if isinstance(judge, str) and judge.strip() else default_annotator, record.preferred))
    seen: set[tuple[str, str]] = set()
    repeated = 0
    kept = []
    for pid, judge, outcome in votes:
        if (pid, judge) in seen:
            repeated += 1  # one judge, one vote per pair: the first one counts
            continue
        seen.add((pid, judge))
        kept.append((pid, judge, outcome))
    name = dataset or session
    if not unique:
        raise DataError("No AlpacaEval records found.", path=path, hint="Each record needs instruction, output_1 and output_2.")
    labeling.store.import_pairs(name, list(unique.values()), source=str(path), format="alpacaeval")
    labeling.create_session(session, name, SessionSettings(overlap=max(1, len({j for _, j, _ in kept}))))
    for judge in sorted({j for _, j, _ in kept}):
        labeling.join(session, judge)
    for pid, judge, outcome in kept:
        labeling.vote(session, judge, pid, outcome, displayed_order="AB", imported=True)
    return {"pairs": len(unique), "votes": len(kept), "annotators": sorted({j for _, j, _ in kept}),
            "unlabeled": unlabeled, "repeated": repeated}
