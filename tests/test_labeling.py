"""Labeling sessions on a real SQLite store: queues, blind order, votes, undo, edits, export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.data.types import Pair
from workbench.labeling import Conflict, Invalid, LabelingStore, NotFound
from workbench.labeling.analysis import session_report
from workbench.labeling.export import dpo_rows, export_session, export_session_long_table
from workbench.labeling.sessions import assigned_order
from workbench.labeling.verdict import session_verdict
from workbench.store import Store


def make_pairs(n: int = 12) -> list[Pair]:
    return [Pair(f"prompt {i}", f"answer A{i}", f"answer B{i}", id=f"p{i:02d}",
                 metadata={"source_a": "big" if i % 2 else "mid", "source_b": "mid" if i % 2 else "small"}) for i in range(n)]


@pytest.fixture
def labeling(store_target: str | Path) -> LabelingStore:
    """Sessions on a store in SQLite and, parametrized, in PostgreSQL."""
    store = Store(store_target)
    store.import_pairs("ds", make_pairs())
    return LabelingStore(store)


def label_all(lab: LabelingStore, session: str, annotator: str, outcome: str = "A") -> int:
    n = 0
    while (item := lab.next_item(session, annotator)) is not None:
        lab.vote(session, annotator, item.pair.id, outcome, displayed_order=item.displayed_order)
        n += 1
    return n


def test_sequential_queue_progress_and_blind_order(labeling: LabelingStore) -> None:
    labeling.create_session("s", "ds")
    labeling.join("s", "alice")
    item = labeling.next_item("s", "alice")
    assert item.pair.id == "p00" and (item.position, item.total) == (1, 12)
    # Randomised across pairs, and the same in every process (a fixed value: a salted hash
    # such as Python's hash() would give another order after a restart).
    assert "".join(assigned_order(1, "alice", f"p{i:02d}")[0] for i in range(12)) == "BAAAABBBABBA"
    assert item.displayed_order == "BA" and labeling.next_item("s", "alice").displayed_order == "BA"  # stable for a reload
    shown = {item.left, item.right}
    assert shown == {"answer A0", "answer B0"} and "A" not in item.to_dict() and "current" in item.to_dict()
    labeling.vote("s", "alice", "p00", "B", strength=1, displayed_order=item.displayed_order, started_at=0.0)
    nxt = labeling.next_item("s", "alice")
    assert nxt.pair.id == "p01" and nxt.position == 2
    assert labeling.progress("s", "alice").done == 1


def test_overlap_random_order_and_gold(labeling: LabelingStore) -> None:
    labeling.create_session("s", "ds", {"overlap": 2, "order": "random", "gold": {"p05": "A"}})
    for who in ("a", "b", "c"):
        labeling.join("s", who)
    firsts = {who: labeling.next_item("s", who).pair.id for who in ("a", "b", "c")}
    assert len(set(firsts.values())) > 1  # annotators start at different pairs
    assert label_all(labeling, "s", "a") == 12
    # c's first pair stays reserved for c (a's vote + c's reservation fill its overlap of 2) ...
    assert label_all(labeling, "s", "b") == 11
    assert firsts["c"] not in {j.pair_id for j in labeling.judgments("s") if j.annotator == "b"}
    assert label_all(labeling, "s", "c") == 2  # ... so c judges it, and the gold pair everyone sees
    assert labeling.session_progress("s") == {"pairs": 12, "needed": 24, "covered": 24, "judgments": 25, "skips": 0}


def test_double_submit_edit_and_request_replay(labeling: LabelingStore) -> None:
    labeling.create_session("s", "ds")
    labeling.join("s", "al")
    order = labeling.next_item("s", "al").displayed_order
    ack = labeling.vote("s", "al", "p00", "A", displayed_order=order, request_id="r1")
    again = labeling.vote("s", "al", "p00", "A", displayed_order=order, request_id="r1")
    assert again.replayed and again.event_id == ack.event_id
    with pytest.raises(Conflict, match="already used for a different request"):
        labeling.vote("s", "al", "p00", "B", displayed_order=order, request_id="r1")
    with pytest.raises(Conflict, match="already voted"):
        labeling.vote("s", "al", "p00", "B", displayed_order=order)
    labeling.vote("s", "al", "p00", "B", displayed_order=order, edit=True)
    assert [j.outcome.value for j in labeling.judgments("s")] == ["B"]
    assert [e["kind"] for e in labeling.events("s")] == ["vote", "vote"]


def test_undo_is_an_event_and_restores_the_previous_vote(labeling: LabelingStore) -> None:
    labeling.create_session("s", "ds")
    labeling.join("s", "al")
    labeling.vote("s", "al", "p00", "A")
    labeling.vote("s", "al", "p01", "tie")
    labeling.vote("s", "al", "p00", "B", edit=True)
    assert labeling.undo("s", "al").outcome == "B"  # the edit is undone: p00 counts as A again
    assert {j.pair_id: j.outcome.value for j in labeling.judgments("s")} == {"p00": "A", "p01": "tie"}
    undone = labeling.undo("s", "al")
    assert (undone.pair_id, undone.outcome) == ("p01", "tie")
    assert labeling.next_item("s", "al").pair.id == "p01"  # back in the queue
    kinds = [e["kind"] for e in labeling.events("s")]
    assert kinds == ["vote", "vote", "vote", "undo", "undo"]  # nothing deleted
    first = labeling.events("s")[0]["id"]
    with pytest.raises(Conflict, match="currently counts"):
        labeling.undo("s", "al", event_id=first + 2)  # the undone edit
    labeling.undo("s", "al", event_id=first)
    assert labeling.judgments("s") == []
    with pytest.raises(Conflict, match="no vote to undo"):
        labeling.undo("s", "al")


def test_bad_votes_are_refused_and_change_nothing(labeling: LabelingStore, tmp_path: Path) -> None:
    labeling.create_session("s", "ds", {"aspects": ["helpfulness"]})
    labeling.join("s", "al")
    order = labeling.next_item("s", "al").displayed_order
    other = "BA" if order == "AB" else "AB"
    bad = [
        (NotFound, dict(pair_id="nope", outcome="A")),
        (Invalid, dict(pair_id="p00", outcome="maybe")),
        (Invalid, dict(pair_id="p00", outcome="A", strength=3)),
        (Invalid, dict(pair_id="p00", outcome="tie", strength=1)),
        (Invalid, dict(pair_id="p00", outcome="A", aspects={"style": "A"})),
        (Invalid, dict(pair_id="p00", outcome="A", aspects={"helpfulness": "left"})),
        (Invalid, dict(pair_id="p00", outcome="A", displayed_order=other)),
        (Conflict, dict(pair_id="p00", outcome="A", edit=True)),
    ]
    for error, kwargs in bad:
        pid, outcome = kwargs.pop("pair_id"), kwargs.pop("outcome")
        with pytest.raises(error):
            labeling.vote("s", "al", pid, outcome, **kwargs)
    with pytest.raises(NotFound, match="has not joined"):
        labeling.vote("s", "bob", "p00", "A")
    with pytest.raises(NotFound, match="No labeling session"):
        labeling.vote("t", "al", "p00", "A")
    labeling.set_status("s", "closed")
    with pytest.raises(Conflict, match="closed"):
        labeling.vote("s", "al", "p00", "A")
    assert labeling.events("s") == []
    with Store(labeling.store.url or labeling.store.path) as other, other.reading() as conn:  # what another process sees
        assert conn.execute("SELECT COUNT(*) FROM labeling_events").fetchone()[0] == 0


def test_bad_sessions_are_refused(labeling: LabelingStore) -> None:
    with pytest.raises(NotFound, match="No dataset"):
        labeling.create_session("s", "missing")
    with pytest.raises(Invalid, match="overlap"):
        labeling.create_session("s", "ds", {"overlap": 0})
    with pytest.raises(Invalid, match="order"):
        labeling.create_session("s", "ds", {"order": "alphabetical"})
    with pytest.raises(NotFound, match="Gold pair"):
        labeling.create_session("s", "ds", {"gold": {"zzz": "A"}})
    with pytest.raises(Invalid, match="Unknown session setting"):
        labeling.create_session("s", "ds", {"overlapp": 2})
    labeling.create_session("s", "ds")
    with pytest.raises(Conflict, match="already exists"):
        labeling.create_session("s", "ds")
    assert [s.name for s in labeling.list_sessions()] == ["s"]


def test_active_order_covers_first_then_asks_uncertain_pairs(labeling: LabelingStore) -> None:
    labeling.create_session("s", "ds", {"overlap": 3, "order": "active"})
    for who in ("a", "b", "c"):
        labeling.join("s", who)
    seen = [labeling.next_item("s", "a").pair.id]
    labeling.vote("s", "a", seen[0], "A")
    # Coverage: b is not sent to the pair a already judged while others have no vote.
    assert labeling.next_item("s", "b").pair.id != seen[0]
    label_all(labeling, "s", "a", "A")
    # Now every pair has one vote, from a: equal coverage, so uncertainty decides. Votes for
    # pairs "mid vs small" (even ids) agree with BT and are settled; after b disagrees on the
    # odd ones, c is asked about one of those contested pairs first.
    for i in range(1, 12, 2):
        labeling.vote("s", "b", f"p{i:02d}", "B")
    nxt = labeling.next_item("s", "c").pair.id
    contested = {f"p{i:02d}" for i in range(1, 12, 2)}
    assert nxt not in contested  # coverage first: even pairs have 1 vote, odd ones 2
    for i in range(0, 12, 2):
        labeling.vote("s", "b", f"p{i:02d}", "A")
    assert labeling.next_item("s", "c").pair.id == nxt  # c still holds the pair served to them ...
    labeling.vote("s", "c", nxt, "skip", rationale="comes back later")  # ... until they answer it
    assert labeling.next_item("s", "c").pair.id in contested  # all at 2 votes: the split ones come first


def test_export_dpo_and_long_table(labeling: LabelingStore, tmp_path: Path) -> None:
    labeling.create_session("s", "ds", {"overlap": 2})
    for who in ("a", "b"):
        labeling.join("s", who)
    for i, outcome in enumerate(["A", "B", "tie", "both_bad", "skip", "A"]):
        labeling.vote("s", "a", f"p{i:02d}", outcome, strength=2 if outcome in "AB" else None,
                      rationale="unreadable" if outcome == "skip" else "")
        labeling.vote("s", "b", f"p{i:02d}", "A" if i != 1 else "B", strength=1)
    rows, report = dpo_rows(labeling, "s")
    assert report == {"written": 9, "skipped": {"tie": 1, "both_bad": 1, "skip": 1}}
    assert rows[0] == {"prompt": "prompt 0", "chosen": "answer A0", "rejected": "answer B0", "id": "p00", "annotator": "a", "margin": 2}
    rows, report = dpo_rows(labeling, "s", "majority")
    assert [(r["id"], r["chosen"], r["margin"]) for r in rows] == [("p00", "answer A0", 1.5), ("p01", "answer B1", 1.5),
                                                                    ("p04", "answer A4", 1.0), ("p05", "answer A5", 1.5)]
    assert report["skipped"] == {"no_majority": 2}
    out = export_session(labeling, "s", tmp_path / "dpo.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text().splitlines()]
    assert out["written"] == len(lines) == 9 and lines[1]["margin"] == 1
    export_session(labeling, "s", tmp_path / "dpo.parquet", "trl-parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "dpo.parquet").column_names == ["prompt", "chosen", "rejected", "id", "annotator", "margin"]
    assert export_session_long_table(labeling, "s", tmp_path / "long.csv") == 12
    with pytest.raises(Exception, match="Unknown export format"):
        export_session(labeling, "s", tmp_path / "x.txt", "txt")
    assert not (tmp_path / "x.txt").exists()


def test_report_ranks_sources(labeling: LabelingStore) -> None:
    labeling.create_session("s", "ds")
    labeling.join("s", "a")
    label_all(labeling, "s", "a", "A")  # A always wins: big > mid > small
    report = session_report(labeling, "s")
    assert [r["source"] for r in report["ratings"]] == ["big", "mid", "small"]
    assert report["win_rate"]["items"] == ["big", "mid", "small"] and report["win_rate"]["count"][0][1] == 6
    assert "The question is answered (big vs mid" in report["stopping_hint"] and "labeling can stop" in report["stopping_hint"]


def test_analysis_panel_figure_and_summary(labeling: LabelingStore) -> None:
    from plugins.labeling.manage import ratings_figure, report_markdown

    labeling.create_session("s", "ds", {"overlap": 2})
    for who, outcome in (("a", "A"), ("b", "B")):
        labeling.join("s", who)
        label_all(labeling, "s", who, outcome)
    report = session_report(labeling, "s", ties="half")
    fig = ratings_figure(report)
    assert len(fig.axes) == 3  # ratings, win-rate matrix and its colour bar
    text = report_markdown(report, session_verdict(labeling, "s", ties="half"))
    assert "Fleiss' κ (12 items with ≥ 2 votes)" in text and "ordinal strength" in text
    assert report["agreement"]["cohen_pairwise"]["a|b"]["kappa"] <= 0  # they always disagree
