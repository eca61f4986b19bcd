"""A steering hook acts only on forwards of the thread that installed it (the model is shared)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from workbench.models.loading import load_model
from workbench.steering.vectors import SteeringVector


def test_hook_steers_its_own_thread_only(tiny_checkpoint):
    lm = load_model(tiny_checkpoint("llama"), device="cpu")
    ids = torch.tensor([[1, 5, 9, 13]])
    vec = SteeringVector("v", 1, torch.ones(lm.adapter.d_model(lm.model)), scale=5.0)

    def logits() -> torch.Tensor:
        with torch.inference_mode():
            return lm.model(input_ids=ids).logits

    plain = logits()
    with ThreadPoolExecutor(1) as other, vec.apply(lm, 1.0):
        steered = logits()
        elsewhere = other.submit(logits).result()
    assert not torch.allclose(steered, plain)
    assert torch.equal(elsewhere, plain)
