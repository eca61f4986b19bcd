"""Behaviour on the real demo model and the shipped demo dataset (no fixtures of our own).

- A verbosity steering vector fitted on the demo dataset's concise/verbose pairs changes the
  mean response length monotonically over three coefficients.
- Fitting on the first k response tokens may cut the responses before the forward pass
  without changing the pooled activations.
- DPA best-of-n reranking with θ pointing at verbosity picks longer responses than θ
  pointing away, with Bradley–Terry reward heads trained on the demo dataset's poles.

Both are statistical claims about a 135M model, so each is measured over several prompts
and compared on the mean, with greedy decoding (or a fixed seed) and one torch thread, so
the run is reproducible on one machine. The figures these settings gave are in
docs/steering.md ("Demo-model behaviour tests").
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.activations import chat_texts, extract_activations
from workbench.data.demo import load_demo_pairs
from workbench.jobs.options import SamplingOptions
from workbench.models.generation import generate
from workbench.preference.reward_heads import comparisons_from_poles, train_reward_model
from workbench.steering import attribute_set, contrastive_vectors
from workbench.steering.contrastive import contrastive_activations
from workbench.steering.dpa import angle_direction, best_of_n, rerank

pytestmark = pytest.mark.demo_model

STEER_LAYER = 10  # the layer scan in docs/steering.md: monotonic here out to ±6; at layer 20 the sign flips
FIRST_TOKENS = 32  # pool the first 32 response tokens (16 shortened answers less reliably)
COEF = 6.0
# Held-out questions (not in the demo dataset). The length instruction puts the unsteered
# answer (~40 tokens) well inside the 96-token cap, so steering can move it either way.
QUESTIONS = ["What is a noun?", "What is a volcano?", "How do magnets work?", "What is a rainbow?",
             "Why do cats purr?", "What is a budget?", "What is gravity?", "How do bees make honey?"]
LENGTH_INSTRUCTION = " Answer in three sentences."
REWARD_LAYER = 20


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Greedy decoding can flip on near-ties when the float summation order changes; pin it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo_pairs():
    return load_demo_pairs()


def _token_lengths(lm, texts: list[str]) -> np.ndarray:
    return np.array([len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts])


def test_clipped_responses_give_the_same_first_token_activations(demo_lm, demo_pairs):
    """contrastive_activations cuts responses a few tokens past first_tokens before the forward
    pass; on a causal model that must not change the pooled activations."""
    data = attribute_set(demo_pairs[:4], "verbosity", "verbose")
    k, layer = 16, STEER_LAYER
    pooled, n = contrastive_activations(demo_lm, data, [layer], first_tokens=k)
    rendered = chat_texts(data.prompts * 2, data.positive + data.negative, demo_lm.tokenizer)
    whole = extract_activations(demo_lm, rendered.texts, layers=[layer], pooling="tokens", prefix_lengths=rendered.prefix_lengths,
                                add_special_tokens=rendered.add_special_tokens)
    assert max(np.diff(whole.offsets)) > 3 * k  # some responses are long, so clipping did cut them
    expected = np.stack([np.asarray(whole.get(layer))[s:s + k].mean(0) for s in whole.offsets[:-1]])
    np.testing.assert_allclose(pooled[layer], expected, rtol=1e-4, atol=1e-4)


def test_verbosity_vector_changes_mean_length_monotonically(demo_lm, demo_pairs):
    data = attribute_set(demo_pairs, "verbosity", "verbose")
    assert len(data.prompts) == 60
    vector = contrastive_vectors(demo_lm, data, [STEER_LAYER], first_tokens=FIRST_TOKENS)[STEER_LAYER]
    assert vector.info["accuracy"] > 0.6, vector.info  # the groups separate at this layer at all

    prompts = [q + LENGTH_INSTRUCTION for q in QUESTIONS]
    settings = SamplingOptions(max_new_tokens=96, do_sample=False, repetition_penalty=1.1)
    lengths = []
    for coefficient in (-COEF, 0.0, COEF):
        with vector.apply(demo_lm, coefficient):
            lengths.append(_token_lengths(demo_lm, generate(demo_lm, prompts, settings)))
    lengths = np.stack(lengths)  # [coefficient, prompt]
    mean = lengths.mean(1)
    print(f"vector {vector.info}; scale {vector.scale:.2f}")
    print(f"mean response length (tokens) at c = -{COEF:g}, 0, +{COEF:g}: {np.round(mean, 1).tolist()}; per prompt:\n{lengths}")
    assert mean[0] < mean[1] < mean[2], lengths
    # Not a near-tie: each step moves the mean by several tokens.
    assert mean[1] - mean[0] >= 5 and mean[2] - mean[1] >= 5, mean


def test_dpa_reranking_toward_verbosity_picks_longer_responses(demo_lm, demo_pairs):
    # A subset of the demo dataset's poles keeps the feature pass short (whole responses are read).
    verbosity = [p for p in demo_pairs if p.metadata["attribute"] == "verbosity"][:16]
    formality = [p for p in demo_pairs if p.metadata["attribute"] == "formality"][:8]
    comparisons = comparisons_from_poles(verbosity + formality, {"verbosity": "verbose", "formality": "formal"})
    rm = train_reward_model(demo_lm, name="demo-steering-test", layer=REWARD_LAYER, comparisons=comparisons)
    assert rm.attributes == ["formality", "verbosity"]
    assert rm.metrics["verbosity"]["heldout_pairwise_accuracy"] >= 0.75, rm.metrics

    # Sampled candidates of varied length: the length instruction keeps most of them under the cap.
    toward, away = [], []  # θ = 90° is all verbosity, θ = -90° all against it
    for i, question in enumerate(["Tell me about the moon.", "How do plants grow?"]):
        result = best_of_n(demo_lm, question + LENGTH_INSTRUCTION, rm, angle_direction(90), n=8,
                           settings=SamplingOptions(max_new_tokens=64, temperature=1.0, seed=i + 1))
        _, _, away_index = rerank(rm, result.rewards, angle_direction(-90))
        lengths = _token_lengths(demo_lm, result.candidates)
        print(f"candidate lengths {lengths.tolist()}, verbosity rewards {np.round(result.rewards[:, 1], 2).tolist()}")
        toward.append(int(lengths[result.best])), away.append(int(lengths[away_index]))
    print(f"best-of-8 lengths (tokens): toward verbosity {toward}, away {away}")
    assert np.mean(toward) > np.mean(away), (toward, away)
