"""Named annotators with their own logins, all real: a labeling server process with a users
file, real HTTP (httpx, the Gradio client) and a real headless Chromium per annotator.

An annotator's login is their identity: the HTTP API refuses acting under another name,
the Labeling tab locks the name to the login and ignores any other, and the session tools
(which show everyone's votes) are the owner's only.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import free_port, launch
from test_labeling_reliability import API, prepare_home

from workbench.errors import ConfigError, SecurityError
from workbench.labeling import LabelingStore
from workbench.settings import Settings, load_users
from workbench.store import Store

OWNER = ("owner", "0wner-pw")
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
UI_TIMEOUT_MS = 60_000


def write_users(path: Path) -> Path:
    path.write_text(f"# annotators\n{ALICE[0]}:{ALICE[1]}\n\n{BOB[0]}:{BOB[1]}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("login-home")
    prepare_home(home, 6)
    users = write_users(home / "users.txt")
    srv = launch(home, ["apps.labeling_server", "--auth", ":".join(OWNER), "--users", str(users)], auth=OWNER)
    yield srv, home
    srv.kill(signal.SIGTERM)


def annotators(home: Path, session: str = "s") -> list[str]:
    with Store(home / "workbench.sqlite") as store:
        return LabelingStore(store).annotators(session)


# -- settings -----------------------------------------------------------------------------

def test_users_file_allows_a_public_bind_and_bad_files_are_refused(tmp_path: Path) -> None:
    users = load_users(write_users(tmp_path / "users.txt"))
    assert users == {"alice": "alice-pw", "bob": "bob-pw"}
    Settings(home=tmp_path, host="0.0.0.0", users=users).check_bind()  # annotator logins are enough
    with pytest.raises(SecurityError, match="WORKBENCH_USERS"):
        Settings(home=tmp_path, host="0.0.0.0").check_bind()
    (tmp_path / "bad.txt").write_text("alice:pw\nbob\n")
    with pytest.raises(ConfigError, match=r"bad.txt, line 2: not of the form name:password"):
        load_users(tmp_path / "bad.txt")
    (tmp_path / "twice.txt").write_text("alice:pw\nalice:other\n")
    with pytest.raises(ConfigError, match="listed twice"):
        load_users(tmp_path / "twice.txt")
    with pytest.raises(ConfigError, match="Cannot read the users file"):
        load_users(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="both the owner login"):
        Settings(home=tmp_path, auth=("alice", "x"), users=users)


def test_server_refuses_a_bad_users_file(tmp_path: Path) -> None:
    (tmp_path / "users.txt").write_text("no-colon-here\n")
    proc = subprocess.run([sys.executable, "-m", "apps.labeling_server", "--home", str(tmp_path), "--port", str(free_port()),
                           "--users", str(tmp_path / "users.txt")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "line 1: not of the form name:password" in proc.stderr


# -- HTTP API -----------------------------------------------------------------------------

def test_api_binds_each_login_to_its_own_annotator(server) -> None:
    srv, home = server
    url = srv.url + API
    assert httpx.get(url + "/sessions", timeout=30).status_code == 401
    assert httpx.get(srv.url + "/", timeout=30).status_code == 401
    assert httpx.get(url + "/sessions", auth=(ALICE[0], BOB[1]), timeout=30).status_code == 401
    assert httpx.get(url + "/sessions", auth=("mallory", "x"), timeout=30).status_code == 401

    # Joining under another name, or creating/closing sessions, is refused and writes nothing.
    r = httpx.post(url + "/sessions/b/annotators", json={"name": "bob"}, auth=ALICE, timeout=30)
    assert r.status_code == 403 and "logged in as 'alice'" in r.json()["error"]
    assert annotators(home, "b") == []
    r = httpx.post(url + "/sessions", json={"name": "mine", "dataset": "ds"}, auth=ALICE, timeout=30)
    assert r.status_code == 403 and "owner" in r.json()["error"]
    assert httpx.post(url + "/sessions/b/status", json={"status": "closed"}, auth=BOB, timeout=30).status_code == 403

    alice = httpx.post(url + "/sessions/b/annotators", json={"name": "alice"}, auth=ALICE, timeout=30).json()["token"]
    bob = httpx.post(url + "/sessions/b/annotators", json={"name": "bob"}, auth=BOB, timeout=30).json()["token"]
    item = httpx.get(url + "/sessions/b/annotators/alice/next", headers={"x-annotator-token": alice}, auth=ALICE, timeout=30).json()["item"]
    vote = {"pair_id": item["pair_id"], "choice": "left", "displayed_order": item["displayed_order"]}
    assert httpx.post(url + "/sessions/b/annotators/alice/votes", json=vote, headers={"x-annotator-token": alice},
                      auth=ALICE, timeout=30).status_code == 200
    # Bob, even holding Alice's token, can neither read her history nor vote as her.
    for method, path in (("GET", "/history"), ("GET", "/next"), ("POST", "/votes")):
        r = httpx.request(method, f"{url}/sessions/b/annotators/alice{path}", json=vote if method == "POST" else None,
                          headers={"x-annotator-token": alice}, auth=BOB, timeout=30)
        assert r.status_code == 403 and "cannot act as annotator 'alice'" in r.json()["error"], path
    # The owner keeps the token model: any annotator's queue with that annotator's token.
    r = httpx.get(url + "/sessions/b/annotators/bob/history", headers={"x-annotator-token": bob}, auth=OWNER, timeout=30)
    assert r.status_code == 200 and r.json()["history"] == []
    r = httpx.post(url + "/sessions", json={"name": "owned", "dataset": "ds"}, auth=OWNER, timeout=30)
    assert r.status_code == 201
    with Store(home / "workbench.sqlite") as store:
        assert [e["annotator"] for e in LabelingStore(store).events("b")] == ["alice"]


def test_gradio_start_ignores_a_forged_name(server) -> None:
    """Through the tab's own Gradio endpoint: Bob asks to start as 'carol' and is started as bob."""
    from gradio_client import Client

    srv, home = server
    client = Client(srv.url + "/", httpx_kwargs={"auth": BOB}, verbose=False, download_files=False)
    result = client.predict("s", "carol", api_name="/start")
    status = result[0] if isinstance(result, list | tuple) else result
    assert "Pair 1 of 6" in str(status)
    assert "carol" not in annotators(home) and "bob" in annotators(home)


# -- browser ------------------------------------------------------------------------------

@pytest.mark.browser
def test_browser_login_locks_the_name_and_hides_others_votes(server, browser) -> None:
    srv, home = server

    def page_for(login: tuple[str, str]):
        context = browser.new_context(http_credentials={"username": login[0], "password": login[1]},
                                      viewport={"width": 1300, "height": 1300})
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(srv.url + "/")
        page.wait_for_function(f"document.querySelector('#wb-lab-annotator textarea, #wb-lab-annotator input')?.value === '{login[0]}'")
        return context, page

    def status_has(page, text: str) -> None:
        page.wait_for_function("t => (document.querySelector('#wb-lab-status')?.innerText ?? '').includes(t)", arg=text)

    ctx_a, alice = page_for(ALICE)
    box = alice.locator("#wb-lab-annotator textarea, #wb-lab-annotator input").first
    assert box.is_disabled()  # the login is the name; it cannot be changed
    assert alice.get_by_text("Analysis, disagreements and export").count() == 0  # the owner's tools are hidden
    alice.click("#wb-lab-start")
    status_has(alice, "Pair 1 of 6")
    alice.keyboard.press("1")
    alice.wait_for_function("document.querySelector('#wb-lab-outcome input:checked') !== null")
    alice.keyboard.press("Enter")
    status_has(alice, "Pair 2 of 6")
    # Which pair: p0000 unless Bob holds it (the Gradio test above served it to him, and a
    # served pair stays reserved for its annotator).
    with Store(home / "workbench.sqlite") as store:
        (voted,) = [j.pair_id for j in LabelingStore(store).judgments("s") if j.annotator == "alice"]
    alice.wait_for_function("p => (document.querySelector('#wb-lab-history')?.innerText ?? '').includes(p)", arg=voted)

    ctx_b, bob = page_for(BOB)
    bob.click("#wb-lab-start")
    status_has(bob, "0 done")
    assert voted not in bob.locator("#wb-lab-history").inner_text()  # blind to Alice's vote

    ctx_o, owner = page_for(OWNER)
    assert owner.get_by_text("Analysis, disagreements and export").count() == 1
    for ctx in (ctx_a, ctx_b, ctx_o):
        ctx.close()
    with Store(home / "workbench.sqlite") as store:
        votes = [(j.annotator, j.pair_id) for j in LabelingStore(store).judgments("s")]
    assert votes == [("alice", voted)]
