"""``workbench runs list|show|cancel|resume``: the runs of every job type, read from their folders."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli_options import HomeOpt, JsonOpt, settings_for, table
from workbench.jobs.commands import WaitOpt, follow
from workbench.jobs.runner import JobManager

runs_app = typer.Typer(help="List, inspect, cancel and resume background runs of every job type.", no_args_is_help=True)
RunIdArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix).")]
RUN_COLUMNS = ["id", "type", "status", "progress", "eta_s", "attempts", "created", "output", "error"]


def _finder(home: Path | None) -> JobManager:
    """Listing, showing, cancelling and resuming read run folders: no job types are needed."""
    return JobManager(settings_for(home))


@runs_app.command("list")
def runs_list(
    type: Annotated[str | None, typer.Option("--type", help="Only runs of this job type.")] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """All runs, newest first, with status, progress and ETA."""
    rows = [r.summary_row() for r in _finder(home).runs(type)]
    typer.echo(json.dumps(rows, indent=1) if as_json else table(rows, RUN_COLUMNS))


@runs_app.command("show")
def runs_show(
    run_id: RunIdArg,
    log: Annotated[int, typer.Option(help="Lines of log tail to print.")] = 20,
    home: HomeOpt = None,
) -> None:
    """Manifest, progress, last metrics, the job's warnings and the log tail of one run."""
    run = _finder(home).get(run_id)
    m = asdict(run.manifest)
    m.pop("error_traceback", None)
    typer.echo(json.dumps({"manifest": m, "progress": run.progress(), "config": run.config}, indent=1, default=str))
    metrics = run.metrics()
    if metrics:
        typer.echo("last metrics: " + json.dumps(metrics[-1]))
    for warning in m["summary"].get("warnings", []):
        typer.echo(f"warning: {warning}")
    typer.echo(f"--- log tail ({run.dir / 'log.txt'}) ---\n{run.log_tail(log)}")


@runs_app.command("cancel")
def runs_cancel(run_id: RunIdArg, wait: WaitOpt = False, home: HomeOpt = None) -> None:
    """Ask a run to save a checkpoint and stop (resume it later)."""
    run = _finder(home).cancel(run_id)
    typer.echo(f"cancel requested for {run.id}")
    if wait:
        typer.echo(f"run {run.id}: {run.wait().status}")


@runs_app.command("resume")
def runs_resume(run_id: RunIdArg, wait: WaitOpt = False, home: HomeOpt = None) -> None:
    """Continue a cancelled or failed run from its last checkpoint."""
    run = _finder(home).resume(run_id)
    typer.echo(f"resumed {run.id}" + (f" from {run.latest_checkpoint().name}" if run.latest_checkpoint() else " from the start (no checkpoint)"))
    if wait:
        follow(run)
