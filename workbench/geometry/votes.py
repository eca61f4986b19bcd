"""Per-annotator votes as colouring columns of the input frame.

Labeling sessions (``workbench.labeling``) store each annotator's current verdict on a pair
in canonical A/B terms. An input of the latent explorer is one *response* (``<pair id>:A``
or ``:B``), so a vote becomes, per response: ``chosen`` (the annotator preferred it),
``rejected`` (they preferred the other one), ``tie``, ``both_bad``, or ``none`` (no vote, or a
skip). ``vote:majority`` is the plurality of all non-skip votes on the pair; ``split`` when
A and B votes are equally many and outnumber the rest.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workbench.data.types import Judgment

VOTE_PREFIX = "vote:"
MAJORITY = f"{VOTE_PREFIX}majority"


def dataset_judgments(labeling: Any, dataset: str) -> dict[str, list[Judgment]]:
    """The current judgments of every labeling session over ``dataset``, by column label.

    The label is the annotator's name; when several sessions over the dataset hold votes,
    it is ``<session>/<annotator>`` so that two sessions' annotators never merge.
    ``labeling`` is a :class:`workbench.labeling.sessions.LabelingStore`.
    """
    by_session = {s.name: labeling.judgments(s.name) for s in labeling.list_sessions() if s.dataset == dataset}
    by_session = {name: js for name, js in by_session.items() if js}
    out: dict[str, list[Judgment]] = defaultdict(list)
    for name, judgments in by_session.items():
        for j in judgments:
            out[j.annotator if len(by_session) == 1 else f"{name}/{j.annotator}"].append(j)
    return dict(out)


def _response_vote(outcome: str, side: str) -> str:
    if outcome in ("A", "B"):
        return "chosen" if outcome == side else "rejected"
    return outcome if outcome in ("tie", "both_bad") else "none"


def _majority(outcomes: Iterable[str]) -> str | None:
    counts = Counter(o for o in outcomes if o != "skip")
    if not counts:
        return None
    top = max(counts.values())
    leaders = sorted(o for o, c in counts.items() if c == top)
    if len(leaders) == 1:
        return leaders[0]
    return "split" if {"A", "B"} <= set(leaders) else "tie" if "tie" in leaders else leaders[0]


def _majority_vote(majority: str | None, side: str) -> str:
    return "none" if majority is None else "split" if majority == "split" else _response_vote(majority, side)


def vote_columns(pair_ids: Sequence[str], sides: Sequence[str], judgments: Mapping[str, Iterable[Judgment]]) -> dict[str, list[str]]:
    """``vote:<annotator>`` per response and ``vote:majority``, for inputs given by pair id and side.

    Empty when there are no judgments; pairs nobody judged get ``none``.
    """
    if len(pair_ids) != len(sides):
        raise ValueError("pair_ids and sides must have the same length.")
    columns: dict[str, list[str]] = {}
    per_pair: dict[str, list[str]] = defaultdict(list)
    for label in sorted(judgments):
        current = {}
        for j in judgments[label]:  # in submission order: a later session's vote wins
            current[j.pair_id] = j.outcome.value if hasattr(j.outcome, "value") else str(j.outcome)
        for pid, outcome in current.items():
            per_pair[pid].append(outcome)
        columns[f"{VOTE_PREFIX}{label}"] = [_response_vote(current[p], s) if p in current else "none" for p, s in zip(pair_ids, sides, strict=True)]
    if not columns:
        return {}
    majority = {pid: _majority(outs) for pid, outs in per_pair.items()}
    columns[MAJORITY] = [_majority_vote(majority.get(p), s) for p, s in zip(pair_ids, sides, strict=True)]
    return columns


def add_vote_columns(frame: Any, judgments: Mapping[str, Iterable[Judgment]]) -> Any:
    """``frame`` (from :func:`items_frame` of :func:`pair_items`) with the vote columns added."""
    if frame.empty or not {"pair_id", "side"} <= set(frame.columns):
        return frame
    columns = vote_columns(frame["pair_id"].astype(str).tolist(), frame["side"].astype(str).tolist(), judgments)
    return frame.assign(**columns) if columns else frame
