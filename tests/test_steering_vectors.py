"""Steering vectors on tiny checkpoints: exactness at 0, hook hygiene, batching, estimators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError, ModelError
from workbench.jobs.options import SamplingOptions
from workbench.models.generation import generate
from workbench.models.loading import load_model
from workbench.steering import (
    ContrastiveSet,
    SteeringVector,
    active_hook_count,
    contrastive_vectors,
    decode_rows,
    fit_direction,
    generate_rows,
    side_by_side,
    steer,
)


@pytest.fixture(scope="module")
def llama(tiny_checkpoint):
    return load_model(tiny_checkpoint("llama"))


def random_vector(lm, layer: int = 1, seed: int = 0, scale: float = 4.0, name: str = "v") -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector(name=name, layer=layer, direction=torch.randn(lm.adapter.d_model(lm.model), generator=g), scale=scale)


def logits(lm, text: str = "The quick brown fox") -> torch.Tensor:
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return lm.model(input_ids=ids).logits


GREEDY = SamplingOptions(max_new_tokens=12, do_sample=False)
SAMPLED = SamplingOptions(max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0, seed=3)


def test_coefficient_zero_reproduces_unsteered_output_exactly(llama):
    vec = random_vector(llama)
    base = logits(llama)
    with vec.apply(llama, 0.0):
        assert torch.equal(logits(llama), base)
    reference = generate(llama, ["Hello there"], GREEDY)[0]
    rows = generate_rows(llama, "Hello there", [vec], [[0.0], [0.0]], GREEDY)
    assert rows[0].text == rows[1].text == reference
    sampled = generate_rows(llama, "Hello there", [vec], [[0.0], [5.0], [0.0]], SAMPLED)
    assert sampled[0].token_ids == sampled[2].token_ids  # shared noise: same distribution, same tokens
    assert generate_rows(llama, "Hello there", [], [[]], SAMPLED)[0].token_ids == sampled[0].token_ids


def test_hooks_are_removed_even_after_an_exception(llama):
    vec = random_vector(llama)
    base = logits(llama)
    with pytest.raises(RuntimeError, match="boom"):
        with vec.apply(llama, 3.0):
            assert active_hook_count(llama) == 1
            assert not torch.allclose(logits(llama), base)
            raise RuntimeError("boom")
    assert active_hook_count(llama) == 0
    assert torch.equal(logits(llama), base)
    second = random_vector(llama, layer=2, seed=1)
    with pytest.raises(KeyError):
        with steer(llama, [(vec, 1.0), (second, -2.0)]):
            assert active_hook_count(llama) == 2
            raise KeyError("x")
    assert active_hook_count(llama) == 0
    # A generator abandoned mid-stream leaves nothing behind either.
    stream = decode_rows(llama, "Hi", [vec], [[0.0], [2.0]], GREEDY)
    next(stream)
    assert active_hook_count(llama) == 0
    stream.close()
    assert active_hook_count(llama) == 0


def test_per_row_coefficients_match_separate_runs(llama):
    vec = random_vector(llama)
    ids = llama.tokenizer(["The quick brown fox"] * 3, return_tensors="pt")["input_ids"]
    coefs = [-1.5, 0.0, 2.0]
    with torch.inference_mode(), vec.apply(llama, coefs):
        batched = llama.model(input_ids=ids).logits
    for i, c in enumerate(coefs):
        with torch.inference_mode(), vec.apply(llama, c):
            single = llama.model(input_ids=ids[i:i + 1]).logits
        torch.testing.assert_close(batched[i:i + 1], single, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="2 rows"):
        with vec.apply(llama, [1.0, 2.0]):
            logits(llama)


def test_several_vectors_add_up(llama):
    a, b = random_vector(llama, seed=1, name="a"), random_vector(llama, seed=2, name="b", scale=2.0)
    combined = SteeringVector("ab", 1, direction=0.5 * a.vector() - 1.5 * b.vector(), scale=float((0.5 * a.vector() - 1.5 * b.vector()).norm()))
    with steer(llama, [(a, 0.5), (b, -1.5)]):
        both = logits(llama)
    with combined.apply(llama, 1.0):
        one = logits(llama)
    torch.testing.assert_close(both, one, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "gemma2", "gpt_neox", "phi", "qwen2"])
def test_every_family_is_steered_through_its_adapter(tiny_checkpoint, family):
    lm = load_model(tiny_checkpoint(family))
    vec = random_vector(lm, layer=lm.n_layers)
    base = logits(lm)
    with vec.apply(lm, 2.0):
        assert not torch.allclose(logits(lm), base)
    assert active_hook_count(lm) == 0 and torch.equal(logits(lm), base)


def test_vector_checks_model_shape_and_roundtrips(llama, tmp_path):
    vec = random_vector(llama, layer=2)
    wrong = SteeringVector("w", 1, direction=torch.ones(7))
    with pytest.raises(ModelError, match="7 dimensions"):
        with wrong.apply(llama, 1.0):
            pass
    deep = SteeringVector("d", 9, direction=torch.ones(32))
    with pytest.raises(ModelError, match="2 blocks"):
        with deep.apply(llama, 1.0):
            pass
    with pytest.raises(ConfigError, match="zero"):
        SteeringVector("z", 1, direction=torch.zeros(32))
    loaded = SteeringVector.load(vec.save(tmp_path / "v.json"))
    assert loaded.layer == 2 and loaded.scale == vec.scale and torch.allclose(loaded.direction, vec.direction)


def test_side_by_side_streams_same_seed_and_logprobs(llama):
    vec = random_vector(llama, scale=50.0)
    frames = list(side_by_side(llama, "Hello there", [(vec, 1.0)], SAMPLED))
    assert len(frames) > 1
    plain, steered = frames[-1]
    assert plain.coefficients == (0.0,) and steered.coefficients == (1.0,)
    assert plain.token_ids != steered.token_ids
    assert len(plain.logprobs) == plain.n_tokens and all(lp <= 0 for lp in plain.logprobs)
    again = list(side_by_side(llama, "Hello there", [(vec, 1.0)], SAMPLED))[-1]
    assert again[0].token_ids == plain.token_ids and again[1].token_ids == steered.token_ids


def test_estimators_recover_a_planted_direction_with_calibrated_sign():
    rng = np.random.default_rng(0)
    d = 16
    truth = np.zeros(d)
    truth[3] = 1.0
    neg = rng.normal(size=(60, d))
    pos = neg + 2.0 * truth + 0.3 * rng.normal(size=(60, d))
    for method in ("mean_diff", "pca", "probe"):
        direction, scale, diag = fit_direction(pos, neg, method)
        assert direction @ truth > 0.9, method
        assert diag["accuracy"] > 0.75  # groups overlap: N(0,1) vs N(2,1) along the axis
        flipped, _, _ = fit_direction(neg, pos, method)
        assert flipped @ truth < -0.9, method  # the sign follows which group is positive
    direction, scale, _ = fit_direction(pos, neg, "mean_diff")
    assert scale == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ConfigError):
        fit_direction(pos, neg, "magic")


def test_contrastive_vectors_from_texts(llama):
    data = ContrastiveSet("len", ["a", "b", "c", "d"], ["long long long answer"] * 4, ["no"] * 4)
    vectors = contrastive_vectors(llama, data, [1, 2], method="mean_diff")
    assert set(vectors) == {1, 2}
    assert all(v.scale > 0 and v.info["n_pairs"] == 4 for v in vectors.values())
    with pytest.raises(ConfigError):
        contrastive_vectors(llama, data, [0])
