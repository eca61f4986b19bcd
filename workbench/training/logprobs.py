"""Summed log-probabilities of responses given prompts: the quantity DPO moves.

Used for the before/after panel (does the policy now prefer the chosen response?) and for
DPO's implicit reward β·(log π − log π_ref). Batched, sorted by length, one forward pass
per batch, no loop over tokens.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from workbench.data.types import Prompt
from workbench.models.batching import pad_token_id, right_padded
from workbench.models.generation import render_prompt


def encode_pair(tokenizer: Any, prompt: Prompt, response: str, max_length: int) -> tuple[list[int], int]:
    """Prompt ids (templated) + response ids + EOS, as DPO counts them; returns ids and the response's start index.

    Too long a text loses the prompt's start, never the response.
    """
    p = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=not getattr(tokenizer, "chat_template", None))["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        r = [*r, tokenizer.eos_token_id]
    ids = (p + r)[-max_length:]  # keep the response; cut the prompt's start if too long
    return ids, max(1, len(ids) - len(r))


def sequence_logprobs(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[Prompt], responses: Sequence[str],
                      *, batch_size: int = 8, max_length: int = 512,
                      on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """log p(response | prompt) summed over the response tokens (and EOS), one value per row.

    ``on_batch(rows)`` runs after each batch with the rows it scored: a job reports progress
    and checks for a cancel there (it may raise to stop), so a long report is never a silent wait.
    """
    encoded = [encode_pair(tokenizer, p, r, max_length) for p, r in zip(prompts, responses, strict=True)]
    order = np.argsort([len(ids) for ids, _ in encoded])
    out = np.zeros(len(encoded), dtype=np.float64)
    device = next(model.parameters()).device
    pad = pad_token_id(tokenizer)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = right_padded([encoded[i][0] for i in idx], pad)
            starts = torch.tensor([encoded[i][1] for i in idx])
            resp = mask & (torch.arange(ids.shape[1])[None, :] >= starts[:, None])
            logits = model(input_ids=ids.to(device), attention_mask=mask.long().to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
            out[idx] = (logp * resp[:, 1:].to(device)).sum(-1).cpu().numpy()
            if on_batch is not None:
                on_batch(len(idx))
    return out


def preference_margins(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[Prompt], chosen: Sequence[str],
                       rejected: Sequence[str], **kw: Any) -> np.ndarray:
    """log p(chosen) − log p(rejected) per pair (positive = the model prefers the chosen one)."""
    n = len(prompts)
    both = sequence_logprobs(model, tokenizer, [*prompts, *prompts], [*chosen, *rejected], **kw)
    return both[:n] - both[n:]


def response_token_counts(tokenizer: Any, prompts: Sequence[Prompt], responses: Sequence[str], *, max_length: int = 512) -> np.ndarray:
    """Tokens each response contributes to ``sequence_logprobs`` (its sum's length), for per-token means."""
    encoded = [encode_pair(tokenizer, p, r, max_length) for p, r in zip(prompts, responses, strict=True)]
    return np.array([len(ids) - start for ids, start in encoded], dtype=np.float64)
