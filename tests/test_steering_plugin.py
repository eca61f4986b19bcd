"""The Steering tab's actions on a real context, store and tiny checkpoint; the tab builds."""
from __future__ import annotations

import re

import pytest

from plugins.steering import actions
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.errors import ConfigError, ModelError
from workbench.settings import Settings

WORDS = ["fox", "dog", "answer", "preference", "brown", "lazy", "quick", "chosen"]


def demo_like_pairs(n: int = 16) -> list[Pair]:
    out = []
    for i in range(n):
        short = WORDS[i % len(WORDS)]
        long = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(10))
        a_first = i % 2 == 0
        out.append(Pair(f"Question {i}?", short if a_first else long, long if a_first else short,
                        metadata={"attribute": "verbosity", "a_pole": "concise" if a_first else "verbose",
                                  "b_pole": "verbose" if a_first else "concise"}))
    return out


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_checkpoint):
    context = AppContext(Settings(home=tmp_path_factory.mktemp("steer-home")))
    context.store.import_pairs("toy", demo_like_pairs(), source="test", format="unlabeled")
    return context


def test_actions_need_a_loaded_causal_model(tmp_path):
    with pytest.raises(ModelError, match="No model picked"):
        AppContext(Settings(home=tmp_path)).causal_model()


def test_fit_vectors_then_stream_side_by_side(ctx, tiny_checkpoint):
    ctx.activate(str(tiny_checkpoint("llama")))
    assert actions.attribute_poles(ctx, "toy") == {"verbosity": ["concise", "verbose"]}
    rows = actions.fit_vectors(ctx, "toy", "verbosity", "verbose", "mean_diff", "1, 2")
    assert [r[1] for r in rows] == [1, 2] and all(r[3] > 0 for r in rows)
    names = actions.vector_choices(ctx)
    assert names == sorted(r[0] for r in rows)
    steering = actions.active_slots(ctx, [names[0], None, ""], [40.0, 0.0, 0.0])
    assert len(steering) == 1
    frames = list(actions.stream_comparison(ctx, "Hello", "", steering, actions.sampling(8, 0.0, 0), every=2))
    plain, steered, b_plain, b_steered, note, _ = frames[-1]
    assert (b_plain, b_steered, note) == ("", "", "")  # no second model picked
    # How far it is, the chat's way: the model, tokens so far / max, and an ETA from the decoding rate.
    progress = [f[5] for f in frames]
    counts = [int(re.search(r": (\d+) / 8 tokens", p).group(1)) for p in progress]
    assert counts == sorted(counts) and counts[0] < counts[-1] and counts[-1] <= 8, progress
    assert all(p.startswith(ctx.active_model_name + ": ") for p in progress), progress
    assert any(re.search(r"tokens, ETA \d+ s$", p) for p in progress[:-1]), progress
    assert 'title="log p = ' in plain and "wb-steer-steered" in steered and plain != steered.replace("steered", "plain")
    with pytest.raises(ConfigError, match="between 1 and 2"):
        actions.fit_vectors(ctx, "toy", "verbosity", "verbose", "pca", "0, 5")
    with pytest.raises(ConfigError, match="prompt"):
        list(actions.stream_comparison(ctx, "  ", "", steering, actions.sampling(8, 0.0, 0)))


def test_reward_training_dpa_and_sweep(ctx, tiny_checkpoint):
    ctx.activate(str(tiny_checkpoint("llama")))
    assert actions.default_high_poles(ctx, "toy") == "verbosity=verbose"
    message = actions.train_reward(ctx, "toy", "verbosity=verbose", 2, "toy-rm")
    assert "toy-rm" in message and "verbosity" in message
    assert actions.reward_model_choices(ctx) == ["toy-rm"] and actions.reward_model_rows(ctx)[0][0] == "toy-rm"
    assert actions.dpa_prompt_preview(ctx, "toy-rm", 0, [1.0, 0, 0, 0]).endswith("verbosity*100")
    result = actions.run_best_of_n(ctx, "toy-rm", "Hello", 0, [1.0, 0, 0, 0], 4, actions.sampling(6, 1.0, 0), True)
    assert len(result.candidates) == 4 and result.attributes == ["verbosity"]
    with pytest.raises(ConfigError, match="attribute=high_pole"):
        actions.parse_high_poles("verbosity")
    rows = actions.fit_vectors(ctx, "toy", "verbosity", "verbose", "mean_diff", "1")
    vector = rows[0][0]
    assert [r[1:3] for r in rows] == [[1, "mean_diff"]] and vector in actions.vector_choices(ctx)
    sweep = actions.run_sweep(ctx, vector, "Hello", -1, 1, 3, actions.sampling(6, 0.7, 0), "toy-rm", "verbosity")
    assert [p.coefficient for p in sweep.points] == [-1.0, 0.0, 1.0] and all(p.reward is not None for p in sweep.points)


def test_tab_builds_in_blocks(ctx):
    import gradio as gr

    from plugins.steering.tab import build_steering_tab

    with gr.Blocks() as demo:
        build_steering_tab(ctx)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"steer-generate", "steer-plain", "steer-steered", "steer-theta", "steer-sweep-run", "steer-dpa-front"} <= ids
    front = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "steer-dpa-front")
    assert (front.x_title, front.y_title) == ("attribute", "vᵀr (score along the direction)")  # not the data columns 'x', 'y'


def test_the_labeling_tab_names_its_tables_columns(ctx):
    """The disagreements table showed headers '1 2 3' until its first answer."""
    import gradio as gr

    from plugins.labeling.manage import DISAGREEMENT_HEADERS
    from plugins.labeling.tab import build_labeling_tab

    with gr.Blocks() as demo:
        build_labeling_tab(ctx)
    tables = {b.label: b.headers for b in demo.blocks.values() if isinstance(b, gr.Dataframe)}
    assert tables["Model–human disagreements"] == DISAGREEMENT_HEADERS


def test_a_coefficient_without_a_vector_is_refused(ctx):
    """Two identical texts and "Done." said nothing: the empty slot is named instead."""
    with pytest.raises(ConfigError, match="Coefficient 2 is 1.5, but slot 2 has no vector") as err:
        actions.active_slots(ctx, ["", None, ""], [0.0, 1.5, 0.0])
    assert "Vector 2" in err.value.hint
    assert actions.active_slots(ctx, ["", None, ""], [0.0, 0.0, 0.0]) == []


FOUR = ["confidence", "formality", "verbosity", "warmth"]


def test_theta_moves_between_two_picked_attributes_of_four():
    """With the default four-attribute reward model θ = 90 used to preview confidence*100 still."""
    from workbench.steering.dpa import dpa_system_prompt

    def preview(theta, axes=(None, None), mode=actions.THETA, weights=(1.0, 0, 0, 0)):
        return dpa_system_prompt(FOUR, actions.direction_for(FOUR, theta, weights, mode, axes))

    assert actions.theta_axes(FOUR) == ("confidence", "formality")
    assert "confidence*100 + formality*0 + verbosity*0 + warmth*0" in preview(0)
    assert "confidence*0 + formality*100 + verbosity*0 + warmth*0" in preview(90)
    assert "confidence*71 + formality*71" in preview(45)
    assert "verbosity*0 + warmth*100" in preview(90, ("verbosity", "warmth")) and "confidence*0" in preview(90, ("verbosity", "warmth"))
    assert "verbosity*-100" in preview(180, ("verbosity", "warmth"))
    assert "confidence*0 + formality*0 + verbosity*100" in preview(90, mode=actions.WEIGHTS, weights=(0, 0, 1.0, 0))
    with pytest.raises(ConfigError, match="two different attributes"):
        preview(30, ("warmth", "warmth"))
    with pytest.raises(ConfigError, match="'kindness' is not an attribute"):
        preview(30, ("kindness", "warmth"))


def test_new_vectors_and_reward_models_reach_every_dropdown(ctx):
    """A fit refreshes the three slot dropdowns and the sweep's, a training the sweep's reward
    dropdown: no "Refresh vectors" button to press."""
    import gradio as gr

    from plugins.steering.tab import build_steering_tab

    with gr.Blocks() as demo:
        build_steering_tab(ctx)
    config = demo.get_config_file()
    id_of = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    deps = config["dependencies"]

    def followers(elem_id):
        """Outputs of the events chained (.then) after the click of the button ``elem_id``."""
        button = next(i for i, e in id_of.items() if e == elem_id)
        first = [i for i, d in enumerate(deps) if [button, "click"] in [list(t) for t in d["targets"]]]
        return {id_of[o] for d in deps if d.get("trigger_after") in first for o in d["outputs"]}

    assert {"steer-slot-0", "steer-slot-1", "steer-slot-2", "steer-sweep-vector"} <= followers("steer-fit")
    assert "steer-sweep-reward" in followers("steer-rm-train")
    assert not any(c.get("props", {}).get("value") == "Refresh vectors" for c in config["components"])


def test_actions_use_the_model_they_name_and_switch_nothing(tmp_path, tiny_checkpoint):
    """One model per request: naming a model loads it into the shared cache, never makes it the app's active one."""
    context = AppContext(Settings(home=tmp_path))
    context.store.import_pairs("toy", demo_like_pairs(), source="test", format="unlabeled")
    name = str(tiny_checkpoint("llama"))
    rows = actions.fit_vectors(context, "toy", "verbosity", "verbose", "mean_diff", "1", model=name)
    frames = list(actions.stream_comparison(context, "Hello", "", actions.active_slots(context, [rows[0][0]], [4.0]),
                                            actions.sampling(4, 0.0, 0), model=name))
    assert frames and context.active_model_name is None and context.active_model is None
    assert len(context.models) == 1  # loaded once, shared by both requests
