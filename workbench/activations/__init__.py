"""Activation store: residual-stream activations of many texts, cached by content hash."""
from workbench.activations.cache import ActivationCache, checkpoint_identity
from workbench.activations.extract import Activations, RenderedTexts, chat_texts, extract_activations, pair_texts

__all__ = [
    "ActivationCache", "Activations", "RenderedTexts", "chat_texts", "checkpoint_identity", "extract_activations", "pair_texts",
]
