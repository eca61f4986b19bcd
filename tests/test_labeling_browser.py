"""Keyboard-only labeling in a real headless Chromium against the real standalone labeling server.

Labels 10 pairs with keys only, undoes the last vote with Ctrl+Z, reloads the page, checks
that it resumes on the undone pair, and compares the DPO export with what was chosen.
"""
from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from conftest import launch
from playwright.sync_api import sync_playwright
from test_labeling_reliability import prepare_home

from workbench.labeling import LabelingStore
from workbench.labeling.export import export_session
from workbench.store import Store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
UI_TIMEOUT_MS = 60_000


def status_has(page, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#wb-lab-status')?.innerText ?? '').includes(t)", arg=text)


def stream_done(page) -> None:
    """Both responses fully streamed (the 'streaming' note is gone and they have text)."""
    page.wait_for_function("!(document.querySelector('#wb-lab-stream')?.innerText ?? 'x').includes('streaming')"
                           " && ['#wb-lab-left', '#wb-lab-right'].every(s => (document.querySelector(s)?.innerText ?? '').trim()"
                           " && !document.querySelector(s).innerText.includes('processing'))")


def test_keyboard_labeling_undo_reload_resume_export(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    prepare_home(tmp_path, 12)
    server = launch(tmp_path, ["apps.labeling_server"])
    keys = [("1", "w"), ("2", "q"), ("a", None), ("b", "w"), ("1", "q"), ("2", None), ("1", "w"), ("3", None), ("2", "w"), ("1", "q")]
    chosen: list[tuple[str, str, int]] = []  # (chosen text, rejected text, strength) per decisive vote
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1300, "height": 1300})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(server.url + "/")
            name = page.locator("#wb-lab-annotator textarea, #wb-lab-annotator input").first
            name.wait_for()
            page.wait_for_function("document.querySelector('#wb-lab-session input')?.value === 's'")
            status_has(page, "Choose a session and your name")  # the page-load event has finished
            name.focus()
            page.keyboard.type("kim")
            page.keyboard.press("Enter")
            status_has(page, "Pair 1 of 12")
            page.keyboard.press("Escape")
            for k, (outcome_key, strength_key) in enumerate(keys, start=1):
                stream_done(page)
                left = page.locator("#wb-lab-left").inner_text().strip()
                right = page.locator("#wb-lab-right").inner_text().strip()
                page.keyboard.press(outcome_key)
                if strength_key:
                    page.keyboard.press(strength_key)
                page.wait_for_function("document.querySelector('#wb-lab-outcome input:checked') !== null")
                page.keyboard.press("Enter")
                status_has(page, f"Pair {k + 1} of 12")
                strength = {"q": 1, "w": 2, None: 2}[strength_key]
                if outcome_key in ("1", "a"):
                    chosen.append((left, right, strength))
                elif outcome_key in ("2", "b"):
                    chosen.append((right, left, strength))
            page.keyboard.press("Control+z")
            status_has(page, "Vote undone")
            status_has(page, "Pair 10 of 12")
            undone_prompt = page.locator("#wb-lab-prompt").inner_text()
            chosen.pop()  # the 10th vote ("1", left) was undone
            page.reload()
            status_has(page, "Resumed where you left off")
            status_has(page, "Pair 10 of 12")
            assert page.locator("#wb-lab-prompt").inner_text() == undone_prompt
            page.wait_for_function("(document.querySelector('#wb-lab-history')?.innerText ?? '').includes('p0008')")
            assert "p0009" not in page.locator("#wb-lab-history").inner_text()  # the undone vote left the history
            browser.close()
    finally:
        server.kill(signal.SIGTERM)
    with Store(tmp_path / "workbench.sqlite") as store:
        lab = LabelingStore(store)
        report = export_session(lab, "s", tmp_path / "out.jsonl")
        kinds = [e["kind"] for e in lab.events("s")]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert report["skipped"] == {"tie": 1} and kinds.count("undo") == 1 and kinds.count("vote") == 10
    assert [(r["chosen"], r["rejected"], r["margin"]) for r in rows] == chosen
    assert all(r["annotator"] == "kim" for r in rows)


def long_text(tag: str, n_words: int = 1500) -> str:
    return " ".join(f"{tag}{k}" for k in range(n_words))


def test_vote_while_the_responses_still_stream(tmp_path: Path, browser, server_process) -> None:
    """Vote (keys 1, Enter) before the streamed responses are complete: the vote lands on the
    pair being shown, in the annotator's displayed order, and the next pair streams cleanly."""
    from workbench.data.types import Pair

    with Store(tmp_path / "workbench.sqlite") as store:
        store.import_pairs("long", [Pair(f"prompt {i}", long_text(f"a{i}_"), long_text(f"b{i}_"), id=f"q{i}") for i in range(3)])
        LabelingStore(store).create_session("s", "long")
    server = server_process(tmp_path, ["apps.labeling_server"])
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#wb-lab-session input')?.value === 's'")
    status_has(page, "Choose a session and your name")
    page.locator("#wb-lab-annotator textarea, #wb-lab-annotator input").first.fill("zoe")
    page.click("#wb-lab-start")
    status_has(page, "Pair 1 of 3")
    page.wait_for_function("(document.querySelector('#wb-lab-left')?.innerText ?? '').split(/\\s+/).length > 20")
    page.keyboard.press("1")
    page.wait_for_function("document.querySelector('#wb-lab-outcome input:checked') !== null")
    shown = page.locator("#wb-lab-left").inner_text().split()
    note = page.locator("#wb-lab-stream").inner_text()
    page.keyboard.press("Enter")
    status_has(page, "Pair 2 of 3")
    assert "streaming" in note and 20 < len(shown) < 1500  # the vote went in mid-stream
    left_pair1 = shown[0].split("_")[0]  # 'a0' or 'b0': which response was on the left
    stream_done(page)
    left, right = page.locator("#wb-lab-left").inner_text().split(), page.locator("#wb-lab-right").inner_text().split()
    # Only pair 2's text, complete: the superseded stream of pair 1 wrote nothing after the vote.
    assert len(left) == len(right) == 1500 and {w.split("_")[0] for w in left + right} == {"a1", "b1"}
    page.close()
    with Store(tmp_path / "workbench.sqlite") as store:
        (j,) = LabelingStore(store).judgments("s")
    assert j.pair_id == "q0" and j.annotator == "zoe"
    assert j.outcome.value == ("A" if left_pair1 == "a0" else "B") and j.displayed_order == ("AB" if left_pair1 == "a0" else "BA")
