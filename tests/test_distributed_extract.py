"""Data-parallel extraction: 2 CPU ranks (gloo) write shards into one content-hash cache; a rerun only reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.activations import ActivationCache, extract_activations
from workbench.activations.distributed import extract_sharded, launch_extraction
from workbench.errors import ConfigError, DataError
from workbench.models.loading import load_model

TEXTS = [f"Text number {i}: the quick brown fox " + "jumps over the lazy dog. " * (i % 4 + 1) for i in range(10)]


@pytest.fixture(scope="module")
def llama_dir(tiny_checkpoint):
    return tiny_checkpoint("llama")


def _entries(cache: ActivationCache) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.root.iterdir()}


def test_two_ranks_match_one_process_and_a_rerun_is_a_read(llama_dir, tmp_path):
    cache = ActivationCache(tmp_path / "cache")
    kwargs = dict(layers=[0, 1, 2], pooling="tokens", batch_size=4)
    sharded = launch_extraction(llama_dir, TEXTS, cache=cache, work_dir=tmp_path / "run1", num_processes=2, cpu=True,
                                shard_texts=3, **kwargs)
    assert [s.n_texts for s in sharded.shards] == [3, 3, 3, 1] and sharded.n_texts == len(TEXTS)
    assert json.loads((tmp_path / "run1" / "shards.json").read_text())["world_size"] == 2
    whole = extract_activations(load_model(llama_dir, device="cpu"), TEXTS, **kwargs)
    for layer in (0, 1, 2):
        np.testing.assert_allclose(sharded.get(layer), whole.get(layer), atol=1e-5)
    written = _entries(cache)
    assert len(written) == 4 and not any(name.startswith(".tmp") for name in written)

    again = launch_extraction(llama_dir, TEXTS, cache=cache, work_dir=tmp_path / "run2", num_processes=2, cpu=True,
                              shard_texts=3, **kwargs)
    assert _entries(cache) == written  # nothing recomputed or rewritten
    assert [s.key for s in again.shards] == [s.key for s in sharded.shards]


def test_in_process_shards_are_the_same_entries_and_a_longer_corpus_reuses_them(llama_dir, tmp_path):
    lm = load_model(llama_dir, device="cpu")
    cache = ActivationCache(tmp_path / "cache")
    first = extract_sharded(lm, TEXTS[:6], cache=cache, shard_texts=3, layers=[2], pooling="mean")
    longer = extract_sharded(lm, TEXTS, cache=cache, shard_texts=3, layers=[2], pooling="mean")
    assert [s.key for s in longer.shards[:2]] == [s.key for s in first.shards]
    assert [s.from_cache for s in longer.shards] == [True] * 4  # the longer run's own shards were read back after the barrier
    assert len(_entries(cache)) == 4
    np.testing.assert_allclose(longer.get(2), extract_activations(lm, TEXTS, layers=[2], pooling="mean").get(2), atol=1e-5)
    with pytest.raises(ConfigError, match="shard_texts"):
        extract_sharded(lm, TEXTS, cache=cache, shard_texts=0)
    with pytest.raises(DataError, match="no texts"):
        extract_sharded(lm, [], cache=cache)
