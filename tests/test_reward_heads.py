"""Multi-objective reward heads: fitting maths on planted data, training/saving on a tiny checkpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.data.types import Judgment, Outcome, Pair
from workbench.errors import ConfigError, DataError, ModelError
from workbench.models.loading import load_model
from workbench.preference.reward_heads import (
    AspectComparison,
    RatedResponse,
    RewardModel,
    accuracy_parts,
    choose_l2,
    choose_ridge_l2,
    comparisons_from_judgments,
    comparisons_from_poles,
    fit_bt_head,
    fit_ridge_head,
    list_reward_models,
    load_reward_model,
    reward_models_dir,
    train_reward_model,
)
from workbench.preference.ridge import ridge_loo
from workbench.settings import Settings


def test_ridge_and_bradley_terry_recover_planted_weights():
    rng = np.random.default_rng(0)
    d = 12
    w_true = rng.normal(size=d)
    z = rng.normal(size=(300, d))
    w, b = fit_ridge_head(z, z @ w_true + 3.0, l2=1e-3)
    assert np.allclose(w, w_true, atol=0.05) and b == pytest.approx(3.0, abs=0.1)
    w_dual, _ = fit_ridge_head(z[:8], (z @ w_true)[:8], l2=1.0)  # n < d takes the dual form
    assert w_dual.shape == (d,)
    za, zb = rng.normal(size=(400, d)), rng.normal(size=(400, d))
    p = 1 / (1 + np.exp(-(za - zb) @ w_true))
    a_wins = rng.random(400) < p
    w_bt = fit_bt_head(za, zb, a_wins, l2=0.1)
    assert np.corrcoef(w_bt, w_true)[0, 1] > 0.9


def test_the_bradley_terry_penalty_is_chosen_by_cross_validation_not_fixed():
    """Features as a model's are: a few strong correlated directions over 300 dimensions, and a
    taste along them voted with logistic noise (about one vote in five against it). At the old
    fixed L2 = 1 the head fits the noise in every dimension; the penalty chosen on held-out
    prompts predicts the taste on unseen pairs far better. Below MIN_CV_COMPARISONS, or with too
    few prompts to fold by, L2 stays fixed and the note says why."""
    rng = np.random.default_rng(3)
    d, n, n_test = 300, 400, 2000
    latent = rng.normal(size=(n + n_test, 8))
    diff = latent @ rng.normal(size=(8, d)) + rng.normal(size=(n + n_test, d))
    utility = latent @ rng.normal(size=8)
    a_wins = rng.random(n + n_test) < 1 / (1 + np.exp(-2 * utility / utility.std()))
    prompts = [f"prompt {i // 8}" for i in range(n)]  # 8 comparisons per prompt
    l2, note = choose_l2(diff[:n], a_wins[:n], prompts)
    assert l2 >= 100 and "5-fold cross-validation by prompt" in note

    def accuracy(penalty: float) -> float:
        w = fit_bt_head(diff[:n], np.zeros((n, d)), a_wins[:n], penalty)
        return float(np.mean((diff[n:] @ w > 0) == (utility[n:] > 0)))

    assert accuracy(l2) > accuracy(1.0) + 0.1
    assert choose_l2(diff[:12], a_wins[:12], prompts[:12])[1].startswith("fixed at 1 (12 comparisons")
    two = choose_l2(diff[:40], a_wins[:40], [f"prompt {i % 2}" for i in range(40)])  # enough votes, two prompts
    assert two == (1.0, "fixed at 1 (2 prompt(s): too few to hold prompts out)")
    assert choose_l2(diff[:40], np.ones(40, dtype=int), prompts[:40])[1] == "fixed at 1 (every vote went to one side)"
    as_ints = choose_l2(diff[:n], a_wins[:n].astype(int).tolist(), prompts)  # 0/1 as a list: the same choice
    assert as_ints[0] == l2


def test_ridge_loo_is_the_exact_leave_one_out_choice():
    """The one-SVD shortcut gives what refitting without each row in turn gives, with and
    without an intercept (fewer rows than columns: where centring alone would mislead)."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 50)), 2 + rng.normal(size=30)
    grid = (0.1, 3.0, 100.0, 3000.0)

    def brute(lam: float, intercept: bool) -> float:
        errors = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            if intercept:
                w, b = fit_ridge_head(x[keep], y[keep], lam)
            else:
                w, b = np.linalg.solve(x[keep].T @ x[keep] + lam * np.eye(50), x[keep].T @ y[keep]), 0.0
            errors.append((y[i] - x[i] @ w - b) ** 2)
        return float(np.mean(errors))

    for intercept in (False, True):
        w, chosen = ridge_loo(x, y, grid, intercept=intercept)
        assert chosen == min(grid, key=lambda lam: brute(lam, intercept))
    assert np.allclose(ridge_loo(x, y, (3.0,))[0], np.linalg.solve(x.T @ x + 3.0 * np.eye(50), x.T @ y))


def test_the_rating_head_penalty_is_chosen_by_leave_one_out_not_fixed():
    """Ratings as annotators give them: a taste along a few of 300 correlated feature directions,
    on a 1–5 scale with noise, 60 rated responses. At the old fixed L2 = 1 the ridge head all but
    interpolates them; the penalty chosen by leave-one-out orders unseen responses far better,
    and with too few ratings, or all alike, L2 stays fixed and the note says why."""
    rng = np.random.default_rng(11)
    d, n, n_test = 300, 60, 1000
    latent = rng.normal(size=(n + n_test, 6))
    z = latent @ rng.normal(size=(6, d)) + 2 * rng.normal(size=(n + n_test, d))
    taste = latent @ rng.normal(size=6)
    ratings = np.clip(np.round(3 + taste / taste.std() + rng.normal(size=n + n_test)), 1, 5)
    l2, note = choose_ridge_l2(z[:n], ratings[:n])
    assert l2 > 10 and "leave-one-out" in note

    def concordance(penalty: float) -> float:
        w, b = fit_ridge_head(z[:n], ratings[:n], penalty)
        pred, truth = z[n:] @ w + b, taste[n:]
        upper = np.triu(np.ones((n_test, n_test), dtype=bool), k=1)
        return float(np.mean((np.sign(pred[:, None] - pred[None, :]) == np.sign(truth[:, None] - truth[None, :]))[upper]))

    assert concordance(l2) > concordance(1.0) + 0.05
    assert choose_ridge_l2(z[:8], ratings[:8])[1] == "fixed at 1 (8 ratings: too few to choose it by leave-one-out)"
    assert choose_ridge_l2(z[:20], np.full(20, 3.0))[1] == "fixed at 1 (every rating is the same)"


def test_comparisons_from_poles_and_judgments():
    pairs = [
        Pair("q1", "short", "long long", metadata={"attribute": "verbosity", "a_pole": "concise", "b_pole": "verbose"}),
        Pair("q2", "long long", "short", metadata={"attribute": "verbosity", "a_pole": "verbose", "b_pole": "concise"}),
        Pair("q3", "Hey", "Good day", metadata={"attribute": "formality", "a_pole": "casual", "b_pole": "formal"}),
    ]
    comps = comparisons_from_poles(pairs, {"verbosity": "verbose"})
    assert [(c.aspect, c.winner) for c in comps] == [("verbosity", "B"), ("verbosity", "A")]
    judgments = [
        Judgment(pairs[2].id, "ann", Outcome.A, aspects={"formality": "B", "clarity": "tie"}),
        Judgment("unknown", "ann", Outcome.B, aspects={"formality": "A"}),
    ]
    got = comparisons_from_judgments(pairs, judgments, overall="overall")
    assert sorted((c.aspect, c.winner) for c in got) == [("formality", "B"), ("overall", "A")]


@pytest.fixture(scope="module")
def llama(tiny_checkpoint):
    return load_model(tiny_checkpoint("llama"))


def _length_comparisons(n: int) -> list[AspectComparison]:
    words = ["fox", "dog", "answer", "preference", "brown", "lazy"]
    out = []
    for i in range(n):
        short = words[i % len(words)]
        long = " ".join(words[(i + k) % len(words)] for k in range(12))
        out.append(AspectComparison(f"Question {i}?", long, short, "verbosity", "A") if i % 2 else
                   AspectComparison(f"Question {i}?", short, long, "verbosity", "B"))
    return out


def test_train_score_save_list_and_load(llama, tmp_path):
    ratings = [RatedResponse(f"Q{i}", "word " * (i % 7 + 1), {"length": float(i % 7)}) for i in range(24)]
    rm = train_reward_model(llama, name="tiny-rm", layer=2, ratings=ratings, comparisons=_length_comparisons(24), l2=1.0)
    assert rm.attributes == ["length", "verbosity"] and rm.kinds == ["ridge", "bradley_terry"]
    for attr in rm.attributes:
        m = rm.metrics[attr]
        assert m["n_test"] == 6 and m["heldout_pairwise_accuracy"] >= 0.8, (attr, m)  # both are read off the length
        low, high = m["heldout_ci"]  # the ridge head's too: a bootstrap over held-out responses
        assert low <= m["heldout_pairwise_accuracy"] <= high and high - low > 0, (attr, m)
    assert 0 < rm.metrics["length"]["n_test_pairs"] <= 15  # pairs of 6 held-out responses with different ratings
    assert dict(accuracy_parts(rm))["length"].endswith(f"(n {rm.metrics['length']['n_test_pairs']} held-out pairs of 6 responses, L2 1)")
    # Length is easy to read off even a random tiny model's mean-pooled states.
    assert rm.metrics["verbosity"]["heldout_pairwise_accuracy"] >= 0.8
    scores = rm.score(llama, ["Q"] * 2, ["fox", "fox dog answer preference brown lazy fox dog answer"])
    assert scores.shape == (2, 2) and scores[1, 1] > scores[0, 1]
    settings = Settings(home=tmp_path)
    rm.save(reward_models_dir(settings))
    listed = list_reward_models(settings)
    assert [r["name"] for r in listed] == ["tiny-rm"] and listed[0]["attributes"] == ["length", "verbosity"]
    again = load_reward_model(settings, "tiny-rm")
    assert np.allclose(again.score_features(np.ones((1, 32))), rm.score_features(np.ones((1, 32))))
    meta = json.loads((reward_models_dir(settings) / "tiny-rm" / "reward_model.json").read_text())
    assert meta["base_model"] == llama.name and meta["layer"] == 2
    with pytest.raises(ModelError, match="No reward model named 'nope'"):
        load_reward_model(settings, "nope")


def test_reward_model_errors(llama, tiny_checkpoint):
    with pytest.raises(DataError, match="No training data"):
        train_reward_model(llama, name="x", layer=1)
    with pytest.raises(ConfigError, match="safe folder name"):
        train_reward_model(llama, name="../evil", layer=1, comparisons=_length_comparisons(4))
    with pytest.raises(ConfigError, match="out of range"):
        train_reward_model(llama, name="x", layer=7, comparisons=_length_comparisons(4))
    for bad in (float("nan"), "4", True, None):  # a NaN rating would have saved a head of NaN weights
        rated = [RatedResponse("q", "an answer", {"length": 3.0}), RatedResponse("q", "another", {"length": bad})]
        with pytest.raises(DataError, match=r"Rating 2 gives 'length' the value .*a rating is a finite number") as err:
            train_reward_model(llama, name="x", layer=1, ratings=rated)
        assert err.value.field == "ratings[1].length"
    rm = RewardModel("r", "other", "/x", 1, ["a"], ["ridge"], np.ones((1, 16)), np.zeros(1), np.zeros(16), np.ones(16))
    with pytest.raises(ModelError, match="d=16"):
        rm.check_model(llama)
    with pytest.raises(ConfigError, match="no attribute 'b'"):
        rm.index("b")


def _voted_session(tmp_path, n: int = 40):
    """A session whose annotator prefers the longer answer overall and on 'verbosity', and judges 'tone' by coin flip."""
    from workbench.labeling import LabelingStore
    from workbench.store import Store

    words = ["fox", "dog", "answer", "preference", "brown", "lazy"]
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        short = words[i % len(words)]
        long = " ".join(words[(i + k) % len(words)] for k in range(12))
        a, b = (long, short) if i % 2 else (short, long)
        pairs.append(Pair(f"Question {i // 2}?", a, b, id=f"p{i:02d}"))
    store = Store(tmp_path / "wb.sqlite")
    store.import_pairs("ds", pairs)
    lab = LabelingStore(store)
    lab.create_session("s", "ds", {"aspects": ["verbosity", "tone"]})
    lab.join("s", "ann")
    for p in pairs:
        longer = "A" if len(p.response_a) > len(p.response_b) else "B"
        outcome = "tie" if p.id == "p00" else longer
        lab.vote("s", "ann", p.id, outcome, aspects={"verbosity": longer, "tone": "A" if rng.random() < 0.5 else "B"})
    return lab


def test_reward_heads_from_a_sessions_votes(llama, tmp_path):
    from workbench.preference.reward_heads import train_reward_model_from_session

    lab = _voted_session(tmp_path)
    rm = train_reward_model_from_session(llama, lab, "s", name="from-votes", layer=2)
    assert sorted(rm.attributes) == ["overall", "tone", "verbosity"] and set(rm.kinds) == {"bradley_terry"}
    overall = rm.metrics["overall"]
    assert overall["n_train"] + overall["n_test"] == 39  # the tie is not a comparison
    assert overall["heldout_pairwise_accuracy"] >= 0.8
    # 39 comparisons over 20 prompts: the penalty is chosen on held-out prompts, and says so.
    assert "5-fold cross-validation by prompt" in overall["l2_note"] and overall["l2"] == pytest.approx(float(overall["l2_note"].split(",")[0]), rel=1e-2)
    low, high = overall["heldout_ci"]
    assert low <= overall["heldout_pairwise_accuracy"] <= high
    shown = dict(accuracy_parts(rm))["overall"]  # what the Steering tab and the loop panel print
    assert shown == (f"{overall['heldout_pairwise_accuracy']:.2f} [{low:.2f}, {high:.2f}] "
                     f"(n {overall['n_test']} held out, L2 {overall['l2']:.3g} cross-validated)")
    tone_low, tone_high = rm.metrics["tone"]["heldout_ci"]  # coin-flip votes: a wide interval
    assert tone_high - tone_low > 0.2
    assert rm.source["session"] == "s" and rm.source["snapshot"]["n_judgments"] == 40 and rm.source["left_out"] == {"tie": 1}
    direction = rm.source["dpa_direction"]
    assert set(direction) == {"tone", "verbosity"} and direction["verbosity"] > abs(direction["tone"])
    assert np.hypot(*direction.values()) == pytest.approx(1.0)
    settings = Settings(home=tmp_path / "home")
    rm.save(reward_models_dir(settings))  # where the Steering tab and best-of-n look
    listed = list_reward_models(settings)
    assert listed[0]["name"] == "from-votes" and listed[0]["session"] == "s"
    assert load_reward_model(settings, "from-votes").source["dpa_direction"] == direction


def test_reward_heads_from_a_session_refuse_too_few_votes(llama, tmp_path):
    from workbench.preference.reward_heads import train_reward_model_from_session

    lab = _voted_session(tmp_path, n=4)
    with pytest.raises(DataError, match=r"3 usable A/B vote\(s\); this needs at least 8 \(left out: 1 tie\)"):
        train_reward_model_from_session(llama, lab, "s", name="few", layer=2)
    with pytest.raises(ConfigError, match="safe folder name"):
        train_reward_model_from_session(llama, lab, "s", name="../x", layer=2, min_votes=1)


def test_accuracy_text_of_older_and_unmeasured_heads():
    """A head saved before the penalty was chosen (no "l2"), a ridge head (no interval) and a head
    with no held-out pairs (NaN) each read as what they are, never as "nan"."""
    rm = RewardModel("r", "m", "/m", 1, ["old", "rated", "unmeasured", "one-sided"], ["bradley_terry", "ridge"] + ["bradley_terry"] * 2,
                     np.zeros((4, 2)), np.zeros(4), np.zeros(2), np.ones(2),
                     metrics={"old": {"heldout_pairwise_accuracy": 0.8, "heldout_ci": [0.7, 0.9], "n_test": 20},
                              "rated": {"heldout_pairwise_accuracy": 0.75, "n_test": 6},
                              "unmeasured": {"heldout_pairwise_accuracy": float("nan"), "n_test": 0, "l2": 1.0,
                                             "l2_note": "fixed at 1 (12 comparisons: too few …)"},
                              "one-sided": {"heldout_pairwise_accuracy": float("nan"), "n_test": 8, "l2": 1.0,
                                            "heldout_note": "8 held out, but every training vote went to one side: no head to test"}})
    assert accuracy_parts(rm) == [("old", "0.80 [0.70, 0.90] (n 20 held out)"), ("rated", "0.75, no interval (n 6 held out)"),
                                  ("unmeasured", "not measured (no held-out pairs, L2 1)"),
                                  ("one-sided", "not measured (8 held out, but every training vote went to one side: no head to test, L2 1)")]
