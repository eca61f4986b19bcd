"""The preference loop end to end: a session's votes → a DPO run → a blind base-vs-tuned session.

Real SQLite stores, real job worker processes and a real ``workbench`` CLI process; tiny random
checkpoints, because these tests check which votes train and what is refused, not model quality.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.jobs import JobManager
from workbench.labeling import LabelingStore, NotFound
from workbench.labeling.generate import GENERATE_PAIRS
from workbench.labeling.verdict import session_verdict
from workbench.loop import blind_session_config, read_prompt_file
from workbench.preference.votes import session_votes
from workbench.settings import Settings
from workbench.store import Store
from workbench.training.dpo import DPO_JOB
from workbench.training.pairs import SESSION_FILE, run_split_ids

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
# Eight prompts, two pairs each: p00/p01 answer prompt 0, and so on.
PLAN = {"p00": "A", "p01": "B", "p02": "tie", "p03": "both_bad", "p04": "skip", "p05": "A", "p06": "B", "p07": "A",
        "p08": "B", "p09": "A", "p10": "A", "p11": "B"}


def make_pairs(n: int = 16) -> list[Pair]:
    return [Pair(f"Describe thing {i // 2} in one sentence.", f"Thing {i} is lovely and bright.", f"No. {i}", id=f"p{i:02d}",
                 metadata={"source_a": "base", "source_b": "tuned"}) for i in range(n)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def labeling(settings: Settings) -> LabelingStore:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_path)
    store.import_pairs("ds", make_pairs())
    lab = LabelingStore(store)
    lab.create_session("s", "ds")
    lab.join("s", "alice")
    lab.join("s", "bob")
    for pid, outcome in PLAN.items():
        lab.vote("s", "alice", pid, outcome, strength=1 if pid == "p07" else None, rationale="off topic" if outcome == "skip" else "")
    lab.vote("s", "bob", "p00", "B")
    return lab


@pytest.fixture
def manager(settings: Settings) -> JobManager:
    return JobManager(settings, job_types={"dpo": DPO_JOB, GENERATE_PAIRS.name: GENERATE_PAIRS})


def dpo_options(model: Path, **kw: object) -> dict[str, object]:
    return {"model": str(model), "session": "s", "max_steps": 2, "batch_size": 1, "learning_rate": 1e-3, "max_length": 64,
            "held_out_fraction": 0.25, "lora": {"r": 4}, "n_samples": 0, "eval_max_pairs": 4, **kw}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(settings.home), "HF_HUB_OFFLINE": "1", **ONE_THREAD}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_session_run_trains_on_exactly_the_ab_votes_and_records_the_snapshot(manager, labeling, settings, tiny_checkpoint):
    expected = session_votes(labeling, "s")
    run = manager.submit("dpo", dpo_options(tiny_checkpoint("llama")), env=ONE_THREAD)
    m = run.wait(600)
    assert m.status == "finished", run.log_tail(60)
    frozen = json.loads((run.dir / SESSION_FILE).read_text())
    trained = {p["id"] for p in frozen["train"]} | {p["id"] for p in frozen["held_out"]}
    assert trained == {f"{v.pair_id}:{v.annotator}" for v in expected.votes}
    assert len(trained) == 10  # 9 A/B votes by alice and bob's one; the tie, both-bad and skip are not among them
    chosen = {p["id"]: p["response_a"] for p in frozen["train"] + frozen["held_out"]}
    assert chosen["p01:alice"] == "No. 1" and chosen["p00:bob"] == "No. 0" and chosen["p00:alice"] == "Thing 0 is lovely and bright."
    votes = m.summary["votes"]
    assert votes["left_out"] == {"tie": 1, "both_bad": 1, "skip": 1}
    assert votes["snapshot"]["sha256"] == expected.snapshot.sha256 and votes["snapshot"]["n_judgments"] == 13
    assert votes["trained_on"] == len(frozen["train"]) and votes["held_out"] == len(frozen["held_out"]) > 0
    held_prompts = {p["prompt"] for p in frozen["held_out"]}
    assert held_prompts.isdisjoint(p["prompt"] for p in frozen["train"])  # held out by prompt
    assert m.summary["held_out"]["n"] == len(frozen["held_out"])  # the before/after report reads the same frozen votes
    ids = run_split_ids(run.dir)  # per-vote ids map back to the session's pair ids, which `workbench compare` sees
    assert ids.held_out == {p["id"].split(":")[0] for p in frozen["held_out"]} and not ids.train & ids.held_out
    assert ids.group("p00") == ("held_out" if "p00" in ids.held_out else "train") and ids.group("p02") == "never_seen"  # p02: a tie

    # Back into blind labeling, through the CLI: base vs tuned on the prompts that trained nothing.
    untrained = [q for q in dict.fromkeys(p.prompt for p in make_pairs()) if q not in {p["prompt"] for p in frozen["train"]}]
    assert len(untrained) >= 3 and held_prompts <= set(untrained)
    out = cli(settings, "label", "from-run", run.id, "--n", "3", "--max-new-tokens", "4", "--temperature", "0.9", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    session = f"{run.id}-blind"
    assert f"opens session '{session}'" in out.stdout and "finished" in out.stdout
    new_pairs = labeling.pairs(session)
    assert [p.prompt for p in new_pairs] == untrained[:3]
    assert {(p.metadata["source_a"], p.metadata["model_a"], p.metadata["source_b"], p.metadata["model_b"]) for p in new_pairs} == {
        ("base", str(tiny_checkpoint("llama")), "tuned", f"run:{run.id}")}
    assert {(p.metadata["sampling_a"]["temperature"], p.metadata["sampling_a"]["seed"], p.metadata["sampling_b"]["seed"])
            for p in new_pairs} == {(0.9, 0, 1)}  # --temperature: sampled, a seed per side
    labeling.join(session, "carol")
    assert {p.metadata["candidate"] for p in new_pairs} == {"tuned"}  # recorded when the session was made
    for p in new_pairs:  # the base side wins every vote: the verdict is still about tuned, which lost
        labeling.vote(session, "carol", p.id, "A")
    won = session_verdict(labeling, session)["did_it_win"]
    same = sum(p.response_a.strip() == p.response_b.strip() for p in new_pairs)
    if same == len(new_pairs):  # greedy tiny models can answer alike: said, not scored
        assert "No difference to judge" in won["error"] and won["identical_pairs"] == same
    else:
        assert won["candidate"] == "tuned" and won["candidate_from"] == "recorded when the session was made"
        assert won["win_rate"] == 0.0 and won["identical"] == same and "lc_win_rate" in won


def test_min_strength_and_dropped_pairs_are_left_out_and_counted(manager, labeling, settings):
    from workbench.training.pairs import session_split

    split = session_split(settings, "s", 0.0, min_strength=2, drop_pairs=["p00"])
    assert {p.id for p in split.train} == {"p01:alice", "p05:alice", "p06:alice", "p08:alice", "p09:alice", "p10:alice", "p11:alice"}
    assert split.left_out == {"tie": 1, "both_bad": 1, "skip": 1, "below_min_strength": 1, "dropped": 2}
    assert split.record["dropped_pairs"] == ["p00"]
    with pytest.raises(ConfigError, match="drop_pairs names pair.*p99"):
        session_split(settings, "s", 0.0, drop_pairs=["p99"])


def test_refusals_leave_no_run_folder(manager, labeling, tiny_checkpoint, settings):
    model = tiny_checkpoint("llama")
    with pytest.raises(NotFound, match="(?s)No labeling session named 'nope'.*Known sessions: s"):
        manager.submit("dpo", dpo_options(model, session="nope"))
    with pytest.raises(ConfigError, match="exactly one of dataset and session"):
        manager.submit("dpo", dpo_options(model, dataset="ds"))
    with pytest.raises(ConfigError, match=r"No dataset given \(nor a session\)"):
        manager.submit("dpo", dpo_options(model, session=None))
    with pytest.raises(ConfigError, match="min_strength and drop_pairs apply to a session"):
        manager.submit("dpo", dpo_options(model, session=None, dataset="ds", min_strength=2))
    with pytest.raises(DataError, match=r"has 10 usable A/B vote\(s\); this needs at least 13 \(left out: 1 both_bad, 1 skip, 1 tie\)"):
        manager.submit("dpo", dpo_options(model, batch_size=4, gradient_accumulation_steps=3))
    labeling.create_session("empty", "ds")
    with pytest.raises(DataError, match=r"'empty' has 0 usable A/B vote"):
        manager.submit("dpo", dpo_options(model, session="empty"))
    assert not manager.runs_dir.exists() or list(manager.runs_dir.iterdir()) == []


def test_cli_refuses_an_unknown_session_in_words(labeling, settings, tiny_checkpoint):
    out = cli(settings, "train", "dpo", "--session", "nope", "--model", str(tiny_checkpoint("llama")))
    assert out.returncode != 0
    assert "No labeling session named 'nope'" in out.stdout + out.stderr
    assert not (settings.home / "runs").exists() or list((settings.home / "runs").iterdir()) == []


def test_blind_session_refuses_a_running_run_and_a_dataset_run_without_prompts(manager, labeling, tiny_checkpoint, tmp_path):
    run = manager.submit("dpo", dpo_options(tiny_checkpoint("llama"), max_steps=10_000), env=ONE_THREAD)
    try:
        with pytest.raises(ConfigError, match=rf"Run {run.id} is (queued|running).*only a finished run has a tuned model"):
            blind_session_config(manager, run.id)
    finally:
        manager.cancel(run.id)
    with pytest.raises(ConfigError, match="No run 'dpo-nope'"):
        blind_session_config(manager, "dpo-nope")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Say hi."}\n\n{"prompt": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"prompts.jsonl, line 3, field 'prompt'.*needs a non-empty text"):
        read_prompt_file(prompts)


def test_pal_from_a_session_beats_one_bt_model_on_annotators_of_opposite_tastes(settings, tiny_checkpoint):
    from workbench.training.pal_job import PAL_JOB

    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_path)
    topics = [f"topic {i}" for i in range(30)]
    store.import_pairs("taste", [Pair(f"Tell me about {t}.", f"{t} " + "is long and detailed and thorough " * 4, f"{t}: short.",
                                      id=f"t{i:02d}") for i, t in enumerate(topics)])
    lab = LabelingStore(store)
    lab.create_session("taste-s", "taste")
    likes_long = {"alice": True, "bob": False, "carol": True, "dan": False}
    for who, long in likes_long.items():
        lab.join("taste-s", who)
        for i in range(len(topics)):
            lab.vote("taste-s", who, f"t{i:02d}", "A" if long else "B")
    manager = JobManager(settings, job_types={"pal": PAL_JOB})
    opts = {"session": "taste-s", "model": str(tiny_checkpoint("llama")), "k": 2, "dim": 4, "hidden": 16, "epochs": 60,
            "variant": "A", "test_fraction": 0.3, "shots": [5], "adapt_steps": 100, "late_annotators": ["dan"]}
    with pytest.raises(ConfigError, match="late_annotators names annotator.*erin"):
        manager.submit("pal", {**opts, "late_annotators": ["erin"]})
    with pytest.raises(ConfigError, match=r"Only 1 annotator\(s\) remain seen"):
        manager.submit("pal", {**opts, "late_annotators": ["bob", "carol", "dan"]})
    run = manager.submit("pal", opts, env=ONE_THREAD)
    m = run.wait(600)
    assert m.status == "finished", run.log_tail(60)
    s = m.summary
    assert s["votes"]["session"] == "taste-s" and s["votes"]["usable"] == 120 and s["n_seen_users"] == 3
    per = s["per_annotator"]
    assert set(per) == {"alice", "bob", "carol"}
    assert all(row["PAL-A"] >= 0.9 for row in per.values()), per
    assert per["bob"]["BT"] <= 0.1  # one model for all follows the long-answer majority
    assert s["seen"]["PAL-A"] > s["seen"]["BT"] + 0.2
    assert s["unseen"]["n_users"] == 1 and s["unseen"]["shots"]["5"]["PAL-A"] >= 0.9  # dan, from 5 votes


def test_finetune_tab_offers_sessions_lists_ches_and_starts_from_a_session(labeling, settings, tiny_checkpoint):
    import gradio as gr

    from plugins.finetune import actions
    from plugins.finetune.tab import build_finetune_tab
    from workbench.context import AppContext

    model = tiny_checkpoint("llama")
    ctx = AppContext(Settings(home=settings.home, model_roots=[model.parent]))
    labeling.store.import_pairs("labelled", [Pair("Q?", "yes", "no", preferred="A")])
    assert actions.session_choices(ctx) == ["s"]
    note = actions.dataset_note(ctx, "dpo")
    assert "`labelled`" in note.split("Not trainable")[0] and "Not trainable (no pair has a winner): `ds`" in note
    rows = actions.displacement_rows(ctx, None, "s", str(model), top_k=3)
    assert len(rows) == 3 and rows[0][3] >= rows[1][3] >= rows[2][3]  # highest CHES first
    assert {r[0] for r in rows} <= set(PLAN)
    manager = JobManager.for_context(ctx)
    assert actions.parse_pair_ids(f"{rows[0][0]}, {rows[1][0]}\n") == [rows[0][0], rows[1][0]]
    with pytest.raises(ConfigError, match="drop_pairs names pair.*p99"):
        actions.start(ctx, manager, None, "dpo", {"model": str(model), "session": "s", "drop_pairs": ["p99"]})
    with pytest.raises(ConfigError, match="Select a finished DPO run"):
        actions.blind_session(ctx, manager, None, None)
    with gr.Blocks() as demo:
        build_finetune_tab(ctx)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"ft-dpo-session", "ft-pal-session", "ft-dpo-ches", "ft-dpo-drop-pairs", "ft-blind-session", "ft-dpo-datasets-note"} <= ids
