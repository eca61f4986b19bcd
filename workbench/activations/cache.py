"""Activation cache: one folder of ``.npy`` files per request, named by a content hash.

The key covers everything that changes the numbers (checkpoint, tokenizer, dtype, layers,
pooling, prefix lengths, texts, storage format), so a hit can be served with no forward
pass: the arrays are memory-mapped straight from disk. Entries are written through
``workbench.files.atomic_path`` (a temporary folder renamed into place), so a crash never
leaves a half-written entry behind; an entry that is damaged anyway (a file deleted or truncated) is detected on read,
removed and recomputed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import WorkbenchError
from workbench.files import atomic_path, is_temporary

if TYPE_CHECKING:  # the app context holds a cache without loading torch
    from workbench.models.loading import LoadedModel

FORMAT_VERSION = 1
SMALL_FILE_BYTES = 16 << 20
log = logging.getLogger(__name__)


def _safetensors_header(path: Path) -> bytes:
    """The 8-byte length plus the JSON header: tensor names, dtypes, shapes and byte offsets."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return head
        return head + f.read(int.from_bytes(head, "little"))


def checkpoint_identity(path: Path) -> str:
    """A cheap fingerprint of a checkpoint folder (or file) that changes when it is re-saved.

    Weight files are not read in full (that would cost seconds per call for a 1B model).
    For ``*.safetensors`` we hash the file name, size, modification time (nanoseconds) and
    the header, which lists every tensor's name, dtype, shape and offset. Saving new weights
    rewrites the file, so its mtime changes even when shapes and size do not; a changed
    architecture also changes the header. Small files (config, tokenizer) are hashed by
    content, so touching them is harmless but editing them is not. What this cannot see is
    an in-place byte edit that restores the old mtime; copying a checkpoint without keeping
    mtimes merely costs one recomputation.
    """
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for p in files:
        st = p.stat()
        h.update(p.name.encode() + b"\0")
        if p.suffix == ".safetensors":
            h.update(f"{st.st_size}:{st.st_mtime_ns}\0".encode())
            h.update(_safetensors_header(p))
        elif st.st_size <= SMALL_FILE_BYTES:
            h.update(p.read_bytes())
        else:
            h.update(f"{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def model_identity(lm: LoadedModel) -> str:
    """The identity of what is loaded: the converted folder of a GGUF, adapter plus base of a PEFT."""
    sources = [Path(lm.info.get("converted_to") or lm.path)]
    if "base" in lm.info:
        sources.append(Path(lm.info["base"]))
    h = hashlib.sha256(lm.format.encode())
    for source in sources:
        h.update(checkpoint_identity(source).encode())
    return h.hexdigest()


def activation_key(identity: str, spec: dict[str, Any], texts: Iterable[str]) -> str:
    """sha256 of the storage format, model identity, request settings and every text."""
    h = hashlib.sha256()
    h.update(json.dumps({"format_version": FORMAT_VERSION, "model": identity, **spec}, sort_keys=True).encode())
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: ["ab","c"] != ["a","bc"]
    return h.hexdigest()


@dataclass
class CacheEntry:
    """A complete entry: its metadata and its arrays, memory-mapped read-only."""

    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


class EntryWriter:
    """Fills one entry's temporary folder: arrays first, then ``commit`` with the metadata."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._open: list[np.memmap] = []
        self._shapes: dict[str, list[int]] = {}
        self.committed = False

    def array(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.memmap:
        """A writable memory-mapped ``.npy`` file, so big results never need to fit in RAM."""
        arr = np.lib.format.open_memmap(self.folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        self._open.append(arr)
        self._shapes[name] = list(shape)
        return arr

    def commit(self, meta: dict[str, Any]) -> None:
        """Flush the arrays and write ``meta.json``; the entry goes live when the ``writer`` block ends."""
        for arr in self._open:
            arr.flush()
        self._open.clear()
        meta = {**meta, "format_version": FORMAT_VERSION, "arrays": self._shapes}
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        self.committed = True


class ActivationCache:
    """Activation entries under ``root`` (by default ``Settings().cache_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key``, or None if absent; a damaged entry is removed and reported as absent."""
        path = self.root / key
        if not path.is_dir():
            return None
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {meta.get('format_version')} != {FORMAT_VERSION}")
            arrays = {}
            for name, shape in meta["arrays"].items():
                arr = np.load(path / f"{name}.npy", mmap_mode="r")
                if list(arr.shape) != shape:
                    raise ValueError(f"{name}.npy has shape {list(arr.shape)}, expected {shape}")
                arrays[name] = arr
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("Activation cache entry %s is damaged (%s); recomputing it.", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            return None
        return CacheEntry(path=path, meta=meta, arrays=arrays)

    @contextmanager
    def writer(self, key: str) -> Iterator[EntryWriter]:
        """Write entry ``key`` atomically: leaving the block without ``commit`` (an error, Ctrl-C) leaves nothing.

        If another process finished the same entry first, its copy is kept (the content is the same).
        """
        with atomic_path(self.root / key, keep_existing=True) as folder:
            folder.mkdir()
            writer = EntryWriter(folder)
            yield writer
            if not writer.committed:
                raise WorkbenchError(f"The activation cache entry {key} was left without commit; it was discarded.")

    def _owned(self) -> list[Path]:
        """Entries (64-hex-digit folders) and temporary folders; nothing else under root is touched."""
        if not self.root.is_dir():
            return []
        return [
            p for p in self.root.iterdir()
            if p.is_dir() and (is_temporary(p.name) or (len(p.name) == 64 and all(c in "0123456789abcdef" for c in p.name)))
        ]

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for entry in self._owned() for f in entry.rglob("*") if f.is_file())

    def clear(self) -> None:
        for entry in self._owned():
            shutil.rmtree(entry, ignore_errors=True)
