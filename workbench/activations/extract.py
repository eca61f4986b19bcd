"""Residual-stream activations of many texts: every requested layer from one forward pass.

Texts are tokenized once, sorted by length so a batch carries little padding, and padded
on the right, so in a causal model each text's tokens keep positions 0..n-1 and see the
same context as when the text runs alone. Pooling happens on the device with index and
mask arithmetic, never with Python loops over tokens. Results are float32 numpy arrays;
with a cache they are written straight into memory-mapped files and a repeated request is
a file read.
"""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.activations.cache import ActivationCache, CacheEntry, activation_key, model_identity
from workbench.data.types import Pair, Prompt
from workbench.errors import ConfigError, DataError, WorkbenchError
from workbench.models.adapters import residual_stream
from workbench.models.batching import pad_token_id
from workbench.models.generation import render_prompt
from workbench.models.loading import LoadedModel

POOLINGS = ("last", "mean", "tokens")
# On a CPU a batch of more than about this many (padded) tokens is slower per token than smaller
# ones: measured on the demo model, 2 cores, 32 texts of ~150 tokens, against one text at a
# time in the same run: batch 2 and 4 1.00x, batch 8 0.77x, batch 16 0.72x (benchmarks/README.md).
# A GPU needs large batches to be busy, so there ``batch_size`` alone decides. (The logit lens
# keeps whole batches: its full-vocabulary readout gains from them, and a 512-token cap measured
# no faster there.)
CPU_BATCH_TOKENS = 512
ProgressCallback = Callable[[int, int], None]
Allocator = Callable[[str, tuple[int, ...], Any], np.ndarray]
log = logging.getLogger(__name__)


@dataclass
class Activations:
    """Pooled activations per layer.

    ``get(layer)`` is ``[n_texts, d_model]`` for "last" and "mean" pooling. For "tokens" it
    is ``[total_tokens, d_model]``: rows ``offsets[i]:offsets[i + 1]`` belong to text ``i``
    and ``token_ids`` holds the token of each row. Arrays that came from (or went into) a
    cache are read-only memory maps.
    """

    layers: list[int]
    arrays: dict[int, np.ndarray]
    model_name: str
    pooling: str
    n_texts: int
    key: str
    offsets: np.ndarray | None = None
    token_ids: np.ndarray | None = None
    from_cache: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def get(self, layer: int) -> np.ndarray:
        try:
            return self.arrays[layer]
        except KeyError:
            raise ConfigError(
                f"Layer {layer} was not extracted; these activations hold layers {self.layers}.",
                hint="Pass that layer in `layers=` when extracting.",
            ) from None

    @property
    def d_model(self) -> int:
        return int(self.arrays[self.layers[0]].shape[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(number of layers, rows per layer, d_model)."""
        return len(self.layers), int(self.arrays[self.layers[0]].shape[0]), self.d_model

    def text_rows(self, i: int) -> slice:
        """The rows of text ``i`` in a "tokens" result."""
        if self.offsets is None:
            raise ConfigError(f"text_rows() needs pooling='tokens'; these activations were pooled with {self.pooling!r}.")
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    @classmethod
    def from_entry(cls, entry: CacheEntry, *, from_cache: bool) -> Activations:
        meta = entry.meta
        return cls(
            layers=list(meta["layers"]),
            arrays={layer: entry.arrays[f"layer_{layer}"] for layer in meta["layers"]},
            model_name=meta["model_name"], pooling=meta["pooling"], n_texts=meta["n_texts"], key=meta["key"],
            offsets=entry.arrays.get("offsets"), token_ids=entry.arrays.get("token_ids"),
            from_cache=from_cache, info={"n_tokens": meta["n_tokens"], "path": str(entry.path)},
        )


@dataclass
class RenderedTexts:
    """Prompt+response texts as the model sees them, and where each response starts (characters).

    ``add_special_tokens`` is False when a chat template already put BOS and role markers in.
    """

    texts: list[str]
    prefix_lengths: list[int]
    add_special_tokens: bool


def chat_texts(prompts: Sequence[Prompt], responses: Sequence[str], tokenizer: Any, *, system: str | None = None) -> RenderedTexts:
    """Render each prompt with the chat template and append its response."""
    if len(prompts) != len(responses):
        raise ConfigError(f"Got {len(prompts)} prompts but {len(responses)} responses; they must pair up one to one.")
    rendered = [render_prompt(tokenizer, p, system) for p in prompts]
    return RenderedTexts(
        texts=[r + resp for r, resp in zip(rendered, responses, strict=True)],
        prefix_lengths=[len(r) for r in rendered],
        add_special_tokens=not getattr(tokenizer, "chat_template", None),
    )


def pair_texts(pairs: Sequence[Pair], tokenizer: Any, *, system: str | None = None) -> RenderedTexts:
    """Texts for preference pairs: rows ``0..n-1`` hold response A, rows ``n..2n-1`` response B.

    Use with ``pooling="mean"`` and the returned prefix lengths to average over response tokens only.
    """
    prompts = [p.prompt for p in pairs]
    return chat_texts(prompts * 2, [p.response_a for p in pairs] + [p.response_b for p in pairs], tokenizer, system=system)


@dataclass
class _Tokens:
    """All texts tokenized into one flat array; ``select`` marks the tokens that are pooled."""

    ids: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    select: np.ndarray


def _ragged_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat indices of the segments ``starts[i]:starts[i] + lengths[i]``, concatenated."""
    total = int(lengths.sum())
    shift = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return shift + np.arange(total)


def _check_request(lm: LoadedModel, texts: list[str], layers: list[int] | None, pooling: str,
                   prefix_lengths: list[int] | None, batch_size: int) -> list[int]:
    if pooling not in POOLINGS:
        raise ConfigError(f"Unknown pooling {pooling!r}.", hint=f"Choose one of: {', '.join(POOLINGS)}.")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    if not isinstance(texts, (list, tuple)):
        raise DataError(f"Expected a list of strings, got {type(texts).__name__}.", field="texts", hint="Pass e.g. list(series).")
    if not texts:
        raise DataError("There are no texts to extract activations from.", field="texts", hint="Pass a non-empty list of strings.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"Expected a string, got {type(text).__name__}.", field=f"texts[{i}]")
    if prefix_lengths is not None:
        if len(prefix_lengths) != len(texts):
            raise ConfigError(
                f"prefix_lengths has {len(prefix_lengths)} entries but there are {len(texts)} texts.",
                hint="Give one prefix length (in characters) per text, e.g. from pair_texts().",
            )
        for i, (p, text) in enumerate(zip(prefix_lengths, texts, strict=True)):
            if not 0 <= p <= len(text):
                raise ConfigError(f"prefix_lengths[{i}] = {p} is outside text {i}, which has {len(text)} characters.")
    n = lm.n_layers
    if layers is None:
        return list(range(n + 1))
    if not layers:
        raise ConfigError("layers is empty.", hint=f"Pass layer numbers in 0..{n}, or None for all of them.")
    normalized: list[int] = []
    for layer in layers:
        if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or not -(n + 1) <= layer <= n:
            raise ConfigError(
                f"Layer {layer!r} is out of range for {lm.name}: valid layers are 0..{n} "
                f"(0 = embeddings, {n} = output of the last block; negative numbers count from the end).",
            )
        layer = int(layer) % (n + 1)
        if layer not in normalized:
            normalized.append(layer)
    return normalized


def _max_length(lm: LoadedModel) -> int | None:
    limit = getattr(lm.model.config, "max_position_embeddings", None)
    tok_limit = getattr(lm.tokenizer, "model_max_length", None)
    if limit is None and tok_limit is not None and tok_limit < 1_000_000:
        limit = tok_limit
    return int(limit) if limit else None


def _tokenize(lm: LoadedModel, texts: list[str], prefix_lengths: list[int] | None, use_prefix: bool,
              add_special_tokens: bool, max_length: int | None) -> _Tokens:
    tok = lm.tokenizer
    if use_prefix and not getattr(tok, "is_fast", False):
        raise ConfigError(
            f"The tokenizer of {lm.name} cannot map characters to tokens, which prefix_lengths needs.",
            hint="Use a checkpoint with a fast tokenizer (tokenizer.json), or drop prefix_lengths.",
        )
    enc = tok(list(texts), add_special_tokens=add_special_tokens, truncation=max_length is not None, max_length=max_length,
              return_attention_mask=False, return_token_type_ids=False, return_offsets_mapping=use_prefix)
    id_lists = enc["input_ids"]
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(texts))
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise DataError("This text has no tokens (it is empty).", field=f"texts[{int(empty[0])}]", hint="Remove empty texts.")
    total = int(lengths.sum())
    if max_length is not None and (at_limit := int((lengths >= max_length).sum())):
        log.warning("%d text(s) reached %s's maximum length of %d tokens and were cut there.", at_limit, lm.name, max_length)
    ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=total)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    if use_prefix:
        spans = np.fromiter(chain.from_iterable(enc["offset_mapping"]), dtype=np.dtype((np.int64, 2)), count=total)
        # A token is part of the response when it ends after the prefix; special tokens
        # the tokenizer adds have empty (0, 0) spans and so never count.
        select = spans[:, 1] > np.repeat(np.asarray(prefix_lengths, dtype=np.int64), lengths)
        counts = np.add.reduceat(select.astype(np.int64), starts[:-1])
        if (none := np.flatnonzero(counts == 0)).size:
            i = int(none[0])
            raise DataError(
                f"No tokens after the prefix (prefix_lengths[{i}] = {prefix_lengths[i]} characters), so there is nothing to pool.",
                field=f"texts[{i}]", hint="The response is empty or was cut at the model's maximum length.",
            )
    else:
        select = np.ones(total, dtype=bool)
    return _Tokens(ids=ids, lengths=lengths, starts=starts, select=select)


def forward_states(lm: LoadedModel, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every layer's residual stream (``residual_stream``) from one forward pass of ``lm``.

    The KV cache is skipped and the model's own logits are kept to one position (where its
    forward accepts ``use_cache`` / ``logits_to_keep``): callers want the hidden states, and
    full-vocabulary logits for every token would cost more memory than the states.
    """
    params = inspect.signature(lm.model.forward).parameters
    kwargs: dict[str, Any] = {}
    if "use_cache" in params:
        kwargs["use_cache"] = False
    if "logits_to_keep" in params:
        kwargs["logits_to_keep"] = 1
    return residual_stream(lm.adapter, lm.model, **inputs, **kwargs)


def _pool(states: list[torch.Tensor], pooling: str, lengths: np.ndarray, select: np.ndarray) -> torch.Tensor:
    """``[layers, rows, d]`` float32 on the first state's device, one host copy per batch for the caller.

    Each layer is pooled where it lives: with ``device_map`` a model's layers sit on several
    GPUs, and only the pooled rows (not the ``[batch, width, d]`` states) cross between them.
    """
    out = []
    for s in states:
        if pooling == "last":
            rows = torch.arange(len(lengths), device=s.device)
            out.append(s[rows, torch.from_numpy(lengths - 1).to(s.device)].float())
        elif pooling == "mean":
            weights = torch.from_numpy(select).to(s.device, torch.float32)
            out.append(torch.einsum("bld,bl->bd", s.float(), weights) / weights.sum(1, keepdim=True))
        else:
            out.append(s[torch.from_numpy(select).to(s.device)].float())
    return torch.stack([p.to(states[0].device) for p in out])


def batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """``order`` cut, in order, into batches of at most ``batch_size`` rows and, when ``max_tokens``
    is set, at most that many padded tokens (rows x the batch's longest length; at least one row)."""
    out: list[list[int]] = []
    b = 0
    while b < len(order):
        k, width = 1, int(lengths[order[b]])
        while k < batch_size and b + k < len(order):
            wider = max(width, int(lengths[order[b + k]]))
            if max_tokens is not None and (k + 1) * wider > max_tokens:
                break
            k, width = k + 1, wider
        out.append(list(order[b:b + k]))
        b += k
    return out


def token_budget(lm: LoadedModel) -> int | None:
    """The padded tokens a batch may hold on ``lm``'s device (None: only ``batch_size`` limits it)."""
    return CPU_BATCH_TOKENS if lm.device.type == "cpu" else None


def _run(lm: LoadedModel, tokens: _Tokens, layers: list[int], pooling: str, batch_size: int, alloc: Allocator,
         report: Callable[[int], None]) -> None:
    """Forward every batch once and write the pooled rows of each layer through ``alloc``'d arrays."""
    n = len(tokens.lengths)
    d = lm.adapter.d_model(lm.model)
    counts = np.add.reduceat(tokens.select.astype(np.int64), tokens.starts[:-1])
    out_offsets = np.concatenate(([0], np.cumsum(counts)))
    rows_out = int(out_offsets[-1]) if pooling == "tokens" else n
    outputs = {layer: alloc(f"layer_{layer}", (rows_out, d), np.float32) for layer in layers}
    if pooling == "tokens":
        offsets = alloc("offsets", (n + 1,), np.int64)
        offsets[:] = out_offsets
        token_ids = alloc("token_ids", (rows_out,), np.int64)
    pad_id = pad_token_id(lm.tokenizer)
    order = np.argsort(-tokens.lengths, kind="stable")  # longest first: out-of-memory shows up at once
    for batch in batches(order, tokens.lengths, batch_size, token_budget(lm)):
        rows = np.asarray(batch)
        lengths = tokens.lengths[rows]
        width = int(lengths.max())
        mask = np.arange(width)[None, :] < lengths[:, None]
        flat = _ragged_index(tokens.starts[rows], lengths)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        ids[mask] = tokens.ids[flat]
        select = np.zeros_like(mask)
        select[mask] = tokens.select[flat]
        try:
            with torch.inference_mode():
                states = forward_states(lm, input_ids=torch.from_numpy(ids).to(lm.device),
                                        attention_mask=torch.from_numpy(mask).long().to(lm.device))
                pooled_np = _pool([states[layer] for layer in layers], pooling, lengths, select).cpu().numpy()
        except torch.cuda.OutOfMemoryError as exc:
            raise WorkbenchError(
                f"Out of memory extracting activations from {lm.name} with batch_size={batch_size} (longest text {width} tokens).",
                hint="Lower batch_size, or pass fewer/shorter texts.",
            ) from exc
        if pooling == "tokens":
            # Row of each pooled token in the output: its text's offset plus its rank within the text.
            dest = (out_offsets[rows][:, None] + np.cumsum(select, axis=1) - 1)[select]
            token_ids[dest] = ids[select]
        else:
            dest = rows
        for j, layer in enumerate(layers):
            outputs[layer][dest] = pooled_np[j]
        report(len(rows))


def _progress_reporter(progress: bool | ProgressCallback, total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(advance(k), close()) for a tqdm bar, a callback(done, total), or nothing."""
    if progress is True:
        bar = tqdm(total=total, desc="activations", unit="text")
        return bar.update, bar.close
    if callable(progress):
        done = [0]

        def advance(k: int) -> None:
            done[0] += k
            progress(done[0], total)

        return advance, lambda: None
    return lambda k: None, lambda: None


def extract_activations(
    lm: LoadedModel,
    texts: list[str],
    *,
    layers: list[int] | None = None,
    pooling: str = "last",
    prefix_lengths: list[int] | None = None,
    batch_size: int = 16,
    cache: ActivationCache | None = None,
    progress: bool | ProgressCallback = False,
    add_special_tokens: bool = True,
) -> Activations:
    """Residual-stream activations of ``texts`` at ``layers`` (None = all, 0 = embeddings).

    pooling: "last" (last token), "mean" (mean over the tokens from character
    ``prefix_lengths[i]`` on, or over all tokens) or "tokens" (every such token, ragged).
    ``add_special_tokens`` should be False for texts a chat template already rendered
    (``RenderedTexts.add_special_tokens`` says which). Texts longer than the model's maximum
    length are cut there (with a warning).
    """
    layers = _check_request(lm, texts, layers, pooling, prefix_lengths, batch_size)
    use_prefix = prefix_lengths is not None and pooling != "last"  # the last token is the same either way
    max_length = _max_length(lm)
    spec = {
        "layers": layers, "pooling": pooling, "prefix_lengths": list(map(int, prefix_lengths)) if use_prefix else None,
        "add_special_tokens": add_special_tokens, "max_length": max_length, "dtype": str(lm.dtype),
    }
    key = activation_key(model_identity(lm), spec, texts)
    advance, close = _progress_reporter(progress, len(texts))
    try:
        if cache is not None and (entry := cache.get(key)) is not None:
            advance(len(texts))
            return Activations.from_entry(entry, from_cache=True)
        t0 = time.perf_counter()
        tokens = _tokenize(lm, texts, prefix_lengths, use_prefix, add_special_tokens, max_length)
        meta = {
            "key": key, "model_name": lm.name, "model_path": str(lm.path), "layers": layers, "pooling": pooling,
            "n_texts": len(texts), "n_tokens": int(tokens.lengths.sum()), **{k: v for k, v in spec.items() if k != "prefix_lengths"},
        }
        if cache is None:
            arrays: dict[str, np.ndarray] = {}

            def alloc(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
                arrays[name] = np.empty(shape, dtype=dtype)
                return arrays[name]

            _run(lm, tokens, layers, pooling, batch_size, alloc, advance)
            return Activations(
                layers=layers, arrays={layer: arrays[f"layer_{layer}"] for layer in layers}, model_name=lm.name,
                pooling=pooling, n_texts=len(texts), key=key, offsets=arrays.get("offsets"), token_ids=arrays.get("token_ids"),
                info={"n_tokens": meta["n_tokens"], "seconds": time.perf_counter() - t0},
            )
        with cache.writer(key) as writer:
            _run(lm, tokens, layers, pooling, batch_size, writer.array, advance)
            writer.commit({**meta, "seconds": time.perf_counter() - t0})
        entry = cache.get(key)
        if entry is None:
            raise WorkbenchError(f"The activation cache entry {cache.root / key} disappeared right after it was written.",
                                 hint="Is another process clearing the cache? Try again.")
        return Activations.from_entry(entry, from_cache=False)
    finally:
        close()
