"""A session's votes as training data, read from a real SQLite store."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.labeling import LabelingStore, NotFound
from workbench.labeling.sessions import assigned_order
from workbench.preference.votes import session_votes
from workbench.store import Store


def make_pairs(n: int = 12) -> list[Pair]:
    return [Pair(f"prompt {i // 2}", f"answer A{i}", f"answer B{i}", id=f"p{i:02d}",
                 metadata={"source_a": "base", "source_b": "tuned"}) for i in range(n)]


@pytest.fixture
def labeling(tmp_path: Path) -> LabelingStore:
    store = Store(tmp_path / "wb.sqlite")
    store.import_pairs("ds", make_pairs())
    lab = LabelingStore(store)
    lab.create_session("s", "ds")
    for who in ("alice", "bob"):
        lab.join("s", who)
    return lab


def test_ab_votes_become_pairs_and_the_rest_is_counted(labeling: LabelingStore) -> None:
    plan = {"p00": "A", "p01": "B", "p02": "tie", "p03": "both_bad", "p04": "skip", "p05": "A", "p06": "B"}
    reasons = {"skip": "not my language"}
    for pid, outcome in plan.items():
        labeling.vote("s", "alice", pid, outcome, strength=1 if pid == "p05" else None, rationale=reasons.get(outcome, ""))
    labeling.vote("s", "bob", "p00", "B", strength=2)
    got = session_votes(labeling, "s")
    assert [(v.pair_id, v.annotator) for v in got.votes] == [("p00", "alice"), ("p01", "alice"), ("p05", "alice"), ("p06", "alice"), ("p00", "bob")]
    assert got.left_out == {"tie": 1, "both_bad": 1, "skip": 1}
    first, second, bob = got.votes[0], got.votes[1], got.votes[-1]
    assert (first.chosen, first.rejected, first.chosen_source) == ("answer A0", "answer B0", "base")
    assert (second.chosen, second.rejected, second.chosen_source, second.rejected_source) == ("answer B1", "answer A1", "tuned", "base")
    assert (bob.chosen, bob.annotator, bob.displayed_order) == ("answer B0", "bob", assigned_order(1, "bob", "p00"))
    assert got.annotators == ["alice", "bob"] and got.sources == ["base", "tuned"]
    pairs = got.pairs()
    assert pairs[0].preferred == "A" and pairs[0].chosen == "answer A0" and pairs[0].id == "p00:alice"
    assert len({p.id for p in pairs}) == len(pairs)  # two annotators on one pair stay two examples

    strong = session_votes(labeling, "s", min_strength=2)
    assert len(strong.votes) == 4 and strong.left_out["below_min_strength"] == 1
    weighted = session_votes(labeling, "s", weight_by_strength=True)
    assert [v.weight for v in weighted.votes] == [1.0, 1.0, 0.5, 1.0, 1.0]
    with pytest.raises(ConfigError, match="min_strength"):
        session_votes(labeling, "s", min_strength=3)


def test_snapshot_changes_with_the_votes_and_only_then(labeling: LabelingStore) -> None:
    labeling.vote("s", "alice", "p00", "A")
    one, again = session_votes(labeling, "s").snapshot, session_votes(labeling, "s").snapshot
    assert (one.n_judgments, one.sha256) == (again.n_judgments, again.sha256) and len(one.sha256) == 64
    labeling.vote("s", "alice", "p01", "tie")  # a tie trains nothing but is part of the log
    two = session_votes(labeling, "s").snapshot
    assert two.n_judgments == 2 and two.sha256 != one.sha256
    labeling.undo("s", "alice")
    assert session_votes(labeling, "s").snapshot.sha256 == one.sha256  # back to the same votes


def test_refusals_say_how_many_there_are_and_what_is_needed(labeling: LabelingStore) -> None:
    labeling.vote("s", "alice", "p00", "A")
    labeling.vote("s", "alice", "p01", "tie")
    with pytest.raises(DataError, match=r"1 usable A/B vote\(s\); this needs at least 10 \(left out: 1 tie\)"):
        session_votes(labeling, "s", min_votes=10)
    with pytest.raises(DataError, match=r"1 annotator\(s\) \(alice\); this needs at least 2"):
        session_votes(labeling, "s", min_annotators=2)
    with pytest.raises(NotFound, match="No labeling session named 'nope'"):
        session_votes(labeling, "nope")


def test_one_source_only_is_refused_for_source_questions(tmp_path: Path) -> None:
    store = Store(tmp_path / "one.sqlite")
    store.import_pairs("ds", [Pair(f"q{i}", "x", "y", id=f"p{i}", metadata={"source_a": "m", "source_b": "m"}) for i in range(3)])
    lab = LabelingStore(store)
    lab.create_session("s", "ds")
    lab.join("s", "a")
    lab.vote("s", "a", "p0", "A")
    assert len(session_votes(lab, "s").votes) == 1
    with pytest.raises(DataError, match=r"compares 1 source\(s\) \(m\); this needs at least 2"):
        session_votes(lab, "s", min_sources=2)


def test_held_out_split_is_by_prompt_and_deterministic(labeling: LabelingStore) -> None:
    for i in range(12):
        for who in ("alice", "bob"):
            labeling.vote("s", who, f"p{i:02d}", "A" if (i + len(who)) % 2 else "B")
    votes = session_votes(labeling, "s")
    train, held = votes.split(0.34, seed=0)
    assert len(train) + len(held) == 24 and held
    assert not {v.prompt for v in train} & {v.prompt for v in held}  # 6 prompts, 2 pairs x 2 annotators each
    assert len({v.prompt for v in held}) == 2
    again_train, again_held = session_votes(labeling, "s").split(0.34, seed=0)
    assert [(v.pair_id, v.annotator) for v in again_held] == [(v.pair_id, v.annotator) for v in held]
    other_seeds = [{v.prompt for v in votes.split(0.34, seed=k)[1]} for k in range(1, 6)]
    assert any(s != {v.prompt for v in held} for s in other_seeds)  # the seed picks the prompts
    with pytest.raises(ConfigError):
        votes.split(1.0)
