"""Which features the votes reward (issue 25 §3): a real LM-SAE run (worker process, tiny
llama) and sessions voted through the real LabelingStore.

Planted votes follow one latent's chosen-minus-rejected difference: that latent ranks first
and its held-out AUC interval lies above 0.5. Coin-flip votes: the interval includes 0.5.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from plugins.labeling.cli import label_app
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError, ModelError
from workbench.jobs import JobManager
from workbench.preference import vote_features as vf
from workbench.sae.synthetic import synthetic_paths
from workbench.settings import Settings

WORDS = ("the quick brown fox jumps over lazy dog preferences are learned from pairs of responses chosen rejected concise "
         "answer often better than verbose one but not always bonjour monde hallo welt def return numbers").split()
N_PAIRS = 80  # two pairs per prompt: 40 prompts


def _pairs() -> list[Pair]:
    rng = np.random.default_rng(0)

    def text() -> str:
        return " ".join(rng.choice(WORDS, int(rng.integers(4, 20))))

    return [Pair(f"Question {i // 2} about {WORDS[(i // 2) % len(WORDS)]}?", text(), text(), id=f"p{i:02d}", preferred="A")
            for i in range(N_PAIRS)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    """A home with the pairs as dataset 'words' and a finished LM-SAE run on the tiny llama."""
    home = tmp_path_factory.mktemp("vote-features")
    ctx = AppContext(Settings(home=home))
    ctx.store.import_pairs("words", _pairs())
    run = JobManager.for_context(ctx).submit("lm-sae", {
        "model": str(tiny_checkpoint("llama")), "dataset": "words", "layer": 1,
        "sae": {"expansion": 2, "k": 4, "training_samples": 8_000, "batch_size": 64}})
    assert run.wait(timeout=600).status == "finished", run.log_tail(40)
    return ctx, run.id


def _differences(ctx: AppContext, run_id: str) -> np.ndarray:
    """latents(A) − latents(B) per pair of the dataset, read as the analysis reads them."""
    run = vf.find_lm_sae_run(ctx.settings, run_id)
    lm, sae = vf.load_run_model(ctx, run)
    enc = vf.encode_answers(lm, sae, run.layer, _pairs(), cache=ctx.activation_cache)
    return enc.mean[:N_PAIRS] - enc.mean[N_PAIRS:]


def _vote(ctx: AppContext, session: str, rules: dict[str, object]) -> None:
    """Every annotator votes every pair through the store with their rule (pair index → 'A'/'B')."""
    lab = ctx.labeling
    lab.create_session(session, "words", {"overlap": max(1, len(rules))})
    index = {p.id: i for i, p in enumerate(_pairs())}
    for name, rule in rules.items():
        lab.join(session, name)
        while (item := lab.next_item(session, name)) is not None:
            lab.vote(session, name, item.pair.id, rule(index[item.pair.id]), displayed_order=item.displayed_order)


def test_planted_latent_ranks_first_with_an_auc_above_chance(setup):
    ctx, run_id = setup
    d = _differences(ctx, run_id)
    planted = int(np.argmax(d.std(0)))
    _vote(ctx, "planted", {"ann": lambda i: "A" if d[i, planted] > 0 else "B"})
    result = vf.explain_session(ctx, "planted", run_id, top=5)
    overall = result["overall"]
    assert overall["n_votes"] == N_PAIRS and overall["n_prompts"] == N_PAIRS // 2 and result["ties_dropped"] == 0
    top = overall["latents"][0]
    assert top["latent"] == planted and top["coef"] > 0 and top["folds_selected"] == vf.FOLDS
    assert overall["auc"]["latents"]["ci"][0] > 0.5 and overall["added"]["ci"][0] > 0
    assert overall["auc"]["latents"]["ci"][0] <= overall["auc"]["latents"]["auc"] <= overall["auc"]["latents"]["ci"][1]
    assert top["n"] == N_PAIRS and top["fires_chosen_ci"][0] <= top["fires_chosen"] <= top["fires_chosen_ci"][1]
    assert top["mean_chosen"] > top["mean_rejected"]
    text = top["top_texts"][0]
    assert text["activation"] > 0 and text["peak_token"] and text["text"] in (_pairs()[int(text["pair"][1:])].response_a,
                                                                            _pairs()[int(text["pair"][1:])].response_b)
    assert result["layer"] == 1 and result["d_sae"] == 64 and "held-out prompts" in result["method"]


def test_per_taste_group_the_same_latent_with_opposite_signs(setup):
    """Two annotators who reward opposite ends of the planted latent: each group finds it with its own sign."""
    ctx, run_id = setup
    d = _differences(ctx, run_id)
    planted = int(np.argmax(d.std(0)))
    pairs = _pairs()
    run = vf.find_lm_sae_run(ctx.settings, run_id)
    lm, sae = vf.load_run_model(ctx, run)
    enc = vf.encode_answers(lm, sae, run.layer, pairs, cache=ctx.activation_cache)
    _vote(ctx, "opposite", {"up": lambda i: "A" if d[i, planted] > 0 else "B", "down": lambda i: "B" if d[i, planted] > 0 else "A"})
    rows = vf.vote_rows(pairs, ctx.labeling.judgments("opposite"))
    out = vf.explain_with_latents(lm, enc, pairs, rows, groups={"g1": ["up"], "g2": ["down"], "g3": []}, top=3)
    up, down = out["groups"]["g1"]["latents"][0], out["groups"]["g2"]["latents"][0]
    assert up["latent"] == down["latent"] == planted and up["coef"] > 0 > down["coef"]
    assert out["groups"]["g1"]["auc"]["latents"]["ci"][0] > 0.5 and out["groups"]["g2"]["auc"]["latents"]["ci"][0] > 0.5
    assert "needs at least 20 votes" in out["groups"]["g3"]["error"]  # an empty group says what it lacks, no AUC
    assert "auc" not in out["groups"]["g3"]
    mixed = out["overall"]["auc"]["latents"]  # opposite tastes cancel: nothing to predict overall
    assert mixed["ci"][0] <= 0.5 <= mixed["ci"][1]
    assert [r["group"] for r in vf.group_rows(out)] == ["g1", "g2", "g3"]


def test_random_votes_have_an_auc_interval_that_includes_chance(setup):
    """A 95 % interval misses 0.5 in about 1 of 20 coin-flip sessions: seed 5 did for the
    factors (0.45 [0.39, 0.496]); 20 seeds of the factors alone on these pairs averaged 0.505,
    none excluding 0.5 (the fold-averaged AUC; pooling the folds averaged below 0.5)."""
    ctx, run_id = setup
    rng = np.random.default_rng(0)
    coin = {i: str(rng.choice(["A", "B"])) for i in range(N_PAIRS)}
    _vote(ctx, "coin", {"coin": coin.__getitem__})
    overall = vf.explain_session(ctx, "coin", run_id)["overall"]
    for model in vf.MODELS:
        low, high = overall["auc"][model]["ci"]
        assert low <= 0.5 <= high, (model, overall["auc"][model])


def test_auc_matches_sklearn_for_soft_votes_and_ties_are_dropped():
    rng = np.random.default_rng(0)
    scores, value = np.round(rng.normal(size=40), 1), rng.choice([0.0, 1.0, 0.3, 0.8], 40)
    y = np.r_[np.ones(40), np.zeros(40), np.ones(40), np.zeros(40)]
    w = np.r_[value, 1 - value, 1 - value, value]
    assert vf.auc(scores, value) == pytest.approx(roc_auc_score(y[w > 0], np.r_[scores, scores, -scores, -scores][w > 0],
                                                                 sample_weight=w[w > 0]))
    from workbench.data.types import Judgment, Outcome

    pairs = _pairs()[:3]
    votes = [Judgment(pairs[0].id, "a", Outcome.A), Judgment(pairs[1].id, "a", Outcome.TIE), Judgment(pairs[2].id, "a", Outcome.SKIP),
             Judgment(pairs[2].id, "b", Outcome.A, soft=0.3), Judgment(pairs[1].id, "b", Outcome.TIE, soft=0.5)]
    rows = vf.vote_rows(pairs, votes)
    assert rows.value.tolist() == [1.0, 0.3] and rows.ties_dropped == 2 and rows.not_comparing == 1


def test_too_few_votes_say_how_many_are_needed(setup):
    ctx, run_id = setup
    _vote(ctx, "few", {})
    lab = ctx.labeling
    lab.join("few", "ann")
    for p in _pairs()[:6]:
        lab.vote("few", "ann", p.id, "A")
    with pytest.raises(DataError, match=r"Session 'few' has 6 votes with a direction on 3 prompts; .* needs at least 20 votes "
                                        r"on at least 10 different prompts"):
        vf.explain_session(ctx, "few", run_id)


def _planted_session(ctx: AppContext, run_id: str) -> None:
    """Session 'planted' (made by the first test, or here when a test runs alone)."""
    if "planted" not in {s.name for s in ctx.labeling.list_sessions()}:
        d = _differences(ctx, run_id)
        _vote(ctx, "planted", {"ann": lambda i: "A" if d[i, int(np.argmax(d.std(0)))] > 0 else "B"})


def test_cli_json_and_table(setup):
    ctx, run_id = setup
    _planted_session(ctx, run_id)
    result = CliRunner().invoke(label_app, ["explain", "planted", "--sae", run_id[:12], "--json", "--top", "3",
                                            "--home", str(ctx.settings.home)], catch_exceptions=False)
    printed = json.loads(result.stdout)
    assert {"session", "run", "model", "layer", "overall", "groups", "factors", "ties_dropped", "method"} <= set(printed)
    assert printed["run"] == run_id and set(printed["overall"]["auc"]) == set(vf.MODELS)
    assert all(set(m) == {"auc", "ci"} for m in printed["overall"]["auc"].values())
    assert set(printed["overall"]["added"]) == {"difference", "ci"} and len(printed["overall"]["latents"]) <= 3
    card = printed["overall"]["latents"][0]
    assert {"latent", "coef", "folds_selected", "fires_chosen", "fires_chosen_ci", "fires_rejected", "fires_rejected_ci", "n",
            "top_texts"} <= set(card)
    text = CliRunner().invoke(label_app, ["explain", "planted", "--sae", run_id, "--home", str(ctx.settings.home)],
                              catch_exceptions=False).stdout
    assert "AUC on held-out prompts" in text and "added by latents" in text and str(card["latent"]) in text


def test_bad_input_is_refused_in_the_users_words(setup, tiny_checkpoint):
    ctx, run_id = setup
    with pytest.raises(Exception, match="No labeling session named 'nope'"):
        vf.explain_session(ctx, "nope", run_id)
    with pytest.raises(ConfigError, match="No run 'lm-nothing'"):
        vf.explain_session(ctx, "planted", "lm-nothing")
    with pytest.raises(ConfigError, match="top must be at least 1"):
        vf.explain_session(ctx, "planted", run_id, top=0)
    interactions, items, _ = synthetic_paths()
    other = JobManager.for_context(ctx).submit("recsae", {"interactions": str(interactions), "attributes": str(items), "epochs": 1})
    other.cancel()
    with pytest.raises(ConfigError, match=f"Run {other.id} is a 'recsae' run, not an LM-SAE run"):
        vf.find_lm_sae_run(ctx.settings, other.id)
    other.wait(timeout=300)
    run = vf.find_lm_sae_run(ctx.settings, run_id)
    gone = vf.LMSAERun(run.id, run.folder, str(Path(ctx.settings.home) / "moved-away"), run.layer)
    with pytest.raises(ModelError, match=f"LM-SAE run {run_id} read the model .*moved-away.*, which cannot be loaded here"):
        vf.load_run_model(ctx, gone)
    deeper = vf.LMSAERun(run.id, run.folder, run.model, 7)
    with pytest.raises(ModelError, match="reads 32-wide states at layer 7; .* with 2 layers"):
        vf.load_run_model(ctx, deeper)
    env = {**os.environ, "WORKBENCH_HOME": str(ctx.settings.home)}
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "label", "explain", "nope", "--sae", run_id],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "No labeling session named 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_lm_sae_view_card_lists_the_latents_and_the_comparison(setup):
    from plugins.recsae.view import RecSAEView

    ctx, run_id = setup
    _planted_session(ctx, run_id)
    view = RecSAEView(ctx)
    assert run_id in view.votes_run.options.values() and "planted" in view.votes_session.options
    view.votes_run.value, view.votes_session.value, view.votes_top.value = run_id, "planted", 4
    result = view.explain_votes()
    assert list(view.votes_compare.value["model"][:3]) == list(vf.MODELS)
    assert view.votes_compare.value["AUC [interval]"][0].startswith(f"{result['overall']['auc']['latents']['auc']:.3f} [")
    table = view.votes_table.value
    assert list(table.columns) == ["latent", "coef", "folds", "fires on chosen", "fires on rejected", "n", "top text"]
    assert table["latent"][0] == str(result["overall"]["latents"][0]["latent"]) and len(table) <= 4
    assert "**planted**" in view.votes_note.object and "held-out prompts" in view.votes_note.object
    assert view.panel().get_root() is not None
    # Too few votes: the page says how many are needed.
    ctx.labeling.create_session("view-few", "words")
    ctx.labeling.join("view-few", "ann")
    for p in _pairs()[:6]:
        ctx.labeling.vote("view-few", "ann", p.id, "A")
    view.refresh_runs()
    view.votes_session.value = "view-few"
    asyncio.run(view._on_explain(None))
    assert view.status.visible and view.status.alert_type == "danger" and "needs at least 20 votes" in view.status.object
    assert len(view.votes_table.value) == len(table)  # the last answer stays on the page
