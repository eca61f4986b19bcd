"""Bradley–Terry with Davidson or half-win ties: recovery, Laplace intervals with coverage, ranking fragility."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.preference.bradley_terry import Comparisons, fit_bradley_terry, win_rate_matrix
from workbench.preference.fragility import ranking_fragility


def simulate(theta: dict[str, float], n: int, nu: float, seed: int = 0) -> list[tuple[str, str, str]]:
    """Votes drawn from the Davidson model with known strengths."""
    rng = np.random.default_rng(seed)
    names = list(theta)
    out = []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        pi, pj = np.exp(theta[names[i]]), np.exp(theta[names[j]])
        tie = nu * np.sqrt(pi * pj)
        u = rng.random() * (pi + pj + tie)
        out.append((names[i], names[j], "A" if u < pi else "B" if u < pi + pj else "tie"))
    return out


TRUE = {"big": 1.0, "mid": 0.0, "small": -1.0}


def test_davidson_recovers_strengths_and_tie_rate() -> None:
    result = fit_bradley_terry(Comparisons.from_records(simulate(TRUE, 3000, nu=0.5)))
    theta = dict(zip(result.items, result.theta, strict=True))
    for name, value in TRUE.items():
        assert theta[name] == pytest.approx(value, abs=0.12)
    assert result.nu == pytest.approx(0.5, abs=0.1)
    assert result.ranking() == ["big", "mid", "small"]
    assert np.all(result.low < result.theta) and np.all(result.theta < result.high)
    gap = result.top_gap
    assert gap["source"] == "big" and gap["other"] == "mid" and gap["separated"] and gap["low"] > 0.5
    assert result.win_probability("big", "small") == pytest.approx(1 / (1 + np.exp(-2)), abs=0.05)


def test_half_wins_is_symmetric_under_ties_and_differs_from_davidson() -> None:
    only_ties = Comparisons.from_records([("x", "y", "tie")] * 20)
    assert np.allclose(fit_bradley_terry(only_ties, ties="half", intervals=False).theta, 0)
    records = simulate(TRUE, 800, nu=1.5, seed=1)
    half = fit_bradley_terry(Comparisons.from_records(records), ties="half", intervals=False)
    dav = fit_bradley_terry(Comparisons.from_records(records), ties="davidson", intervals=False)
    assert half.nu is None and dav.nu > 1
    assert half.ranking() == dav.ranking() == ["big", "mid", "small"]
    # Half wins shrink the spread when ties are frequent; Davidson accounts for them.
    assert np.ptp(half.theta) < np.ptp(dav.theta)


def test_undefeated_source_stays_finite_and_ci_widens_with_fewer_votes() -> None:
    few = fit_bradley_terry(Comparisons.from_records([("a", "b", "A")] * 5 + [("b", "c", "A")] * 5))
    assert np.all(np.isfinite(few.theta)) and few.ranking() == ["a", "b", "c"]
    many = fit_bradley_terry(Comparisons.from_records(simulate(TRUE, 800, nu=0.3)))
    small = fit_bradley_terry(Comparisons.from_records(simulate(TRUE, 50, nu=0.3)))
    assert np.mean(many.high - many.low) < np.mean(small.high - small.low)


def test_win_rate_matrix_counts_ties_half() -> None:
    c = Comparisons.from_records([("a", "b", "A"), ("a", "b", "A"), ("b", "a", "A"), ("a", "b", "tie"), ("a", "c", "skip")])
    rate, count = win_rate_matrix(c)
    assert c.items == ["a", "b"]  # the skip is left out, so c never appears
    assert count[0, 1] == count[1, 0] == 4
    assert rate[0, 1] == pytest.approx(2.5 / 4) and rate[1, 0] == pytest.approx(1.5 / 4)
    assert np.isnan(rate[0, 0])


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(DataError, match="at least two sources"):
        fit_bradley_terry(Comparisons.from_records([]))
    with pytest.raises(DataError, match="tie treatment"):
        fit_bradley_terry(Comparisons.from_records([("a", "b", "A")]), ties="elo")
    with pytest.raises(DataError, match="not among the items"):
        Comparisons.from_records([("a", "z", "A")], items=["a", "b"])


def test_three_wins_give_a_wide_interval_and_an_unsettled_top() -> None:
    """The issue's 3-0 session: θ 2.409 [2.409, 2.409] under the bootstrap."""
    fit = fit_bradley_terry(Comparisons.from_records([("tuned", "base", "A")] * 3))
    top = fit.table()[0]
    assert top["source"] == "tuned" and top["low"] < 0 < top["theta"] < top["high"]
    assert fit.top_gap["separated"] is False


def test_gap_interval_covers_the_true_log_odds_in_at_least_93_percent() -> None:
    """Two sources, half-win ties: θ_a − θ_b = logit p. 2,000 seeded sessions per (p, n); a
    session's interval depends only on its win count, so one fit per count serves them all."""
    rng = np.random.default_rng(20)
    for n in (3, 10, 30, 100):
        ends = []
        for k in range(n + 1):
            c = Comparisons(["a", "b"], np.zeros(n, np.int64), np.ones(n, np.int64), np.r_[np.ones(k), np.zeros(n - k)])
            d = fit_bradley_terry(c, ties="half").difference("a", "b")
            ends.append((d["low"], d["high"]))
        low, high = np.array(ends).T
        for p in (0.5, 0.7, 0.9):
            k = rng.binomial(n, p, 2000)
            truth = np.log(p / (1 - p))
            coverage = float(np.mean((low[k] <= truth) & (truth <= high[k])))
            assert coverage >= 0.93, f"p={p} n={n}: coverage {coverage:.3f}"


def test_ranking_fragility_on_a_hand_checked_example() -> None:
    """a beats b 6-4 and nothing else: dropping 2 of a's wins makes it 4-4 (tied, no longer
    top); greedy influence finds 2 or fewer, and it is an upper bound."""
    c = Comparisons.from_records([("a", "b", "A")] * 6 + [("a", "b", "B")] * 4)
    f = ranking_fragility(c, ties="half")
    assert f["top"] == "a" and f["upper_bound"] and f["votes_to_change_top"] == 2 and f["new_top"] == "b"
    # A clear leader over three sources needs more votes to go than a narrow one.
    clear = ranking_fragility(Comparisons.from_records(simulate(TRUE, 300, nu=0.3)))
    assert clear["top"] == "big" and clear["votes_to_change_top"] is not None and clear["votes_to_change_top"] > 10
