"""AlpacaEval judge files as soft votes, several models in one session, and the leaderboard
(soft, discrete and length-controlled win rates) computed from them. Small files made here;
the released annotations are only used by benchmarks/alpacaeval.py."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import workbench.store as store_module
from plugins.labeling.cli import label_app
from workbench.data.types import vote_value
from workbench.errors import DataError
from workbench.labeling.alpacaeval import import_alpacaeval, session_leaderboard
from workbench.labeling.errors import Invalid
from workbench.labeling.sessions import LabelingStore
from workbench.preference.length_control import Matchups, instruction_difficulty
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


def synthetic(tmp_path: Path, model: str, quality: float, stretch: tuple[float, float], n: int = 40,
              length_effect: float = 1.5) -> Path:
    """A judge that likes length: P(model wins on i) = σ(quality + γ_i − effect·tanh(Δlen_i / sd)),
    Δlen = len(baseline) − len(model), written as AlpacaEval soft preferences (1 + P)."""
    rng = np.random.default_rng(7)
    gamma = rng.normal(0, 1, n)  # the same instructions (same seed) in every file
    base_len = rng.integers(300, 800, n)
    lengths = (base_len * np.random.default_rng(zlib.crc32(model.encode())).uniform(*stretch, n)).astype(int)
    delta = base_len - lengths
    p = 1 / (1 + np.exp(-(quality + gamma - length_effect * np.tanh(delta / delta.std(ddof=1)))))
    records = [{"instruction": f"Question {i}?", "output_1": f"base {i} " + "b" * int(base_len[i]),
                "output_2": f"{model} {i} " + "m" * int(lengths[i]), "generator_1": BASE, "generator_2": model,
                "annotator": "judge", "preference": float(1 + p[i])} for i in range(n)]
    path = tmp_path / f"{model}.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_win_rates_follow_alpacaeval_definitions(lab: LabelingStore, tmp_path: Path) -> None:
    prefs = [1.0, 1.73, 1.5, 1.2, 2.0, 1.4999, 1.5001, 1.9, 1.05, 1.5]
    files = [annotations(tmp_path / "m1.json", "m1", prefs), annotations(tmp_path / "m2.json", "m2", prefs[::-1])]
    import_alpacaeval(lab, files, "s")
    board = session_leaderboard(lab, "s")
    assert board["baseline"] == BASE and [r["n"] for r in board["rows"]] == [10, 10]
    soft = 100 * np.mean([p - 1 for p in prefs])  # AlpacaEval: mean of preference − 1
    wins, draws = sum(p > 1.5 for p in prefs), sum(p == 1.5 for p in prefs)  # rounded to the nearer side, 1.5 a draw
    for row in board["rows"]:
        assert row["win_rate"] == pytest.approx(soft) and row["discrete_win_rate"] == pytest.approx(100 * (wins + draws / 2) / 10)
        assert row["votes_to_flip"] is not None and "votes" in row["fragility"]


def test_length_control_takes_out_a_judge_s_taste_for_length(lab: LabelingStore, tmp_path: Path) -> None:
    # Two models of the same quality; one always answers longer than the baseline, one shorter.
    files = [synthetic(tmp_path, "verbose", -0.5, (1.5, 3.0)), synthetic(tmp_path, "concise", -0.5, (0.3, 0.7))]
    import_alpacaeval(lab, files, "s")
    rows = {r["source"]: r for r in session_leaderboard(lab, "s")["rows"]}
    v, c = rows["verbose"], rows["concise"]
    assert v["win_rate"] - c["win_rate"] > 30  # raw: length wins
    assert abs(v["lc_win_rate"] - c["lc_win_rate"]) < 5  # controlled: the same model
    assert v["length_coef"] < 0 and c["length_coef"] < 0  # a longer candidate (negative Δlen) wins more
    for r in (v, c):
        assert r["lc_win_rate_ci"][0] <= r["lc_win_rate"] <= r["lc_win_rate_ci"][1] and r["extrapolates"]
        assert "toward the 1 other candidates" in r["regularisation"]


def test_the_difficulty_estimate_and_the_regularisation_are_named(lab: LabelingStore, tmp_path: Path) -> None:
    import_alpacaeval(lab, [synthetic(tmp_path, "only", 0.0, (0.8, 1.2))], "one")
    board = session_leaderboard(lab, "one")
    assert board["difficulty"].startswith("none: one candidate") and "noreg" in board["rows"][0]["regularisation"]
    # The baseline's own verbose/concise variants are the authors' regularisation rows.
    files = [synthetic(tmp_path, m, q, s) for m, q, s in [("m1", 0.3, (0.8, 1.5)), (f"{BASE}_verbose", 0.0, (1.5, 2.5)),
                                                         (f"{BASE}_concise", 0.0, (0.3, 0.6))]]
    import_alpacaeval(lab, files, "gamed")
    board = session_leaderboard(lab, "gamed")
    assert board["difficulty"].startswith("joint fit over the 3 candidates")
    m1 = next(r for r in board["rows"] if r["source"] == "m1")
    assert m1["regularisation"].startswith(f"toward the baseline: its variants {BASE}_concise, {BASE}_verbose")
    with pytest.raises(DataError, match="No pair of session 'gamed' has a response from 'nobody'"):
        session_leaderboard(lab, "gamed", baseline="nobody")


def test_import_judgments_and_leaderboard_through_the_cli(tmp_path: Path) -> None:
    """In-process (CliRunner): every WorkbenchError exits 2 through workbench.cli.main, which
    tests/test_labeling_cli.py checks through the real process for this command."""
    home = tmp_path / "home"
    one = synthetic(tmp_path, "m1", 0.5, (0.8, 1.6))
    two = annotations(tmp_path / "two.json", "example", [1.9, 1.2, 1.7], identical_at=1)
    with pytest.raises(DataError) as refused:
        CliRunner().invoke(label_app, ["import-judgments", str(one), str(two), "--session", "s", "--home", str(home)],
                           catch_exceptions=False)
    assert "two.json: 1 of 3 records look like mistakes" in str(refused.value) and "identical: 1 at record 2" in str(refused.value)
    assert "workbench label import-judgments … --allow identical" in str(refused.value)

    def run(*args: str) -> str:
        result = CliRunner().invoke(label_app, [*args, "--home", str(home)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("import-judgments", str(one), str(two), "--session", "s", "--allow", "identical", "--names", "m1,m2")
    assert "43 pairs, 43 votes by judge" in out and f"2 file(s), baseline {BASE}, 2 source(s)" in out
    rows = json.loads(run("leaderboard", "s", "--json"))
    assert sorted(r["source"] for r in rows) == ["m1", "m2"]
    m2 = next(r for r in rows if r["source"] == "m2")
    assert m2["n"] == 3 and m2["win_rate"] == pytest.approx(100 * (0.9 + 0.2 + 0.7) / 3)
    assert m2["discrete_win_rate"] == pytest.approx(100 * 2 / 3) and 0 <= m2["lc_win_rate"] <= 100
    assert all(r["baseline"] == BASE and r["difficulty"].startswith("joint fit over the 2 candidates") for r in rows)
    text = run("leaderboard", "s")
    assert "instruction difficulty: joint fit" in text and "lc_win_rate" in text and "votes_to_flip" in text
    with pytest.raises(DataError, match="has a response from 'nobody'"):
        CliRunner().invoke(label_app, ["leaderboard", "s", "--baseline", "nobody", "--home", str(home)], catch_exceptions=False)


def test_the_joint_fit_recovers_planted_instruction_difficulty() -> None:
    rng = np.random.default_rng(3)
    n = 60
    gamma = rng.normal(0, 1.5, n)
    table = {}
    for name, quality in [("a", -1.0), ("b", 0.0), ("c", 1.0)]:
        delta = rng.normal(0, 200, n)
        m = Matchups(name, np.arange(n), delta, np.zeros(n), np.zeros(n))
        m.soft = 1 / (1 + np.exp(-(quality + gamma - 1.0 * m.tanh_len)))
        m.hard = np.round(m.soft)
        table[name] = m
    estimate = instruction_difficulty(table, n)
    assert estimate.estimate.startswith("joint fit over the 3 candidates")
    assert np.corrcoef(estimate.gamma, gamma)[0, 1] > 0.9
    assert estimate.bias["a"] < estimate.bias["b"] < estimate.bias["c"]
