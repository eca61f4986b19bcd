"""What a job function sees while it runs inside the worker process.

A job function is ``run(job: JobContext) -> str | None``: it reads its typed options as
``job.options`` (the job type's ``config_cls``, parsed once by the worker), loads
models with ``job.load_model`` (the app's own resolution path), reports through
``job.progress`` / ``job.log_metrics``, saves checkpoints under ``job.checkpoints_dir``,
polls ``job.should_stop()`` and returns the output folder relative to the run directory
(the model catalog lists it once the run is finished).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.files import atomic_write_text
from workbench.jobs import manifest as files
from workbench.settings import Settings

if TYPE_CHECKING:
    from workbench.models.loading import LoadedModel


class JobCancelled(Exception):
    """Raise from a job function after checkpointing, to end the run as 'cancelled'."""


_ACTIVE: JobContext | None = None  # the job this worker process runs (set by the worker only)


def activate(job: JobContext | None) -> None:
    """Make ``job`` the one whose cancel long library calls in this process poll (``cancel_requested``).

    Called by the worker (and a DPO rank) for the job it runs, so code below the job function
    (a 128-token ``generate`` of a batch, which no job loop can interrupt) stops at the next
    token instead of finishing the batch first: a cancel then takes a token, not a batch.
    """
    global _ACTIVE
    _ACTIVE = job


def cancel_requested() -> bool:
    """True when this process runs a job whose cancel was requested; False outside a job."""
    return _ACTIVE is not None and _ACTIVE.should_stop()


class JobContext:
    """Run directory, typed options and reporting helpers for one attempt of one run."""

    def __init__(self, run_dir: Path, options: Any, settings: Settings, *, resume: bool, run_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        """``options`` is the job type's ``JobConfig`` instance (the plain mapping for a job type
        without ``config_cls``); ``clock`` (seconds, wall time) stamps progress and metrics: a test
        passes its own to check ETAs."""
        self.run_dir = Path(run_dir)
        self.clock = clock
        self.run_id = run_id
        self.options = options
        self.settings = settings
        self.resume = resume
        self.log = logging.getLogger(f"workbench.job.{run_id}")
        self._t0 = clock()
        self._step0: int | None = None
        self._stage: str | None = None

    @property
    def checkpoints_dir(self) -> Path:
        path = self.run_dir / files.CHECKPOINTS
        path.mkdir(exist_ok=True)
        return path

    def latest_checkpoint(self) -> Path | None:
        """Where to resume from (None on a fresh run or when nothing was saved yet)."""
        return files.latest_checkpoint(self.run_dir)

    def should_stop(self) -> bool:
        """True once a cancel was requested (SIGTERM to the worker, or ``Run.cancel()``)."""
        return (self.run_dir / files.CANCEL).exists()

    def load_model(self, name_or_path: str | Path, *, device: str | None = None, dtype: str | None = None,
                   stop_inside: bool = True) -> LoadedModel:
        """A fresh copy of a model, resolved exactly as the app resolves it (catalog name, path,
        PEFT adapter with its base found by name), with the run's device, dtype and permissions.

        Fresh, not shared: the job owns it and may train or wrap it in place. With
        ``stop_inside`` (the default) a cancel stops its next forward pass at a block boundary
        (``stop_inside``); a rank of a multi-process run passes False, since ranks must stop together.
        """
        from workbench.models.resolve import load  # imports torch: only jobs that load a model pay for it

        if self.should_stop():  # a load (a first-use conversion, on a busy CPU) took 10 s that nobody waits for
            raise JobCancelled("before loading a model")
        lm = load(self.settings, name_or_path, device=device, dtype=dtype)
        if stop_inside:
            self.stop_inside(lm.adapter.layers(lm.model))
        return lm

    def stop_inside(self, blocks: Iterable[Any], *, backward: bool = False) -> None:
        """Raise ``JobCancelled`` when a block (a transformer layer) is entered after a cancel, in a
        forward pass and, with ``backward``, in a backward pass too.

        One forward of a batch of long texts, or a training step, took 30-90 s on a busy CPU, and
        a job's own loop looks for a cancel only between them (a DPO cancel took 94 s); a block
        takes a fraction of a second. The marker file is read at most every 50 ms.
        """
        last = [0.0, False]  # when the marker was last read, and what it said

        def check(*_: Any) -> None:
            now = time.monotonic()
            if now - last[0] > 0.05:
                last[0], last[1] = now, self.should_stop()
            if last[1]:
                raise JobCancelled("inside a forward or backward pass")

        for block in blocks:
            block.register_forward_pre_hook(check)
            if backward:
                block.register_full_backward_pre_hook(check)

    def progress(self, step: int, total: int, message: str = "", *, stage: str = "run") -> None:
        """Record progress with an ETA from this stage's own rate.

        A new ``stage`` (e.g. "sasrec", then "sae") restarts the rate, and so does a resumed
        attempt, which starts mid-way: a fast stage never inherits a slow one's ETA.
        """
        now = self.clock()
        if self._step0 is None or stage != self._stage:
            self._step0, self._t0, self._stage = step, now, stage
        done = step - self._step0
        rate = done / (now - self._t0) if done > 0 and now > self._t0 else None
        eta = (total - step) / rate if rate else None
        record = {"stage": stage, "step": step, "total": total, "fraction": step / total if total else None,
                  "eta_s": eta, "elapsed_s": now - self._t0, "message": message, "updated": now}
        atomic_write_text(self.run_dir / files.PROGRESS, json.dumps(record))

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one metrics row (JSON line, flushed at once so live plots see it)."""
        row = {"time": self.clock(), **row}
        with open(self.run_dir / files.METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, default=float) + "\n")

    def set_summary(self, **values: Any) -> None:
        """Final numbers to keep in the manifest (e.g. accuracy on held-out pairs)."""
        m = files.read_manifest(self.run_dir)
        m.summary.update(values)
        files.write_manifest(self.run_dir, m)
