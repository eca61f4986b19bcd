"""Read the preference formats people already have into canonical ``Pair``s.

Two independent axes: the *container* (``workbench.data.user_files``: JSONL, JSONL.gz, JSON,
CSV, Parquet, a ``datasets.save_to_disk`` folder, each opened as a possibly hostile file)
yields plain dict records with their location, and the *record format*
(``workbench.data.formats``: TRL, HH-RLHF, ShareGPT, AlpacaEval, unlabeled) turns one record
into a ``Pair``. The record format is detected from the fields of the first record and every
later record is checked against it, so a file that mixes shapes fails loudly instead of being
half-read. Records that look like mistakes (``workbench.data.quality``) are refused with a
count unless allowed. ``read_pairs`` returns every pair or raises a ``DataError``; never a
partial list. This module is the readers' public face: callers import from here.
"""
from __future__ import annotations

import difflib
from collections.abc import Collection
from pathlib import Path

from workbench.data.formats import (
    FORMATS,
    RecordFormat,
    alpacaeval_soft,
    classify,
    detect_format,
    missing_fields_error,
    record_format,
    transcript_messages,
)
from workbench.data.quality import QUALITY_CHECKS, check_allow, inspect_record, problems_of, quality_error
from workbench.data.types import Pair
from workbench.data.user_files import (
    MAX_FILE_BYTES,
    MAX_LINE_BYTES,
    FileDataError,
    Limits,
    Loc,
    RecordError,
    check_file,
    container_for,
    iter_records,
    read_user_text,
    type_name,
)

__all__ = ["FORMATS", "MAX_FILE_BYTES", "MAX_LINE_BYTES", "QUALITY_CHECKS", "FileDataError", "alpacaeval_soft", "classify",
           "detect_file_format", "detect_format", "read_pairs", "read_user_text", "record_format", "transcript_messages"]


def detect_file_format(path: str | Path) -> str:
    """The record format ``format="auto"`` picks for this file, from its first record (as ``read_pairs`` does)."""
    path = Path(path).expanduser()
    check_file(path)
    records = [record for _, record in iter_records(path, 1, Limits(MAX_LINE_BYTES, MAX_FILE_BYTES))]
    return detect_format(records, path)


def read_pairs(path: str | Path, format: str = "auto", limit: int | None = None, *,
               max_line_bytes: int | None = None, max_file_bytes: int | None = None,
               allow: Collection[str] = ()) -> list[Pair]:
    """Read every pair of ``path`` (or the first ``limit``), or raise a DataError saying what to fix.

    ``format`` is "auto" (detect from the first record's fields) or a name in ``FORMATS``.
    Pair ids come from an ``id`` column when there is one, else from the content; repeated
    content gets ``-2``, ``-3``… so ids stay unique within the file. Records that trip a
    ``QUALITY_CHECKS`` kind make the whole read fail with a count, unless ``allow`` names it.
    """
    path = Path(path).expanduser()
    allowed = check_allow(allow)
    if format != "auto" and format not in FORMATS:
        close = difflib.get_close_matches(format, list(FORMATS), n=1)
        raise FileDataError(f"Unknown format '{format}'.", path=path,
                        hint=(f"Did you mean '{close[0]}'? " if close else "") + f"Known formats: auto, {', '.join(FORMATS)}.")
    check_file(path)
    if limit is not None and limit < 0:
        raise FileDataError(f"limit must be zero or positive, got {limit}.", path=path)
    if limit == 0:
        return []

    container_for(path)  # fail on an unsupported file type before anything else
    fmt: RecordFormat | None = FORMATS[format] if format != "auto" else None
    first_loc: Loc | None = None
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    problems: dict[str, list[Loc]] = {}
    details: dict[str, set[str]] = {}
    n_bad = 0
    limits = Limits(max_line_bytes or MAX_LINE_BYTES, max_file_bytes or MAX_FILE_BYTES)
    for loc, record in iter_records(path, limit, limits):
        if not isinstance(record, dict):
            raise loc.error(f"is a JSON {type_name(record)}, not an object with named fields.", path,
                            hint="Each record must be an object such as {\"prompt\": …, \"chosen\": …, \"rejected\": …}.")
        try:
            repeated = inspect_record(record)
        except RecordError as err:
            raise loc.error(err.message, path, field=err.field, hint=err.hint) from None
        if format == "auto":
            name = classify(record)
            if name is None:
                raise missing_fields_error(record, fmt, path, loc)
            if fmt is None:
                fmt, first_loc = FORMATS[name], loc
            elif name != fmt.name:
                where = f"line {first_loc.line}" if first_loc and first_loc.line else "record 1"
                raise loc.error(
                    f"looks like format '{name}' while the file was detected as '{fmt.name}' from {where}; "
                    f"fields present: {', '.join(record)}.", path,
                    hint="Split the file by format, or fix this record's fields to match the rest.",
                )
        elif any(f not in record for f in fmt.required):
            raise missing_fields_error(record, fmt, path, loc)
        try:
            pair = fmt(record)
        except RecordError as err:
            raise loc.error(err.message, path, field=err.field,
                            hint=err.hint or f"Format '{fmt.name}' expects: {fmt.expected}.") from None
        refused = [(kind, detail) for kind, detail in problems_of(pair, record, fmt.name, repeated) if kind not in allowed]
        for kind, detail in refused:
            problems.setdefault(kind, []).append(loc)
            if detail:
                details.setdefault(kind, set()).add(detail)
        n_bad += bool(refused)
        if pair.id in seen:
            if record.get("id") not in (None, ""):
                raise loc.error(f"repeats id '{pair.id}' (first seen in record {seen[pair.id]}).", path, field="id",
                                hint="Ids must be unique within a dataset; fix the duplicate or drop the id column.")
            base, n = pair.id, 2
            while f"{base}-{n}" in seen:
                n += 1
            pair.id = f"{base}-{n}"
        seen[pair.id] = loc.index
        pairs.append(pair)
    if problems:
        raise quality_error(path, problems, details, n_bad, len(pairs))
    if not pairs:
        raise FileDataError("contains no records.", path=path, hint="Check that the file holds preference pairs.")
    return pairs
