"""Interaction data for sequential recommenders: ``user,item,timestamp`` plus item attributes.

Reads delimited text files (comma, tab, semicolon or space, detected from the header unless
``sep`` names one) with our own column names, MovieLens's ``userId,movieId,timestamp`` and
``movieId,title,genres``, or Amazon-style ``user_id item_id time`` logs and ``item_id,i_category``
attribute tables. Items are re-indexed ``1..n_items`` (0 is padding); each user's items are
sorted by time, equal timestamps by file order (counted, since the held-out item depends on it).
Every problem names the file, line and column, and the option that fixes it.
"""
from __future__ import annotations

import ast
import csv
import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from workbench.data.readers import read_user_text
from workbench.errors import ConfigError, DataError

USER_COLUMNS = ("user", "user_id", "userId")
ITEM_COLUMNS = ("item", "item_id", "movieId", "itemId")
TIME_COLUMNS = ("timestamp", "time", "ts")
ATTRIBUTE_COLUMNS = ("attributes", "genres", "categories", "category", "attribute")
TITLE_COLUMNS = ("title", "name")
NO_ATTRIBUTE = "(no genres listed)"
SEPARATORS = {"comma": ",", "tab": "\t", "\\t": "\t", "semicolon": ";", "space": " "}
SEPARATOR_NAMES = {v: k for k, v in SEPARATORS.items() if k != "\\t"}
LIST_SAMPLE = 100  # cells looked at to decide whether a column holds lists


@dataclass
class Interactions:
    """Time-ordered item sequences per user and the attributes of each item.

    ``sequences[u]`` holds item indices (1-based). ``item_attributes[i]`` is the attribute
    set of item index ``i`` (index 0, padding, has none). ``notes`` says what the reader
    decided on the user's behalf (separator, attribute column, ignored columns, ties).
    """

    users: list[str]
    items: list[str]  # items[i - 1] is the raw id of item index i
    sequences: list[np.ndarray]
    item_attributes: list[frozenset[str]]
    item_titles: list[str]
    attributes: list[str]
    source: str = ""
    dropped_users: int = 0
    info: dict[str, int] = field(default_factory=dict)
    separator: str = ","
    notes: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return len(self.users)

    def attribute_matrix(self) -> np.ndarray:
        """``[n_items + 1, n_attributes]`` 0/1 matrix; row 0 (padding) is all zero."""
        index = {a: j for j, a in enumerate(self.attributes)}
        out = np.zeros((self.n_items + 1, len(self.attributes)), dtype=np.float32)
        for i, attrs in enumerate(self.item_attributes):
            for a in attrs:
                out[i, index[a]] = 1.0
        return out

    def title(self, item: int) -> str:
        return self.item_titles[item] if 0 < item < len(self.item_titles) else "<pad>"


@dataclass
class ItemAttributes:
    """What an item attribute file holds: item id → attribute set and → title."""

    attributes: dict[str, frozenset[str]]
    titles: dict[str, str]
    column: str
    separator: str
    notes: list[str]


@dataclass
class _Table:
    path: Path
    header: list[str]
    rows: list[dict[str, str]]
    separator: str


def separator_name(sep: str) -> str:
    """``'\\t'`` → ``tab``: how notes and hints spell a separator."""
    return SEPARATOR_NAMES.get(sep, repr(sep))


def _separator(sep: str | None) -> str | None:
    """The character ``sep`` names (``tab``, ``\\t``, ``;`` …), or None to detect it."""
    if sep is None or sep == "":
        return None
    if sep in SEPARATORS:
        return SEPARATORS[sep]
    if len(sep) != 1:
        raise ConfigError(f"Separator {sep!r} is not one character.",
                          hint="Use comma, tab, semicolon, space or a single character; leave it unset to detect it.")
    return sep


def sniff_separator(first_line: str) -> str:
    """The separator of a header line: the one of comma, tab, semicolon that splits it most, else spaces."""
    counts = {d: len(next(csv.reader([first_line], delimiter=d))) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])  # ties go to the earlier: comma, then tab
    if counts[best] > 1:
        return best
    return " " if len(first_line.split()) > 1 else ","


def _read_table(path: Path, sep: str | None) -> _Table:
    """A whole UTF-8 delimited file (read at once: interaction files are small), header stripped."""
    if not path.exists():
        raise DataError("No such file.", path=path, hint="Check the path; interaction data is a table with user, item and timestamp columns.")
    text = read_user_text(path)  # the readers' opener: a FIFO or device is refused, not hung on
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise DataError("The file is empty.", path=path, hint="Give it a header row and one row per record.")
    delimiter = _separator(sep) or sniff_separator(first)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, skipinitialspace=delimiter == " ")
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    return _Table(path, header, list(reader), delimiter)


def _pick(table: _Table, wanted: str | None, candidates: Sequence[str], role: str, option: str) -> str:
    """The column for ``role``: the one named by ``option``, else the first known name present."""
    header, path = table.header, table.path
    how = f"Pass --{option.replace('_', '-')} NAME (config key {option})"
    if len(header) == 1:
        hint = (f"The header is one column when split on {separator_name(table.separator)}: the file may use another separator. "
                f"Pass --sep comma|tab|semicolon|space (config key sep), or leave it unset to detect it.")
    else:
        hint = None
    if wanted:
        if wanted in header:
            return wanted
        close = difflib.get_close_matches(wanted, list(header), n=1)
        raise DataError(f"No column {wanted!r} for the {role}; the header has {', '.join(header)}.", path=path, line=1,
                        field=wanted, hint=hint or (f"Did you mean {close[0]!r}?" if close else f"{how} with one of those columns."))
    for c in candidates:
        if c in header:
            return c
    raise DataError(f"No {role} column; the header has {', '.join(header) or 'nothing'}.", path=path, line=1,
                    hint=hint or f"Name it one of {', '.join(candidates)}, or {how[0].lower() + how[1:]}.")


def _is_list_column(rows: list[dict[str, str]], column: str) -> bool:
    """Whether the column's cells are list literals like ``['a', 'b']`` (judged on the first non-empty ones)."""
    cells = [c.strip() for c in (r.get(column) or "" for r in rows[:LIST_SAMPLE * 10]) if c.strip()][:LIST_SAMPLE]
    return bool(cells) and all(c.startswith("[") and c.endswith("]") for c in cells)


def _list_cell(cell: str, path: Path, line: int, column: str) -> list[str]:
    """The strings of a list-literal cell, nested lists flattened (Amazon ``[['Books', 'Fiction']]``)."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        raise DataError(f"Cell {cell[:60]!r} looks like a list but is not one.", path=path, line=line, field=column,
                        hint="Write it as ['a', 'b'], or use 'a|b' cells.") from None
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif v is not None:
            out.append(str(v))
    return out


def _attribute_candidates(header: Sequence[str]) -> list[str]:
    """Known attribute column names, then any ``*category*`` or ``genre*`` column (``i_category``)."""
    pattern = [h for h in header if "category" in h.lower() or h.lower().startswith("genre")]
    return [c for c in ATTRIBUTE_COLUMNS if c in header] + [c for c in pattern if c not in ATTRIBUTE_COLUMNS]


def read_item_attributes(path: str | Path, *, item_column: str | None = None, attribute_column: str | None = None,
                         sep: str | None = None, attribute_separator: str = "|") -> ItemAttributes:
    """Item id → attribute set (``a|b|c`` or ``['a', 'b']`` cells), and item id → title where a title column exists.

    Without ``attribute_column`` the first known attribute column is used, then the first
    ``*category*``/``genre*`` column that does not hold lists; other list-valued columns
    (Amazon's ``also_buy``) are ignored and named in a note.
    """
    table = _read_table(Path(path).expanduser(), sep)
    path = table.path
    item_col = _pick(table, item_column, ITEM_COLUMNS, "item id", "item_column")
    if attribute_column:
        attr_col = _pick(table, attribute_column, (), "attributes", "attribute_column")
    else:
        found = _attribute_candidates(table.header)
        plain = [c for c in found if not _is_list_column(table.rows, c)]
        attr_col = _pick(table, None, [*plain, *found] or [*ATTRIBUTE_COLUMNS, "*category*", "genre*"], "attributes", "attribute_column")
    as_lists = _is_list_column(table.rows, attr_col)
    title_col = next((c for c in TITLE_COLUMNS if c in table.header), None)
    notes = [f"{path.name}: separator {separator_name(table.separator)}, item attributes from column {attr_col!r}"
             + (" (list cells)" if as_lists else "")]
    ignored = [c for c in table.header if c not in (item_col, attr_col, title_col) and _is_list_column(table.rows, c)]
    if ignored:
        notes.append(f"{path.name}: list-valued columns ignored: {', '.join(ignored)} (pass --attribute-column to use one)")
    attrs: dict[str, frozenset[str]] = {}
    titles: dict[str, str] = {}
    for line, row in enumerate(table.rows, start=2):
        item = (row.get(item_col) or "").strip()
        if not item:
            raise DataError("Empty item id.", path=path, line=line, field=item_col)
        if item in attrs:
            raise DataError(f"Item {item!r} is listed twice.", path=path, line=line, field=item_col,
                            hint="Give each item one row; put several attributes in one cell separated by '|'.")
        cell = (row.get(attr_col) or "").strip()
        values = _list_cell(cell, path, line, attr_col) if as_lists and cell else cell.split(attribute_separator)
        attrs[item] = frozenset(a.strip() for a in values if a.strip() and a.strip() != NO_ATTRIBUTE)
        if title_col:
            titles[item] = row.get(title_col) or item
    if not attrs:
        raise DataError("No item rows after the header.", path=path)
    return ItemAttributes(attrs, titles, attr_col, table.separator, notes)


def read_interactions(path: str | Path, attributes_path: str | Path | None = None, *, user_column: str | None = None,
                      item_column: str | None = None, time_column: str | None = None, attribute_column: str | None = None,
                      sep: str | None = None, min_length: int = 3, attribute_separator: str = "|") -> Interactions:
    """Read interactions (and item attributes) into time-ordered sequences.

    ``sep`` applies to both files; unset, each file's separator is detected from its header.
    Users with fewer than ``min_length`` interactions are dropped (they cannot give a
    training, validation and test item). Equal timestamps keep file order, so the later line
    is the later interaction; ``info["tied_test_items"]`` counts users whose held-out item
    shares its timestamp with the one before it. Items missing from the attribute file get no
    attributes; attribute rows for items nobody interacted with are ignored.
    """
    table = _read_table(Path(path).expanduser(), sep)
    path = table.path
    users_col = _pick(table, user_column, USER_COLUMNS, "user id", "user_column")
    item_col = _pick(table, item_column, ITEM_COLUMNS, "item id", "item_column")
    time_col = _pick(table, time_column, TIME_COLUMNS, "timestamp", "time_column")
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for line, row in enumerate(table.rows, start=2):
        user, item, stamp = (row.get(users_col) or "").strip(), (row.get(item_col) or "").strip(), (row.get(time_col) or "").strip()
        if not user:
            raise DataError("Empty user id.", path=path, line=line, field=users_col)
        if not item:
            raise DataError("Empty item id.", path=path, line=line, field=item_col)
        try:
            t = float(stamp)
        except ValueError:
            raise DataError(f"Timestamp {stamp!r} is not a number.", path=path, line=line, field=time_col,
                            hint="Use Unix seconds (or any number that orders a user's interactions).") from None
        per_user.setdefault(user, []).append((t, line, item))
    if not per_user:
        raise DataError("No interaction rows after the header.", path=path)
    kept = {u: sorted(rows, key=lambda r: (r[0], r[1])) for u, rows in per_user.items() if len(rows) >= min_length}
    if not kept:
        raise DataError(f"No user has {min_length} or more interactions.", path=path,
                        hint="A sequential recommender needs at least a training, a validation and a test item per user.")
    raw_items = sorted({item for rows in kept.values() for _, _, item in rows}, key=_natural)
    index = {item: i + 1 for i, item in enumerate(raw_items)}
    notes = [f"{path.name}: separator {separator_name(table.separator)}; columns {users_col}, {item_col}, {time_col}"]
    tied_pairs = sum(a[0] == b[0] for rows in kept.values() for a, b in pairwise(rows))
    tied_test = sum(rows[-1][0] == rows[-2][0] for rows in kept.values())
    if tied_pairs:
        notes.append(f"{tied_pairs} consecutive interactions share a timestamp; ties are broken by file order (the later line is "
                     f"the later interaction). For {tied_test} of {len(kept)} users the held-out last item ties with the one before.")
    attrs = ItemAttributes({}, {}, "", table.separator, [])
    if attributes_path is not None:
        attrs = read_item_attributes(attributes_path, item_column=item_column if item_column in (None, *ITEM_COLUMNS) else None,
                                     attribute_column=attribute_column, sep=sep, attribute_separator=attribute_separator)
    item_attributes = [frozenset()] + [attrs.attributes.get(item, frozenset()) for item in raw_items]
    attribute_names = sorted({a for s in item_attributes for a in s})
    users = sorted(kept, key=_natural)
    return Interactions(
        users=users, items=raw_items,
        sequences=[np.array([index[item] for _, _, item in kept[u]], dtype=np.int64) for u in users],
        item_attributes=item_attributes, item_titles=["<pad>"] + [attrs.titles.get(item, item) for item in raw_items],
        attributes=attribute_names, source=str(path), dropped_users=len(per_user) - len(kept),
        info={"interactions": sum(len(r) for r in kept.values()), "items_with_attributes": sum(1 for s in item_attributes if s),
              "tied_interactions": tied_pairs, "tied_test_items": tied_test},
        separator=table.separator, notes=notes + attrs.notes,
    )


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)
