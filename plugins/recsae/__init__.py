"""The "recsae" plugin: SAE concept dictionaries as background jobs, a ``workbench sae`` CLI
group and the Panel view "RecSAE · concept dictionary".

Registered through the same hooks as any third-party plugin. The compute lives in
``workbench.sae``; torch, sae-lens, Panel and HoloViews are imported only when a hook's
result is used, so ``workbench plugins`` stays fast.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import PanelView


@hookimpl
def job_types() -> dict[str, Any]:
    from workbench.jobs.registry import JobExample  # the job system: only when job types are collected, like the jobs
    from workbench.sae.jobs import LM_SAE_JOB, RECSAE_JOB  # imports torch: only when job types are collected

    shipped = JobExample("Use the shipped synthetic dataset", _synthetic_example)
    return {"recsae": dataclasses.replace(RECSAE_JOB, example=shipped), "lm-sae": LM_SAE_JOB}


def _synthetic_example() -> dict[str, Any]:
    """RecSAE's ready run: the synthetic dataset shipped in the package (8 planted music genres), wherever it is installed."""
    from workbench.sae.synthetic import synthetic_paths  # numpy: not when the entry point loads

    interactions, items, _ = synthetic_paths()
    return {"interactions": str(interactions), "attributes": str(items)}


@hookimpl
def cli_commands(app: Any) -> None:
    from plugins.recsae.cli import sae_app  # the app never calls this hook, so it never loads the CLI modules

    app.add_typer(sae_app, name="sae")


@hookimpl
def panel_views(context: Any) -> list[PanelView]:
    return [PanelView("recsae", "RecSAE · concept dictionary", "plugins.recsae.view:build_view")]
