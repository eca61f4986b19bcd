"""Command-line pieces every job-submitting plugin shares: the common options, reading job
options from ``--config``/``--set``, submitting, and following a run until it ends."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from workbench.errors import ConfigError

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Workbench home folder (default: $WORKBENCH_HOME or the per-user data dir).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file with job options (command-line options win).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any job option as key=value (YAML value), repeatable; nested groups as group.key=value.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run until it ends (Ctrl-C stops following, not the run).")]


def settings_for(home: Path | None) -> Any:
    from workbench.settings import Settings

    return Settings(home=home) if home else Settings()


def manager_for(home: Path | None) -> Any:
    """A submitting manager: job types come from the installed plugins."""
    from workbench.context import AppContext
    from workbench.jobs import JobManager

    return JobManager.for_context(AppContext(settings_for(home)))


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
                nested: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Options from a YAML file, then ``--set key=value``, then explicit flags (later wins).

    ``nested`` maps a group name (e.g. ``sae``) to flags that belong inside that group.
    """
    nested = nested or {}
    opts: dict[str, Any] = {}
    if config:
        try:
            loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
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
    opts.update({k: v for k, v in explicit.items() if v is not None})
    for group, flags in nested.items():
        given = {k: v for k, v in flags.items() if v is not None}
        if given:
            opts[group] = {**(opts.get(group) or {}), **given}
    return opts


def progress_line(run: Any) -> str:
    p = run.progress()
    what = p.get("message") or f"step {p.get('step', 0)}/{p.get('total', '?')}"
    return (f"{run.status}: {what}" + (f" {p['fraction']:.0%}" if p.get("message") and p.get("fraction") is not None else "")
            + (f", ETA {p['eta_s']:.0f} s" if p.get("eta_s") else ""))


def follow(run: Any, on_finished: Callable[[Any], None] | None = None) -> None:
    """Print progress lines until the run ends, then its summary; a failed run exits 1."""
    from workbench.jobs import describe_failure

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
           on_finished: Callable[[Any], None] | None = None) -> Any:
    run = manager_for(home).submit(kind, opts)
    typer.echo(f"started {run.id} in {run.dir}")
    if wait:
        follow(run, on_finished)
    return run
