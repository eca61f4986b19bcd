"""A session's statistics answer "did it win?": BT of the sources, raw and length-controlled win
rate with CIs, the factor regression, the position-bias confound, and agreement that says why it
is missing — in the Labeling tab's Markdown and in ``workbench label stats``, on a real store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sessions import longer, open_session
from typer.testing import CliRunner

from plugins.labeling.cli import label_app
from plugins.labeling.manage import report_markdown
from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.labeling.analysis import NEEDS_OVERLAP, session_report
from workbench.labeling.verdict import session_verdict
from workbench.store import Store

WORDS = "the cat sat on a mat while rain fell softly over quiet hills".split()


def _text(rng: np.random.Generator, n_chars: int) -> str:
    words = []
    while sum(len(w) + 1 for w in words) < n_chars:
        words.append(str(rng.choice(WORDS)))
    return " ".join(words)


def longer_only(home: Path, *, n: int = 120, fixed_sides: bool = False) -> LabelingStore:
    """Session 's': base vs a "tuned" source that is only longer, judged by one annotator who
    likes long answers. ``fixed_sides``: base always written as A and shown left (confounded)."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        base = _text(rng, int(rng.integers(60, 200)))
        tuned = _text(rng, max(20, len(base) + int(rng.normal(120, 100))))
        swap = not fixed_sides and i % 2 == 1
        a, b, src = (tuned, base, ("tuned", "base")) if swap else (base, tuned, ("base", "tuned"))
        pairs.append(Pair(f"question {i}", a, b, id=f"p{i:03d}", metadata={"source_a": src[0], "source_b": src[1]}))
    lab = open_session(Store(home / "workbench.sqlite"), "ds", pairs, "s")
    for p in pairs:
        liked = longer(p)
        outcome = liked if rng.random() < 0.9 else "B" if liked == "A" else "A"
        if fixed_sides:
            lab.vote("s", "ann", p.id, outcome, displayed_order="AB", imported=True)
        else:
            item = lab.item("s", "ann", p.id)
            lab.vote("s", "ann", p.id, outcome, displayed_order=item.displayed_order)
    return lab


def test_a_source_that_is_only_longer_wins_raw_but_not_at_equal_length(tmp_path: Path) -> None:
    lab = longer_only(tmp_path)
    verdict = session_verdict(lab, "s", candidate="tuned")
    won = verdict["did_it_win"]
    assert won["win_rate"] > 0.75 and won["win_rate_ci"][0] > 0.6
    assert won["lc_win_rate_ci"][0] < 0.65 and won["lc_win_rate"] < won["win_rate"] - 0.15
    assert [r["source"] for r in won["bradley_terry"]] == ["tuned", "base"]
    assert verdict["explained"]["factors"][0]["factor"] == "length" and verdict["explained"]["factors"][0]["low"] > 0
    assert session_verdict(lab, "s")["did_it_win"]["candidate"] == "tuned"  # the top-rated by default
    text = report_markdown(session_report(lab, "s"), verdict)
    for expected in ("Did it win?", "length-controlled win rate", "What explains these votes", "| length |", "| tuned |"):
        assert expected in text, expected
    assert f"— ({NEEDS_OVERLAP})" in text  # overlap 1: κ/α say why they are missing
    assert "cannot be separated" not in text


def test_position_confound_is_said_instead_of_a_p_value(tmp_path: Path) -> None:
    lab = longer_only(tmp_path, n=30, fixed_sides=True)
    report = session_report(lab, "s")
    bias = report["agreement"]["position_bias"]
    assert bias["confounded"] and "base always left" in bias["note"]
    text = report_markdown(report, session_verdict(lab, "s"))
    assert "position bias cannot be separated from model quality" in text and "p = —" not in text


def test_summary_and_per_annotator_counts_agree_with_skips(tmp_path: Path) -> None:
    lab = longer_only(tmp_path, n=12)
    lab.join("s", "ben")
    for k in range(3):
        item = lab.item("s", "ben", f"p{k:03d}")  # overlap 1: pairs ann judged, opened by id
        outcome = "skip" if k == 1 else "A"
        lab.vote("s", "ben", item.pair.id, outcome, rationale="unsure" if outcome == "skip" else "",
                 displayed_order=item.displayed_order)
    report = session_report(lab, "s")
    per_annotator = sum(r["votes"] for r in report["annotators"])
    assert report["progress"]["judgments"] == per_annotator == 15 and report["progress"]["skips"] == 1
    assert "Votes: 15 (1 skips" in report_markdown(report, session_verdict(lab, "s"))


def test_too_few_votes_refuse_each_part_in_place(tmp_path: Path) -> None:
    lab = longer_only(tmp_path, n=6)
    verdict = session_verdict(lab, "s")
    assert "win_rate" in verdict["did_it_win"] and "at least 10 A/B votes" in verdict["explained"]["error"]
    with Store(tmp_path / "other.sqlite") as store:
        store.import_pairs("plain", [Pair("q", "a", "bb", id="x")])
        other = LabelingStore(store)
        other.create_session("t", "plain")
        assert "needs comparisons between at least two sources" in session_verdict(other, "t")["did_it_win"]["error"]


def test_label_stats_prints_the_verdict(tmp_path: Path) -> None:
    longer_only(tmp_path).store.close()
    result = CliRunner().invoke(label_app, ["stats", "s", "--candidate", "base", "--home", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "did it win?" in out and "base (given) vs tuned" in out and "length-controlled win rate" in out
    assert "what explains these votes" in out and "\nlength " in out and NEEDS_OVERLAP in out
