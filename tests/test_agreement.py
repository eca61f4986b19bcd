"""Agreement statistics against published worked examples, and position bias."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.data.types import Judgment, Outcome
from workbench.preference.agreement import (
    agreement_report,
    annotator_stats,
    cohen_kappa,
    fleiss_kappa,
    interval_alpha,
    krippendorff_alpha,
    position_bias,
    signed_strength,
)

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers × 12 units example.
KRIPPENDORFF_DATA = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])
# Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, κ = 0.210.
FLEISS_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_the_published_example(level: str, expected: float) -> None:
    assert krippendorff_alpha(KRIPPENDORFF_DATA, level) == pytest.approx(expected, abs=5e-4)


def test_krippendorff_alpha_perfect_and_undefined() -> None:
    perfect = np.array([[1, 2, 3, 1], [1, 2, 3, 1.0]])
    assert krippendorff_alpha(perfect, "ordinal") == pytest.approx(1.0)
    assert np.isnan(krippendorff_alpha(np.array([[1, 1], [1, 1.0]])))  # one value only: α undefined
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha(perfect, "ratio")


def test_ordinal_alpha_punishes_far_disagreement_more_than_near() -> None:
    near = np.array([[-2, -1, 0, 1, 2, -2, 2, 0], [-1, -1, 0, 2, 2, -2, 1, 0.0]])
    far = np.array([[-2, -1, 0, 1, 2, -2, 2, 0], [2, -1, 0, -2, 2, -2, -2, 0.0]])
    assert krippendorff_alpha(near, "ordinal") > 0.7 > krippendorff_alpha(far, "ordinal")


def test_fleiss_kappa_matches_the_published_example() -> None:
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_drops_items_with_fewer_than_two_ratings() -> None:
    with_single = np.vstack([FLEISS_TABLE, [[1, 0, 0, 0, 0]]])
    assert fleiss_kappa(with_single) == pytest.approx(fleiss_kappa(FLEISS_TABLE))


def test_cohen_kappa_textbook_value() -> None:
    # 50 items: both yes 20, yes/no 5, no/yes 10, both no 15 → p_o 0.7, p_e 0.5, κ 0.4.
    rater_1 = ["y"] * 25 + ["n"] * 25
    rater_2 = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(rater_1, rater_2) == pytest.approx(0.4)
    assert cohen_kappa(rater_1, rater_1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length"):
        cohen_kappa(["y"], ["y", "n"])


def _j(pair: str, who: str, outcome: str, order: str = "AB", strength: int | None = None, span: float = 3.0) -> Judgment:
    return Judgment(pair, who, Outcome(outcome), strength=strength, displayed_order=order, started_at=100.0, submitted_at=100.0 + span)


def test_position_bias_counts_left_wins_in_displayed_terms() -> None:
    # A shown left and chosen; B shown left ("BA") and chosen: both are left wins.
    js = [_j("p1", "x", "A", "AB"), _j("p2", "x", "B", "BA"), _j("p3", "x", "A", "BA"), _j("p4", "x", "tie")]
    bias = position_bias(js)
    assert (bias.decisive, bias.left_wins) == (3, 2)
    assert bias.rate == pytest.approx(2 / 3)
    strongly_left = [_j(f"p{i}", "x", "A", "AB") for i in range(30)]
    assert position_bias(strongly_left).p_value < 1e-6


def test_signed_strength_scale() -> None:
    assert [signed_strength(_j("p", "x", o, strength=s)) for o, s in [("A", 2), ("A", 1), ("tie", None), ("B", 1), ("B", None)]] == [-2, -1, 0, 1, 2]
    assert signed_strength(_j("p", "x", "skip")) is None


def test_agreement_report_and_annotator_stats() -> None:
    js = []
    for i in range(10):
        js += [_j(f"p{i}", "ann", "A", strength=2), _j(f"p{i}", "bea", "A", strength=2 if i % 2 else 1)]
        js.append(_j(f"p{i}", "cyd", "B" if i < 5 else "A", order="BA"))
    report = agreement_report(js)
    assert report["annotators"] == ["ann", "bea", "cyd"] and report["items_with_overlap"] == 10
    assert report["cohen_pairwise"]["ann|bea"]["n"] == 10
    expected = fleiss_kappa(np.array([[2, 1, 0, 0]] * 5 + [[3, 0, 0, 0]] * 5))
    assert report["fleiss_kappa"] == pytest.approx(expected) and report["alpha_ordinal_strength"] < 1
    stats = {s["annotator"]: s for s in annotator_stats(js, gold={"p0": "A", "p1": "A"})}
    assert stats["ann"]["gold_accuracy"] == 1.0 and stats["cyd"]["gold_accuracy"] == 0.0
    assert stats["ann"]["majority_agreement"] > stats["cyd"]["majority_agreement"]
    assert stats["bea"]["median_seconds"] == pytest.approx(3.0)


def test_position_bias_is_reported_as_confounded_when_one_source_is_always_left(tmp_path) -> None:
    """AlpacaEval's output_1 is always the baseline and shown first: position is source there."""
    import json

    from workbench.data.types import pair_sources
    from workbench.labeling import LabelingStore
    from workbench.labeling.alpacaeval import import_alpacaeval
    from workbench.store import Store

    rows = [{"instruction": f"task {i}", "output_1": f"baseline answer {i}", "output_2": f"model answer {i}",
             "generator_1": "gpt4_turbo", "generator_2": "my_model", "preference": 1 if i % 7 < 2 else 2} for i in range(70)]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))
    lab = LabelingStore(Store(tmp_path / "wb.sqlite"))
    import_alpacaeval(lab, path, "ae")
    judgments = lab.judgments("ae")
    sources = {p.id: pair_sources(p.metadata) for p in lab.pairs("ae")}
    bias = position_bias(judgments, sources)
    assert bias.confounded and np.isnan(bias.p_value) and bias.decisive == 70
    assert bias.rate == pytest.approx(20 / 70)
    assert bias.note.startswith("position bias cannot be separated from model quality in this session")
    assert "gpt4_turbo always left" in bias.note
    assert agreement_report(judgments, sources)["position_bias"]["confounded"] is True
    assert not np.isnan(position_bias(judgments).p_value)  # without sources the check cannot run

    # The same votes with the order randomised per pair: the test is valid again.
    mixed = [Judgment(j.pair_id, j.annotator, j.outcome, displayed_order="AB" if k % 2 else "BA") for k, j in enumerate(judgments)]
    fair = position_bias(mixed, sources)
    assert not fair.confounded and fair.note is None and 0 <= fair.p_value <= 1


def test_interval_alpha_bootstrap_keeps_the_published_point_value() -> None:
    result = interval_alpha(KRIPPENDORFF_DATA)
    assert result["alpha"] == pytest.approx(krippendorff_alpha(KRIPPENDORFF_DATA, "interval"))
    assert result["ci"][0] < result["alpha"] < result["ci"][1] and result["items"] == 11 and result["values"] == 40  # Krippendorff (2011): n = 40 pairable values


def test_soft_votes_use_interval_alpha_on_vote_values() -> None:
    """Hand computation: two annotators, three items, values (1.0, 0.9), (0.8, 0.6), (0.0, 0.0).
    Observed: Σ_u D_u = 2·0.1² + 2·0.2² + 0 = 0.1 (each ordered pair once, m_u − 1 = 1).
    Expected: n = 6, Σv = 3.3, Σv² = 2.81, Σ over ordered pairs of (v_i − v_j)² = 2(6·2.81 − 3.3²) = 11.94.
    α = 1 − (n − 1)·0.1 / 11.94 = 1 − 0.5 / 11.94 = 0.958124. The nominal α sees A, A, B twice: 1."""
    js = [Judgment("p1", "ann", Outcome("A"), soft=1.0), Judgment("p1", "bea", Outcome("A"), soft=0.9),
          Judgment("p2", "ann", Outcome("A"), soft=0.8), Judgment("p2", "bea", Outcome("A"), soft=0.6),
          Judgment("p3", "ann", Outcome("B")), Judgment("p3", "bea", Outcome("B"), soft=0.0)]
    report = agreement_report(js)
    assert report["alpha_nominal"] == pytest.approx(1.0)
    assert report["soft_votes"] == 5
    soft = report["alpha_vote_value"]
    assert soft["alpha"] == pytest.approx(1 - 0.5 / 11.94) and "interval" in soft["metric"] and "vote values" in soft["metric"]
    assert soft["items"] == 3 and soft["values"] == 6 and soft["ci"][0] <= soft["alpha"] <= soft["ci"][1]
    hard = agreement_report([Judgment(j.pair_id, j.annotator, j.outcome) for j in js])
    assert hard["soft_votes"] == 0 and hard["alpha_vote_value"] is None


def test_the_statistics_view_states_the_soft_vote_alpha(tmp_path) -> None:
    """Two judges' fractional AlpacaEval preferences on the same 12 pairs: the Labeling tab's
    agreement table adds α on the vote values and says which metric it used."""
    import json

    from plugins.labeling.manage import report_markdown
    from workbench.labeling import LabelingStore
    from workbench.labeling.alpacaeval import import_alpacaeval
    from workbench.labeling.analysis import session_report
    from workbench.labeling.verdict import session_verdict
    from workbench.store import Store

    rows = [{"instruction": f"task {i}", "output_1": f"base {i}", "output_2": f"model answer {i}", "generator_1": "base",
             "generator_2": "mine", "annotator": judge, "preference": 1.2 + 0.6 * ((i + k) % 2)}
            for i in range(12) for k, judge in enumerate(["judge_a", "judge_b"])]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))
    lab = LabelingStore(Store(tmp_path / "wb.sqlite"))
    import_alpacaeval(lab, path, "soft")
    report = session_report(lab, "soft")
    soft = report["agreement"]["alpha_vote_value"]
    assert report["agreement"]["soft_votes"] == 24 and soft["items"] == 12
    assert soft["alpha"] == pytest.approx(krippendorff_alpha(np.array([[0.8, 0.2] * 6, [0.2, 0.8] * 6]), "interval"))
    text = report_markdown(report, session_verdict(lab, "soft"))
    assert "Krippendorff's α, interval (squared difference) on vote values" in text and "(24 soft votes)" in text
