"""Activation store: residual-stream activations of many texts, cached by content hash."""
from workbench.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cache": ("ActivationCache", "checkpoint_identity"),
    "extract": ("Activations", "RenderedTexts", "chat_texts", "extract_activations", "pair_texts"),
})
