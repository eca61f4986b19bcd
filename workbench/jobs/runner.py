"""Start, list, watch, cancel and resume jobs; each run is a child process plus a folder.

``JobManager.submit`` validates the config in this process (a bad config never becomes a
run), writes the run folder atomically, and starts ``python -m workbench.jobs.worker`` with
its output going to the run's log file. Everything else reads the folder, so any process
(the browser app after a reload, the CLI, a notebook) can reattach to a run by its id.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ConfigError
from workbench.files import atomic_path, atomic_write_text, is_temporary
from workbench.jobs import manifest as files
from workbench.jobs.manifest import ACTIVE, Manifest
from workbench.jobs.registry import JobType, add_job_type, collect_job_types
from workbench.settings import Settings

if TYPE_CHECKING:
    from workbench.jobs.config import JobConfig

# Children started by this process, so they are reaped and their exit codes known.
_CHILDREN: dict[int, subprocess.Popen] = {}


def pid_alive(pid: int) -> bool:
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie passes kill(pid, 0) but is gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _settings_dict(settings: Settings) -> dict[str, Any]:
    return {
        "home": str(settings.home), "model_roots": [str(p) for p in settings.model_roots],
        "data_roots": [str(p) for p in settings.data_roots], "allow_pickle": settings.allow_pickle,
        "trust_remote_code": settings.trust_remote_code, "device": settings.device, "dtype": settings.dtype,
    }


class Run:
    """A handle on one run folder; every property re-reads the files (cheap, always current)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.id = self.dir.name

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"

    @property
    def manifest(self) -> Manifest:
        """The manifest, marking the run failed if its process died without reporting."""
        m = files.read_manifest(self.dir)
        pid = m.pid if m.pid is not None else files.read_pid(self.dir)  # the worker may not have reported in yet
        if m.status in ACTIVE and pid is not None and not pid_alive(pid):
            m = files.read_manifest(self.dir)  # it may have finished between the two reads
            if m.status in ACTIVE:
                proc = _CHILDREN.get(pid)
                code = proc.returncode if proc is not None else None
                m.status, m.finished, m.exit_code, m.pid = "failed", time.time(), code, pid
                m.error = (f"The job process (pid {pid}) exited" + (f" with code {code}" if code is not None else "")
                           + " without reporting a result (killed, out of memory, or crashed). See the log tail.")
                files.write_manifest(self.dir, m)
        elif m.pid is None:
            m.pid = pid
        return m

    @property
    def status(self) -> str:
        return self.manifest.status

    @property
    def config(self) -> dict[str, Any]:
        return files.read_config(self.dir)

    @property
    def output_path(self) -> Path | None:
        m = self.manifest
        return self.dir / m.output if m.status == "finished" and m.output else None

    def progress(self) -> dict[str, Any]:
        """The job's last report, its ``eta_s`` counted down to now: between two reports (a slow
        batch) the ETA a reader shows keeps moving instead of standing still."""
        p = files.read_progress(self.dir)
        if p.get("eta_s") is not None and p.get("updated"):
            p["eta_s"] = max(0.0, p["eta_s"] - max(0.0, time.time() - p["updated"]))
        return p

    def metrics(self) -> list[dict[str, Any]]:
        return files.read_metrics(self.dir)

    def log_tail(self, lines: int = 40) -> str:
        return files.log_tail(self.dir, lines)

    def latest_checkpoint(self) -> Path | None:
        return files.latest_checkpoint(self.dir)

    def is_active(self) -> bool:
        return self.status in ACTIVE

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> Manifest:
        """Block until the run ends (or ``timeout`` seconds pass) and return its manifest."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            m = self.manifest
            if m.status not in ACTIVE:
                return m
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} still {m.status} after {timeout} s")
            time.sleep(poll)

    def cancel(self) -> None:
        """Ask the job to checkpoint and stop: a marker file plus SIGTERM to the worker."""
        m = self.manifest
        if m.status not in ACTIVE:
            raise ConfigError(f"Run {self.id} is {m.status}; only a queued or running run can be cancelled.")
        (self.dir / files.CANCEL).touch()
        if m.pid is not None and pid_alive(m.pid):
            try:
                os.kill(m.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def summary_row(self) -> dict[str, Any]:
        m, p = self.manifest, self.progress()
        return {
            "id": m.id, "type": m.type, "status": m.status, "attempts": m.attempts,
            "progress": f"{p.get('stage') or 'step'} {p['step']}/{p['total']}" if p.get("total") else "",
            "eta_s": round(p["eta_s"]) if p.get("eta_s") is not None and m.status == "running" else "",
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(m.created)),
            "output": m.output or "", "error": (m.error or "").splitlines()[0][:120] if m.error else "",
        }


class JobManager:
    """Submit and find runs under ``settings.runs_dir``; job types come from plugins."""

    def __init__(self, settings: Settings, *, plugins: Any | None = None, job_types: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.types: dict[str, JobType] = collect_job_types(plugins)
        for name, value in (job_types or {}).items():
            self.register(name, value)

    @classmethod
    def for_context(cls, ctx: Any) -> JobManager:
        return cls(ctx.settings, plugins=ctx.plugins)

    @property
    def runs_dir(self) -> Path:
        path = self.settings.runs_dir
        path.mkdir(parents=True, exist_ok=True)
        return path

    def register(self, name: str, job_type: Any) -> JobType:
        return add_job_type(self.types, name, job_type)

    def job_type(self, name: str) -> JobType:
        name = files.current_type(name)
        if name not in self.types:
            raise ConfigError(f"Unknown job type {name!r}.", hint=f"Known job types: {', '.join(sorted(self.types)) or 'none (is the plugin installed?)'}.")
        return self.types[name]

    # -- submitting ----------------------------------------------------------------------
    def submit(self, job_type: str, config: JobConfig | Mapping[str, Any], *, run_id: str | None = None,
               env: dict[str, str] | None = None) -> Run:
        """Validate, write the run folder (atomically) and start the worker.

        ``config`` is the job type's ``config_cls`` instance (what code builds) or a plain mapping
        (a YAML file, a form); both go through the same checks."""
        jt = self.job_type(job_type)
        job_type = jt.name  # the current name, even when a former one was given
        config = jt.normalise(_as_mapping(jt, config), self.settings)
        run_id = run_id or f"{job_type}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        final = self.runs_dir / run_id
        if final.exists():
            raise ConfigError(f"A run named {run_id!r} already exists in {self.runs_dir}.", hint="Choose another run id.")
        with atomic_path(final) as tmp:
            tmp.mkdir()
            files.write_config(tmp, config)
            files.write_manifest(tmp, Manifest(id=run_id, type=job_type, entry=jt.entry, options_cls=jt.options_entry,
                                               settings=_settings_dict(self.settings)))
        self._spawn(final, env)
        return Run(final)

    def _spawn(self, run_dir: Path, env: dict[str, str] | None) -> None:
        child_env = {**os.environ, **(env or {})}
        child_env["WORKBENCH_HOME"] = str(self.settings.home)
        if self.settings.database_url:  # through the environment, never the manifest (it may hold a password)
            child_env["WORKBENCH_DATABASE_URL"] = self.settings.database_url
        child_env["PYTHONUNBUFFERED"] = "1"
        # The worker imports the job function by module path: give it this process's import path.
        paths = [str(Path(p).resolve()) for p in sys.path if p and Path(p).exists()]
        extra = [p for p in (env or {}).get("PYTHONPATH", "").split(os.pathsep) if p]
        child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*extra, *paths]))
        with open(run_dir / files.LOG, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.jobs.worker", str(run_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=run_dir, env=child_env, start_new_session=True,  # Ctrl-C in the parent does not kill the job
            )
        _CHILDREN[proc.pid] = proc
        # A separate file, not the manifest: the worker may be writing the manifest already.
        atomic_write_text(run_dir / files.PID, str(proc.pid))

    # -- finding -------------------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        """Reattach to a run by id (or by a unique prefix of it)."""
        exact = self.runs_dir / run_id
        if (exact / files.MANIFEST).exists():
            return Run(exact)
        matches = [p for p in self.runs_dir.glob(f"{run_id}*") if (p / files.MANIFEST).exists()]
        if len(matches) == 1:
            return Run(matches[0])
        raise ConfigError(
            f"No run {run_id!r} in {self.runs_dir}" + (f" ({len(matches)} runs start with it)" if matches else "") + ".",
            hint="Run `workbench runs list` to see run ids.",
        )

    def runs(self, type: str | None = None) -> list[Run]:
        """All runs, newest first."""
        type = files.current_type(type)
        out = []
        for manifest in self.runs_dir.glob(f"*/{files.MANIFEST}"):
            if is_temporary(manifest.parent.name):
                continue
            run = Run(manifest.parent)
            try:
                m = run.manifest
            except (OSError, ValueError):
                continue
            if type is None or m.type == type:
                out.append((m.created, run))
        return [r for _, r in sorted(out, key=lambda t: t[0], reverse=True)]

    # -- control -------------------------------------------------------------------------
    def cancel(self, run_id: str) -> Run:
        run = self.get(run_id)
        run.cancel()
        return run

    def resume(self, run_id: str) -> Run:
        """Start a cancelled or failed run again; the job continues from its last checkpoint."""
        run = self.get(run_id)
        m = run.manifest
        if m.status in ACTIVE:
            raise ConfigError(f"Run {run.id} is still {m.status}.", hint="Wait for it to end, or cancel it first.")
        if m.status == "finished":
            raise ConfigError(f"Run {run.id} already finished.", hint="Submit a new run to train further.")
        (run.dir / files.CANCEL).unlink(missing_ok=True)
        (run.dir / files.PID).unlink(missing_ok=True)  # the old worker's pid must not mark the new attempt failed
        m.status, m.resume, m.pid, m.error, m.error_traceback = "queued", True, None, None, None
        if m.options_cls is None and m.type in self.types:  # a run made before manifests named their options class
            m.options_cls = self.types[m.type].options_entry
        files.write_manifest(run.dir, m)
        self._spawn(run.dir, None)
        return run


def _as_mapping(jt: JobType, config: JobConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A config object as the mapping ``normalise`` checks; the object must be of the job's own options class."""
    if isinstance(config, Mapping):
        return dict(config)
    if jt.config_cls is None or not isinstance(config, jt.config_cls):
        want = jt.config_cls.__name__ if jt.config_cls else "a mapping of options"
        raise ConfigError(f"Job type {jt.name!r} takes {want}, got a {type(config).__name__}.",
                          hint="Build the job type's own options class, or pass a mapping.")
    return config.to_dict()


def describe_failure(run: Run, lines: int = 20) -> str:
    """The error plus the log tail: what a user needs to see for a crashed run."""
    m = run.manifest
    return f"{m.error or 'no error recorded'}\n--- log tail ---\n{run.log_tail(lines)}"
