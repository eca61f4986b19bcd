"""Verdicts that say how sure they are (issue 20): intervals that are intervals at n = 3, "not
enough votes to tell", stopping only when the question is answered, the recorded candidate,
identical answers counted, fragility, length support and soft votes — on a real store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins.labeling.manage import report_markdown
from workbench.data.types import Judgment, Outcome, Pair
from workbench.errors import ConfigError
from workbench.labeling import LabelingStore
from workbench.labeling.analysis import session_report
from workbench.labeling.generate import GeneratePairsConfig, identical_note
from workbench.labeling.verdict import session_verdict, verdict_tables
from workbench.preference.intervals import wilson_interval
from workbench.preference.winrate import did_it_win, duels, win_rates
from workbench.store import Store


def _pairs(n: int, *, same: int = 0, candidate: str | None = None) -> list[Pair]:
    """n base-vs-tuned pairs (tuned written as A on even ones); the first ``same`` have one text twice."""
    out = []
    for i in range(n):
        tuned, base = (f"answer {i}", f"answer {i}") if i < same else (f"tuned answer number {i}", f"base says {i}")
        a, b, src = (tuned, base, ("tuned", "base")) if i % 2 == 0 else (base, tuned, ("base", "tuned"))
        meta = {"source_a": src[0], "source_b": src[1], **({"candidate": candidate} if candidate else {})}
        out.append(Pair(f"question {i}", a, b, id=f"p{i:03d}", metadata=meta))
    return out


def _session(home: Path, pairs: list[Pair], tuned_wins: list[bool]) -> LabelingStore:
    """Session 's' (overlap 1) where one annotator votes for tuned exactly where ``tuned_wins``."""
    store = Store(home / "workbench.sqlite")
    store.import_pairs("ds", pairs)
    lab = LabelingStore(store)
    lab.create_session("s", "ds")
    lab.join("s", "ann")
    for p, win in zip(pairs, tuned_wins, strict=True):
        tuned_side = "A" if p.metadata["source_a"] == "tuned" else "B"
        outcome = tuned_side if win else ("B" if tuned_side == "A" else "A")
        lab.vote("s", "ann", p.id, outcome, displayed_order=lab.item("s", "ann", p.id).displayed_order)
    return lab


def test_three_wins_are_not_enough_to_tell_and_labeling_cannot_stop(tmp_path: Path) -> None:
    """The issue's session: 3 won, 0 lost read win rate 1.000 [1.000, 1.000] and "labeling can stop"."""
    lab = _session(tmp_path, _pairs(3), [True] * 3)
    won = session_verdict(lab, "s", candidate="tuned")["did_it_win"]
    assert won["win_rate"] == 1.0 and won["win_rate_ci"][0] < 0.5 and not won["decided"]
    assert won["votes_needed"] > 3 and f"about {won['votes_needed']} votes" in won["verdict"]
    assert won["verdict"].startswith("not enough votes to tell")
    tuned = next(r for r in won["bradley_terry"] if r["source"] == "tuned")
    assert tuned["low"] < tuned["theta"] < tuned["high"] and tuned["low"] < 0 < tuned["high"]
    assert won["top_gap"]["separated"] is False
    report = session_report(lab, "s")
    assert report["progress"]["covered"] == report["progress"]["needed"] == 3
    hint = report["stopping_hint"]
    assert "can stop" not in hint and "every pair has its planned votes, but not enough votes to tell" in hint
    text = report_markdown(report, session_verdict(lab, "s"))
    assert "not enough votes to tell" in text and "bootstrap" not in text


def test_labeling_can_stop_when_decided_or_precise_enough(tmp_path: Path) -> None:
    k = 1
    while wilson_interval(k, k)[0] <= 0.5:  # the fewest straight wins that decide it
        k += 1
    decided = _session(tmp_path / "a", _pairs(k), [True] * k)
    assert "The question is answered" in session_report(decided, "s")["stopping_hint"]
    even = _session(tmp_path / "b", _pairs(30), [i % 2 == 0 for i in range(30)])
    lo, hi = wilson_interval(15, 30)
    assert "Keep labeling" in session_report(even, "s")["stopping_hint"]
    assert "precision" in session_report(even, "s", precision=(hi - lo) / 2 + 1e-6)["stopping_hint"]
    assert "Keep labeling" in session_report(even, "s", precision=(hi - lo) / 2 - 1e-3)["stopping_hint"]


def test_the_recorded_candidate_is_judged_even_when_rated_lower(tmp_path: Path) -> None:
    """A from-run / steering session records tuned (steered) as the candidate; it lost 3-7, and
    the verdict is still about tuned (the old rule asked about the top-rated, base)."""
    lab = _session(tmp_path, _pairs(10, candidate="tuned"), [i < 3 for i in range(10)])
    won = session_verdict(lab, "s")["did_it_win"]
    assert won["candidate"] == "tuned" and won["candidate_from"] == "recorded when the session was made"
    assert won["win_rate"] == pytest.approx(0.3) and won["bradley_terry"][0]["source"] == "base"
    assert session_report(lab, "s")["question"]["label"] == "tuned vs base"
    # A dataset's own "candidate" field that names no source is not taken for the source under test.
    other = _session(tmp_path / "other", _pairs(10, candidate="gpt-4"), [i < 3 for i in range(10)])
    assert session_verdict(other, "s")["did_it_win"]["candidate_from"] == "top-rated (no candidate recorded)"


def test_generate_config_records_a_candidate_that_is_one_of_the_sources() -> None:
    sources = [{"name": "base", "model": "m"}, {"name": "tuned", "model": "m"}]
    cfg = GeneratePairsConfig.from_dict({"dataset": "d", "prompts": ["hi"], "sources": sources, "candidate": "tuned"})
    cfg.check()
    assert cfg.candidate == "tuned"
    with pytest.raises(ConfigError, match="'candidate' is 'steered'.*base, tuned"):
        GeneratePairsConfig.from_dict({"dataset": "d", "prompts": ["hi"], "sources": sources, "candidate": "steered"}).check()


def test_identical_answers_are_counted_at_creation_and_in_the_verdict(tmp_path: Path) -> None:
    """The issue's 9 identical base-vs-tuned answers read "5 won, 4 lost, win rate 0.556"."""
    all_same = _pairs(9, same=9)
    note = identical_note(all_same)
    assert note["identical"] == 9 and "no difference to judge" in note["identical_note"]
    assert "sampling" in note["identical_note"] and identical_note(_pairs(4))["identical"] == 0
    lab = _session(tmp_path / "a", all_same, [i < 5 for i in range(9)])
    won = session_verdict(lab, "s", candidate="tuned")["did_it_win"]
    assert "No difference to judge" in won["error"] and won["identical_pairs"] == 9
    mixed = _session(tmp_path / "b", _pairs(12, same=3), [True] * 12)
    verdict = session_verdict(mixed, "s", candidate="tuned")
    won = verdict["did_it_win"]
    assert won["n"] == 9 and won["identical"] == 3 and won["identical_pairs"] == 3
    assert any(m == "identical answers" and "3 pair(s)" in v for m, v in verdict_tables(verdict)["win"])
    assert session_report(mixed, "s")["identical"] == {"votes": 3, "pairs": 3}


def test_verdict_carries_its_fragility(tmp_path: Path) -> None:
    """20 won, 5 lost: dropping 15 of tuned's wins leaves 5-5 (hand-checked in test_intervals)."""
    lab = _session(tmp_path, _pairs(25), [i < 20 for i in range(25)])
    verdict = session_verdict(lab, "s", candidate="tuned")
    won = verdict["did_it_win"]
    assert won["fragility"]["votes_to_flip_winner"] == 15 and won["decided"]
    assert won["ranking_fragility"]["top"] == "tuned" and won["ranking_fragility"]["votes_to_change_top"] is not None
    rows = dict(verdict_tables(verdict)["win"])
    assert "dropping 15 of 25 votes flips the winner" in rows["fragility"] and "upper bound" in rows["ranking fragility"]


def test_length_support_flags_an_extrapolated_lc_rate() -> None:
    """Candidate longer in every pair: the LC number is an extrapolation, and the band is empty."""
    pairs = [Pair(f"q{i}", "long " * 40, "short", id=f"p{i}", metadata={"source_a": "t", "source_b": "b"}) for i in range(12)]
    judgments = [Judgment(p.id, "ann", Outcome.A if i % 3 else Outcome.B) for i, p in enumerate(pairs)]
    support = win_rates(duels(pairs, judgments, "t"))["length_support"]
    assert support["extrapolates"] and support["share_longer"] == 1.0 and support["band_n"] == 0
    rng = np.random.default_rng(0)
    mixed = [Pair(f"q{i}", "x" * int(rng.integers(90, 110)), "y" * 100, id=f"m{i}", metadata={"source_a": "t", "source_b": "b"})
             for i in range(20)]
    ok = win_rates(duels(mixed, [Judgment(p.id, "ann", Outcome.A) for p in mixed], "t"))["length_support"]
    assert not ok["extrapolates"] and ok["band_n"] == 20 and ok["band_win_rate_ci"][0] > 0.5


def test_soft_votes_flow_through_and_discrete_figures_sit_beside() -> None:
    pairs = [Pair(f"q{i}", f"a{i}", f"bb{i}", id=f"p{i}", metadata={"source_a": "x", "source_b": "y"}) for i in range(20)]
    judgments = [Judgment(p.id, "judge", Outcome.A, soft=0.6) for p in pairs]
    report = did_it_win(pairs, judgments, "x")
    assert report["soft"] and report["win_rate"] == pytest.approx(0.6) and report["wins"] == 20
    assert report["discrete"]["win_rate"] == 1.0 and report["tie_model"] == "half"
    soft_gap = report["bradley_terry"][0]["theta"] - report["bradley_terry"][1]["theta"]
    hard_gap = report["bradley_terry_discrete"][0]["theta"] - report["bradley_terry_discrete"][1]["theta"]
    assert 0 < soft_gap < hard_gap  # 0.6 each is a weaker lead than 20 straight wins


def test_fast_page_api_gives_the_owner_the_verdict_and_annotators_nothing(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from plugins.labeling.server import labeling_context
    from workbench.app.server import create_app
    from workbench.settings import Settings

    _session(tmp_path, _pairs(3), [True] * 3).store.close()
    settings = Settings(home=tmp_path, auth=("owner", "owner-pw"), users={"alice": "alice-pw"})
    with TestClient(create_app(labeling_context(settings), ui=False)) as client:
        stats = client.get("/api/labeling/sessions/s/stats", auth=("owner", "owner-pw"))
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert "Keep labeling" in body["stopping_hint"] and any("not enough votes to tell" in line for line in body["lines"])
        assert client.get("/api/labeling/sessions/s/stats", auth=("alice", "alice-pw")).status_code == 403
