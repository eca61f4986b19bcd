"""The job pieces of the UI kit: forms generated from a job's typed config, the runs table,
status lines and cancel/resume, shared by the Fine-tune and Runs tabs. A job's own metric plot is
declared on its job type (``JobType.figure``), not here.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection
from typing import Any

import gradio as gr

from workbench.app import ui
from workbench.app.auth import require_owner
from workbench.errors import ConfigError, WorkbenchError
from workbench.jobs import JobManager, Run, describe_failure
from workbench.jobs.config import literal_choices, unwrap_optional

RUN_COLUMNS = ["id", "type", "status", "progress", "eta_s", "attempts", "created", "output", "error"]


def config_form(cls: type, names: list[str], id_prefix: str, values: dict[str, Any] | None = None) -> list[Any]:
    """Gradio inputs for ``names`` of config dataclass ``cls``: type, default, choices and help
    come from the field, so the form cannot drift from the job's options; ``values`` (an example)
    replace the defaults."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for name in names:
        f, (tp, _) = by_name[name], unwrap_optional(hints[name])
        label, info = name.replace("_", " ").capitalize(), f.metadata.get("help") or None
        default = (values or {}).get(name, None if f.default is dataclasses.MISSING else f.default)
        elem_id = f"{id_prefix}-{name.replace('_', '-')}"
        if name in ("model", "dataset") and not f.metadata.get("new_name"):
            out.append(gr.Dropdown(label=label, info=info, choices=[], value=default, allow_custom_value=True, elem_id=elem_id))
        elif choices := literal_choices(hints[name]):
            out.append(gr.Radio(list(choices), value=default, label=label, info=info, elem_id=elem_id))
        elif tp is bool:
            out.append(gr.Checkbox(value=bool(default), label=label, info=info, elem_id=elem_id))
        elif tp in (int, float):
            out.append(gr.Number(value=default, precision=0 if tp is int else None, label=label, info=info, elem_id=elem_id))
        else:
            out.append(gr.Textbox(value=default, label=label, info=info, elem_id=elem_id))
    return out


def plugin_job_types(manager: JobManager, plugin: str) -> tuple[str, ...]:
    """The job types a plugin registered (``JobType.plugin``): what its tab lists and controls."""
    return tuple(name for name, t in manager.types.items() if t.plugin == plugin)


def listed_runs(manager: JobManager, types: Collection[str] | None = None) -> list[Run]:
    """Every run, newest first, or only those of ``types`` (a tab's own job types)."""
    return [r for r in manager.runs() if types is None or r.manifest.type in types]


def runs_table(manager: JobManager, types: Collection[str] | None = None) -> list[list[Any]]:
    return [[row[c] for c in RUN_COLUMNS] for row in (r.summary_row() for r in listed_runs(manager, types))]


def control(ctx: Any, manager: JobManager, user: str | None, action: str, run_id: str | None,
            types: Collection[str] | None = None) -> str:
    """Cancel or resume a run from the browser (owner only; only a run of ``types`` when given, so a tab acts
    on its own runs alone); returns the message to show."""
    require_owner(ctx.settings, user, f"{action} a run")
    if not run_id:
        raise ConfigError("Select a run first.")
    if types is not None and (kind := manager.get(run_id).manifest.type) not in types:
        raise ConfigError(f"Run {run_id} is a {kind} run; this tab controls only {', '.join(types)} runs.",
                          hint=f"{action.capitalize()} it in the Runs tab.")
    if action == "cancel":
        manager.cancel(run_id)
        return f"Cancel requested for **{ui.md_escape(run_id)}**: it saves a checkpoint and stops."
    manager.resume(run_id)
    return f"Resumed **{ui.md_escape(run_id)}** from its last checkpoint."


def status_markdown(run: Run) -> str:
    m, p = run.manifest, run.progress()
    lines = [f"**{ui.md_escape(m.id)}** ({m.type}) — **{m.status}**, attempt {m.attempts}"]
    if p.get("total"):
        eta = f", ETA {p['eta_s']:.0f} s" if p.get("eta_s") is not None and m.status == "running" else ""
        lines.append(f"{p.get('stage') or 'step'} {p['step']} / {p['total']} ({100 * (p.get('fraction') or 0):.0f} %){eta}"
                     + (f" — {ui.md_escape(p['message'])}" if p.get("message") else ""))
    if m.status == "finished" and m.output:
        lines.append(f"output: `{run.dir / m.output}`" + (f" — in the model catalog as `run:{m.id}`" if m.type == "dpo" else ""))
    if m.status == "failed":
        lines.append(f"**Error:** {ui.md_escape(m.error or 'no error recorded')}")
    lines += [f"⚠ **Warning:** {ui.md_escape(w)}" for w in m.summary.get("warnings") or []]  # e.g. a recommender below popularity
    if m.status == "cancelled" and run.latest_checkpoint():
        lines.append(f"checkpoint `{run.latest_checkpoint().name}` saved: press Resume to continue")
    return "  \n".join(lines)


def log_text(run: Run, lines: int = 40) -> str:
    return describe_failure(run, lines) if run.status == "failed" else run.log_tail(lines)


def run_list(manager: JobManager, selected: str | None = None, types: Collection[str] | None = None) -> tuple[list[list[Any]], Any]:
    """The runs table and the run dropdown (of ``types`` only, when given), keeping ``selected`` (else the
    first active run, else the newest)."""
    runs = listed_runs(manager, types)
    ids = [r.id for r in runs]
    if selected not in ids:
        active = [r.id for r in runs if r.is_active()]
        selected = active[0] if active else (ids[0] if ids else None)
    return runs_table(manager, types), gr.Dropdown(choices=ids, value=selected)


def run_list_controls(prefix: str, *, extra_buttons: tuple[tuple[str, str], ...] = (), max_height: int = 240) -> tuple[Any, ...]:
    """The runs table, the Run dropdown, Cancel, Resume and any ``(label, id suffix)`` extra buttons, ids by ``prefix``."""
    table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True, max_height=max_height, elem_id=f"{prefix}-table")
    with gr.Row(equal_height=True):
        run_id = gr.Dropdown(label="Run", choices=[], scale=4, elem_id=f"{prefix}-run")
        cancel = gr.Button("Cancel", scale=1, elem_id=f"{prefix}-cancel")
        resume = gr.Button("Resume", scale=1, elem_id=f"{prefix}-resume")
        extras = [gr.Button(label, scale=2, elem_id=f"{prefix}-{suffix}") for label, suffix in extra_buttons]
    return table, run_id, cancel, resume, *extras


def control_handler(ctx: Any, manager: JobManager, action: str, types: Collection[str] | None = None) -> Any:
    """The Cancel/Resume click handler: (message, runs table, run dropdown); owner only, runs of ``types`` only (``control``)."""
    def on_control(rid: str | None, request: gr.Request) -> tuple[Any, Any, Any]:
        try:
            msg = control(ctx, manager, request.username, action, rid, types)
        except WorkbenchError as exc:
            return ui.error_markdown(exc), gr.skip(), gr.skip()
        return (msg, *run_list(manager, rid, types))
    on_control.__name__ = f"on_{action}"
    return on_control
