"""Did it win? Raw vs length-controlled win rates, BT of sources, and the factor regression."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sessions import voted_session

from workbench.data.types import Judgment, Outcome, Pair
from workbench.errors import DataError
from workbench.labeling.verdict import session_verdict
from workbench.preference.factors import explain_votes, fit_logistic, text_factors
from workbench.preference.winrate import did_it_win, duels, win_rates
from workbench.store import Store

WORDS = "the cat sat on a mat while rain fell softly over hills and quiet towns".split()


def _text(rng: np.random.Generator, n_chars: int) -> str:
    out = ""
    while len(out) < n_chars:
        out += rng.choice(WORDS) + " "
    return out[:max(n_chars, 1)]


def length_only_session(n: int = 400, quality: float = 0.0, seed: int = 0) -> tuple[list[Pair], list[Judgment]]:
    """Base vs "tuned" responses of the same kind; tuned is longer on average (some shorter).
    The annotator prefers the longer answer, plus ``quality`` log-odds for tuned."""
    rng = np.random.default_rng(seed)
    pairs, judgments = [], []
    for i in range(n):
        base_len = int(rng.integers(80, 300))
        tuned_len = max(10, base_len + int(rng.normal(150, 120)))
        tuned_first = i % 2 == 0
        base, tuned = _text(rng, base_len), _text(rng, tuned_len)
        a, b = (tuned, base) if tuned_first else (base, tuned)
        src = ("tuned", "base") if tuned_first else ("base", "tuned")
        pair = Pair(f"question {i}", a, b, id=f"p{i}", metadata={"source_a": src[0], "source_b": src[1]})
        p_tuned = 1 / (1 + np.exp(-(3 * np.tanh((len(tuned) - len(base)) / 100) + quality)))
        tuned_wins = rng.random() < p_tuned
        winner = ("A" if tuned_first else "B") if tuned_wins else ("B" if tuned_first else "A")
        pairs.append(pair)
        judgments.append(Judgment(pair.id, "ann", Outcome(winner), displayed_order="AB" if rng.random() < 0.5 else "BA"))
    return pairs, judgments


def test_longer_only_source_wins_raw_but_not_at_equal_length() -> None:
    pairs, judgments = length_only_session()
    report = did_it_win(pairs, judgments, "tuned")
    assert report["n"] == 400 and report["opponents"] == ["base"]
    assert report["win_rate"] > 0.75 and report["win_rate_ci"][0] > 0.7
    assert abs(report["lc_win_rate"] - 0.5) < 0.08
    assert report["lc_win_rate_ci"][0] < 0.5 < report["lc_win_rate_ci"][1]
    assert report["length_coef"] > 1 and report["mean_length_diff_chars"] > 100
    top = report["bradley_terry"][0]
    assert top["source"] == "tuned" and top["low"] > 0  # BT sees the raw win, as it should
    assert not report["position_bias"]["confounded"]


def test_a_really_better_source_keeps_its_lead_at_equal_length() -> None:
    pairs, judgments = length_only_session(quality=1.5, seed=1)
    report = win_rates(duels(pairs, judgments, "tuned"))
    assert report["lc_win_rate"] > 0.7 and report["lc_win_rate_ci"][0] > 0.6


def test_ties_count_half_and_unknown_sources_are_refused() -> None:
    pairs = [Pair(f"q{i}", "aa", "bbbb", id=f"p{i}", metadata={"source_a": "x", "source_b": "y"}) for i in range(4)]
    judgments = [Judgment("p0", "a", Outcome.A), Judgment("p1", "a", Outcome.TIE), Judgment("p2", "a", Outcome.B),
                 Judgment("p3", "a", Outcome.SKIP)]
    d = duels(pairs, judgments, "x")
    assert d.result.tolist() == [1.0, 0.5, 0.0] and d.length_diff.tolist() == [-2, -2, -2]
    assert win_rates(d)["win_rate"] == pytest.approx(0.5)
    with pytest.raises(DataError, match="(?s)No pair has a response from source 'z'.*Sources in these pairs: x, y"):
        duels(pairs, judgments, "z")
    one = [Pair("q", "a", "b", id="p", metadata={"source_a": "x", "source_b": "x"})]
    with pytest.raises(DataError, match=r"compare 0 source\(s\)"):
        did_it_win(one, [Judgment("p", "a", Outcome.A)], "x")


def test_session_report_through_the_store(tmp_path: Path) -> None:
    pairs, judgments = length_only_session(n=60, seed=2)
    outcomes = {j.pair_id: j.outcome.value for j in judgments}
    lab = voted_session(Store(tmp_path / "wb.sqlite"), "ds", pairs, "s", choose=lambda p: outcomes[p.id])
    report = session_verdict(lab, "s", candidate="tuned")["did_it_win"]
    assert report["n"] == 60
    assert report["win_rate"] == pytest.approx(duels(pairs, judgments, "tuned").result.mean())


def test_fit_logistic_recovers_planted_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(x @ np.array([1.0, -0.5, 0.0]))))).astype(float)
    fit = fit_logistic(x, y)
    assert np.allclose(fit.coef, [1.0, -0.5, 0.0], atol=4 * fit.se.max()) and fit.converged


def test_text_factors() -> None:
    f = text_factors("# Plan\n- **one** thing\n2. another\nIt might work, perhaps. I can't promise.")
    assert f["list_items"] == 2 and f["markdown"] == 2 and f["hedging"] == 2 and f["refusal"] == 1
    assert text_factors("plain")["length"] == pytest.approx(0.05)


def test_explain_votes_finds_the_factor_that_drove_them() -> None:
    """Annotators who reward lists (and ignore length): the list factor is positive and significant,
    hedging (which varies at random) is not."""
    rng = np.random.default_rng(3)
    pairs, judgments = [], []
    for i in range(300):
        def make() -> str:
            items = int(rng.integers(0, 4))
            hedge = " perhaps" if rng.random() < 0.5 else ""
            return _text(rng, int(rng.integers(50, 200))) + hedge + "".join(f"\n- item {k}" for k in range(items))
        a, b = make(), make()
        meta = {"attribute": "tone", "a_pole": "warm", "b_pole": "cold"} if i % 2 else {"attribute": "tone", "a_pole": "cold", "b_pole": "warm"}
        pair = Pair(f"q{i}", a, b, id=f"p{i}", metadata=meta)
        d = text_factors(a)["list_items"] - text_factors(b)["list_items"]
        pairs.append(pair)
        judgments.append(Judgment(pair.id, "ann", Outcome.A if rng.random() < 1 / (1 + np.exp(-1.2 * d)) else Outcome.B))
    judgments.append(Judgment("p0", "bob", Outcome.TIE))  # not used: ties say nothing about a factor
    report = explain_votes(pairs, judgments)
    rows = {r["factor"]: r for r in report["factors"]}
    assert report["n_votes"] == 300 and report["factors"][0]["factor"] == "list_items"
    assert rows["list_items"]["low"] > 0.6 and rows["list_items"]["high"] < 2.0
    assert rows["hedging"]["low"] < 0 < rows["hedging"]["high"]
    assert "tone=warm" in rows and "tone=cold" not in rows  # cold is the reference pole
    assert rows["tone=warm"]["low"] < 0 < rows["tone=warm"]["high"]  # the annotator ignored tone
    assert "refusal" in report["not_varying"]
    with pytest.raises(DataError, match="at least 10 A/B votes; there are 1"):
        explain_votes(pairs[:1], judgments[:1])
