"""The vote API under stress, all real processes: SIGKILL mid-vote, 20 concurrent annotators,
bad requests. Servers run as separate processes with their own WORKBENCH_HOME; the tests
check the store itself afterwards (the SQLite file, or the PostgreSQL database for the
SIGKILL test's second run), not what the server says about it."""
from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ServerProcess, backend_env, free_port, launch
from sessions import run_annotators

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

API = "/api/labeling"


def prepare_home(home: Path, n_pairs: int, target: str | Path | None = None, **settings: object) -> None:
    """A home (or the store at ``target``) holding dataset 'ds', open sessions 's' (with ``settings``)
    and 'b', and a closed one, 'old'."""
    with Store(target or home / "workbench.sqlite") as store:
        store.import_pairs("ds", [Pair(f"prompt {i}", f"left {i}", f"right {i}", id=f"p{i:04d}") for i in range(n_pairs)])
        lab = LabelingStore(store)
        lab.create_session("s", "ds", settings)
        lab.create_session("b", "ds")
        lab.create_session("old", "ds")
        lab.set_status("old", "closed")


def labeling_server(home: Path, port: int, target: str | Path | None = None) -> ServerProcess:
    return launch(home, ["apps.labeling_server", "--api-only"], port=port, env=backend_env(target or home))


def join(url: str, session: str, name: str) -> dict[str, str]:
    r = httpx.post(f"{url}{API}/sessions/{session}/annotators", json={"name": name}, timeout=30)
    assert r.status_code == 201, r.text
    return {"x-annotator-token": r.json()["token"]}


def db_votes(home: Path, target: str | Path | None = None) -> list[tuple]:
    with Store(target or home / "workbench.sqlite") as store, store.reading() as conn:
        return conn.execute("SELECT e.id, a.name, e.pair_id, e.request_id FROM labeling_events e "
                            "JOIN labeling_annotators a ON a.id = e.annotator_id WHERE e.kind = 'vote' ORDER BY e.id").fetchall()


def test_sigkill_while_voting_loses_no_acknowledged_vote(tmp_path: Path, store_target: str | Path) -> None:
    prepare_home(tmp_path, 60, store_target)
    port = free_port()
    server = labeling_server(tmp_path, port, store_target)
    url = server.url
    headers = join(url, "s", "alice")
    acks: list[tuple[int, str, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        """Vote through every pair; on a dropped connection retry the same request (same request_id)."""
        with httpx.Client(timeout=10) as http:
            def call(method: str, path: str, **kw: object) -> httpx.Response:
                while not stop.is_set():
                    try:
                        return http.request(method, url + path, headers=headers, **kw)
                    except httpx.TransportError:
                        time.sleep(0.05)
                raise RuntimeError("stopped")
            item = call("GET", f"{API}/sessions/s/annotators/alice/next").json()["item"]
            while item is not None:
                body = {"pair_id": item["pair_id"], "choice": "left", "displayed_order": item["displayed_order"],
                        "request_id": uuid.uuid4().hex}
                r = call("POST", f"{API}/sessions/s/annotators/alice/votes", json=body)
                if r.status_code != 200:
                    failures.append(r.text)
                    return
                acks.append((r.json()["ack"]["event_id"], item["pair_id"], body["request_id"]))
                item = r.json()["next"]["item"]

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for kill_at in (10, 30):
            while len(acks) < kill_at and thread.is_alive():
                time.sleep(0.005)
            server.kill(signal.SIGKILL)  # no shutdown, no flush: whatever was acknowledged must be on disk
            acked_before = len(acks)
            server = labeling_server(tmp_path, port, store_target)
            assert acked_before >= kill_at
        thread.join(timeout=180)
    finally:
        stop.set()
        server.kill(signal.SIGTERM)
    assert not failures and not thread.is_alive()
    votes = db_votes(tmp_path, store_target)
    assert len(acks) == 60
    assert {(a[0], a[1], a[2]) for a in acks} <= {(v[0], v[2], v[3]) for v in votes}  # every ack is in the file
    assert len(votes) == 60 and len({v[2] for v in votes}) == 60  # and nothing is there twice


@pytest.fixture(scope="module")
def app_server(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    home = tmp_path_factory.mktemp("labeling-app")
    prepare_home(home, 100, overlap=20, order="random")
    server = launch(home, ["workbench.cli", "serve"])
    yield server, home
    server.kill(signal.SIGTERM)


def test_twenty_concurrent_annotators_through_the_app(app_server: tuple[ServerProcess, Path]) -> None:
    server, home = app_server
    names = [f"ann{i:02d}" for i in range(20)]
    tokens = {n: join(server.url, "s", n) for n in names}
    errors: list[str] = []
    barrier = threading.Barrier(len(names))

    def annotate(name: str) -> None:
        with httpx.Client(base_url=server.url, headers=tokens[name], timeout=60) as http:
            item = http.get(f"{API}/sessions/s/annotators/{name}/next").json()["item"]
            barrier.wait()
            for k in range(100):
                choice = ("left", "right", "tie")[k % 3]
                r = http.post(f"{API}/sessions/s/annotators/{name}/votes",
                              json={"pair_id": item["pair_id"], "choice": choice, "displayed_order": item["displayed_order"],
                                    "strength": 1 if choice != "tie" else None, "request_id": f"{name}-{k}"})
                if r.status_code != 200:
                    errors.append(f"{name}: {r.status_code} {r.text}")
                    return
                item = r.json()["next"]["item"]
            if item is not None:
                errors.append(f"{name}: queue not empty after 100 votes")

    run_annotators(annotate, names)
    assert not errors, errors[:3]
    votes = db_votes(home)
    assert len(votes) == 2000
    per_pair = Counter((v[1], v[2]) for v in votes)
    assert max(per_pair.values()) == 1  # no annotator judged a pair twice
    assert Counter(v[1] for v in votes) == {n: 100 for n in names}
    assert len({v[3] for v in votes}) == 2000
    progress = httpx.get(f"{server.url}{API}/sessions/s", timeout=30).json()["progress"]
    assert progress == {"pairs": 100, "needed": 2000, "covered": 2000, "judgments": 2000,
                        "skips": 0}


def test_bad_requests_get_clear_errors_and_change_nothing(app_server: tuple[ServerProcess, Path]) -> None:
    server, home = app_server
    url = server.url
    bob, eve = join(url, "b", "bob"), join(url, "b", "eve")
    old_bob = join(url, "old", "bob")
    item = httpx.get(f"{url}{API}/sessions/b/annotators/bob/next", headers=bob, timeout=30).json()["item"]
    good = {"pair_id": item["pair_id"], "choice": "left", "displayed_order": item["displayed_order"]}
    votes_path = f"{API}/sessions/b/annotators/bob/votes"
    assert httpx.post(url + votes_path, headers=bob, json={**good, "request_id": "first"}, timeout=30).status_code == 200
    before = db_votes(home)

    def post(path: str, headers: dict[str, str], **kw: object) -> httpx.Response:
        return httpx.post(url + path, headers=headers, timeout=30, **kw)

    cases = [
        (post(votes_path, bob, json={**good, "pair_id": "p9999"}), 404, "no pair with id"),
        (post(f"{API}/sessions/old/annotators/bob/votes", bob, json=good), 403, "does not belong"),  # token of another session
        (post(f"{API}/sessions/old/annotators/bob/votes", old_bob, json=good), 409, "closed"),
        (post(f"{API}/sessions/nope/annotators/bob/votes", bob, json=good), 404, "No labeling session"),
        (post(votes_path, bob, content=b"{not json"), 422, "not valid JSON"),
        (post(votes_path, bob, json=[good]), 422, "must be a JSON object"),
        (post(votes_path, bob, json={**good, "choice": "A+"}), 422, "Unknown choice"),
        (post(votes_path, bob, json={**good, "strength": "huge"}), 422, "wrong type"),
        (post(votes_path, bob, json={**good, "votes": 5}), 422, "Unknown field"),
        (post(votes_path, bob, json={k: v for k, v in good.items() if k != "pair_id"}), 422, "'pair_id' is required"),
        (post(votes_path, bob, json={**good, "choice": "skip"}), 422, "skip needs a reason"),
        (post(votes_path, bob, json=good), 409, "already voted"),  # double submit
        (post(votes_path, bob, json={**good, "choice": "right", "request_id": "first"}), 409, "different request"),
        (post(votes_path, eve, json=good), 403, "does not belong"),  # eve's token on bob's queue
        (post(votes_path, {}, json=good), 403, "does not belong"),
        (post(f"{API}/sessions/b/annotators", {}, json={"name": "bob"}), 409, "already joined"),
        (post(f"{API}/sessions/b/annotators/bob/undo", eve, json={}), 403, "does not belong"),
        (post(f"{API}/sessions/b/annotators/eve/undo", eve, json={}), 409, "no vote to undo"),
    ]
    for response, status, text in cases:
        assert response.status_code == status, (status, text, response.text)
        body = response.json()
        assert text in body["error"] and body["hint"], body
    replay = post(votes_path, bob, json={**good, "request_id": "first"})
    assert replay.status_code == 200 and replay.json()["ack"]["replayed"] is True
    assert db_votes(home) == before
