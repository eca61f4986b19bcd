"""The labeling tools' dropdowns list what exists when the page loads, not what existed when the
server started, and the Analysis section answers "did it win?" in the browser."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_labeling_browser import UI_TIMEOUT_MS
from test_labeling_reliability import prepare_home

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

pytestmark = pytest.mark.browser


def test_datasets_and_sessions_made_after_start_are_listed_on_load(tmp_path: Path, browser, server_process) -> None:
    prepare_home(tmp_path, 4)
    server = server_process(tmp_path, ["apps.labeling_server"])
    with Store(tmp_path / "workbench.sqlite") as store:  # made after the server built its page
        pairs = [Pair(f"q{i}", "short", "a much longer answer " * 3, id=f"n{i}", metadata={"source_a": "base", "source_b": "tuned"})
                 for i in range(12)]
        store.import_pairs("later", pairs)
        lab = LabelingStore(store)
        lab.create_session("late", "later")
        lab.join("late", "ann")
        for p in pairs:
            lab.vote("late", "ann", p.id, "B", displayed_order=lab.item("late", "ann", p.id).displayed_order)
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(server.url + "/")
    page.locator("#wb-lab-frame").wait_for()  # the page-load event has chosen a session
    page.get_by_text("New session", exact=True).click()
    page.locator("#wb-lab-new-dataset input").click()
    page.wait_for_function("[...document.querySelectorAll('#wb-lab-new-dataset [data-testid=dropdown-option]')].some(li => li.innerText.trim().endsWith('later'))")
    page.keyboard.press("Escape")
    page.get_by_text("Analysis, disagreements and export", exact=True).click()
    page.wait_for_function("(document.querySelector('#wb-lab-an-session input')?.value ?? '') !== ''")
    page.locator("#wb-lab-an-session input").fill("late")
    page.keyboard.press("Enter")
    page.click("#wb-lab-refresh")
    page.wait_for_function("document.body.innerText.includes('Did it win?')")
    body = page.locator("body").inner_text()
    assert "length-controlled win rate" in body and "tuned vs base" in body and "needs overlap ≥ 2" in body
    page.close()
