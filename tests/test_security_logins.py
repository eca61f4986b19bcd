"""Login back-off per account, upload bounds and plugin routes, against a real server on 127.0.0.1.

The app is ``create_app(ui=False)`` served by uvicorn in a thread (no Gradio, no model: the
server is up in well under a second), with an owner, two annotators and one plugin whose
router has an unguarded route and a route tagged for annotators. See docs/security.md.
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import APIRouter

from workbench.app.server import create_app
from workbench.context import AppContext
from workbench.hookspecs import hookimpl
from workbench.plugin_types import FOR_ANNOTATORS
from workbench.plugins import PluginHost
from workbench.settings import Settings

OWNER = ("owner", "0wner-pw")
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
CAROL = ("carol", "carol-pw")


class RoutesPlugin:
    """A plugin adding one route it forgot to guard and one it declares for annotators."""

    @hookimpl
    def api_routes(self, context: AppContext) -> list[APIRouter]:
        router = APIRouter(prefix="/api/probe")

        @router.get("/secrets")
        def secrets() -> dict[str, str]:
            return {"secret": "owner only"}

        @router.get("/hello", tags=[FOR_ANNOTATORS])
        def hello() -> dict[str, str]:
            return {"hello": "everyone"}

        return [router]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("logins")
    settings = Settings(home=home, auth=OWNER, users=dict([ALICE, BOB, CAROL]), max_upload_bytes=5_000_000)
    plugins = PluginHost(load=False)
    plugins.register(RoutesPlugin(), "probe-routes")
    app = create_app(AppContext(settings, plugins=plugins), ui=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    uv.should_exit = True
    thread.join(10)


def _get(url: str, auth: tuple[str, str], address: str = "127.0.0.1") -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), auth=auth, timeout=30) as http:
        return http.get(f"{url}/api/health")


def test_a_guessed_account_is_locked_though_another_login_succeeds_in_between(server: str) -> None:
    # The probe: wrong owner passwords with an annotator logging in after every 9 never reached 429.
    codes: Counter[int] = Counter()
    for i in range(54):
        codes[_get(server, (ALICE[0], f"guess-{i}"), "127.0.0.5").status_code] += 1
        if i % 9 == 8:
            assert _get(server, BOB, "127.0.0.5").status_code == 200  # bob goes on from the same address
    assert 10 <= codes[401] <= 13 and codes[401] + codes[429] == 54, codes
    locked = _get(server, ALICE, "127.0.0.6")  # the guessed login is locked wherever it comes from, right password or not
    assert locked.status_code == 429 and "login 'alice'" in locked.json()["error"] and int(locked.headers["retry-after"]) >= 1
    assert _get(server, OWNER, "127.0.0.5").status_code == 200  # not everyone on the guessing address


def test_an_address_guessing_many_logins_is_locked(server: str) -> None:
    codes = Counter(_get(server, (f"user{i}", "guess"), "127.0.0.7").status_code for i in range(60))
    assert 50 <= codes[401] <= 53 and codes[429] >= 7, codes  # login_failures_per_address (50), then locked
    assert _get(server, OWNER, "127.0.0.8").status_code == 200


def test_uploads_are_bounded_and_only_the_owner_uploads(server: str) -> None:
    with httpx.Client(auth=CAROL, timeout=30) as http:
        refused = http.post(f"{server}/gradio_api/upload", files={"files": ("a.jsonl", b"{}\n")})
        assert refused.status_code == 403 and "uploading files is for the workbench owner" in refused.text
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as raw:
        # 300 MB announced, not sent: refused from Content-Length before a byte is written.
        auth = httpx.BasicAuth(*OWNER)._auth_header
        raw.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                    f"Content-Length: 300000000\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n".encode())
        raw.settimeout(10)
        answer = b""
        while b"}" not in answer:  # headers, then the JSON body
            answer += raw.recv(4096)
    text = answer.decode()
    assert text.startswith("HTTP/1.1 413") and "larger than 5,000,000 bytes" in text, text


def test_plugin_routes_are_owner_only_unless_declared_for_annotators(server: str) -> None:
    with httpx.Client(auth=CAROL, timeout=30) as http:
        refused = http.get(f"{server}/api/probe/secrets")
        assert refused.status_code == 403 and "/api/probe/secrets is for the workbench owner" in refused.text
        assert http.get(f"{server}/api/probe/hello").json() == {"hello": "everyone"}
    with httpx.Client(auth=OWNER, timeout=30) as http:
        assert http.get(f"{server}/api/probe/secrets").json() == {"secret": "owner only"}
