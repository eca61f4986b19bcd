"""What the Steering tab does, without any UI library: the tab only wires these to widgets.

Every function takes the application context and plain values and returns plain values
(rows, HTML strings, messages), so they are tested without a browser.
"""
from __future__ import annotations

import html
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from workbench.app import ui
from workbench.context import AppContext
from workbench.errors import ConfigError, DataError, ModelError, WorkbenchError
from workbench.jobs import JobManager
from workbench.jobs.options import SamplingOptions
from workbench.loop import MAX_PROMPT_CHARS, MAX_PROMPTS, held_out_note, start_steering_blind_session
from workbench.models.checkpoint_files import read_json_object
from workbench.models.generation import Streamed, render_prompt
from workbench.models.loading import LoadedModel
from workbench.models.resolve import resolve
from workbench.preference.reward_heads import (
    RewardModel,
    accuracy_parts,
    comparisons_from_poles,
    list_reward_models,
    load_reward_model,
    reward_models_dir,
    train_reward_model,
    train_reward_model_from_session,
)
from workbench.preference.vote_steering import session_vectors, sessions_with_votes
from workbench.steering.contrastive import METHODS, StageProgress, attribute_set, chosen_rejected_set, contrastive_vectors
from workbench.steering.decoding import DecodedRow, side_by_side
from workbench.steering.dpa import BestOfN, best_of_n, dpa_system_prompt, plane_direction, unit_direction
from workbench.steering.library import list_vectors, load_vector, save_fitted
from workbench.steering.sweep import SweepResult, dose_response
from workbench.steering.vectors import SteeringVector

CHOSEN_VS_REJECTED = "chosen vs rejected"
VECTOR_COLUMNS = ["vector", "layer", "method", "scale", "accuracy", "separation", "pairs"]
N_SLOTS = 3
MODEL_STAGE = "model"
FIT_UNITS = {MODEL_STAGE: "model loaded", "activations": "texts", "fit": "layers"}
REWARD_UNITS = {MODEL_STAGE: "model loaded", "features": "texts", "heads": "attributes"}


def require_model_reporting(ctx: AppContext, model: str | None, progress: StageProgress | None) -> LoadedModel:
    """``require_model`` as the first stage of a long action: loading a model can take minutes."""
    if progress:
        progress(MODEL_STAGE, 0, 1)
    lm = ctx.causal_model(model)
    if progress:
        progress(MODEL_STAGE, 1, 1)
    return lm


def sampling(max_new_tokens: float, temperature: float, seed: float | None) -> SamplingOptions:
    """Temperature 0 means greedy decoding."""
    return SamplingOptions(max_new_tokens=int(max_new_tokens), temperature=float(temperature) if temperature > 0 else 1.0,
                            do_sample=temperature > 0, seed=None if seed is None else int(seed))


def model_choices(ctx: AppContext) -> list[str]:
    """The models this tab can steer: causal LMs from the catalog and the loaded ones."""
    return ui.model_choices(ctx, ["causal_lm"])


# -- datasets and vectors ------------------------------------------------------------
def attribute_poles(ctx: AppContext, dataset: str) -> dict[str, list[str]]:
    """Contrastive sets a dataset offers: each metadata attribute with its poles, and chosen vs rejected."""
    pairs = ctx.store.get_pairs(dataset)
    options: dict[str, set[str]] = {}
    for p in pairs:
        meta = p.metadata or {}
        if meta.get("attribute") and meta.get("a_pole") and meta.get("b_pole"):
            options.setdefault(str(meta["attribute"]), set()).update({str(meta["a_pole"]), str(meta["b_pole"])})
    out = {a: sorted(poles) for a, poles in sorted(options.items())}
    if any(p.preferred in ("A", "B") for p in pairs):
        out[CHOSEN_VS_REJECTED] = ["chosen"]
    return out


def parse_layers(text: str, n_layers: int | None, model: str | None = None) -> list[int]:
    """Layer numbers from '8, 12, 16'; with ``n_layers`` unknown (no model yet) only the form and the lower bound."""
    try:
        layers = sorted({int(x) for x in text.replace(",", " ").split()})
    except ValueError:
        raise ConfigError(f"Layers {text!r} are not whole numbers.", hint="Write e.g. 8, 12, 16.") from None
    if not layers or layers[0] < 1 or (n_layers is not None and layers[-1] > n_layers):
        has = f" ({model} has {n_layers})" if model and n_layers is not None else ""
        raise ConfigError(f"Layers must be between 1 and {n_layers if n_layers is not None else 'the number of layers'}{has}; "
                          f"got {text!r}.", hint="Pick block outputs inside the model, e.g. 8, 12, 16.")
    return layers


def check_layers_before_loading(ctx: AppContext, model: str | None, text: str) -> None:
    """Refuse layers that cannot fit before a model loads (which takes seconds to minutes): the form
    always, the range when the model is loaded or its config.json says how many layers it has."""
    name = model or ctx.active_model_name
    lm = ctx.models.get(name or "")
    if lm is not None:
        parse_layers(text, lm.n_layers, lm.name)
        return
    parse_layers(text, None)
    try:
        ref = resolve(ctx.settings, name) if name else None
    except WorkbenchError:
        return  # loading the model then says what is wrong with the name
    config = ref.path / "config.json" if ref is not None and ref.format == "hf" else None
    if config is None or not config.is_file():
        return
    try:
        data = read_json_object(config)
    except WorkbenchError:
        return
    n_layers = data.get("num_hidden_layers", data.get("n_layer"))
    if isinstance(n_layers, int) and not isinstance(n_layers, bool):
        parse_layers(text, n_layers, ref.name)


def fit_vectors(ctx: AppContext, dataset: str, attribute: str, positive_pole: str, method: str, layers_text: str,
                model: str | None = None, progress: StageProgress | None = None) -> list[list[Any]]:
    """Fit one vector per layer from a dataset's contrastive set, save them all, return table rows;
    ``progress(stage, done, total)`` hears the model load, the activations and the per-layer fits."""
    check_method(method)
    check_layers_before_loading(ctx, model, layers_text)
    lm = require_model_reporting(ctx, model, progress)
    pairs = ctx.store.get_pairs(dataset)
    data = chosen_rejected_set(pairs) if attribute == CHOSEN_VS_REJECTED else attribute_set(pairs, attribute, positive_pole)
    data.name = f"{dataset}:{data.name}"
    vectors = contrastive_vectors(lm, data, parse_layers(layers_text, lm.n_layers, lm.name), method=method, cache=ctx.activation_cache,
                                  progress=progress)
    return vector_rows(save_fitted(ctx.settings, vectors, dataset=dataset))


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"Unknown method {method!r}.", hint=f"Choose one of {', '.join(METHODS)}.")


def vector_rows(vectors: Sequence[SteeringVector]) -> list[list[Any]]:
    """Saved vectors as rows of the vector table (``VECTOR_COLUMNS``)."""
    return [[v.name, v.layer, v.method, round(v.scale, 3), round(v.info["accuracy"], 3), round(v.info["separation"], 3),
             v.info["n_pairs"]] for v in vectors]


def vote_session_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """(label, session) for the sessions with A/B votes, the label saying how many."""
    return [(f"{name} ({n} A/B votes)", name) for name, n in sessions_with_votes(ctx.labeling)]


def fit_from_votes(ctx: AppContext, session: str | None, method: str, layers_text: str, model: str | None = None,
                   progress: StageProgress | None = None) -> list[list[Any]]:
    """Fit one vector per layer from a session's A/B votes (chosen vs rejected), save them, return table rows."""
    if not session:
        raise ConfigError("Pick a labeling session with A/B votes.", hint="Vote in the Labeling tab first.")
    check_method(method)
    check_layers_before_loading(ctx, model, layers_text)
    lm = require_model_reporting(ctx, model, progress)
    vectors = session_vectors(lm, ctx.labeling, session, parse_layers(layers_text, lm.n_layers, lm.name), method=method,
                              cache=ctx.activation_cache, progress=progress)
    return vector_rows(save_fitted(ctx.settings, vectors))


def vector_choices(ctx: AppContext, model: str | None = None) -> list[str]:
    """Saved vectors that fit the named (else the start-up) model's residual stream; all of them while
    that model is not loaded yet (listing never loads weights)."""
    lm = ctx.models.get(model) if model else ctx.active_model
    d_model = lm.adapter.d_model(lm.model) if lm is not None and not lm.is_encoder else None
    return [v.name for v in list_vectors(ctx.settings, d_model)]


# -- generation ----------------------------------------------------------------------
def tokens_html(row: DecodedRow, elem_class: str) -> str:
    """The response as token spans; hovering a token shows its log-probability."""
    spans = "".join(
        f'<span class="wb-token" title="log p = {lp:.3f}  (p = {np.exp(lp):.3f})" data-logprob="{lp:.4f}">{html.escape(tok)}</span>'
        for tok, lp in zip(row.tokens, row.logprobs, strict=True)
    )
    mean = f"{np.mean(row.logprobs):.2f}" if row.logprobs else "–"
    return (f'<div class="{elem_class}" style="white-space: pre-wrap">{spans}</div>'
            f'<div class="wb-steer-stats"><small>{row.n_tokens} tokens · mean log p {mean}</small></div>')


def active_slots(ctx: AppContext, names: Sequence[str | None], coefficients: Sequence[float]) -> list[tuple[Any, float]]:
    """The (vector, coefficient) pairs of the filled slider slots; a coefficient without a vector is
    refused, since both sides would be the same unsteered text."""
    out = []
    for i, (name, coef) in enumerate(zip(names, coefficients, strict=True), start=1):
        if name:
            out.append((load_vector(ctx.settings, name), float(coef)))
        elif coef:
            raise ConfigError(f"Coefficient {i} is {float(coef):g}, but slot {i} has no vector, so nothing would be steered.",
                              hint=f"Pick a vector in “Vector {i}” (fit one above), or set coefficient {i} to 0.")
    return out


def steering_that_fits(lm: LoadedModel, steering: list[tuple[SteeringVector, float]]) -> tuple[list[tuple[SteeringVector, float]], str]:
    """The (vector, coefficient) pairs ``lm`` can take (same residual width, layer within its
    blocks) and a note naming the ones it cannot, so a second model is shown unsteered, not crashed."""
    width = lm.adapter.d_model(lm.model)

    def fit(v: SteeringVector) -> bool:
        return v.d_model == width and v.layer <= lm.n_layers

    fits = [(v, c) for v, c in steering if fit(v)]
    left = [f"{v.name} ({v.d_model} dims, layer {v.layer})" for v, _ in steering if not fit(v)]
    note = (f"{lm.name} (residual width {width}, {lm.n_layers} layers) cannot take {', '.join(left)}: "
            + ("shown unsteered." if not fits else "steered by the other vectors only.")) if left else ""
    return fits, note


def _unsteered_html(note: str) -> str:
    return f'<div class="wb-steer-steered"><em>{html.escape(note)}</em></div>'


def timed_pairs(lm: LoadedModel, prompt: str, steering: list[tuple[Any, float]], settings: SamplingOptions,
                system: str | None, every: int) -> Iterator[tuple[DecodedRow, DecodedRow, Streamed]]:
    """``side_by_side`` with how far it is, the chat's way (``Streamed``: tokens so far / max, an ETA from the
    decoding rate): every token step is timed, every ``every``-th and the last are yielded."""
    prompt_tokens = len(lm.tokenizer(render_prompt(lm.tokenizer, prompt, system))["input_ids"])
    t0, first, frame, sent = time.monotonic(), None, None, True
    for n, (plain, steered) in enumerate(side_by_side(lm, prompt, steering, settings, system=system, every=1), 1):
        elapsed = time.monotonic() - t0
        first = elapsed if first is None else first
        frame, sent = (plain, steered, Streamed("", n, settings.max_new_tokens, prompt_tokens, elapsed, first)), False
        if n % every == 0:
            yield frame
            sent = True
    if frame is not None and not sent:
        yield frame


def stream_comparison(ctx: AppContext, prompt: str, system: str, steering: list[tuple[Any, float]],
                      settings: SamplingOptions, every: int = 4, model: str | None = None,
                      compare: str | None = None) -> Iterator[tuple[str, str, str, str, str, str]]:
    """Stream (A unsteered, A steered, B unsteered, B steered, note, progress) for the same prompt, seed
    and sliders: A is ``model``, B the ``compare`` model (its panels stay empty without one); progress
    names the model decoding and its tokens so far / max with an ETA.

    B is decoded after A, with the same settings; the vectors apply to B when their residual
    width and layer fit it, otherwise B is shown unsteered and the note says why.
    """
    lm = ctx.causal_model(model)
    if not (prompt or "").strip():
        raise ConfigError("Type a prompt first.")
    other = ctx.causal_model(compare) if compare else None
    text, sys_text = prompt.strip(), system or None
    a_plain = a_steered = ""
    for plain, steered, state in timed_pairs(lm, text, steering, settings, sys_text, every):
        a_plain, a_steered = tokens_html(plain, "wb-steer-plain"), tokens_html(steered, "wb-steer-steered")
        yield a_plain, a_steered, "", "", "", f"{lm.name}: {state.note()}"
    if other is None:
        return
    fits, note = steering_that_fits(other, steering)
    for plain, steered, state in timed_pairs(other, text, fits, settings, sys_text, every):
        b_steered = tokens_html(steered, "wb-steer-steered") if fits or not steering else _unsteered_html(note)
        yield a_plain, a_steered, tokens_html(plain, "wb-steer-plain"), b_steered, note, f"{other.name}: {state.note()}"


# -- blind test of a steering setting ---------------------------------------------------
def session_choices(ctx: AppContext) -> list[str]:
    """Labeling sessions, whose prompts (those that fitted none of the vectors) a blind test can use."""
    return [s.name for s in ctx.labeling.list_sessions()]


def typed_prompts(text: str | None) -> list[str] | None:
    """Prompts typed one per line (None when none are), within the limits of a prompt file."""
    prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(prompts) > MAX_PROMPTS or any(len(p) > MAX_PROMPT_CHARS for p in prompts):
        raise ConfigError(f"At most {MAX_PROMPTS} prompts of at most {MAX_PROMPT_CHARS} characters each.",
                          hint="Test on fewer or shorter prompts.")
    return prompts or None


def blind_test(ctx: AppContext, manager: JobManager, model: str | None, names: Sequence[str | None], coefficients: Sequence[float],
               from_session: str | None, prompts_text: str | None, n: float | None, session: str | None,
               max_new_tokens: float) -> str:
    """Start the blind unsteered-vs-steered session of the sliders' setting; the message to show."""
    name = model or ctx.active_model_name
    if not name:
        raise ModelError("No model picked.", hint="Pick a model in the Model dropdown at the top of this tab.")
    steering = [(v.name, c) for v, c in active_slots(ctx, names, coefficients)]
    run = start_steering_blind_session(manager, name, steering, prompts=typed_prompts(prompts_text), from_session=from_session or None,
                                       n=int(n) if n else None, session=(session or "").strip() or None,
                                       max_new_tokens=int(max_new_tokens))
    setting = ", ".join(f"{ui.md_escape(v)} × {c:g}" for v, c in steering if c)
    used = len(run.config["prompts"])
    why = held_out_note(ctx.settings, None if typed_prompts(prompts_text) else from_session, [v for v, c in steering if c], used,
                        int(n) if n else None)
    return (f"Started **{ui.md_escape(run.id)}**: {ui.md_escape(name)} answers {used} prompts unsteered and "
            f"steered ({setting}); it opens the blind session **{ui.md_escape(run.config['session'])}**. Prompts: "
            f"{ui.md_escape(why)} Label it; its statistics say whether steered won.")


# -- dose-response ---------------------------------------------------------------------
def run_sweep(ctx: AppContext, vector_name: str, prompts_text: str, low: float, high: float, steps: int,
              settings: SamplingOptions, reward_model: str | None = None, attribute: str | None = None,
              model: str | None = None) -> SweepResult:
    lm = ctx.causal_model(model)
    if not vector_name:
        raise ConfigError("Pick a steering vector to sweep.")
    prompts = [line.strip() for line in (prompts_text or "").splitlines() if line.strip()]
    if not prompts:
        raise ConfigError("Give at least one prompt (one per line).")
    if steps < 2 or high <= low:
        raise ConfigError(f"The sweep needs high > low and at least 2 steps; got {low}..{high} in {steps} steps.")
    score = None
    if reward_model:
        rm = load_reward_model(ctx.settings, reward_model)
        column = rm.index(attribute) if attribute else None

        def score(ps: list[Any], ys: list[str]) -> np.ndarray:
            r = rm.score(lm, ps, ys)
            return r[:, column] if column is not None else r.mean(1)

    return dose_response(lm, load_vector(ctx.settings, vector_name), prompts, np.linspace(low, high, int(steps)).round(4),
                         score=score, settings=settings)


# -- reward models and DPA -----------------------------------------------------------------
def parse_high_poles(text: str) -> dict[str, str]:
    """``verbosity=verbose, formality=formal`` → {attribute: the pole that scores high}."""
    out = {}
    for part in (text or "").replace("\n", ",").split(","):
        if part.strip():
            attribute, sep, pole = part.partition("=")
            if not sep or not attribute.strip() or not pole.strip():
                raise ConfigError(f"{part.strip()!r} is not of the form attribute=high_pole.", hint="E.g. verbosity=verbose.")
            out[attribute.strip()] = pole.strip()
    if not out:
        raise ConfigError("Name at least one attribute and the pole that should score high.", hint="E.g. verbosity=verbose.")
    return out


def default_high_poles(ctx: AppContext, dataset: str) -> str:
    if dataset.startswith(SESSION_SOURCE):
        return ""  # a session's votes say which response is better: no poles to name
    """A starting point for the poles text: each attribute with its alphabetically last pole."""
    options = {a: p for a, p in attribute_poles(ctx, dataset).items() if a != CHOSEN_VS_REJECTED}
    return ", ".join(f"{a}={poles[-1]}" for a, poles in options.items())


SESSION_SOURCE = "session:"  # a reward-source choice that names a labeling session, not a dataset


def reward_source_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """The reward form's sources, one list: datasets (their attribute poles), then sessions with votes (their A/B and aspect votes)."""
    return ([(d, d) for d in ui.dataset_choices(ctx)]
            + [(f"session {name} ({n} A/B votes)", SESSION_SOURCE + name) for name, n in sessions_with_votes(ctx.labeling)])


def train_reward(ctx: AppContext, dataset: str, high_poles_text: str, layer: int, name: str, model: str | None = None,
                 progress: StageProgress | None = None) -> str:
    """Train and save a reward model on a dataset's poles or a session's votes (then with the DPA direction
    the overall votes imply); ``progress`` hears the model load, features and heads."""
    if not dataset:
        raise ConfigError("No source picked.", hint="Pick a dataset or a session in “Dataset or session”.")
    lm = require_model_reporting(ctx, model, progress)
    if dataset.startswith(SESSION_SOURCE):
        session = dataset[len(SESSION_SOURCE):]
        rm = train_reward_model_from_session(lm, ctx.labeling, session, name=name, layer=int(layer),
                                             cache=ctx.activation_cache, progress=progress)
        path = rm.save(reward_models_dir(ctx.settings))
        return (f"Saved reward model **{ui.md_escape(rm.name)}** ({path}) from the votes of session **{ui.md_escape(session)}**, "
                f"with its DPA direction. Held-out pairwise accuracy — {accuracy_text(rm)}.")
    comparisons = comparisons_from_poles(ctx.store.get_pairs(dataset), parse_high_poles(high_poles_text))
    if not comparisons:
        raise DataError(f"Dataset {dataset!r} has no pairs whose poles match {high_poles_text!r}.",
                        field="metadata.attribute", hint="Check the attribute names and poles listed above.")
    rm = train_reward_model(lm, name=name, layer=int(layer), comparisons=comparisons, cache=ctx.activation_cache, progress=progress)
    path = rm.save(reward_models_dir(ctx.settings))
    return f"Saved reward model **{rm.name}** ({path}). Held-out pairwise accuracy — {accuracy_text(rm)}."


def accuracy_text(rm: RewardModel) -> str:
    """Every head's held-out accuracy with its interval, n and L2, attribute names escaped for Markdown."""
    return ", ".join(f"{ui.md_escape(attr)}: {text}" for attr, text in accuracy_parts(rm))


def reward_model_choices(ctx: AppContext) -> list[str]:
    return [r["name"] for r in list_reward_models(ctx.settings)]


def reward_model_rows(ctx: AppContext) -> list[list[Any]]:
    return [[r["name"], r["base_model"], r["layer"], ", ".join(r["attributes"]),
             ", ".join(f"{a}: {acc:.2f}" for a, acc in r["heldout_accuracy"].items() if acc is not None)]
            for r in list_reward_models(ctx.settings)]


def reward_attributes(ctx: AppContext, name: str | None) -> list[str]:
    return load_reward_model(ctx.settings, name).attributes if name else []


THETA, WEIGHTS = "θ between two attributes", "per-attribute weights"


def theta_axes(attributes: Sequence[str]) -> tuple[str | None, str | None]:
    """The two attributes θ moves between by default: the first two."""
    return (attributes[0] if attributes else None, attributes[1] if len(attributes) > 1 else None)


def direction_for(attributes: Sequence[str], theta: float, weights: Sequence[float], mode: str = THETA,
                  axes: tuple[str | None, str | None] = (None, None)) -> np.ndarray:
    """θ mode: cos θ on the x attribute, sin θ on the y one (the first two unless picked); weights
    mode: the per-attribute sliders normalised to unit length. One attribute: the direction is it."""
    if len(attributes) == 1:
        return np.ones(1)
    if mode == WEIGHTS:
        return unit_direction(list(weights)[:len(attributes)])
    x, y = (a or d for a, d in zip(axes, theta_axes(attributes), strict=True))
    return plane_direction(attributes, x, y, theta)


def dpa_prompt_preview(ctx: AppContext, reward_model: str | None, theta: float, weights: Sequence[float], mode: str = THETA,
                       axes: tuple[str | None, str | None] = (None, None)) -> str:
    if not reward_model:
        return ""
    attrs = reward_attributes(ctx, reward_model)
    return dpa_system_prompt(attrs, direction_for(attrs, theta, weights, mode, axes))


def run_best_of_n(ctx: AppContext, reward_model: str, prompt: str, theta: float, weights: Sequence[float], n: int,
                  settings: SamplingOptions, condition_prompt: bool, mode: str = THETA,
                  axes: tuple[str | None, str | None] = (None, None), model: str | None = None) -> BestOfN:
    lm = ctx.causal_model(model)
    if not reward_model:
        raise ConfigError("Pick a reward model (or train one above).")
    if not (prompt or "").strip():
        raise ConfigError("Type a prompt first.")
    rm: RewardModel = load_reward_model(ctx.settings, reward_model)
    direction = direction_for(rm.attributes, theta, weights, mode, axes)
    system = dpa_system_prompt(rm.attributes, direction) if condition_prompt else None
    return best_of_n(lm, prompt.strip(), rm, direction, n=int(n), settings=settings, system=system)
