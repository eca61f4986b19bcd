"""The job runner with a real worker process: finish, fail, crash, cancel, resume, reattach."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from workbench.errors import ConfigError
from workbench.jobs import JobCancelled, JobContext, JobManager, JobType
from workbench.jobs import manifest as files
from workbench.settings import Settings


def counting_job(job: JobContext) -> str:
    """Counts to config['steps'], checkpointing every step; resumes from the last checkpoint.

    Its job type has no config_cls, so ``job.options`` is the validated mapping itself."""
    cfg = job.options
    start = 0
    if job.resume and (ckpt := job.latest_checkpoint()):
        start = json.loads((ckpt / "state.json").read_text())["step"]
        job.log.info("resuming from %s", ckpt.name)
    for step in range(start + 1, cfg["steps"] + 1):
        time.sleep(cfg.get("sleep", 0))
        if step == cfg.get("fail_at"):
            raise ValueError(f"planted failure at step {step}")
        if step == cfg.get("crash_at"):
            os._exit(3)
        ckpt = job.checkpoints_dir / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "state.json").write_text(json.dumps({"step": step}))
        job.log_metrics({"step": step, "attempt_start": start})
        job.progress(step, cfg["steps"])
        if job.should_stop():
            raise JobCancelled
    out = job.run_dir / "result"
    out.mkdir()
    (out / "count.txt").write_text(str(cfg["steps"]))
    job.set_summary(count=cfg["steps"])
    return "result"


def validate_counting(config: dict, settings: Settings) -> dict:
    if config.get("steps", 0) < 1:
        raise ConfigError("steps must be at least 1", hint="Set steps: 3 or more.")
    return {"sleep": 0.0, **config}


@pytest.fixture
def manager(tmp_path):
    return JobManager(Settings(home=tmp_path / "home"), job_types={"count": JobType("count", counting_job, validate_counting)})


def _wait_for_step(run, step, timeout=30):
    deadline = time.monotonic() + timeout
    while (run.progress().get("step") or 0) < step:
        assert run.is_active(), run.log_tail()
        assert time.monotonic() < deadline, "job made no progress"
        time.sleep(0.05)


def test_run_finishes_with_files_and_output(manager):
    run = manager.submit("count", {"steps": 3})
    m = run.wait(60)
    assert m.status == "finished", run.log_tail()
    assert m.output == "result" and (run.output_path / "count.txt").read_text() == "3"
    assert m.summary == {"count": 3} and m.attempts == 1
    assert [r["step"] for r in run.metrics()] == [1, 2, 3]
    assert run.progress()["fraction"] == 1.0
    assert run.config == {"sleep": 0.0, "steps": 3}
    assert "attempt 1" in run.log_tail() and "finished" in run.log_tail()
    assert {p.name for p in run.dir.iterdir()} >= {"manifest.json", "config.yaml", "log.txt", "metrics.jsonl", "progress.json", "checkpoints", "result"}


def test_cancel_then_resume_continues_from_checkpoint(manager):
    run = manager.submit("count", {"steps": 400, "sleep": 0.02})
    _wait_for_step(run, 3)
    manager.cancel(run.id)
    m = run.wait(30)
    assert m.status == "cancelled"
    stopped_at = int(run.latest_checkpoint().name.split("-")[1])
    assert 3 <= stopped_at < 400
    with pytest.raises(ConfigError, match="cancelled"):
        run.cancel()
    # Reattach from a fresh manager, as the browser would after a reload.
    again = JobManager(manager.settings, job_types=manager.types)
    resumed = again.resume(run.id)
    assert resumed.wait(60).status == "finished", resumed.log_tail()
    rows = resumed.metrics()
    second = [r for r in rows if r["attempt_start"] > 0]
    assert second[0]["attempt_start"] == stopped_at and second[0]["step"] == stopped_at + 1
    assert [r["step"] for r in rows] == list(range(1, 401))
    assert resumed.manifest.attempts == 2 and "resuming from checkpoint-" in resumed.log_tail(400)


def test_sigterm_to_worker_is_a_graceful_cancel(manager):
    run = manager.submit("count", {"steps": 400, "sleep": 0.02})
    _wait_for_step(run, 2)
    os.kill(run.manifest.pid, signal.SIGTERM)
    assert run.wait(30).status == "cancelled"
    assert run.latest_checkpoint() is not None and "received signal" in run.log_tail()


def test_failing_job_keeps_error_and_log_tail(manager):
    run = manager.submit("count", {"steps": 5, "fail_at": 2})
    m = run.wait(60)
    assert m.status == "failed" and m.exit_code == 1
    assert "planted failure at step 2" in m.error and "Traceback" in m.error_traceback
    assert "planted failure" in run.log_tail()
    assert run.output_path is None


def test_crashed_process_is_detected_from_a_fresh_manager(manager):
    run = manager.submit("count", {"steps": 5, "crash_at": 2})
    m = run.wait(60)
    assert m.status == "failed" and m.exit_code == 3
    assert "without reporting a result" in m.error
    listed = JobManager(manager.settings).runs()
    assert [r.id for r in listed] == [run.id] and listed[0].status == "failed"
    assert manager.get(run.id[:12]).id == run.id


def test_bad_submissions_fail_before_a_run_exists(manager):
    with pytest.raises(ConfigError, match="Unknown job type 'nope'"):
        manager.submit("nope", {})
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        manager.submit("count", {"steps": 0})
    with pytest.raises(ConfigError, match="cannot be imported"):
        _ = manager.register("lam", lambda job: None).entry
    with pytest.raises(ConfigError, match="No run 'missing'"):
        manager.get("missing")
    assert list(manager.runs_dir.iterdir()) == []


def test_eta_counts_down_and_warnings_show(tmp_path):
    """A stage whose batches are slow reports rarely; the ETA a reader sees still moves (issue 21 §4)."""
    from workbench.jobs.runner import Run

    ctx = JobContext(tmp_path, {}, Settings(home=tmp_path / "home"), resume=False, run_id=tmp_path.name)
    ctx.progress(0, 10, stage="evaluate")
    time.sleep(0.2)
    ctx.progress(1, 10, stage="evaluate")  # 1 step in ~0.2 s: ETA ~1.8 s
    first = Run(tmp_path).progress()["eta_s"]
    time.sleep(0.5)
    later = Run(tmp_path).progress()["eta_s"]
    assert 0 < later <= first - 0.45, (first, later)
    time.sleep(first)
    assert Run(tmp_path).progress()["eta_s"] == 0.0  # overdue: never negative
    # A finished run's warnings (e.g. a recommender below popularity) are in the status every tab shows.
    from workbench.app.job_ui import status_markdown
    from workbench.jobs.manifest import Manifest, write_manifest

    write_manifest(tmp_path, Manifest(id=tmp_path.name, type="recsae", entry="m:f", status="finished",
                                      summary={"warnings": ["The recommender does not beat popularity."]}))
    assert "Warning:** The recommender does not beat popularity." in status_markdown(Run(tmp_path))


def test_a_run_of_a_renamed_job_type_lists_and_filters_under_its_new_name(manager):
    run = manager.submit("count", {"steps": 1})
    run.wait(timeout=60)
    m = json.loads((run.dir / files.MANIFEST).read_text())
    m["type"] = "labeling.generate-pairs"  # what a run folder made before the rename holds
    (run.dir / files.MANIFEST).write_text(json.dumps(m))
    assert run.manifest.type == "generate-pairs"
    assert [r.id for r in manager.runs(type="generate-pairs")] == [run.id] and not manager.runs(type="count")
