"""The "runs" plugin: one Runs tab where every registered job type is started, followed,
cancelled and resumed, and every run of every type is listed.

Registered through the same hooks as any third-party plugin; Gradio is imported only when
the tab is built, so ``workbench plugins`` stays fast.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import GradioTab


def _build_tab(ctx: Any) -> None:
    from plugins.runs.tab import build_runs_tab

    build_runs_tab(ctx)


@hookimpl
def gradio_tabs(context: Any) -> list[GradioTab]:
    return [GradioTab("Runs", _build_tab, order=65)]
