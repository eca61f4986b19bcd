"""The "recsae" plugin: SAE concept dictionaries as background jobs, a ``workbench sae`` CLI
group and the Panel view "RecSAE · concept dictionary".

Registered through the same hooks as any third-party plugin. The compute lives in
``workbench.sae``; torch, sae-lens, Panel and HoloViews are imported only when a hook's
result is used, so ``workbench plugins`` stays fast.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import PanelView


@hookimpl
def job_types() -> dict[str, Any]:
    from workbench.sae.jobs import LM_SAE_JOB, RECSAE_JOB  # imports torch: only when job types are collected

    return {"recsae": RECSAE_JOB, "lm-sae": LM_SAE_JOB}


@hookimpl
def cli_commands(app: Any) -> None:
    from plugins.recsae.cli import sae_app  # the app never calls this hook, so it never loads the CLI modules

    app.add_typer(sae_app, name="sae")


@hookimpl
def panel_views(context: Any) -> list[PanelView]:
    return [PanelView("recsae", "RecSAE · concept dictionary", "plugins.recsae.view:build_view")]
