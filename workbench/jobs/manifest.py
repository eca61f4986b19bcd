"""The run directory and its manifest: the one place a run's state lives on disk.

Every reader (CLI, browser, notebook, model catalog) reads these files, so a run survives a
browser reload or a restart of the app: reattaching is reading the folder again.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.files import atomic_write_text

STATUSES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
LOG = "log.txt"
METRICS = "metrics.jsonl"
PROGRESS = "progress.json"
CHECKPOINTS = "checkpoints"
CANCEL = "cancel"
PID = "worker.pid"
RENAMED_TYPES = {"labeling.generate-pairs": "generate-pairs"}  # former job-type name → its name now


def current_type(name: str | None) -> str | None:
    """A job type's name now: run folders, filters and scripts written before a rename keep working."""
    return RENAMED_TYPES.get(name, name) if name else name


@dataclass
class Manifest:
    """What a run is and where it stands; ``output`` is relative to the run directory."""

    id: str
    type: str
    entry: str  # "module:function" the worker imports
    options_cls: str | None = None  # "module:Class" of the job's typed options (JobType.config_cls); None: a plain mapping
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    pid: int | None = None
    attempts: int = 0
    resume: bool = False
    output: str | None = None
    error: str | None = None
    error_traceback: str | None = None
    exit_code: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        # Job types renamed since: a run folder written under the old name still lists, filters and resumes.
        known["type"] = current_type(known.get("type"))
        return cls(**known)


def read_manifest(run_dir: Path) -> Manifest:
    return Manifest.from_dict(json.loads((run_dir / MANIFEST).read_text(encoding="utf-8")))


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    atomic_write_text(run_dir / MANIFEST, json.dumps(asdict(manifest), indent=1, default=str))


def read_pid(run_dir: Path) -> int | None:
    """The pid the runner started (written before the worker reports in)."""
    try:
        return int((run_dir / PID).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_config(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8")) or {}


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All metric rows; a line still being written (no newline yet) is skipped."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_progress(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def log_tail(run_dir: Path, lines: int = 40) -> str:
    """The last lines of the run's log (read from the end, so a huge log is cheap)."""
    path = run_dir / LOG
    if not path.exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest-numbered complete ``checkpoints/checkpoint-<step>`` folder, if any."""
    folder = run_dir / CHECKPOINTS
    if not folder.exists():
        return None
    done = []
    for p in folder.glob("checkpoint-*"):
        step = p.name.rsplit("-", 1)[-1]
        if p.is_dir() and step.isdigit() and not (p / ".incomplete").exists():
            done.append((int(step), p))
    return max(done)[1] if done else None
