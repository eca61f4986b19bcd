"""Stage, step/total and ETA for a long action in a Gradio generator handler, instead of a spinner.

``Background(work, title, units)`` runs ``work(progress)`` in a thread of its own; iterating it
yields one Markdown status line whenever the stage changes, and at most every ``every_s``
seconds in between, then ``.result`` holds what ``work`` returned (its error is raised). The
ETA of a stage comes from that stage's own rate, so a fast stage never inherits a slow one's.
When the page goes away (the generator is closed) the work stops at its next progress report.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI builds its progress text without loading torch
    from workbench.steering.contrastive import StageProgress

POLL_S = 0.2


class _Stopped(Exception):
    """Raised inside the work when nobody follows it any more."""


class ProgressText:
    """One status line per report: ``**Fitting vectors** · activations: 16/64 texts (25 %) · 4 s · ETA 12 s``."""

    def __init__(self, title: str, units: dict[str, str], clock: Callable[[], float] = time.monotonic) -> None:
        self.title, self.units, self.clock = title, units, clock
        self.started = self.stage_started = clock()
        self.stage: str | None = None
        self.done = self.total = 0

    def update(self, stage: str, done: int, total: int) -> bool:
        """Record a report; True when it starts a new stage."""
        now = self.clock()
        new = stage != self.stage
        if new:
            self.stage, self.stage_started = stage, now if self.stage is not None else self.started
        self.done, self.total = done, total
        return new

    def eta_s(self) -> float | None:
        """Seconds left in this stage at its rate so far (None before the first step is done)."""
        spent = self.clock() - self.stage_started
        if not self.done or self.done >= self.total or spent <= 0:
            return None
        return (self.total - self.done) * spent / self.done

    def text(self) -> str:
        if self.stage is None:
            return f"**{self.title}** · starting…"
        percent = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        parts = [f"**{self.title}**", f"{self.stage}: {self.done}/{self.total} {self.units.get(self.stage, 'steps')}{percent}",
                 f"{self.clock() - self.started:.0f} s"]
        eta = self.eta_s()
        if eta is not None:
            parts.append(f"ETA {eta:.0f} s")
        return " · ".join(parts)


class Background:
    """Run ``work(progress)`` in a thread and yield its status lines; ``result`` once iteration ends."""

    def __init__(self, work: Callable[[StageProgress], Any], title: str, units: dict[str, str], every_s: float = 1.0) -> None:
        self.work, self.every_s = work, every_s
        self.status = ProgressText(title, units)
        self.result: Any = None

    def __iter__(self) -> Iterator[str]:
        reports: queue.Queue[tuple[str, int, int]] = queue.Queue()
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stop.is_set():
                raise _Stopped
            reports.put((stage, done, total))

        def run() -> None:
            try:
                outcome["result"] = self.work(progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the following thread, raised there
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"steering: {self.status.title}", daemon=True)
        thread.start()
        last = 0.0
        try:
            yield self.status.text()
            while thread.is_alive() or not reports.empty():
                try:
                    stage, done, total = reports.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if self.status.update(stage, done, total) or time.monotonic() - last >= self.every_s:
                    last = time.monotonic()
                    yield self.status.text()
        finally:
            stop.set()  # a closed generator (the page went away) stops the work at its next report
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        self.result = outcome["result"]
