"""Shared fixtures: tiny random checkpoints per family, the real embedded demo model, and real
server processes (``launch`` / ``server_process``)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from checkpoints import FAMILY_CONFIGS, write_tiny_checkpoint, write_tiny_lora  # noqa: E402
from pg import PostgresCluster  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint("llama")`` → path of a tiny random checkpoint, written once per session."""
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    made: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in made:
            made[family] = write_tiny_checkpoint(family, root / family)
        return made[family]

    return make


@pytest.fixture(scope="session")
def tiny_lora(tiny_checkpoint, tmp_path_factory):
    """A LoRA adapter on the tiny llama, recording the base by absolute path."""
    return write_tiny_lora(tiny_checkpoint("llama"), tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """One workbench home for the session, so the demo GGUF is converted once."""
    return tmp_path_factory.mktemp("wb-home")


@pytest.fixture(scope="session")
def demo_model_dir(session_home) -> Path:
    from workbench.models.embedded import ensure_demo_model
    from workbench.settings import Settings

    return ensure_demo_model(Settings(home=session_home))


@pytest.fixture(scope="session")
def demo_lm(demo_model_dir):
    from workbench.models.loading import load_model

    return load_model(demo_model_dir, name="SmolLM2-135M-Instruct")


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (never a downloaded browser build)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        reason = "Chromium is not installed (apt-get install -y chromium; scripts/test.sh does it)"
        if os.environ.get("CI") == "true":  # in CI a missing browser would silently skip 13 browser test files
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


ALL_FAMILIES = sorted(FAMILY_CONFIGS)


# -- servers as real processes --------------------------------------------------------------
SERVER_STARTUP_SECONDS = 240  # the first Gradio/Panel import on a busy 2-core machine is slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A server started by ``launch``: its process group, URL and log file."""

    proc: subprocess.Popen
    url: str
    log: Path
    home: Path

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 15 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def launch(home: Path, argv: list[str], *, port: int | None = None, auth: tuple[str, str] | None = None,
           env: dict[str, str] | None = None, wait: bool = True) -> ServerProcess:
    """``python -m <argv> --port N`` with WORKBENCH_HOME=home in its own process group; with
    ``wait``, block until /api/health answers 200 (with ``auth``)."""
    port = port or free_port()
    log = home / f"server-{port}-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "WORKBENCH_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    for key in ("WORKBENCH_AUTH", "WORKBENCH_USERS", "WORKBENCH_DATABASE_URL"):
        if key not in (env or {}):
            full_env.pop(key, None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *argv, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=full_env, start_new_session=True)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log, home)
    if not wait:
        return server
    deadline = time.monotonic() + SERVER_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{server.logs()}")
        try:
            if httpx.get(f"{server.url}/api/health", auth=auth, timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.kill()
    raise AssertionError(f"server did not answer /api/health in {SERVER_STARTUP_SECONDS} s:\n{server.logs()}")


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """``server_process(home, argv, ...)`` = ``launch``, and every server it started is stopped afterwards."""
    started: list[ServerProcess] = []

    def start(*args: Any, **kwargs: Any) -> ServerProcess:
        started.append(launch(*args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


# -- the store on both backends (issue 22 §2) ---------------------------------------------------
@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL server (tests/pg.py), started once for the session when a test
    asks for it. If it cannot start, such tests fail with the reason under CI=true (a silent
    skip would hide that half the store tests did not run) and are skipped elsewhere."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as err:
        shutil.rmtree(cluster.dir, ignore_errors=True)
        reason = f"the test PostgreSQL server could not start: {err}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's store is: a SQLite file in ``tmp_path``, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "workbench.sqlite"
    return request.getfixturevalue("postgres").new_database()


def backend_env(target: str | Path) -> dict[str, str]:
    """What a server process started on ``WORKBENCH_HOME`` needs in its environment to open ``target``."""
    return {"WORKBENCH_DATABASE_URL": target} if isinstance(target, str) else {}


# -- the security probes' server (tests/test_security_*.py) -----------------------------------
PROBE_OWNER = ("owner", "0wner-pw")
PROBE_ALICE = ("alice", "alice-pw")
PROBE_BOB = ("bob", "bob-pw")
PROBE_SECRET = '{"aws_secret_access_key": "AKIA-very-secret", "db_password": "hunter2"}\n'


@dataclass
class ProbeServer:
    server: ServerProcess
    home: Path
    outside: Path  # a file outside every data folder, holding secrets


def gradio_call(url: str, api_name: str, data: list[Any], auth: tuple[str, str]) -> list[Any]:
    """Call a Gradio event directly (``/gradio_api/call/<name>``), as an attacker's script would."""
    r = httpx.post(f"{url}/gradio_api/call/{api_name}", json={"data": data}, auth=auth, timeout=60)
    assert r.status_code == 200, (api_name, r.status_code, r.text)
    event = r.json()["event_id"]
    text = httpx.get(f"{url}/gradio_api/call/{api_name}/{event}", auth=auth, timeout=120).text
    blocks = [b for b in text.split("\n\n") if b.strip()]
    last = blocks[-1]
    if "event: error" in last:  # a refusal raised as gr.Error (the owner-only guard of a tab): its message
        return [json.loads(last.split("data:", 1)[1])["error"]]
    assert "event: complete" in last, text
    return json.loads(last.split("data:", 1)[1])


@pytest.fixture(scope="session")
def probe_server(tmp_path_factory) -> Iterator[ProbeServer]:
    """``workbench serve`` with an owner and two annotator logins over a home with sessions:
    'gold' (a gold pair, open to every annotator), 'alice-only' (assigned to alice), 'closed'."""
    from workbench.data.types import Pair
    from workbench.labeling import LabelingStore
    from workbench.store import Store

    root = tmp_path_factory.mktemp("probe")
    home = root / "home"
    (home / "data").mkdir(parents=True)
    outside = root / "outside" / "creds.jsonl"
    outside.parent.mkdir()
    outside.write_text(PROBE_SECRET, encoding="utf-8")
    with Store(home / "workbench.sqlite") as store:
        store.import_pairs("ds", [Pair(f"prompt {i}", f"left {i}", f"right {i}", id=f"p{i}") for i in range(6)])
        lab = LabelingStore(store)
        lab.create_session("gold", "ds", {"gold": {"p1": "A"}})
        lab.create_session("alice-only", "ds", {"annotators": ["alice"]})
        lab.create_session("closed", "ds")
        lab.set_status("closed", "closed")
    users = root / "users.txt"
    users.write_text(f"{PROBE_ALICE[0]}:{PROBE_ALICE[1]}\n{PROBE_BOB[0]}:{PROBE_BOB[1]}\n", encoding="utf-8")
    server = launch(home, ["workbench.cli", "serve"], auth=PROBE_OWNER,
                    env={"WORKBENCH_AUTH": ":".join(PROBE_OWNER), "WORKBENCH_USERS": str(users)})
    yield ProbeServer(server, home, outside)
    server.stop()
