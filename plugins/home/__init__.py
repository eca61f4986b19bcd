"""The "home" plugin: the Models & data tab and the Panel overview.

Registered through the same hooks as any third-party plugin, so the app shell holds no
built-in pages of its own. UI libraries are imported only when a hook is called, which
keeps ``workbench plugins`` and the CLI fast.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import GradioTab, PanelView


def _build_tab(ctx: Any) -> None:
    from plugins.home.tab import build_home_tab  # torch: only in _build_tab()

    build_home_tab(ctx)


def _build_overview(ctx: Any) -> Any:
    from plugins.home.overview import build_overview  # torch: only in _build_overview()

    return build_overview(ctx)


@hookimpl
def gradio_tabs(context: Any) -> list[GradioTab]:
    return [GradioTab("Models & data", _build_tab, order=0)]


@hookimpl
def panel_views(context: Any) -> list[PanelView]:
    return [PanelView("overview", "Workbench overview", _build_overview)]
