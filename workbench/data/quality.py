"""Records that would import but are almost certainly mistakes, refused with a count.

Each kind in ``QUALITY_CHECKS`` (identical responses, unknown chat roles, repeated keys, …) is
refused unless the caller allows it, so one fix pass sees every problem of a file at once.
Every record is also walked once for nesting depth and text that is not valid Unicode.
"""
from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Collection
from pathlib import Path

from workbench.data.formats import KNOWN_ROLES, Record
from workbench.data.types import Pair, Prompt
from workbench.data.user_files import MAX_DEPTH, FileDataError, Loc, RecordError
from workbench.errors import ConfigError

QUALITY_CHECKS: dict[str, str] = {
    "empty": "prompt and both responses empty or whitespace",
    "identical": "the two responses are identical",
    "unknown-role": "a chat message role other than user, assistant, system or tool",
    "no-user-turn": "a chat prompt with no user turn",
    "duplicate-keys": "a key repeated within one JSON object or CSV header (only the last value would be kept)",
    "no-verdict": "an AlpacaEval preference of NaN (the judge gave no verdict; kept, it would import as unlabeled)",
}
"""Kinds of suspicious record refused by default; ``read_pairs(allow=[kind, …])`` keeps them."""


def _check_text(text: str, field: str | None) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise RecordError(
                f"holds a lone surrogate (\\u{ord(text[err.start]):04x}), which is not valid Unicode text.", field=field,
                hint="Re-export the file with a tool that writes valid UTF-8, or remove that character.",
            ) from None


def inspect_record(record: Record) -> tuple[str, ...]:
    """Walk the whole record once: refuse nesting deeper than MAX_DEPTH and text that is not
    valid Unicode (a lone surrogate from a ``\\ud800`` escape cannot be stored or hashed);
    return the keys some object inside it repeated."""
    repeated: list[str] = []
    stack: list[tuple[dict | list, int, str | None]] = [(record, 0, None)]
    while stack:
        value, depth, field = stack.pop()
        if depth >= MAX_DEPTH:
            raise RecordError(f"nests objects or lists more than {MAX_DEPTH} levels deep; refusing to read it.", field=field,
                              hint="Preference records need only a few levels; check that the file is not corrupt or hostile.")
        repeated.extend(getattr(value, "repeated", ()))
        for key, child in value.items() if isinstance(value, dict) else zip(itertools.repeat(field), value):
            where = field or key
            if isinstance(key, str):
                _check_text(key, where)
            if isinstance(child, str):
                _check_text(child, where)
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1, where))
    return tuple(repeated)


def _blank(prompt: Prompt) -> bool:
    if isinstance(prompt, str):
        return not prompt.strip()
    return all(not m["content"].strip() for m in prompt)


def _no_verdict(record: Record) -> bool:
    """AlpacaEval writes NaN where the judge's answer could not be parsed: a failed judgment,
    not a pair still to be judged, so it must not pass silently as unlabeled."""
    value = record.get("preference")
    if isinstance(value, bool) or not isinstance(value, (float, str)):
        return False
    try:
        return math.isnan(float(value))
    except ValueError:
        return False


def problems_of(pair: Pair, record: Record, format: str, repeated: tuple[str, ...]) -> list[tuple[str, str]]:
    """The QUALITY_CHECKS kinds this pair (read from ``record`` as ``format``) trips, each with
    a detail worth showing (or "")."""
    found: list[tuple[str, str]] = []
    if format == "alpacaeval" and _no_verdict(record):
        found.append(("no-verdict", ""))
    a, b = pair.response_a.strip(), pair.response_b.strip()
    if a == b:
        found.append(("identical" if a or not _blank(pair.prompt) else "empty", ""))
    if isinstance(pair.prompt, list):
        roles = {m["role"] for m in pair.prompt}
        found.extend(("unknown-role", role) for role in sorted(roles - KNOWN_ROLES))
        if "user" not in roles:
            found.append(("no-user-turn", ""))
    found.extend(("duplicate-keys", key) for key in repeated)
    return found


def quality_error(path: Path, problems: dict[str, list[Loc]], details: dict[str, set[str]], n_bad: int, total: int) -> FileDataError:
    """One error for every refused kind, with a count and the first places, so one fix pass suffices."""
    parts = []
    for kind, locs in problems.items():
        distinct = list(dict.fromkeys(loc.where() for loc in locs))  # in file order
        where = ", ".join(distinct[:5]) + (", …" if len(distinct) > 5 else "")
        shown = sorted(details.get(kind, ()))
        detail = f" ({', '.join(map(repr, shown[:5]))})" if shown else ""
        parts.append(f"{QUALITY_CHECKS[kind]}{detail}: {len(set(locs))} at {where}")
    kinds = list(problems)
    return FileDataError(
        f"{n_bad} of {total} records look like mistakes, so none were read — {'; '.join(parts)}.", path=path,
        hint=f"Fix or drop those records, or keep them as they are by allowing {', '.join(map(repr, kinds))} "
             f"(`workbench data import --allow {kinds[0]}`; read_pairs(allow=[{', '.join(map(repr, kinds))}]) in Python).",
        refused=tuple(kinds),
    )


def check_allow(allow: Collection[str]) -> frozenset[str]:
    unknown = [a for a in allow if a not in QUALITY_CHECKS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(QUALITY_CHECKS), n=1)
        raise ConfigError(f"Unknown kind to allow: {unknown[0]!r}.",
                          hint=(f"Did you mean {close[0]!r}? " if close else "") + f"Known: {', '.join(QUALITY_CHECKS)}.")
    return frozenset(allow)
