"""The workbench's one database: datasets and their pairs, labeling sessions and votes.

By default it is a SQLite file in the home; ``WORKBENCH_DATABASE_URL=postgresql://…`` puts the
same schema in PostgreSQL for team servers (workbench/db.py knows the difference). On SQLite,
WAL mode lets the web server read while a job process writes, and ``synchronous=FULL`` means a
committed write (an acknowledged vote) survives a power cut; PostgreSQL commits durably by
default. The schema is created and migrated on open: ``MIGRATIONS[i]`` takes the database from
version ``i`` to ``i + 1`` and the ``workbench_schema`` table records how far it got (SQLite
files from before that table kept it in ``PRAGMA user_version``, which is still kept in step),
so later features append a migration and never edit an old one. One connection is shared by
all threads behind a lock; every write runs in one transaction that no other writer of the
store, in any process, runs beside (``Connection.begin_write``), so an import is all or nothing.

For many small concurrent writes (votes) ``write_batched`` commits whatever is queued in one
transaction (group commit), and ``snapshot`` gives each reader its own read-only connection,
so readers never queue behind a writer's fsync.
"""
from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.data.types import Pair
from workbench.db import (
    Connection,
    connect_postgres,
    connect_sqlite,
    database_errors,
    ddl,
    is_url,
    mask_url,
    value_errors,
)
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
    (  # 3: a pair's current votes, counted when a pair is reserved (labeling/selection.py)
        "CREATE INDEX labeling_current_by_pair ON labeling_current (session_id, pair_id)",
    ),
    (  # 4: a judge's probability that A is better (AlpacaEval's fractional preference), beside the outcome
        "ALTER TABLE labeling_events ADD COLUMN soft REAL CHECK (soft IS NULL OR (soft >= 0 AND soft <= 1))",
    ),
    (  # 5: pair reservations as rows, shared by every process on the store (labeling/selection.py reserve)
        """CREATE TABLE labeling_leases (
            session_id INTEGER NOT NULL REFERENCES labeling_sessions(id) ON DELETE CASCADE,
            annotator_id INTEGER NOT NULL REFERENCES labeling_annotators(id) ON DELETE CASCADE,
            pair_id TEXT NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (session_id, annotator_id)
        )""",
    ),
    (  # 6: hidden repeats: a second vote on a pair its annotator already judged, kept out of labeling_current
        "ALTER TABLE labeling_events ADD COLUMN is_repeat INTEGER NOT NULL DEFAULT 0 CHECK (is_repeat IN (0, 1))",
    ),
]

NO_LIMIT = 2**62
PAIR_COLUMNS = "pair_id, prompt, response_a, response_b, preferred, metadata"
NAME_MAX = 100
# C0/C1 control characters (terminal escapes), and the bidi/invisible format characters
# that make a name display as something else.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a dataset, session or annotator (None: it can).

    Names are printed by the CLI and shown in the UI, so they must be short, non-empty text
    without control characters; the caller raises its own error with this reason.
    """
    if not isinstance(name, str) or not name.strip():
        return "it is empty"
    if len(name) > NAME_MAX:
        return f"it is longer than {NAME_MAX} characters"
    bad = _UNSAFE_NAME.search(name)
    if bad:
        return f"it contains the control or invisible character U+{ord(bad.group()):04X}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it contains invalid Unicode (a lone surrogate)"
    return None


class Store:
    """Datasets and pairs in one SQLite file or PostgreSQL database; safe to share between threads."""

    def __init__(self, target: str | Path) -> None:
        """``target``: the SQLite file's path, or a ``postgresql://`` URL (workbench/db.py)."""
        self.url = target if is_url(target) else None
        self.dialect = "postgresql" if self.url else "sqlite"
        # Where the store is, as errors and the CLI show it (a URL's password masked).
        self.path: Path | str = mask_url(self.url) if self.url else Path(target).expanduser()
        self._lock = threading.RLock()
        self._pending: list[tuple[Callable[[Connection], Any], Future]] = []
        self._pending_lock = threading.Lock()
        self._leader = threading.Lock()
        self._local = threading.local()
        self._readers: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        if self.url is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        try:
            if self.dialect == "sqlite":
                self._sqlite_pragmas()
            self._migrate()
        except database_errors() as err:
            self._conn.close()
            raise DataError(f"is not a usable workbench database ({err}).", path=self.path,
                            hint="Move the file away (or set WORKBENCH_HOME to another folder) and start again."
                            if self.url is None else "Point WORKBENCH_DATABASE_URL at a database of its own.") from None
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, *, readonly: bool = False) -> Connection:
        return connect_postgres(self.url) if self.url else connect_sqlite(self.path, readonly=readonly)

    def _sqlite_pragmas(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise DataError(f"cannot be put in WAL mode (journal_mode is '{mode}').", path=self.path,
                            hint="Keep the workbench home on a local disk; network filesystems do not support WAL.")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            self._begin_write()
            try:
                yield self._conn
            except BaseException:
                if not self._conn.broken:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _begin_write(self) -> None:
        """Begin on the shared connection, reconnecting once if the server dropped it (a
        PostgreSQL restart: what was committed is there, and nothing of this write had begun)."""
        try:
            self._conn.begin_write()
        except database_errors():
            if not self._conn.broken:
                raise
            self._conn = self._connect()
            self._conn.begin_write()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """The connection, held for a consistent read (no other thread uses it meanwhile)."""
        with self._lock:
            if self._conn.broken:
                self._conn = self._connect()
            yield self._conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection of this thread's (SQLite) or from a pool (PostgreSQL), holding
        one snapshot for the block.

        Readers never queue behind the writer's fsync (SQLite's WAL and PostgreSQL's MVCC let
        them read meanwhile), so e.g. fetching the next pair never waits for other annotators'
        commits. PostgreSQL connections are pooled rather than kept per thread, so a server's
        many worker threads open only as many as read at once.
        """
        conn = self._reader()
        try:
            try:
                conn.begin_read()
            except database_errors():  # a pooled connection the restarted server dropped: once more on a new one
                if not conn.broken:
                    raise
                conn = self._connect()
                conn.begin_read()
            try:
                yield conn
            finally:
                if not conn.broken:
                    conn.execute("COMMIT")
        finally:
            if self.url is not None:
                if conn.broken:
                    conn.close()
                else:
                    self._readers.put(conn)

    def _reader(self) -> Connection:
        if self.url is None:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect(readonly=True)
            return conn
        while True:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                return self._connect()
            if not conn.broken:
                return conn

    def write_batched(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in a write transaction shared with the writes queued meanwhile (group commit).

        Concurrent small writes would each wait for their own fsync; instead the first writer
        to get the lead commits everything queued so far in one transaction, each piece inside
        its own SAVEPOINT so a refused one rolls back alone. A result is returned only after
        COMMIT, so an acknowledged write is durable.
        """
        done: Future = Future()
        with self._pending_lock:
            self._pending.append((work, done))
        while not done.done():
            # Lead when nobody does; otherwise wait for the leader to settle our future (a
            # blocking acquire would let an unfair lock starve a follower that is already done).
            if not self._leader.acquire(blocking=False):
                wait_futures([done], timeout=0.002)
                continue
            try:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                if batch:
                    self._settle(batch)
            finally:
                self._leader.release()
        return done.result()

    def _settle(self, batch: list[tuple[Callable[[Connection], Any], Future]]) -> None:
        try:
            results = self._commit_batch(batch)
        except BaseException as err:
            for _, fut in batch:
                fut.set_exception(err)
            return
        for (_, fut), (ok, value) in zip(batch, results, strict=True):
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _commit_batch(self, batch: list[tuple[Callable[[Connection], Any], Future]]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        with self.transaction() as conn:
            for work, _ in batch:
                conn.execute("SAVEPOINT batched")
                try:
                    results.append((True, work(conn)))
                except Exception as err:
                    conn.execute("ROLLBACK TO batched")
                    results.append((False, err))
                conn.execute("RELEASE batched")
        return results

    @property
    def schema_version(self) -> int:
        with self.reading() as conn:
            return conn.execute("SELECT version FROM workbench_schema").fetchone()[0]

    def _migrate(self) -> None:
        with self.transaction() as conn:  # one writer at a time: two processes opening a new store migrate once
            conn.execute("CREATE TABLE IF NOT EXISTS workbench_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM workbench_schema").fetchone()
            if row is not None:
                version = row[0]
            else:  # a new store, or a SQLite file from before workbench_schema (its version in user_version)
                version = conn.execute("PRAGMA user_version").fetchone()[0] if self.dialect == "sqlite" else 0
                conn.execute("INSERT INTO workbench_schema (version) VALUES (?)", (version,))
            if version > len(MIGRATIONS):
                raise DataError(
                    f"was written by a newer workbench (schema version {version}; this one knows {len(MIGRATIONS)}).",
                    path=self.path, hint="Upgrade preference-workbench, or use another WORKBENCH_HOME.",
                )
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(ddl(sql, self.dialect))
            if version < len(MIGRATIONS):
                conn.execute("UPDATE workbench_schema SET version = ?", (len(MIGRATIONS),))
            if self.dialect == "sqlite":  # older workbenches read this one, and refuse a newer file
                conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        while not self._readers.empty():
            self._readers.get_nowait().close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datasets -------------------------------------------------------------------------

    def _dataset_id(self, conn: Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM datasets ORDER BY id")]
            raise DataError(f"No dataset named '{name}'.", path=self.path,
                            hint=f"Known datasets: {', '.join(known)}." if known else "Import one first (Store.import_pairs).")
        return row[0]

    def _free_name(self, conn: Connection, name: str) -> str:
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
        with self.transaction() as conn:
            return self.insert_pairs(conn, name, pairs, source=source, format=format, replace=replace)

    def insert_pairs(self, conn: Connection, name: str, pairs: Iterable[Pair], *, source: str = "", format: str = "",
                     replace: bool = False) -> int:
        """``import_pairs``'s writes inside the caller's transaction, so an import that also
        writes other rows (a session and its votes) rolls back as a whole."""
        problem = name_problem(name)
        if problem:
            raise DataError(f"The dataset name {str(name)[:NAME_MAX]!r} cannot be used: {problem}.", field="name",
                            hint="Use plain text such as the file's stem, e.g. 'hh-rlhf-sample'.")
        name = name.strip()
        pairs = list(pairs)
        if not pairs:
            raise DataError(f"Nothing to import into '{name}': no pairs given.",
                            hint="Check the source file and the reader's limit.")
        repeated = [pid for pid, n in Counter(p.id for p in pairs).items() if n > 1]
        if repeated:
            raise DataError(f"Pair id '{repeated[0]}' appears more than once ({len(repeated)} ids repeat).",
                            field="id", hint="Pair ids must be unique within a dataset; read the file with read_pairs, "
                                             "which gives repeated content distinct ids.")
        row = conn.execute("SELECT id, n_pairs FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is not None:
            if not replace:
                raise DataError(f"A dataset named '{name}' already exists ({row[1]} pairs).",
                                hint=f"Choose another name, e.g. '{self._free_name(conn, name)}', or replace it "
                                     "(--replace on the command line, replace=True in Python).")
            conn.execute("DELETE FROM datasets WHERE id = ?", (row[0],))
        dataset_id = conn.insert(
            "INSERT INTO datasets (name, source, format, n_pairs, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, str(source), format, len(pairs), time.time()),
        )
        try:
            conn.executemany(
                f"INSERT INTO pairs (dataset_id, position, {PAIR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_pair_row(dataset_id, i, p) for i, p in enumerate(pairs)),
            )
        except value_errors() as err:
            raise DataError(f"Import of '{name}' failed and was rolled back: {err}.", path=self.path,
                            hint="Pairs need text responses and preferred set to 'A', 'B', 'tie' or None.") from None
        return len(pairs)

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset, oldest first, as ``{id, name, source, format, n_pairs, created_at}``."""
        with self.reading() as conn:
            cur = conn.execute("SELECT id, name, source, format, n_pairs, created_at FROM datasets ORDER BY id")
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur]

    def dataset_capabilities(self) -> dict[str, frozenset[str]]:
        """Each stored dataset's capabilities (``plugin_types.DATASET_CAPABILITIES``), oldest first:
        every one has ``pairs``; ``labeled`` when a pair has a winner (what DPO and reward heads need)."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT d.name, EXISTS (SELECT 1 FROM pairs p WHERE p.dataset_id = d.id AND p.preferred IN ('A', 'B')) "
                "FROM datasets d ORDER BY d.id").fetchall()
        return {name: frozenset({"pairs", "labeled"} if labeled else {"pairs"}) for name, labeled in rows}

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset and its pairs."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM datasets WHERE id = ?", (self._dataset_id(conn, name),))

    # -- pairs ----------------------------------------------------------------------------

    def get_pairs(self, dataset: str, offset: int = 0, limit: int | None = None) -> list[Pair]:
        """Pairs in their original order; ``offset``/``limit`` page through big datasets."""
        with self.reading() as conn:
            dataset_id = self._dataset_id(conn, dataset)
            rows = conn.execute(  # no LIMIT -1: PostgreSQL refuses a negative limit
                f"SELECT {PAIR_COLUMNS} FROM pairs WHERE dataset_id = ? ORDER BY position LIMIT ? OFFSET ?",
                (dataset_id, NO_LIMIT if limit is None else limit, offset),
            ).fetchall()
        return [row_pair(r) for r in rows]

    def get_pair(self, dataset: str, pair_id: str) -> Pair:
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT {PAIR_COLUMNS} FROM pairs WHERE dataset_id = ? AND pair_id = ?",
                (self._dataset_id(conn, dataset), pair_id),
            ).fetchone()
        if row is None:
            raise DataError(f"Dataset '{dataset}' has no pair with id '{pair_id}'.", path=self.path,
                            hint="List the dataset's pairs (get_pairs) to see which ids exist.")
        return row_pair(row)

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


def row_pair(row: tuple[Any, ...]) -> Pair:
    """A ``Pair`` from a ``SELECT {PAIR_COLUMNS}`` row."""
    pair_id, prompt, a, b, preferred, metadata = row
    return Pair(prompt=json.loads(prompt), response_a=a, response_b=b, id=pair_id, preferred=preferred,
                metadata=json.loads(metadata))
