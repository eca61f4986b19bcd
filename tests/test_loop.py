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
from workbench.preference.votes import session_votes
from workbench.settings import Settings
from workbench.store import Store
from workbench.training.dpo import DPO_JOB
from workbench.training.pairs import SESSION_FILE

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
    return JobManager(settings, job_types={"dpo": DPO_JOB})


def dpo_options(model: Path, **kw: object) -> dict[str, object]:
    return {"model": str(model), "session": "s", "max_steps": 2, "batch_size": 1, "learning_rate": 1e-3, "max_length": 64,
            "held_out_fraction": 0.25, "lora_r": 4, "n_samples": 0, "eval_max_pairs": 4, **kw}


def test_session_run_trains_on_exactly_the_ab_votes_and_records_the_snapshot(manager, labeling, tiny_checkpoint):
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
    env = {**os.environ, "WORKBENCH_HOME": str(settings.home), "HF_HUB_OFFLINE": "1", **ONE_THREAD}
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "train", "dpo", "--session", "nope", "--model", str(tiny_checkpoint("llama"))],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "No labeling session named 'nope'" in out.stdout + out.stderr
    assert not (settings.home / "runs").exists() or list((settings.home / "runs").iterdir()) == []
