"""explain_votes refuses votes no factor can explain, instead of fitting a model with no columns."""
from __future__ import annotations

import pytest

from workbench.data.types import Judgment, Outcome, Pair
from workbench.errors import DataError
from workbench.preference.factors import explain_votes


def test_no_varying_factor_is_a_data_error_naming_the_factors_and_the_votes() -> None:
    # Same length, no lists, markdown, hedges or refusals on either side: every factor difference is 0.
    pairs = [Pair(f"q{i}", f"alpha {i:02d}", f"omega {i:02d}", id=f"p{i}") for i in range(12)]
    judgments = [Judgment(p.id, "ann", Outcome.A if i % 3 else Outcome.B) for i, p in enumerate(pairs)]
    with pytest.raises(DataError, match=r"No response factor \(length, list_items, markdown, hedging, refusal\) differs .* 12 A/B votes") as err:
        explain_votes(pairs, judgments)
    assert "compare responses that differ" in str(err.value)


def test_one_varying_factor_is_fitted_and_the_others_listed() -> None:
    pairs = [Pair(f"q{i}", "short" if i % 2 else "a much longer answer here", "a much longer answer here" if i % 2 else "short",
                  id=f"p{i}") for i in range(12)]
    judgments = [Judgment(p.id, "ann", Outcome.A if (i % 2 == 0) != (i % 5 == 0) else Outcome.B) for i, p in enumerate(pairs)]
    report = explain_votes(pairs, judgments)
    assert [r["factor"] for r in report["factors"]] == ["length"]
    assert report["not_varying"] == ["list_items", "markdown", "hedging", "refusal"]
    assert report["factors"][0]["coef"] > 0  # the longer side won 9 of 12
