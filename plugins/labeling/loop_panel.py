"""From a session's votes to "did it win?" in one guided panel of the Labeling tab.

The steps existed in three tabs and the CLI with nothing linking one to the next (about 20
clicks on the steering path). Here they are numbered buttons, each status naming what it made
and the next step: 1 · fit a steering vector from the session's votes, 2 · make the blind
unsteered-vs-steered session on the prompts that fitted nothing (followed until it is made,
then linked to its fast labeling page), 3 · label it (the link), 4 · the verdict (the session's
statistics, the same tables as the analysis section). Owner only, checked in every handler.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from workbench.app import ui
from workbench.app.auth import OWNER, login_name, role_of
from workbench.errors import ConfigError, WorkbenchError
from workbench.jobs import JobManager, describe_failure
from workbench.labeling.page import page_url
from workbench.labeling.state import labeling_store

COEFFICIENT = 4.0  # what the steering tests use on the demo model: visibly steered, still fluent
PROMPTS = 8
MAX_NEW_TOKENS = 24
POLL_S = 1.0


def vote_sessions(ctx: Any) -> list[tuple[str, str]]:
    """(label, session) for the sessions with A/B votes, most votes first (the likeliest to fit)."""
    from workbench.preference.vote_steering import sessions_with_votes

    rows = sorted(sessions_with_votes(labeling_store(ctx)), key=lambda r: -r[1])
    return [(f"{name} ({n} A/B votes)", name) for name, n in rows]


def fit_layer(n_layers: int) -> int:
    """The layer the steering tests fit on the demo model (12 of its 30), scaled to the model's depth."""
    return max(1, round(n_layers * 2 / 5))


def fit_vector(ctx: Any, session: str | None, request: gr.Request | None) -> tuple[str, str]:
    """Step 1: a mean-difference steering vector from the session's votes; (status, vector name)."""
    from plugins.labeling.manage import owner_only
    from plugins.steering.actions import fit_from_votes, require_model

    try:
        owner_only(ctx, request)
        if not session:
            raise ConfigError("No session picked.", hint="Pick one in “Session with votes” (at least 8 A/B votes).")
        layer = fit_layer(require_model(ctx).n_layers)
        (row,) = fit_from_votes(ctx, session, "mean_diff", str(layer))
    except WorkbenchError as err:
        return ui.error_markdown(err), ""
    name, _, _, _, accuracy, _, n_pairs = row
    return (f"✓ **1 ·** Saved steering vector **{ui.md_escape(name)}** (layer {layer}, {n_pairs} votes, accuracy on them "
            f"{accuracy:.2f}); the Steering tab lists it too. Next: **2 · Make the blind session**."), name


def make_blind(ctx: Any, session: str | None, vector: str | None, coefficient: float | None,
               request: gr.Request | None) -> Iterator[tuple[str, Any]]:
    """Step 2: start the unsteered-vs-steered session and follow its job until the session exists."""
    from plugins.labeling.manage import owner_only
    from workbench.jobs.cli import progress_line
    from workbench.loop import held_out_note, start_steering_blind_session

    try:
        owner_only(ctx, request)
        if not vector:
            raise ConfigError("No vector fitted yet.", hint="Press “1 · Fit a steering vector from its votes” first.")
        if not coefficient:
            raise ConfigError("Coefficient is 0, so steered would be the unsteered model.",
                              hint="Set “Coefficient” to something other than 0 (4 is a visible push).")
        model = ctx.active_model_name
        if not model:
            raise ConfigError("The server has no model.", hint="Start it with --model NAME, or pick one in Models & data.")
        run = start_steering_blind_session(JobManager.for_context(ctx), model, [(vector, float(coefficient))],
                                           from_session=session, n=PROMPTS, max_new_tokens=MAX_NEW_TOKENS)
        why = held_out_note(ctx.settings, session, [vector], len(run.config["prompts"]), PROMPTS)
    except WorkbenchError as err:
        yield ui.error_markdown(err), gr.update()
        return
    blind = run.config["session"]
    head = (f"**2 ·** Run **{ui.md_escape(run.id)}** (Runs tab) answers with {ui.md_escape(model)} unsteered and steered "
            f"× {float(coefficient):g}. Prompts: {ui.md_escape(why)}")
    while run.is_active():
        yield f"{head}\n\n⏳ {ui.md_escape(progress_line(run))}", gr.update()
        time.sleep(POLL_S)
    if run.status != "finished":
        yield f"{head}\n\n**Error:** the run {run.status}.\n\n```\n{describe_failure(run)}\n```", gr.update()
        return
    url = page_url(blind)
    yield (f"{head}\n\n✓ Made the blind session **{ui.md_escape(blind)}**. **3 ·** Label it: [{url}]({url}) (a new browser tab; "
           "keys `1`/`2`). Then **4 · Verdict**."), blind


def verdict(ctx: Any, blind: str | None, request: gr.Request | None) -> str:
    """Step 4: the blind session's statistics, "did it win?" about its recorded candidate first."""
    from plugins.labeling.manage import owner_only, report_markdown
    from workbench.labeling.analysis import session_report
    from workbench.labeling.verdict import session_verdict

    try:
        owner_only(ctx, request)
        if not blind:
            raise ConfigError("No blind session yet.", hint="Make one with “2 · Make the blind session”, or type its name in “Blind session”.")
        lab = labeling_store(ctx)
        body = report_markdown(session_report(lab, blind), session_verdict(lab, blind))
    except WorkbenchError as err:
        return ui.error_markdown(err)
    url = page_url(blind)
    return f"**4 · Verdict** on [{ui.md_escape(blind)}]({url})\n\n{body}"


def build_loop_panel(ctx: Any) -> gr.Accordion:
    """The guided panel; hidden from annotators by the caller, refused to them by every handler."""
    with gr.Accordion("From votes to verdict: fit → blind session → label → did it win?", open=False,
                      elem_id="wb-loop") as section:
        with gr.Row():
            session = gr.Dropdown(choices=[], label="Session with votes", elem_id="wb-loop-session", scale=2)
            coefficient = gr.Number(COEFFICIENT, label="Coefficient", elem_id="wb-loop-coef", scale=1)
        vector = gr.State("")
        with gr.Row():
            fit = gr.Button("1 · Fit a steering vector from its votes", variant="primary", elem_id="wb-loop-fit")
            blind_button = gr.Button("2 · Make the blind session", elem_id="wb-loop-blind-run")
            verdict_button = gr.Button("4 · Verdict", elem_id="wb-loop-verdict")
        fit_status = gr.Markdown(elem_id="wb-loop-fit-status")
        blind_status = gr.Markdown(elem_id="wb-loop-blind-status")
        blind = gr.Textbox(label="Blind session", elem_id="wb-loop-blind")
        result = gr.Markdown(elem_id="wb-loop-verdict-out")

    # Names of their own: Gradio names an event's endpoint after its function, first come first served.
    def loop_fit(s: str | None, request: gr.Request) -> tuple[str, str]:
        return fit_vector(ctx, s, request)

    def loop_blind(s: str | None, v: str | None, c: float | None, request: gr.Request) -> Iterator[tuple[str, Any]]:
        yield from make_blind(ctx, s, v, c, request)

    def loop_verdict(b: str | None, request: gr.Request) -> str:
        return verdict(ctx, b, request)

    def loop_sessions(request: gr.Request) -> Any:
        """The owner's sessions with votes as of this page load (an annotator is told nothing)."""
        if role_of(ctx.settings, login_name(request)) != OWNER:
            return gr.update()
        choices = vote_sessions(ctx)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    fit.click(loop_fit, session, [fit_status, vector])
    blind_button.click(loop_blind, [session, vector, coefficient], [blind_status, blind])
    verdict_button.click(loop_verdict, blind, result)
    gr.context.Context.root_block.load(loop_sessions, None, session, show_progress="hidden")
    return section
