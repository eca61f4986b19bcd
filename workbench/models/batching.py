"""Right-padded batches of token ids: the one padding rule for every forward pass over texts.

Right padding with causal attention keeps every real token's states exact, so the pad id's
value never matters; it is the tokenizer's pad token, else its EOS, else 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def pad_token_id(tokenizer: Any) -> int:
    """The id that fills a batch's padding: pad, else EOS, else 0 (never read under the mask)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def right_padded(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids [n, width], mask [n, width] bool)`` for token-id lists, padded on the right in one copy."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    mask = np.arange(int(lengths.max()))[None, :] < lengths[:, None]
    ids = np.full(mask.shape, pad, dtype=np.int64)
    ids[mask] = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
    return torch.from_numpy(ids), torch.from_numpy(mask)
