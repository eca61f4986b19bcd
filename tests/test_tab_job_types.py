"""Each tab lists and controls its own job types (issue 21 §4): the Fine-tune tab listed pair-generation
runs and its Cancel acted on them. Real worker processes; the job types are declared by plugin name
(``JobType.plugin``), as the plugin hooks declare them."""
from __future__ import annotations

import pytest
from test_jobs import _wait_for_step, counting_job, validate_counting

from workbench.app import job_ui
from workbench.context import AppContext
from workbench.errors import ConfigError
from workbench.jobs import JobManager, JobType
from workbench.settings import Settings


@pytest.fixture
def setup(tmp_path):
    settings = Settings(home=tmp_path / "home")
    manager = JobManager(settings, job_types={
        "train": JobType("train", counting_job, validate_counting, plugin="finetune"),
        "pairs": JobType("pairs", counting_job, validate_counting, plugin="labeling")})
    return AppContext(settings), manager


def test_a_tab_lists_and_cancels_only_its_own_runs(setup) -> None:
    ctx, manager = setup
    own = job_ui.plugin_job_types(manager, "finetune")
    assert own == ("train",)
    other = manager.submit("pairs", {"steps": 10_000, "sleep": 0.05})
    try:
        mine = manager.submit("train", {"steps": 1})
        assert mine.wait(60).status == "finished", mine.log_tail()
        _wait_for_step(other, 1)
        table, dropdown = job_ui.run_list(manager, None, own)
        assert [row[0] for row in table] == [mine.id]
        assert [c[0] for c in dropdown.choices] == [mine.id] and dropdown.value == mine.id
        with pytest.raises(ConfigError, match=rf"Run {other.id} is a pairs run; this tab controls only train runs"):
            job_ui.control(ctx, manager, None, "cancel", other.id, own)
        assert other.manifest.status == "running"  # the refused Cancel did not touch it
        # The Runs tab (no types) lists and controls every run.
        assert {row[0] for row in job_ui.runs_table(manager)} == {mine.id, other.id}
        assert "Cancel requested" in job_ui.control(ctx, manager, None, "cancel", other.id)
    finally:
        if other.is_active():
            manager.cancel(other.id)
        other.wait(60)
