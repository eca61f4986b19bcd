"""Labeling with models: the pair-generation job (a real worker process), post-vote scores
on tiny checkpoints, the model–human disagreement queue and AlpacaEval judge import."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.errors import ConfigError
from workbench.jobs import JobManager
from workbench.labeling import LabelingStore
from workbench.labeling.alpacaeval import import_alpacaeval
from workbench.labeling.analysis import session_report
from workbench.labeling.generate import GENERATE_PAIRS
from workbench.labeling.scores import describe_scores, disagreement_queue, model_scores
from workbench.labeling.sessions import SessionSettings
from workbench.settings import Settings
from workbench.training.logprobs import sequence_logprobs

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def test_generate_pairs_job_stores_a_dataset_and_opens_a_session(tmp_path: Path, tiny_checkpoint) -> None:
    settings = Settings(home=tmp_path / "home")
    jobs = JobManager(settings, job_types={GENERATE_PAIRS.name: GENERATE_PAIRS})
    model = str(tiny_checkpoint("llama"))
    config = {"dataset": "gen", "prompts": ["Say hi.", "Name a colour.", "Count to three."], "session": "gen-s", "candidate": "hot",
              "session_settings": {"overlap": 2}, "batch_size": 2,
              "sources": [{"name": "greedy", "model": model, "sampling": {"do_sample": False, "max_new_tokens": 4}},
                          {"name": "hot", "model": model, "system": "Be brief.", "sampling": {"temperature": 1.5, "max_new_tokens": 4}}]}
    with pytest.raises(ConfigError, match="Exactly two sources"):
        jobs.submit(GENERATE_PAIRS.name, {**config, "sources": config["sources"][:1]})
    with pytest.raises(ConfigError, match="temperature"):
        jobs.submit(GENERATE_PAIRS.name, {**config, "candidate": None,
                                          "sources": [config["sources"][0], {"model": model, "sampling": {"temperature": 0}}]})
    run = jobs.submit(GENERATE_PAIRS.name, config)
    manifest = run.wait(timeout=240)
    assert manifest.status == "finished", run.log_tail()
    assert run.progress()["step"] == run.progress()["total"] == 6
    ctx = AppContext(settings)
    pairs = ctx.store.get_pairs("gen")
    assert [p.prompt for p in pairs] == config["prompts"]
    assert {(p.metadata["source_a"], p.metadata["source_b"]) for p in pairs} == {("greedy", "hot")}
    assert {p.metadata["candidate"] for p in pairs} == {"hot"}  # the verdict is about hot's side
    same = sum(p.response_a.strip() == p.response_b.strip() for p in pairs)
    assert manifest.summary["candidate"] == "hot" and manifest.summary["identical"] == same
    assert ("identical answers" in manifest.summary["identical_note"]) == bool(same)
    assert manifest.summary.get("warnings", []) == ([manifest.summary["identical_note"]] if same else [])
    lab = LabelingStore(ctx.store)
    assert lab.session("gen-s").settings.overlap == 2 and lab.session("gen-s").n_pairs == 3
    with pytest.raises(ConfigError, match="already exists"):
        jobs.submit(GENERATE_PAIRS.name, config)


def test_post_vote_scores_and_disagreement_queue(tmp_path: Path, tiny_checkpoint, tiny_lora) -> None:
    ctx = AppContext(Settings(home=tmp_path / "home"))
    policy, reference = str(tiny_lora), str(tiny_checkpoint("llama"))  # a LoRA-tuned policy on its own base
    pairs = [Pair(f"Question {i}?", "yes " * (i + 1), "no", id=f"q{i}") for i in range(4)]
    settings = SessionSettings(policy_model=policy, reference_model=reference, beta=0.5)
    scores = model_scores(ctx, pairs, settings)
    same = model_scores(ctx, pairs, SessionSettings(policy_model=reference, reference_model=reference))
    assert all(row["dpo_margin"] == pytest.approx(0.0, abs=1e-9) for row in same.values())
    assert same["q2"]["len_diff"] == 2.0
    assert ctx.active_model_name is None  # scoring does not switch the app's active model
    lm_p, lm_r = ctx.models[Path(policy).name], ctx.models[Path(reference).name]
    pa = sequence_logprobs(lm_p.model, lm_p.tokenizer, [p.prompt for p in pairs], [p.response_a for p in pairs])
    pb = sequence_logprobs(lm_p.model, lm_p.tokenizer, [p.prompt for p in pairs], [p.response_b for p in pairs])
    ra = sequence_logprobs(lm_r.model, lm_r.tokenizer, [p.prompt for p in pairs], [p.response_a for p in pairs])
    rb = sequence_logprobs(lm_r.model, lm_r.tokenizer, [p.prompt for p in pairs], [p.response_b for p in pairs])
    expected = 0.5 * ((pa - ra) - (pb - rb))
    assert np.allclose([scores[p.id]["dpo_margin"] for p in pairs], expected, atol=1e-4)
    text = describe_scores(scores["q0"], "BA")
    assert "right has" in text and "β·Δlog(π/π_ref)" in text
    ctx.store.import_pairs("qs", pairs)
    lab = LabelingStore(ctx.store)
    lab.create_session("s", "qs")
    lab.join("s", "h")
    for p in pairs:  # humans always prefer A
        lab.vote("s", "h", p.id, "A")
    queue = disagreement_queue(lab.judgments("s"), scores)
    assert {r["pair_id"] for r in queue} == {p.id for p in pairs if scores[p.id]["model_pref"] < 0}
    assert all(r["humans"] == "A" and r["model"] == "B" for r in queue)


def test_alpacaeval_annotations_become_judgments(tmp_path: Path) -> None:
    ctx = AppContext(Settings(home=tmp_path / "home"))
    lab = LabelingStore(ctx.store)
    counts = import_alpacaeval(lab, FIXTURES / "alpacaeval.json", "judges")
    assert counts["pairs"] == 4 and counts["votes"] == 4 and counts["unlabeled"] == 0
    assert counts["annotators"] == ["alpaca_eval_gpt4", "weighted_alpaca_eval_gpt4_turbo"]
    outcomes = sorted(j.outcome.value for j in lab.judgments("judges"))
    assert outcomes == ["A", "A", "B", "tie"]
    assert {j.displayed_order for j in lab.judgments("judges")} == {"AB"}
    report = session_report(lab, "judges")
    assert {r["source"] for r in report["ratings"]} == {"model-x", "model-y"}
    with pytest.raises(Exception, match="already exists"):
        import_alpacaeval(lab, FIXTURES / "alpacaeval.json", "judges")
