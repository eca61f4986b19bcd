"""Atomic file and folder writes: one helper for every "write then rename" in the project.

A reader never sees half a file, two writers never share a temporary name (each gets a
random one), and a failed write leaves nothing behind (not even parent folders it made).
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import DataError

_TEMP_MARKS = (".tmp-", ".old-")


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is one of ``atomic_path``'s temporaries, which listings must skip."""
    return name.startswith(".") and any(mark in name for mark in _TEMP_MARKS)


@contextmanager
def atomic_path(path: Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path``, on failure it vanishes.

    Works for files and folders (the caller creates the folder). Parent folders created here
    are removed again on failure. With ``keep_existing``, a ``path`` that exists when the write
    finishes wins and this write is discarded: for content-addressed entries, where another
    process may have written the same thing first.
    """
    created: list[Path] = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if keep_existing and path.exists():
            _remove(tmp)
        elif tmp.is_dir() and path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        _remove(tmp)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(err, OSError):
            raise DataError(f"could not be written ({err.strerror or err}).", path=path,
                            hint="Check free disk space and permissions, and that the path is not an existing folder.") from err
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")

