"""From a session's votes to "did it win?" in one guided panel of the Labeling tab.

The steps existed in three tabs and the CLI with nothing linking one to the next (about 20
clicks on the steering path). Here they are numbered buttons, each status linking what it made
and naming the next step. **1 · Fit from its votes**, one of (in this order): reward heads + the
DPA direction, a steering vector, a DPO run, a PAL run; runs are jobs, followed here with their
stage and ETA. **2 · Make the blind session** (enabled once something is fitted): unsteered vs
steered (a steering vector, or the DPA system prompt) or base vs tuned (DPO), on the prompts that
fitted nothing, followed until it is made, then linked to its fast labeling page. **3 ·** Label
it (the link). **4 · Verdict**: the blind session's statistics; for a PAL run, which writes no
answers, its held-out accuracy against Bradley–Terry with intervals. Owner only, checked in
every handler.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import gradio as gr

from workbench.app import ui
from workbench.app.auth import OWNER, login_name, role_of
from workbench.errors import ConfigError, WorkbenchError
from workbench.jobs import JobManager, Run, describe_failure
from workbench.jobs.commands import progress_line
from workbench.labeling.analysis import session_report
from workbench.labeling.page import page_url
from workbench.labeling.verdict import session_verdict
from workbench.loop import (
    dpa_system,
    held_out_note,
    pal_verdict,
    start_blind_session,
    start_dpa_blind_session,
    start_steering_blind_session,
)
from workbench.preference.reward_heads import accuracy_parts, reward_models_dir, train_reward_model_from_session
from workbench.preference.vote_steering import session_vectors, sessions_with_votes
from workbench.steering.library import save_fitted

COEFFICIENT = 4.0  # what the steering tests use on the demo model: visibly steered, still fluent
PROMPTS = 8
MAX_NEW_TOKENS = 24
DPO_STEPS = 20
PAL_K = 4  # PAL's default number of prototypes
POLL_S = 1.0
DPA, STEERING, DPO, PAL = "dpa", "steering", "dpo", "pal"
METHODS = [("reward head + DPA direction", DPA), ("steering vector", STEERING), ("DPO run", DPO), ("PAL run", PAL)]
PAL_NO_BLIND = ("A PAL run writes no answers, so there is no blind session to make: its verdict is its held-out "
                "accuracy against one Bradley–Terry model for everyone. Press **4 · Verdict**.")


def vote_sessions(ctx: Any) -> list[tuple[str, str]]:
    """(label, session) for the sessions with A/B votes, most votes first (the likeliest to fit)."""

    rows = sorted(sessions_with_votes(ctx.labeling), key=lambda r: -r[1])
    return [(f"{name} ({n} A/B votes)", name) for name, n in rows]


def fit_layer(n_layers: int) -> int:
    """The layer the steering tests fit on the demo model (12 of its 30), scaled to the model's depth."""
    return max(1, round(n_layers * 2 / 5))


def run_url(run_id: str) -> str:
    """The Runs tab with this run selected (the tab reads ``tab`` and ``run`` from the address on load)."""
    return f"/?tab=runs&run={quote(run_id, safe='')}"


def run_link(run_id: str) -> str:
    return f"[{ui.md_escape(run_id)}]({run_url(run_id)})"


def session_links(session: str) -> str:
    """The session's fast labeling page and its statistics (JSON), as Markdown links."""
    url, stats = page_url(session), f"/api/labeling/sessions/{quote(session, safe='')}/stats"
    return f"[{url}]({url}) (statistics: [{stats}]({stats}))"


def model_name(ctx: Any) -> str:
    """The server's model as a job can load it: its folder (a model loaded by path is named after its
    folder, which no catalog lookup finds), else its catalog name."""
    if not ctx.active_model_name:
        raise ConfigError("The server has no model.", hint="Start it with --model NAME, or pick one in Models & data.")
    lm = ctx.active_model
    return str(lm.path) if lm is not None else ctx.active_model_name


def fit_steering(ctx: Any, session: str) -> tuple[str, dict[str, str]]:
    """A mean-difference steering vector from the session's votes; (status, what was fitted)."""
    lm = ctx.causal_model()
    layer = fit_layer(lm.n_layers)
    (vector,) = save_fitted(ctx.settings, session_vectors(lm, ctx.labeling, session, [layer], method="mean_diff",
                                                           cache=ctx.activation_cache))
    return (f"✓ **1 ·** Saved steering vector **{ui.md_escape(vector.name)}** (layer {layer}, {vector.info['n_pairs']} votes, "
            f"accuracy on them {vector.info['accuracy']:.2f}); the Steering tab lists it too. Next: **2 · Make the blind session**."
            ), {"kind": STEERING, "name": vector.name}


def fit_dpa(ctx: Any, session: str) -> tuple[str, dict[str, str]]:
    """Reward heads on the session's votes and the DPA direction they imply; (status, what was fitted)."""
    lm, name = ctx.causal_model(), f"loop-{session}"
    rm = train_reward_model_from_session(lm, ctx.labeling, session, name=name, layer=fit_layer(lm.n_layers),
                                         cache=ctx.activation_cache)
    rm.save(reward_models_dir(ctx.settings))
    accuracy = dict(accuracy_parts(rm))["overall"]
    return (f"✓ **1 ·** Saved reward model **{ui.md_escape(name)}** from the session's votes, with its DPA direction "
            f"(held-out pairwise accuracy {accuracy}); the DPA tab lists it. Steered answers get the system prompt "
            f"“{ui.md_escape(dpa_system(rm))}”. Next: **2 · Make the blind session**."), {"kind": DPA, "name": name}


def start_run(ctx: Any, kind: str, session: str, steps: float | None) -> Run:
    """A DPO run (LoRA, ``steps`` steps, no sample generations: the blind session is the test) or a PAL run
    (at most one prototype per annotator), on the session's A/B votes with the server's model."""
    manager = JobManager.for_context(ctx)
    if kind == DPO:
        if not steps or steps < 1:
            raise ConfigError("DPO steps must be at least 1.", hint="Set “DPO steps” (20 is a short run).")
        return manager.submit(DPO, {"session": session, "model": model_name(ctx), "max_steps": int(steps), "n_samples": 0})
    # One prototype per annotator at most (PAL refuses more prototypes than users; a session has a handful).
    k = max(1, min(PAL_K, len(ctx.labeling.annotators(session))))
    return manager.submit(PAL, {"session": session, "model": model_name(ctx), "k": k})


def follow_run(run: Run, what: str) -> Iterator[tuple[str, Any, Any]]:
    """The run's stage and ETA while it is active, then the next step (blind button enabled for DPO)."""
    head = f"**1 ·** {what} {run_link(run.id)} (opens in the Runs tab) trains on the session's votes."
    fitted = {"kind": run.manifest.type, "name": run.id}
    while run.is_active():
        yield f"{head}\n\n⏳ {ui.md_escape(progress_line(run))}", fitted, gr.update(interactive=False)
        time.sleep(POLL_S)
    if run.status != "finished":
        yield f"{head}\n\n**Error:** the run {run.status}.\n\n```\n{describe_failure(run)}\n```", {}, gr.update(interactive=False)
        return
    if run.manifest.type == PAL:
        yield f"{head}\n\n✓ Finished. {PAL_NO_BLIND}", fitted, gr.update(interactive=False)
        return
    yield (f"{head}\n\n✓ Finished: the tuned model is `run:{ui.md_escape(run.id)}` in the model catalog. "
           "Next: **2 · Make the blind session** (base vs tuned)."), fitted, gr.update(interactive=True)


def fit(ctx: Any, session: str | None, method: str | None, steps: float | None,
        request: gr.Request | None) -> Iterator[tuple[str, Any, Any]]:
    """Step 1, by the chosen method; yields (status, what was fitted, the blind button's update)."""
    from plugins.labeling.manage import (
        owner_only,  # manage imports this module (build_loop_panel): at the top it would be an import cycle
    )

    try:
        owner_only(ctx, request)
        if not session:
            raise ConfigError("No session picked.", hint="Pick one in “Session with votes” (at least 8 A/B votes).")
        if method in (DPO, PAL):
            run = start_run(ctx, method, session, steps)
        else:
            status, fitted = fit_dpa(ctx, session) if method == DPA else fit_steering(ctx, session)
            yield status, fitted, gr.update(interactive=True)
            return
    except WorkbenchError as err:
        yield ui.error_markdown(err), {}, gr.update(interactive=False)
        return
    yield from follow_run(run, "DPO run" if method == DPO else "PAL run")


def start_blind(ctx: Any, session: str | None, fitted: dict[str, str], coefficient: float | None,
                temperature: float | None) -> tuple[Run, str]:
    """The blind session's job for what step 1 fitted (greedy, or sampled at ``temperature`` with a seed per
    side: a short run can leave greedy answers unchanged), and the note on its prompts."""

    manager, kind, name = JobManager.for_context(ctx), fitted.get("kind"), fitted.get("name", "")
    if temperature is not None and temperature < 0:
        raise ConfigError(f"Temperature {temperature:g} is below 0.", hint="Set “Temperature” to 0 (greedy) or above (0.7 samples).")
    kw = {"n": PROMPTS, "max_new_tokens": MAX_NEW_TOKENS, "temperature": temperature or None}
    if kind == DPO:
        run = start_blind_session(manager, name, **kw)
        return run, (f"{len(run.config['prompts'])} prompt(s) of session '{session}' that trained nothing (held out, "
                     f"or never voted on), at most {PROMPTS}. Base vs tuned: the model of DPO run {name} and its output.")
    if kind == DPA:
        run = start_dpa_blind_session(manager, model_name(ctx), name, from_session=session, **kw)
        return run, (f"{len(run.config['prompts'])} prompt(s) of session '{session}' with no vote (the voted ones fitted the "
                     f"reward model), at most {PROMPTS}. Unsteered vs steered by the DPA system prompt of reward model {name}.")
    if not coefficient:
        raise ConfigError("Coefficient is 0, so steered would be the unsteered model.",
                          hint="Set “Coefficient” to something other than 0 (4 is a visible push).")
    run = start_steering_blind_session(manager, model_name(ctx), [(name, float(coefficient))], from_session=session, **kw)
    why = held_out_note(ctx.settings, session, [name], len(run.config["prompts"]), PROMPTS)
    return run, f"{why} Unsteered vs steered × {float(coefficient):g}."


def make_blind(ctx: Any, session: str | None, fitted: dict[str, str] | None, coefficient: float | None,
               temperature: float | None, request: gr.Request | None) -> Iterator[tuple[str, Any]]:
    """Step 2: start the blind session's job and follow it until the session exists."""
    from plugins.labeling.manage import (
        owner_only,  # manage imports this module (build_loop_panel): at the top it would be an import cycle
    )

    fitted = fitted or {}
    try:
        owner_only(ctx, request)
        if fitted.get("kind") == PAL:
            yield PAL_NO_BLIND, gr.update()
            return
        if not fitted.get("name"):
            raise ConfigError("Nothing fitted yet.", hint="Press “1 · Fit from its votes” first.")
        run, why = start_blind(ctx, session, fitted, coefficient, temperature)
    except WorkbenchError as err:
        yield ui.error_markdown(err), gr.update()
        return
    blind = run.config["session"]
    head = f"**2 ·** Run {run_link(run.id)} writes the pairs. Prompts: {ui.md_escape(why)}"
    while run.is_active():
        yield f"{head}\n\n⏳ {ui.md_escape(progress_line(run))}", gr.update()
        time.sleep(POLL_S)
    if run.status != "finished":
        yield f"{head}\n\n**Error:** the run {run.status}.\n\n```\n{describe_failure(run)}\n```", gr.update()
        return
    yield (f"{head}\n\n✓ Made the blind session **{ui.md_escape(blind)}**. **3 ·** Label it: {session_links(blind)} "
           "(a new browser tab; keys `1`/`2`). Then **4 · Verdict**."), blind


def pal_markdown(ctx: Any, run_id: str) -> str:
    """A finished PAL run's verdict: held-out accuracy of PAL and Bradley–Terry with 95 % intervals."""

    run = JobManager.for_context(ctx).get(run_id)
    if run.status != "finished":
        raise ConfigError(f"Run {run_id} is {run.status}; its verdict comes when it finishes.", hint="Wait for step 1 to say ✓.")
    v = pal_verdict(run.manifest.summary)
    lines = [f"**4 · Verdict** on PAL run {run_link(run_id)} (no blind session: PAL writes no answers)", "",
             f"**{ui.md_escape(v['verdict'])}**", "", "| model | held-out accuracy | 95% interval | votes |", "|---|---|---|---|"]
    lines += [f"| {ui.md_escape(r['model'])} | {r['accuracy']:.3f} | [{r['interval'][0]:.3f}, {r['interval'][1]:.3f}] | {r['n']} |"
              for r in v["rows"]]
    if v["per_annotator"]:
        models = [r["model"] for r in v["rows"]]
        lines += ["", "Per annotator (held-out accuracy):", "", "| annotator | votes | " + " | ".join(models) + " |",
                  "|---|---|" + "---|" * len(models)]
        lines += [f"| {ui.md_escape(user)} | {acc['n']} | " + " | ".join(f"{acc.get(m, float('nan')):.3f}" for m in models) + " |"
                  for user, acc in v["per_annotator"].items()]
    return "\n".join(lines)


def verdict(ctx: Any, blind: str | None, fitted: dict[str, str] | None, request: gr.Request | None) -> str:
    """Step 4: the blind session's statistics, "did it win?" about its recorded candidate first (PAL: its accuracy)."""
    from plugins.labeling.manage import (  # manage imports this module (build_loop_panel): at the top it would be an import cycle
        owner_only,
        report_markdown,
    )

    try:
        owner_only(ctx, request)
        if (fitted or {}).get("kind") == PAL and not blind:
            return pal_markdown(ctx, fitted["name"])
        if not blind:
            raise ConfigError("No blind session yet.", hint="Make one with “2 · Make the blind session”, or type its name in “Blind session”.")
        lab = ctx.labeling
        body = report_markdown(session_report(lab, blind), session_verdict(lab, blind))
    except WorkbenchError as err:
        return ui.error_markdown(err)
    return f"**4 · Verdict** on {ui.md_escape(blind)}: {session_links(blind)}\n\n{body}"


def build_loop_panel(ctx: Any) -> gr.Accordion:
    """The guided panel; hidden from annotators by the caller, refused to them by every handler."""
    with gr.Accordion("From votes to verdict: fit → blind session → label → did it win?", open=False,
                      elem_id="wb-loop") as section:
        with gr.Row():
            session = gr.Dropdown(choices=[], label="Session with votes", elem_id="wb-loop-session", scale=2)
            method = gr.Radio(METHODS, value=STEERING, label="Fit from its votes", elem_id="wb-loop-method", scale=3)
            coefficient = gr.Number(COEFFICIENT, label="Coefficient (steering)", elem_id="wb-loop-coef", scale=1)
            steps = gr.Number(DPO_STEPS, precision=0, minimum=1, label="DPO steps", elem_id="wb-loop-steps", scale=1)
            temperature = gr.Number(0, minimum=0, label="Temperature of the blind answers (0 = greedy)", elem_id="wb-loop-temperature",
                                    scale=1)
        fitted = gr.State({})
        with gr.Row():
            fit_button = gr.Button("1 · Fit from its votes", variant="primary", elem_id="wb-loop-fit")
            blind_button = gr.Button("2 · Make the blind session", interactive=False, elem_id="wb-loop-blind-run")
            verdict_button = gr.Button("4 · Verdict", elem_id="wb-loop-verdict")
        fit_status = gr.Markdown(elem_id="wb-loop-fit-status")
        blind_status = gr.Markdown(elem_id="wb-loop-blind-status")
        blind = gr.Textbox(label="Blind session", elem_id="wb-loop-blind")
        result = gr.Markdown(elem_id="wb-loop-verdict-out")

    # Names of their own: Gradio names an event's endpoint after its function, first come first served.
    def loop_fit(s: str | None, m: str | None, n: float | None, request: gr.Request) -> Iterator[tuple[str, Any, Any]]:
        yield from fit(ctx, s, m, n, request)

    def loop_blind(s: str | None, f: dict[str, str], c: float | None, t: float | None,
                   request: gr.Request) -> Iterator[tuple[str, Any]]:
        yield from make_blind(ctx, s, f, c, t, request)

    def loop_verdict(b: str | None, f: dict[str, str], request: gr.Request) -> str:
        return verdict(ctx, b, f, request)

    def loop_sessions(request: gr.Request) -> Any:
        """The owner's sessions with votes as of this page load (an annotator is told nothing)."""
        if role_of(ctx.settings, login_name(request)) != OWNER:
            return gr.update()
        choices = vote_sessions(ctx)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    fit_button.click(None, None, [blind, result], js="() => ['', '']")  # a new fit: the last blind session and verdict no longer apply
    fit_button.click(loop_fit, [session, method, steps], [fit_status, fitted, blind_button])
    blind_button.click(loop_blind, [session, fitted, coefficient, temperature], [blind_status, blind])
    verdict_button.click(loop_verdict, [blind, fitted], result)
    gr.context.Context.root_block.load(loop_sessions, None, session, show_progress="hidden")
    return section
