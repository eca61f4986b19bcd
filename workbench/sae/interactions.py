"""Interaction data for sequential recommenders: ``user,item,timestamp`` plus item attributes.

Reads plain CSVs (our own column names or MovieLens's ``userId,movieId,timestamp`` and
``movieId,title,genres``). Items are re-indexed ``1..n_items`` (0 is padding); each user's
items are sorted by time. Every problem names the file, line and column.
"""
from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.errors import DataError

USER_COLUMNS = ("user", "user_id", "userId")
ITEM_COLUMNS = ("item", "item_id", "movieId", "itemId")
TIME_COLUMNS = ("timestamp", "time", "ts")
ATTRIBUTE_COLUMNS = ("attributes", "genres", "categories", "category", "attribute")
TITLE_COLUMNS = ("title", "name")
NO_ATTRIBUTE = "(no genres listed)"


@dataclass
class Interactions:
    """Time-ordered item sequences per user and the attributes of each item.

    ``sequences[u]`` holds item indices (1-based). ``item_attributes[i]`` is the attribute
    set of item index ``i`` (index 0, padding, has none).
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


def _pick(header: Sequence[str], wanted: str | None, candidates: Sequence[str], path: Path, role: str) -> str:
    if wanted:
        if wanted in header:
            return wanted
        close = difflib.get_close_matches(wanted, list(header), n=1)
        raise DataError(f"No column {wanted!r} for the {role}; the header has {', '.join(header)}.", path=path, line=1,
                        field=wanted, hint=f"Did you mean {close[0]!r}?" if close else f"Name the {role} column with the matching option.")
    for c in candidates:
        if c in header:
            return c
    raise DataError(f"No {role} column; the header has {', '.join(header) or 'nothing'}.", path=path, line=1,
                    hint=f"Name it one of {', '.join(candidates)}, or pass the column name.")


def _rows(path: Path) -> tuple[list[str], csv.DictReader]:
    """Header and row reader of a whole UTF-8 CSV (read at once: interaction files are small)."""
    if not path.exists():
        raise DataError("No such file.", path=path, hint="Check the path; interaction data is a CSV with user, item and timestamp columns.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"Not UTF-8 text ({exc.reason}).", path=path, hint="Save the CSV as UTF-8.") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise DataError("The file is empty.", path=path, hint="Give it a header row and one row per record.")
    reader.fieldnames = header
    return header, reader


def read_item_attributes(path: str | Path, *, item_column: str | None = None, attribute_column: str | None = None,
                         separator: str = "|") -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """Item id → attribute set (``a|b|c`` cells), and item id → title where a title column exists."""
    path = Path(path).expanduser()
    header, reader = _rows(path)
    item_col = _pick(header, item_column, ITEM_COLUMNS, path, "item id")
    attr_col = _pick(header, attribute_column, ATTRIBUTE_COLUMNS, path, "attributes")
    title_col = next((c for c in TITLE_COLUMNS if c in header), None)
    attrs: dict[str, frozenset[str]] = {}
    titles: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        item = (row.get(item_col) or "").strip()
        if not item:
            raise DataError("Empty item id.", path=path, line=line, field=item_col)
        if item in attrs:
            raise DataError(f"Item {item!r} is listed twice.", path=path, line=line, field=item_col,
                            hint="Give each item one row; put several attributes in one cell separated by '|'.")
        cell = row.get(attr_col) or ""
        attrs[item] = frozenset(a.strip() for a in cell.split(separator) if a.strip() and a.strip() != NO_ATTRIBUTE)
        if title_col:
            titles[item] = row.get(title_col) or item
    if not attrs:
        raise DataError("No item rows after the header.", path=path)
    return attrs, titles


def read_interactions(path: str | Path, attributes_path: str | Path | None = None, *, user_column: str | None = None,
                      item_column: str | None = None, time_column: str | None = None, attribute_column: str | None = None,
                      min_length: int = 3, separator: str = "|") -> Interactions:
    """Read interactions (and item attributes) into time-ordered sequences.

    Users with fewer than ``min_length`` interactions are dropped (they cannot give a
    training, validation and test item). Items missing from the attribute file get no
    attributes; attribute rows for items nobody interacted with are ignored.
    """
    path = Path(path).expanduser()
    header, reader = _rows(path)
    users_col = _pick(header, user_column, USER_COLUMNS, path, "user id")
    item_col = _pick(header, item_column, ITEM_COLUMNS, path, "item id")
    time_col = _pick(header, time_column, TIME_COLUMNS, path, "timestamp")
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for line, row in enumerate(reader, start=2):
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
    kept = {u: sorted(rows) for u, rows in per_user.items() if len(rows) >= min_length}
    if not kept:
        raise DataError(f"No user has {min_length} or more interactions.", path=path,
                        hint="A sequential recommender needs at least a training, a validation and a test item per user.")
    raw_items = sorted({item for rows in kept.values() for _, _, item in rows}, key=_natural)
    index = {item: i + 1 for i, item in enumerate(raw_items)}
    attrs: dict[str, frozenset[str]] = {}
    titles: dict[str, str] = {}
    if attributes_path is not None:
        attrs, titles = read_item_attributes(attributes_path, item_column=item_column if item_column in (None, *ITEM_COLUMNS) else None,
                                             attribute_column=attribute_column, separator=separator)
    item_attributes = [frozenset()] + [attrs.get(item, frozenset()) for item in raw_items]
    attribute_names = sorted({a for s in item_attributes for a in s})
    users = sorted(kept, key=_natural)
    return Interactions(
        users=users, items=raw_items,
        sequences=[np.array([index[item] for _, _, item in kept[u]], dtype=np.int64) for u in users],
        item_attributes=item_attributes, item_titles=["<pad>"] + [titles.get(item, item) for item in raw_items],
        attributes=attribute_names, source=str(path), dropped_users=len(per_user) - len(kept),
        info={"interactions": sum(len(r) for r in kept.values()), "items_with_attributes": sum(1 for s in item_attributes if s)},
    )


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)
