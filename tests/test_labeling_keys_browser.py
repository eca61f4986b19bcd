"""Labeling at keyboard speed in Debian's headless Chromium against the real labeling server:
keys pressed while the previous pair is still being replaced are applied in order to the next
ones (none lost), a skip's Ctrl+Enter leaves the rationale box, and aspects get keys."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_labeling_browser import UI_TIMEOUT_MS, status_has
from test_labeling_reliability import prepare_home

from workbench.labeling import LabelingStore
from workbench.labeling.sessions import to_displayed
from workbench.store import Store

pytestmark = pytest.mark.browser


def start_labeling(browser, server, name: str):
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#wb-lab-session input')?.value === 's'")
    status_has(page, "Choose a session and your name")
    page.locator("#wb-lab-annotator textarea, #wb-lab-annotator input").first.fill(name)
    page.click("#wb-lab-start")
    status_has(page, "Pair 1 of")
    page.locator("#wb-lab-prompt").click()  # leave the name box, as Esc would
    return page


def votes(home: Path, annotator: str) -> list:
    with Store(home / "workbench.sqlite") as store:
        return [j for j in LabelingStore(store).judgments("s") if j.annotator == annotator]


def test_a_burst_of_keys_during_renders_stores_every_vote_in_order(tmp_path: Path, browser, server_process) -> None:
    prepare_home(tmp_path, 12)
    server = server_process(tmp_path, ["apps.labeling_server"])
    page = start_labeling(browser, server, "kim")
    planned = ["left", "right", "left", "left", "right", "tie", "right", "left", "both_bad", "left", "right", "left"]
    key = {"left": "1", "right": "2", "tie": "3", "both_bad": "4"}
    for choice in planned:  # no waiting between votes: most keys arrive while a render is in flight
        page.keyboard.press(key[choice])
        page.keyboard.press("Enter")
    status_has(page, "All done")
    stored = votes(tmp_path, "kim")
    assert [to_displayed(j.outcome.value, j.displayed_order) for j in stored] == planned
    assert [j.pair_id for j in stored] == [f"p{i:04d}" for i in range(12)]


def test_skip_rationale_ctrl_enter_leaves_the_box_and_aspect_keys(tmp_path: Path, browser, server_process) -> None:
    prepare_home(tmp_path, 4, aspects=["helpfulness", "verbosity"])
    server = server_process(tmp_path, ["apps.labeling_server"])
    page = start_labeling(browser, server, "zoe")
    page.keyboard.press("5")
    page.wait_for_function("document.activeElement === document.querySelector('#wb-lab-rationale textarea')")
    page.keyboard.type("not my language")
    page.keyboard.press("Control+Enter")
    page.keyboard.press("1")  # straight after the submit: must not be typed into the rationale
    page.keyboard.press("6")  # helpfulness: left
    page.keyboard.press("7")
    page.keyboard.press("7")  # verbosity: left, then right
    page.keyboard.press("Enter")
    status_has(page, "Pair 3 of 4")
    assert page.evaluate("document.activeElement?.tagName") != "TEXTAREA"
    skip, vote = votes(tmp_path, "zoe")
    assert skip.outcome.value == "skip" and skip.rationale == "not my language"
    assert to_displayed(vote.outcome.value, vote.displayed_order) == "left" and vote.rationale == ""
    assert {a: to_displayed(v, vote.displayed_order) for a, v in vote.aspects.items()} == {"helpfulness": "left", "verbosity": "right"}
