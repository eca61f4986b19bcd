"""Preference data: the canonical types, readers for common formats, and exporters."""
from workbench.data.types import Judgment, Message, Outcome, Pair, Prompt

__all__ = ["Judgment", "Message", "Outcome", "Pair", "Prompt"]
