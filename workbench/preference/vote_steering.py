"""A steering vector from what people voted: chosen minus rejected responses under the model.

The voted pairs become a contrastive set (chosen positive, rejected negative) and the existing
estimators of ``workbench.steering.contrastive`` fit one sign-calibrated vector per layer, so
the vector behaves in the steering sliders like one fitted from a dataset's poles. Each vector
records the session and its vote snapshot.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from workbench.models.loading import LoadedModel
from workbench.preference.votes import SessionVotes, Vote
from workbench.steering.contrastive import ContrastiveSet, contrastive_vectors
from workbench.steering.vectors import SteeringVector


def voted_set(votes: Sequence[Vote], name: str) -> ContrastiveSet:
    """Votes as a contrastive set: each vote's chosen response positive, its rejected one negative."""
    return ContrastiveSet(name, [v.prompt for v in votes], [v.chosen for v in votes], [v.rejected for v in votes])


def steering_from_votes(lm: LoadedModel, votes: SessionVotes, layers: list[int], *, name: str | None = None,
                        method: str = "mean_diff", **options: Any) -> dict[int, SteeringVector]:
    """One vector per layer toward what the session's annotators chose (``options`` go to ``contrastive_vectors``)."""
    data = voted_set(votes.votes, name or f"votes:{votes.session}")
    fitted = contrastive_vectors(lm, data, layers, method=method, **options)
    provenance = {"session": votes.session, "snapshot": votes.snapshot.to_dict(), "n_votes": len(votes.votes)}
    return {layer: replace(v, info={**v.info, **provenance}) for layer, v in fitted.items()}
