"""Activation store: residual-stream activations of many texts, cached by content hash."""
from workbench.lazy import lazy_exports

_EXPORTS = {
    "ActivationCache": "cache",
    "checkpoint_identity": "cache",
    "Activations": "extract",
    "RenderedTexts": "extract",
    "chat_texts": "extract",
    "extract_activations": "extract",
    "pair_texts": "extract",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
