"""``workbench train dpo|pal`` and ``workbench runs list|show|cancel|resume``."""
from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from workbench.jobs.cli import ConfigOpt, HomeOpt, SetOpt, WaitOpt, follow, job_options, manager_for, submit

train_app = typer.Typer(help="Start fine-tuning jobs (each runs as a background process with its own run folder).", no_args_is_help=True)
runs_app = typer.Typer(help="List, inspect, cancel and resume training runs.", no_args_is_help=True)

@train_app.command("dpo")
def train_dpo(
    model: Annotated[str | None, typer.Option(help="Catalog name or path of the model to train (default: the demo model).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Stored dataset name or pair file (TRL, HH-RLHF, labeling export…).")] = None,
    method: Annotated[str | None, typer.Option(help="lora (PEFT adapter) or full.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (0 = use num_epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per device per step.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    beta: Annotated[float | None, typer.Option(help="DPO beta (strength of the KL anchor).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Max tokens of prompt + response.")] = None,
    precompute_ref_log_probs: Annotated[bool | None, typer.Option("--precompute-ref-log-probs/--no-precompute-ref-log-probs", help="Compute reference log-probs once before training.")] = None,
    num_processes: Annotated[int | None, typer.Option(help="Processes for accelerate launch (GPUs, or CPU processes with gloo).")] = None,
    distributed: Annotated[str | None, typer.Option(help="ddp, deepspeed or fsdp (with num_processes > 1).")] = None,
    config: ConfigOpt = None, set_: SetOpt = None, wait: WaitOpt = False, home: HomeOpt = None,
) -> None:
    """Fine-tune with DPO (TRL + PEFT). All options: see docs/finetune.md."""
    explicit = dict(model=model, dataset=dataset, method=method, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                    beta=beta, max_length=max_length, precompute_ref_log_probs=precompute_ref_log_probs,
                    num_processes=num_processes, distributed=distributed)
    submit("dpo", job_options(config, set_, explicit), home, wait)


@train_app.command("pal")
def train_pal(
    dataset: Annotated[str | None, typer.Option(help="Pairs JSONL with a user id per pair (see docs/pal_persona.md).")] = None,
    model: Annotated[str | None, typer.Option(help="Frozen feature model: catalog name or path (default: the sentence embedder).")] = None,
    variant: Annotated[str | None, typer.Option(help="A (ideal point) or B (mixture of prompt mappings).")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Number of prototypes / preference groups.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    config: ConfigOpt = None, set_: SetOpt = None, wait: WaitOpt = False, home: HomeOpt = None,
) -> None:
    """Train a PAL pluralistic reward model (and a Bradley–Terry baseline) on frozen features."""
    submit("pal", job_options(config, set_, dict(dataset=dataset, model=model, variant=variant, k=k, epochs=epochs)), home, wait)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


@runs_app.command("list")
def runs_list(
    type: Annotated[str | None, typer.Option("--type", help="Only runs of this job type.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    home: HomeOpt = None,
) -> None:
    """All runs, newest first, with status, progress and ETA."""
    rows = [r.summary_row() for r in manager_for(home).runs(type)]
    typer.echo(json.dumps(rows, indent=1) if as_json else _table(rows, ["id", "type", "status", "progress", "eta_s", "attempts", "created", "output", "error"]))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    log: Annotated[int, typer.Option(help="Lines of log tail to print.")] = 20,
    home: HomeOpt = None,
) -> None:
    """Manifest, progress, last metrics and log tail of one run."""
    from dataclasses import asdict

    from workbench.training.dpo import falling_logps_warning

    run = manager_for(home).get(run_id)
    m = asdict(run.manifest)
    m.pop("error_traceback", None)
    typer.echo(json.dumps({"manifest": m, "progress": run.progress(), "config": run.config}, indent=1, default=str))
    metrics = run.metrics()
    if metrics:
        typer.echo("last metrics: " + json.dumps(metrics[-1]))
    warning = falling_logps_warning(metrics)
    if warning:
        typer.echo(f"warning: {warning}")
    typer.echo(f"--- log tail ({run.dir / 'log.txt'}) ---\n{run.log_tail(log)}")


@runs_app.command("cancel")
def runs_cancel(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")], wait: WaitOpt = False, home: HomeOpt = None) -> None:
    """Ask a run to save a checkpoint and stop (resume it later)."""
    run = manager_for(home).cancel(run_id)
    typer.echo(f"cancel requested for {run.id}")
    if wait:
        typer.echo(f"run {run.id}: {run.wait().status}")


@runs_app.command("resume")
def runs_resume(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")], wait: WaitOpt = False, home: HomeOpt = None) -> None:
    """Continue a cancelled or failed run from its last checkpoint."""
    run = manager_for(home).resume(run_id)
    typer.echo(f"resumed {run.id}" + (f" from {run.latest_checkpoint().name}" if run.latest_checkpoint() else " from the start (no checkpoint)"))
    if wait:
        follow(run)
