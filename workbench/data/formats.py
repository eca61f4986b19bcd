"""Record formats: turn one record of a preference file into a canonical ``Pair``.

TRL, HH-RLHF, ShareGPT, AlpacaEval and unlabeled pairs are built in; a new record format is
one function registered with ``@record_format(...)``. The format of a file is detected from
the fields of its first record (``classify`` / ``detect_format``), and an error for a record
that fits no format says which field is missing and suggests a rename for a near miss.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.data.types import Message, Pair, Prompt
from workbench.data.user_files import FileDataError, Loc, RecordError, type_name
from workbench.errors import ConfigError

Record = dict[str, Any]


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




def _text(record: Record, field: str) -> str:
    value = record.get(field)
    if isinstance(value, str):
        return value
    if value is None:
        raise RecordError("is empty (null); a string is required.", field=field, hint="Fill in the value or drop the record.")
    raise RecordError(
        f"must be a string, got {type_name(value)} ({preview(value)}).",
        field=field,
        hint="Store text as a JSON string; for chat messages use a list of {role, content} objects where the format allows it.",
    )


def preview(value: Any, n: int = 60) -> str:
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
        raise RecordError(f"must be a message object {{role, content}}, got {type_name(value)}.", field=where)
    role = value.get("role", value.get("from"))
    content = value.get("content", value.get("value"))
    if not isinstance(role, str):
        raise RecordError(f"message has no string 'role' (or 'from'); keys: {sorted(value)}.", field=where)
    if not isinstance(content, str):
        raise RecordError(
            f"message content must be a string, got {type_name(content)}.",
            field=where,
            hint="Each message needs 'content' (or 'value') holding text.",
        )
    return {"role": _ROLE_ALIASES.get(role.lower(), role), "content": content}


def _messages(value: Any, field: str) -> list[Message]:
    if not isinstance(value, list):
        raise RecordError(f"must be a list of messages, got {type_name(value)}.", field=field)
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
        raise RecordError(f"must be a string or integer, got {type_name(raw_id)}.", field="id")
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
        raise RecordError(f"must be a number between 1 and 2, got {preview(value)}.", field="preference",
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
            raise RecordError(f"must be 'A', 'B', 'tie' or empty, got {preview(raw)}.", field="preferred")
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


def looks_like_transcript(record: Record) -> bool:
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
        raise missing_fields_error(records[0], None, path, Loc(1, None))
    return name


def _known_formats() -> str:
    return "; ".join(f"{f.name} ({f.expected})" for f in FORMATS.values())


def missing_fields_error(record: Record, fmt: RecordFormat | None, path: str | Path, loc: Loc) -> FileDataError:
    """Say which field is missing, for which format, and suggest a rename when a near-miss exists."""
    present = list(record)
    if fmt is None:  # auto-detection: compare with the format this record is closest to
        scored = [(sum(f in record for f in cand.required) / len(cand.required), -i, cand)
                  for i, cand in enumerate(FORMATS.values())]
        score, _, fmt = max(scored, key=lambda t: t[:2])
        if fmt.name == "trl" and looks_like_transcript(record):  # a transcript missing its 'Assistant:' turn
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
