"""The Fine-tune tab: start DPO and PAL runs, watch them live, cancel, resume, compare.

State lives in the run folders, so after a browser reload the tab lists the runs again and
selects the newest active one (reattach). A timer refreshes the selected run every 2 s.
"""
from __future__ import annotations

import time
from typing import Any

import gradio as gr

from plugins.finetune import actions
from plugins.finetune.figures import dpo_figure, pal_figure
from workbench.app import job_ui
from workbench.app.job_ui import config_form
from workbench.app.ui import error_markdown, md_escape
from workbench.errors import WorkbenchError
from workbench.jobs import JobManager
from workbench.training.configs import DPOJobConfig, PALJobConfig

# The options each form shows (the rest keep their defaults; all of them work from the CLI).
DPO_FORM = ["model", "dataset", "method", "max_steps", "batch_size", "learning_rate", "beta", "max_length", "num_processes",
            "precompute_ref_log_probs"]
PAL_FORM = ["dataset", "model", "variant", "k", "epochs"]
PLUGIN = "finetune"  # the plugin name its job types are registered under (JobType.plugin)


def _form(ctx: Any, kind: str, cls: type, names: list[str]) -> tuple[gr.Button, list[Any]]:
    """The generated form, plus a session dropdown (a session's A/B votes train instead of a dataset), the
    Train on choice between them and a note saying which datasets are trainable; the inputs line up with
    ``[*names, "session", "source"]``."""
    with gr.Row():
        inputs = config_form(cls, names, f"ft-{kind}")
        session = gr.Dropdown(label="Session", info=cls.help_of("session"), choices=[], allow_custom_value=True,
                              elem_id=f"ft-{kind}-session")
        # One control says which box trains: the Dataset box is always filled, so "both given" was the default before.
        source = gr.Radio(actions.SOURCES, value="dataset", label="Train on", info="a stored dataset's labelled pairs, or a session's A/B votes",
                          elem_id=f"ft-{kind}-source")
    note = gr.Markdown(elem_id=f"ft-{kind}-datasets-note")
    start = gr.Button(f"Start {kind.upper()} run", variant="primary", elem_id=f"ft-{kind}-start")
    model, dataset = inputs[names.index("model")], inputs[names.index("dataset")]

    def fill() -> tuple[Any, Any, Any, str]:
        models, datasets = actions.model_choices(ctx, kind), actions.dataset_choices(ctx, kind)
        return (gr.Dropdown(choices=models, value=models[0] if models else None),
                gr.Dropdown(choices=datasets, value=datasets[0] if datasets else None),
                gr.Dropdown(choices=actions.session_choices(ctx), value=None), actions.dataset_note(ctx, kind))

    gr.on(triggers=None, fn=fill, outputs=[model, dataset, session, note])
    return start, [*inputs, session, source]


def _ches_section(ctx: Any, dpo_inputs: list[Any]) -> gr.Textbox:
    """CHES before a DPO run from a session: the pairs likely to lower the chosen response, to drop."""
    with gr.Accordion("Before a run from a session: pairs likely to lower the chosen response (CHES)", open=False):
        gr.Markdown("Centered hidden-embedding similarity of chosen vs rejected under the form's model (Razin et al. "
                    "2024): the higher, the likelier DPO pushes the chosen response down too. Copy the ids to drop.")
        with gr.Row():
            ches_k = gr.Number(value=10, precision=0, label="Top pairs", elem_id="ft-dpo-ches-k")
            ches_button = gr.Button("Check the session's pairs", elem_id="ft-dpo-ches")
        ches_note = gr.Markdown(elem_id="ft-dpo-ches-note")
        ches_table = gr.Dataframe(headers=actions.DISPLACEMENT_COLUMNS, interactive=False, wrap=True, elem_id="ft-dpo-ches-table")
        drop_pairs = gr.Textbox(label="Drop pairs", info=DPOJobConfig.help_of("drop_pairs") + " Comma- or space-separated.",
                                elem_id="ft-dpo-drop-pairs")
    model, session = dpo_inputs[DPO_FORM.index("model")], dpo_inputs[len(DPO_FORM)]

    def on_ches(data: dict[Any, Any], request: gr.Request) -> tuple[Any, str]:
        try:
            return actions.displacement_rows(ctx, request.username, data[session], data[model], int(data[ches_k] or 10)), ""
        except WorkbenchError as exc:
            return [], error_markdown(exc)

    ches_button.click(on_ches, inputs={model, session, ches_k}, outputs=[ches_table, ches_note])
    return drop_pairs


def _run_view() -> list[Any]:
    """The selected run: status, warnings, curves, the per-job-type panels and the log tail."""
    status = gr.Markdown(elem_id="ft-status")
    warning = gr.Markdown(elem_id="ft-warning")
    curves = gr.Plot(label="Training curves")
    with gr.Accordion("Before / after", open=True):
        before_after = gr.Dataframe(headers=actions.BEFORE_AFTER_COLUMNS, interactive=False, label="Pair accuracy and log-prob margin", elem_id="ft-before-after")
        samples = gr.Dataframe(headers=actions.SAMPLE_COLUMNS, interactive=False, wrap=True, label="Sample generations (greedy)",
                               elem_id="ft-samples")
        pal_results = gr.Dataframe(interactive=False, label="PAL vs Bradley–Terry accuracy", elem_id="ft-pal-results")
        latent = gr.Plot(label="Latent view: prototypes and users", elem_id="ft-latent")
    log = gr.Textbox(label="Log tail", lines=12, max_lines=12, autoscroll=True, elem_id="ft-log")
    return [status, warning, curves, before_after, samples, pal_results, latent, log]


def _panels(run: Any) -> tuple[Any, ...]:
    """Before/after, samples, PAL results, latent plot: values, and shown only for the job type that has them."""
    kind = run.manifest.type if run is not None else None
    dpo, pal = kind == "dpo", kind == "pal"
    return (gr.update(value=actions.before_after_rows(run) if dpo else [], visible=dpo),
            gr.update(value=actions.samples_rows(run) if dpo else [], visible=dpo),
            gr.Dataframe(value=actions.pal_results_rows(run), headers=actions.pal_results_columns(run), visible=True) if pal
            else gr.Dataframe(value=[], visible=False),
            gr.update(value=actions.latent_figure(run) if pal else None, visible=pal))


def _show(manager: JobManager, rid: str | None) -> tuple[Any, ...]:
    """The selected run's status, curves and tables: only the panels its job type has (a PAL run showed
    DPO's empty before/after tables, a DPO run PAL's empty accuracy table and latent plot)."""
    if not rid:
        return "No run selected.", "", None, *_panels(None), ""
    try:
        run = manager.get(rid)
    except WorkbenchError as exc:
        return error_markdown(exc), "", None, *_panels(None), ""
    if run.manifest.type == "dpo":
        warnings = run.manifest.summary.get("warnings", [])
        return (job_ui.status_markdown(run), "  \n".join(f"⚠️ **Warning:** {md_escape(w)}" for w in warnings),
                dpo_figure(run.metrics()), *_panels(run), job_ui.log_text(run))
    return job_ui.status_markdown(run), "", pal_figure(run.metrics()), *_panels(run), job_ui.log_text(run)


def build_finetune_tab(ctx: Any) -> None:
    manager = JobManager.for_context(ctx)
    own = job_ui.plugin_job_types(manager, PLUGIN)  # DPO and PAL: other plugins' runs are the Runs tab's
    gr.Markdown("Fine-tuning runs are background processes with their own folder under the runs directory: "
                "they keep going if you close the page, and reappear here when you come back.")
    with gr.Tabs():
        with gr.Tab("DPO"):
            dpo_start, dpo_inputs = _form(ctx, "dpo", DPOJobConfig, DPO_FORM)
            drop_pairs = _ches_section(ctx, dpo_inputs)
        with gr.Tab("PAL"):
            pal_start, pal_inputs = _form(ctx, "pal", PALJobConfig, PAL_FORM)
    start_status = gr.Markdown(elem_id="ft-start-status")

    gr.Markdown("### Runs")
    table, run_id, cancel, resume, blind = job_ui.run_list_controls("ft", extra_buttons=(("Blind session: base vs tuned", "blind-session"),))
    view = _run_view()

    def run_choices(selected: str | None = None) -> tuple[Any, Any]:
        return job_ui.run_list(manager, selected, own)

    def show(rid: str | None) -> tuple[Any, ...]:
        return _show(manager, rid)

    def on_start(kind: str, names: list[str], inputs: list[Any], data: dict[Any, Any], user: str | None,
                 extra: dict[str, Any] | None = None) -> tuple[Any, Any, Any]:
        try:
            options = {n: data[c] for n, c in zip([*names, "session", "source"], inputs, strict=True)}
            run = actions.start(ctx, manager, user, kind, {**options, **(extra or {})})
        except WorkbenchError as exc:
            t, d = run_choices()
            return error_markdown(exc), t, d
        t, d = run_choices(run.id)
        return f"Started **{md_escape(run.id)}**.", t, d

    # The owner check runs in these handlers (actions.start): a hidden button is not a permission.
    def on_start_dpo(data: dict[Any, Any], request: gr.Request) -> tuple[Any, Any, Any]:
        return on_start("dpo", DPO_FORM, dpo_inputs, data, request.username, {"drop_pairs": actions.parse_pair_ids(data[drop_pairs])})

    def on_start_pal(data: dict[Any, Any], request: gr.Request) -> tuple[Any, Any, Any]:
        return on_start("pal", PAL_FORM, pal_inputs, data, request.username)

    # A set of inputs: Gradio passes one {component: value} dict, so the request can follow it.
    dpo_start.click(on_start_dpo, inputs={*dpo_inputs, drop_pairs}, outputs=[start_status, table, run_id])

    def on_blind(rid: str | None, request: gr.Request) -> tuple[Any, Any, Any]:
        try:
            msg = actions.blind_session(ctx, manager, request.username, rid)
        except WorkbenchError as exc:
            msg = error_markdown(exc)
        t, d = run_choices(rid)
        return msg, t, d

    blind.click(on_blind, inputs=run_id, outputs=[start_status, table, run_id])
    pal_start.click(on_start_pal, inputs=set(pal_inputs), outputs=[start_status, table, run_id])

    cancel.click(job_ui.control_handler(ctx, manager, "cancel", own), inputs=run_id, outputs=[start_status, table, run_id])
    resume.click(job_ui.control_handler(ctx, manager, "resume", own), inputs=run_id, outputs=[start_status, table, run_id])
    run_id.change(show, inputs=run_id, outputs=view)
    gr.on(triggers=None, fn=run_choices, outputs=[table, run_id])  # page load: reattach

    def tick(rid: str | None) -> tuple[Any, ...]:
        """Redraw only while the selected run is live (or just ended), not every 2 s forever."""
        try:
            m = manager.get(rid).manifest if rid else None
        except WorkbenchError:
            m = None
        live = m is not None and (m.status in ("queued", "running") or time.time() - (m.finished or 0) < 6)
        return (job_ui.runs_table(manager, own), *(show(rid) if live else [gr.skip()] * len(view)))

    gr.Timer(2.0).tick(tick, inputs=run_id, outputs=[table, *view])
