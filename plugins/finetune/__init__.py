"""The "finetune" plugin: DPO and PAL training jobs, the Fine-tune tab and CLI commands.

Registered through the same hooks as any third-party plugin. Heavy imports (torch, TRL,
Gradio) happen only when a hook's result is used, so ``workbench plugins`` stays fast.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import GradioTab


@hookimpl
def job_types() -> dict[str, Any]:
    # entry points load on every command: the job modules (and matplotlib) only when job types are collected
    from plugins.finetune.figures import dpo_figure, pal_figure
    from workbench.training.dpo import DPO_JOB
    from workbench.training.pal_job import PAL_JOB  # torch: only in job_types()

    return {"dpo": dataclasses.replace(DPO_JOB, figure=dpo_figure), "pal": dataclasses.replace(PAL_JOB, figure=pal_figure)}


@hookimpl
def cli_commands(app: Any) -> None:
    from plugins.finetune.cli import train_app  # only the CLI calls this hook: the app, notebooks and jobs never load it

    app.add_typer(train_app, name="train")


def _build_tab(ctx: Any) -> None:
    from plugins.finetune.tab import build_finetune_tab  # gradio: only in _build_tab()

    build_finetune_tab(ctx)


@hookimpl
def gradio_tabs(context: Any) -> list[GradioTab]:
    return [GradioTab("Fine-tune", _build_tab, order=60)]
