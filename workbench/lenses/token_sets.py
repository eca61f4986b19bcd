"""Token sets for a word, built the same way for every tokenizer and every language.

A word's token set is every vocabulary token that spells a prefix of the word, with or
without a leading space, and covers at least its first whole character: byte-level BPE
writes the space as ``Ġ``, SentencePiece as ``▁``, and byte-fallback vocabularies hold
single bytes such as ``<0xE4>``; working on raw bytes handles all three alike.

A token that is only part of the first character's bytes (``à¤``, the lead bytes shared by
every Devanagari word) says nothing about *which* word follows, so it counts only when the
vocabulary has no whole-character token for the word at all; such a set is flagged
(``TokenSet.fragments``), since it is then likely shared with other words of the script.
"""
from __future__ import annotations

import json
import re
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.errors import DataError

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_BYTES_CACHE: weakref.WeakKeyDictionary[Any, list[bytes | None]] = weakref.WeakKeyDictionary()
_INDEX_CACHE: weakref.WeakKeyDictionary[Any, dict[bytes, list[int]]] = weakref.WeakKeyDictionary()


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes-to-unicode table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    spec = json.loads(backend.to_str())
    return '"ByteLevel"' in json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])


def _cached(cache: weakref.WeakKeyDictionary, tokenizer: Any, build: Any) -> Any:
    try:
        return cache[tokenizer]
    except KeyError:
        value = cache[tokenizer] = build(tokenizer)
        return value


def token_bytes(tokenizer: Any) -> list[bytes | None]:
    """The raw bytes each vocabulary id stands for (``None`` for special tokens), cached."""
    return _cached(_BYTES_CACHE, tokenizer, _token_bytes)


def _token_bytes(tokenizer: Any) -> list[bytes | None]:
    byte_level = _is_byte_level(tokenizer)
    decoder = _byte_decoder() if byte_level else {}
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    out: list[bytes | None] = []
    for i, piece in enumerate(pieces):
        if piece is None or i in special:
            out.append(None)
        elif m := _BYTE_TOKEN.fullmatch(piece):
            out.append(bytes([int(m.group(1), 16)]))
        elif byte_level and all(ch in decoder for ch in piece):
            out.append(bytes(decoder[ch] for ch in piece))
        else:
            out.append(piece.replace("▁", " ").encode("utf-8"))
    return out


def _vocabulary_index(tokenizer: Any) -> dict[bytes, list[int]]:
    """bytes → token ids, built once per tokenizer object."""
    index: dict[bytes, list[int]] = defaultdict(list)
    for i, b in enumerate(token_bytes(tokenizer)):
        if b and b.strip():  # a lone space is a prefix of every spaced word: it says nothing
            index[b].append(i)
    return dict(index)


def display_token(tokenizer: Any, token_id: int) -> str:
    """A readable form of one token: its text, with ``\\xNN`` for bytes that are not whole UTF-8."""
    vocab = token_bytes(tokenizer)
    raw = vocab[token_id] if 0 <= token_id < len(vocab) else None
    if raw is None:
        return tokenizer.convert_ids_to_tokens(token_id) or f"<{token_id}>"
    return raw.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class TokenSet:
    """The token ids that count toward a concept, and which of its words fell back to byte fragments."""

    ids: tuple[int, ...]
    fragments: tuple[str, ...] = ()


def _prefix_ids(index: dict[bytes, list[int]], word: str) -> tuple[set[int], set[int]]:
    """Prefix tokens of ``word`` and ``" " + word``: (those covering its first whole character, the rest)."""
    whole, partial = set(), set()
    first = len(word[0].encode("utf-8"))
    for variant, offset in ((word.encode("utf-8"), 0), ((" " + word).encode("utf-8"), 1)):
        for end in range(1 + offset, len(variant) + 1):
            (whole if end - offset >= first else partial).update(index.get(variant[:end], ()))
    return whole, partial


def concept_token_set(tokenizer: Any, words: Sequence[str]) -> TokenSet:
    """The union of the words' token sets (one concept's translations, e.g. ``nube``, ``nubes``)."""
    words = [w.strip() for w in words if w.strip()]
    if not words:
        raise DataError("Cannot build a token set for an empty word.", field="word", hint="Remove empty entries from the word list.")
    index = _cached(_INDEX_CACHE, tokenizer, _vocabulary_index)
    ids: set[int] = set()
    fragments = []
    for word in words:
        whole, partial = _prefix_ids(index, word)
        if not whole and partial:
            fragments.append(word)
        ids |= whole or partial
    return TokenSet(tuple(sorted(ids)), tuple(fragments))


def word_token_set(tokenizer: Any, word: str) -> list[int]:
    """Ids of the tokens that count toward one word (sorted, unique); see ``concept_token_set``."""
    return list(concept_token_set(tokenizer, [word]).ids)
