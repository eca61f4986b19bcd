"""Bounded HTTP inputs and pair reservation, against a real labeling server process.

Body size is refused from Content-Length before parsing (413); deep nesting and lone
surrogates get 422 with a message; repeated wrong tokens from one client, or wrong passwords
for one login, are slowed then refused (429) while other clients and logins go on; at overlap k no pair is served to more
than k annotators at a time. See docs/security.md.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ServerProcess, backend_env, launch
from sessions import run_annotators

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

API = "/api/labeling"
OWNER = ("owner", "0wner-pw")
ALICE = ("alice", "alice-pw")


def start_api_server(home: Path, target: str | Path) -> ServerProcess:
    """A labeling server (owner and alice logins) on the store at ``target``, holding sessions
    's', 'overlap1' and 'overlap2' over 1,100 pairs."""
    with Store(target) as store:
        store.import_pairs("ds", [Pair(f"prompt {i}", f"left {i}", f"right {i}", id=f"p{i:04d}") for i in range(1100)])
        lab = LabelingStore(store)
        lab.create_session("s", "ds")
        for k in (1, 2):
            lab.create_session(f"overlap{k}", "ds", {"overlap": k})
    users = home / "users.txt"
    users.write_text(":".join(ALICE) + "\n", encoding="utf-8")
    return launch(home, ["apps.labeling_server", "--api-only", "--auth", ":".join(OWNER), "--users", str(users)], auth=OWNER,
                  env=backend_env(target))


@pytest.fixture(scope="module")
def api_server(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    home = tmp_path_factory.mktemp("bounds")
    server = start_api_server(home, home / "workbench.sqlite")
    yield server, home
    server.stop()


@pytest.fixture(scope="module")
def pg_api_server(tmp_path_factory, postgres) -> Iterator[tuple[ServerProcess, str]]:
    """The same server with its store in PostgreSQL; yields the database URL."""
    url = postgres.new_database()
    server = start_api_server(tmp_path_factory.mktemp("bounds-pg"), url)
    yield server, url
    server.stop()


def _client(address: str = "127.0.0.1", **kw: object) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), auth=OWNER, timeout=60, **kw)


def _join(http: httpx.Client, url: str, session: str, name: str) -> dict[str, str]:
    r = http.post(f"{url}{API}/sessions/{session}/annotators", json={"name": name})
    assert r.status_code == 201, r.text
    return {"x-annotator-token": r.json()["token"]}


def test_bodies_are_bounded_before_parsing(api_server: tuple[ServerProcess, Path]) -> None:
    server, _ = api_server
    votes = f"{server.url}{API}/sessions/s/annotators/zed/votes"
    with _client() as http:
        big = http.post(votes, content=b'{"pair_id": "' + b"x" * 8_000_000 + b'"}', headers={"content-type": "application/json"})
        assert big.status_code == 413 and "larger than 1,000,000 bytes" in big.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
            for _ in range(20):
                yield b" " * 100_000
        assert http.post(votes, content=chunks()).status_code == 413
        token = _join(http, server.url, "s", "zed")
        deep = http.post(votes, content=b"[" * 50_000 + b"]" * 50_000, headers=token)
        assert deep.status_code == 422 and "nested more than" in deep.json()["error"]
        nested = http.post(votes, json={"aspects": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}, headers=token)
        assert nested.status_code == 422 and "nested more than 32" in nested.json()["error"]
        item = http.get(f"{server.url}{API}/sessions/s/annotators/zed/next", headers=token).json()["item"]
        vote = {"pair_id": item["pair_id"], "choice": "left", "displayed_order": item["displayed_order"]}
        lone = http.post(votes, content=json.dumps({**vote, "rationale": "a\ud800b"}).encode(), headers=token)  # "\\ud800" on the wire
        assert lone.status_code == 422 and "'rationale' is not valid Unicode" in lone.json()["error"], lone.text
        bad_name = http.post(f"{server.url}{API}/sessions/s/annotators", json={"name": "eve\x1b[2J"})
        assert bad_name.status_code == 422 and "U+001B" in bad_name.json()["error"]
        assert http.post(votes, json=vote, headers=token).status_code == 200  # and the real vote still goes through


def test_wrong_tokens_and_passwords_are_slowed_then_refused(api_server: tuple[ServerProcess, Path]) -> None:
    server, _ = api_server
    url = f"{server.url}{API}/sessions/s/annotators/mallory/next"
    with _client() as http:
        _join(http, server.url, "s", "mallory")
    with _client("127.0.0.3") as attacker:
        codes = Counter(attacker.get(url, headers={"x-annotator-token": f"guess-{i}"}).status_code for i in range(200))
    # Ten tries, then locked out for 1 s, 2 s, 4 s …: a few more get through as each lockout ends.
    assert 10 <= codes[403] <= 13 and codes[403] + codes[429] == 200, codes
    with _client("127.0.0.3") as attacker:
        r = attacker.get(f"{server.url}{API}/sessions")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # even with the right password
    with _client("127.0.0.4") as guesser:
        guesser.auth = (ALICE[0], "wrong")
        codes = Counter(guesser.get(f"{server.url}{API}/sessions").status_code for _ in range(30))
        assert 10 <= codes[401] <= 13 and codes[401] + codes[429] == 30, codes
        guesser.auth = OWNER  # the guessed login is locked, not every login from that address
        assert guesser.get(f"{server.url}{API}/sessions").status_code == 200
    with _client("127.0.0.2") as other:  # alice's right password from elsewhere waits out the lockout too
        other.auth = ALICE
        assert other.get(f"{server.url}{API}/sessions").status_code == 429


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("overlap", [1, 2])
def test_concurrent_annotators_never_share_a_pair_beyond_the_overlap(request: pytest.FixtureRequest, backend: str, overlap: int) -> None:
    """20 annotators × 50 votes at once, sequential order, with the store in SQLite and in
    PostgreSQL. 1,100 pairs, not 1,000: who has cast their 50th vote was served (and holds) one
    more pair, as a real annotator would."""
    server, where = request.getfixturevalue("api_server" if backend == "sqlite" else "pg_api_server")
    target = where if backend == "postgresql" else where / "workbench.sqlite"
    session, names = f"overlap{overlap}", [f"ann{i:02d}" for i in range(20)]
    with _client() as http:
        tokens = {n: _join(http, server.url, session, n) for n in names}
    errors: list[str] = []
    barrier = threading.Barrier(len(names))

    def annotate(name: str) -> None:
        base = f"{API}/sessions/{session}/annotators/{name}"
        with _client(base_url=server.url, headers=tokens[name]) as http:
            item = http.get(f"{base}/next").json()["item"]
            barrier.wait()
            for k in range(50):
                r = http.post(f"{base}/votes", json={"pair_id": item["pair_id"], "choice": "left",
                                                     "displayed_order": item["displayed_order"], "request_id": f"{name}-{k}"})
                if r.status_code != 200:
                    errors.append(f"{name}: {r.status_code} {r.text}")
                    return
                item = r.json()["next"]["item"]

    run_annotators(annotate, names)
    assert not errors, errors[:3]
    with Store(target) as store:
        per_pair = Counter(j.pair_id for j in LabelingStore(store).judgments(session))
    assert sum(per_pair.values()) == 1000 and max(per_pair.values()) <= overlap
    # Overlap 1: 1,000 votes on 1,000 distinct pairs (without reservation: 75). Overlap k: each
    # pair gets its k votes, except the few served last whose other votes were still pending.
    assert len(per_pair) == 1000 if overlap == 1 else 1000 // overlap <= len(per_pair) <= 1000 // overlap + len(names)
