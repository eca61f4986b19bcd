"""The fast labeling page (``/label/<session>``, workbench/labeling/page.py) on the JSON API.

HTTP checks run the real app in-process over a real SQLite home; the browser checks drive
Debian's headless Chromium against the real standalone labeling server: keyboard votes (a
skip with a rationale and Ctrl+Enter, a tie, an aspect, a strength, an undo), bursts of keys
faster than the server answers (all stored, in order), reload and token recovery, an XSS
payload that stays text, a closed session, an empty queue, and logins that keep one
annotator out of another's queue.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from page_watch import open_app
from test_labeling_browser import UI_TIMEOUT_MS

from plugins.labeling.server import labeling_context
from plugins.labeling.tab import fast_page_link
from workbench.app.server import create_app
from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.labeling.sessions import to_displayed
from workbench.settings import Settings
from workbench.store import Store

API = "/api/labeling"
OWNER = ("owner", "owner-pw")
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
XSS = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'
XSS_PAIR = 3


def prepare(home: Path) -> None:
    """Dataset 'ds' (24 pairs, pair 3 holding an XSS payload) with session 's' (one aspect)
    and a closed one, 'old'; dataset 'tiny' (2 pairs) with session 't'."""
    pairs = [Pair(f"prompt {i}", f"left {i}", f"right {i}", id=f"p{i:04d}") for i in range(24)]
    pairs[XSS_PAIR] = Pair(f"prompt {XSS_PAIR} {XSS}", f"A says {XSS}", "B is plain", id=f"p{XSS_PAIR:04d}")
    with Store(home / "workbench.sqlite") as store:
        store.import_pairs("ds", pairs)
        store.import_pairs("tiny", [Pair(f"tiny {i}", "a", "b", id=f"t{i}") for i in range(2)])
        lab = LabelingStore(store)
        lab.create_session("s", "ds", {"aspects": ["helpfulness"]})
        lab.create_session("old", "ds")
        lab.set_status("old", "closed")
        lab.create_session("t", "tiny")


def stored(home: Path, session: str, annotator: str) -> list:
    with Store(home / "workbench.sqlite") as store:
        return [j for j in LabelingStore(store).judgments(session) if j.annotator == annotator]


def shown(j) -> str:
    return to_displayed(j.outcome.value, j.displayed_order)


# -- HTTP ------------------------------------------------------------------------------------

def test_page_and_assets_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    prepare(tmp_path)
    with TestClient(create_app(labeling_context(Settings(home=tmp_path)), ui=False)) as client:
        for path in ("/label", "/label/s", "/label/a%20b%3F"):
            r = client.get(path)
            assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
            policy = r.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
            assert r.headers["x-content-type-options"] == "nosniff"
        html = client.get("/label/s").text
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/label/assets/label.js" defer>']  # no inline script
        assert "on" not in " ".join(re.findall(r"<[^>]+\son\w+=", html))  # no inline handlers
        js = client.get("/label/assets/label.js")
        assert js.headers["content-type"] == "text/javascript; charset=utf-8" and "textContent" in js.text
        assert "innerHTML" not in js.text
        assert client.get("/label/assets/label.css").headers["content-type"] == "text/css; charset=utf-8"
        for bad in ("/label/assets/label.html", "/label/assets/..%2Fpage.py", "/label/assets/nope.js"):
            assert client.get(bad).status_code == 404, bad
    assert fast_page_link("a b/c") == "Fast keyboard page: [/label/a%20b%2Fc](/label/a%20b%2Fc)"
    assert fast_page_link(None) == ""


def test_rejoin_recovers_the_token_only_for_that_login_or_the_owner(tmp_path: Path) -> None:
    prepare(tmp_path)
    settings = Settings(home=tmp_path, auth=OWNER, users=dict([ALICE, BOB]))
    with TestClient(create_app(labeling_context(settings), ui=False)) as client:
        join = f"{API}/sessions/s/annotators"
        assert client.get(f"{API}/me", auth=ALICE).json() == {"user": "alice", "role": "annotator"}
        first = client.post(join, json={"name": "alice"}, auth=ALICE)
        assert first.status_code == 201 and first.json()["resumed"] is False
        again = client.post(join, json={"name": "alice"}, auth=ALICE)
        assert again.status_code == 409 and "recover" in again.json()["hint"]
        back = client.post(join, json={"name": "alice", "recover": True}, auth=ALICE)
        assert back.status_code == 200 and back.json()["token"] == first.json()["token"] and back.json()["resumed"] is True
        stolen = client.post(join, json={"name": "alice", "recover": True}, auth=BOB)
        assert stolen.status_code == 403 and "token" not in stolen.json() and "cannot act as annotator 'alice'" in stolen.json()["error"]
        owner = client.post(join, json={"name": "alice", "recover": True}, auth=OWNER)
        assert owner.status_code == 200 and owner.json()["token"] == first.json()["token"]
        assert client.post(join, json={"name": "alice", "recover": "yes"}, auth=ALICE).status_code == 422
        with Store(tmp_path / "workbench.sqlite") as store:
            assert LabelingStore(store).annotators("s") == ["alice"]


# -- browser ---------------------------------------------------------------------------------

def message_has(page, text: str) -> None:
    page.wait_for_function("t => document.getElementById('message').textContent.includes(t)", arg=text)


def progress_has(page, text: str) -> None:
    page.wait_for_function("t => document.getElementById('progress').textContent.includes(t)", arg=text)


def open_page(context, server, session: str):
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{server.url}/label/{session}")
    return page


# Keys dispatched in one task: all but the first arrive while the first vote is on its way.
BURST_JS = """keys => { for (const [key, ctrlKey] of keys)
  (document.activeElement ?? document.body).dispatchEvent(new KeyboardEvent('keydown', {key, ctrlKey, bubbles: true, cancelable: true})); }"""


@pytest.mark.browser
def test_keyboard_labeling_on_the_fast_page(tmp_path: Path, browser, server_process) -> None:
    prepare(tmp_path)
    server = server_process(tmp_path, ["apps.labeling_server", "--api-only"])
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = open_page(context, server, "s")
    message_has(page, "Enter your name")
    page.fill("#name", "kim")
    page.keyboard.press("Enter")
    progress_has(page, "Pair 1 of 24")
    for key in "123":  # left, right, tie
        page.keyboard.press(key)
    progress_has(page, f"Pair {XSS_PAIR + 1} of 24")
    # The XSS pair: its texts are shown as text, nothing of them runs or becomes an element.
    assert XSS in page.locator("#left").text_content() + page.locator("#right").text_content()
    assert XSS in page.locator("#prompt").text_content()
    assert page.evaluate("document.querySelectorAll('img, #prompt *, #left *, #right *').length") == 0
    assert page.evaluate("window.__xss") is None
    page.keyboard.press("6")  # helpfulness: left
    page.keyboard.press("q")  # slight
    page.keyboard.press("1")
    progress_has(page, "Pair 5 of 24")
    page.keyboard.press("5")  # skip: the reason box takes the focus
    page.wait_for_function("() => document.activeElement?.id === 'rationale'")  # a function: the CSP forbids eval
    page.keyboard.type("not my language")
    page.keyboard.press("Control+Enter")
    page.keyboard.press("2")  # straight after the submit: a vote on the next pair, not text in the box
    progress_has(page, "Pair 7 of 24")
    page.keyboard.press("u")
    message_has(page, "Vote undone")
    progress_has(page, "Pair 6 of 24")
    page.keyboard.press("4")  # both bad, instead of the undone right
    progress_has(page, "Pair 7 of 24")
    page.keyboard.type("1212122")  # real keys without waiting, pairs 7-13
    progress_has(page, "Pair 14 of 24")
    # One task: the first key's vote is in flight while every later key arrives, so they are queued, the
    # skip's reason included (dispatched keys type nothing by themselves; the queue puts them in the box).
    page.evaluate(BURST_JS, [["1", False], ["5", False], *[[c, False] for c in "off topic"], ["Enter", True],
                             *[[c, False] for c in "23212"]])
    progress_has(page, "Pair 21 of 24")

    votes = stored(tmp_path, "s", "kim")
    planned = ["left", "right", "tie", "left", "skip", "both_bad", *"1212122", "1", "skip", *"23212"]
    planned = [{"1": "left", "2": "right", "3": "tie"}.get(c, c) for c in planned]
    assert [shown(j) for j in votes] == planned
    assert [j.pair_id for j in votes] == [f"p{i:04d}" for i in range(20)]
    xss_vote = votes[XSS_PAIR]
    assert xss_vote.strength == 1 and {a: to_displayed(v, xss_vote.displayed_order) for a, v in xss_vote.aspects.items()} == {"helpfulness": "left"}
    assert votes[0].strength == 2 and votes[2].strength is None
    assert (votes[4].rationale, votes[14].rationale) == ("not my language", "off topic")
    assert all(j.rationale == "" for k, j in enumerate(votes) if k not in (4, 14))
    with Store(tmp_path / "workbench.sqlite") as store:
        events = LabelingStore(store).events("s")
    assert [(e["kind"], e["pair_id"]) for e in events if e["pair_id"] == "p0005"] == [("vote", "p0005"), ("undo", "p0005"), ("vote", "p0005")]

    # A reload resumes on the same pair without a click.
    before = page.locator("#prompt").text_content()
    assert before == "prompt 20"
    page.reload()
    message_has(page, "Resumed where you left off")
    assert page.locator("#prompt").text_content() == before
    progress_has(page, "Pair 21 of 24")
    # A lost token: joining again under the same name gives the queue back (no login: the owner's server).
    saved = json.loads(page.evaluate("localStorage.getItem('wb-label:s')"))
    assert saved["annotator"] == "kim"
    page.evaluate("localStorage.setItem('wb-label:s', JSON.stringify({annotator: 'kim', token: 'wrong'}))")
    page.reload()
    message_has(page, "does not belong")
    assert page.input_value("#name") == "kim"
    page.click("#join button")
    message_has(page, "Welcome back, kim")
    assert page.locator("#prompt").text_content() == before
    assert json.loads(page.evaluate("localStorage.getItem('wb-label:s')"))["token"] == saved["token"]

    closed = open_page(context, server, "old")
    message_has(closed, "is closed")
    assert closed.locator("#labeling").is_hidden() and closed.locator("#join").is_hidden()
    tiny = open_page(context, server, "t")
    tiny.fill("#name", "kim")
    tiny.keyboard.press("Enter")
    progress_has(tiny, "Pair 1 of 2")
    tiny.keyboard.press("1")
    tiny.keyboard.press("2")
    message_has(tiny, "All done: 2 pairs judged")
    index = open_page(context, server, "")
    message_has(index, "Choose a session")
    assert index.locator("#session-list a").all_text_contents() == ["s (24 pairs)", "t (2 pairs)"]
    context.close()
    assert len(stored(tmp_path, "s", "kim")) == 20


@pytest.mark.browser
def test_logins_label_as_themselves_and_never_in_anothers_queue(tmp_path: Path, browser, server_process) -> None:
    prepare(tmp_path)
    users = tmp_path / "users.txt"
    users.write_text(f"{ALICE[0]}:{ALICE[1]}\n{BOB[0]}:{BOB[1]}\n", encoding="utf-8")
    server = server_process(tmp_path, ["apps.labeling_server", "--api-only", "--auth", ":".join(OWNER), "--users", str(users)],
                            auth=OWNER)
    alice_ctx = browser.new_context(http_credentials={"username": ALICE[0], "password": ALICE[1]})
    alice = open_page(alice_ctx, server, "s")
    message_has(alice, "Joined as alice")  # the login is the name: no form, no click
    assert alice.locator("#join").is_hidden()
    alice.keyboard.press("1")
    progress_has(alice, "Pair 2 of 24")
    alice_saved = alice.evaluate("localStorage.getItem('wb-label:s')")

    # Bob's browser holds Alice's token (copied, or a shared computer): the server refuses it
    # for Bob's login, and the page labels as Bob instead.
    bob_ctx = browser.new_context(http_credentials={"username": BOB[0], "password": BOB[1]})
    bob_ctx.add_init_script(f"if (!sessionStorage.getItem('planted')) {{ localStorage.setItem('wb-label:s', {json.dumps(alice_saved)});"
                            " sessionStorage.setItem('planted', '1'); }")
    bob = open_page(bob_ctx, server, "s")
    message_has(bob, "cannot act as annotator 'alice'")
    message_has(bob, "Joined as bob")
    assert json.loads(bob.evaluate("localStorage.getItem('wb-label:s')"))["annotator"] == "bob"
    bob.keyboard.press("2")
    progress_has(bob, "Pair 2 of")
    refused = bob.evaluate("""async t => (await fetch('/api/labeling/sessions/s/annotators/alice/next',
                                         {headers: {'x-annotator-token': t}})).status""", json.loads(alice_saved)["token"])
    assert refused == 403
    bob.reload()
    message_has(bob, "Resumed where you left off")
    assert [shown(j) for j in stored(tmp_path, "s", "alice")] == ["left"]
    assert [shown(j) for j in stored(tmp_path, "s", "bob")] == ["right"]
    alice_ctx.close()
    bob_ctx.close()


@pytest.mark.browser
def test_the_labeling_tab_links_the_fast_page(tmp_path: Path, browser, server_process) -> None:
    prepare(tmp_path)
    server = server_process(tmp_path, ["apps.labeling_server"])
    page = open_app(browser, server.url, 1300, 1000, timeout_ms=UI_TIMEOUT_MS)
    link = page.locator("#wb-lab-fast a")
    link.wait_for()
    assert link.get_attribute("href") == "/label/s" and "Fast keyboard page" in page.locator("#wb-lab-fast").inner_text()
    with page.context.expect_page() as opened:  # Gradio opens Markdown links in a new tab
        link.click()
    fast = opened.value
    fast.set_default_timeout(UI_TIMEOUT_MS)
    message_has(fast, "Enter your name")
    assert fast.url == server.url + "/label/s"
    page.close()
