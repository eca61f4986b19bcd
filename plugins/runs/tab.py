"""The Runs tab: a start form per registered job type, one table of all runs, and the selected
run's status (stage, step/total, ETA), metrics plot and log tail, refreshed by a timer.

State lives in the run folders, so a reload lists the runs again and reselects the newest
active one. Every handler checks the owner role on the server: a hidden button is not a permission.
"""
from __future__ import annotations

import time
from typing import Any

import gradio as gr

from plugins.runs import actions
from workbench.app import job_ui, ui
from workbench.app.auth import require_owner
from workbench.app.job_ui import config_form
from workbench.app.ui import error_markdown, md_escape
from workbench.errors import WorkbenchError
from workbench.jobs import JobManager
from workbench.jobs.registry import JobType

REFRESH_S = 2.0
# A link to a run (``/?tab=runs&run=<id>``, e.g. from the Labeling tab's loop panel) opens this tab on load;
# on_load selects the run. Tabs past the bar's width sit in its overflow menu, opened first.
OPEN_FROM_ADDRESS_JS = """() => {
  if (new URLSearchParams(window.location.search).get("tab") !== "runs") return;
  const find = () => [...document.querySelectorAll("[role=tab]")].find((b) => b.textContent.trim() === "Runs");
  let tab = find();
  if (!tab) { document.querySelector(".overflow-menu > button")?.click(); tab = find(); }
  tab?.click();
}"""
PLOT_EVERY_S = 10.0


def slug(name: str) -> str:
    """A job type's name as an element-id part (``myplugin.my-job`` → ``myplugin-my-job``)."""
    return "".join(c if c.isalnum() else "-" for c in name)


def _form(ctx: Any, job_type: JobType) -> tuple[gr.Button, list[str], list[Any], gr.Textbox]:
    kind = slug(job_type.name)
    try:
        ready = actions.example_values(job_type)  # the declared ready run: values only known now, e.g. installed data
        problem = ""
    except WorkbenchError as exc:  # a plugin's bad example costs its button, not the tab
        ready, problem = {}, "  \n" + error_markdown(exc)
    gr.Markdown(actions.form_hint(job_type, ready) + problem, elem_id=f"runs-{kind}-hint")
    names = actions.form_fields(job_type)
    example = getattr(job_type.config_cls, "example", {})  # a ready run: the form starts filled with it
    with gr.Row():
        inputs = config_form(job_type.config_cls, names, f"runs-{kind}", example) if names else []
    more = actions.yaml_fields(job_type)
    extra = gr.Textbox(value=actions.example_yaml(job_type), label="More options (YAML)", lines=3, max_lines=14,
                       elem_id=f"runs-{kind}-yaml",
                       info=("Options without a field above: " + ", ".join(more)) if more else "All of this job's options, as option: value lines.")
    with gr.Row():
        if ready:
            _example_button(job_type, ready, names, inputs, extra)
        start = gr.Button(f"Start {job_type.name} run", variant="primary", elem_id=f"runs-{kind}-start")
    # a name the job creates (new_name) is a text box, not a list to refill
    fill = [(c, n) for c, n in zip(inputs, names, strict=True) if n in ("model", "dataset") and isinstance(c, gr.Dropdown)]
    if fill:
        def choices() -> Any:
            out = []
            for _, name in fill:
                options = ui.model_choices(ctx) if name == "model" else ui.dataset_choices(ctx)
                out.append(gr.Dropdown(choices=options))
            return out if len(out) > 1 else out[0]  # Gradio takes a one-item list as the value of a single output

        gr.on(triggers=None, fn=choices, outputs=[c for c, _ in fill])
    return start, names, inputs, extra


def _example_button(job_type: JobType, ready: dict[str, Any], names: list[str], inputs: list[Any], extra: gr.Textbox) -> None:
    """The job's "use the example" button: its values go to their fields, the rest to the YAML box."""
    fields = [inputs[names.index(k)] for k in ready if k in names]
    values = [v for k, v in ready.items() if k in names]
    rest = actions.example_yaml(job_type, ready)
    outputs, values = (fields + [extra], values + [rest]) if rest else (fields, values)
    button = gr.Button(job_type.example.label, elem_id=f"runs-{slug(job_type.name)}-example")
    button.click(lambda: values if len(values) > 1 else values[0], outputs=outputs)  # Gradio takes a one-item list as one value


def build_runs_tab(ctx: Any) -> None:
    manager = JobManager.for_context(ctx)
    gr.Markdown("Every background job of every plugin: start one from its form, follow it below, cancel or resume it. "
                "Runs are processes with their own folder under the runs directory; they keep going when the page is closed.")
    forms: list[tuple[str, gr.Button, list[str], list[Any], gr.Textbox]] = []
    with gr.Tabs():
        for name, job_type in sorted(manager.types.items()):
            with gr.Tab(name, elem_id=f"runs-tab-{slug(name)}"):
                forms.append((name, *_form(ctx, job_type)))
    start_status = gr.Markdown(elem_id="runs-start-status")

    gr.Markdown("### All runs")
    table, run_id, cancel, resume = job_ui.run_list_controls("runs", max_height=260)
    status = gr.Markdown(elem_id="runs-status")
    plot = gr.Plot(label="Metrics", show_label=False, elem_id="runs-plot")  # the label badge covered the first title
    log = gr.Textbox(label="Log tail", lines=12, max_lines=12, autoscroll=True, elem_id="runs-log")
    view = [status, plot, log]

    def listing(user: str | None, selected: str | None = None) -> tuple[Any, Any]:
        require_owner(ctx.settings, user, "see the runs")
        return job_ui.run_list(manager, selected)

    def show(rid: str | None, request: gr.Request) -> tuple[Any, ...]:
        try:
            require_owner(ctx.settings, request.username, "see the runs")
            if not rid:
                return "No run selected.", None, ""
            run = manager.get(rid)
            return job_ui.status_markdown(run), actions.metrics_figure(run, manager.types.get(run.manifest.type)), job_ui.log_text(run)
        except WorkbenchError as exc:
            return error_markdown(exc), None, ""

    def on_load(request: gr.Request) -> tuple[Any, Any, Any]:
        """Reattach: the run the address names (``?tab=runs&run=<id>``, the links other tabs give), else the newest active one."""
        try:
            return (*listing(request.username, request.query_params.get("run")), gr.skip())
        except WorkbenchError as exc:
            return [], gr.Dropdown(choices=[], value=None), error_markdown(exc)

    def starter(kind: str, names: list[str], inputs: list[Any], extra: gr.Textbox) -> Any:
        def on_start(data: dict[Any, Any], request: gr.Request) -> tuple[Any, Any, Any]:
            try:
                run = actions.start(ctx, manager, request.username, kind, {n: data[c] for n, c in zip(names, inputs, strict=True)}, data[extra])
            except WorkbenchError as exc:
                return error_markdown(actions.in_form_words(exc, names)), gr.skip(), gr.skip()
            t, d = listing(request.username, run.id)
            return f"Started **{md_escape(run.id)}**.", t, d
        return on_start

    # A set of inputs: Gradio passes one {component: value} dict, so the request can follow it.
    for kind, button, names, inputs, extra in forms:
        button.click(starter(kind, names, inputs, extra), inputs={*inputs, extra}, outputs=[start_status, table, run_id])

    cancel.click(job_ui.control_handler(ctx, manager, "cancel"), inputs=run_id, outputs=[start_status, table, run_id], concurrency_limit=None)
    resume.click(job_ui.control_handler(ctx, manager, "resume"), inputs=run_id, outputs=[start_status, table, run_id])
    run_id.change(show, inputs=run_id, outputs=view)
    gr.on(triggers=None, fn=on_load, outputs=[table, run_id, status])  # page load: reattach
    gr.on(triggers=None, fn=None, js=OPEN_FROM_ADDRESS_JS)  # ?tab=runs opens this tab

    def tick(rid: str | None, drawn: tuple[str, int, float] | None, request: gr.Request) -> tuple[Any, ...]:
        """While the selected run is live (or just ended): table, status and log every tick, the plot
        when metrics were added, at most every PLOT_EVERY_S (drawing it every second kept the queue
        busy, and a Cancel click waited behind it)."""
        try:
            require_owner(ctx.settings, request.username, "see the runs")
            run = manager.get(rid) if rid else None
            m = run.manifest if run else None
        except WorkbenchError:
            return (gr.skip(),) * (2 + len(view))
        if m is None or not (m.status in ("queued", "running") or time.time() - (m.finished or 0) < 4):
            return (gr.skip(),) * (2 + len(view))
        rows, now = len(run.metrics()), time.time()
        if drawn and drawn[0] == rid and (drawn[1] == rows or now - drawn[2] < PLOT_EVERY_S):
            plot_update = gr.skip()
        else:
            plot_update, drawn = actions.metrics_figure(run, manager.types.get(run.manifest.type)), (rid, rows, now)
        return job_ui.runs_table(manager), job_ui.status_markdown(run), plot_update, job_ui.log_text(run), drawn

    drawn = gr.State(None)
    gr.Timer(REFRESH_S).tick(tick, inputs=[run_id, drawn], outputs=[table, *view, drawn], show_progress="hidden")
