"""Bias while labeling (issue 25 §4): position and length effects with intervals and the votes
they need, and a warning once an interval excludes 0.5, on a real store as votes arrive."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.labeling.verdict import session_stats
from workbench.preference.agreement import live_bias
from workbench.store import Store


def session(home: Path, n: int = 80) -> tuple[LabelingStore, list[Pair]]:
    rng = np.random.default_rng(5)
    pairs = []
    for i in range(n):
        a, b = "word " * int(rng.integers(5, 60)), "word " * int(rng.integers(5, 60))
        src = ("base", "tuned") if i % 2 else ("tuned", "base")
        pairs.append(Pair(f"question {i}", a + "a", b + "b", id=f"p{i:03d}", metadata={"source_a": src[0], "source_b": src[1]}))
    store = Store(home / "workbench.sqlite")
    store.import_pairs("ds", pairs)
    lab = LabelingStore(store)
    lab.create_session("s", "ds", {"overlap": 2})
    return lab, pairs


def test_a_left_clicker_is_warned_about_once_the_interval_excludes_half(tmp_path: Path) -> None:
    lab, pairs = session(tmp_path)
    rng = np.random.default_rng(1)
    lab.join("s", "lefty")
    lab.join("s", "fair")
    first_warning = None
    for k in range(40):
        item = lab.next_item("s", "lefty")
        lab.vote("s", "lefty", item.pair.id, item.displayed_order[0], displayed_order=item.displayed_order)  # always the left one
        fair = lab.next_item("s", "fair")
        lab.vote("s", "fair", fair.pair.id, str(rng.choice(["A", "B"])), displayed_order=fair.displayed_order)
        position = live_bias(lab.pairs("s"), lab.judgments("s"))[0]
        assert position["effect"] == "position" and position["n"] == 2 * (k + 1)
        if position["warning"] and first_warning is None:
            first_warning = position["n"]
            assert position["ci"][0] > 0.5
        if first_warning is None:  # undecided: it says how many votes the current rate would need
            assert position["warning"] is None and (position["votes_needed"] is None or position["votes_needed"] > position["n"])
    assert first_warning is not None and first_warning < 80
    stats = session_stats(lab, "s")
    assert any(w.startswith("position effect") for w in stats["warnings"])
    assert any(line.startswith("warning: position effect") for line in stats["lines"])
    only_fair = live_bias(pairs, [j for j in lab.judgments("s") if j.annotator == "fair"])
    assert not any(b["warning"] for b in only_fair)


def test_a_length_lover_sets_off_the_length_warning(tmp_path: Path) -> None:
    lab, pairs = session(tmp_path)
    lab.join("s", "long")
    for _ in range(40):
        item = lab.next_item("s", "long")
        p = item.pair
        lab.vote("s", "long", p.id, "A" if len(p.response_a) > len(p.response_b) else "B", displayed_order=item.displayed_order)
    length = live_bias(pairs, lab.judgments("s"))[1]
    assert length["effect"] == "length" and length["warning"] and length["rate"] == 1.0 and length["n"] == 40


def test_the_owners_stats_carry_the_bias_and_the_fast_page_shows_it(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from plugins.labeling.server import labeling_context
    from workbench.app.server import create_app
    from workbench.settings import Settings

    lab, _ = session(tmp_path)
    lab.join("s", "lefty")
    for _ in range(30):
        item = lab.next_item("s", "lefty")
        lab.vote("s", "lefty", item.pair.id, item.displayed_order[0], displayed_order=item.displayed_order)
    with TestClient(create_app(labeling_context(Settings(home=tmp_path)), ui=False)) as client:
        stats = client.get("/api/labeling/sessions/s/stats")
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert [b["effect"] for b in body["bias"]] == ["position", "length"]
        assert body["bias"][0]["n"] == 30 and body["warnings"][0].startswith("position effect")
        lab.create_session("empty", "ds")  # no votes yet: the stats still answer (no NaN in the JSON)
        empty = client.get("/api/labeling/sessions/empty/stats")
        assert empty.status_code == 200 and [b["rate"] for b in empty.json()["bias"]] == [None, None]
        page, js = client.get("/label/s").text, client.get("/label/assets/label.js").text
        assert 'id="bias"' in page and "showBias" in js and "stats.bias" in js
