"""Dropdowns follow what exists while a page stays open: opening a tab refreshes the lists its
page load filled, keeping what the user picked (workbench.app.shell.refresh_on_open)."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_server import make_home, start_server

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 120_000
OPTIONS = "[...document.querySelectorAll('#ft-dpo-session [data-testid=dropdown-option]')].map(li => li.innerText.trim())"


def _session_options(page) -> list[str]:
    page.locator("#ft-dpo-session input").click()
    page.wait_for_selector("#ft-dpo-session [data-testid=dropdown-option]", state="attached")
    options = page.evaluate(OPTIONS)
    page.keyboard.press("Escape")
    return options


def test_a_session_made_elsewhere_is_offered_when_the_tab_is_opened_again(tmp_path: Path, browser, demo_model_dir) -> None:
    home = make_home(tmp_path, demo_model_dir)
    with Store(home / "workbench.sqlite") as store:
        store.import_pairs("first", [Pair(f"q{i}", "a", "b", id=f"f{i}", preferred="A") for i in range(4)])
        LabelingStore(store).create_session("early", "first")
    server = start_server(home)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(server.url + "/", timeout=UI_TIMEOUT_MS)
        page.locator("#home-load").wait_for()
        page.get_by_role("tab", name="Fine-tune", exact=True).click()
        page.wait_for_function("(document.querySelector('#ft-dpo-dataset input')?.value ?? '') !== ''")
        assert _session_options(page) == ["early"]
        picked = page.locator("#ft-dpo-dataset input").input_value()

        with Store(home / "workbench.sqlite") as store:  # as another tab, browser or the CLI would
            store.import_pairs("second", [Pair(f"r{i}", "c", "d", id=f"s{i}", preferred="B") for i in range(4)])
            LabelingStore(store).create_session("later", "second")

        page.get_by_role("tab", name="Models & data", exact=True).click()
        page.get_by_role("tab", name="Fine-tune", exact=True).click()
        page.locator("#ft-dpo-session input").click()
        page.wait_for_function(f"{OPTIONS}.includes('later')")
        page.keyboard.press("Escape")
        assert page.locator("#ft-dpo-dataset input").input_value() == picked  # the user's pick is kept

        # Train on picks the source, so the always-filled Dataset box no longer clashes with a session (issue 21).
        page.locator("#ft-dpo-source").get_by_text("session", exact=True).click()
        page.locator("#ft-dpo-start").click()
        status = page.locator("#ft-start-status")
        status.filter(has_text="Train on is 'session', but the Session box is empty").wait_for()
        page.locator("#ft-dpo-session input").fill("later")
        page.keyboard.press("Enter")
        page.locator("#ft-dpo-start").click()
        status.filter(has_text="later").wait_for()  # refused for its votes (none yet), not for "exactly one"
        assert "exactly one" not in status.inner_text() and "vote" in status.inner_text()
        page.close()
    finally:
        server.stop()
