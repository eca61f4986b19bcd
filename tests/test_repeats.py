"""Hidden repeats (issue 25 §1): a session shows each annotator a share of pairs they already
voted on again, sides swapped and unannounced; the second vote is kept apart (never a current
vote, never counted twice) and measures self-consistency. Real SQLite store, simulated annotators."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.data.types import Pair
from workbench.labeling import Conflict, Invalid, LabelingStore
from workbench.labeling.sessions import assigned_order
from workbench.preference.annotators import annotator_analysis, session_annotators
from workbench.preference.winrate import did_it_win
from workbench.store import Store

FLIP = {"A": "B", "B": "A"}


def make_pairs(n: int) -> list[Pair]:
    """Pairs whose A and B differ in length (a taste a consistent voter can follow) and in source."""
    return [Pair(f"question {i}?", "word " * (3 + i % 5), "word " * (9 + i % 7), id=f"p{i:02d}",
                 metadata={"source_a": "short", "source_b": "long"} if i % 2 else {"source_a": "long", "source_b": "short"})
            for i in range(n)]


def swap_sides(pair: Pair) -> Pair:
    return Pair(pair.prompt, pair.response_b, pair.response_a, id=pair.id, metadata=pair.metadata)


@pytest.fixture
def clock() -> list[float]:
    return [1_000.0]


@pytest.fixture
def lab(store_target: str | Path, clock: list[float]) -> LabelingStore:
    """Sessions on a store in SQLite and, parametrized, in PostgreSQL."""
    store = Store(store_target)
    store.import_pairs("ds", make_pairs(40))
    store.import_pairs("two", make_pairs(2))
    return LabelingStore(store, clock=lambda: clock[0])


def longer(item) -> str:
    """A consistent voter: the longer side, in canonical terms."""
    return "A" if len(item.pair.response_a) > len(item.pair.response_b) else "B"


def test_repeat_share_is_validated(lab: LabelingStore) -> None:
    for bad in (-0.1, 0.51, 1, "0.2", True, float("nan")):
        with pytest.raises(Invalid, match="repeat_share must be a number from 0 to 0.5"):
            lab.create_session(f"bad-{bad!s}", "ds", {"repeat_share": bad})
    assert lab.create_session("ok", "ds", {"repeat_share": 0.5}).settings.repeat_share == 0.5
    assert lab.create_session("none", "ds").settings.repeat_share == 0  # off by default


def test_simulated_annotators_see_hidden_repeats_that_never_count_twice(lab: LabelingStore) -> None:
    lab.create_session("s", "ds", {"overlap": 2, "order": "random", "repeat_share": 0.2})
    rng = np.random.default_rng(0)
    rules = {"steady": longer, "coin": lambda item: str(rng.choice(["A", "B"]))}
    shown: dict[str, list] = {name: [] for name in rules}
    for name in rules:
        lab.join("s", name)
    while True:
        moved = False
        for name, rule in rules.items():  # interleaved, as annotators label at once
            item = lab.next_item("s", name)
            if item is None:
                continue
            view = item.to_dict()
            assert set(view) == {"session", "annotator", "pair_id", "prompt", "left", "right", "displayed_order", "position",
                                 "total", "current"} and view["current"] is None  # nothing says "repeat"
            shown[name].append(item)
            lab.vote("s", name, item.pair.id, rule(item), displayed_order=item.displayed_order)
            moved = True
        if not moved:
            break
    events = lab.events("s")
    for name, items in shown.items():
        # 40 first votes and 10 repeats: a share of 0.2 of the 50 items, numbered 1..50 of 50 like any others.
        assert [i.position for i in items] == list(range(1, 51)) and {i.total for i in items} == {50}
        firsts = [e for e in events if e["annotator"] == name and not e["is_repeat"]]
        again = [e for e in events if e["annotator"] == name and e["is_repeat"]]
        assert len(firsts) == 40 and len(again) == 10 and len({e["pair_id"] for e in again}) == 10
        # A repeat is shown with its sides swapped, and never right after the first vote on it.
        for e in again:
            assert e["displayed_order"] != assigned_order(1, name, e["pair_id"])
            served_at = [k for k, i in enumerate(items) if i.pair.id == e["pair_id"]]
            assert len(served_at) == 2 and served_at[1] - served_at[0] > 5
        assert lab.progress("s", name).remaining == 0
    # The first votes are what counts: 80 judgments, the repeats beside them.
    judgments, repeats = lab.judgments("s"), lab.repeats("s")
    assert len(judgments) == 80 and len(repeats) == 20
    first = {(e["annotator"], e["pair_id"]): e["outcome"] for e in events if not e["is_repeat"]}
    assert {(j.annotator, j.pair_id): j.outcome.value for j in judgments} == first
    assert lab.session_progress("s") == {"pairs": 40, "needed": 80, "covered": 80, "judgments": 80, "skips": 0, "repeats": 20}
    flips = sum(first[(r.annotator, r.pair_id)] != r.outcome.value for r in repeats if r.annotator == "coin")
    assert flips > 0  # the coin disagreed with itself, and its first votes still stand
    assert did_it_win(lab.pairs("s"), judgments, "long")["n"] == 80  # win rates see each vote once
    # Self-consistency separates the steady voter from the coin.
    rows = {r["annotator"]: r for r in annotator_analysis(lab.pairs("s"), judgments, repeats=repeats)["annotators"]}
    assert rows["steady"]["self_consistency"]["n"] == 10 and rows["steady"]["self_consistency"]["rate"] == 1.0
    assert rows["coin"]["self_consistency"]["n"] == 10 and rows["coin"]["self_consistency"]["rate"] == 1 - flips / 10
    # `label annotators` and the statistics view read the session's repeats themselves.
    found = {r["annotator"]: r for r in session_annotators(lab, "s")["annotators"]}
    assert found["coin"]["self_consistency"] == rows["coin"]["self_consistency"]


def test_a_repeat_is_undone_and_served_again_and_never_submitted_twice(lab: LabelingStore, clock: list[float]) -> None:
    lab.create_session("s", "two", {"repeat_share": 0.5})
    lab.join("s", "al")
    for _ in range(2):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, longer(item), displayed_order=item.displayed_order)
    before = {j.pair_id: j.outcome for j in lab.judgments("s")}
    item = lab.next_item("s", "al")  # no new pair left: the repeats due come now
    assert item.pair.id in before and item.displayed_order != assigned_order(1, "al", item.pair.id)
    assert lab.next_item("s", "al").pair.id == item.pair.id  # a reload shows the same repeat
    with pytest.raises(Conflict, match="already voted"):  # a stale copy of the first vote is still a double submit
        lab.vote("s", "al", item.pair.id, "A", displayed_order=assigned_order(1, "al", item.pair.id))
    ack = lab.vote("s", "al", item.pair.id, FLIP[before[item.pair.id].value], displayed_order=item.displayed_order)
    assert {j.pair_id: j.outcome for j in lab.judgments("s")} == before  # the first vote stands
    with pytest.raises(Conflict, match="already voted"):
        lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    # Undo takes back the repeat's vote (the latest vote), not the first one; the pair comes back as the same repeat.
    undone = lab.undo("s", "al")
    assert undone.pair_id == item.pair.id and undone.outcome == ack.outcome and lab.repeats("s") == []
    assert {j.pair_id: j.outcome for j in lab.judgments("s")} == before
    again = lab.next_item("s", "al")
    assert (again.pair.id, again.displayed_order) == (item.pair.id, item.displayed_order)
    second = lab.vote("s", "al", again.pair.id, "A", displayed_order=again.displayed_order)
    assert lab.undo("s", "al", second.event_id).pair_id == again.pair.id  # by event id too
    # A repeat whose reservation expired is still recognised by the swapped order it is shown in.
    clock[0] += 10_000
    lab.join("s", "bob")
    lab.next_item("s", "bob")  # deletes the expired leases, al's among them
    lab.vote("s", "al", again.pair.id, "B", displayed_order=again.displayed_order)
    assert len(lab.repeats("s")) == 1 and len(lab.judgments("s")) == 2
    # Editing a first vote from the history never picks up the repeat.
    lab.vote("s", "al", again.pair.id, "tie", displayed_order=assigned_order(1, "al", again.pair.id), edit=True)
    lab.undo("s", "al")
    assert {j.pair_id: j.outcome for j in lab.judgments("s")} == before


def test_a_held_repeat_takes_no_room_from_others(lab: LabelingStore) -> None:
    lab.create_session("s", "two", {"repeat_share": 0.5, "overlap": 2})
    for name in ("al", "bo"):
        lab.join("s", name)
    for _ in range(2):
        item = lab.next_item("s", "al")
        lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    held = lab.next_item("s", "al")  # al now holds a repeat of one pair
    assert held is not None and held.pair.id in {"p00", "p01"}
    got = []
    while (item := lab.next_item("s", "bo")) is not None and item.pair.id not in got:
        got.append(item.pair.id)
        lab.vote("s", "bo", item.pair.id, "B", displayed_order=item.displayed_order)
    assert sorted(got) == ["p00", "p01"]  # bo judged the pair al holds as a repeat, within the overlap of 2


def test_sessions_without_repeats_refuse_a_second_vote_as_before(lab: LabelingStore) -> None:
    lab.create_session("s", "two")
    lab.join("s", "al")
    item = lab.next_item("s", "al")
    lab.vote("s", "al", item.pair.id, "A", displayed_order=item.displayed_order)
    swapped = "BA" if item.displayed_order == "AB" else "AB"
    with pytest.raises(Invalid, match="is not what 'al' was shown"):
        lab.vote("s", "al", item.pair.id, "A", displayed_order=swapped)
    assert all(not e["is_repeat"] for e in lab.events("s"))
