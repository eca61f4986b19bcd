"""The bridge from a Hugging Face/TRL trainer to a job: metrics, progress and cancel."""
from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

from workbench.jobs.context import JobContext


def _agree(flag: bool) -> bool:
    """All ranks stop at the same step: any rank's cancel counts for everyone."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())
    return flag


class JobCallback(TrainerCallback):
    """Rank 0 writes metrics.jsonl and progress.json; every rank polls the cancel marker."""

    def __init__(self, job: JobContext) -> None:
        self.job = job
        self.cancelled = False

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if state.is_world_process_zero and logs:
            self.job.log_metrics({"step": state.global_step, "epoch": state.epoch, **logs})

    def _poll_cancel(self, control: Any) -> None:
        if _agree(self.job.should_stop()):
            self.cancelled = True
            control.should_save = True  # the trainer writes checkpoint-<step> before stopping
            control.should_training_stop = True

    def on_substep_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Between gradient-accumulation micro-batches: a cancel is noticed within one micro-batch."""
        self._poll_cancel(control)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            self.job.progress(state.global_step, state.max_steps, stage="train")
        self._poll_cancel(control)
