"""SAE training streams shards (memory-mapped cache entries) through a bounded mixing buffer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError
from workbench.sae.training import SAESpec, streamed_batches, train_sae


def _planted(n: int, d: int = 32, features: int = 64, active: int = 3, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(features, d, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(features, generator=g)[:active] for _ in range(n)])
    return ((torch.rand(n, active, generator=g)[..., None] * 2 * dictionary[idx]).sum(1) + 0.5).numpy()


def _memmapped_shards(acts: np.ndarray, n_shards: int, folder) -> list[np.ndarray]:
    shards = []
    for i, part in enumerate(np.array_split(acts, n_shards)):
        np.save(folder / f"shard_{i}.npy", part)
        shards.append(np.load(folder / f"shard_{i}.npy", mmap_mode="r"))
    return shards


def test_each_epoch_hands_out_every_row_once_with_a_bounded_buffer():
    shards = [np.arange(n, dtype=np.float32)[:, None] + 1000 * i for i, n in enumerate((70, 50, 90))]
    rows = [np.arange(len(s)) for s in shards]
    batches = streamed_batches(shards, rows, batch_size=10, seed=0, buffer_rows=40)
    first_epoch = torch.cat([next(batches) for _ in range(21)]).flatten()  # 210 rows = one epoch exactly
    assert sorted(first_epoch.tolist()) == sorted(np.concatenate(shards).flatten().tolist())
    assert first_epoch.tolist() != np.concatenate(shards).flatten().tolist()  # shuffled, not in shard order
    assert all(len(next(batches)) == 10 for _ in range(50))  # and it keeps going


def test_training_on_memmapped_shards_matches_one_matrix(tmp_path):
    acts = _planted(20_000)
    spec = dict(expansion=4, k=3, training_samples=100_000, batch_size=256, n_checkpoints=0)
    whole = train_sae(acts, SAESpec(**spec))
    shards = _memmapped_shards(acts, 6, tmp_path)
    streamed = train_sae(shards, SAESpec(**spec, buffer_rows=4096, max_eval_rows=1500), folder=tmp_path / "sae")
    assert streamed.metrics.fvu < 0.35, streamed.metrics  # 3-sparse data; an untrained SAE sits near 1
    assert streamed.metrics.fvu < whole.metrics.fvu + 0.1, (streamed.metrics, whole.metrics)
    assert streamed.metrics.n_eval <= 1500 + 6


def test_bad_shards_name_the_shard(tmp_path):
    good = _planted(1000)
    bad = good.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError, match=r"shard 1\);.*non-finite"):
        train_sae([good, bad], SAESpec(batch_size=64, training_samples=1000))
    with pytest.raises(ConfigError, match="shard 1"):
        train_sae([good, good[:, :8]], SAESpec(batch_size=64, training_samples=1000))
    with pytest.raises(ConfigError, match="buffer_rows"):
        train_sae([good], SAESpec(batch_size=64, training_samples=1000, buffer_rows=64))
