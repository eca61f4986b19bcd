"""The small value objects plugins return from hooks, and the one compatibility check.

Like LIT's ``is_compatible``: a tab or view declares what it ``requires`` (capabilities of a
model or a dataset), the host compares that with what a catalog entry, a loaded model or a
stored dataset provides, and offers only what fits, saying why for the rest.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ConfigError

# What a model can be used for (workbench.models.capabilities.model_capabilities derives them).
# The tag a plugin's API route carries when annotator logins may call it (``APIRouter(tags=[FOR_ANNOTATORS])``
# for a whole router, or ``tags=[...]`` on one route); every other route of the ``api_routes`` hook is owner-only.
FOR_ANNOTATORS = "workbench:annotators"

MODEL_CAPABILITIES = {
    "causal_lm": "a decoder language model (logit lens, generation, steering)",
    "encoder": "a sentence/text encoder (embeddings only)",
    "trainable": "a full Hugging Face decoder folder that a fine-tune can start from",
    "peft": "a PEFT adapter (merged into its base for inference)",
    "gguf-dequantized": "a GGUF file, dequantized once to safetensors",
    "chat": "has a chat template",
}
# What a stored dataset holds (``Store.dataset_capabilities`` derives them).
DATASET_CAPABILITIES = {
    "pairs": "prompt + two responses",
    "labeled": "pairs with a recorded winner (chosen/rejected)",
}
# Every known tag (plugins add theirs through the ``capabilities`` hook: ``register_capabilities``).
CAPABILITIES = {**MODEL_CAPABILITIES, **DATASET_CAPABILITIES}


@dataclass(frozen=True)
class Capability:
    """A capability tag a plugin adds to the vocabulary, for a ``model`` or a ``dataset``."""

    tag: str
    description: str
    kind: str = "model"  # "model" | "dataset"


def register_capabilities(capabilities: Collection[Capability]) -> None:
    """Add tags to the vocabulary, all or none; the same tag with another meaning is refused.

    Unknown tags in ``requires`` still raise (a typo must not hide a tab), so a plugin that
    needs a new tag declares it here first.
    """
    for cap in capabilities:
        if cap.kind not in ("model", "dataset") or not cap.tag or "|" in cap.tag:
            raise ConfigError(f"Capability {cap.tag!r} of kind {cap.kind!r}: a tag is a non-empty name without '|', "
                              "of kind 'model' or 'dataset'.")
        known = CAPABILITIES.get(cap.tag)
        kind = "dataset" if cap.tag in DATASET_CAPABILITIES else "model"
        if known is not None and (known, kind) != (cap.description, cap.kind):
            raise ConfigError(f"Capability {cap.tag!r} is already known as a {kind} capability: {known!r}.",
                              hint="Pick another tag name for the plugin's capability.")
    for cap in capabilities:
        (DATASET_CAPABILITIES if cap.kind == "dataset" else MODEL_CAPABILITIES)[cap.tag] = cap.description
        CAPABILITIES[cap.tag] = cap.description


def lazy(target: str) -> Callable[[Any], Any]:
    """``"package.module:function"`` as a function that imports its module on first call.

    Plugins name their UI builders this way, so listing plugins (the CLI, ``workbench
    plugins``) never imports Gradio or Panel.
    """
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"A builder is named 'package.module:function', not {target!r}.")

    def build(context: Any) -> Any:
        return getattr(importlib.import_module(module), name)(context)

    build.__module__, build.__qualname__ = module, name  # so the shell can tell which plugin it belongs to
    return build


@dataclass
class GradioTab:
    """A tab in the browser app. ``build(context)`` is called inside ``gr.Tab(title)``.

    ``build`` is a function or a ``"module:function"`` name (imported when the tab is built).
    ``requires`` names capabilities some model or dataset must have for the tab to be of use;
    the shell shows a tab whose needs nothing meets with a note saying what is missing.
    """

    title: str
    build: Callable[[Any], None] | str
    order: int = 100
    requires: list[str] = field(default_factory=list)  # e.g. ["causal_lm"]
    # Whether annotator logins may use the tab's events; otherwise the shell makes every one owner-only.
    annotators: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.build, str):
            self.build = lazy(self.build)


@dataclass
class PanelView:
    """A Panel dashboard. ``build(context)`` returns a Panel viewable (also used in notebooks)."""

    slug: str
    title: str
    build: Callable[[Any], Any] | str
    requires: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.build, str):
            self.build = lazy(self.build)


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
