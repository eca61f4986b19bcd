"""A lens (or activation extraction) on a shared model while another thread generates with it."""
from __future__ import annotations

import threading

import numpy as np
import torch

from workbench.lenses.lens import lens_metrics
from workbench.models.loading import load_model


def test_lens_while_another_thread_generates_equals_sequential(tiny_checkpoint):
    """The generating thread's forwards are counted by a hook, so the test shows that they really ran
    during the lens calls (not before or after them) instead of assuming it."""
    lm = load_model(tiny_checkpoint("llama"))
    prompts = ["The quick brown fox jumps over the lazy dog " * 8] * 10
    before = lens_metrics(lm, prompts).entropy
    stop, started = threading.Event(), threading.Event()
    generator_forwards = [0]
    generator_thread: list[int] = []

    def count(_module: object, _args: object, _output: object) -> None:
        if generator_thread and threading.get_ident() == generator_thread[0]:
            generator_forwards[0] += 1
            started.set()

    def generate_until_stopped() -> None:
        generator_thread.append(threading.get_ident())
        ids = torch.tensor([lm.tokenizer("hello world")["input_ids"]] * 2)
        while not stop.is_set():
            with torch.inference_mode():
                lm.model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=0)

    handle = lm.model.register_forward_hook(count)
    thread = threading.Thread(target=generate_until_stopped)
    thread.start()
    overlapping = 0
    try:
        assert started.wait(timeout=60)
        for _ in range(5):
            at_start = generator_forwards[0]
            np.testing.assert_allclose(lens_metrics(lm, prompts).entropy, before, atol=1e-5)
            overlapping += generator_forwards[0] > at_start
    finally:
        stop.set()
        thread.join()
        handle.remove()
    assert overlapping > 0, "the generating thread never ran a forward while a lens ran: nothing concurrent was tested"
