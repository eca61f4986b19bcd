"""Bradley–Terry with Davidson or half-win ties: recovery, bootstrap CIs, win rates."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.preference.bradley_terry import Comparisons, fit_bradley_terry, win_rate_matrix


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
    result = fit_bradley_terry(Comparisons.from_records(simulate(TRUE, 3000, nu=0.5)), n_boot=30)
    theta = dict(zip(result.items, result.theta, strict=True))
    for name, value in TRUE.items():
        assert theta[name] == pytest.approx(value, abs=0.12)
    assert result.nu == pytest.approx(0.5, abs=0.1)
    assert result.ranking() == ["big", "mid", "small"]
    assert np.all(result.low < result.theta) and np.all(result.theta < result.high)
    assert result.rank_stability == 1.0
    assert result.win_probability("big", "small") == pytest.approx(1 / (1 + np.exp(-2)), abs=0.05)


def test_half_wins_is_symmetric_under_ties_and_differs_from_davidson() -> None:
    only_ties = Comparisons.from_records([("x", "y", "tie")] * 20)
    assert np.allclose(fit_bradley_terry(only_ties, ties="half", n_boot=0).theta, 0)
    records = simulate(TRUE, 800, nu=1.5, seed=1)
    half = fit_bradley_terry(Comparisons.from_records(records), ties="half", n_boot=0)
    dav = fit_bradley_terry(Comparisons.from_records(records), ties="davidson", n_boot=0)
    assert half.nu is None and dav.nu > 1
    assert half.ranking() == dav.ranking() == ["big", "mid", "small"]
    # Half wins shrink the spread when ties are frequent; Davidson accounts for them.
    assert np.ptp(half.theta) < np.ptp(dav.theta)


def test_undefeated_source_stays_finite_and_ci_widens_with_fewer_votes() -> None:
    few = fit_bradley_terry(Comparisons.from_records([("a", "b", "A")] * 5 + [("b", "c", "A")] * 5), n_boot=20)
    assert np.all(np.isfinite(few.theta)) and few.ranking() == ["a", "b", "c"]
    many = fit_bradley_terry(Comparisons.from_records(simulate(TRUE, 800, nu=0.3)), n_boot=30)
    small = fit_bradley_terry(Comparisons.from_records(simulate(TRUE, 50, nu=0.3)), n_boot=30)
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
