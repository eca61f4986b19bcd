"""The "runs" plugin: one Runs tab where every registered job type is started, followed,
cancelled and resumed, and every run of every type is listed.

Registered through the same hooks as any third-party plugin; Gradio is imported only when
the tab is built, so ``workbench plugins`` stays fast.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import GradioTab


@hookimpl
def gradio_tabs(context: Any) -> list[GradioTab]:
    return [GradioTab("Runs", "plugins.runs.tab:build_runs_tab", order=65)]
