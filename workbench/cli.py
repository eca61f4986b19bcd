"""The ``workbench`` command line (typer). Plugins add subcommands through ``cli_commands``.

Every WorkbenchError is printed as one clear message and the process exits with code 2.
The app context's core imports no torch, scipy, transformers or Gradio (models load through its
model service on first use), so only ``serve`` imports the server inside itself; the quick
commands stay quick, which tests/test_import_boundaries.py checks.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
import webbrowser
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli_options import DatabaseUrlOpt, HomeOpt, context_for, table
from workbench.compare_cli import compare
from workbench.data.exporters import export_pairs
from workbench.data.readers import QUALITY_CHECKS, detect_file_format, read_pairs
from workbench.db_cli import db_app
from workbench.errors import WorkbenchError
from workbench.jobs.cli import runs_app
from workbench.models.embedded import ensure_demo_model
from workbench.plugins import PluginHost
from workbench.settings import parse_auth

app = typer.Typer(help="Preference Workbench: label, inspect, steer and fine-tune preferences in local models.", no_args_is_help=True)
data_app = typer.Typer(help="Import, list, show and export preference datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.command("compare")(compare)
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")



@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind. Non-loopback addresses require --auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the one server (Gradio + Panel).")] = 7860,
    auth: Annotated[str | None, typer.Option(help="user:password required to use the app (or WORKBENCH_AUTH).")] = None,
    model: Annotated[str | None, typer.Option(help="Model to load at start (catalog name or path).")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Allow pickle (.bin/.pt) weights: they can run code.")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow custom model code shipped in a checkpoint.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16.")] = "auto",
    open_browser: Annotated[bool, typer.Option("--open", help="Open the app in the default web browser once it answers (as Jupyter does).")] = False,
    home: HomeOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Start the browser app (Gradio tabs + Panel dashboards) on one port."""
    from workbench.app.server import serve as run_server  # gradio, panel and uvicorn: only the server pays for them

    ctx = context_for(
        None, home, host=host, port=port, auth=parse_auth(auth) if auth else None,
        allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, device=device, dtype=dtype, database_url=database_url,
    )
    ctx.settings.check_bind()
    ctx.ensure_demo_dataset()
    if model:
        ctx.activate(model)
    if open_browser:
        open_when_listening(host, port)
    run_server(ctx)


def open_when_listening(host: str, port: int, timeout_s: float = 300.0) -> threading.Thread:
    """Open ``http://host:port/`` in the user's browser ($BROWSER is honoured) once the port accepts connections."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/"

    def wait_then_open() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection((shown, port), timeout=1).close()
            except OSError:
                time.sleep(0.25)
                continue
            typer.echo(f"opening {url} in your browser")
            webbrowser.open(url)
            return

    thread = threading.Thread(target=wait_then_open, name="open-browser", daemon=True)
    thread.start()
    return thread


@app.command()
def setup(home: HomeOpt = None) -> None:
    """Prepare the embedded demo model (GGUF → safetensors, once) and the demo dataset."""
    ctx = context_for(None, home)
    path = ensure_demo_model(ctx.settings)
    typer.echo(f"demo model: {path}")
    typer.echo(f"demo dataset: {ctx.ensure_demo_dataset()} ({ctx.store.count_pairs('demo')} pairs)")


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    home: HomeOpt = None,
) -> None:
    """List loadable local checkpoints: embedded, workbench home, model roots, HF cache, runs."""
    rows = [e.to_row() for e in context_for(None, home).catalog()]
    typer.echo(json.dumps(rows, indent=1) if as_json else table(rows, ["name", "family", "params", "format", "status", "capabilities", "source", "path", "error"]))


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List installed plugins with versions, the hooks they implement and any load error."""
    rows = [asdict(i) for i in PluginHost().infos]
    for r in rows:
        r["hooks"] = ",".join(r["hooks"])
    typer.echo(json.dumps(rows, indent=1) if as_json else table(rows, ["name", "version", "status", "hooks", "module", "error"]))


@data_app.command("import")
def data_import(
    path: Annotated[Path, typer.Argument(help="JSONL(.gz), JSON, CSV, Parquet file or a datasets.save_to_disk folder.")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the file name).")] = None,
    format: Annotated[str, typer.Option("--format", help="auto, trl, hh-rlhf, sharegpt, alpacaeval, unlabeled.")] = "auto",
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing dataset of the same name.")] = False,
    allow: Annotated[list[str] | None, typer.Option("--allow", help=f"Keep records that look like mistakes, by kind (repeatable): {', '.join(QUALITY_CHECKS)}.")] = None,
    home: HomeOpt = None,
) -> None:
    """Import a pair dataset into the workbench store (all or nothing)."""
    ctx = context_for(None, home)
    stored = ctx.import_dataset(path, name=name, format=format, replace=replace, allow=allow or ())
    typer.echo(f"imported {ctx.store.count_pairs(stored)} pairs as '{stored}'")


@data_app.command("list")
def data_list(home: HomeOpt = None) -> None:
    """List imported datasets with the record format they were read as (detected at import)."""
    rows = context_for(None, home).store.list_datasets()
    typer.echo(table(rows, ["name", "n_pairs", "format", "source"]))


@data_app.command("show")
def data_show(
    name: Annotated[str, typer.Argument(help="Dataset name, or a file or folder to preview without importing it.")],
    limit: Annotated[int, typer.Option(help="How many pairs to print.")] = 5,
    offset: Annotated[int, typer.Option(help="Start at this pair.")] = 0,
    format: Annotated[str, typer.Option("--format", help="For a file: auto, trl, hh-rlhf, sharegpt, alpacaeval, unlabeled.")] = "auto",
    home: HomeOpt = None,
) -> None:
    """Print pairs of a dataset as JSON lines; for a file, first what an import would store (format, counts)."""
    ctx = context_for(None, home)
    path = Path(name).expanduser()
    if not any(d["name"] == name for d in ctx.store.list_datasets()) and path.exists():
        pairs = read_pairs(path, format=format)
        labels = Counter(p.preferred or "unlabeled" for p in pairs)
        typer.echo(f"file: {path.resolve()} (not imported)")
        typer.echo(f"format: {detect_file_format(path) + ' (detected)' if format == 'auto' else format}")
        typer.echo(f"pairs: {len(pairs)} ({', '.join(f'{k} {labels[k]}' for k in ('A', 'B', 'tie', 'unlabeled') if labels[k])}); "
                   f"prompts: {len({p.prompt_text for p in pairs})}")
        typer.echo(f"import: workbench data import {path} --name {path.name.split('.')[0]}")
        shown = pairs[offset:offset + limit]
    else:
        shown = ctx.store.get_pairs(name, offset=offset, limit=limit)
    for pair in shown:
        typer.echo(json.dumps(pair.to_dict(), ensure_ascii=False))


@data_app.command("export")
def data_export(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    out: Annotated[Path, typer.Argument(help="Output file or folder.")],
    format: Annotated[str, typer.Option("--format", help="trl-jsonl, trl-parquet or hf-dataset.")] = "trl-jsonl",
    home: HomeOpt = None,
) -> None:
    """Export a labelled dataset for trainers (TRL DPO columns)."""
    report = export_pairs(context_for(None, home).store.get_pairs(name), out, format)
    typer.echo(json.dumps(report))


def main() -> None:
    """Entry point: plugins' subcommands are added, then errors become clean exits."""
    host = PluginHost()
    host.collect("cli_commands", None, app=app)
    try:
        code = app(standalone_mode=False, obj=host)  # commands use this host instead of loading entry points again
        if isinstance(code, int) and code:  # a typer.Exit(code) comes back as the return value here
            sys.exit(code)
    except WorkbenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # usage errors arrive here with standalone_mode=False
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):  # click's, or typer's own (typer now vendors click)
            show()
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
