"""What a model can be used for, derived from its architecture adapter and its format.

One function, so a catalog entry (described from files, nothing loaded) and a loaded model
always agree; the vocabulary is ``workbench.plugin_types.MODEL_CAPABILITIES``.
"""
from __future__ import annotations

from workbench.models.adapters import ArchitectureAdapter


def model_capabilities(adapter: ArchitectureAdapter | None, fmt: str, *, chat: bool = False) -> frozenset[str]:
    """Capabilities of a checkpoint of ``fmt`` (hf | peft | gguf) whose family is ``adapter``.

    A PEFT adapter or a GGUF file is a causal LM once loaded (merged / dequantized) but is not a
    starting point for a new fine-tune; only full Hugging Face decoder folders are ``trainable``.
    """
    caps: set[str] = set()
    if fmt == "peft":
        caps |= {"causal_lm", "peft"}
    elif fmt == "gguf":
        caps |= {"causal_lm", "gguf-dequantized"}
    elif adapter is not None:
        caps.add("encoder" if adapter.is_encoder else "causal_lm")
        if not adapter.is_encoder:
            caps.add("trainable")
    if chat:
        caps.add("chat")
    return frozenset(caps)
