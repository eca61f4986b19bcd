"""Noisy, or a different taste (issue 25 §1) on populations beyond the issue's own: a voter who
always picks the side shown first, and a voter whose taste moves several factors at once."""
from __future__ import annotations

import numpy as np

from workbench.data.demo import load_demo_pairs
from workbench.data.types import Judgment, Outcome, Pair
from workbench.preference.annotators import annotator_analysis

FLIP = {"A": "B", "B": "A"}


def test_a_voter_who_picks_the_side_shown_first_is_noisy_and_the_evidence_says_position() -> None:
    """Display order is random per pair, as the labeling server serves it: relative to the answers
    the left-picker is a coin (noisy, no taste group), and the evidence names the position bias."""
    rng = np.random.default_rng(5)
    pairs = load_demo_pairs()
    votes = []
    for name in ("left", "long1", "long2"):
        for i in rng.permutation(len(pairs))[:100]:
            p, shown = pairs[i], str(rng.choice(["AB", "BA"]))
            longer = "A" if len(p.response_a) > len(p.response_b) else "B"
            vote = shown[0] if name == "left" else (longer if rng.random() < 0.9 else FLIP[longer])
            votes.append(Judgment(p.id, name, Outcome(vote), displayed_order=shown))
    rows = {r["annotator"]: r for r in annotator_analysis(pairs, votes)["annotators"]}
    left = rows["left"]
    assert left["noisy"] and left["taste_group"] is None
    assert left["position_biased"] and left["position"]["rate"] == 1.0 and left["position"]["n"] == 100
    assert "position bias" in left["evidence"] and "side shown first" in left["evidence"]
    assert not rows["long1"]["noisy"] and not rows["long1"]["position_biased"]
    assert rows["long1"]["position"]["ci"][0] < 0.5 < rows["long1"]["position"]["ci"][1]
    # Shown in one order only (an import), the side shown first is the canonical A: not testable apart from it.
    same = [Judgment(j.pair_id, j.annotator, j.outcome, displayed_order="AB") for j in votes]
    plain = {r["annotator"]: r for r in annotator_analysis(pairs, same)["annotators"]}
    assert plain["left"]["position"]["n"] == 0 and not plain["left"]["position_biased"]


def test_factors_that_move_together_are_tested_as_one() -> None:
    """The long answer also hedges, lists and uses markdown, and its pole is 'verbose': five
    factors, one direction. A voter picking it on 42 of 60 pairs (binomial p 0.003 for any one of
    them) follows a taste; a Bonferroni over five copies of one test called them noisy."""
    rng = np.random.default_rng(1)
    long_text = "Perhaps, it depends on topic {i}.\n- **one** point\n- another point that might matter\nMaybe more."
    pairs, votes = [], []
    for i in range(60):
        long_first = bool(rng.integers(2))
        a, b = (long_text.format(i=i), f"Topic {i}.") if long_first else (f"Topic {i}.", long_text.format(i=i))
        poles = ("verbose", "concise") if long_first else ("concise", "verbose")
        pairs.append(Pair(f"q{i}", a, b, id=f"p{i}", metadata={"attribute": "verbosity", "a_pole": poles[0], "b_pole": poles[1]}))
        longer = "A" if long_first else "B"
        votes.append(Judgment(f"p{i}", "voter", Outcome(longer if i < 42 else FLIP[longer]), displayed_order="AB"))
    found = annotator_analysis(pairs, votes)
    assert {"length", "list_items", "markdown", "hedging", "verbosity=verbose"} <= set(found["factors"])
    row = found["annotators"][0]
    assert not row["noisy"], row["evidence"]
    assert row["tests"]["votes"] < 0.01
    # The coin-flip null is exact: a coin's votes on the same pairs are not significant.
    coin = [Judgment(j.pair_id, "voter", Outcome(str(rng.choice(["A", "B"]))), displayed_order="AB") for j in votes]
    assert annotator_analysis(pairs, coin)["annotators"][0]["noisy"]
