"""The "Steering" tab: fit vectors, steer with sliders, sweep a coefficient, DPA best-of-n.

Layout and event wiring only; ``plugins.steering.actions`` does the work. Every
WorkbenchError is shown in the page as its message and hint.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import pandas as pd

from plugins.steering import actions
from plugins.steering.progress import Background
from workbench.app.auth import require_owner
from workbench.app.ui import dataset_choices, error_markdown, md_escape
from workbench.context import AppContext
from workbench.errors import WorkbenchError
from workbench.jobs import JobManager
from workbench.jobs.options import SamplingOptions
from workbench.steering.contrastive import METHODS

PREVIEW = SamplingOptions(max_new_tokens=96)  # the side-by-side answers: the app's sampling, a shorter answer than a chat's

CSS = """
.wb-token:hover { background: #fde68a; cursor: help; }
.wb-steer-plain, .wb-steer-steered { min-height: 6em; font-family: ui-monospace, monospace; font-size: 0.9em; }
"""


def _fit_with_progress(ctx: AppContext, request: gr.Request, title: str, fit: Any, saved: str) -> Iterator[tuple[Any, str]]:
    """Owner only; the status line follows the fit (model load, activations, per-layer fits) with an ETA."""
    try:
        require_owner(ctx.settings, request.username, "fit and save steering vectors")
        job = Background(fit, title, actions.FIT_UNITS)
        for line in job:
            yield gr.skip(), line
    except WorkbenchError as exc:
        yield gr.skip(), error_markdown(exc)
        return
    yield job.result, f"Saved {len(job.result)} vector(s){saved}."


def _vectors_section(ctx: AppContext, model: gr.Dropdown) -> Any:
    """Returns the fit event, so the vector dropdowns elsewhere can follow a new fit."""
    gr.Markdown("### Steering vectors from contrastive sets")
    with gr.Row():
        dataset = gr.Dropdown(label="Dataset", choices=[], scale=2, elem_id="steer-dataset")
        attribute = gr.Dropdown(label="Contrast", choices=[], scale=2, elem_id="steer-attribute")
        pole = gr.Dropdown(label="Positive pole", choices=[], scale=1, elem_id="steer-pole")
        method = gr.Dropdown(label="Method", choices=list(METHODS), value="mean_diff", scale=1, elem_id="steer-method")
        layers = gr.Textbox(label="Layers", value="8, 12, 16", scale=1, elem_id="steer-layers")
    fit = gr.Button("Fit and save vectors", variant="primary", elem_id="steer-fit")
    table = gr.Dataframe(headers=actions.VECTOR_COLUMNS, interactive=False, elem_id="steer-vector-table")
    status = gr.Markdown(elem_id="steer-fit-status")
    poles_state = gr.State({})

    def on_dataset(name: str | None) -> tuple[Any, Any, Any]:
        if not name:
            return {}, gr.Dropdown(choices=[]), gr.Dropdown(choices=[])
        options = actions.attribute_poles(ctx, name)
        first = next(iter(options), None)
        return options, gr.Dropdown(choices=list(options), value=first), gr.Dropdown(
            choices=options.get(first, []), value=(options.get(first) or [None])[-1])

    def on_attribute(options: dict[str, list[str]], name: str | None) -> Any:
        poles = options.get(name or "", [])
        return gr.Dropdown(choices=poles, value=poles[-1] if poles else None)

    def on_fit(ds: str, attr: str, positive: str, how: str, layer_text: str, name: str | None,
               request: gr.Request) -> Iterator[tuple[Any, str]]:
        yield from _fit_with_progress(
            ctx, request, "Fitting steering vectors",
            lambda progress: actions.fit_vectors(ctx, ds, attr, positive, how, layer_text, model=name, progress=progress),
            ": they are in the Vector dropdowns below and in the dose-response sweep")

    gr.on(triggers=None, fn=lambda: gr.Dropdown(choices=dataset_choices(ctx)), outputs=dataset)
    dataset.change(on_dataset, inputs=dataset, outputs=[poles_state, attribute, pole])
    attribute.change(on_attribute, inputs=[poles_state, attribute], outputs=pole)
    return fit.click(on_fit, inputs=[dataset, attribute, pole, method, layers, model], outputs=[table, status])


def _votes_section(ctx: AppContext, model: gr.Dropdown) -> Any:
    """A vector toward what a session's annotators chose; returns the fit event (the vector dropdowns follow it)."""
    gr.Markdown("### Steering vector from a session's votes (chosen vs rejected responses)")
    with gr.Row():
        session = gr.Dropdown(label="Labeling session (with A/B votes)", choices=[], scale=3, elem_id="steer-votes-session")
        method = gr.Dropdown(label="Method", choices=list(METHODS), value="mean_diff", scale=1, elem_id="steer-votes-method")
        layers = gr.Textbox(label="Layers", value="8, 12, 16", scale=1, elem_id="steer-votes-layers")
    fit = gr.Button("Fit from votes", elem_id="steer-votes-fit")
    table = gr.Dataframe(headers=actions.VECTOR_COLUMNS, interactive=False, elem_id="steer-votes-table")
    status = gr.Markdown(elem_id="steer-votes-status")

    def on_fit(name: str | None, how: str, layer_text: str, base: str | None, request: gr.Request) -> Iterator[tuple[Any, str]]:
        yield from _fit_with_progress(
            ctx, request, "Fitting steering vectors from votes",
            lambda progress: actions.fit_from_votes(ctx, name, how, layer_text, model=base, progress=progress),
            f" from the votes of **{name}**: they are in the Vector dropdowns below")

    gr.on(triggers=None, fn=lambda: gr.Dropdown(choices=actions.vote_session_choices(ctx)), outputs=session)
    return fit.click(on_fit, inputs=[session, method, layers, model], outputs=[table, status])


def vector_dropdowns(ctx: AppContext, n: int, model: str | None) -> list[Any]:
    """``n`` vector dropdowns refilled with the saved vectors that fit ``model`` (keeping each one's pick)."""
    names = actions.vector_choices(ctx, model)
    return [gr.Dropdown(choices=[""] + names) for _ in range(n)]


def _generation_section(ctx: AppContext, model: gr.Dropdown) -> list[gr.Dropdown]:
    gr.Markdown("### Steered vs unsteered, same seed")
    prompt = gr.Textbox(label="Prompt", value="Tell me about the moon.", lines=2, elem_id="steer-prompt")
    system = gr.Textbox(label="System prompt (optional)", elem_id="steer-system")
    slots: list[gr.Dropdown] = []
    sliders: list[gr.Slider] = []
    for i in range(actions.N_SLOTS):
        with gr.Row(equal_height=True):
            slots.append(gr.Dropdown(label=f"Vector {i + 1}", choices=[], scale=3, elem_id=f"steer-slot-{i}"))
            sliders.append(gr.Slider(-8, 8, value=0, step=0.25, label=f"Coefficient {i + 1}", scale=2, elem_id=f"steer-coef-{i}"))
    with gr.Row():
        max_new = gr.Slider(8, 512, value=PREVIEW.max_new_tokens, step=8, label="Max new tokens", elem_id="steer-max-new")
        temperature = gr.Slider(0.0, 2.0, value=PREVIEW.temperature, step=0.05, label="Temperature (0 = greedy)")
        seed = gr.Number(value=0, precision=0, label="Seed")
    compare = gr.Dropdown(label="Compare with (optional): the same prompt, seed and sliders under a second model",
                          choices=[""], value="", elem_id="steer-compare")
    go = gr.Button("Generate", variant="primary", elem_id="steer-generate")
    status = gr.Markdown(elem_id="steer-gen-status")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Unsteered**")
            plain = gr.HTML(elem_id="steer-plain")
        with gr.Column():
            gr.Markdown("**Steered** (hover a token for its log-probability)")
            steered = gr.HTML(elem_id="steer-steered")
    with gr.Row(visible=False) as second:
        with gr.Column():
            b_title = gr.Markdown("**Second model, unsteered**", elem_id="steer-b-title")
            b_plain = gr.HTML(elem_id="steer-b-plain")
        with gr.Column():
            gr.Markdown("**Second model, steered**")
            b_steered = gr.HTML(elem_id="steer-b-steered")

    def on_generate(text: str, sys_text: str, mx: float, temp: float, seed_value: float | None, name: str | None,
                    other: str | None, *slot_values: Any) -> Iterator[tuple[Any, ...]]:
        names, coefs = slot_values[:actions.N_SLOTS], slot_values[actions.N_SLOTS:]
        skip5 = (gr.skip(),) * 5
        try:
            steering = actions.active_slots(ctx, names, coefs)
            yield *skip5, "Generating…" if steering else "No vector picked: both sides are the unsteered model."
            frame = ("",) * 6  # A unsteered, A steered, B unsteered, B steered, note on B, tokens so far / max and ETA
            for frame in actions.stream_comparison(ctx, text, sys_text, steering, actions.sampling(mx, temp, seed_value),
                                                   model=name, compare=other or None):
                yield *frame[:4], f"**{other}, unsteered**" if other else gr.skip(), f"⏳ *{md_escape(frame[5])}*"
            yield *skip5, "Done." + (f" {frame[4]}" if frame[4] else "")
        except WorkbenchError as exc:
            yield *skip5, error_markdown(exc)

    with gr.Accordion("Blind-test this setting: a labeling session of unsteered vs steered answers", open=False):
        gr.Markdown("The model above answers held-out prompts greedily, once unsteered and once with the vectors and "
                    "coefficients above; annotators see the two answers blind, and the session's statistics say whether steered won.")
        with gr.Row():
            from_session = gr.Dropdown(label="Prompts of session (those that fitted none of the vectors)", choices=[""], value="",
                                       scale=2, elem_id="steer-blind-from")
            limit = gr.Number(value=None, precision=0, label="First N prompts (empty = all)", scale=1, elem_id="steer-blind-n")
            name = gr.Textbox(label="New session name (empty = steered-blind-<time>)", scale=2, elem_id="steer-blind-name")
        typed = gr.Textbox(label="…or prompts, one per line", lines=3, elem_id="steer-blind-prompts")
        blind = gr.Button("Blind-test this setting", elem_id="steer-blind-run")
        blind_status = gr.Markdown(elem_id="steer-blind-status")
    manager = JobManager.for_context(ctx)

    def on_blind(request: gr.Request, base: str | None, source: str | None, text: str, n: float | None, session: str, mx: float,
                 *slot_values: Any) -> str:
        """Owner only: it starts a generation job and makes a session (the request first: Gradio puts it at its index,
        which after *slot_values would be among them)."""
        names, coefs = slot_values[:actions.N_SLOTS], slot_values[actions.N_SLOTS:]
        try:
            require_owner(ctx.settings, request.username, "make a labeling session")
            return actions.blind_test(ctx, manager, base, names, coefs, source, text, n, session, mx)
        except WorkbenchError as exc:
            return error_markdown(exc)

    gr.on(triggers=None, fn=lambda: gr.Dropdown(choices=["", *actions.session_choices(ctx)]), outputs=from_session)
    blind.click(on_blind, inputs=[model, from_session, typed, limit, name, max_new, *slots, *sliders], outputs=blind_status)
    compare.change(lambda other: gr.Row(visible=bool(other)), inputs=compare, outputs=second)
    go.click(on_generate, inputs=[prompt, system, max_new, temperature, seed, model, compare, *slots, *sliders],
             outputs=[plain, steered, b_plain, b_steered, b_title, status])
    return slots, compare


def _sweep_section(ctx: AppContext, model: gr.Dropdown) -> tuple[gr.Dropdown, gr.Dropdown]:
    gr.Markdown("### Dose-response sweep")
    with gr.Row():
        vector = gr.Dropdown(label="Vector", choices=[], scale=3, elem_id="steer-sweep-vector")
        low = gr.Number(value=-4, label="From")
        high = gr.Number(value=4, label="To")
        steps = gr.Number(value=5, precision=0, label="Steps")
    with gr.Row():
        reward = gr.Dropdown(label="Reward model (optional)", choices=[], scale=2, elem_id="steer-sweep-reward")
        attribute = gr.Dropdown(label="Reward attribute (empty = mean)", choices=[], scale=2)
        max_new = gr.Slider(8, 256, value=48, step=8, label="Max new tokens")
    prompts = gr.Textbox(label="Prompts (one per line)", lines=3, value="Tell me about the moon.\nHow do plants grow?")
    go = gr.Button("Run sweep", elem_id="steer-sweep-run")
    status = gr.Markdown(elem_id="steer-sweep-status")
    table = gr.Dataframe(interactive=False, elem_id="steer-sweep-table")
    plot = gr.LinePlot(x="coefficient", y="value", color="metric", title="Dose-response", height=280)

    def refresh() -> Any:
        return gr.Dropdown(choices=[""] + actions.reward_model_choices(ctx))

    def on_reward(name: str | None) -> Any:
        try:
            return gr.Dropdown(choices=[""] + actions.reward_attributes(ctx, name or None), value="")
        except WorkbenchError:
            return gr.Dropdown(choices=[""], value="")

    def on_run(vec: str, lo: float, hi: float, n: float, rm: str | None, attr: str | None, mx: float, text: str,
               name: str | None) -> tuple[Any, Any, str]:
        try:
            result = actions.run_sweep(ctx, vec, text, lo, hi, int(n), actions.sampling(mx, PREVIEW.temperature, 0), rm or None, attr or None, model=name)
        except WorkbenchError as exc:
            return gr.skip(), gr.skip(), error_markdown(exc)
        df = pd.DataFrame(result.rows())
        metrics = [c for c in ("reward", "kl", "repetition", "compression") if df[c].notna().all()]
        long = df.melt(id_vars="coefficient", value_vars=metrics, var_name="metric", value_name="value")
        lo_ok, hi_ok = result.usable
        return df.round(4), long, f"Suggested usable range: **{lo_ok:g} … {hi_ok:g}** (KL ≤ {result.limits['max_kl']:g} nats/token, no degeneration)."

    gr.on(triggers=None, fn=refresh, outputs=reward)
    reward.change(on_reward, inputs=reward, outputs=attribute)
    go.click(on_run, inputs=[vector, low, high, steps, reward, attribute, max_new, prompts, model], outputs=[table, plot, status])
    return vector, reward


def _train_reward(ctx: AppContext, ds: str, poles_text: str, layer: int, name: str, base: str | None,
                  user: str | None) -> Iterator[tuple[str, Any, Any]]:
    """Owner only; the status line follows the training (model load, features, heads) with an ETA."""
    try:
        require_owner(ctx.settings, user, "train and save reward models")
        job = Background(lambda progress: actions.train_reward(ctx, ds, poles_text, layer, name, model=base, progress=progress),
                         "Training the reward model", actions.REWARD_UNITS)
        for line in job:
            yield line, gr.skip(), gr.skip()
    except WorkbenchError as exc:
        yield error_markdown(exc), gr.skip(), gr.skip()
        return
    yield job.result, actions.reward_model_rows(ctx), gr.Dropdown(choices=actions.reward_model_choices(ctx), value=name)


def _best_of_n_outputs(result: Any, how: str, x: str | None, y: str | None) -> tuple[Any, ...]:
    """Status, chosen response, trade-off plot (axes named after the attributes shown) and the candidates' table."""
    df = pd.DataFrame(result.rows())
    a = [x or result.attributes[0], y] if how == actions.THETA and y else result.attributes
    points = pd.DataFrame({"x": df[a[0]], "y": df[a[1]] if len(a) > 1 else df["score"],
                           "pick": ["chosen" if c else ("front" if f else "other") for c, f in zip(df["chosen"], df["on_front"], strict=True)]})
    message = (f"x = {a[0]}, y = {a[1] if len(a) > 1 else 'vᵀr'} · best of {len(df)} by vᵀr = {result.scores[result.best]:.2f} · "
               f"scoring took {result.timings['score_s_per_candidate'] * 1000:.0f} ms per candidate")
    y_title = a[1] if len(a) > 1 else "vᵀr (score along the direction)"
    return message, result.response, gr.ScatterPlot(value=points, x_title=a[0], y_title=y_title), df.round(3)


def _dpa_section(ctx: AppContext, model: gr.Dropdown) -> Any:
    """Returns the reward-model training event, so the sweep's reward dropdown can follow it."""
    gr.Markdown("### DPA: a direction in reward space")
    with gr.Accordion("Train a reward model (per-attribute Bradley–Terry heads)", open=False):
        with gr.Row():
            dataset = gr.Dropdown(label="Dataset or session", choices=[], scale=2, elem_id="steer-rm-dataset",
                                  info="a dataset's attribute poles, or a labeling session's votes (adds the DPA direction)")
            poles = gr.Textbox(label="High poles (attribute=pole, …)", scale=3, elem_id="steer-rm-poles")
            layer = gr.Number(value=20, precision=0, label="Layer")
            name = gr.Textbox(value="demo-rewards", label="Name", elem_id="steer-rm-name")
        train = gr.Button("Train and save", elem_id="steer-rm-train")
        train_status = gr.Markdown(elem_id="steer-rm-status")
    models = gr.Dataframe(headers=["name", "base model", "layer", "attributes", "held-out pairwise accuracy"], interactive=False)
    with gr.Row():
        reward = gr.Dropdown(label="Reward model", choices=[], scale=2, elem_id="steer-rm")
        mode = gr.Radio([actions.THETA, actions.WEIGHTS], value=actions.THETA, label="Direction from", scale=2, elem_id="steer-dpa-mode")
    with gr.Row():
        x_attr = gr.Dropdown(label="θ = 0°: attribute", choices=[], scale=1, elem_id="steer-theta-x")
        y_attr = gr.Dropdown(label="θ = 90°: attribute", choices=[], scale=1, elem_id="steer-theta-y")
        theta = gr.Slider(-180, 180, value=0, step=5, label="θ: v = cos θ · x + sin θ · y (other attributes 0)", scale=3, elem_id="steer-theta")
    with gr.Row():
        weights = [gr.Slider(-1, 1, value=1.0 if i == 0 else 0.0, step=0.05, label=f"weight {i + 1}") for i in range(4)]
    with gr.Row():
        n = gr.Slider(2, 32, value=8, step=1, label="Candidates n")
        max_new = gr.Slider(8, 256, value=64, step=8, label="Max new tokens")
        seed = gr.Number(value=0, precision=0, label="Seed")
        condition = gr.Checkbox(label="Put the direction in the system prompt (DPA-trained checkpoints)", value=False)
    prompt = gr.Textbox(label="Prompt", value="Tell me about the moon.", elem_id="steer-dpa-prompt")
    preview = gr.Textbox(label="DPA system prompt", interactive=False, elem_id="steer-dpa-system")
    go = gr.Button("Sample and rerank", variant="primary", elem_id="steer-dpa-run")
    status = gr.Markdown(elem_id="steer-dpa-status")
    chosen = gr.Textbox(label="Chosen response", lines=4, interactive=False, elem_id="steer-dpa-chosen")
    front = gr.ScatterPlot(x="x", y="y", color="pick", title="Candidates' attribute trade-off", height=300, elem_id="steer-dpa-front",
                           x_title="attribute", y_title="vᵀr (score along the direction)")
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="steer-dpa-table")

    def refresh() -> tuple[Any, Any, Any]:
        return (gr.Dropdown(choices=actions.reward_model_choices(ctx)), actions.reward_model_rows(ctx),
                gr.Dropdown(choices=actions.reward_source_choices(ctx)))

    def on_dataset(name: str | None) -> str:
        return actions.default_high_poles(ctx, name) if name else ""

    def on_train(ds: str, poles_text: str, layer_value: float, model_name: str, base: str | None,
                 request: gr.Request) -> Iterator[tuple[str, Any, Any]]:
        yield from _train_reward(ctx, ds, poles_text, int(layer_value), model_name, base, request.username)

    def on_reward(rm: str | None) -> tuple[Any, Any]:
        """θ's two attributes: the reward model's first two, changeable to any pair."""
        try:
            attrs = actions.reward_attributes(ctx, rm)
        except WorkbenchError:
            attrs = []
        x, y = actions.theta_axes(attrs)
        return gr.Dropdown(choices=attrs, value=x), gr.Dropdown(choices=attrs, value=y)

    def on_preview(rm: str | None, th: float, how: str, x: str | None, y: str | None, *ws: float) -> str:
        try:
            return actions.dpa_prompt_preview(ctx, rm, th, ws, how, (x, y))
        except WorkbenchError as exc:
            return str(exc)

    def on_run(rm: str, text: str, th: float, count: float, mx: float, seed_value: float | None, cond: bool, how: str,
               x: str | None, y: str | None, base: str | None, *ws: float) -> tuple[Any, ...]:
        try:
            result = actions.run_best_of_n(ctx, rm, text, th, ws, int(count), actions.sampling(mx, 1.0, seed_value), cond, how, (x, y),
                                           model=base)
        except WorkbenchError as exc:
            return error_markdown(exc), gr.skip(), gr.skip(), gr.skip()
        return _best_of_n_outputs(result, how, x, y)

    gr.on(triggers=None, fn=refresh, outputs=[reward, models, dataset])
    dataset.change(on_dataset, inputs=dataset, outputs=poles)
    trained = train.click(on_train, inputs=[dataset, poles, layer, name, model], outputs=[train_status, models, reward])
    reward.change(on_reward, inputs=reward, outputs=[x_attr, y_attr])
    for control in (reward, theta, mode, x_attr, y_attr, *weights):
        control.change(on_preview, inputs=[reward, theta, mode, x_attr, y_attr, *weights], outputs=preview)
    go.click(on_run, inputs=[reward, prompt, theta, n, max_new, seed, condition, mode, x_attr, y_attr, model, *weights],
             outputs=[status, chosen, front, table])
    return trained


def build_steering_tab(ctx: AppContext) -> None:
    gr.HTML(f"<style>{CSS}</style>")
    gr.Markdown("Steer a causal language model: activation steering vectors with sliders, a dose-response sweep, "
                "and DPA best-of-n reranking with a multi-objective reward model.")
    # Every action names this model: a request never switches the model other tabs or users see.
    model = gr.Dropdown(label="Model", choices=[], elem_id="steer-model")
    with gr.Tab("Steer"):
        fitted = _vectors_section(ctx, model)
        from_votes = _votes_section(ctx, model)
        slots, compare = _generation_section(ctx, model)
    with gr.Tab("Dose-response"):
        sweep_vector, sweep_reward = _sweep_section(ctx, model)
    with gr.Tab("DPA"):
        trained = _dpa_section(ctx, model)

    def on_load() -> tuple[Any, Any]:
        names = actions.model_choices(ctx)
        return (gr.Dropdown(choices=names, value=ctx.active_model_name if ctx.active_model_name in names else (names[0] if names else None)),
                gr.Dropdown(choices=["", *names], value=""))

    def vectors_for(name: str | None) -> list[Any]:
        return vector_dropdowns(ctx, len(slots) + 1, name)

    gr.on(triggers=None, fn=on_load, outputs=[model, compare])
    # What this server just made is in every dropdown at once: no "refresh" buttons.
    model.change(vectors_for, inputs=model, outputs=[*slots, sweep_vector])
    for fit in (fitted, from_votes):
        fit.then(vectors_for, inputs=model, outputs=[*slots, sweep_vector])
    trained.then(lambda: gr.Dropdown(choices=[""] + actions.reward_model_choices(ctx)), outputs=sweep_reward)
