"""The Labeling tab in Debian's headless Chromium against the real standalone labeling server.

The tab embeds the session's fast keyboard page: keys vote in one request each, a pair holding
HTML stays text, a reload of the tab resumes on the same session and pair without a click, and
the votes land in the store under the name typed once.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 60_000
XSS = '<img src=x onerror="window.__xss = 1">'


def frame_text(frame, element: str, text: str) -> None:
    expect(frame.locator(f"#{element}")).to_contain_text(text, timeout=UI_TIMEOUT_MS)


def test_the_tab_labels_in_the_fast_page_and_a_reload_resumes(tmp_path: Path, browser, server_process) -> None:
    pairs = [Pair(f"prompt {i}", f"left {i}", f"right {i}", id=f"p{i:04d}") for i in range(6)]
    pairs[2] = Pair(f"prompt 2 {XSS}", f"A says {XSS}", "B is plain", id="p0002")
    with Store(tmp_path / "workbench.sqlite") as store:
        store.import_pairs("ds", pairs)
        LabelingStore(store).create_session("s", "ds")
    server = server_process(tmp_path, ["apps.labeling_server"])
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#wb-lab-session input')?.value === 's'")  # the only session, chosen on load
    page.locator("#wb-lab-frame").wait_for()
    frame = page.frame_locator("#wb-lab-frame")
    frame_text(frame, "message", "Enter your name")
    frame.locator("#name").fill("kim")
    frame.locator("#name").press("Enter")
    frame_text(frame, "progress", "Pair 1 of 6")
    latencies = []
    for k, key in enumerate("12", start=2):
        t0 = time.perf_counter()
        page.keyboard.press(key)
        frame_text(frame, "progress", f"Pair {k} of 6")
        latencies.append(time.perf_counter() - t0)
    # The HTML pair: text, no element made of it, nothing ran.
    assert XSS in frame.locator("#left").text_content() + frame.locator("#right").text_content()
    assert frame.locator("body").evaluate("b => b.querySelectorAll('img, #prompt *, #left *, #right *').length") == 0
    assert frame.locator("body").evaluate("() => window.__xss") is None
    page.reload()  # resumes: the same session in the picker, the same name and pair in the page
    page.wait_for_function("document.querySelector('#wb-lab-session input')?.value === 's'")
    page.locator("#wb-lab-frame").wait_for()
    frame_text(frame, "progress", "Pair 3 of 6")
    frame_text(frame, "who", "kim")
    page.keyboard.press("3")  # the page has the keyboard again after the reload (tie)
    frame_text(frame, "progress", "Pair 4 of 6")
    page.close()
    with Store(tmp_path / "workbench.sqlite") as store:
        votes = [(j.annotator, j.pair_id) for j in LabelingStore(store).judgments("s")]
    assert votes == [("kim", "p0000"), ("kim", "p0001"), ("kim", "p0002")]
    assert max(latencies) < 5, latencies  # one request per vote, not Gradio's queue


def test_the_owner_sees_what_the_model_uncertain_order_does(tmp_path: Path, browser, server_process, tiny_checkpoint) -> None:
    """The fast page's owner view: before the first refit it says how many votes the head waits
    for; once the server has fitted one on the tiny checkpoint, that it ranks by expected uncertainty reduction, with the
    refits, the votes since the last and the feature model."""
    pairs = [Pair(f"prompt {i}", "yes " * (1 + i % 5), "no " * (1 + i % 3), id=f"p{i:04d}") for i in range(12)]
    with Store(tmp_path / "workbench.sqlite") as store:
        store.import_pairs("ds", pairs)
        LabelingStore(store).create_session("s", "ds", {"order": "model-uncertain", "refit_every": 2,
                                                        "uncertainty_model": str(tiny_checkpoint("llama"))})
    server = server_process(tmp_path, ["apps.labeling_server", "--api-only"])
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{server.url}/label/s")
    page.fill("#name", "kim")  # no logins: the owner's server
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_contain_text("Pair 1 of 12")
    expect(page.locator("#selection")).to_contain_text("waiting for 2 more decisive votes before the first refit")
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_contain_text("Pair 2 of 12")
    page.keyboard.press("2")  # the second decisive vote: the next pair's request queues the first fit
    expect(page.locator("#progress")).to_contain_text("Pair 3 of 12")
    # Each poll asks the API again; the answer lands on window for the next poll (a predicate cannot be async).
    fitted = """() => { fetch('/api/labeling/sessions/s').then((r) => r.json())
                         .then((j) => { window.__refits = j.progress.selection.refits; });
                       return window.__refits === 1; }"""
    page.wait_for_function(fitted, polling=500, timeout=120_000)  # the server loads the checkpoint and fits
    page.keyboard.press("1")  # the page reads the order's state after every vote
    expect(page.locator("#selection")).to_contain_text("ranking by expected uncertainty reduction", timeout=UI_TIMEOUT_MS)
    text = page.locator("#selection").text_content()
    assert "refits 1" in text and "layer 1" in text and "votes since the last (every 2)" in text, text
    page.close()
