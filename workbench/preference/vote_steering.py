"""A steering vector from what people voted: chosen minus rejected responses under the model.

The voted pairs become a contrastive set (chosen positive, rejected negative) and the existing
estimators of ``workbench.steering.contrastive`` fit one sign-calibrated vector per layer, so
the vector behaves in the steering sliders like one fitted from a dataset's poles. Each vector
records the session and its vote snapshot. The Steering tab's "Fit from votes" and
``workbench steer from-session`` both go through ``session_vectors``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from workbench.models.loading import LoadedModel
from workbench.preference.votes import SessionVotes, Vote, VoteSource, session_votes
from workbench.steering.contrastive import ContrastiveSet, contrastive_vectors
from workbench.steering.vectors import SteeringVector

# Fewer votes than this give a direction that is mostly the noise of a few responses; the
# estimators themselves would accept 2.
MIN_VOTES = 8


def voted_set(votes: Sequence[Vote], name: str) -> ContrastiveSet:
    """Votes as a contrastive set: each vote's chosen response positive, its rejected one negative."""
    return ContrastiveSet(name, [v.prompt for v in votes], [v.chosen for v in votes], [v.rejected for v in votes])


def steering_from_votes(lm: LoadedModel, votes: SessionVotes, layers: list[int], *, name: str | None = None,
                        method: str = "mean_diff", min_votes: int = MIN_VOTES, **options: Any) -> dict[int, SteeringVector]:
    """One vector per layer toward what the session's annotators chose (``options`` go to ``contrastive_vectors``);
    a DataError saying how many usable votes there are when fewer than ``min_votes``."""
    votes.require(min_votes=min_votes)
    data = voted_set(votes.votes, name or f"votes:{votes.session}")
    fitted = contrastive_vectors(lm, data, layers, method=method, **options)
    provenance = {"session": votes.session, "snapshot": votes.snapshot.to_dict(), "n_votes": len(votes.votes)}
    return {layer: replace(v, info={**v.info, **provenance}) for layer, v in fitted.items()}


def session_vectors(lm: LoadedModel, labeling: VoteSource, session: str, layers: list[int], *, method: str = "mean_diff",
                    min_strength: int | None = None, **options: Any) -> dict[int, SteeringVector]:
    """``steering_from_votes`` on a session's votes as they are now (an unknown session is a ``NotFound``)."""
    return steering_from_votes(lm, session_votes(labeling, session, min_strength=min_strength), layers, method=method, **options)


def sessions_with_votes(labeling: VoteSource) -> list[tuple[str, int]]:
    """(session, A/B votes that count) for the sessions that have any: the ones a vector can be fitted from."""
    out = []
    for info in labeling.list_sessions():
        n = sum(getattr(j.outcome, "value", j.outcome) in ("A", "B") for j in labeling.judgments(info.name))
        if n:
            out.append((info.name, n))
    return out
