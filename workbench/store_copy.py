"""``workbench db copy``: a whole store from one database into another (the home's SQLite file
into PostgreSQL when a team outgrows one laptop, and back), all or nothing.

Both stores are opened through ``Store``, so both are migrated to the same schema first; the
rows are then read from one snapshot of the source and written in one transaction of the
target, a batch of rows at a time, with ids kept (votes point at events, events at sessions).
Each table's row count is checked against the source before the commit, and the target must
be empty: any refusal rolls the whole copy back, so a failed copy never leaves half a store.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from workbench.db import Connection, is_url, mask_url, value_errors
from workbench.errors import DataError
from workbench.store import Store

# Every table of the schema, parents before children (foreign keys are checked as rows
# arrive), each with the order its rows are copied in (events point at earlier events).
# A migration that adds a table adds it here too; tests/test_store_copy.py checks that.
COPY_TABLES: tuple[tuple[str, str], ...] = (
    ("datasets", "id"),
    ("pairs", "id"),
    ("labeling_sessions", "id"),
    ("labeling_annotators", "id"),
    ("labeling_events", "id"),
    ("labeling_current", "session_id, annotator_id, pair_id"),
    ("labeling_leases", "session_id, annotator_id"),
)
NOT_COPIED = {"workbench_schema"}  # each store records its own version when it is opened
BATCH_ROWS = 5000


def describe(target: str | Path) -> str:
    """A store's location as printed (a URL's password masked)."""
    return mask_url(target) if is_url(target) else str(target)


def copy_store(source: str | Path, target: str | Path, *, on_table: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every row of the store at ``source`` into the empty store at ``target``; rows per table.

    ``on_table(table, rows)`` is told as each table is done (for the CLI's progress lines).
    """
    if describe(source) == describe(target):
        raise DataError("The source and the target of the copy are the same store.", path=describe(source),
                        hint="Give --to (and --from) two different stores.")
    if not is_url(source) and not Path(source).is_file():
        raise DataError("There is no store to copy here.", path=str(source),
                        hint="Give --from the workbench.sqlite file of a home, or a postgresql:// URL.")
    counts: dict[str, int] = {}
    with Store(source) as src_store, Store(target) as dst_store:
        with src_store.snapshot() as src, dst_store.transaction() as dst:
            _check_tables(src, dst_store.path)
            full = [table for table, _ in COPY_TABLES if dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]]
            if full:
                raise DataError(f"The target store is not empty ({', '.join(full)} already hold rows); nothing was copied.",
                                path=dst_store.path, hint="Copy into a new, empty database (createdb) or a new SQLite file.")
            for table, order in COPY_TABLES:
                counts[table] = _copy_table(src, dst, table, order)
                if on_table:
                    on_table(table, counts[table])
    return counts


def _check_tables(src: Connection, where: Path | str) -> None:
    unknown = src.table_names() - {t for t, _ in COPY_TABLES} - NOT_COPIED
    if unknown:
        raise DataError(f"The source store has tables this copy does not know: {', '.join(sorted(unknown))}; nothing was copied.",
                        path=where, hint="Upgrade preference-workbench on this machine to the version that wrote the store.")


def _copy_table(src: Connection, dst: Connection, table: str, order: str) -> int:
    """Copy one table in batches inside the caller's transaction; its row count, checked."""
    cursor = src.execute(f"SELECT * FROM {table} ORDER BY {order}")
    columns = [d[0] for d in cursor.description]
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    copied = 0
    while batch := list(itertools.islice(cursor, BATCH_ROWS)):
        try:
            dst.executemany(insert, batch)
        except value_errors() as err:
            raise DataError(f"Table {table}: the target refuses a row among {copied + 1}–{copied + len(batch)} ({err}); "
                            "the copy was rolled back.", hint="Fix or delete that row in the source, then copy again.") from None
        copied += len(batch)
    expected = src.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    landed = dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    if not expected == copied == landed:
        raise DataError(f"Table {table}: {expected} rows in the source, {copied} read, {landed} in the target; the copy was rolled back.",
                        hint="Run the copy again; if it repeats, check the source store's file or server.")
    if "id" in columns:
        dst.reset_ids(table)
    return copied
