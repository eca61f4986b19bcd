"""``workbench train dpo|pal``: flags generated from the jobs' typed configs.

(``workbench runs …`` is core: ``workbench.jobs.cli.runs_app``.)
"""
from __future__ import annotations

import typer

from workbench.jobs.commands import job_command
from workbench.training.configs import DPOJobConfig, PALJobConfig

train_app = typer.Typer(help="Start fine-tuning jobs (each runs as a background process with its own run folder).", no_args_is_help=True)
train_app.command("dpo")(job_command("dpo", DPOJobConfig, "Fine-tune with DPO (TRL + PEFT). All options: see docs/finetune.md."))
train_app.command("pal")(job_command("pal", PALJobConfig, "Train a PAL pluralistic reward model (and a Bradley–Terry baseline) on frozen features."))
