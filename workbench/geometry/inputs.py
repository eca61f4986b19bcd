"""The inputs every space is built from, and turning them into spaces with a model.

An input is one response (optionally with its prompt); its key is stable across models,
so the LM's space and the sentence embedder's space of the same responses line up row by
row even though each model sees its own rendering (chat template or plain text).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.activations import ActivationCache, chat_texts, extract_activations
from workbench.activations.extract import ProgressCallback
from workbench.data.types import Pair, Prompt, prompt_text
from workbench.errors import DataError
from workbench.geometry.space import Space
from workbench.models.loading import LoadedModel


@dataclass
class Item:
    """One input: ``text`` is what is encoded; with a ``prompt``, a chat LM sees prompt + text."""

    key: str
    text: str
    prompt: Prompt | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _role(pair: Pair, side: str) -> str:
    if pair.preferred in ("A", "B"):
        return "chosen" if pair.preferred == side else "rejected"
    return "tie" if pair.preferred == "tie" else "unlabeled"


def pair_items(pairs: Sequence[Pair]) -> list[Item]:
    """Two inputs per pair (response A, then B), keyed ``<pair id>:A`` / ``<pair id>:B``.

    Metadata for colouring: pair id, side, the pair's attribute and this response's pole
    (demo pairs), chosen/rejected from the pair's label, and the prompt.
    """
    items = []
    for pair in pairs:
        for side, text in (("A", pair.response_a), ("B", pair.response_b)):
            meta = {k: v for k, v in pair.metadata.items() if isinstance(v, (str, int, float, bool)) and k not in ("a_pole", "b_pole")}
            pole = pair.metadata.get(f"{side.lower()}_pole")
            if pole is not None:
                meta["pole"] = str(pole)
                if "attribute" in pair.metadata:
                    meta["attribute_pole"] = f"{pair.metadata['attribute']}:{pole}"
            meta.update(pair_id=pair.id, side=side, role=_role(pair, side), preferred=pair.preferred or "none",
                        prompt=prompt_text(pair.prompt))
            items.append(Item(key=f"{pair.id}:{side}", text=text, prompt=pair.prompt, metadata=meta))
    return items


def items_frame(items: Sequence[Item]) -> Any:
    """A pandas DataFrame, one row per input: key, text and every metadata field."""
    import pandas as pd  # pandas: only in items_frame()

    return pd.DataFrame([{"key": it.key, "text": it.text, **it.metadata} for it in items])


def encode_items_layers(lm: LoadedModel, items: Sequence[Item], *, layers: Sequence[int] | None = None, pooling: str = "mean",
                        cache: ActivationCache | None = None, batch_size: int = 16,
                        progress: ProgressCallback | None = None) -> dict[int, Space]:
    """A space per layer (all from one forward pass; None = every layer, 0 = embeddings).

    ``progress(done, total)`` is called after each batch (once, with done = total, on a cache hit).

    A chat LM encodes prompt + response through its chat template and pools over the
    response tokens only; an encoder (or a model without a chat template) encodes the text.
    """
    if not items:
        raise DataError("There are no inputs to encode.", field="items", hint="Pass at least one input (e.g. pair_items(pairs)).")
    chat = not lm.is_encoder and getattr(lm.tokenizer, "chat_template", None) and all(it.prompt is not None for it in items)
    if chat:
        rendered = chat_texts([it.prompt for it in items], [it.text for it in items], lm.tokenizer)
        texts, prefix, special = rendered.texts, rendered.prefix_lengths, rendered.add_special_tokens
    else:
        texts, prefix, special = [it.text for it in items], None, True
    acts = extract_activations(lm, texts, layers=list(layers) if layers is not None else None, pooling=pooling,
                               prefix_lengths=prefix, batch_size=batch_size, cache=cache, add_special_tokens=special,
                               progress=progress or False)
    keys = tuple(it.key for it in items)
    info = {"model": lm.name, "pooling": pooling, "chat": bool(chat), "n_layers": lm.n_layers}
    return {layer: Space(f"{lm.name} · layer {layer} · {pooling}", np.asarray(acts.get(layer)), keys, {**info, "layer": layer})
            for layer in acts.layers}


def encode_items(lm: LoadedModel, items: Sequence[Item], *, layer: int = -1, pooling: str = "mean",
                 cache: ActivationCache | None = None, batch_size: int = 16) -> Space:
    """The space of ``items`` at one ``layer`` of ``lm`` (negative numbers count from the end)."""
    return next(iter(encode_items_layers(lm, items, layers=[layer], pooling=pooling, cache=cache, batch_size=batch_size).values()))
