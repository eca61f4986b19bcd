"""The loop through steering: a vector fitted from a session's votes (tab action, CLI), and a blind
unsteered-vs-steered session made by the pair-generation job. Real store, real job worker
process, a real ``workbench`` CLI process and a tiny random checkpoint: these tests check what is
saved, generated and refused, not model quality."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from plugins.steering import actions
from plugins.steering.cli import parse_vector_options
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.jobs import JobManager
from workbench.labeling import NotFound
from workbench.labeling.generate import GENERATE_PAIRS
from workbench.labeling.verdict import session_verdict
from workbench.loop import STEERED, UNSTEERED, start_steering_blind_session, steering_blind_config, unfitted_session_prompts
from workbench.settings import Settings
from workbench.steering.library import list_vectors, load_vector, save_vector
from workbench.steering.vectors import SteeringVector

WORDS = ["fox", "dog", "answer", "preference", "brown", "lazy"]


def voted_pairs(n: int = 16) -> list[Pair]:
    """Pairs of a short and a long answer (the long one voted for), from two named sources."""
    out = []
    for i in range(n):
        long = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(10))
        short = WORDS[i % len(WORDS)]
        a, b = (long, short) if i % 2 else (short, long)
        out.append(Pair(f"Question {i}?", a, b, id=f"p{i}", metadata={"source_a": "x" if i % 2 else "y", "source_b": "y" if i % 2 else "x"}))
    return out


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_checkpoint) -> AppContext:
    context = AppContext(Settings(home=tmp_path_factory.mktemp("steer-votes-home")))
    pairs = voted_pairs()
    context.store.import_pairs("ds", pairs, source="test", format="unlabeled")
    # Held-out prompts: four the votes fitted on, four new ones.
    context.store.import_pairs("later", [Pair(f"Question {i}?" if i < 4 else f"New question {i}?", "a", "b", id=f"l{i}")
                                         for i in range(8)], source="test", format="unlabeled")
    lab = context.labeling
    lab.create_session("s", "ds")
    lab.create_session("few", "ds")
    lab.create_session("empty", "ds")
    lab.create_session("later", "later")
    for name in ("ann", "bob"):
        lab.join("s", name)
    for p in pairs:
        lab.vote("s", "ann", p.id, "A" if len(p.response_a) > len(p.response_b) else "B")
    lab.vote("s", "bob", "p0", "tie")
    lab.join("few", "ann")
    for p in pairs[:3]:
        lab.vote("few", "ann", p.id, "A")
    lab.vote("few", "ann", pairs[3].id, "skip", rationale="off topic")
    context.activate(str(tiny_checkpoint("llama")))
    return context


def test_fit_from_votes_saves_vectors_the_sliders_list(ctx) -> None:
    assert actions.vote_session_choices(ctx) == [("s (16 A/B votes)", "s"), ("few (3 A/B votes)", "few")]  # not 'empty', 'later'
    seen: list[tuple[str, int, int]] = []
    rows = actions.fit_from_votes(ctx, "s", "mean_diff", "1, 2", progress=lambda *r: seen.append(r))
    assert [r[0] for r in rows] == ["votes:s@1:mean_diff", "votes:s@2:mean_diff"] and [r[6] for r in rows] == [16, 16]
    assert {s for s, _, _ in seen} == {actions.MODEL_STAGE, "activations", "fit"} and seen[-1] == ("fit", 2, 2)
    assert {"votes:s@1:mean_diff", "votes:s@2:mean_diff"} <= set(actions.vector_choices(ctx))
    saved = load_vector(ctx.settings, "votes:s@2:mean_diff")
    assert saved.info["session"] == "s" and saved.info["n_votes"] == 16 and saved.info["accuracy"] >= 0.75


def test_fit_from_votes_refuses_in_words(ctx) -> None:
    before = {v.name for v in list_vectors(ctx.settings)}
    with pytest.raises(DataError, match=r"Session 'few' has 3 usable A/B vote\(s\); this needs at least 8 \(left out: 1 skip\)"):
        actions.fit_from_votes(ctx, "few", "mean_diff", "1")
    with pytest.raises(NotFound, match="No labeling session named 'nope'"):
        actions.fit_from_votes(ctx, "nope", "mean_diff", "1")
    with pytest.raises(ConfigError, match="Pick a labeling session"):
        actions.fit_from_votes(ctx, None, "mean_diff", "1")
    with pytest.raises(ConfigError, match="Unknown method 'nope'"):
        actions.fit_from_votes(ctx, "s", "nope", "1")
    assert {v.name for v in list_vectors(ctx.settings)} == before  # nothing half-made


def test_blind_session_config_holds_out_the_fitted_prompts_and_refuses_one_source(ctx, tmp_path) -> None:
    vec = "votes:s@2:mean_diff"
    actions.fit_from_votes(ctx, "s", "mean_diff", "2")
    prompts = unfitted_session_prompts(ctx.settings, "later", [load_vector(ctx.settings, vec)])
    assert prompts == [f"New question {i}?" for i in range(4, 8)]
    with pytest.raises(DataError, match=r"Every prompt of session 's' fitted the steering vector\(s\) votes:s@2:mean_diff"):
        unfitted_session_prompts(ctx.settings, "s", [load_vector(ctx.settings, vec)])
    with pytest.raises(ConfigError, match="'steered' would be the unsteered model"):
        steering_blind_config(ctx.settings, "m", [(vec, 0.0), ("", 3.0)], from_session="later")
    with pytest.raises(ConfigError, match="not neither"):
        steering_blind_config(ctx.settings, "m", [(vec, 2.0)])
    with pytest.raises(ConfigError, match="No steering vector named 'gone'"):
        steering_blind_config(ctx.settings, "m", [("gone", 2.0)], prompts=["Hi"])
    with pytest.raises(NotFound, match="No labeling session named 'nope'"):
        steering_blind_config(ctx.settings, "m", [(vec, 2.0)], from_session="nope")
    greedy = steering_blind_config(ctx.settings, "m", [(vec, 2.0)], prompts=["Hi"])
    assert greedy.candidate == "steered" and all(not src.sampling.do_sample for src in greedy.sources)
    sampled = steering_blind_config(ctx.settings, "m", [(vec, 2.0)], prompts=["Hi"], temperature=0.7)
    # Regenerating with sampling: a seed per side, or near-identical sides repeat the same answers.
    assert [(s.sampling.do_sample, s.sampling.temperature, s.sampling.seed) for s in sampled.sources] == [
        (True, 0.7, 0), (True, 0.7, 1)]
    with pytest.raises(ConfigError, match="--temperature must be above 0"):
        steering_blind_config(ctx.settings, "m", [(vec, 2.0)], prompts=["Hi"], temperature=0.0)
    assert parse_vector_options(["a=b@1:mean_diff=-2.5"]) == [("a=b@1:mean_diff", -2.5)]
    with pytest.raises(ConfigError, match="NAME=COEFFICIENT"):
        parse_vector_options(["votes:s@2:mean_diff"])


def test_blind_session_from_a_steering_setting_has_both_sources_and_different_answers(ctx, tiny_checkpoint) -> None:
    actions.fit_from_votes(ctx, "s", "mean_diff", "1")
    manager = JobManager(ctx.settings, job_types={GENERATE_PAIRS.name: GENERATE_PAIRS})
    run = start_steering_blind_session(manager, str(tiny_checkpoint("llama")), [("votes:s@1:mean_diff", 40.0)],
                                       from_session="later", session="steer-blind", max_new_tokens=8)
    steered = run.config["sources"][1]
    assert steered["name"] == STEERED and steered["steering"] == [{"vector": "votes:s@1:mean_diff", "coefficient": 40.0}]
    m = run.wait(300)
    assert m.status == "finished", run.log_tail(40)
    lab = ctx.labeling
    pairs = lab.pairs("steer-blind")
    assert [p.prompt for p in pairs] == [f"New question {i}?" for i in range(4, 8)]
    assert {(p.metadata["source_a"], p.metadata["source_b"]) for p in pairs} == {(UNSTEERED, STEERED)}
    assert all(p.response_a != p.response_b for p in pairs), [(p.response_a, p.response_b) for p in pairs]
    assert pairs[0].metadata["steering_b"] == steered["steering"] and pairs[0].metadata["steering_a"] == []
    lab.join("steer-blind", "ann")
    for p in pairs:
        lab.vote("steer-blind", "ann", p.id, "B")
    won = session_verdict(lab, "steer-blind")["did_it_win"]
    assert [r["source"] for r in won["bradley_terry"]] == [STEERED, UNSTEERED]
    assert {p.metadata["candidate"] for p in pairs} == {STEERED} and won["candidate"] == STEERED


def test_cli_fits_from_a_session_and_refuses_a_zero_setting(ctx, tiny_checkpoint) -> None:
    env = {**os.environ, "WORKBENCH_HOME": str(ctx.settings.home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workbench.cli", "steer", *args], capture_output=True, text=True, env=env, timeout=600)

    out = cli("from-session", "s", "--layers", "2", "--method", "pca", "--model", str(tiny_checkpoint("llama")))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "votes:s@2:pca" in out.stdout and "fit: 1/1 layers" in out.stdout
    assert load_vector(ctx.settings, "votes:s@2:pca").info["session"] == "s"
    runs = ctx.settings.home / "runs"
    before = sorted(runs.iterdir()) if runs.exists() else []
    out = cli("blind", "--vector", "votes:s@2:pca=0", "--from-session", "later", "--model", str(tiny_checkpoint("llama")))
    assert out.returncode == 2 and "would compare one source with itself" in out.stdout + out.stderr
    assert (sorted(runs.iterdir()) if runs.exists() else []) == before  # refused before any run exists


def test_blind_session_refuses_a_vector_of_another_model_before_any_answer(ctx, tiny_checkpoint) -> None:
    save_vector(ctx.settings, SteeringVector("wide@1:mean_diff", 1, torch.ones(48)))  # the tiny llama is 32 wide
    manager = JobManager(ctx.settings, job_types={GENERATE_PAIRS.name: GENERATE_PAIRS})
    run = start_steering_blind_session(manager, str(tiny_checkpoint("llama")), [("wide@1:mean_diff", 4.0)], prompts=["Hi?"],
                                       session="wrong-model", max_new_tokens=8)
    m = run.wait(300)
    assert m.status == "failed"
    assert "has 48 dimensions, the model's residual stream has 32" in (m.error or "") + run.log_tail(40), run.log_tail(40)
    assert not (run.dir / "responses.json").exists()  # refused before the unsteered source answered
    assert "wrong-model" not in {s.name for s in ctx.labeling.list_sessions()}
