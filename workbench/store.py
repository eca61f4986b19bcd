"""The workbench's one SQLite database: datasets and their pairs (later: sessions, judgments).

WAL mode lets the web server read while a job process writes; ``synchronous=FULL`` means a
committed write (an acknowledged vote) survives a power cut. The schema is created and
migrated on open: ``MIGRATIONS[i]`` takes the database from version ``i`` to ``i + 1`` and
``PRAGMA user_version`` records how far it got, so later features append a migration and
never edit an old one. One connection is shared by all threads behind a lock; every write
runs in one ``BEGIN IMMEDIATE`` transaction, so an import is all or nothing.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.data.types import Pair
from workbench.errors import DataError

MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: datasets and pairs
        """CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL DEFAULT '',
            format TEXT NOT NULL DEFAULT '',
            n_pairs INTEGER NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            pair_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            response_a TEXT NOT NULL,
            response_b TEXT NOT NULL,
            preferred TEXT CHECK (preferred IS NULL OR preferred IN ('A', 'B', 'tie')),
            metadata TEXT NOT NULL DEFAULT '{}',
            UNIQUE (dataset_id, pair_id)
        )""",
        "CREATE INDEX pairs_by_position ON pairs (dataset_id, position)",
    ),
    (  # 2: labeling sessions, annotators and the append-only judgment event log (workbench/labeling)
        """CREATE TABLE labeling_sessions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            dataset TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE labeling_annotators (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES labeling_sessions(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            token TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            UNIQUE (session_id, name)
        )""",
        """CREATE TABLE labeling_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL REFERENCES labeling_sessions(id) ON DELETE CASCADE,
            annotator_id INTEGER NOT NULL REFERENCES labeling_annotators(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('vote', 'undo')),
            pair_id TEXT NOT NULL,
            target INTEGER REFERENCES labeling_events(id),
            outcome TEXT CHECK (outcome IS NULL OR outcome IN ('A', 'B', 'tie', 'both_bad', 'skip')),
            strength INTEGER CHECK (strength IS NULL OR strength IN (1, 2)),
            aspects TEXT NOT NULL DEFAULT '{}',
            rationale TEXT NOT NULL DEFAULT '',
            displayed_order TEXT NOT NULL DEFAULT 'AB' CHECK (displayed_order IN ('AB', 'BA')),
            started_at REAL,
            submitted_at REAL NOT NULL,
            request_id TEXT,
            payload_hash TEXT,
            UNIQUE (session_id, annotator_id, request_id)
        )""",
        """CREATE TABLE labeling_current (
            session_id INTEGER NOT NULL REFERENCES labeling_sessions(id) ON DELETE CASCADE,
            annotator_id INTEGER NOT NULL REFERENCES labeling_annotators(id) ON DELETE CASCADE,
            pair_id TEXT NOT NULL,
            event_id INTEGER NOT NULL REFERENCES labeling_events(id),
            outcome TEXT NOT NULL,
            PRIMARY KEY (session_id, annotator_id, pair_id)
        )""",
        "CREATE INDEX labeling_events_by_pair ON labeling_events (session_id, pair_id)",
        "CREATE INDEX labeling_events_by_target ON labeling_events (target)",
        "CREATE INDEX labeling_events_by_annotator ON labeling_events (session_id, annotator_id, id)",
    ),
]

_PAIR_COLUMNS = "pair_id, prompt, response_a, response_b, preferred, metadata"


class Store:
    """Datasets and pairs in one SQLite file; safe to share between threads."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise DataError(f"cannot be put in WAL mode (journal_mode is '{mode}').", path=self.path,
                                hint="Keep the workbench home on a local disk; network filesystems do not support WAL.")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise DataError(f"is not a usable workbench database ({err}).", path=self.path,
                            hint="Move the file away (or set WORKBENCH_HOME to another folder) and start again.") from None
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, held for a consistent read (no other thread uses it meanwhile)."""
        with self._lock:
            yield self._conn

    @property
    def schema_version(self) -> int:
        with self.reading() as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self.transaction() as conn:  # IMMEDIATE: two processes opening a new file migrate once
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise DataError(
                    f"was written by a newer workbench (schema version {version}; this one knows {len(MIGRATIONS)}).",
                    path=self.path, hint="Upgrade preference-workbench, or use another WORKBENCH_HOME.",
                )
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            if version < len(MIGRATIONS):
                conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datasets -------------------------------------------------------------------------

    def _dataset_id(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM datasets ORDER BY id")]
            raise DataError(f"No dataset named '{name}'.", path=self.path,
                            hint=f"Known datasets: {', '.join(known)}." if known else "Import one first (Store.import_pairs).")
        return row[0]

    def _free_name(self, conn: sqlite3.Connection, name: str) -> str:
        n = 2
        while conn.execute("SELECT 1 FROM datasets WHERE name = ?", (f"{name}-{n}",)).fetchone():
            n += 1
        return f"{name}-{n}"

    def import_pairs(self, name: str, pairs: Iterable[Pair], source: str = "", format: str = "", *,
                     replace: bool = False) -> int:
        """Store ``pairs`` as dataset ``name`` in one transaction; returns how many were stored.

        Either every pair is stored or nothing is (a bad pair rolls the whole import back).
        An existing name is an error unless ``replace=True``, which swaps it atomically.
        """
        name = name.strip()
        if not name:
            raise DataError("A dataset needs a non-empty name.", path=self.path, hint="Pass e.g. the file's stem as name.")
        pairs = list(pairs)
        if not pairs:
            raise DataError(f"Nothing to import into '{name}': no pairs given.", path=self.path,
                            hint="Check the source file and the reader's limit.")
        repeated = [pid for pid, n in Counter(p.id for p in pairs).items() if n > 1]
        if repeated:
            raise DataError(f"Pair id '{repeated[0]}' appears more than once ({len(repeated)} ids repeat).", path=self.path,
                            field="id", hint="Pair ids must be unique within a dataset; read the file with read_pairs, "
                                             "which gives repeated content distinct ids.")
        with self.transaction() as conn:
            row = conn.execute("SELECT id, n_pairs FROM datasets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if not replace:
                    raise DataError(f"A dataset named '{name}' already exists ({row[1]} pairs).", path=self.path,
                                    hint=f"Choose another name, e.g. '{self._free_name(conn, name)}', or pass replace=True.")
                conn.execute("DELETE FROM datasets WHERE id = ?", (row[0],))
            dataset_id = conn.execute(
                "INSERT INTO datasets (name, source, format, n_pairs, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, str(source), format, len(pairs), time.time()),
            ).lastrowid
            try:
                conn.executemany(
                    f"INSERT INTO pairs (dataset_id, position, {_PAIR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (_pair_row(dataset_id, i, p) for i, p in enumerate(pairs)),
                )
            except sqlite3.IntegrityError as err:
                raise DataError(f"Import of '{name}' failed and was rolled back: {err}.", path=self.path,
                                hint="Pairs need text responses and preferred set to 'A', 'B', 'tie' or None.") from None
        return len(pairs)

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset, oldest first, as ``{id, name, source, format, n_pairs, created_at}``."""
        with self.reading() as conn:
            cur = conn.execute("SELECT id, name, source, format, n_pairs, created_at FROM datasets ORDER BY id")
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur]

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset and its pairs."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM datasets WHERE id = ?", (self._dataset_id(conn, name),))

    # -- pairs ----------------------------------------------------------------------------

    def get_pairs(self, dataset: str, offset: int = 0, limit: int | None = None) -> list[Pair]:
        """Pairs in their original order; ``offset``/``limit`` page through big datasets."""
        with self.reading() as conn:
            dataset_id = self._dataset_id(conn, dataset)
            rows = conn.execute(
                f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE dataset_id = ? ORDER BY position LIMIT ? OFFSET ?",
                (dataset_id, -1 if limit is None else limit, offset),
            ).fetchall()
        return [_row_pair(r) for r in rows]

    def get_pair(self, dataset: str, pair_id: str) -> Pair:
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT {_PAIR_COLUMNS} FROM pairs WHERE dataset_id = ? AND pair_id = ?",
                (self._dataset_id(conn, dataset), pair_id),
            ).fetchone()
        if row is None:
            raise DataError(f"Dataset '{dataset}' has no pair with id '{pair_id}'.", path=self.path,
                            hint="List the dataset's pairs (get_pairs) to see which ids exist.")
        return _row_pair(row)

    def count_pairs(self, dataset: str) -> int:
        with self.reading() as conn:
            dataset_id = self._dataset_id(conn, dataset)
            return conn.execute("SELECT COUNT(*) FROM pairs WHERE dataset_id = ?", (dataset_id,)).fetchone()[0]


def _pair_row(dataset_id: int, position: int, pair: Pair) -> tuple[Any, ...]:
    try:
        prompt = json.dumps(pair.prompt, ensure_ascii=False)
        metadata = json.dumps(pair.metadata, ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise DataError(f"Pair {position + 1} (id '{pair.id}') cannot be stored: {err}.", field="metadata",
                        hint="Prompt and metadata must be JSON-serialisable (text, numbers, lists, dicts).") from None
    return (dataset_id, position, pair.id, prompt, pair.response_a, pair.response_b, pair.preferred, metadata)


def _row_pair(row: tuple[Any, ...]) -> Pair:
    pair_id, prompt, a, b, preferred, metadata = row
    return Pair(prompt=json.loads(prompt), response_a=a, response_b=b, id=pair_id, preferred=preferred,
                metadata=json.loads(metadata))
