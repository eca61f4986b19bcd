"""Background jobs: each run is a child process with its own folder under ``runs_dir``.

See docs/jobs.md. Submit with ``JobManager(settings).submit(type, config)``; reattach with
``JobManager.get(run_id)``; a job function receives a ``JobContext``.
"""
from workbench.jobs.context import JobCancelled, JobContext
from workbench.jobs.manifest import STATUSES, Manifest
from workbench.jobs.registry import JobType
from workbench.jobs.runner import JobManager, Run, describe_failure

__all__ = ["STATUSES", "JobCancelled", "JobContext", "JobManager", "JobType", "Manifest", "Run", "describe_failure"]
