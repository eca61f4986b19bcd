"""Behaviour on the real demo model: a verbosity direction moves response length, DPA reranking follows θ.

The contrastive pairs are a small fixture made by the demo model itself with the demo
dataset's pole prompts (concise/verbose, casual/formal), in the same Pair shape as
``load_demo_pairs()`` (metadata.attribute, a_pole, b_pole).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.data.types import Pair
from workbench.models.generation import SamplingSettings
from workbench.preference.reward_heads import comparisons_from_poles, train_reward_model
from workbench.steering import attribute_set, contrastive_vectors, generate_rows
from workbench.steering.dpa import angle_direction, best_of_n, rerank

pytestmark = pytest.mark.demo_model
FIXTURES = Path(__file__).parent / "fixtures" / "steering"
STEER_LAYER = 12
REWARD_LAYER = 20
COEF = 1.0
SYSTEM = "Answer in two or three sentences."  # the model's default answers would run into the length cap


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    return [Pair.from_dict(r) for name in ("verbosity_pairs.json", "formality_pairs.json")
            for r in json.loads((FIXTURES / name).read_text(encoding="utf-8"))]


def test_verbosity_direction_changes_length_monotonically(demo_lm, pairs):
    vector = contrastive_vectors(demo_lm, attribute_set(pairs, "verbosity", "verbose"), [STEER_LAYER])[STEER_LAYER]
    assert vector.info["accuracy"] > 0.7
    prompts = ["What is a noun?", "What is a volcano?", "How do magnets work?"]
    settings = SamplingSettings(max_new_tokens=128, do_sample=False, repetition_penalty=1.1)
    lengths = np.array([[r.n_tokens for r in generate_rows(demo_lm, p, [vector], [[-COEF], [0.0], [COEF]], settings, system=SYSTEM)]
                        for p in prompts])
    mean = lengths.mean(0)
    assert mean[0] < mean[1] < mean[2], lengths


def test_dpa_reranking_follows_theta(demo_lm, pairs):
    comps = comparisons_from_poles(pairs, {"verbosity": "verbose", "formality": "formal"})
    rm = train_reward_model(demo_lm, name="demo-rm", layer=REWARD_LAYER, comparisons=comps)
    assert rm.attributes == ["formality", "verbosity"]
    assert rm.metrics["verbosity"]["heldout_pairwise_accuracy"] >= 0.75
    toward, away = [], []
    for prompt in ["Tell me about the moon.", "How do plants grow?"]:
        result = best_of_n(demo_lm, prompt, rm, angle_direction(90), n=6,
                           settings=SamplingSettings(max_new_tokens=64, temperature=1.0, seed=1))
        toward.append(len(result.response.split()))
        _, _, worst_for_verbosity = rerank(rm, result.rewards, angle_direction(-90))
        away.append(len(result.candidates[worst_for_verbosity].split()))
    assert np.mean(toward) > np.mean(away), (toward, away)
