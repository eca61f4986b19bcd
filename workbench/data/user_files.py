"""Open the files users name, whatever they turn out to be, and stream their records.

Hostile or careless files get one clear error each: only regular files (and dataset folders)
are opened (a named pipe would block forever, a device never ends), whole-file formats
(.json, .csv) have a size cap, JSONL lines are bounded, text must be valid UTF-8, and a JSON
object that repeats a key is marked. Each *container* (JSONL, JSONL.gz, JSON, CSV, Parquet,
a ``datasets.save_to_disk`` folder) yields plain records with their location, so an error
can name the file and line; ``workbench.data.formats`` turns records into pairs.
"""
from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import DataError

MAX_LINE_BYTES = 10 * 1024 * 1024
"""Longest JSONL line / CSV field accepted; longer ones are almost always a broken file."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest .json / .csv file accepted: those are read whole (JSONL is streamed, so has no cap)."""
MAX_DEPTH = 100
"""Deepest nesting of objects/lists accepted in a record; real preference records use under 10."""


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




def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# ---------------------------------------------------------------------------------------
# Containers: each yields (location, record) with 1-based line numbers where lines exist


@dataclass(frozen=True)
class Loc:
    """Where a record came from: its ordinal and, for line-based files, its first line."""

    index: int
    line: int | None

    def error(self, message: str, path: str | Path, *, field: str | None = None, hint: str | None = None) -> FileDataError:
        prefix = "" if self.line is not None else f"record {self.index}: "
        return FileDataError(prefix + message, path=path, line=self.line, field=field, hint=hint)

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"record {self.index}"


@dataclass(frozen=True)
class Limits:
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


def stat_path(path: Path) -> os.stat_result:
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


def open_regular(path: Path) -> io.BufferedReader:
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
    if stat.S_ISDIR(stat_path(path).st_mode):
        raise FileDataError("is a folder, not a file.", path=path, hint="Point at the file itself.")
    return _decode_whole(path, Limits(MAX_LINE_BYTES, MAX_FILE_BYTES))


@contextmanager
def _open_binary(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, gunzipped for .gz (closing both the gzip stream and the file)."""
    with open_regular(path) as f:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                yield g
        else:
            yield f


def _iter_jsonl(path: Path, limits: Limits) -> Iterator[tuple[Loc, Any]]:
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
                             "or binary data. Pass max_line_bytes= to read_pairs for truly huge records.",
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
                yield Loc(index, line_no), value
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise FileDataError(f"is not a readable gzip file ({err}).", path=path,
                        hint="Re-compress it with `gzip`, or rename it without .gz if it is plain text.") from None


def _decode_whole(path: Path, limits: Limits) -> str:
    """Read a whole-file format, at most ``limits.file_bytes`` (the size on disk is not trusted)."""
    with open_regular(path) as f:
        data = f.read(limits.file_bytes + 1)
    if len(data) > limits.file_bytes:
        raise FileDataError(
            f"is larger than {limits.file_bytes / 2**20:,.0f} MiB; {path.suffix or 'this'} files are read whole into memory.",
            path=path,
            hint="Convert it to JSON Lines (.jsonl, one record per line), which is streamed with no size limit, "
                 "or pass max_file_bytes= to read_pairs.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _encoding_error(path, data.count(b"\n", 0, err.start) + 1, err) from None


def _iter_json(path: Path, limits: Limits) -> Iterator[tuple[Loc, Any]]:
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
        raise FileDataError(f"holds a JSON {type_name(doc)}{keys}, not a list of records.", path=path,
                        hint='Use a JSON list of records, {"data": [...]}, or JSON Lines (.jsonl).')
    for i, value in enumerate(doc, start=1):
        yield Loc(i, None), value


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


def _iter_csv(path: Path, limits: Limits) -> Iterator[tuple[Loc, Any]]:
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
            yield Loc(index, start), record
            start = reader.line_num + 1
    except csv.Error as err:
        raise FileDataError(f"is not valid CSV ({err}).", path=path, line=reader.line_num,
                        hint=f"Fix the quoting, or raise MAX_LINE_BYTES (now {limits.line_bytes:,}) for very long cells.") from None
    finally:
        csv.field_size_limit(previous_limit)


def _iter_parquet(path: Path, limits: Limits) -> Iterator[tuple[Loc, Any]]:
    # pyarrow costs a second to import; only Parquet files need it
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open_regular(path) as f:
            pf = pq.ParquetFile(f)
            index = 0
            for batch in pf.iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    index += 1
                    yield Loc(index, None), row
    except (pa.ArrowException, OSError) as err:
        raise FileDataError(f"is not a readable Parquet file ({err}).", path=path,
                        hint="Re-write it with pandas.DataFrame.to_parquet or pyarrow.parquet.write_table.") from None


def _iter_hf_folder(path: Path, limits: Limits) -> Iterator[tuple[Loc, Any]]:
    # datasets costs a second to import; only save_to_disk folders need it
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
        yield Loc(index, None), row


CONTAINERS: dict[str, Callable[[Path, Limits], Iterator[tuple[Loc, Any]]]] = {
    ".jsonl": _iter_jsonl, ".ndjson": _iter_jsonl, ".jsonl.gz": _iter_jsonl,
    ".json": _iter_json, ".csv": _iter_csv, ".parquet": _iter_parquet,
}


def container_for(path: Path) -> Callable[[Path, Limits], Iterator[tuple[Loc, Any]]]:
    if path.is_dir():
        return _iter_hf_folder
    name = path.name.lower()
    for suffix in sorted(CONTAINERS, key=len, reverse=True):
        if name.endswith(suffix):
            return CONTAINERS[suffix]
    raise FileDataError(f"has an unsupported file type '{''.join(path.suffixes) or '(none)'}'.", path=path,
                    hint=f"Supported: {', '.join(CONTAINERS)} and datasets.save_to_disk folders.")




def iter_records(path: Path, limit: int | None, limits: Limits) -> Iterator[tuple[Loc, Any]]:
    """Stream the file's records, stopping after ``limit`` (later lines are never parsed)."""
    try:
        for n, item in enumerate(container_for(path)(path, limits), start=1):
            yield item
            if limit is not None and n >= limit:
                return
    except OSError as err:
        raise FileDataError(f"could not be read ({err.strerror or err}).", path=path,
                        hint="Check that the file is readable and is not still being written.") from None


def check_file(path: Path) -> None:
    """Refuse what is not a data file before choosing a reader (each with its own reason)."""
    st = stat_path(path)
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        with open_regular(path) as f:
            if f.read(1):  # /proc and /sys files report size 0 yet produce text
                raise FileDataError("reports a size of 0 bytes but produces data when read: it is a virtual system file "
                                "(like those under /proc), not a data file; refusing to read it.", path=path,
                                hint="Point at a data file that holds preference records.")
        raise FileDataError("is empty.", path=path, hint="Point at a file that holds preference records.")
