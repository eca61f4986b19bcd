"""Ablate or boost one SAE latent in a recommender's user state and watch the ranking move.

The edited state is ``x + decode(f') − decode(f)``: the SAE's reconstruction error stays
in, so with no edit the recommendations are exactly the model's own. The effect is the
share of the concept's items in each user's top-N (seen items excluded), before vs after.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from workbench.errors import ConfigError
from workbench.sae.interactions import Interactions
from workbench.sae.sasrec import SASRec, seen_mask, user_states

MODES = ("ablate", "boost")


@dataclass
class InterventionResult:
    latent: int
    concept: str
    mode: str
    value: float
    top_n: int
    n_users: int
    share_before: float
    share_after: float
    catalog_share: float
    users_changed: float  # fraction of users whose top-N set changed

    @property
    def shift(self) -> float:
        return self.share_after - self.share_before

    def as_dict(self) -> dict[str, float | str | int]:
        return {**asdict(self), "shift": self.shift}


@torch.inference_mode()
def edited_states(sae: object, states: torch.Tensor, latent: int, value: float | None) -> torch.Tensor:
    """States with latent ``latent`` set to ``value`` (None leaves it: the identity edit)."""
    f = sae.encode(states)  # type: ignore[attr-defined]
    if value is None:
        return states.clone()
    g = f.clone()
    g[:, latent] = value
    return states + sae.decode(g) - sae.decode(f)  # type: ignore[attr-defined]


@torch.inference_mode()
def top_n(model: SASRec, states: torch.Tensor, histories: list[np.ndarray], n: int) -> torch.Tensor:
    scores = model.scores(states)
    scores[seen_mask(histories, scores.shape[1] - 1)] = float("-inf")
    return scores.topk(n, dim=1).indices


@torch.inference_mode()
def intervene(model: SASRec, sae: object, data: Interactions, histories: list[np.ndarray], latent: int, concept: str, *,
              mode: str = "boost", strength: float = 3.0, reference: float | None = None, n: int = 10) -> InterventionResult:
    """Share of ``concept`` items in each user's top-``n`` before and after editing ``latent``.

    ``ablate`` sets the latent to 0 (for the users where it fires, that removes it);
    ``boost`` sets it to ``strength × reference`` (reference: the latent's largest
    activation on the training sequences, or its largest on these users).
    """
    if mode not in MODES:
        raise ConfigError(f"Unknown intervention {mode!r}.", hint=f"Use one of {', '.join(MODES)}.")
    d_sae = sae.cfg.d_sae  # type: ignore[attr-defined]
    if not 0 <= latent < d_sae:
        raise ConfigError(f"Latent {latent} is out of range; this SAE has latents 0..{d_sae - 1}.")
    if concept not in data.attributes:
        raise ConfigError(f"Unknown concept {concept!r}.", hint=f"Attributes of this dataset: {', '.join(data.attributes)}.")
    if not histories:
        raise ConfigError("No users to intervene on.", hint="Pass at least one user history.")
    states = user_states(model, histories)
    has = torch.from_numpy(data.attribute_matrix()[:, data.attributes.index(concept)] > 0)
    if mode == "ablate":
        value = 0.0
    else:
        ref = reference if reference is not None else float(sae.encode(states)[:, latent].max())  # type: ignore[attr-defined]
        value = strength * max(ref, 1e-6)
    before = top_n(model, states, histories, n)
    after = top_n(model, edited_states(sae, states, latent, value), histories, n)
    changed = [set(b.tolist()) != set(a.tolist()) for b, a in zip(before, after, strict=True)]
    return InterventionResult(
        latent=latent, concept=concept, mode=mode, value=value, top_n=n, n_users=len(histories),
        share_before=float(has[before].float().mean()), share_after=float(has[after].float().mean()),
        catalog_share=float(has[1:].float().mean()), users_changed=float(np.mean(changed)),
    )
