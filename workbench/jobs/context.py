"""What a job function sees while it runs inside the worker process.

A job function is ``run(job: JobContext) -> str | None``: it reads ``job.config``, reports
through ``job.progress`` / ``job.log_metrics``, saves checkpoints under
``job.checkpoints_dir``, polls ``job.should_stop()`` and returns the output folder relative
to the run directory (the model catalog lists it once the run is finished).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from workbench.jobs import manifest as files
from workbench.settings import Settings


class JobCancelled(Exception):
    """Raise from a job function after checkpointing, to end the run as 'cancelled'."""


class JobContext:
    """Run directory, config and reporting helpers for one attempt of one run."""

    def __init__(self, run_dir: Path, config: dict[str, Any], settings: Settings, *, resume: bool, run_id: str) -> None:
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.config = config
        self.settings = settings
        self.resume = resume
        self.log = logging.getLogger(f"workbench.job.{run_id}")
        self._t0 = time.time()
        self._step0: int | None = None

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

    def progress(self, step: int, total: int, message: str = "") -> None:
        """Record progress with an ETA from this attempt's own rate (a resumed run starts mid-way)."""
        now = time.time()
        if self._step0 is None:
            self._step0, self._t0 = step, now
        done = step - self._step0
        rate = done / (now - self._t0) if done > 0 and now > self._t0 else None
        eta = (total - step) / rate if rate else None
        record = {"step": step, "total": total, "fraction": step / total if total else None,
                  "eta_s": eta, "elapsed_s": now - self._t0, "message": message, "updated": now}
        files.atomic_write_text(self.run_dir / files.PROGRESS, json.dumps(record))

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one metrics row (JSON line, flushed at once so live plots see it)."""
        row = {"time": time.time(), **row}
        with open(self.run_dir / files.METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, default=float) + "\n")

    def set_summary(self, **values: Any) -> None:
        """Final numbers to keep in the manifest (e.g. accuracy on held-out pairs)."""
        m = files.read_manifest(self.run_dir)
        m.summary.update(values)
        files.write_manifest(self.run_dir, m)
