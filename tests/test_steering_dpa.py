"""DPA directions, the system-prompt template, trade-off fronts and best-of-n on a tiny checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.jobs.options import SamplingOptions
from workbench.models.loading import load_model
from workbench.preference.reward_heads import RewardModel
from workbench.steering.dpa import angle_direction, best_of_n, dpa_system_prompt, pareto_front, rerank, unit_direction


def test_directions():
    assert np.allclose(angle_direction(0), [1, 0]) and np.allclose(angle_direction(90), [0, 1], atol=1e-12)
    assert np.allclose(angle_direction(-45), [np.sqrt(0.5), -np.sqrt(0.5)])
    v = unit_direction([3, 0, -4])
    assert np.allclose(v, [0.6, 0, -0.8])
    with pytest.raises(ConfigError, match="non-zero"):
        unit_direction([0, 0])


def test_dpa_system_prompt_uses_rounded_weights():
    text = dpa_system_prompt(["helpfulness", "verbosity"], angle_direction(-15))
    assert text.endswith("weighted rating = helpfulness*97 + verbosity*-26")
    assert text.startswith("You are a helpful, respectful, and honest assistant")
    assert dpa_system_prompt(["a", "b", "c"], [2, 0, 0]).endswith("a*100 + b*0 + c*0")
    with pytest.raises(ConfigError, match="2 components"):
        dpa_system_prompt(["a", "b", "c"], [1, 1])


def test_pareto_front_and_rerank():
    r = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.2], [1.0, 0.0]])
    assert pareto_front(r).tolist() == [True, True, True, False, True]  # ties do not dominate each other
    rm = RewardModel("r", "m", "/m", 1, ["a", "b"], ["ridge", "ridge"], np.zeros((2, 2)), np.zeros(2), np.zeros(2), np.ones(2))
    _, scores, best = rerank(rm, r, angle_direction(90))
    assert best == 1 and np.allclose(scores, r[:, 1])
    _, _, best = rerank(rm, r, [1.0], attributes=["a"])
    assert best == 0


def test_best_of_n_on_a_tiny_model(tiny_checkpoint):
    lm = load_model(tiny_checkpoint("qwen2"))
    d = lm.adapter.d_model(lm.model)
    rng = np.random.default_rng(0)
    rm = RewardModel("r", lm.name, str(lm.path), 2, ["x", "y"], ["ridge", "bradley_terry"], rng.normal(size=(2, d)), np.zeros(2),
                     np.zeros(d), np.ones(d))
    settings = SamplingOptions(max_new_tokens=6, temperature=1.5, top_p=1.0, seed=0)
    res = best_of_n(lm, "Hello", rm, angle_direction(30), n=5, settings=settings)
    assert len(res.candidates) == 5 and res.rewards.shape == (5, 2)
    assert res.best == int(np.argmax(res.rewards @ angle_direction(30)))
    assert res.front[res.best]  # the best by any positive direction is on the front
    rows = res.rows()
    assert sum(r["chosen"] for r in rows) == 1 and {"x", "y", "score", "response"} <= set(rows[0])
    assert res.timings["score_s_per_candidate"] > 0
    flipped = best_of_n(lm, "Hello", rm, angle_direction(210), n=5, settings=settings)
    assert flipped.candidates == res.candidates  # same seed, same candidates; only the pick moves
    with pytest.raises(ConfigError, match="greedy"):
        best_of_n(lm, "Hello", rm, [1, 0], n=3, settings=SamplingOptions(do_sample=False))
