"""Pair generation's typed steering option: refused in words before a run exists, absent means unsteered."""
from __future__ import annotations

import pytest

from workbench.errors import ConfigError
from workbench.jobs import JobManager
from workbench.labeling.generate import GENERATE_PAIRS, GeneratePairsConfig
from workbench.settings import Settings


def config(**steering: object) -> dict[str, object]:
    return {"dataset": "d", "prompts": ["Hi"], "sources": [{"name": "unsteered", "model": "m"},
                                                           {"name": "steered", "model": "m", "steering": [steering]}]}


def test_steering_entries_are_checked_before_a_run_exists(tmp_path) -> None:
    manager = JobManager(Settings(home=tmp_path / "home"), job_types={GENERATE_PAIRS.name: GENERATE_PAIRS})
    with pytest.raises(ConfigError, match=r"Source 2 \(steered\) has a steering entry without a 'vector'"):
        manager.submit(GENERATE_PAIRS.name, config(coefficient=2.0))
    with pytest.raises(ConfigError, match=r"coefficient must be at most 64"):
        manager.submit(GENERATE_PAIRS.name, config(vector="v", coefficient=100.0))
    with pytest.raises(ConfigError, match="No steering vector named 'v'"):
        manager.submit(GENERATE_PAIRS.name, config(vector="v", coefficient=2.0))
    assert not manager.runs_dir.exists() or list(manager.runs_dir.iterdir()) == []
    old = config(vector="v", coefficient=2.0)
    del old["sources"][1]["steering"]  # a config written before the option existed
    assert GeneratePairsConfig.from_dict(old).to_dict()["sources"][1]["steering"] == []
