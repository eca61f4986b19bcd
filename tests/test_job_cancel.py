"""A cancel stops a job inside its long uninterruptible step, not after it (issue 24 §2: a DPO
cancel took 42 s in the browser; a batch of answers ran to its end before the job looked).

Each test starts a real job worker on a tiny checkpoint that never writes its end-of-text token,
so a generation runs to ``max_new_tokens`` (8,000: many seconds) unless the cancel stops it.
The test cancels once the job reports that the long step has begun and then checks what the
job recorded: the run ended cancelled, the worker logged how many of the 8,000 tokens it had
made when it noticed (fewer than all), no later progress was written, and no cut-off answer
was kept. No wall-clock threshold: the machine may be busy.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from checkpoints import make_tokenizer
from transformers import AutoModelForCausalLM, LlamaConfig

from workbench.jobs import JobManager, Run
from workbench.labeling.generate import GENERATE_PAIRS, STATE_FILE
from workbench.settings import Settings
from workbench.training.dpo import DPO_JOB

LONG = 8_000  # new tokens per answer: a batch that would run for many seconds
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
# generate()'s stopping criterion, or a block's hook (``JobContext.stop_inside``), whichever looks first
NOTICED = re.compile(r"cancel noticed (while generating, after (\d+) of (\d+) new tokens|inside a forward or backward pass)")


@pytest.fixture(scope="module")
def endless(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny llama without an end-of-text token and with room for ``LONG`` positions."""
    out = tmp_path_factory.mktemp("endless") / "llama"
    src = tiny_checkpoint("llama")
    out.mkdir()
    for f in src.iterdir():
        out.joinpath(f.name).write_bytes(f.read_bytes())
    for name in ("config.json", "generation_config.json"):
        cfg = json.loads((out / name).read_text())
        cfg["eos_token_id"] = None
        if "max_position_embeddings" in cfg:
            cfg["max_position_embeddings"] = 2 * LONG
        (out / name).write_text(json.dumps(cfg))
    return out


def cancel_when(run: Run, started: Callable[[dict[str, Any]], bool], timeout: float = 600) -> dict[str, Any]:
    """Cancel as soon as the job's progress says the long step has begun; return that progress."""
    deadline = time.monotonic() + timeout
    while not started(p := run.progress()):
        assert run.is_active() and time.monotonic() < deadline, run.log_tail(60)
        time.sleep(0.02)
    run.cancel()
    m = run.wait(300)
    assert m.status == "cancelled", run.log_tail(60)
    return p


def noticed_inside(run: Run) -> bool:
    """The worker logged that the cancel stopped a generation (fewer than all its tokens made) or a forward pass."""
    found = NOTICED.search(run.log_tail(200))
    assert found, run.log_tail(60)
    return found[2] is None or (int(found[3]) == LONG and int(found[2]) < LONG)


def test_pair_generation_stops_inside_a_batch(endless, tmp_path: Path) -> None:
    manager = JobManager(Settings(home=tmp_path / "home"), job_types={GENERATE_PAIRS.name: GENERATE_PAIRS})
    greedy = {"do_sample": False, "max_new_tokens": LONG}
    run = manager.submit(GENERATE_PAIRS.name, {
        "dataset": "endless", "prompts": ["Hello", "The fox", "A dog", "Why"], "batch_size": 2,
        "sources": [{"name": "a", "model": str(endless), "sampling": greedy}, {"name": "b", "model": str(endless), "sampling": greedy}],
    }, env=ONE_THREAD)
    at_cancel = cancel_when(run, lambda p: p.get("message", "").startswith("a: answering prompts 1–2"))
    assert noticed_inside(run)  # stopped inside generate(), not after the batch
    last = run.progress()
    assert (last["step"], last["message"]) == (0, at_cancel["message"])  # no batch finished after the cancel
    assert not (run.dir / STATE_FILE).exists()  # the cut-off answers were not kept as if complete


def test_dpo_stops_inside_a_sample_answer(endless, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Describe thing {i}.", "chosen": f"Thing {i} is fine.",
                                        "rejected": "I cannot answer that."}) + "\n" for i in range(8)), encoding="utf-8")
    manager = JobManager(Settings(home=tmp_path / "home"), job_types={"dpo": DPO_JOB})
    run = manager.submit("dpo", {"model": str(endless), "dataset": str(data), "max_steps": 1, "batch_size": 1, "max_length": 64,
                                 "held_out_fraction": 0.25, "eval_max_pairs": 1, "n_samples": 2, "sample_max_new_tokens": LONG,
                                 "device": "cpu"}, env=ONE_THREAD)
    cancel_when(run, lambda p: p.get("stage") == "samples")
    assert noticed_inside(run)  # inside the first sample answer
    last = run.progress()
    assert (last["stage"], last["step"]) == ("samples", 0)
    assert not (run.dir / "samples.jsonl").exists()


def test_dpo_stops_inside_a_training_step_and_keeps_the_last_finished_one(tmp_path: Path) -> None:
    """Steps of a few seconds (a wider random llama, 1,000-token pairs): the cancel, sent as step 1 is
    reported, stops step 2 at a block, and step 1's checkpoint is saved for a resume."""
    model, tok = tmp_path / "wider", make_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(model)
    tok.save_pretrained(model)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Describe thing {i}.", "chosen": "The quick brown fox. " * 200,
                                        "rejected": "A concise answer. " * 200}) + "\n" for i in range(8)), encoding="utf-8")
    manager = JobManager(Settings(home=tmp_path / "home"), job_types={"dpo": DPO_JOB})
    run = manager.submit("dpo", {"model": str(model), "dataset": str(data), "max_steps": 50, "batch_size": 1, "max_length": 2048,
                                 "held_out_fraction": 0.25, "n_samples": 0, "save_steps": 1000, "device": "cpu"}, env=ONE_THREAD)
    at_cancel = cancel_when(run, lambda p: p.get("stage") == "train")
    step = at_cancel["step"]
    assert f"cancelled inside training step {step + 1}" in run.log_tail(200), run.log_tail(60)
    last = run.progress()
    assert (last["stage"], last["step"]) == ("train", step)  # no step finished after the cancel
    state = json.loads((run.dir / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").read_text())
    assert state["global_step"] == step
