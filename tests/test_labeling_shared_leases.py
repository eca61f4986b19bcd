"""Pair reservations live in the store (issue 22 §1), so every process serving one home shares them.

In-process tests open one store through two ``Store`` objects (two connections, no shared
memory: what two processes see); the server test runs two real labeling server processes on
one home and checks the store afterwards. Every test runs on a SQLite file and on a real
PostgreSQL server (``store_target``, tests/pg.py).
"""
from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import backend_env

from plugins.labeling.server import check_workers
from workbench.data.types import Pair
from workbench.errors import ConfigError
from workbench.labeling import LabelingStore
from workbench.store import Store

API = "/api/labeling"


@pytest.fixture
def two_stores(store_target: str | Path) -> Iterator[tuple[LabelingStore, LabelingStore, list[float]]]:
    """Two LabelingStores on one store, sharing a settable clock (seconds) for lease expiry."""
    now = [1000.0]
    with Store(store_target) as one, Store(store_target) as two:
        one.import_pairs("ds", [Pair(f"q{i}", f"a{i}", f"b{i}", id=f"p{i:02d}") for i in range(6)])
        yield LabelingStore(one, clock=lambda: now[0]), LabelingStore(two, clock=lambda: now[0]), now


def test_a_pair_served_by_one_process_is_reserved_in_the_other(two_stores) -> None:
    first, second, now = two_stores
    first.create_session("s", "ds", {"lease_seconds": 60})
    for who in ("a", "b", "c"):
        first.join("s", who)
    assert first.next_item("s", "a").pair.id == "p00"
    assert second.next_item("s", "b").pair.id == "p01"  # p00 is a's, although another store served it
    assert second.next_item("s", "a").pair.id == "p00"  # a reload anywhere shows a the same pair
    now[0] += 30
    assert first.next_item("s", "b").pair.id == "p01"  # b's reload renews their lease ...
    now[0] += 31  # ... while a's, idle past lease_seconds, expires: p00 is free again
    assert second.next_item("s", "c").pair.id == "p00"
    assert first.next_item("s", "a").pair.id == "p02"


def test_vote_skip_undo_and_close_free_the_reservation_for_every_process(two_stores) -> None:
    first, second, _ = two_stores
    first.create_session("s", "ds")
    for who in ("a", "b"):
        first.join("s", who)
    item = first.next_item("s", "a")
    first.vote("s", "a", item.pair.id, "A", displayed_order=item.displayed_order)
    assert second.next_item("s", "b").pair.id == "p01"  # voted at overlap 1: p00 is done, not held
    second.vote("s", "b", "p01", "skip", rationale="not my language")  # a skip frees the pair, and does not count
    assert first.next_item("s", "a").pair.id == "p01"
    first.undo("s", "a")  # a's p00 vote undone: p00 is theirs to judge again first ...
    assert second.next_item("s", "a").pair.id == "p00"
    assert second.next_item("s", "b").pair.id == "p02"  # ... and b, who skipped p01, goes on
    first.set_status("s", "closed")
    first.set_status("s", "open")  # closing drops every reservation, in every process
    with second.store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM labeling_leases").fetchone()[0] == 0
    assert second.next_item("s", "b").pair.id == "p00"


def annotate(url: str, session: str, name: str, max_votes: int, errors: list[str]) -> None:
    """Join through ``url`` and vote until ``max_votes`` or no pair is left for ``name``."""
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post(f"{API}/sessions/{session}/annotators", json={"name": name})
        http.headers["x-annotator-token"] = r.json()["token"]
        item = http.get(f"{API}/sessions/{session}/annotators/{name}/next").json()["item"]
        for k in range(max_votes):
            if item is None:
                return
            r = http.post(f"{API}/sessions/{session}/annotators/{name}/votes",
                          json={"pair_id": item["pair_id"], "choice": "left" if k % 2 else "right",
                                "displayed_order": item["displayed_order"]})
            if r.status_code != 200:
                errors.append(f"{name}: {r.status_code} {r.text}")
                return
            item = r.json()["next"]["item"]


def run_annotators(jobs: list[tuple[str, str, str, int]]) -> None:
    """Run (url, session, name, max_votes) annotators at once in threads; fail on any error or hang."""
    errors: list[str] = []
    threads = [threading.Thread(target=annotate, args=(*job, errors)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "annotators still voting after 300 s"
    assert not errors, errors[:3]


def test_two_server_processes_on_one_home_share_reservations(tmp_path: Path, store_target: str | Path, server_process) -> None:
    with Store(store_target) as store:
        store.import_pairs("ds", [Pair(f"q{i}", f"a{i}", f"b{i}", id=f"p{i:03d}") for i in range(440)])
        store.import_pairs("small", [Pair(f"q{i}", f"a{i}", f"b{i}", id=f"s{i:02d}") for i in range(25)])
        lab = LabelingStore(store)
        lab.create_session("one", "ds", {"overlap": 1})
        lab.create_session("two", "small", {"overlap": 2})
    servers = [server_process(tmp_path, ["apps.labeling_server", "--api-only"], env=backend_env(store_target)) for _ in range(2)]
    # 10 annotators on each server, 20 votes each, at overlap 1 (sequential order: all want the same pairs).
    run_annotators([(servers[i % 2].url, "one", f"ann{i:02d}", 20) for i in range(20)])
    # The same 20 people on a 25-pair session at overlap 2, each voting until nothing is left for them.
    run_annotators([(servers[i % 2].url, "two", f"ann{i:02d}", 1000) for i in range(20)])
    for server in servers:
        server.kill(signal.SIGTERM)
    with Store(store_target) as store, store.reading() as conn:
        votes = {name: conn.execute("SELECT e.pair_id, a.name FROM labeling_events e JOIN labeling_sessions s ON s.id = e.session_id"
                                    " JOIN labeling_annotators a ON a.id = e.annotator_id WHERE s.name = ? AND e.kind = 'vote'",
                                    (name,)).fetchall() for name in ("one", "two")}
    assert len(votes["one"]) == 400 and len({pid for pid, _ in votes["one"]}) == 400  # no labour spent twice
    per_pair = Counter(pid for pid, _ in votes["two"])
    assert max(per_pair.values()) == 2 and len(votes["two"]) == 50  # every pair judged exactly k = 2 times
    assert len(set(votes["two"])) == 50  # by two different people


def worker_pids(parent: int) -> list[int]:
    """The worker processes ``parent`` spawned (Linux /proc; not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == parent and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def test_worker_processes_of_one_server_share_reservations(tmp_path: Path, store_target: str | Path, server_process) -> None:
    """``--workers 2``: two uvicorn processes accept on one port; 20 annotators × 20 votes at overlap 1."""
    with Store(store_target) as store:
        store.import_pairs("ds", [Pair(f"q{i}", f"a{i}", f"b{i}", id=f"p{i:03d}") for i in range(440)])
        LabelingStore(store).create_session("one", "ds", {"overlap": 1})
    server = server_process(tmp_path, ["apps.labeling_server", "--api-only", "--workers", "2"], env=backend_env(store_target))
    assert len(worker_pids(server.proc.pid)) == 2, server.logs()
    run_annotators([(server.url, "one", f"ann{i:02d}", 20) for i in range(20)])
    with Store(store_target) as store:
        voted = [j.pair_id for j in LabelingStore(store).judgments("one")]
    assert len(voted) == 400 and len(set(voted)) == 400


def test_workers_need_the_api_only_server() -> None:
    with pytest.raises(ConfigError, match="needs --api-only"):
        check_workers(2, api_only=False)
    with pytest.raises(ConfigError, match="1 or more"):
        check_workers(0, api_only=True)
    check_workers(4, api_only=True)
