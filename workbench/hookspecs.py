"""Every extension point of the workbench, one documented function each.

Plugins implement these with ``@hookimpl``; first-party plugins use exactly the same
hooks, discovered through the ``workbench.plugins`` entry-point group.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from workbench.context import AppContext
    from workbench.models.adapters import ArchitectureAdapter
    from workbench.plugin_types import Capability, GradioTab, PanelView

hookspec = pluggy.HookspecMarker("workbench")
hookimpl = pluggy.HookimplMarker("workbench")


@hookspec
def gradio_tabs(context: AppContext) -> list[GradioTab]:
    """Tabs to add to the browser app; each builds its components inside the app's Blocks."""


@hookspec
def panel_views(context: AppContext) -> list[PanelView]:
    """Panel/HoloViews views, served under /panel/<slug> and usable in notebooks."""


@hookspec
def api_routes(context: AppContext) -> list[APIRouter]:
    """FastAPI routers to mount on the app's server (under their own prefix, before Gradio's catch-all).

    Every route is owner-only (403 for an annotator login) unless it carries the tag
    ``workbench.plugin_types.FOR_ANNOTATORS`` (``APIRouter(tags=[FOR_ANNOTATORS])`` for a whole
    router, or ``tags=[FOR_ANNOTATORS]`` on one route); such a route must check sessions and
    roles itself (``workbench.app.auth``). Plain Starlette routes and mounts are left out.
    """


@hookspec
def cli_commands(app: typer.Typer) -> None:
    """Add subcommands or sub-apps to the ``workbench`` command line."""


@hookspec
def job_types() -> dict[str, Any]:
    """Background job kinds this plugin can run, by name."""


@hookspec
def architecture_adapters() -> list[ArchitectureAdapter]:
    """ArchitectureAdapter objects for model families the core does not know.

    Called once when the plugin is registered; the families then load like built-in ones. A
    family or model type that already has a different adapter makes the plugin broken.
    """


@hookspec
def capabilities() -> list[Capability]:
    """Capability tags this plugin's tabs and views may ``require`` beyond the core vocabulary.

    Called once when the plugin is registered; a tag the core or another plugin already
    defines with a different meaning makes the plugin broken.
    """
