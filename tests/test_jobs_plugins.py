"""The job worker loads the installed plugins as the app does: a plugin-added architecture loads inside a job."""
from __future__ import annotations

from test_plugins import make_family_distribution

from workbench.jobs import JobContext, JobManager, JobType
from workbench.settings import Settings


def family_job(job: JobContext) -> None:
    """Load the configured model in the worker and record which adapter family read it."""
    lm = job.load_model(job.options["model"], device="cpu")  # no config_cls: the options are the plain mapping
    job.set_summary(family=lm.adapter.family, n_layers=lm.n_layers)


def test_a_plugin_architecture_loads_inside_a_job(tiny_checkpoint, tmp_path, monkeypatch):
    opt = tiny_checkpoint("opt")  # a family the core has no adapter for
    monkeypatch.syspath_prepend(str(make_family_distribution(tmp_path / "dist")))  # the worker inherits sys.path
    settings = Settings(home=tmp_path / "home", model_roots=[opt.parent])
    manager = JobManager(settings, job_types={"family": JobType("family", family_job)})
    run = manager.submit("family", {"model": str(opt)})
    m = run.wait(timeout=120)
    assert m.status == "finished", run.log_tail()
    assert (m.summary["family"], m.summary["n_layers"]) == ("opt", 2)
    assert "plugin llamathief (llamathief) is left out" in run.log_tail(200)  # a broken plugin is named in the run's log
