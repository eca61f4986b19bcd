"""Which pairs two models are compared on: a dataset's, or a labeling session's oriented by its votes.

Shared by ``workbench compare`` and the RecSAE view's latent shift, so both read a source the same way.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from workbench.data.types import Pair
from workbench.errors import ConfigError
from workbench.preference.votes import session_votes
from workbench.training.pairs import load_pairs


def diff_pairs(ctx: Any, dataset: str | None, session: str | None, limit: int) -> list[Pair]:
    """At most ``limit`` pairs of a dataset (stored name or file), or of a session with each pair's first vote as its label."""
    if (dataset is None) == (session is None):
        raise ConfigError("Give exactly one of a dataset and a session to compare on.", hint="Choose a stored dataset or pair file, or a labeling session (e.g. --dataset demo).")
    if limit < 2:
        raise ConfigError(f"The pair limit must be at least 2 (the diff compares states across texts), got {limit}.")
    if dataset is not None:
        return load_pairs(dataset, ctx.settings)[:limit]
    labeling = ctx.labeling
    first_vote: dict[str, str] = {}
    for v in session_votes(labeling, session, min_votes=0).votes:
        first_vote.setdefault(v.pair_id, v.outcome)
    return [replace(p, preferred=first_vote.get(p.id, p.preferred)) for p in labeling.pairs(session)][:limit]
