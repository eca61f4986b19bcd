"""DPO's before/after report shows k of n pairs as it goes and stops at a cancel within a batch
(issue 21 §4: a cancel in the evaluate stage took 42 s, and its ETA stood still for minutes)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.jobs import JobManager
from workbench.settings import Settings
from workbench.training.dpo import DPO_JOB

PAIRS = 400  # half held out: 200 pairs, 800 scored sequences per model at one per batch


def test_evaluate_reports_pairs_and_stops_within_a_batch(tiny_checkpoint, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Describe thing {i}.", "chosen": f"Thing {i} is fine.",
                                        "rejected": "I cannot answer that."}) + "\n" for i in range(PAIRS)), encoding="utf-8")
    manager = JobManager(Settings(home=tmp_path / "home"), job_types={"dpo": DPO_JOB})
    run = manager.submit("dpo", {"model": str(tiny_checkpoint("llama")), "dataset": str(data), "max_steps": 1, "batch_size": 1,
                                 "max_length": 64, "held_out_fraction": 0.5, "eval_batch_size": 1, "eval_max_pairs": 200,
                                 "n_samples": 0, "device": "cpu"}, env={"OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    seen: list[dict] = []
    while not (seen and seen[-1].get("stage") == "evaluate" and seen[-1]["step"] >= 2):
        assert run.is_active() and time.monotonic() < deadline, run.log_tail(60)
        seen.append(run.progress())
        time.sleep(0.02)
    at_cancel = run.progress()
    run.cancel()
    m = run.wait(120)
    assert m.status == "cancelled", run.log_tail(60)
    last = run.progress()
    # Progress in pairs (each scored before and after), with a message a person reads, and an ETA once it has a rate.
    assert at_cancel["total"] == 400 and at_cancel["message"] == f"{at_cancel['step']} of 400 pairs scored before/after"
    assert at_cancel["eta_s"] is not None
    # Stopped within a batch of the cancel: one pair is 4 one-row batches, a few more pairs at most, never the rest of the set.
    assert last["stage"] == "evaluate" and last["step"] <= at_cancel["step"] + 5, (at_cancel, last)
