"""The Steering tab under two checkpoints, stage + ETA for its long actions, owner-only fits.

Real tiny random checkpoints (a base, a copy with one perturbed block, a wider llama), a real
store and activation cache, and the tab's own event handlers called as Gradio calls them.
"""
from __future__ import annotations

import threading

import gradio as gr
import pytest
from test_steering_plugin import demo_like_pairs
from test_view_compare import write_compared_models

from plugins.steering import actions
from plugins.steering.progress import Background, ProgressText
from plugins.steering.tab import build_steering_tab
from workbench.activations import ActivationCache
from workbench.context import AppContext
from workbench.errors import DataError
from workbench.preference.reward_heads import comparisons_from_poles, train_reward_model
from workbench.settings import Settings
from workbench.steering.contrastive import attribute_set, contrastive_vectors


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    home = tmp_path_factory.mktemp("steer-compare") / "home"
    write_compared_models(home / "models")
    context = AppContext(Settings(home=home, users={"ann": "pw"}))
    context.store.import_pairs("toy", demo_like_pairs(), source="test", format="unlabeled")
    return context


def model(ctx, name: str) -> str:
    return str(ctx.settings.home / "models" / name)


def test_same_prompt_seed_and_slider_under_two_models(ctx):
    rows = actions.fit_vectors(ctx, "toy", "verbosity", "verbose", "mean_diff", "1", model=model(ctx, "base"))
    steering = actions.active_slots(ctx, [rows[0][0]], [40.0])
    settings = actions.sampling(8, 0.0, 0)
    *_, (a_plain, a_steered, b_plain, b_steered, note, _) = actions.stream_comparison(
        ctx, "Hello", "", steering, settings, model=model(ctx, "base"), compare=model(ctx, "tuned"))
    assert note == "" and a_plain != a_steered.replace("steered", "plain")
    assert b_plain != b_steered.replace("steered", "plain")  # the base's vector steers the fine-tune too
    assert b_plain != a_plain  # and B is really the other model
    alone = list(actions.stream_comparison(ctx, "Hello", "", steering, settings, model=model(ctx, "base")))
    assert alone[-1][:2] == (a_plain, a_steered) and alone[-1][2:5] == ("", "", "")  # A is the same with or without B
    # Another residual width: B is shown unsteered with the reason, never a crash.
    *_, (_, _, w_plain, w_steered, note, _) = actions.stream_comparison(
        ctx, "Hello", "", steering, settings, model=model(ctx, "base"), compare=model(ctx, "wide"))
    assert "residual width 48" in note and "32 dims" in note and "shown unsteered" in note
    assert 'title="log p = ' in w_plain and "wb-token" not in w_steered and "shown unsteered" in w_steered


def test_fit_and_reward_training_report_monotone_stages(ctx):
    lm = ctx.get_model(model(ctx, "base"))
    data = attribute_set(demo_like_pairs(), "verbosity", "verbose")
    seen: list[tuple[str, int, int]] = []
    contrastive_vectors(lm, data, [1, 2], batch_size=8, progress=lambda *r: seen.append(r))
    assert [s for s, *_ in seen] == ["activations"] * 4 + ["fit"] * 2  # 32 texts in batches of 8, then 2 layers
    assert [d for s, d, _ in seen if s == "activations"] == [8, 16, 24, 32] and seen[-1] == ("fit", 2, 2)
    seen.clear()
    comparisons = comparisons_from_poles(demo_like_pairs(), {"verbosity": "verbose"})
    train_reward_model(lm, name="p", layer=1, comparisons=comparisons, batch_size=16, progress=lambda *r: seen.append(r))
    # One report per forward batch (on a CPU a batch also stays under CPU_BATCH_TOKENS), rising to 32 of 32.
    features = [d for s, d, t in seen if s == "features" and t == 32]
    assert len(features) == len(seen) - 1 and features == sorted(set(features)) and features[-1] == 32
    assert features[0] <= 16 and seen[-1] == ("heads", 1, 1)


def test_a_reward_head_at_another_layer_is_a_cache_read(ctx, tmp_path):
    lm = ctx.get_model(model(ctx, "tuned"))
    cache = ActivationCache(tmp_path / "cache")
    comparisons = comparisons_from_poles(demo_like_pairs(), {"verbosity": "verbose"})
    forwards = []
    handle = lm.model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        first = train_reward_model(lm, name="l1", layer=1, comparisons=comparisons, cache=cache)
        entries, n_forwards = sorted(p.name for p in cache.root.iterdir()), len(forwards)
        second = train_reward_model(lm, name="l2", layer=2, comparisons=comparisons, cache=cache)
    finally:
        handle.remove()
    assert n_forwards > 0 and len(forwards) == n_forwards  # no forward for the second head
    assert sorted(p.name for p in cache.root.iterdir()) == entries and len(entries) == 1
    uncached = train_reward_model(lm, name="l2", layer=2, comparisons=comparisons)
    assert second.weights == pytest.approx(uncached.weights, rel=1e-4, abs=1e-6)
    assert first.layer == 1 and (first.mean != second.mean).any()


def handler(ctx, name: str):
    """The tab's event function called ``name``, as the Gradio server runs it."""
    with gr.Blocks() as demo:
        build_steering_tab(ctx)
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name)


def test_annotators_may_not_fit_or_train(ctx):
    ann = gr.Request(username="ann")
    fit = list(handler(ctx, "on_fit")("toy", "verbosity", "verbose", "probe", "1", model(ctx, "base"), ann))
    train = list(handler(ctx, "on_train")("toy", "verbosity=verbose", 1, "ann-rm", model(ctx, "base"), ann))
    assert "only the workbench owner can fit and save steering vectors" in fit[-1][1] and len(fit) == 1
    assert "only the workbench owner can train and save reward models" in train[-1][0] and len(train) == 1
    assert "ann-rm" not in actions.reward_model_choices(ctx) and not any(n.endswith(":probe") for n in actions.vector_choices(ctx))


def test_the_fit_and_train_handlers_yield_stage_and_progress(ctx):
    owner = gr.Request(username=None)
    out = list(handler(ctx, "on_fit")("toy", "verbosity", "verbose", "pca", "1, 2", model(ctx, "tuned"), owner))
    lines = [status for _, status in out[:-1]]
    assert lines[0] == "**Fitting steering vectors** · starting…"
    assert any("activations: " in line and "/32 texts" in line for line in lines)
    assert any("fit: " in line and "/2 layers" in line for line in lines)
    rows, message = out[-1]
    assert [r[1] for r in rows] == [1, 2] and message.startswith("Saved 2 vector(s)")
    out = list(handler(ctx, "on_train")("toy", "verbosity=verbose", 2, "owner-rm", model(ctx, "tuned"), owner))
    assert any("features: " in status for status, *_ in out[:-1]) and any("heads: 1/1 attributes" in s for s, *_ in out[:-1])
    assert out[-1][0].startswith("Saved reward model **owner-rm**")
    out = list(handler(ctx, "on_train")("toy", "nothing=here", 2, "none-rm", model(ctx, "tuned"), owner))
    assert "no pairs whose poles match" in out[-1][0]  # an error in the worker thread reaches the page


def test_progress_text_eta_from_the_stage_rate():
    now = [100.0]
    text = ProgressText("Fitting", {"activations": "texts"}, clock=lambda: now[0])
    now[0] = 110.0
    text.update("activations", 10, 40)
    assert text.text() == "**Fitting** · activations: 10/40 texts (25 %) · 10 s · ETA 30 s"
    now[0] = 120.0
    text.update("fit", 1, 4)  # a new stage starts its own clock
    now[0] = 122.0
    assert text.eta_s() == pytest.approx(6.0) and text.text().endswith("fit: 1/4 steps (25 %) · 22 s · ETA 6 s")


def test_a_closed_follower_stops_the_work():
    """No sleeps: the work holds after its second report until the follower is closed, then must
    stop at its very next report (with the follower's stop signal, not by running to the end)."""
    reports, ended_by = [], []
    closed, ended = threading.Event(), threading.Event()

    def work(progress):
        try:
            for i in range(200):
                progress("loop", i, 200)
                reports.append(i)
                if i == 1:
                    assert closed.wait(timeout=60)
            raise DataError("should have stopped")
        except BaseException as exc:
            ended_by.append(type(exc).__name__)
            raise
        finally:
            ended.set()

    follower = iter(Background(work, "Looping", {}, every_s=0.0))
    next(follower), next(follower)
    follower.close()
    closed.set()
    assert ended.wait(timeout=60)
    assert reports == [0, 1] and ended_by == ["_Stopped"]
