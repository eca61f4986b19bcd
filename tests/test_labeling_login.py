"""Named annotators with their own logins, all real: a labeling server process with a users
file, real HTTP (httpx) and a real headless Chromium per annotator.

An annotator's login is their identity: the HTTP API refuses acting under another name,
the Labeling tab's embedded page labels as the login, and the session tools
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


# -- browser ------------------------------------------------------------------------------

@pytest.mark.browser
def test_browser_login_labels_as_itself_and_only_the_owner_has_the_tools(server, browser) -> None:
    """In the tab, each login's embedded page labels as that login (no name to type or forge);
    the session tools, which show everyone's votes, are the owner's only."""
    from playwright.sync_api import expect

    srv, home = server

    def page_for(login: tuple[str, str]):
        context = browser.new_context(http_credentials={"username": login[0], "password": login[1]},
                                      viewport={"width": 1300, "height": 1300})
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(srv.url + "/")
        page.locator("#wb-lab-session input").click()
        page.get_by_role("option", name="s", exact=True).click()
        frame = page.frame_locator("#wb-lab-frame")
        expect(frame.locator("#who")).to_contain_text(login[0], timeout=UI_TIMEOUT_MS)
        return context, page, frame

    ctx_a, alice, frame_a = page_for(ALICE)
    assert frame_a.locator("#join").is_hidden()  # the login is the name: no box to type another
    assert alice.get_by_text("Analysis, disagreements and export").count() == 0  # the owner's tools are hidden
    expect(frame_a.locator("#progress")).to_contain_text("Pair", timeout=UI_TIMEOUT_MS)
    alice.keyboard.press("1")
    expect(frame_a.locator("#progress")).to_contain_text("1 done", timeout=UI_TIMEOUT_MS)
    with Store(home / "workbench.sqlite") as store:
        votes = [(j.annotator, j.pair_id) for j in LabelingStore(store).judgments("s")]
    assert [a for a, _ in votes] == ["alice"]
    ctx_o, owner, _ = page_for(OWNER)
    assert owner.get_by_text("Analysis, disagreements and export").count() == 1
    for ctx in (ctx_a, ctx_o):
        ctx.close()
