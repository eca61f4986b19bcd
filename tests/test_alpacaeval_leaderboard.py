"""AlpacaEval judge files as soft votes, several models in one session, and the leaderboard
(soft, discrete and length-controlled win rates) computed from them. Small files made here;
the released annotations are only used by benchmarks/alpacaeval.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import workbench.store as store_module
from workbench.data.types import vote_value
from workbench.errors import DataError
from workbench.labeling.alpacaeval import import_alpacaeval
from workbench.labeling.errors import Invalid
from workbench.labeling.sessions import LabelingStore
from workbench.store import MIGRATIONS, Store

BASE = "base-model"


def annotations(path: Path, model: str, prefs: list[float | str | None], *, baseline: str = BASE,
                model_words: int = 5, base_words: int = 5, identical_at: int | None = None) -> Path:
    """An AlpacaEval annotations.json: output_1 the baseline, output_2 ``model``, one record per preference."""
    records = []
    for i, p in enumerate(prefs):
        base = f"base answer {i} " + "b " * base_words
        records.append({"instruction": f"Question {i}?", "output_1": base,
                        "output_2": base if i == identical_at else f"{model} answer {i} " + "m " * model_words,
                        "generator_1": baseline, "generator_2": model, "annotator": "judge", "preference": p,
                        "raw_completion": {"logprobs": [{"token": "m", "logprob": -0.1}]}})
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.fixture()
def lab(tmp_path: Path) -> LabelingStore:
    return LabelingStore(Store(tmp_path / "w.sqlite"))


def test_soft_votes_are_stored_read_back_and_checked(lab: LabelingStore, tmp_path: Path) -> None:
    path = annotations(tmp_path / "m.json", "m", [1.0, 2.0, 1.5])
    import_alpacaeval(lab, path, "s")
    pid = lab.pairs("s")[0].id
    lab.join("s", "alice")
    lab.vote("s", "alice", pid, "A", soft=0.8)
    mine = [j for j in lab.judgments("s") if j.annotator == "alice"]
    assert mine[0].soft == 0.8 and vote_value(mine[0]) == 0.8 and vote_value(mine[0], soft=False) == 1.0
    before = len(lab.events("s"))
    for soft, outcome, why in [(1.2, "A", "between 0 and 1"), (float("nan"), "A", "between 0 and 1"), ("0.7", "A", "between 0 and 1"),
                               (0.3, "A", "leans the other way"), (0.5, "A", "leans the other way"),
                               (0.6, "both_bad", "A, B or tie")]:
        with pytest.raises(Invalid, match=why):
            lab.vote("s", "alice", lab.pairs("s")[1].id, outcome, soft=soft)
    assert len(lab.events("s")) == before
    lab.vote("s", "alice", lab.pairs("s")[1].id, "B", soft=0.25)
    lab.vote("s", "alice", lab.pairs("s")[2].id, "tie", soft=0.5)
    assert [j.soft for j in lab.judgments("s") if j.annotator == "alice"] == [0.8, 0.25, 0.5]


def test_an_old_store_gains_the_soft_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "old.sqlite"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:3])
    with Store(db) as old:
        lab = LabelingStore(old)
        old.import_pairs("d", [store_module.Pair("p", "a", "b", id="x")])
        lab.create_session("s", "d")
        lab.join("s", "h")
        with old.transaction() as conn:  # a vote as the previous schema stored it
            assert "soft" not in {r[1] for r in conn.execute("PRAGMA table_info(labeling_events)")}
            event = conn.execute("INSERT INTO labeling_events (session_id, annotator_id, kind, pair_id, outcome, submitted_at)"
                                 " VALUES (1, 1, 'vote', 'x', 'A', 0)").lastrowid
            conn.execute("INSERT INTO labeling_current VALUES (1, 1, 'x', ?, 'A')", (event,))
    monkeypatch.undo()
    with Store(db) as new:
        assert new.schema_version == len(MIGRATIONS)
        lab = LabelingStore(new)
        assert [(j.outcome.value, j.soft) for j in lab.judgments("s")] == [("A", None)]
        lab.vote("s", "h", "x", "B", soft=0.1, edit=True)
        assert [j.soft for j in lab.judgments("s")] == [0.1]


def test_fractional_preferences_become_soft_votes_on_the_nearer_side(lab: LabelingStore, tmp_path: Path) -> None:
    path = annotations(tmp_path / "m.json", "m", [1.0000002, "1.73", 1.5, 1.2, 0, None])
    counts = import_alpacaeval(lab, path, "s")
    assert counts["votes"] == 5 and counts["unlabeled"] == 1 and counts["baseline"] == BASE and counts["sources"] == ["m"]
    got = [(j.outcome.value, round(j.soft, 7)) for j in lab.judgments("s")]
    assert got == [("A", 0.9999998), ("B", 0.27), ("tie", 0.5), ("A", 0.8), ("tie", 0.5)]
    assert all(j.displayed_order == "AB" for j in lab.judgments("s"))
    assert all("raw_completion" not in p.metadata and "preference" not in p.metadata for p in lab.pairs("s"))


def test_several_files_are_one_session_with_one_source_each(lab: LabelingStore, tmp_path: Path) -> None:
    files = [annotations(tmp_path / f"{m}.json", m, [1.9, 1.1, 1.6]) for m in ("m1", "m2", "m3")]
    counts = import_alpacaeval(lab, files, "s")
    assert counts["pairs"] == 9 and counts["votes"] == 9 and counts["files"] == 3 and counts["sources"] == ["m1", "m2", "m3"]
    assert lab.session("s").n_pairs == 9 and lab.annotators("s") == ["judge"]
    assert sorted(p.metadata["generator_2"] for p in lab.pairs("s")) == ["m1"] * 3 + ["m2"] * 3 + ["m3"] * 3


def test_identical_answers_are_refused_unless_allowed_and_nothing_is_left_behind(lab: LabelingStore, tmp_path: Path) -> None:
    good = annotations(tmp_path / "good.json", "m1", [1.9, 1.1])
    bad = annotations(tmp_path / "bad.json", "m2", [1.9, 1.1, 1.4], identical_at=1)
    with pytest.raises(DataError, match=r"1 of 3 records look like mistakes.*identical: 1 at record 2") as err:
        import_alpacaeval(lab, [good, bad], "s")
    assert "bad.json" in str(err.value)
    assert lab.list_sessions() == [] and lab.store.list_datasets() == []
    counts = import_alpacaeval(lab, [good, bad], "s", allow=["identical"])
    assert counts["pairs"] == 5


def test_another_baseline_is_refused_naming_the_file_record_and_field(lab: LabelingStore, tmp_path: Path) -> None:
    one = annotations(tmp_path / "one.json", "m1", [1.9])
    other = annotations(tmp_path / "other.json", "m2", [1.9], baseline="another-base")
    with pytest.raises(DataError, match="record 1 has baseline generator_1 'another-base'") as err:
        import_alpacaeval(lab, [one, other], "s")
    assert err.value.field == "generator_1" and "other.json" in str(err.value)
    assert lab.list_sessions() == []


def test_a_refused_vote_rolls_back_the_whole_import(lab: LabelingStore, tmp_path: Path) -> None:
    pairs = [store_module.Pair("p", "a", "b", id="x"), store_module.Pair("q", "a", "c", id="y")]
    with pytest.raises(Invalid, match="between 0 and 1"):
        lab.import_judged_session("s", "d", pairs, [("x", "j", "A", 0.9), ("y", "j", "B", 1.5)])
    assert lab.list_sessions() == [] and lab.store.list_datasets() == []
