"""Bounded, validated reads of a checkpoint's small files (config JSON, safetensors headers).

The catalog reads these for every checkpoint under the model roots and loading reads them
before transformers does, so one damaged or hostile file (a header length of 2^40, a config
that is a JSON list, a link to a text file or to /dev/zero) gives a ``ModelError`` naming the
file and the field instead of a MemoryError, a hang or an AttributeError.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from workbench.errors import ModelError

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Largest config/adapter/tokenizer-config JSON read; real ones are kilobytes."""
MAX_HEADER_BYTES = 100_000_000
"""The safetensors format's own header limit (the reference reader refuses larger ones)."""

POSITIVE_INT_FIELDS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "vocab_size", "max_position_embeddings", "n_embd", "n_layer", "n_head", "n_positions", "n_inner",
)
"""Config sizes that must be whole numbers above zero when present (null means "use the default")."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")
"""Any one of these means the folder ships a tokenizer (the set transformers' tokenizers read)."""

_DAMAGED = "The checkpoint's file is damaged or is not what its name says; re-save or re-copy the checkpoint."


def _require_file(path: Path) -> None:
    """Only regular files: a FIFO would block, a device (/dev/zero) never ends."""
    if not path.is_file():
        what = "not a regular file" if path.exists() else "a symbolic link loop or a dangling link" if path.is_symlink() else "missing"
        raise ModelError(f"{path} is {what}.", hint=_DAMAGED)


def _read_bounded(path: Path, limit: int) -> bytes:
    """Read at most ``limit`` bytes (the size on disk is not trusted)."""
    _require_file(path)
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ModelError(f"{path} is larger than {limit:,} bytes; a {path.name} is never that big.", hint=_DAMAGED)
    return data


def read_json_object(path: Path) -> dict[str, Any]:
    """A checkpoint JSON file that must hold an object (config.json, adapter_config.json, …)."""
    try:
        value = json.loads(_read_bounded(path, MAX_JSON_BYTES).decode("utf-8"))
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}.", hint="Check the file's permissions.") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}).", hint=_DAMAGED) from exc
    if not isinstance(value, dict):
        raise ModelError(f"{path} holds a JSON {type(value).__name__}, not an object with named fields.", hint=_DAMAGED)
    return value


def check_config(config: dict[str, Any], path: Path) -> None:
    """Refuse a config whose model_type is not text or whose sizes are not positive whole numbers."""
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ModelError(f"{path}, field 'model_type': must be text, got {model_type!r}.", hint=_DAMAGED)
    for key in POSITIVE_INT_FIELDS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ModelError(f"{path}, field '{key}': must be a whole number above zero, got {value!r}.",
                             hint="Fix the value in config.json (compare with the original checkpoint's), or re-save the checkpoint.")


def check_tokenizer_files(folder: Path) -> None:
    """A model folder without any tokenizer file cannot be used; say so before loading its weights."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{folder} has no tokenizer files (none of {', '.join(TOKENIZER_FILES[:4])}, …).",
                         hint="Copy the tokenizer files from the original checkpoint into this folder.")


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensor table of a .safetensors file (8-byte little-endian length, then JSON), no weights read."""
    try:
        _require_file(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ModelError(f"{path} is {len(prefix)} bytes long, too short for a safetensors header.", hint=_DAMAGED)
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or length > size - 8:
                raise ModelError(f"{path} declares a {length:,}-byte header, more than the file holds or the format allows "
                                 f"({MAX_HEADER_BYTES:,}); it is not a valid safetensors file.", hint=_DAMAGED)
            raw = f.read(length)
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}.", hint="Check the file's permissions.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: the safetensors header is not valid JSON ({exc}).", hint=_DAMAGED) from exc
    if not isinstance(header, dict):
        raise ModelError(f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object.", hint=_DAMAGED)
    header.pop("__metadata__", None)
    for name, meta in header.items():
        shape = meta.get("shape") if isinstance(meta, dict) else None
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                and isinstance(meta.get("dtype"), str)):
            raise ModelError(f"{path}: tensor {name!r} has no valid dtype and shape in the header.", hint=_DAMAGED)
    return header


def tensor_count(meta: dict[str, Any]) -> int:
    """Number of elements of one header entry (already validated by ``read_safetensors_header``)."""
    count = 1
    for dim in meta["shape"]:
        count *= dim
    return count
