"""``workbench db copy`` between a real SQLite file and a real PostgreSQL server: a home's
datasets, sessions, votes (an undo among them) and leases go over and come back equal, and a
copy into a store that is not empty changes nothing there."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pg import PASSWORD

from workbench.data.types import Pair
from workbench.errors import DataError
from workbench.labeling import LabelingStore
from workbench.store import MIGRATIONS, Store
from workbench.store_copy import COPY_TABLES, NOT_COPIED, copy_store


def fill(target: Path) -> None:
    """Two datasets, a labeled session with an undo and a live lease, and an imported judge's votes."""
    with Store(target) as store:
        store.import_pairs("ds", [Pair(f"q{i}", f"a{i}", f"b{i}", id=f"p{i:02d}", metadata={"i": i}) for i in range(12)])
        lab = LabelingStore(store)
        lab.create_session("s", "ds", {"overlap": 2, "aspects": ["helpful"]})
        for who in ("ann", "bob"):
            lab.join("s", who)
            for _ in range(4):
                item = lab.next_item("s", who)
                lab.vote("s", who, item.pair.id, "A", strength=2, aspects={"helpful": "B"}, rationale="é ✓",
                         displayed_order=item.displayed_order, started_at=1.5)
        lab.undo("s", "ann")
        lab.next_item("s", "bob")  # a live lease
        lab.import_judged_session("judge", "judged", [Pair("q", "a", "b", id="j1")], [("j1", "gpt", "A", 0.75)])


def dump(target: str | Path) -> dict[str, list[tuple]]:
    """Every copied table's rows, in copy order."""
    with Store(target) as store, store.reading() as conn:
        return {table: [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")] for table, order in COPY_TABLES}


def test_copy_covers_every_table_of_the_schema(tmp_path: Path) -> None:
    with Store(tmp_path / "wb.sqlite") as store, store.reading() as conn:
        assert conn.table_names() - NOT_COPIED == {t for t, _ in COPY_TABLES}, "a migration added a table: add it to COPY_TABLES"
        assert len(MIGRATIONS) >= 5


def test_sqlite_to_postgresql_and_back_round_trip(tmp_path: Path, postgres) -> None:
    home = tmp_path / "workbench.sqlite"
    fill(home)
    url = postgres.new_database()
    counts = copy_store(home, url)
    assert counts["labeling_events"] == 10 and counts["labeling_leases"] == 1 and counts["pairs"] == 13
    assert dump(url) == dump(home)
    back = tmp_path / "back.sqlite"
    assert copy_store(url, back) == counts
    assert dump(back) == dump(home)
    with Store(url) as store:  # new rows in PostgreSQL get ids after the copied ones
        lab = LabelingStore(store)
        lab.join("s", "cat")
        item = lab.next_item("s", "cat")
        ack = lab.vote("s", "cat", item.pair.id, "B", displayed_order=item.displayed_order)
        assert ack.event_id == 11
        store.import_pairs("more", [Pair("q", "a", "b", id="m")])


def test_copy_into_a_store_that_is_not_empty_changes_nothing(tmp_path: Path, postgres) -> None:
    home = tmp_path / "workbench.sqlite"
    fill(home)
    url = postgres.new_database()
    with Store(url) as store:
        store.import_pairs("theirs", [Pair("q", "a", "b", id="t")])
    before = dump(url)
    with pytest.raises(DataError, match="not empty") as err:
        copy_store(home, url)
    assert PASSWORD not in str(err.value)
    assert dump(url) == before
    with pytest.raises(DataError, match="same store"):
        copy_store(home, home)
    with pytest.raises(DataError, match="no store to copy"):
        copy_store(tmp_path / "missing.sqlite", url)


def test_a_row_the_target_refuses_rolls_the_whole_copy_back(tmp_path: Path, postgres) -> None:
    """A NUL byte SQLite kept but PostgreSQL refuses, in the last pair: no table is left half copied."""
    home = tmp_path / "workbench.sqlite"
    fill(home)
    with Store(home) as store:
        store.import_pairs("nul", [Pair("q", "a", "b\x00", id="n")])
    url = postgres.new_database()
    with pytest.raises(DataError, match="Table pairs: the target refuses a row .*NUL.*rolled back"):
        copy_store(home, url)
    assert all(rows == [] for rows in dump(url).values())


def test_workbench_db_copy_command_masks_the_password(tmp_path: Path, postgres) -> None:
    fill(tmp_path / "workbench.sqlite")
    url = postgres.new_database()
    env = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "workbench.cli", "db", "copy"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "labeling_events: 10 rows" in run.stdout and "every table's count matches" in run.stdout
    info = subprocess.run([sys.executable, "-m", "workbench.cli", "db", "info"], capture_output=True, text=True, env=env, timeout=120)
    assert info.returncode == 0 and "(postgresql, schema version" in info.stdout
    again = subprocess.run([sys.executable, "-m", "workbench.cli", "db", "copy"], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr + again.stdout
    for out in (run.stdout, run.stderr, info.stdout, again.stdout, again.stderr):
        assert PASSWORD not in out
    assert "wb:***@127.0.0.1" in run.stdout
