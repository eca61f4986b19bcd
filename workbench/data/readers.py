"""Read the preference formats people already have into canonical ``Pair``s.

Two independent axes: the *container* (JSONL, JSONL.gz, JSON, CSV, Parquet, a
``datasets.save_to_disk`` folder) yields plain dict records with their location, and the
*record format* (TRL, HH-RLHF, ShareGPT, AlpacaEval, unlabeled) turns one record into a
``Pair``. The record format is detected from the fields of the first record and every later
record is checked against it, so a file that mixes shapes fails loudly instead of being
half-read. ``read_pairs`` returns every pair or raises a ``DataError``; never a partial list.

Hostile or careless files get one clear error each: only regular files (and dataset folders)
are opened, whole-file formats (.json, .csv) have a size cap, nesting depth is bounded and
text must be valid Unicode. Records that would import but are almost certainly mistakes
(``QUALITY_CHECKS``: identical responses, unknown chat roles, repeated keys, …) are refused
with a count unless the caller allows that kind.

A new record format is one function registered with ``@record_format(...)``.
"""
from __future__ import annotations

import csv
import datetime as _dt
import decimal
import difflib
import errno
import gzip
import io
import itertools
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.data.types import Message, Pair, Prompt
from workbench.errors import ConfigError, DataError

MAX_LINE_BYTES = 10 * 1024 * 1024
"""Longest JSONL line / CSV field accepted; longer ones are almost always a broken file."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest .json / .csv file accepted: those are read whole (JSONL is streamed, so has no cap)."""
MAX_DEPTH = 100
"""Deepest nesting of objects/lists accepted in a record; real preference records use under 10."""

QUALITY_CHECKS: dict[str, str] = {
    "empty": "prompt and both responses empty or whitespace",
    "identical": "the two responses are identical",
    "unknown-role": "a chat message role other than user, assistant, system or tool",
    "no-user-turn": "a chat prompt with no user turn",
    "duplicate-keys": "a key repeated within one JSON object or CSV header (only the last value would be kept)",
}
"""Kinds of suspicious record refused by default; ``read_pairs(allow=[kind, …])`` keeps them."""

Record = dict[str, Any]


class RecordError(Exception):
    """Raised by a converter; ``read_pairs`` adds the file and line and turns it into a DataError."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint


class FileDataError(DataError):
    """Every error the readers raise: a DataError that can name the file as its user knows it.

    The readers name the path they opened; a front end that opened a copy (the browser upload)
    or resolved a relative path calls ``shown_as`` to name the file the user picked or typed.
    ``refused`` lists the ``QUALITY_CHECKS`` kinds of a "looks like mistakes" error, so a front
    end can say how its own controls keep them.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None, refused: tuple[str, ...] = ()) -> None:
        super().__init__(message, path=path, line=line, field=field, hint=hint)
        self.detail = message
        self.refused = refused

    def shown_as(self, name: str, *, hint: str | None = None) -> FileDataError:
        """This error naming ``name`` wherever it named the path read, with ``hint`` if one is given."""
        def swap(text: str | None) -> str | None:
            return text.replace(self.path, name) if text and self.path else text

        return FileDataError(swap(self.detail) or "", path=name, line=self.line, field=self.field,
                             hint=hint or swap(self.hint), refused=self.refused)


@dataclass(frozen=True)
class RecordFormat:
    """A record shape: the fields that identify it and the function that converts one record."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    convert: Callable[[Record], Pair]
    matches: Callable[[Record], bool]
    shape: str

    @property
    def expected(self) -> str:
        fields = list(self.required) + [f"[{f}]" for f in self.optional]
        return ", ".join(fields)

    def __call__(self, record: Record) -> Pair:
        return self.convert(record)


FORMATS: dict[str, RecordFormat] = {}
"""Record formats by name, in detection order (the first one whose fields match wins)."""


def record_format(
    name: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    matches: Callable[[Record], bool] | None = None,
    shape: str = "",
) -> Callable[[Callable[[Record], Pair]], Callable[[Record], Pair]]:
    """Register a converter. ``matches`` (described in words by ``shape``) refines detection
    when two formats share their required fields."""

    def register(fn: Callable[[Record], Pair]) -> Callable[[Record], Pair]:
        if name in FORMATS:
            existing = FORMATS[name].convert
            raise ConfigError(
                f"Record format {name!r} is already registered (by {existing.__module__}.{existing.__qualname__}).",
                hint="Give the new record format a name of its own.",
            )
        FORMATS[name] = RecordFormat(name, required, optional, fn, matches or (lambda _r: True), shape)
        return fn

    return register


# ---------------------------------------------------------------------------------------
# Field helpers shared by the converters


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(record: Record, field: str) -> str:
    value = record.get(field)
    if isinstance(value, str):
        return value
    if value is None:
        raise RecordError("is empty (null); a string is required.", field=field, hint="Fill in the value or drop the record.")
    raise RecordError(
        f"must be a string, got {_type_name(value)} ({_preview(value)}).",
        field=field,
        hint="Store text as a JSON string; for chat messages use a list of {role, content} objects where the format allows it.",
    )


def _preview(value: Any, n: int = 60) -> str:
    s = json.dumps(value, ensure_ascii=False, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"


_ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                 "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system",
                 "tool": "tool", "observation": "tool"}  # observation: LLaMA-Factory's tool output
KNOWN_ROLES = frozenset(_ROLE_ALIASES.values())


def _message(value: Any, field: str, index: int | None = None) -> Message:
    """One chat message from ``{role, content}`` or ShareGPT's ``{from, value}``."""
    where = f"{field}[{index}]" if index is not None else field
    if not isinstance(value, dict):
        raise RecordError(f"must be a message object {{role, content}}, got {_type_name(value)}.", field=where)
    role = value.get("role", value.get("from"))
    content = value.get("content", value.get("value"))
    if not isinstance(role, str):
        raise RecordError(f"message has no string 'role' (or 'from'); keys: {sorted(value)}.", field=where)
    if not isinstance(content, str):
        raise RecordError(
            f"message content must be a string, got {_type_name(content)}.",
            field=where,
            hint="Each message needs 'content' (or 'value') holding text.",
        )
    return {"role": _ROLE_ALIASES.get(role.lower(), role), "content": content}


def _messages(value: Any, field: str) -> list[Message]:
    if not isinstance(value, list):
        raise RecordError(f"must be a list of messages, got {_type_name(value)}.", field=field)
    if not value:
        raise RecordError("is an empty message list.", field=field)
    return [_message(m, field, i) for i, m in enumerate(value)]


def _prompt(record: Record, field: str) -> Prompt:
    """A prompt is either text or a list of chat messages."""
    value = record.get(field)
    if isinstance(value, list):
        return _messages(value, field)
    return _text(record, field)


def _split_reply(value: Any, field: str) -> tuple[list[Message], str]:
    """A conversational completion: (messages before the last assistant turn, its text)."""
    messages = _messages(value, field)
    if messages[-1]["role"] != "assistant":
        raise RecordError(
            f"the last message has role '{messages[-1]['role']}'; the response must be the last assistant message.",
            field=field,
        )
    return messages[:-1], messages[-1]["content"]


def _jsonable(value: Any) -> Any:
    """Metadata must survive JSON (store, exporters): dates become ISO text, the rest text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def _pair(record: Record, consumed: tuple[str, ...], prompt: Prompt, a: str, b: str, preferred: str | None) -> Pair:
    """Build the Pair; an ``id`` column is kept as the id and every other unused column goes to metadata."""
    raw_id = record.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
        raise RecordError(f"must be a string or integer, got {_type_name(raw_id)}.", field="id")
    metadata = {k: _jsonable(v) for k, v in record.items() if k not in consumed and k != "id"}
    return Pair(prompt=prompt, response_a=a, response_b=b, id="" if raw_id is None else str(raw_id),
                preferred=preferred, metadata=metadata)


# ---------------------------------------------------------------------------------------
# Record formats (detection order matters: the first whose fields match wins)


@record_format("sharegpt", required=("conversations", "chosen", "rejected"), optional=("system",))
def _sharegpt(record: Record) -> Pair:
    """LLaMA-Factory style: a conversation plus a chosen and a rejected final turn."""
    prompt = _messages(record.get("conversations"), "conversations")
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        prompt = [{"role": "system", "content": system}, *prompt]

    def reply(field: str) -> str:
        value = record.get(field)
        return _message(value, field)["content"] if isinstance(value, dict) else _text(record, field)

    return _pair(record, ("conversations", "chosen", "rejected", "system"), prompt, reply("chosen"), reply("rejected"), "A")


def alpacaeval_preference(value: Any) -> float | None:
    """AlpacaEval's ``preference`` as a number in [1, 2] (None when absent): 1 = output_1
    wins, 2 = output_2 wins, 1.5 (or the legacy 0) a draw, a fraction the judge's probability
    (plus 1) that output_2 wins. Files hold it as a number or a string."""
    if value is None or value == "":
        return None
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"must be a number between 1 and 2, got {_preview(value)}.", field="preference",
                          hint="AlpacaEval uses 1 (output_1 wins), 2 (output_2 wins), 1.5 (tie).") from None
    if math.isnan(p):
        return None
    if p == 0:
        return 1.5
    if not 1 <= p <= 2:
        raise RecordError(f"must be between 1 and 2 (or 0 for a draw), got {p}.", field="preference",
                          hint="AlpacaEval uses 1 (output_1 wins), 2 (output_2 wins), 1.5 (tie).")
    return p


def alpacaeval_soft(pair: Pair) -> float | None:
    """P(A is better) of a pair read as ``alpacaeval`` (A is output_1): ``2 − preference``,
    kept beside the rounded ``preferred`` so statistics can use the judge's probability."""
    p = alpacaeval_preference(pair.metadata.get("preference"))
    return None if p is None else 2.0 - p


def _alpaca_preference(value: Any) -> str | None:
    """The nearer side of AlpacaEval's preference: A (output_1) below 1.5, B above, tie at 1.5."""
    p = alpacaeval_preference(value)
    if p is None:
        return None
    return "tie" if p == 1.5 else "A" if p < 1.5 else "B"


@record_format("alpacaeval", required=("instruction", "output_1", "output_2"), optional=("preference", "input"))
def _alpacaeval(record: Record) -> Pair:
    """AlpacaEval annotations; A is output_1 so generator_1/generator_2 in metadata stay meaningful.
    The judge's ``raw_completion`` (its whole API answer, most of a released file's bytes) is not
    kept: the preference is what it says, and carrying it made 20 released files import in 10.4 s instead of 6.4 s."""
    prompt = _text(record, "instruction")
    extra_input = record.get("input")
    if isinstance(extra_input, str) and extra_input.strip():
        prompt = f"{prompt}\n\n{extra_input}"
    preferred = _alpaca_preference(record.get("preference"))
    return _pair(record, ("instruction", "input", "output_1", "output_2", "raw_completion"), prompt,
                 _text(record, "output_1"), _text(record, "output_2"), preferred)


_LABELS = {"a": "A", "b": "B", "tie": "tie"}


@record_format("unlabeled", required=("prompt", "response_a", "response_b"), optional=("preferred", "metadata"))
def _unlabeled(record: Record) -> Pair:
    """Pairs still to be judged; also the canonical ``Pair.to_dict`` shape, so a label there is kept."""
    raw = record.get("preferred")
    preferred = None
    if raw not in (None, ""):
        preferred = _LABELS.get(str(raw).lower()) if isinstance(raw, str) else None
        if preferred is None:
            raise RecordError(f"must be 'A', 'B', 'tie' or empty, got {_preview(raw)}.", field="preferred")
    pair = _pair(record, ("prompt", "response_a", "response_b", "preferred", "metadata"), _prompt(record, "prompt"),
                 _text(record, "response_a"), _text(record, "response_b"), preferred)
    meta = record.get("metadata")
    if isinstance(meta, dict):
        pair.metadata = {**_jsonable(meta), **pair.metadata}
    elif meta is not None:
        pair.metadata["metadata"] = _jsonable(meta)
    return pair


def _is_trl(record: Record) -> bool:
    return "prompt" in record or isinstance(record.get("chosen"), list)


@record_format("trl", required=("chosen", "rejected"), optional=("prompt",), matches=_is_trl,
               shape="a 'prompt' field, unless chosen/rejected are message lists that hold the prompt")
def _trl(record: Record) -> Pair:
    """TRL preference data: explicit prompt, or conversational chosen/rejected holding it implicitly."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if isinstance(chosen, list) or isinstance(rejected, list):
        before_c, text_c = _split_reply(chosen, "chosen")
        before_r, text_r = _split_reply(rejected, "rejected")
        if before_c != before_r:
            raise RecordError(
                "chosen and rejected differ before their last assistant message, so they do not share one prompt.",
                field="rejected",
            )
        if "prompt" in record:
            prompt: Prompt = _prompt(record, "prompt")
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            prompt = [*prompt, *before_c]
        elif before_c:
            prompt = before_c
        else:
            raise RecordError("is missing and chosen/rejected hold only the assistant reply, so there is no prompt.",
                              field="prompt", hint="Add a 'prompt' field (text or a list of messages).")
        return _pair(record, ("prompt", "chosen", "rejected"), prompt, text_c, text_r, "A")
    if "prompt" not in record:
        raise RecordError("is missing.", field="prompt", hint="TRL records need prompt, chosen and rejected.")
    return _pair(record, ("prompt", "chosen", "rejected"), _prompt(record, "prompt"),
                 _text(record, "chosen"), _text(record, "rejected"), "A")


_TURN = re.compile(r"(?:\A|\n\n)(Human|Assistant):")
_ASSISTANT = "\n\nAssistant:"


def transcript_messages(text: str) -> list[Message]:
    """Split an HH-RLHF ``\\n\\nHuman: … \\n\\nAssistant: …`` transcript into chat messages."""
    parts = _TURN.split(text)
    if parts[0].strip():
        raise RecordError("the transcript does not start with a 'Human:' turn.", field="chosen",
                          hint="HH-RLHF transcripts look like '\\n\\nHuman: …\\n\\nAssistant: …'.")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]


def _looks_like_transcript(record: Record) -> bool:
    """chosen is text starting with a 'Human:' turn: an HH-RLHF record, even when it lacks 'Assistant:'."""
    chosen = record.get("chosen")
    return "prompt" not in record and isinstance(chosen, str) and chosen.lstrip().startswith("Human:")


def _is_hh(record: Record) -> bool:
    chosen = record.get("chosen")
    if "prompt" in record or isinstance(chosen, list):
        return False
    return _ASSISTANT in chosen if isinstance(chosen, str) else True  # non-text: let the converter say so


@record_format("hh-rlhf", required=("chosen", "rejected"), matches=_is_hh,
               shape="chosen/rejected as full transcripts containing '\\n\\nAssistant:' and no 'prompt' field")
def _hh_rlhf(record: Record) -> Pair:
    """Anthropic HH-RLHF: the prompt is the shared prefix up to the last shared 'Assistant:' turn."""
    chosen, rejected = _text(record, "chosen"), _text(record, "rejected")
    # Last marker in chosen whose whole prefix rejected shares (string compares run in C, not per char).
    cut = chosen.rfind(_ASSISTANT)
    while cut >= 0 and not rejected.startswith(chosen[: cut + len(_ASSISTANT)]):
        cut = chosen.rfind(_ASSISTANT, 0, cut)
    if cut < 0:
        raise RecordError(
            "chosen and rejected share no '\\n\\nAssistant:' turn, so the prompt cannot be separated from the responses.",
            field="chosen",
            hint="HH-RLHF records hold full transcripts; for separate prompt/response fields use the 'trl' format.",
        )
    prompt = transcript_messages(chosen[:cut])
    if not prompt:
        raise RecordError("has no 'Human:' turn before the first 'Assistant:' turn, so the prompt is empty.", field="chosen",
                          hint="HH-RLHF transcripts start with '\\n\\nHuman: …'.")
    end = cut + len(_ASSISTANT)

    def response(text: str) -> str:
        rest = text[end:]
        return rest[1:] if rest.startswith(" ") else rest

    return _pair(record, ("chosen", "rejected"), prompt, response(chosen), response(rejected), "A")


# ---------------------------------------------------------------------------------------
# Detection


def classify(record: Record) -> str | None:
    """The first format whose required fields are all present and whose shape matches, else None."""
    for fmt in FORMATS.values():
        if all(f in record for f in fmt.required) and fmt.matches(record):
            return fmt.name
    return None


def detect_format(records: list[Record], path: str | Path = "") -> str:
    """The record format of a file, from its first record (later records are checked one by one)."""
    if not records:
        raise FileDataError("contains no records.", path=path or None, hint="Check that the file holds preference pairs.")
    name = classify(records[0])
    if name is None:
        raise _missing_fields_error(records[0], None, path, _Loc(1, None))
    return name


def _known_formats() -> str:
    return "; ".join(f"{f.name} ({f.expected})" for f in FORMATS.values())


def _missing_fields_error(record: Record, fmt: RecordFormat | None, path: str | Path, loc: _Loc) -> FileDataError:
    """Say which field is missing, for which format, and suggest a rename when a near-miss exists."""
    present = list(record)
    if fmt is None:  # auto-detection: compare with the format this record is closest to
        scored = [(sum(f in record for f in cand.required) / len(cand.required), -i, cand)
                  for i, cand in enumerate(FORMATS.values())]
        score, _, fmt = max(scored, key=lambda t: t[:2])
        if fmt.name == "trl" and _looks_like_transcript(record):  # a transcript missing its 'Assistant:' turn
            fmt = FORMATS["hh-rlhf"]
        if score == 0:
            return loc.error(
                f"does not look like any known preference format; fields present: {', '.join(present) or '(none)'}.",
                path, hint=f"Known formats: {_known_formats()}. Rename the fields, or pass format= explicitly.",
            )
    fields = f"fields present: {', '.join(present) or '(none)'}"
    missing = [f for f in fmt.required if f not in record]
    if missing:
        field = missing[0]
        message = f"is missing; expected by format '{fmt.name}' ({fmt.expected}); {fields}."
    else:  # required fields are there but the shape is not (e.g. plain-text chosen/rejected without a prompt)
        optional = [f for f in fmt.optional if f not in record]
        field = optional[0] if optional else fmt.required[0]
        message = (f"{'is missing' if optional else 'has the wrong shape'}; format '{fmt.name}' needs {fmt.shape}; "
                   f"{fields}.")
    unused = [f for f in present if f not in fmt.required and f not in fmt.optional]
    close = difflib.get_close_matches(field, unused, n=1, cutoff=0.6)
    hint = (f"Did you mean '{close[0]}'? Rename it to '{field}'." if close
            else f"Format '{fmt.name}' expects: {fmt.expected}. Known formats: {_known_formats()}.")
    return loc.error(message, path, field=field, hint=hint)


# ---------------------------------------------------------------------------------------
# Containers: each yields (location, record) with 1-based line numbers where lines exist


@dataclass(frozen=True)
class _Loc:
    """Where a record came from: its ordinal and, for line-based files, its first line."""

    index: int
    line: int | None

    def error(self, message: str, path: str | Path, *, field: str | None = None, hint: str | None = None) -> FileDataError:
        prefix = "" if self.line is not None else f"record {self.index}: "
        return FileDataError(prefix + message, path=path, line=self.line, field=field, hint=hint)

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"record {self.index}"


@dataclass(frozen=True)
class _Limits:
    line_bytes: int
    file_bytes: int


class _RepeatedKeys(dict):
    """A JSON object or CSV row that named a key more than once; the last value was kept."""

    repeated: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: Python's json silently keeps the last of repeated keys, so mark them."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _RepeatedKeys(obj)
    keys = [k for k, _ in pairs]
    marked.repeated = tuple(sorted({k for k in keys if keys.count(k) > 1}))
    return marked


_DECODER = json.JSONDecoder(object_pairs_hook=_json_object)


def _loads(text: str) -> Any:
    """Parse JSON text; objects nested past the C parser's recursion limit become a RecordError."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise RecordError(f"nests objects or lists more than {MAX_DEPTH} levels deep; refusing to read it.",
                          hint="Preference records need only a few levels; check that the file is not corrupt or hostile.") from None


def _encoding_error(path: Path, line: int | None, err: UnicodeDecodeError) -> FileDataError:
    return FileDataError(
        f"is not UTF-8 text (byte 0x{err.object[err.start]:02x} cannot be decoded).",
        path=path, line=line,
        hint=f"Re-encode the file as UTF-8, e.g. `iconv -f WINDOWS-1252 -t UTF-8 '{path}' > fixed{''.join(path.suffixes)}`.",
    )


_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _refuse_special(path: Path, mode: int) -> None:
    """Only regular files hold data: a pipe blocks forever and a device (/dev/zero) never ends."""
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "not a regular file")
    raise FileDataError(f"is {kind}, not a regular file; refusing to read it.", path=path,
                    hint="Point at a data file (.jsonl, .json, .csv, .parquet) or a datasets.save_to_disk folder.")


def _stat(path: Path) -> os.stat_result:
    """Stat the path (following links), with a precise error for each way it can name no data."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise FileDataError(f"is a symbolic link to {os.readlink(path)}, which does not exist.", path=path,
                            hint="Fix or remove the link.") from None
        raise FileDataError("does not exist.", path=path, hint="Check the path (relative paths start from the current folder).") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise FileDataError("is a symbolic link loop (following it leads back to itself), so it names no file.", path=path,
                            hint="Fix the link so that it points at the data file.") from None
        raise FileDataError(f"cannot be opened ({err.strerror or err}).", path=path,
                        hint="Check the path and its permissions.") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        _refuse_special(path, st.st_mode)
    return st


def _open_regular(path: Path) -> io.BufferedReader:
    """Open for reading, then check what was opened (not what the name meant a moment before)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO must not block the open
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        _refuse_special(path, mode)
    return os.fdopen(fd, "rb")


def read_user_text(path: str | Path) -> str:
    """The whole UTF-8 text of a small file a user named (prompts, a users file, a config).

    Every command reads a user's file through this or ``read_pairs``: the same opener (a named
    pipe or device is refused at once instead of hanging the command), the same size cap as
    whole-file formats, and errors naming the file.
    """
    path = Path(path)
    if stat.S_ISDIR(_stat(path).st_mode):
        raise FileDataError("is a folder, not a file.", path=path, hint="Point at the file itself.")
    return _decode_whole(path, _Limits(MAX_LINE_BYTES, MAX_FILE_BYTES))


@contextmanager
def _open_binary(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, gunzipped for .gz (closing both the gzip stream and the file)."""
    with _open_regular(path) as f:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                yield g
        else:
            yield f


def _iter_jsonl(path: Path, limits: _Limits) -> Iterator[tuple[_Loc, Any]]:
    index = 0
    max_line_bytes = limits.line_bytes
    try:
        with _open_binary(path) as f:
            line_no = 0
            while True:
                raw = f.readline(max_line_bytes + 1)
                if not raw:
                    break
                line_no += 1
                if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                    raise FileDataError(
                        f"is longer than {max_line_bytes:,} bytes; refusing to read it.",
                        path=path, line=line_no,
                        hint="Each JSONL line must be one record; check that the file is not a single JSON document "
                             "or binary data. Raise workbench.data.readers.MAX_LINE_BYTES for truly huge records.",
                    )
                try:
                    text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise _encoding_error(path, line_no, err) from None
                if not text.strip():
                    continue
                try:
                    value = _loads(text)
                except json.JSONDecodeError as err:
                    raise FileDataError(
                        f"is not valid JSON ({err.msg} at column {err.colno}).", path=path, line=line_no,
                        hint="Each line of a .jsonl file must be one complete JSON object; fix or remove this line.",
                    ) from None
                except RecordError as err:
                    raise FileDataError(err.message, path=path, line=line_no, hint=err.hint) from None
                index += 1
                yield _Loc(index, line_no), value
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise FileDataError(f"is not a readable gzip file ({err}).", path=path,
                        hint="Re-compress it with `gzip`, or rename it without .gz if it is plain text.") from None


def _decode_whole(path: Path, limits: _Limits) -> str:
    """Read a whole-file format, at most ``limits.file_bytes`` (the size on disk is not trusted)."""
    with _open_regular(path) as f:
        data = f.read(limits.file_bytes + 1)
    if len(data) > limits.file_bytes:
        raise FileDataError(
            f"is larger than {limits.file_bytes / 2**20:,.0f} MiB; {path.suffix or 'this'} files are read whole into memory.",
            path=path,
            hint="Convert it to JSON Lines (.jsonl, one record per line), which is streamed with no size limit, "
                 "or raise workbench.data.readers.MAX_FILE_BYTES.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _encoding_error(path, data.count(b"\n", 0, err.start) + 1, err) from None


def _iter_json(path: Path, limits: _Limits) -> Iterator[tuple[_Loc, Any]]:
    text = _decode_whole(path, limits)
    try:
        doc = _loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # many ".json" files on the Hub are really JSON Lines
            yield from _iter_jsonl(path, limits)
            return
        raise FileDataError(f"is not valid JSON ({err.msg} at column {err.colno}).", path=path, line=err.lineno,
                        hint="Fix the JSON syntax, or save the records as JSON Lines (.jsonl).") from None
    except RecordError as err:
        raise FileDataError(err.message, path=path, hint=err.hint) from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if not isinstance(doc, list):
        keys = f" with keys {sorted(doc)[:10]}" if isinstance(doc, dict) else ""
        raise FileDataError(f"holds a JSON {_type_name(doc)}{keys}, not a list of records.", path=path,
                        hint='Use a JSON list of records, {"data": [...]}, or JSON Lines (.jsonl).')
    for i, value in enumerate(doc, start=1):
        yield _Loc(i, None), value


_CSV_STRUCTURED = ("prompt", "chosen", "rejected", "conversations")


def _csv_cell(column: str, value: str) -> Any:
    """CSV holds only text; chat messages are stored there as JSON lists, so decode those."""
    if column in _CSV_STRUCTURED and value.lstrip().startswith("["):
        try:
            decoded = _loads(value)
        except (json.JSONDecodeError, RecordError):
            return value
        if isinstance(decoded, list) and decoded and all(isinstance(m, dict) for m in decoded):
            return decoded
    return value


def _refuse_nul(path: Path, line: int, header: list[str], row: list[str]) -> None:
    """A NUL byte in a cell means a binary or UTF-16 file read as UTF-8, not text to import."""
    column = next((h for h, v in zip(header, row, strict=False) if "\0" in v), None)
    if column is not None:
        raise FileDataError("holds a NUL byte (\\x00), which is never part of text.", path=path, line=line,
                            field=column if row is not header else None,
                            hint="The file is probably binary or UTF-16; re-export it as UTF-8 CSV, or remove the NUL bytes.")


def _iter_csv(path: Path, limits: _Limits) -> Iterator[tuple[_Loc, Any]]:
    text = _decode_whole(path, limits)
    previous_limit = csv.field_size_limit(limits.line_bytes)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        has_nul = "\0" in text  # NUL is never text: the rows are checked only when the file holds one
        if has_nul:
            _refuse_nul(path, 1, header, header)
        repeated = tuple(sorted({h for h in header if header.count(h) > 1}))
        index, start = 0, reader.line_num + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                start = reader.line_num + 1
                continue
            index += 1
            if len(row) != len(header):
                raise FileDataError(f"has {len(row)} cells but the header has {len(header)} columns.", path=path, line=start,
                                hint="Check the quoting: cells with commas or newlines must be in double quotes.")
            if has_nul:
                _refuse_nul(path, start, header, row)
            record = {h: _csv_cell(h, v) for h, v in zip(header, row, strict=True)}
            if repeated:
                record = _RepeatedKeys(record)
                record.repeated = repeated
            yield _Loc(index, start), record
            start = reader.line_num + 1
    except csv.Error as err:
        raise FileDataError(f"is not valid CSV ({err}).", path=path, line=reader.line_num,
                        hint=f"Fix the quoting, or raise MAX_LINE_BYTES (now {limits.line_bytes:,}) for very long cells.") from None
    finally:
        csv.field_size_limit(previous_limit)


def _iter_parquet(path: Path, limits: _Limits) -> Iterator[tuple[_Loc, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with _open_regular(path) as f:
            pf = pq.ParquetFile(f)
            index = 0
            for batch in pf.iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    index += 1
                    yield _Loc(index, None), row
    except (pa.ArrowException, OSError) as err:
        raise FileDataError(f"is not a readable Parquet file ({err}).", path=path,
                        hint="Re-write it with pandas.DataFrame.to_parquet or pyarrow.parquet.write_table.") from None


def _iter_hf_folder(path: Path, limits: _Limits) -> Iterator[tuple[_Loc, Any]]:
    import datasets

    if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        raise FileDataError("is a folder but not a `datasets.Dataset.save_to_disk` folder (no dataset_info.json / "
                        "dataset_dict.json).", path=path,
                        hint="Point at a data file (.jsonl, .json, .csv, .parquet) or at a folder written by save_to_disk.")
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise FileDataError(f"could not be loaded with datasets.load_from_disk ({err}).", path=path,
                        hint="Re-save it with Dataset.save_to_disk.") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if "train" in ds:
            ds = ds["train"]
        elif len(splits) == 1:
            ds = ds[splits[0]]
        else:
            raise FileDataError(f"holds several splits ({', '.join(splits)}) and none is called 'train'.", path=path,
                            hint=f"Point at one split's folder, e.g. {path / splits[0]}.")
    for index, row in enumerate(ds, start=1):
        yield _Loc(index, None), row


CONTAINERS: dict[str, Callable[[Path, _Limits], Iterator[tuple[_Loc, Any]]]] = {
    ".jsonl": _iter_jsonl, ".ndjson": _iter_jsonl, ".jsonl.gz": _iter_jsonl,
    ".json": _iter_json, ".csv": _iter_csv, ".parquet": _iter_parquet,
}


def _container(path: Path) -> Callable[[Path, _Limits], Iterator[tuple[_Loc, Any]]]:
    if path.is_dir():
        return _iter_hf_folder
    name = path.name.lower()
    for suffix in sorted(CONTAINERS, key=len, reverse=True):
        if name.endswith(suffix):
            return CONTAINERS[suffix]
    raise FileDataError(f"has an unsupported file type '{''.join(path.suffixes) or '(none)'}'.", path=path,
                    hint=f"Supported: {', '.join(CONTAINERS)} and datasets.save_to_disk folders.")


# ---------------------------------------------------------------------------------------
# Checks on every record and pair


def _check_text(text: str, field: str | None) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise RecordError(
                f"holds a lone surrogate (\\u{ord(text[err.start]):04x}), which is not valid Unicode text.", field=field,
                hint="Re-export the file with a tool that writes valid UTF-8, or remove that character.",
            ) from None


def _inspect(record: Record) -> tuple[str, ...]:
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


def _problems(pair: Pair, repeated: tuple[str, ...]) -> list[tuple[str, str]]:
    """The QUALITY_CHECKS kinds this pair trips, each with a detail worth showing (or "")."""
    found: list[tuple[str, str]] = []
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


def _quality_error(path: Path, problems: dict[str, list[_Loc]], details: dict[str, set[str]], n_bad: int, total: int) -> FileDataError:
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


def _check_allow(allow: Collection[str]) -> frozenset[str]:
    unknown = [a for a in allow if a not in QUALITY_CHECKS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(QUALITY_CHECKS), n=1)
        raise ConfigError(f"Unknown kind to allow: {unknown[0]!r}.",
                          hint=(f"Did you mean {close[0]!r}? " if close else "") + f"Known: {', '.join(QUALITY_CHECKS)}.")
    return frozenset(allow)


# ---------------------------------------------------------------------------------------
# Entry point


def _records(path: Path, limit: int | None, limits: _Limits) -> Iterator[tuple[_Loc, Any]]:
    """Stream the file's records, stopping after ``limit`` (later lines are never parsed)."""
    try:
        for n, item in enumerate(_container(path)(path, limits), start=1):
            yield item
            if limit is not None and n >= limit:
                return
    except OSError as err:
        raise FileDataError(f"could not be read ({err.strerror or err}).", path=path,
                        hint="Check that the file is readable and is not still being written.") from None


def _check_file(path: Path) -> None:
    """Refuse what is not a data file before choosing a reader (each with its own reason)."""
    st = _stat(path)
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        with _open_regular(path) as f:
            if f.read(1):  # /proc and /sys files report size 0 yet produce text
                raise FileDataError("reports a size of 0 bytes but produces data when read: it is a virtual system file "
                                "(like those under /proc), not a data file; refusing to read it.", path=path,
                                hint="Point at a data file that holds preference records.")
        raise FileDataError("is empty.", path=path, hint="Point at a file that holds preference records.")


def detect_file_format(path: str | Path) -> str:
    """The record format ``format="auto"`` picks for this file, from its first record (as ``read_pairs`` does)."""
    path = Path(path).expanduser()
    _check_file(path)
    records = [record for _, record in _records(path, 1, _Limits(MAX_LINE_BYTES, MAX_FILE_BYTES))]
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
    allowed = _check_allow(allow)
    if format != "auto" and format not in FORMATS:
        close = difflib.get_close_matches(format, list(FORMATS), n=1)
        raise FileDataError(f"Unknown format '{format}'.", path=path,
                        hint=(f"Did you mean '{close[0]}'? " if close else "") + f"Known formats: auto, {', '.join(FORMATS)}.")
    _check_file(path)
    if limit is not None and limit < 0:
        raise FileDataError(f"limit must be zero or positive, got {limit}.", path=path)
    if limit == 0:
        return []

    _container(path)  # fail on an unsupported file type before anything else
    fmt: RecordFormat | None = FORMATS[format] if format != "auto" else None
    first_loc: _Loc | None = None
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    problems: dict[str, list[_Loc]] = {}
    details: dict[str, set[str]] = {}
    n_bad = 0
    limits = _Limits(max_line_bytes or MAX_LINE_BYTES, max_file_bytes or MAX_FILE_BYTES)
    for loc, record in _records(path, limit, limits):
        if not isinstance(record, dict):
            raise loc.error(f"is a JSON {_type_name(record)}, not an object with named fields.", path,
                            hint="Each record must be an object such as {\"prompt\": …, \"chosen\": …, \"rejected\": …}.")
        try:
            repeated = _inspect(record)
        except RecordError as err:
            raise loc.error(err.message, path, field=err.field, hint=err.hint) from None
        if format == "auto":
            name = classify(record)
            if name is None:
                raise _missing_fields_error(record, fmt, path, loc)
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
            raise _missing_fields_error(record, fmt, path, loc)
        try:
            pair = fmt(record)
        except RecordError as err:
            raise loc.error(err.message, path, field=err.field,
                            hint=err.hint or f"Format '{fmt.name}' expects: {fmt.expected}.") from None
        refused = [(kind, detail) for kind, detail in _problems(pair, repeated) if kind not in allowed]
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
        raise _quality_error(path, problems, details, n_bad, len(pairs))
    if not pairs:
        raise FileDataError("contains no records.", path=path, hint="Check that the file holds preference pairs.")
    return pairs
