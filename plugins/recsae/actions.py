"""What the CLI and the view share: finding a RecSAE result (by run id or folder), the
summary numbers, the latent table and the rows behind a feature card. No UI imports.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import ConfigError, ModelError, SecurityError
from workbench.jobs import JobManager, Run
from workbench.jobs.manifest import MANIFEST
from workbench.settings import Settings

JOB_TYPE = "recsae"
OUTPUT = "recsae"  # the run's output folder name (workbench.sae.jobs.RECSAE_OUTPUT)
LM_JOB_TYPE = "lm-sae"
LM_OUTPUT = "lmsae"  # workbench.sae.jobs.LM_OUTPUT
RESULT_FILES = ("config.json", "concepts.json", "states.npz", "summary.json")
TABLE_COLUMNS = ["latent", "concept", "f1", "precision", "recall", "enrichment", "p_value", "frequency", "threshold", "max_activation"]
MIN_F1 = 0.5

# (label, summary key, format) of the numbers shown above the table and printed by the CLI.
SUMMARY_NUMBERS = (
    ("HR@10", "test_hr@10", "{:.3f}"),
    ("NDCG@10", "test_ndcg@10", "{:.3f}"),
    ("sampled HR@10", "test_sampled_hr@10", "{:.3f}"),  # the target among 99 sampled negatives
    ("popularity HR@10", "test_popularity_hr@10", "{:.3f}"),  # the baseline SASRec has to beat
    ("popularity sampled HR@10", "test_popularity_sampled_hr@10", "{:.3f}"),
    ("tied test items", "tied_test_items", "{:.0f}"),  # users whose held-out item shares its timestamp
    ("FVU", "sae_fvu", "{:.3f}"),
    ("L0", "sae_l0", "{:.1f}"),
    ("dead fraction", "sae_dead_fraction", "{:.1%}"),
)


def manager(settings: Settings) -> JobManager:
    """A job manager for finding runs (listing needs no job types, so no plugins are loaded)."""
    return JobManager(settings)


def recsae_runs(settings: Settings) -> list[Any]:
    """Every RecSAE run under the runs folder, newest first (any status)."""
    return manager(settings).runs(JOB_TYPE)


def lm_sae_runs(settings: Settings) -> list[Any]:
    """Every LM-SAE run under the runs folder, newest first (any status)."""
    return manager(settings).runs(LM_JOB_TYPE)


def lm_sae_folder(settings: Settings, run_id: str) -> tuple[Path, dict[str, Any]]:
    """A finished LM-SAE run's result folder and its config (the model and dataset it was trained on)."""
    run = manager(settings).get(run_id)
    return _finished_run_output(run, LM_JOB_TYPE), run.config


def run_label(run: Any) -> str:
    m = run.manifest
    return f"{m.id} · {m.status}"


def confine(settings: Settings, path: str | Path) -> Path:
    """A folder typed into the browser must lie under the runs folder or a data root."""
    resolved = Path(path).expanduser().resolve()
    roots = [r.expanduser().resolve() for r in (settings.runs_dir, *settings.all_data_roots())]
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise SecurityError(f"{resolved} is outside the runs folder and the data folders ({', '.join(map(str, roots))}).",
                            hint="Open a run from the list, or move the RecSAE folder under one of those folders.")
    return resolved


def _finished_run_output(run: Any, job_type: str = JOB_TYPE) -> Path:
    m = run.manifest
    if m.type != job_type:
        what = "a RecSAE" if job_type == JOB_TYPE else "an LM-SAE"
        raise ConfigError(f"Run {m.id} is a {m.type!r} run, not {what} run.", hint=f"Run `workbench runs list --type {job_type}`.")
    if m.status != "finished":
        p = run.progress()
        where = f" ({p.get('message') or 'progress'}, {p['fraction']:.0%} done)" if p.get("fraction") is not None else ""
        what = {"queued": "has not started yet", "running": "is still running" + where,
                "failed": "failed (" + (m.error or "no error recorded").splitlines()[0].rstrip(".") + ")",
                "cancelled": "was cancelled"}.get(m.status, f"is {m.status}")
        raise ModelError(f"Run {m.id} {what}, so its concept dictionary is not finished.",
                         hint="Wait for it to finish (`workbench runs show " + m.id + "`), or resume a cancelled or failed run "
                              "with `workbench runs resume " + m.id + "`.")
    return run.dir / (m.output or (OUTPUT if job_type == JOB_TYPE else LM_OUTPUT))


def result_folder(settings: Settings, ref: str | Path, *, confined: bool = False) -> Path:
    """The RecSAE result folder behind ``ref``: a run id (or unique prefix), a run folder, or
    the result folder itself. ``confined`` applies the browser's folder rule."""
    text = str(ref).strip()
    if not text:
        raise ConfigError("No run or folder given.", hint="Pick a RecSAE run, or give the path of its folder.")
    looks_like_path = any(sep in text for sep in ("/", "\\")) or text.startswith((".", "~"))
    path = Path(text).expanduser()
    if confined and looks_like_path:
        path = confine(settings, path)
    if looks_like_path or (not confined and path.is_dir()):
        if not path.is_dir():
            raise ModelError(f"{path} does not exist or is not a folder.", hint="Give a RecSAE run folder or its 'recsae' output folder.")
        if (path / MANIFEST).exists():  # a run folder
            return _finished_run_output(Run(path))
        missing = [n for n in RESULT_FILES if not (path / n).exists()]
        if missing:
            raise ModelError(f"{path} is not a finished RecSAE result (missing {', '.join(missing)}).",
                             hint="Give a finished run's folder (or its 'recsae' subfolder), or start one with `workbench sae recsae`.")
        return path
    return _finished_run_output(manager(settings).get(text))


def load_result(settings: Settings, ref: str | Path, *, confined: bool = False) -> Any:
    from workbench.sae.recsae import RecSAEResult  # imports torch and sae-lens: only when a result is opened

    return RecSAEResult.load(result_folder(settings, ref, confined=confined))


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def summary_numbers(result: Any, min_f1: float = MIN_F1) -> dict[str, float | int | None]:
    """The ``SUMMARY_NUMBERS`` of a run and the number of latents with F1 ≥ ``min_f1``."""
    out: dict[str, float | int | None] = {label: _num(result.summary.get(key)) for label, key, _ in SUMMARY_NUMBERS}
    out[f"latents with F1 ≥ {min_f1}"] = len(result.dictionary.confident(min_f1))
    return out


def format_value(label: str, value: Any) -> str:
    formats = {lbl: fmt for lbl, _, fmt in SUMMARY_NUMBERS}
    return "n/a" if value is None else formats.get(label, "{}").format(value)


def format_numbers(numbers: dict[str, Any]) -> str:
    return " · ".join(f"{label} {format_value(label, value)}" for label, value in numbers.items())


def latent_table(result: Any, *, only_concepts: bool = False) -> pd.DataFrame:
    """One row per latent, sorted by confidence (F1, then enrichment), rounded for display."""
    table = result.dictionary.table()
    table = table[[c for c in TABLE_COLUMNS if c in table.columns]]
    if only_concepts:
        table = table[table["concept"].notna()]
    table = table.assign(concept=table["concept"].fillna("—"))
    return table.reset_index(drop=True)


def top_sequences(result: Any, latent: int, *, last: int = 8) -> pd.DataFrame:
    """The latent's top-activating sequences: activation, user and the most recent item titles."""
    concept = result.dictionary.get(latent)
    rows = []
    for rank, row in enumerate(concept.top_sequences, 1):
        rows.append({"rank": rank, "activation": round(float(result.latents[row, latent]), 4),
                     "user": result.data.users[int(result.users[row])], "length": int(result.ends[row]),
                     "recent items (oldest → newest)": " → ".join(result.sequence_titles(row, last))})
    return pd.DataFrame(rows, columns=["rank", "activation", "user", "length", "recent items (oldest → newest)"])
