"""Notebook helpers: one shared AppContext per kernel and any plugin's Panel view inline.

The views are the very ones the browser app serves under /panel/<slug>.
"""
from __future__ import annotations

from typing import Any

from workbench.context import AppContext
from workbench.errors import ConfigError
from workbench.plugin_types import PanelView

_context: AppContext | None = None


def context() -> AppContext:
    """The kernel's AppContext (created on first use from WORKBENCH_* settings)."""
    global _context
    if _context is None:
        _context = AppContext()
    return _context


def views() -> dict[str, str]:
    """Slug → title of every Panel view the installed plugins offer."""
    return {c.item.slug: c.item.title for c in context().plugins.collect("panel_views", PanelView, context=context())}


def show(slug: str) -> Any:
    """Build a plugin's Panel view for display in the notebook."""
    import panel as pn  # panel: only in show()

    pn.extension()
    ctx = context()
    for view in (c.item for c in ctx.plugins.collect("panel_views", PanelView, context=ctx)):
        if view.slug == slug:
            return view.build(ctx)
    raise ConfigError(f"No Panel view named {slug!r}.", hint=f"Available: {', '.join(views()) or 'none'}.")
