"""Activation extraction and its cache, checked against each text run alone through the real model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from checkpoints import write_tiny_checkpoint

from workbench.activations import ActivationCache, extract_activations, pair_texts
from workbench.activations.cache import checkpoint_identity
from workbench.activations.extract import batches
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.models.adapters import residual_stream
from workbench.models.embedded import embedder_path
from workbench.models.loading import load_model

FAMILIES = ["llama", "gpt2", "gpt_neox", "phi", "qwen2", "gemma2"]
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hi",
    "Preferences are learned from pairs of responses: chosen and rejected. A concise answer is often better.",
    "def f(x): return x * 2",
    "Bonjour le monde.",
]


@pytest.fixture(scope="module")
def tiny_lm(tiny_checkpoint):
    """``tiny_lm("llama")`` → a loaded tiny checkpoint, loaded once per module."""
    loaded = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = load_model(tiny_checkpoint(family))
        return loaded[family]

    return get


@pytest.fixture(scope="module")
def bert_lm():
    return load_model(embedder_path())


def alone(lm, text: str, add_special_tokens: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """Every layer's states for one text run alone, unpadded: the reference for batched results."""
    enc = lm.tokenizer(text, return_tensors="pt", add_special_tokens=add_special_tokens)
    with torch.inference_mode():
        states = residual_stream(lm.adapter, lm.model, **enc)
    return [s[0].float().numpy() for s in states], enc["input_ids"][0].numpy()


class ForwardCounter:
    """Counts real forward passes of a model with a forward hook."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, *_args) -> None:
        self.calls += 1

    def __enter__(self) -> ForwardCounter:
        return self

    def __exit__(self, *_exc) -> None:
        self.handle.remove()


@pytest.mark.parametrize("family", FAMILIES)
def test_last_pooling_matches_each_text_run_alone(tiny_lm, family):
    lm = tiny_lm(family)
    acts = extract_activations(lm, TEXTS, batch_size=2)  # batches mix lengths, so padding and re-ordering matter
    n = lm.n_layers
    assert acts.layers == list(range(n + 1))
    assert acts.shape == (n + 1, len(TEXTS), 32)
    assert acts.n_texts == len(TEXTS) and acts.pooling == "last" and len(acts.key) == 64
    for i, text in enumerate(TEXTS):
        states, _ = alone(lm, text)
        for layer in acts.layers:
            assert acts.get(layer).dtype == np.float32
            np.testing.assert_allclose(acts.get(layer)[i], states[layer][-1], atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "phi"])
def test_mean_over_response_tokens_matches_manual_mean(tiny_lm, family):
    lm = tiny_lm(family)
    tok = lm.tokenizer
    prefixes = ["The quick brown fox", "A concise answer", "Hi"]
    responses = [" jumps over the lazy dog.", " is often better than a verbose one.", " there"]
    texts = [p + r for p, r in zip(prefixes, responses, strict=True)]
    acts = extract_activations(lm, texts, layers=[0, 2], pooling="mean", prefix_lengths=[len(p) for p in prefixes], batch_size=2)
    for i, (prefix, text) in enumerate(zip(prefixes, texts, strict=True)):
        n_prefix = len(tok(prefix)["input_ids"])
        states, ids = alone(lm, text)
        assert list(ids[:n_prefix]) == tok(prefix)["input_ids"], "precondition: the prefix tokenizes the same inside the text"
        for layer in (0, 2):
            np.testing.assert_allclose(acts.get(layer)[i], states[layer][n_prefix:].mean(0), atol=1e-4)
    whole = extract_activations(lm, texts, layers=[1], pooling="mean", batch_size=3)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(whole.get(1)[i], alone(lm, text)[0][1].mean(0), atol=1e-4)


def test_tokens_pooling_is_ragged_with_offsets(tiny_lm):
    lm = tiny_lm("gpt_neox")
    acts = extract_activations(lm, TEXTS, layers=[1, 2], pooling="tokens", batch_size=2)
    runs = [alone(lm, text) for text in TEXTS]
    lengths = [len(ids) for _, ids in runs]
    np.testing.assert_array_equal(np.diff(acts.offsets), lengths)
    assert acts.offsets[0] == 0 and acts.shape == (2, sum(lengths), 32)
    for i, (states, ids) in enumerate(runs):
        rows = acts.text_rows(i)
        np.testing.assert_array_equal(acts.token_ids[rows], ids)
        for layer in (1, 2):
            np.testing.assert_allclose(acts.get(layer)[rows], states[layer], atol=1e-4)
    # With prefix lengths only the response tokens are kept.
    texts = ["The quick brown fox jumps", "Hi there"]
    part = extract_activations(lm, texts, layers=[2], pooling="tokens", prefix_lengths=[19, 2])
    for i, (text, cut) in enumerate(zip(texts, [19, 2], strict=True)):
        states, ids = alone(lm, text)
        n_prefix = len(lm.tokenizer(text[:cut])["input_ids"])
        np.testing.assert_array_equal(part.token_ids[part.text_rows(i)], ids[n_prefix:])
        np.testing.assert_allclose(part.get(2)[part.text_rows(i)], states[2][n_prefix:], atol=1e-4)


def test_negative_layers_count_from_the_end(tiny_lm):
    lm = tiny_lm("llama")
    acts = extract_activations(lm, TEXTS[:2], layers=[-1, 0, 2])
    assert acts.layers == [2, 0]
    np.testing.assert_allclose(acts.get(2)[1], alone(lm, TEXTS[1])[0][2][-1], atol=1e-4)


def test_bert_embedder_mean_and_last(bert_lm):
    assert bert_lm.is_encoder
    acts = extract_activations(bert_lm, TEXTS, pooling="mean", batch_size=2)
    last = extract_activations(bert_lm, TEXTS, layers=[bert_lm.n_layers], batch_size=2)
    assert acts.shape == (bert_lm.n_layers + 1, len(TEXTS), 384)
    for i, text in enumerate(TEXTS):
        states, _ = alone(bert_lm, text)
        np.testing.assert_allclose(acts.get(bert_lm.n_layers)[i], states[-1].mean(0), atol=1e-4)
        np.testing.assert_allclose(acts.get(3)[i], states[3].mean(0), atol=1e-4)
        np.testing.assert_allclose(last.get(bert_lm.n_layers)[i], states[-1][-1], atol=1e-4)


def test_pair_texts_average_over_each_response(tiny_lm):
    lm = tiny_lm("llama")
    pairs = [
        Pair(prompt="Say hi", response_a="Hi there", response_b="Bonjour le monde."),
        Pair(prompt=[{"role": "user", "content": "Add two"}], response_a="def f(x): return x * 2", response_b="No."),
    ]
    rendered = pair_texts(pairs, lm.tokenizer)
    assert rendered.add_special_tokens is False  # the chat template already holds the special tokens
    responses = ["Hi there", "def f(x): return x * 2", "Bonjour le monde.", "No."]
    assert [t[p:] for t, p in zip(rendered.texts, rendered.prefix_lengths, strict=True)] == responses
    assert rendered.texts[0].startswith("<|im_start|>user\nSay hi")
    acts = extract_activations(lm, rendered.texts, layers=[2], pooling="mean", prefix_lengths=rendered.prefix_lengths,
                               add_special_tokens=rendered.add_special_tokens)
    for i, (text, cut) in enumerate(zip(rendered.texts, rendered.prefix_lengths, strict=True)):
        states, _ = alone(lm, text, add_special_tokens=False)
        n_prefix = len(lm.tokenizer(text[:cut], add_special_tokens=False)["input_ids"])
        np.testing.assert_allclose(acts.get(2)[i], states[2][n_prefix:].mean(0), atol=1e-4)


@pytest.mark.demo_model
def test_demo_model_batched_equals_alone(demo_lm):
    pairs = [Pair(prompt="What is 2+2?", response_a="4", response_b="The answer is four, since two plus two makes four.")]
    rendered = pair_texts(pairs, demo_lm.tokenizer)
    acts = extract_activations(demo_lm, rendered.texts, layers=[0, 15, demo_lm.n_layers], add_special_tokens=False)
    for i, text in enumerate(rendered.texts):
        states, _ = alone(demo_lm, text, add_special_tokens=False)
        for layer in acts.layers:
            np.testing.assert_allclose(acts.get(layer)[i], states[layer][-1], atol=1e-3, rtol=1e-4)


def test_progress_callback_reports_every_batch(tiny_lm):
    seen = []
    extract_activations(tiny_lm("gpt2"), TEXTS, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


# --- cache -------------------------------------------------------------------------------


def test_repeated_request_is_a_file_read_without_forward(tiny_lm, tmp_path):
    lm = tiny_lm("llama")
    cache = ActivationCache(tmp_path / "cache")
    with ForwardCounter(lm.model) as counter:
        first = extract_activations(lm, TEXTS, pooling="mean", batch_size=2, cache=cache)
        assert counter.calls == 3 and not first.from_cache
        second = extract_activations(lm, TEXTS, pooling="mean", batch_size=2, cache=cache)
        assert counter.calls == 3, "a cache hit must not run the model"
    assert second.from_cache and second.key == first.key
    assert isinstance(second.get(0), np.memmap)
    for layer in first.layers:
        np.testing.assert_array_equal(first.get(layer), second.get(layer))
    assert cache.size_bytes() > 3 * len(TEXTS) * 32 * 4
    # A hit through a freshly loaded copy of the same checkpoint: the identity is stable.
    with ForwardCounter((again := load_model(lm.path)).model) as counter:
        extract_activations(again, TEXTS, pooling="mean", cache=cache)
        assert counter.calls == 0
    cache.clear()
    assert cache.size_bytes() == 0
    with ForwardCounter(lm.model) as counter:
        extract_activations(lm, TEXTS, pooling="mean", cache=cache)
        assert counter.calls == 1


def test_tokens_pooling_round_trips_through_cache(tiny_lm, tmp_path):
    lm = tiny_lm("phi")
    cache = ActivationCache(tmp_path)
    first = extract_activations(lm, TEXTS, layers=[1], pooling="tokens", cache=cache)
    second = extract_activations(lm, TEXTS, layers=[1], pooling="tokens", cache=cache)
    assert second.from_cache
    np.testing.assert_array_equal(first.offsets, second.offsets)
    np.testing.assert_array_equal(first.token_ids, second.token_ids)
    np.testing.assert_array_equal(first.get(1), second.get(1))


@pytest.mark.parametrize(
    "change",
    [
        {"texts": TEXTS[:4] + ["Bonjour le monde!"]},
        {"layers": [0, 1]},
        {"pooling": "last"},
        {"prefix_lengths": [1, 0, 0, 0, 0]},
    ],
    ids=["texts", "layers", "pooling", "prefix_lengths"],
)
def test_changed_request_misses(tiny_lm, tmp_path, change):
    lm = tiny_lm("gpt2")
    cache = ActivationCache(tmp_path)
    base = {"texts": TEXTS, "layers": [0, 1, 2], "pooling": "mean", "prefix_lengths": [0] * 5}
    first = extract_activations(lm, **{k: v for k, v in base.items() if k != "texts"}, texts=base["texts"], cache=cache)
    request = {**base, **change}
    with ForwardCounter(lm.model) as counter:
        second = extract_activations(lm, request.pop("texts"), **request, cache=cache)
        assert counter.calls == 1
    assert second.key != first.key and not second.from_cache


def test_resaved_checkpoint_misses(tmp_path):
    folder = write_tiny_checkpoint("llama", tmp_path / "model", seed=0)
    cache = ActivationCache(tmp_path / "cache")
    before_id = checkpoint_identity(folder)
    first = extract_activations(load_model(folder), TEXTS, layers=[2], cache=cache)
    write_tiny_checkpoint("llama", folder, seed=1)  # same shapes and file sizes, different weights
    assert checkpoint_identity(folder) != before_id
    lm = load_model(folder)
    with ForwardCounter(lm.model) as counter:
        second = extract_activations(lm, TEXTS, layers=[2], cache=cache)
        assert counter.calls == 1
    assert second.key != first.key
    assert not np.allclose(first.get(2), second.get(2))
    # An edited config (same weights) is a different checkpoint too.
    config = json.loads((folder / "config.json").read_text())
    config["rms_norm_eps"] = 1e-3
    (folder / "config.json").write_text(json.dumps(config))
    assert extract_activations(load_model(folder), TEXTS, layers=[2], cache=cache).key != second.key


@pytest.mark.parametrize("damage", ["delete_layer", "truncate_layer", "delete_meta"])
def test_damaged_entry_is_recomputed(tiny_lm, tmp_path, damage):
    lm = tiny_lm("llama")
    cache = ActivationCache(tmp_path)
    first = extract_activations(lm, TEXTS, layers=[0, 2], cache=cache)
    entry = tmp_path / first.key
    target = entry / ("meta.json" if damage == "delete_meta" else "layer_2.npy")
    expected = np.array(first.get(2))
    del first
    if damage == "truncate_layer":
        target.write_bytes(target.read_bytes()[:100])
    else:
        target.unlink()
    with ForwardCounter(lm.model) as counter:
        again = extract_activations(lm, TEXTS, layers=[0, 2], cache=cache)
        assert counter.calls == 1
    assert not again.from_cache
    np.testing.assert_array_equal(again.get(2), expected)
    assert extract_activations(lm, TEXTS, layers=[0, 2], cache=cache).from_cache


def test_interrupted_extraction_leaves_nothing_behind(tiny_lm, tmp_path):
    def interrupt(done: int, total: int) -> None:
        if done < total:
            raise KeyboardInterrupt

    cache = ActivationCache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(tiny_lm("gpt2"), TEXTS, batch_size=2, cache=cache, progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    assert cache.size_bytes() == 0


def test_clear_leaves_foreign_files_alone(tiny_lm, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    cache = ActivationCache(tmp_path)
    extract_activations(tiny_lm("gpt2"), TEXTS, cache=cache)
    cache.clear()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# --- bad input ---------------------------------------------------------------------------


def test_bad_requests_raise_clear_errors(tiny_lm):
    lm = tiny_lm("llama")
    with pytest.raises(DataError, match="no texts"):
        extract_activations(lm, [])
    with pytest.raises(ConfigError, match=r"valid layers are 0\.\.2"):
        extract_activations(lm, TEXTS, layers=[0, 3])
    with pytest.raises(ConfigError, match=r"valid layers are 0\.\.2"):
        extract_activations(lm, TEXTS, layers=[-4])
    with pytest.raises(ConfigError, match="prefix_lengths has 2 entries but there are 5 texts"):
        extract_activations(lm, TEXTS, pooling="mean", prefix_lengths=[0, 1])
    with pytest.raises(ConfigError, match=r"(?s)Unknown pooling 'max'.*last, mean, tokens"):
        extract_activations(lm, TEXTS, pooling="max")
    with pytest.raises(ConfigError, match=r"prefix_lengths\[1\] = 3 is outside text 1"):
        extract_activations(lm, TEXTS, pooling="mean", prefix_lengths=[0, 3, 0, 0, 0])
    with pytest.raises(DataError, match=r"texts\[1\].*no tokens"):
        extract_activations(lm, ["Hi", ""])
    with pytest.raises(DataError, match=r"texts\[1\].*No tokens after the prefix"):
        extract_activations(lm, ["Hi there", "Hi"], pooling="mean", prefix_lengths=[2, 2])
    with pytest.raises(ConfigError, match="batch_size"):
        extract_activations(lm, TEXTS, batch_size=0)
    acts = extract_activations(lm, TEXTS, layers=[1])
    with pytest.raises(ConfigError, match=r"Layer 2 was not extracted.*\[1\]"):
        acts.get(2)


def test_batches_keep_rows_and_padded_tokens_under_their_limits() -> None:
    lengths = [300, 200, 120, 100, 100, 40, 40, 40, 900]
    order = [8, 0, 1, 2, 3, 4, 5, 6, 7]  # longest first, as extraction sorts them
    cut = batches(order, lengths, 16, 512)
    assert [i for b in cut for i in b] == order  # every row once, in order
    assert cut[0] == [8]  # longer than the budget alone: still one row
    assert all(len(b) * max(lengths[i] for i in b) <= 512 for b in cut[1:])
    assert cut[1:] == [[0], [1, 2], [3, 4, 5, 6, 7]]
    assert batches(order, lengths, 4, None) == [order[:4], order[4:8], order[8:]]  # a GPU: batch_size alone
