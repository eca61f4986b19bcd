"""Plugins' Panel views: collected with usable slugs and mounted under ``/panel/<slug>``.

Its own module so the server (which mounts the views) and the Gradio shell (which links to
them) both depend on it instead of on each other.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount

from workbench.context import AppContext
from workbench.plugin_types import PanelView

log = logging.getLogger(__name__)

PANEL_PREFIX = "/panel"
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")


def panel_url(slug: str) -> str:
    return f"{PANEL_PREFIX}/{slug}"


def collect_panel_views(ctx: AppContext) -> list[PanelView]:
    """Every plugin's Panel views with a usable, unique slug (others are logged and left out)."""
    views: dict[str, PanelView] = {}
    for view in (c.item for c in ctx.plugins.collect("panel_views", PanelView, context=ctx)):
        if not SLUG.fullmatch(view.slug) or view.slug in views:
            log.warning("Panel view %r left out: its slug is not unique or not of the form %s", view.slug, SLUG.pattern)
            continue
        views[view.slug] = view
    return list(views.values())


def _session_builder(view: PanelView, ctx: AppContext) -> Callable[[], Any]:
    """Build the view per browser session; a view that raises shows its error instead."""

    def build() -> Any:
        try:
            return view.build(ctx)
        except Exception as exc:
            log.exception("Panel view %s failed to build", view.slug)
            import panel as pn  # panel: only in build()

            return pn.pane.Alert(f"The view '{view.title}' failed to build: {type(exc).__name__}: {exc}", alert_type="danger")

    return build


def mount_panel_views(app: FastAPI, ctx: AppContext, views: list[PanelView]) -> None:
    from panel.io.fastapi import add_applications  # panel: only in mount_panel_views()

    add_applications(
        {f"/{v.slug}": _session_builder(v, ctx) for v in views},
        app=app, title={f"/{v.slug}": v.title for v in views}, prefix=PANEL_PREFIX,
    )
    # Bokeh mounts its JS at /static, where Gradio serves its own files, while Panel's pages
    # ask for them under the prefix. Move those mounts under /panel so both UIs find theirs.
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, Mount) and (route.path == "/static" or route.path.startswith("/static/")):
            routes[i] = Mount(PANEL_PREFIX + route.path, app=route.app, name=route.name)
