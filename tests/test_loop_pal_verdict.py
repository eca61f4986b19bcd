"""A PAL run's verdict in the loop panel (issue 21: PAL writes no answers, so no blind session): held-out
accuracy of each model with a 95 % Wilson interval, and whether PAL clears Bradley–Terry. Summaries in
the format ``run_pal`` records."""
from __future__ import annotations

import pytest

from workbench.errors import DataError
from workbench.loop import pal_verdict


def summary(bt: float, pal_a: float, n: int) -> dict:
    return {"n_seen_users": 4, "n_train_pairs": 3 * n, "n_test_pairs": n, "seen": {"BT": bt, "PAL-A": pal_a, "oracle": 0.99},
            "per_annotator": {"alice": {"n": n // 2, "BT": bt, "PAL-A": pal_a}}}


def test_pal_clears_bt_only_when_the_intervals_part() -> None:
    clear = pal_verdict(summary(0.5, 0.95, 200))
    assert clear["verdict"] == "PAL-A beats Bradley–Terry on the 200 held-out votes: their intervals do not overlap."
    bt, pal = clear["rows"]
    assert [r["model"] for r in clear["rows"]] == ["BT", "PAL-A"]  # the oracle is not a model of the votes
    assert bt["interval"][0] < 0.5 < bt["interval"][1] and pal["interval"][0] > bt["interval"][1]
    close = pal_verdict(summary(0.6, 0.8, 10))
    assert close["verdict"].startswith("Not enough held-out votes to tell: PAL-A 0.800 and Bradley–Terry 0.600")
    assert close["per_annotator"] == {"alice": {"n": 5, "BT": 0.6, "PAL-A": 0.8}}
    worse = pal_verdict(summary(0.95, 0.4, 200))
    assert worse["verdict"].startswith("Bradley–Terry beats every PAL model")


def test_a_run_without_held_out_votes_is_refused_in_words() -> None:
    with pytest.raises(DataError, match="recorded no held-out accuracy"):
        pal_verdict({"seen": {"BT": 0.5}, "n_test_pairs": 0})
