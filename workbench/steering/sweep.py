"""Dose-response sweep: how reward, KL to the base model and degeneration move with a coefficient.

For every prompt, all coefficients are decoded together in one batch with shared sampling
noise (``decode_rows``), so the curves compare like with like. Per coefficient:

- ``reward``: mean of a user-supplied score of the responses (e.g. vᵀr from a reward model);
- ``kl``: mean per-token KL(steered ‖ base) on the steered responses, from two teacher-forced
  forward passes (with and without the hooks);
- ``repetition``: share of repeated token 3-grams; ``compression``: raw / zlib-compressed
  bytes (both grow when text degenerates into loops);
- ``length``: mean response length in tokens.

The suggested usable range is the widest interval of coefficients around 0 whose KL,
repetition and compression stay within limits.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from workbench.data.types import Prompt
from workbench.errors import ConfigError
from workbench.jobs.options import SamplingOptions
from workbench.models.generation import render_prompt
from workbench.models.loading import LoadedModel
from workbench.steering.decoding import DecodedRow, generate_rows
from workbench.steering.vectors import SteeringVector

ScoreFn = Callable[[list[Prompt], list[str]], np.ndarray]


def repetition_rate(token_ids: Sequence[int], n: int = 3) -> float:
    """Share of token n-grams that already occurred earlier in the same text (0 = none)."""
    if len(token_ids) < n + 1:
        return 0.0
    grams = np.lib.stride_tricks.sliding_window_view(np.asarray(token_ids), n)
    unique = len({g.tobytes() for g in grams})
    return 1.0 - unique / len(grams)


def compression_ratio(text: str) -> float:
    """Raw bytes over zlib-compressed bytes; loops compress well, so degenerate text scores high."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


@dataclass
class SweepPoint:
    coefficient: float
    reward: float | None
    kl: float
    repetition: float
    compression: float
    length: float
    examples: list[str] = field(default_factory=list)


@dataclass
class SweepResult:
    vector: str
    points: list[SweepPoint]
    usable: tuple[float, float]
    limits: dict[str, float]

    def rows(self) -> list[dict[str, object]]:
        return [{"coefficient": p.coefficient, "reward": p.reward, "kl": p.kl, "repetition": p.repetition,
                 "compression": p.compression, "length": p.length,
                 "usable": self.usable[0] <= p.coefficient <= self.usable[1]} for p in self.points]


def _kl_per_token(lm: LoadedModel, prompt: Prompt, vector: SteeringVector, rows: list[DecodedRow], system: str | None) -> np.ndarray:
    """Mean KL(steered ‖ base) over each row's response tokens (teacher forcing, both passes batched)."""
    tok = lm.tokenizer
    prefix = tok([render_prompt(tok, prompt, system)], add_special_tokens=not getattr(tok, "chat_template", None))["input_ids"][0]
    lengths = np.array([len(r.token_ids) for r in rows])
    width = len(prefix) + max(int(lengths.max()), 1)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        seq = list(prefix) + r.token_ids
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    coefs = torch.tensor([r.coefficients[0] for r in rows])
    with torch.inference_mode():
        base = torch.log_softmax(lm.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
        with vector.apply(lm, coefs):
            steered = torch.log_softmax(lm.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
        kl = (steered.exp() * (steered - base)).sum(-1)  # [rows, width]: KL at each next-token prediction
    # Predictions for response tokens come from positions len(prefix)-1 .. len(prefix)+len-2.
    pos = torch.arange(width)[None, :]
    start = len(prefix) - 1
    sel = ((pos >= start) & (pos < start + torch.from_numpy(lengths)[:, None])).to(kl.device)
    total = (kl * sel).sum(1).cpu().numpy()
    return np.where(lengths > 0, total / np.maximum(lengths, 1), 0.0)


def suggest_range(coefficients: np.ndarray, ok: np.ndarray) -> tuple[float, float]:
    """The widest run of acceptable coefficients that contains the one closest to 0."""
    order = np.argsort(coefficients)
    c, good = coefficients[order], ok[order]
    centre = int(np.argmin(np.abs(c)))
    if not good[centre]:
        return (float(c[centre]), float(c[centre]))
    lo = hi = centre
    while lo > 0 and good[lo - 1]:
        lo -= 1
    while hi < len(c) - 1 and good[hi + 1]:
        hi += 1
    return float(c[lo]), float(c[hi])


def dose_response(lm: LoadedModel, vector: SteeringVector, prompts: Sequence[Prompt], coefficients: Sequence[float], *,
                  score: ScoreFn | None = None, settings: SamplingOptions | None = None, system: str | None = None,
                  max_kl: float = 1.0, max_repetition_increase: float = 0.2, max_compression_ratio: float = 1.5) -> SweepResult:
    """Sweep ``coefficients`` over ``prompts`` and suggest a usable range.

    A coefficient is usable when its mean KL ≤ ``max_kl`` nats/token, its repetition rate is at
    most ``max_repetition_increase`` above the unsteered one, and its compression ratio at most
    ``max_compression_ratio`` times the unsteered one.
    """
    coefs = np.asarray(sorted(set(map(float, coefficients))), dtype=np.float64)
    if len(coefs) < 2:
        raise ConfigError("A sweep needs at least two different coefficients.")
    if not prompts:
        raise ConfigError("A sweep needs at least one prompt.")
    settings = settings or SamplingOptions(max_new_tokens=64)
    grid = sorted(set(coefs.tolist()) | {0.0})  # the unsteered row is the reference
    texts: list[list[str]] = [[] for _ in grid]
    kls, reps, comps, lens = (np.zeros((len(grid), len(prompts))) for _ in range(4))
    for j, prompt in enumerate(prompts):
        rows = generate_rows(lm, prompt, [vector], [[c] for c in grid], settings, system=system)
        kls[:, j] = _kl_per_token(lm, prompt, vector, rows, system)
        for i, r in enumerate(rows):
            texts[i].append(r.text)
            reps[i, j] = repetition_rate(r.token_ids)
            comps[i, j] = compression_ratio(r.text)
            lens[i, j] = r.n_tokens
    rewards = None
    if score is not None:
        flat_prompts = [p for _ in grid for p in prompts]
        flat = np.asarray(score(flat_prompts, [t for ts in texts for t in ts]), dtype=np.float64)
        rewards = flat.reshape(len(grid), len(prompts)).mean(1)
    zero = grid.index(0.0)
    base_rep, base_comp = reps[zero].mean(), comps[zero].mean()
    points = [
        SweepPoint(coefficient=c, reward=None if rewards is None else float(rewards[i]), kl=float(kls[i].mean()),
                   repetition=float(reps[i].mean()), compression=float(comps[i].mean()), length=float(lens[i].mean()),
                   examples=texts[i][:3])
        for i, c in enumerate(grid)
    ]
    ok = np.array([p.kl <= max_kl and p.repetition <= base_rep + max_repetition_increase
                   and p.compression <= base_comp * max_compression_ratio for p in points])
    limits = {"max_kl": max_kl, "max_repetition": base_rep + max_repetition_increase, "max_compression": base_comp * max_compression_ratio}
    return SweepResult(vector=vector.name, points=points, usable=suggest_range(np.asarray(grid), ok), limits=limits)
