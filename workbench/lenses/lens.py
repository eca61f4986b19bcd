"""The logit lens: read every layer's residual stream out through the final norm and unembedding.

All layers come from one forward pass (``workbench.activations.extract.forward_states``); the
architecture adapter applies the family's final norm and unembedding, so the last layer
reproduces the model's own logits (``parity_gap``). Lens point 0 is the embedding output, point i the output of block i-1.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.activations.extract import forward_states
from workbench.errors import ConfigError, ModelError
from workbench.lenses.token_sets import display_token
from workbench.models.batching import pad_token_id, right_padded
from workbench.models.loading import LoadedModel

LN2 = math.log(2.0)
Progress = Callable[[int, int], None]


def _check_causal(lm: LoadedModel) -> None:
    if lm.is_encoder:
        raise ModelError(f"{lm.name} is an encoder; the logit lens needs a causal language model with an unembedding.",
                         hint="Load a causal LM (Llama, Qwen2, Gemma, GPT-2, GPT-NeoX, Phi, ...).")


def encode(lm: LoadedModel, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text, with the special tokens (BOS) the model's tokenizer adds by default."""
    return [list(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]


def batch_inputs(lm: LoadedModel, batch: list[list[int]]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` on the model's device for token-id lists.

    Right padding with causal attention keeps every real token's states exact.
    """
    input_ids, mask = right_padded(batch, pad_token_id(lm.tokenizer))
    return {"input_ids": input_ids.to(lm.device), "attention_mask": mask.long().to(lm.device)}


def _absolute_positions(lengths: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
    out = torch.empty((len(lengths), len(positions)), dtype=torch.long)
    for row, n in enumerate(lengths):
        for col, p in enumerate(positions):
            q = p + n if p < 0 else p
            if not 0 <= q < n:
                raise ConfigError(f"Position {p} is outside a prompt of {n} tokens.",
                                  hint="Use negative positions (-1 = last token) or shorter offsets.")
            out[row, col] = q
    return out


def lens_logits(lm: LoadedModel, batch: list[list[int]], positions: Sequence[int]) -> torch.Tensor:
    """Lens logits ``[layers+1, batch, positions, vocab]`` (fp32) for right-padded id lists.

    Only the requested positions go through the final norm and unembedding.
    """
    _check_causal(lm)
    inputs = batch_inputs(lm, batch)
    pos = _absolute_positions([len(ids) for ids in batch], positions).to(lm.device)
    rows = torch.arange(len(batch), device=lm.device)[:, None]
    with torch.inference_mode():
        states = forward_states(lm, **inputs)
        picked = torch.stack([s[rows, pos] for s in states])
        return lm.adapter.logits(lm.model, picked).float()


@dataclass
class LensMetrics:
    """Per prompt, lens point and position: arrays shaped ``[n_prompts, n_layers + 1, n_positions]``.

    ``mass[name]`` is the probability of a token set, ``rank[name]`` the rank (0 = top) and
    ``logprob[name]`` the log-probability (nats) of a target token, per prompt.
    ``control[name]`` (when asked for) is the mean mass on the *other* prompts' sets of that name.
    """

    positions: tuple[int, ...]
    entropy: np.ndarray  # bits
    kl_to_final: np.ndarray  # KL(final || layer), bits
    top1: np.ndarray
    mass: dict[str, np.ndarray] = field(default_factory=dict)
    rank: dict[str, np.ndarray] = field(default_factory=dict)
    logprob: dict[str, np.ndarray] = field(default_factory=dict)
    control: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return self.entropy.shape[1]


def _membership(sets: Sequence[Sequence[int]], vocab: int, device: torch.device) -> torch.Tensor:
    """One 0/1 row per set: ``[n_sets, vocab]``; mass is then a single matmul."""
    m = torch.zeros((len(sets), vocab), device=device)
    for row, ids in enumerate(sets):
        if len(ids):
            m[row, torch.as_tensor(list(ids), dtype=torch.long, device=device)] = 1.0
    return m


def _set_counts(sets: Sequence[Sequence[int]], vocab: int, device: torch.device) -> torch.Tensor:
    """Per vocabulary token, in how many of the sets it is: ``[vocab]``, built without an n × vocab matrix."""
    counts = torch.zeros(vocab, device=device)
    for ids in sets:
        if len(ids):
            counts[torch.as_tensor(sorted(set(ids)), dtype=torch.long, device=device)] += 1.0
    return counts


def lens_metrics(
    lm: LoadedModel,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    positions: Sequence[int] = (-1,),
    token_sets: dict[str, Sequence[Sequence[int]]] | None = None,
    targets: dict[str, Sequence[int]] | None = None,
    batch_size: int = 16,
    controls: bool = False,
    progress: Progress | None = None,
) -> LensMetrics:
    """Lens metrics for many prompts, one forward pass per batch (sorted by length).

    ``token_sets[name][i]`` is the token-id set whose probability mass is measured for prompt
    i; ``targets[name][i]`` a single token whose rank and log-probability are measured.
    ``controls`` also measures, per prompt, the mean mass on the other prompts' sets: a mass
    that is no higher on the right set than on the wrong ones measures nothing.
    """
    if not len(prompts):
        raise ConfigError("No prompts were given to the logit lens.", hint="Pass at least one prompt.")
    ids = encode(lm, prompts) if isinstance(prompts[0], str) else [list(p) for p in prompts]  # type: ignore[arg-type]
    if empty := [i for i, x in enumerate(ids) if not x]:
        raise ConfigError(f"Prompt {empty[0]} tokenizes to nothing.", hint="Remove empty prompts.")
    token_sets, targets = token_sets or {}, targets or {}
    for name, values in {**token_sets, **targets}.items():
        if len(values) != len(ids):
            raise ConfigError(f"'{name}' has {len(values)} entries for {len(ids)} prompts.", hint="Give one entry per prompt.")
    n, positions = len(ids), tuple(positions)
    shape = (n, len(lm.adapter.layers(lm.model)) + 1, len(positions))
    out = LensMetrics(positions, np.zeros(shape, np.float32), np.zeros(shape, np.float32), np.zeros(shape, np.int64),
                      {k: np.zeros(shape, np.float32) for k in token_sets},
                      {k: np.zeros(shape, np.int64) for k in targets},
                      {k: np.zeros(shape, np.float32) for k in targets})
    if controls and n < 2:
        raise ConfigError("A control needs at least two prompts (it is the mass on the other prompts' sets).",
                          hint="Measure two or more prompts, or leave controls off.")
    if controls:
        out.control = {k: np.zeros(shape, np.float32) for k in token_sets}
    counts: dict[str, torch.Tensor] = {}  # per vocabulary token: in how many prompts' sets it is
    order = sorted(range(n), key=lambda i: len(ids[i]))
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        logits = lens_logits(lm, [ids[i] for i in idx], positions)  # [L, B, P, V]
        logp = torch.log_softmax(logits, dim=-1)
        p = logp.exp()
        out.entropy[idx] = (-(p * logp).sum(-1) / LN2).permute(1, 0, 2).cpu().numpy()
        out.kl_to_final[idx] = ((p[-1:] * (logp[-1:] - logp)).sum(-1) / LN2).clamp_min(0).permute(1, 0, 2).cpu().numpy()
        out.top1[idx] = logits.argmax(-1).permute(1, 0, 2).cpu().numpy()
        for name, sets in token_sets.items():
            mass = torch.einsum("lbpv,bv->blp", p, _membership([sets[i] for i in idx], logits.shape[-1], logits.device))
            out.mass[name][idx] = mass.cpu().numpy()
            if controls:
                if name not in counts:
                    counts[name] = _set_counts(sets, logits.shape[-1], logits.device)
                # sum over all prompts' sets minus the own one, averaged over the n - 1 others
                total = torch.einsum("lbpv,v->blp", p, counts[name])
                out.control[name][idx] = ((total - mass) / (n - 1)).cpu().numpy()
        for name, tokens in targets.items():
            t = torch.as_tensor([tokens[i] for i in idx], device=logits.device)[None, :, None, None].expand(*logits.shape[:3], 1)
            own = logits.gather(-1, t)
            out.rank[name][idx] = (logits > own).sum(-1).permute(1, 0, 2).cpu().numpy()
            out.logprob[name][idx] = logp.gather(-1, t)[..., 0].permute(1, 0, 2).cpu().numpy()
        if progress:
            progress(min(start + batch_size, n), n)
    return out


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 with a Student-t confidence band (NaNs ignored)."""
    from scipy import stats  # scipy: only in mean_ci()

    values = np.asarray(values, dtype=np.float64)
    count = np.sum(~np.isnan(values), axis=0)
    mean = np.nanmean(values, axis=0)
    sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(np.maximum(count, 1)) if len(values) > 1 else np.zeros_like(mean)
    half = stats.t.ppf(0.5 + level / 2, np.maximum(count - 1, 1)) * np.nan_to_num(sem)
    return mean, mean - half, mean + half


@dataclass
class LensGrid:
    """Top-k lens tokens for every lens point × input position of one prompt (the heatmap)."""

    input_tokens: list[str]
    top_tokens: list[list[list[str]]]  # [point][position][k]
    top_probs: np.ndarray  # [points, positions, k]
    entropy: np.ndarray  # [points, positions], bits

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (layer, position, k), the form exported as CSV."""
        rows = [
            {"layer": layer, "position": pos, "input_token": self.input_tokens[pos], "k": k + 1,
             "token": self.top_tokens[layer][pos][k], "prob": float(self.top_probs[layer, pos, k]),
             "entropy_bits": float(self.entropy[layer, pos])}
            for layer in range(self.top_probs.shape[0]) for pos in range(self.top_probs.shape[1]) for k in range(self.top_probs.shape[2])
        ]
        return pd.DataFrame(rows)


def lens_grid(lm: LoadedModel, text: str, *, top_k: int = 5, max_tokens: int = 256) -> LensGrid:
    """Top-k next tokens per layer and position for one prompt (one forward pass)."""
    _check_causal(lm)
    ids = encode(lm, [text])[0][-max_tokens:]
    if not ids:
        raise ConfigError("The prompt is empty.", hint="Type a prompt to look at.")
    inputs = batch_inputs(lm, [ids])
    tops, probs, ents = [], [], []
    with torch.inference_mode():
        for state in forward_states(lm, **inputs):  # one layer at a time bounds memory
            logp = torch.log_softmax(lm.adapter.logits(lm.model, state[0]).float(), dim=-1)
            p = logp.exp()
            top = p.topk(min(top_k, p.shape[-1]), dim=-1)
            tops.append(top.indices.cpu().numpy())
            probs.append(top.values.cpu().numpy())
            ents.append((-(p * logp).sum(-1) / LN2).cpu().numpy())
    tok = lm.tokenizer
    return LensGrid(
        input_tokens=[display_token(tok, i) for i in ids],
        top_tokens=[[[display_token(tok, int(i)) for i in row] for row in layer] for layer in tops],
        top_probs=np.stack(probs),
        entropy=np.stack(ents),
    )


def parity_gap(lm: LoadedModel, text: str) -> float:
    """Max |lens(last layer) − model logits| over all positions and the vocabulary.

    The lens is only trustworthy if this is ~0 in fp32: it proves the adapter applies the
    same final norm, unembedding and soft-capping as the model itself.
    """
    _check_causal(lm)
    ids = encode(lm, [text])[0]
    inputs = batch_inputs(lm, [ids])
    with torch.inference_mode():
        lens = lm.adapter.logits(lm.model, forward_states(lm, **inputs)[-1]).float()
        own = lm.model(**inputs).logits.float()
    return float((lens - own).abs().max())
