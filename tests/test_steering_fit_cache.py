"""Steering-vector fits with a cache reuse one all-layer entry: a fit at other layers is a read."""
from __future__ import annotations

import numpy as np
import torch

from workbench.activations import ActivationCache
from workbench.models.loading import load_model
from workbench.steering.contrastive import ContrastiveSet, contrastive_vectors


def test_a_second_fit_at_other_layers_reads_the_first_fits_entry(tiny_checkpoint, tmp_path):
    lm = load_model(tiny_checkpoint("llama"), device="cpu")
    data = ContrastiveSet("len", ["a", "b", "c", "d"], ["long long long answer, really long"] * 4, ["no"] * 4)
    cache = ActivationCache(tmp_path / "cache")
    first = contrastive_vectors(lm, data, [1], cache=cache)
    entries = sorted(p.name for p in cache.root.iterdir())
    second = contrastive_vectors(lm, data, [2], method="pca", cache=cache)
    assert sorted(p.name for p in cache.root.iterdir()) == entries  # a miss would have written a second entry
    uncached = contrastive_vectors(lm, data, [1, 2], method="pca")
    assert torch.allclose(second[2].direction, uncached[2].direction, atol=1e-5)
    np.testing.assert_allclose(first[1].scale, contrastive_vectors(lm, data, [1]).get(1).scale, rtol=1e-5)
