"""How a command starts a job and follows its run: the job options (flags generated from the
job's config class, ``--config`` YAML, ``--set key=value``), submitting, and printing progress
until the run ends. Every job-submitting plugin's commands are built with ``job_command``.
"""
from __future__ import annotations

import inspect
import json
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from workbench.cli_options import HomeOpt, host_of, settings_for
from workbench.errors import ConfigError, DataError
from workbench.jobs.config import command_from_config, move_into_groups
from workbench.jobs.runner import JobManager, describe_failure
from workbench.plugins import PluginHost

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file with job options (command-line options win).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any job option as key=value (YAML value), repeatable; nested groups as group.key=value.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run until it ends (Ctrl-C stops following, not the run).")]


def manager_for(home: Path | None, plugins: PluginHost | None = None) -> JobManager:
    """A submitting manager whose job types come from ``plugins`` (the host ``main`` built;
    a fresh one only when a command runs outside ``main``, e.g. from a test)."""
    return JobManager(settings_for(home), plugins=plugins if plugins is not None else PluginHost())


def _set(opts: dict[str, Any], key: str, value: Any, nested: Collection[str]) -> None:
    head, dot, rest = key.partition(".")
    if not dot:
        opts[key] = value
        return
    if head not in nested:
        groups = f"only {', '.join(sorted(nested))} options are nested (group.option)" if nested else "this command has no nested options"
        raise ConfigError(f"--set {key}: {groups}.", hint="Use key=value for top-level options.")
    group = opts.setdefault(head, {})
    if not isinstance(group, dict):
        raise ConfigError(f"--set {key}: '{head}' must be a mapping of options.")
    group[rest] = value


def job_options(config: Path | None, sets: list[str] | None, explicit: dict[str, Any],
                nested: dict[str, dict[str, Any]] | None = None, moved: dict[str, str] | None = None) -> dict[str, Any]:
    """Options from a YAML file, then ``--set key=value``, then explicit flags (later wins).

    ``nested`` maps a group name (e.g. ``sae``) to flags that belong inside that group; ``moved``
    (``JobConfig.moved``) puts a file's former flat names (``lora_r``) into their groups first,
    so a flag (``--lora-r``) still wins over an older file instead of disagreeing with it.
    """
    nested = nested or {}
    opts: dict[str, Any] = {}
    if config:
        from workbench.data.readers import read_user_text  # the one safe way to read a user's file

        try:
            loaded = yaml.safe_load(read_user_text(config)) or {}
        except DataError as exc:
            raise ConfigError(f"Cannot read the config file: {exc.message}",
                              hint="Point --config at a YAML file of option: value lines.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"Cannot read the config file {config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config} must hold a mapping of option: value.")
        for group in nested:
            if group in loaded and not isinstance(loaded[group], dict):
                raise ConfigError(f"{config}: '{group}' must be a mapping of options.")
        opts.update(loaded)
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not of the form key=value.", hint="Example: --set learning_rate=0.0005")
        _set(opts, key.strip(), yaml.safe_load(value), nested)
    opts = move_into_groups(opts, moved or {}, "the file's and --set")
    opts.update({k: v for k, v in explicit.items() if v is not None})
    for group, flags in nested.items():
        given = {k: v for k, v in flags.items() if v is not None}
        if given:
            opts[group] = {**(opts.get(group) or {}), **given}
    return opts


def progress_line(run: Any) -> str:
    """``running: sae 120/400 (30%), ETA 12 s``; a run that has reported nothing yet says so."""
    p = run.progress()
    if not p.get("total"):
        return f"{run.status}: " + ("starting" if run.status in ("queued", "running") else "no progress recorded")
    what = f"{p.get('stage') or 'step'} {p['step']}/{p['total']}" + (f" ({p['fraction']:.0%})" if p.get("fraction") is not None else "")
    return (f"{run.status}: {what}" + (f" — {p['message']}" if p.get("message") and p["message"] != p.get("stage") else "")
            + (f", ETA {p['eta_s']:.0f} s" if p.get("eta_s") and run.status == "running" else ""))


def follow(run: Any, on_finished: Callable[[Any], None] | None = None) -> None:
    """Print progress lines until the run ends, then its summary; a failed run exits 1."""
    last = None
    try:
        while run.is_active():
            line = progress_line(run)
            if line != last:
                typer.echo(line)
                last = line
            time.sleep(1.0)
    except KeyboardInterrupt:
        typer.echo(f"stopped following; the run goes on. `workbench runs show {run.id}`")
        return
    m = run.manifest
    typer.echo(f"run {m.id}: {m.status}" + (f", output {run.dir / m.output}" if m.output else ""))
    if m.summary:
        typer.echo(json.dumps(m.summary, indent=1))
    if m.status == "failed":
        typer.echo(describe_failure(run), err=True)
        sys.exit(1)
    if m.status == "finished" and on_finished:
        on_finished(run)


def submit(kind: str, opts: dict[str, Any], home: Path | None, wait: bool,
           on_finished: Callable[[Any], None] | None = None, plugins: PluginHost | None = None) -> Any:
    run = manager_for(home, plugins).submit(kind, opts)
    typer.echo(f"started {run.id} in {run.dir}")
    if wait:
        follow(run, on_finished)
    return run


def job_command(kind: str, config_cls: type, doc: str, *, on_finished: Callable[[Any], None] | None = None) -> Callable[..., None]:
    """A ``workbench … <kind>`` submit command whose flags are generated from ``config_cls``
    (plus ``--config``, ``--set``, ``--wait``, ``--home``)."""

    def body(explicit: dict[str, Any], nested_values: dict[str, dict[str, Any]], *, ctx: typer.Context,
             config: Path | None, set_: list[str] | None, wait: bool, home: Path | None) -> None:
        submit(kind, job_options(config, set_, explicit, nested_values, getattr(config_cls, "moved", {})), home, wait, on_finished,
               host_of(ctx))

    body.__doc__ = doc
    return command_from_config(config_cls, body, extra=[
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
        inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SetOpt),
        inspect.Parameter("wait", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=WaitOpt),
        inspect.Parameter("home", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=HomeOpt),
    ])
