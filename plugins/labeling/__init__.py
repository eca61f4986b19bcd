"""The labeling plugin: the Labeling tab (blind A/B with keyboard shortcuts), the vote HTTP
API and the fast keyboard page on it (``/label/<session>``), the pair-generation job and the
``workbench label`` commands.

UI libraries are imported only when a hook is called, which keeps the CLI fast.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import GradioTab


def _build_tab(ctx: Any) -> None:
    from plugins.labeling.tab import build_labeling_tab  # gradio: only when the app builds its tabs

    build_labeling_tab(ctx)


@hookimpl
def gradio_tabs(context: Any) -> list[GradioTab]:
    return [GradioTab("Labeling", _build_tab, order=10, requires=["pairs"], annotators=True)]


@hookimpl
def api_routes(context: Any) -> list[Any]:
    # FastAPI and the store's statistics: only a server calls this hook, never the CLI's quick commands
    from workbench.labeling.api import build_router
    from workbench.labeling.page import build_page_router

    return [build_router(lambda: context.labeling, context.settings), build_page_router()]


@hookimpl
def job_types() -> dict[str, Any]:
    # entry points load on every command: the job module only when job types are collected
    from workbench.labeling.generate import GENERATE_PAIRS

    return {GENERATE_PAIRS.name: GENERATE_PAIRS}


@hookimpl
def cli_commands(app: Any) -> None:
    from plugins.labeling.cli import label_app  # only the CLI calls this hook: the app, notebooks and jobs never load it

    app.add_typer(label_app, name="label")
