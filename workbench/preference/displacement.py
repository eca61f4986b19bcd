"""Which voted pairs are likely to make DPO lower the chosen response's probability?

Razin et al. 2024 ("Unintentional Unalignment: Likelihood Displacement in Direct Preference
Optimization") show that DPO tends to push the chosen response down too when chosen and
rejected look alike to the model, and measure that likeness with the centered hidden-embedding
similarity

    CHES(x, y+, y−) = ⟨h+, h−⟩ − ‖h+‖²,   h = Σ over the response's tokens of the last hidden state,

(hidden states after the final norm, what the unembedding reads). The length-normalised
variant uses the mean over tokens instead of the sum. The higher the score, the likelier the
displacement; the pairs at the top are the ones to look at or drop before a run.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from workbench.activations import ActivationCache, chat_texts, extract_activations
from workbench.data.types import Prompt, prompt_text
from workbench.errors import ConfigError
from workbench.models.loading import LoadedModel
from workbench.preference.votes import Vote

NORM_CHUNK = 4096  # token rows normalised at once


def response_embeddings(lm: LoadedModel, prompts: Sequence[Prompt], responses: Sequence[str], *, system: str | None = None,
                        batch_size: int = 16, cache: ActivationCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Σ over response tokens of the final-norm last hidden state ``[n, d]``, response token counts ``[n]``)."""
    eos = lm.tokenizer.eos_token or " "
    rendered = chat_texts(list(prompts), [r if r.strip() else eos for r in responses], lm.tokenizer, system=system)
    layer = lm.n_layers
    acts = extract_activations(lm, rendered.texts, layers=[layer], pooling="tokens", prefix_lengths=rendered.prefix_lengths,
                               batch_size=batch_size, cache=cache, add_special_tokens=rendered.add_special_tokens)
    rows = np.asarray(acts.get(layer))
    norm = lm.adapter.final_norm(lm.model)
    normed = np.empty(rows.shape, dtype=np.float64)
    with torch.inference_mode():
        for i in range(0, len(rows), NORM_CHUNK):
            block = torch.from_numpy(np.ascontiguousarray(rows[i:i + NORM_CHUNK])).to(lm.device, lm.dtype)
            normed[i:i + NORM_CHUNK] = norm(block).float().cpu().numpy()
    offsets = np.asarray(acts.offsets)
    return np.add.reduceat(normed, offsets[:-1], axis=0), np.diff(offsets)


def ches(h_chosen: np.ndarray, h_rejected: np.ndarray) -> np.ndarray:
    """⟨h+, h−⟩ − ‖h+‖² per row."""
    return np.einsum("nd,nd->n", h_chosen, h_rejected) - np.einsum("nd,nd->n", h_chosen, h_chosen)


def ches_scores(lm: LoadedModel, prompts: Sequence[Prompt], chosen: Sequence[str], rejected: Sequence[str], *,
                system: str | None = None, batch_size: int = 16, cache: ActivationCache | None = None) -> dict[str, np.ndarray]:
    """CHES and its length-normalised variant per (prompt, chosen, rejected), from one batched extraction."""
    if not (len(prompts) == len(chosen) == len(rejected)):
        raise ConfigError(f"Got {len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected responses; they must pair up.")
    n = len(prompts)
    h, counts = response_embeddings(lm, [*prompts, *prompts], [*chosen, *rejected], system=system, batch_size=batch_size, cache=cache)
    mean = h / counts[:, None]
    return {"ches": ches(h[:n], h[n:]), "ln_ches": ches(mean[:n], mean[n:])}


def displacement_risk(lm: LoadedModel, votes: Sequence[Vote], *, top_k: int = 10, normalized: bool = False,
                      system: str | None = None, batch_size: int = 16, cache: ActivationCache | None = None) -> dict[str, Any]:
    """Score every vote's pair and list the ``top_k`` likeliest to cause likelihood displacement.

    ``normalized`` ranks by the length-normalised score (less dominated by long responses).
    Returns the scores in vote order and the top rows (pair, annotator, prompt, both scores).
    """
    if top_k < 0:
        raise ConfigError(f"top_k must be ≥ 0, got {top_k}.")
    if not votes:
        return {"scores": [], "ln_scores": [], "top": [], "ranked_by": "ln_ches" if normalized else "ches"}
    s = ches_scores(lm, [v.prompt for v in votes], [v.chosen for v in votes], [v.rejected for v in votes],
                    system=system, batch_size=batch_size, cache=cache)
    key = "ln_ches" if normalized else "ches"
    order = np.argsort(-s[key], kind="stable")[:top_k]
    top = [{"index": int(i), "pair_id": votes[i].pair_id, "annotator": votes[i].annotator, "prompt": prompt_text(votes[i].prompt)[:200],
            "ches": float(s["ches"][i]), "ln_ches": float(s["ln_ches"][i])} for i in order]
    return {"scores": s["ches"].tolist(), "ln_scores": s["ln_ches"].tolist(), "top": top, "ranked_by": key}
