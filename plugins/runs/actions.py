"""What the Runs tab does, without Gradio: which options each job's form shows, starting a
run from browser values (owner only, every path confined), and a run's plots.

The form is generated from the job type's ``config_cls``; options the form cannot show as
one widget (mappings, lists) and job types without a ``config_cls`` take a YAML box. A job's
ready example and its own plot come from its ``JobType`` declaration: no job is known by name here.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from workbench.app import ui
from workbench.app.auth import require_owner
from workbench.errors import ConfigError, WorkbenchError
from workbench.jobs import JobManager, Run
from workbench.jobs.config import literal_choices, unwrap_optional
from workbench.jobs.registry import JobType, check_options

SCALARS = (str, int, float, bool)
MAX_YAML_CHARS = 20_000
FLAG = re.compile(r"--([a-z][a-z0-9-]*)")  # a CLI flag in a job's error or hint


def form_fields(job_type: JobType) -> list[str]:
    """The options shown as one widget each: the config's scalar fields, in declaration order.

    A number whose default is "none" stays in the YAML box: Gradio's number box sends 0 when
    left empty, which would silently replace "the default" (e.g. a layer that defaults to the middle one).
    """
    cls = job_type.config_cls
    if cls is None:
        return []
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp, optional = unwrap_optional(hints[f.name])
        if f.init and (tp in SCALARS or literal_choices(tp)) and not (optional and tp in (int, float) and f.default is None):
            out.append(f.name)
    return out


def yaml_fields(job_type: JobType) -> list[str]:
    """Options only the YAML box can set (all of them when the job has no typed config)."""
    cls = job_type.config_cls
    return [] if cls is None else [f.name for f in dataclasses.fields(cls) if f.init and f.name not in form_fields(job_type)]


def example_values(job_type: JobType) -> dict[str, Any]:
    """The option values of the ready run the job type declares (``JobType.example``; {} when none),
    checked against its options so a plugin's typo is named instead of filling nothing."""
    if job_type.example is None:
        return {}
    values = job_type.example.values()
    owner = f"job type {job_type.name!r} (plugin {job_type.plugin or 'registered directly'})"
    if not isinstance(values, dict):
        raise ConfigError(f"The example of {owner} is a {type(values).__name__}, not option: value pairs.",
                          hint="Make JobExample.values return a dict of option values.")
    if job_type.config_cls is not None:
        check_options(values, [f.name for f in dataclasses.fields(job_type.config_cls) if f.init], f"{owner} example")
    return values


def form_hint(job_type: JobType, example: dict[str, Any]) -> str:
    """What the form says above its fields: the job's description and the ready example it declares, if any."""
    text = ui.md_escape(job_type.description or job_type.name)
    if job_type.example is not None and example:
        shown = ", ".join(f"{ui.md_escape(k)} `{ui.md_escape(str(v))}`" for k, v in example.items())
        text += f"  \nReady example: {shown} (**{ui.md_escape(job_type.example.label)}** fills them in)."
    if job_type.config_cls is None:
        text += "  \nThis job type declares no typed options: write them in the YAML box."
    return text


def example_yaml(job_type: JobType, example: dict[str, Any] | None = None) -> str:
    """An example's options that have no field of their own, as the YAML box's text (by default the
    config's ``JobConfig.example``, which the form starts with)."""
    example = getattr(job_type.config_cls, "example", {}) if example is None else example
    rest = {k: v for k, v in example.items() if k not in form_fields(job_type)}
    return yaml.safe_dump(rest, sort_keys=False, allow_unicode=True, width=100) if rest else ""


def in_form_words(exc: WorkbenchError, names: list[str]) -> WorkbenchError:
    """The job's error with its CLI flags (``--model``) named as this form's controls: the field's
    label, or the YAML box for an option without a field."""
    def control(match: re.Match[str]) -> str:
        option = match.group(1).replace("-", "_")
        return f"the “{option.replace('_', ' ').capitalize()}” field" if option in names else f"“{option}:” in More options (YAML)"

    exc.message = FLAG.sub(control, exc.message)
    exc.hint = FLAG.sub(control, exc.hint) if exc.hint else exc.hint
    exc.args = (f"{exc.message}\n  → {exc.hint}" if exc.hint else exc.message,)
    return exc


def parse_yaml(text: str | None) -> dict[str, Any]:
    """The YAML box as a mapping ({} when empty)."""
    if not (text or "").strip():
        return {}
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(f"The options box holds {len(text):,} characters; at most {MAX_YAML_CHARS:,} are accepted.")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"The options box is not valid YAML: {str(exc).splitlines()[0]}.",
                          hint="Write one option per line, e.g. `sae: {k: 8}`.") from None
    if not isinstance(data, dict):
        raise ConfigError("The options box must hold option: value lines.", hint="E.g. `sae: {k: 8}`.")
    return data


def _confine(ctx: Any, key: str, value: Any, models: set[str], shipped: frozenset[Path]) -> Any:
    """A browser-given value that names a file must lie in the data roots (models: model or data roots);
    a file the job's declared example names (``shipped``: data a plugin ships read-only) is allowed."""
    if isinstance(value, dict):
        return {k: _confine(ctx, f"{key}.{k}", v, models, shipped) for k, v in value.items()}
    if isinstance(value, list):
        return [_confine(ctx, f"{key}[{i}]", v, models, shipped) for i, v in enumerate(value)]
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if value in models or not ("/" in value or "\\" in value or value.startswith("~") or path.exists()):
        return value  # a catalog name, a stored dataset's name or plain text
    if not path.is_absolute():  # starts from the data folders the UI names, never the server's working folder
        return str(ctx.check_data_path(path))
    resolved = path.resolve()
    if resolved in shipped:
        return str(resolved)
    if key.split(".")[-1] == "model":
        roots = [Path(r).expanduser().resolve() for r in ctx.settings.model_roots]
        if any(resolved == r or r in resolved.parents for r in roots):
            return str(resolved)
    return str(ctx.check_data_path(resolved))


def shipped_files(job_type: JobType) -> frozenset[Path]:
    """The files the job type's declared example names (absolute paths of existing files): the only paths
    a form may use outside the data folders. A broken example allows none and blocks no start."""
    try:
        values = example_values(job_type)
    except WorkbenchError:
        return frozenset()
    paths = (Path(v) for v in values.values() if isinstance(v, str) and v)
    return frozenset(p.resolve() for p in paths if p.is_absolute() and p.is_file())


def options_from_form(ctx: Any, values: dict[str, Any], extra_yaml: str | None,
                      shipped: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """Form values (empty ones mean "the default") plus the YAML box, every file path confined but
    the ``shipped`` files of the job's declared example (``shipped_files``)."""
    options = {k: v for k, v in values.items() if v not in (None, "")}
    extra = parse_yaml(extra_yaml)
    both = sorted(set(options) & set(extra))
    if both:
        raise ConfigError(f"Option(s) {', '.join(both)} are set both in the form and in the options box.", hint="Keep one of the two.")
    models = set(ui.model_choices(ctx))
    return {k: _confine(ctx, k, v, models, shipped) for k, v in {**options, **extra}.items()}


def start(ctx: Any, manager: JobManager, user: str | None, kind: str, values: dict[str, Any], extra_yaml: str | None) -> Run:
    """Start a run of job type ``kind``: owner only; the job's own validation runs before any run exists."""
    require_owner(ctx.settings, user, "start a job")
    return manager.submit(kind, options_from_form(ctx, values, extra_yaml, shipped_files(manager.job_type(kind))))


def metrics_figure(run: Run, job_type: JobType | None) -> Any:
    """The job type's own figure when it declares one (``JobType.figure``), else every numeric metric by
    step (or by row when the job logs no step), one panel per metric; ``job_type`` is None for a run
    whose job type is no longer registered."""
    rows = run.metrics()
    if job_type is not None and job_type.figure is not None:
        return job_type.figure(rows)
    # "time" is the wall-clock stamp log_metrics adds to every row: an axis, not a metric
    keys = [k for k in dict.fromkeys(k for r in rows for k in r)
            if k not in ("step", "epoch", "time") and any(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) for r in rows)]
    if not keys:
        return None
    keys = keys[:6]
    fig = Figure(figsize=(3.2 * len(keys), 2.8))  # no pyplot: its global figure list is not safe across server threads
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(r.get("step", i), r[key]) for i, r in enumerate(rows) if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        ax.plot(*zip(*pts, strict=True), marker=".")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step" if any("step" in r for r in rows) else "logged row")
        ax.set_ylabel(key.split("/")[-1], fontsize=8)
    fig.tight_layout()
    return fig
