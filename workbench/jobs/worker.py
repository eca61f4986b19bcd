"""The child process that runs one job: ``python -m workbench.jobs.worker <run_dir>``.

Its stdout/stderr are the run's log file (opened by the parent), so nothing blocks on an
unread pipe. It owns the manifest while it runs: running → finished | failed | cancelled.
SIGTERM/SIGINT only request a cancel; the job function checkpoints and returns. It loads
the installed plugins as the app does, so a model of a plugin-added family loads in a job.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.jobs import manifest as files
from workbench.jobs.context import JobCancelled, JobContext, activate
from workbench.jobs.registry import collect_job_types
from workbench.plugins import PluginHost
from workbench.settings import Settings


def import_entry(entry: str) -> Any:
    """Resolve ``"package.module:function"``."""
    module, _, name = entry.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def settings_from(data: dict[str, Any]) -> Settings:
    data = dict(data)
    for key in ("model_roots", "data_roots"):
        data[key] = [Path(p) for p in data.get(key, [])]
    return Settings(**data)


def job_context(run_dir: Path, m: files.Manifest) -> JobContext:
    """The context a job function (or a rank of a multi-process job) gets: its config.yaml parsed
    once, here, into the job type's typed options (``m.options_cls``), so no job re-parses it."""
    raw = files.read_config(run_dir)
    try:
        options = import_entry(m.options_cls).from_dict(raw) if m.options_cls else raw
    except ConfigError as exc:  # an older version's value, or a hand edit: name the file it is in
        raise ConfigError(f"{run_dir / files.CONFIG}: {exc.message}",
                          hint=exc.hint or "Edit that file, or start a new run with valid options.") from None
    return JobContext(run_dir, options, settings_from(m.settings), resume=m.resume, run_id=m.id)


def _request_cancel(run_dir: Path) -> None:
    def handler(signum: int, frame: Any) -> None:
        (run_dir / files.CANCEL).touch()
        logging.getLogger("workbench.jobs").warning("received signal %d: cancelling after the current step", signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(run_dir: Path) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    log = logging.getLogger("workbench.jobs")
    m = files.read_manifest(run_dir)
    m.status, m.started, m.finished, m.pid = "running", time.time(), None, os.getpid()
    m.attempts += 1
    m.error = m.error_traceback = m.exit_code = None
    files.write_manifest(run_dir, m)
    _request_cancel(run_dir)
    log.info("run %s (%s) attempt %d%s", m.id, m.type, m.attempts, " (resume)" if m.resume else "")
    # The same plugins as the app: their architecture families and job types exist here too.
    host = PluginHost()
    for info in host.infos:
        if info.status != "ok":
            log.warning("plugin %s (%s) is left out: %s", info.name, info.module, info.error)
    if m.options_cls is None:  # a run made before manifests named their options class, resumed by any manager
        job_type = collect_job_types(host).get(m.type)
        if job_type is not None and job_type.options_entry:
            m.options_cls = job_type.options_entry
            files.write_manifest(run_dir, m)  # a multi-process job's ranks read it from here
    output, error, tb, status = None, None, None, "finished"
    try:
        ctx = job_context(run_dir, m)  # a config.yaml edited by hand into a bad one fails the run, naming the option
        activate(ctx)  # a generate() deep in the job stops at the next token once this run is cancelled
        job = import_entry(m.entry)  # its imports (torch, transformers) take seconds: a cancel may come meanwhile
        if ctx.should_stop():
            raise JobCancelled("before the job started")
        output = job(ctx)
        if ctx.should_stop():
            status = "cancelled"
        elif output is not None and not (run_dir / output).exists():
            raise RuntimeError(f"the job returned output {output!r} but {run_dir / output} does not exist")
    except JobCancelled as exc:
        status = "cancelled"
        if str(exc):  # where the job stopped, e.g. "after 3 of 128 new tokens"
            log.info("cancel noticed %s", exc)
    except BaseException as exc:  # the run records every failure, then the process exits non-zero
        status, tb = "failed", traceback.format_exc()
        error = str(exc) if getattr(exc, "message", None) else f"{type(exc).__name__}: {exc}"
        log.error("run failed:\n%s", tb)
    m = files.read_manifest(run_dir)  # the job may have added a summary
    m.status, m.finished, m.error, m.error_traceback = status, time.time(), error, tb
    m.exit_code = 0 if status != "failed" else 1
    if status == "finished":
        m.output = output
    log.info("run %s %s", m.id, status)  # before the manifest: a reader that sees the status also sees this line
    files.write_manifest(run_dir, m)
    return m.exit_code


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
