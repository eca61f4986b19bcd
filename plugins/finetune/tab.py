"""The Fine-tune tab: start DPO and PAL runs, watch them live, cancel, resume, compare.

State lives in the run folders, so after a browser reload the tab lists the runs again and
selects the newest active one (reattach). A timer refreshes the selected run every 2 s.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from plugins.finetune import actions
from workbench.errors import WorkbenchError
from workbench.jobs import JobManager
from workbench.training.dpo import falling_logps_warning


def _dpo_form(ctx: Any, manager: JobManager) -> tuple[gr.Button, list[Any]]:
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=[], allow_custom_value=True, elem_id="ft-dpo-model")
        dataset = gr.Dropdown(label="Dataset (stored name or file path)", choices=[], allow_custom_value=True, elem_id="ft-dpo-dataset")
        method = gr.Radio(["lora", "full"], value="lora", label="Method")
    with gr.Row():
        max_steps = gr.Number(value=50, precision=0, label="Max steps")
        batch_size = gr.Number(value=2, precision=0, label="Batch size")
        lr = gr.Number(value=5e-5, label="Learning rate")
        beta = gr.Number(value=0.1, label="Beta")
        max_length = gr.Number(value=256, precision=0, label="Max length (tokens)")
        processes = gr.Number(value=1, precision=0, label="Processes (accelerate)")
        precompute = gr.Checkbox(value=False, label="Precompute reference log-probs")
    start = gr.Button("Start DPO run", variant="primary", elem_id="ft-dpo-start")

    def fill() -> tuple[Any, Any]:
        models, datasets = actions.model_choices(ctx), actions.dataset_choices(ctx)
        return gr.Dropdown(choices=models, value=models[0] if models else None), gr.Dropdown(choices=datasets, value=datasets[0] if datasets else None)

    gr.on(triggers=None, fn=fill, outputs=[model, dataset])
    return start, [model, dataset, method, max_steps, batch_size, lr, beta, max_length, processes, precompute]


def _pal_form() -> tuple[gr.Button, list[Any]]:
    with gr.Row():
        dataset = gr.Textbox(label="Pairs with a user id per pair (file path or stored dataset)", elem_id="ft-pal-dataset")
        model = gr.Textbox(value="all-MiniLM-L6-v2", label="Frozen feature model")
        variant = gr.Radio(["both", "A", "B"], value="both", label="PAL variant")
    with gr.Row():
        k = gr.Number(value=4, precision=0, label="K prototypes")
        epochs = gr.Number(value=40, precision=0, label="Epochs")
    start = gr.Button("Start PAL run", variant="primary", elem_id="ft-pal-start")
    return start, [dataset, model, variant, k, epochs]


def build_finetune_tab(ctx: Any) -> None:
    manager = JobManager.for_context(ctx)
    gr.Markdown("Fine-tuning runs are background processes with their own folder under the runs directory: "
                "they keep going if you close the page, and reappear here when you come back.")
    with gr.Tabs():
        with gr.Tab("DPO"):
            dpo_start, dpo_inputs = _dpo_form(ctx, manager)
        with gr.Tab("PAL"):
            pal_start, pal_inputs = _pal_form()
    start_status = gr.Markdown(elem_id="ft-start-status")

    gr.Markdown("### Runs")
    table = gr.Dataframe(headers=actions.RUN_COLUMNS, interactive=False, wrap=True, max_height=240, elem_id="ft-runs")
    with gr.Row(equal_height=True):
        run_id = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="ft-run")
        cancel = gr.Button("Cancel", scale=1, elem_id="ft-cancel")
        resume = gr.Button("Resume", scale=1, elem_id="ft-resume")
    status = gr.Markdown(elem_id="ft-status")
    warning = gr.Markdown(elem_id="ft-warning")
    curves = gr.Plot(label="Training curves")
    with gr.Accordion("Before / after", open=True):
        before_after = gr.Dataframe(headers=actions.BEFORE_AFTER_COLUMNS, interactive=False, label="Pair accuracy and log-prob margin", elem_id="ft-before-after")
        samples = gr.Dataframe(headers=actions.SAMPLE_COLUMNS, interactive=False, wrap=True, label="Sample generations (greedy)")
        pal_results = gr.Dataframe(interactive=False, label="PAL vs Bradley–Terry accuracy", elem_id="ft-pal-results")
        latent = gr.Plot(label="Latent view: prototypes and users")
    log = gr.Textbox(label="Log tail", lines=12, max_lines=12, autoscroll=True, elem_id="ft-log")

    def run_choices(selected: str | None = None) -> tuple[Any, Any]:
        runs = manager.runs()
        ids = [r.id for r in runs]
        if selected not in ids:
            active = [r.id for r in runs if r.is_active()]
            selected = active[0] if active else (ids[0] if ids else None)
        return actions.runs_table(manager), gr.Dropdown(choices=ids, value=selected)

    def show(rid: str | None) -> tuple[Any, ...]:
        if not rid:
            return "No run selected.", "", None, [], [], gr.Dataframe(value=[]), None, ""
        try:
            run = manager.get(rid)
        except WorkbenchError as exc:
            return actions.error_markdown(exc), "", None, [], [], gr.Dataframe(value=[]), None, ""
        rows = run.metrics()
        if run.manifest.type == "dpo":
            warn = falling_logps_warning(rows)
            return (actions.status_markdown(run), f"⚠️ **Warning:** {warn}" if warn else "", actions.dpo_figure(rows),
                    actions.before_after_rows(run), actions.samples_rows(run), gr.Dataframe(value=[]), None, actions.log_text(run))
        pal = gr.Dataframe(value=actions.pal_results_rows(run), headers=actions.pal_results_columns(run))
        return (actions.status_markdown(run), "", actions.pal_figure(rows), [], [], pal, actions.latent_figure(run), actions.log_text(run))

    view = [status, warning, curves, before_after, samples, pal_results, latent, log]

    def on_start(kind: str, keys: list[str], *values: Any) -> tuple[Any, Any, Any]:
        options = dict(zip(keys, values, strict=True))
        for key in ("max_steps", "batch_size", "max_length", "num_processes", "k", "epochs"):
            if options.get(key) is not None:
                options[key] = int(options[key])
        try:
            run = actions.start(manager, kind, options)
        except WorkbenchError as exc:
            t, d = run_choices()
            return actions.error_markdown(exc), t, d
        t, d = run_choices(run.id)
        return f"Started **{run.id}**.", t, d

    dpo_keys = ["model", "dataset", "method", "max_steps", "batch_size", "learning_rate", "beta", "max_length", "num_processes", "precompute_ref_log_probs"]
    pal_keys = ["dataset", "model", "variant", "k", "epochs"]
    dpo_start.click(lambda *v: on_start("dpo", dpo_keys, *v), inputs=dpo_inputs, outputs=[start_status, table, run_id])
    pal_start.click(lambda *v: on_start("pal", pal_keys, *v), inputs=pal_inputs, outputs=[start_status, table, run_id])

    def control(action: str, rid: str | None) -> tuple[Any, Any, Any]:
        try:
            if not rid:
                raise WorkbenchError("Select a run first.")
            if action == "cancel":
                manager.cancel(rid)
                msg = f"Cancel requested for **{rid}**: it saves a checkpoint and stops."
            else:
                manager.resume(rid)
                msg = f"Resumed **{rid}** from its last checkpoint."
        except WorkbenchError as exc:
            msg = actions.error_markdown(exc)
        t, d = run_choices(rid)
        return msg, t, d

    cancel.click(lambda rid: control("cancel", rid), inputs=run_id, outputs=[start_status, table, run_id])
    resume.click(lambda rid: control("resume", rid), inputs=run_id, outputs=[start_status, table, run_id])
    run_id.change(show, inputs=run_id, outputs=view)
    gr.on(triggers=None, fn=run_choices, outputs=[table, run_id])  # page load: reattach

    def tick(rid: str | None) -> tuple[Any, ...]:
        """Redraw only while the selected run is live (or just ended), not every 2 s forever."""
        import time

        try:
            m = manager.get(rid).manifest if rid else None
        except WorkbenchError:
            m = None
        live = m is not None and (m.status in ("queued", "running") or time.time() - (m.finished or 0) < 6)
        return (actions.runs_table(manager), *(show(rid) if live else [gr.skip()] * len(view)))

    gr.Timer(2.0).tick(tick, inputs=run_id, outputs=[table, *view])
