"""The small value objects plugins return from hooks, and the one compatibility check.

Like LIT's ``is_compatible``: a tab or view declares what it ``requires`` (capabilities of a
model or a dataset), the host compares that with what a catalog entry, a loaded model or a
stored dataset provides, and offers only what fits, saying why for the rest.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

# What a model can be used for (workbench.models.capabilities.model_capabilities derives them).
MODEL_CAPABILITIES = {
    "causal_lm": "a decoder language model (logit lens, generation, steering)",
    "encoder": "a sentence/text encoder (embeddings only)",
    "trainable": "a full Hugging Face decoder folder that a fine-tune can start from",
    "peft": "a PEFT adapter (merged into its base for inference)",
    "gguf-dequantized": "a GGUF file, dequantized once to safetensors",
    "chat": "has a chat template",
}
# What a stored dataset holds (workbench.store.Store.dataset_capabilities derives them).
DATASET_CAPABILITIES = {
    "pairs": "prompt + two responses",
    "labeled": "pairs with a recorded winner (chosen/rejected)",
    "interactions": "user-item interaction logs",
}
CAPABILITIES = {**MODEL_CAPABILITIES, **DATASET_CAPABILITIES}


@dataclass
class GradioTab:
    """A tab in the browser app. ``build(context)`` is called inside ``gr.Tab(title)``.

    ``requires`` names capabilities some model in the catalog must have for the tab to be of use;
    the shell shows a tab whose needs nothing meets with a note saying what is missing.
    """

    title: str
    build: Callable[[Any], None]
    order: int = 100
    requires: list[str] = field(default_factory=list)  # e.g. ["causal_lm"]


@dataclass
class PanelView:
    """A Panel dashboard. ``build(context)`` returns a Panel viewable (also used in notebooks)."""

    slug: str
    title: str
    build: Callable[[Any], Any]
    requires: list[str] = field(default_factory=list)


def is_compatible(requires: Collection[str], provides: Collection[str]) -> tuple[bool, str]:
    """Whether something that ``provides`` these capabilities meets ``requires``; else why not.

    ``requires`` entries may be alternatives written ``"causal_lm|encoder"`` (any one suffices).
    """
    missing = [need for need in requires if not set(need.split("|")) & set(provides)]
    for need in requires:
        unknown = set(need.split("|")) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"Unknown capability {sorted(unknown)[0]!r}; known: {', '.join(CAPABILITIES)}.")
    if not missing:
        return True, ""
    return False, "needs " + " and ".join(" or ".join(CAPABILITIES[c] for c in need.split("|")) for need in missing)
