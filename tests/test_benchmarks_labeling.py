"""benchmarks/labeling.py's store part: every round of every contender is timed on real votes,
and the one-thread figure is the round's 10th-percentile vote, not its total."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import labeling  # noqa: E402


def test_votes_cpu_times_each_call_in_seconds() -> None:
    calls: list[str] = []
    cost = labeling.timer_cost_ns(200)
    times = labeling.votes_cpu(calls.append, ["a", "b", "c"], cost)
    assert calls == ["a", "b", "c"] and times.shape == (3,)
    assert 0 < cost < 100_000  # one reading of the CPU clock: well under 0.1 ms
    busy = labeling.votes_cpu(lambda _: sum(range(200_000)), ["x"] * 5, cost)
    assert 1e-4 < np.median(busy) < 1.0  # a ~ms CPU-bound call, read in seconds


def test_store_throughput_rounds(tmp_path: Path) -> None:
    rates, mean_rates, commit_ms = labeling.store_throughput(tmp_path, per_round=20, threads=2, rounds=3)
    assert list(rates) == ["ours_1_thread", "bare_sqlite_1_thread", "ours_2_threads", "bare_sqlite_2_threads"]
    assert list(mean_rates) == ["ours_1_thread", "bare_sqlite_1_thread"]
    for figures in (*rates.values(), *mean_rates.values()):
        assert len(figures) == 3 and all(math.isfinite(f) and f > 0 for f in figures)
    assert len(commit_ms) == 20
    # Ours does far more per vote than a bare insert (sessions, pair, annotator, lease): it cannot be faster.
    assert np.median(rates["ours_1_thread"]) < np.median(rates["bare_sqlite_1_thread"])
