"""Write pairs and judgments in the shapes trainers and analysts take.

TRL's DPO trainer wants ``prompt``/``chosen``/``rejected`` columns, either all plain text or
all conversational (prompt = messages, chosen/rejected = one assistant message each); a
file mixing the two does not even load as one Arrow table, so if any pair has a chat prompt
every row is written in conversational form. Only pairs with a winner can be trained on:
unlabeled and tied pairs are left out and counted in the returned report. The long table
keeps everything (one row per judgment, ties and disagreement included) for analysis.

Every write goes to a hidden temporary sibling first and is renamed into place, so a failure
leaves neither a half-written file nor a stray temporary behind.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.data.types import Judgment, Message, Outcome, Pair, Prompt
from workbench.errors import DataError
from workbench.files import atomic_path

EXPORT_FORMATS = {"trl-jsonl": ".jsonl", "trl-parquet": ".parquet", "hf-dataset": ""}  # name -> file suffix (a folder for hf-dataset)
LONG_TABLE_COLUMNS = (
    "pair_id", "prompt", "prompt_json", "response_a", "response_b", "annotator", "outcome", "strength",
    "aspects", "rationale", "displayed_order", "started_at", "submitted_at",
)


def _messages(prompt: Prompt) -> list[Message]:
    """TRL conversational prompt: a text prompt becomes one user turn; keys trimmed to role/content."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def _check_text(pair: Pair) -> None:
    """Trainers need text; catch a non-text field here rather than as an Arrow error mid-write."""
    texts: dict[str, Any] = {"response_a": pair.response_a, "response_b": pair.response_b}
    if isinstance(pair.prompt, list):
        for i, m in enumerate(pair.prompt):
            for key in ("role", "content"):
                texts[f"prompt[{i}].{key}"] = m.get(key) if isinstance(m, dict) else m
    else:
        texts["prompt"] = pair.prompt
    for name, value in texts.items():
        if not isinstance(value, str):
            raise DataError(f"Pair '{pair.id}' has a {type(value).__name__} where text is required.", field=name,
                            hint="Responses, prompts and message role/content must be strings.")


def trl_rows(pairs: Iterable[Pair]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The DPO rows for ``pairs`` plus a report: counts written and skipped per reason."""
    pairs = list(pairs)
    labelled = [p for p in pairs if p.preferred in ("A", "B")]
    skipped = Counter("unlabeled" if p.preferred is None else str(p.preferred) for p in pairs if p.preferred not in ("A", "B"))
    conversational = any(isinstance(p.prompt, list) for p in labelled)
    rows = []
    for p in labelled:
        _check_text(p)
        if conversational:
            row = {"prompt": _messages(p.prompt),
                   "chosen": [{"role": "assistant", "content": p.chosen}],
                   "rejected": [{"role": "assistant", "content": p.rejected}]}
        else:
            row = {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        row["id"] = p.id
        rows.append(row)
    report = {"written": len(rows), "skipped": dict(skipped), "conversational": conversational}
    return rows, report


def write_trl_rows(rows: list[dict[str, Any]], path: Path, format: str) -> None:
    """Write TRL DPO rows as JSONL, Parquet or a ``save_to_disk`` folder, all or nothing."""
    with atomic_path(path) as tmp:
        if format == "trl-jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif format == "trl-parquet":
            import pyarrow as pa  # pyarrow: only in write_trl_rows()
            import pyarrow.parquet as pq  # pyarrow: only in write_trl_rows()

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        else:
            import datasets  # datasets: only in write_trl_rows()

            datasets.Dataset.from_list(rows).save_to_disk(str(tmp))


def export_pairs(pairs: Iterable[Pair], path: str | Path, format: str) -> dict[str, Any]:
    """Write labelled pairs as TRL DPO data (``trl-jsonl``, ``trl-parquet`` or ``hf-dataset`` folder).

    Columns: prompt, chosen, rejected, and id (ignored by TRL, kept so a round trip keeps ids).
    Returns ``{"path", "format", "written", "skipped": {reason: n}, "conversational"}``.
    """
    path = Path(path).expanduser()
    if format not in EXPORT_FORMATS:
        raise DataError(f"Unknown export format '{format}'.", path=path, hint=f"Choose one of: {', '.join(EXPORT_FORMATS)}.")
    rows, report = trl_rows(pairs)
    if not rows:
        counts = ", ".join(f"{n} {reason}" for reason, n in report["skipped"].items()) or "no pairs at all"
        raise DataError(f"Nothing to export: no pair has a winner ({counts}).", path=path,
                        hint="Label some pairs A or B first; ties and unlabeled pairs cannot be used for DPO.")
    write_trl_rows(rows, path, format)
    return {"path": str(path), "format": format, **report}


def long_table_rows(judgments: Iterable[Judgment], pairs: Iterable[Pair]) -> list[dict[str, Any]]:
    """One row per judgment, joined with its pair's content; raises on a judgment of an unknown pair."""
    by_id = {p.id: p for p in pairs}
    rows = []
    for i, j in enumerate(judgments, start=1):
        pair = by_id.get(j.pair_id)
        if pair is None:
            raise DataError(f"Judgment {i} (annotator '{j.annotator}') refers to pair '{j.pair_id}', which is not among "
                            f"the {len(by_id)} pairs given.", hint="Pass the pairs of the dataset these judgments belong to.")
        try:
            outcome = Outcome(j.outcome).value
        except ValueError:
            raise DataError(f"Judgment {i} has outcome {j.outcome!r}.",
                            hint=f"Outcomes are: {', '.join(o.value for o in Outcome)}.") from None
        rows.append({
            "pair_id": pair.id, "prompt": pair.prompt_text, "prompt_json": json.dumps(pair.prompt, ensure_ascii=False),
            "response_a": pair.response_a, "response_b": pair.response_b, "annotator": j.annotator,
            "outcome": outcome, "strength": j.strength, "aspects": json.dumps(j.aspects, ensure_ascii=False, sort_keys=True),
            "rationale": j.rationale, "displayed_order": j.displayed_order,
            "started_at": j.started_at, "submitted_at": j.submitted_at,
        })
    return rows


def export_long_table(judgments: Iterable[Judgment], pairs: Iterable[Pair], path: str | Path) -> int:
    """Write every judgment as one row (CSV or Parquet, by suffix); returns the number of rows.

    Columns: ``LONG_TABLE_COLUMNS``; ``aspects`` and ``prompt_json`` are JSON text, times are
    Unix seconds. Nothing is aggregated, so ties, skips and disagreement stay visible.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"Unsupported long-table file type '{path.suffix or '(none)'}'.", path=path,
                        hint="Name the file *.csv or *.parquet.")
    rows = long_table_rows(judgments, pairs)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=LONG_TABLE_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        else:
            import pyarrow as pa  # pyarrow: only in export_long_table()
            import pyarrow.parquet as pq  # pyarrow: only in export_long_table()

            schema = pa.schema([(c, pa.int64() if c == "strength" else pa.float64() if c.endswith("_at") else pa.string())
                                for c in LONG_TABLE_COLUMNS])
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return len(rows)
