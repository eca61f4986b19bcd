"""A lens (or activation extraction) on a shared model while another thread generates with it."""
from __future__ import annotations

import threading

import numpy as np
import torch

from workbench.lenses.lens import lens_metrics
from workbench.models.loading import load_model


def test_lens_while_another_thread_generates_equals_sequential(tiny_checkpoint):
    lm = load_model(tiny_checkpoint("llama"))
    prompts = ["The quick brown fox jumps over the lazy dog " * 8] * 10
    before = lens_metrics(lm, prompts).entropy
    stop = threading.Event()

    def generate_until_stopped() -> None:
        ids = torch.tensor([lm.tokenizer("hello world")["input_ids"]] * 2)
        while not stop.is_set():
            with torch.inference_mode():
                lm.model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=0)

    thread = threading.Thread(target=generate_until_stopped)
    thread.start()
    try:
        for _ in range(5):
            np.testing.assert_allclose(lens_metrics(lm, prompts).entropy, before, atol=1e-5)
    finally:
        stop.set()
        thread.join()
