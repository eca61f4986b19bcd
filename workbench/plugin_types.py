"""The small value objects plugins return from hooks (LIT-style declared requirements)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GradioTab:
    """A tab in the browser app. ``build(context)`` is called inside ``gr.Tab(title)``."""

    title: str
    build: Callable[[Any], None]
    order: int = 100
    requires: list[str] = field(default_factory=list)  # e.g. ["causal_lm"], ["pairs"]


@dataclass
class PanelView:
    """A Panel dashboard. ``build(context)`` returns a Panel viewable (also used in notebooks)."""

    slug: str
    title: str
    build: Callable[[Any], Any]
    requires: list[str] = field(default_factory=list)
