"""The store on a real SQLite file and a real PostgreSQL server (``store_target``): all-or-nothing
imports, persistence, migrations, threads."""
from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import free_port
from pg import PASSWORD

from workbench import store as store_module
from workbench.data.readers import read_pairs
from workbench.data.types import Pair
from workbench.db import connect_postgres, connect_sqlite, is_url, mask_url
from workbench.errors import ConfigError, DataError
from workbench.settings import Settings
from workbench.store import MIGRATIONS, Store

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def make_pairs(n: int, tag: str = "") -> list[Pair]:
    return [Pair(f"{tag}prompt {i}", f"answer a{i}", f"answer b{i}", preferred=("A", "B", "tie", None)[i % 4],
                 metadata={"i": i, "tag": tag}) for i in range(n)]


def table_counts(target: str | Path) -> tuple[int, int]:
    """Count rows through a separate connection: what another process would see."""
    conn = connect_postgres(target) if is_url(target) else connect_sqlite(Path(target))
    try:
        return (conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])
    finally:
        conn.close()


def test_pragmas_and_schema_version(tmp_path: Path) -> None:
    with Store(tmp_path / "wb.sqlite") as st:
        with st.reading() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"datasets", "pairs"} <= tables
        assert st.schema_version == len(MIGRATIONS) >= 1


def test_import_and_read_back_every_fixture(store_target: str | Path) -> None:
    with Store(store_target) as st:
        for name in ("hh_rlhf.jsonl", "trl_conversational.jsonl", "sharegpt.json", "alpacaeval.json", "unlabeled.csv"):
            pairs = read_pairs(FIXTURES / name)
            assert st.import_pairs(name, pairs, source=str(FIXTURES / name), format="auto") == len(pairs)
            back = st.get_pairs(name)
            assert [p.to_dict() for p in back] == [p.to_dict() for p in pairs]
            assert st.get_pair(name, pairs[-1].id).to_dict() == pairs[-1].to_dict()
            assert st.count_pairs(name) == len(pairs)
        listed = st.list_datasets()
        assert [d["name"] for d in listed][:2] == ["hh_rlhf.jsonl", "trl_conversational.jsonl"]
        assert listed[0]["n_pairs"] == 4 and listed[0]["source"].endswith("hh_rlhf.jsonl") and listed[0]["created_at"] > 0


def test_paging_keeps_original_order(store_target: str | Path) -> None:
    pairs = make_pairs(25)
    with Store(store_target) as st:
        st.import_pairs("big", pairs)
        assert [p.id for p in st.get_pairs("big", offset=10, limit=5)] == [p.id for p in pairs[10:15]]
        assert [p.id for p in st.get_pairs("big", offset=20)] == [p.id for p in pairs[20:]]
        assert st.get_pairs("big", offset=30) == []


def test_failing_import_leaves_no_rows_and_no_dataset(store_target: str | Path) -> None:
    """Pair 150 of 200 cannot be serialised: the 149 rows already inserted are rolled back."""
    db = store_target
    pairs = make_pairs(200)
    pairs[149].metadata["when"] = object()
    with Store(db) as st:
        st.import_pairs("existing", make_pairs(3, "x"))
        with pytest.raises(DataError) as err:
            st.import_pairs("broken", pairs)
        assert "Pair 150" in str(err.value) and err.value.field == "metadata"
        assert [d["name"] for d in st.list_datasets()] == ["existing"]
        # a database constraint failing mid-insert rolls back the same way
        bad_label = make_pairs(10)
        bad_label[7].preferred = "C"
        with pytest.raises(DataError, match="rolled back"):
            st.import_pairs("broken", bad_label)
        # and the store is still usable afterwards
        assert st.import_pairs("broken", make_pairs(5)) == 5
    assert table_counts(db) == (2, 8)


def test_duplicate_name_and_replace(store_target: str | Path) -> None:
    with Store(store_target) as st:
        st.import_pairs("hh", make_pairs(4))
        with pytest.raises(DataError) as err:
            st.import_pairs("hh", make_pairs(2))
        assert "already exists (4 pairs)" in str(err.value) and "'hh-2'" in str(err.value) and "replace=True" in str(err.value)
        assert st.count_pairs("hh") == 4
        st.import_pairs("hh", make_pairs(2, "new "), replace=True)
        assert st.count_pairs("hh") == 2 and st.get_pairs("hh")[0].prompt == "new prompt 0"
    assert table_counts(store_target) == (1, 2)


def test_data_survives_close_and_reopen(store_target: str | Path) -> None:
    db = store_target
    pairs = read_pairs(FIXTURES / "trl_conversational.jsonl")
    st = Store(db)
    st.import_pairs("chat", pairs)
    st.close()
    with Store(db) as again:
        assert [p.to_dict() for p in again.get_pairs("chat")] == [p.to_dict() for p in pairs]
        assert again.schema_version == len(MIGRATIONS)


def test_unknown_names_and_bad_input(store_target: str | Path) -> None:
    with Store(store_target) as st:
        with pytest.raises(DataError, match="Import one first"):
            st.get_pairs("nope")
        st.import_pairs("a", make_pairs(2))
        with pytest.raises(DataError, match="Known datasets: a"):
            st.count_pairs("nope")
        with pytest.raises(DataError, match="no pair with id 'zzz'"):
            st.get_pair("a", "zzz")
        with pytest.raises(DataError, match="it is empty"):
            st.import_pairs("  ", make_pairs(1))
        # Names are printed by `workbench data list`: a terminal escape or a bidi override is refused.
        for bad, char in (("red\x1b[31m", "U+001B"), ("evil\u202etxt", "U+202E"), ("a\nb", "U+000A")):
            with pytest.raises(DataError, match=re.escape(char)):
                st.import_pairs(bad, make_pairs(1))
        with pytest.raises(DataError, match="lone surrogate"):
            st.import_pairs("a\ud800", make_pairs(1))
        assert [d["name"] for d in st.list_datasets()] == ["a"]
        with pytest.raises(DataError, match="no pairs given"):
            st.import_pairs("empty", [])
        dup = make_pairs(2)
        dup[1].id = dup[0].id
        with pytest.raises(DataError, match="appears more than once"):
            st.import_pairs("dup", dup)
        with pytest.raises(DataError, match="No dataset named 'nope'"):
            st.delete_dataset("nope")
        assert [d["name"] for d in st.list_datasets()] == ["a"]


def test_delete_dataset_removes_its_pairs(store_target: str | Path) -> None:
    db = store_target
    with Store(db) as st:
        st.import_pairs("a", make_pairs(3))
        st.import_pairs("b", make_pairs(4, "b"))
        st.delete_dataset("a")
        assert [d["name"] for d in st.list_datasets()] == ["b"]
    assert table_counts(db) == (1, 4)


def test_not_a_database_and_newer_schema(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="not a usable workbench database"):
        Store(junk)
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(DataError, match="newer workbench"):
        Store(newer)


def test_a_later_migration_applies_once_on_open(store_target: str | Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """How later issues add tables: append to MIGRATIONS; old databases are upgraded in place."""
    db = store_target
    with Store(db) as st:
        st.import_pairs("a", make_pairs(2))
    extended = [*MIGRATIONS, ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",)]
    monkeypatch.setattr(store_module, "MIGRATIONS", extended)
    with Store(db) as st:
        assert st.schema_version == len(extended)
        assert st.count_pairs("a") == 2
        with st.transaction() as conn:
            conn.execute("INSERT INTO notes (text) VALUES ('hello')")
    with Store(db) as st:  # reopening does not re-run the migration
        with st.reading() as conn:
            assert conn.execute("SELECT text FROM notes").fetchall() == [("hello",)]


def test_concurrent_reads_and_a_write_from_threads(store_target: str | Path) -> None:
    pairs = make_pairs(300)
    with Store(store_target) as st:
        st.import_pairs("shared", pairs)
        expected = [p.to_dict() for p in pairs]
        errors: list[BaseException] = []
        barrier = threading.Barrier(9)

        def reader(k: int) -> None:
            try:
                barrier.wait()
                for i in range(30):
                    start = (k * 37 + i * 11) % 290
                    got = st.get_pairs("shared", offset=start, limit=10)
                    assert [p.to_dict() for p in got] == expected[start:start + 10]
                    assert st.get_pair("shared", pairs[start].id).response_a == pairs[start].response_a
                    assert st.count_pairs("shared") == 300
            except BaseException as e:  # reported to the main thread below
                errors.append(e)

        def writer() -> None:
            try:
                barrier.wait()
                for j in range(5):
                    st.import_pairs(f"w{j}", make_pairs(50, f"w{j}"))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)] + [threading.Thread(target=writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors[0]
        assert sorted(d["name"] for d in st.list_datasets()) == ["shared", "w0", "w1", "w2", "w3", "w4"]


def test_two_stores_on_one_file_see_each_others_commits(store_target: str | Path) -> None:
    """WAL: a second connection (another process, in real use) reads what the first committed."""
    db = store_target
    with Store(db) as a, Store(db) as b:
        a.import_pairs("from-a", make_pairs(3))
        assert b.count_pairs("from-a") == 3


def test_postgres_schema_version_lives_in_a_table(postgres) -> None:
    url = postgres.new_database()
    with Store(url) as st:
        assert st.dialect == "postgresql" and st.schema_version == len(MIGRATIONS)
        with st.transaction() as conn:
            conn.execute("UPDATE workbench_schema SET version = ?", (len(MIGRATIONS) + 5,))
    with pytest.raises(DataError, match="newer workbench") as err:
        Store(url)
    assert PASSWORD not in str(err.value) and "wb:***@" in str(err.value)


def test_text_postgresql_cannot_hold_is_a_clear_error_and_rolls_back(postgres) -> None:
    with Store(postgres.new_database()) as st:
        pairs = make_pairs(3)
        pairs[2].response_b = "nul \x00 byte"
        with pytest.raises(DataError, match="rolled back"):
            st.import_pairs("nul", pairs)
        assert st.list_datasets() == []


def test_database_url_mistakes_name_the_setting_and_never_show_the_password(postgres, monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WORKBENCH_DATABASE_URL") as err:
        Settings(home=tmp_path, database_url="mysql://wb:hunter2@127.0.0.1/db")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="Cannot connect") as err:
        Store(f"postgresql://wb:hunter2@127.0.0.1:{free_port()}/nowhere")
    assert "hunter2" not in str(err.value) and "wb:***@127.0.0.1" in str(err.value)
    url = postgres.new_database()
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    settings = Settings(home=tmp_path)
    assert settings.store_target == url and PASSWORD not in repr(settings) and PASSWORD not in settings.store_location
    monkeypatch.delenv("WORKBENCH_DATABASE_URL")
    secret = tmp_path / "db-url"
    secret.write_text(url + "\n", encoding="utf-8")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL_FILE", str(secret))
    assert Settings(home=tmp_path).store_target == url


def test_a_sqlite_file_from_before_the_schema_table_keeps_its_version(tmp_path: Path) -> None:
    """Files written before workbench_schema kept their version in PRAGMA user_version only."""
    db = tmp_path / "old.sqlite"
    with Store(db) as st:
        st.import_pairs("a", make_pairs(2))
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE workbench_schema")
    conn.commit()
    conn.close()
    with Store(db) as st:  # re-running migration 1 would fail: its tables exist
        assert st.schema_version == len(MIGRATIONS) and st.count_pairs("a") == 2


def test_a_store_outlives_a_postgresql_restart(postgres) -> None:
    """The server restarts under an open store (its connections dropped): the next read and
    write reconnect, and what was committed before is there."""
    with Store(postgres.new_database()) as st:
        st.import_pairs("before", make_pairs(3))
        assert st.count_pairs("before") == 3 and st.list_datasets()[0]["name"] == "before"
        with st.snapshot():  # a pooled reader connection, dropped by the restart
            pass
        postgres.restart()
        with st.snapshot() as conn:
            assert conn.execute("SELECT COUNT(*) FROM pairs").fetchone()[0] == 3
        st.import_pairs("after", make_pairs(2))
        assert st.count_pairs("after") == 2


def test_mask_url_hides_every_password_form() -> None:
    assert mask_url("postgresql://wb:pw@db:5432/wb?sslmode=require") == "postgresql://wb:***@db:5432/wb?sslmode=require"
    assert mask_url("postgresql://db/wb?user=wb&password=pw&sslmode=require") == "postgresql://db/wb?user=wb&password=***&sslmode=require"
    assert mask_url("postgresql://wb@db/wb") == "postgresql://wb@db/wb"
