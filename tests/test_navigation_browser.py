"""Every Panel view is reachable from the main navigation, in a real headless Chromium."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from test_server import Server, make_home, start_server

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 120_000
VIEWS = {  # tab title -> (slug, a control that only the view's own page has)
    "Latent explorer": ("relreps", "Compare spaces"),
    "Logit lens": ("logit-lens", "Run lens"),
    "RecSAE": ("recsae", "Open run"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_model_dir) -> Iterator[Server]:
    srv = start_server(make_home(tmp_path_factory.mktemp("navigation"), demo_model_dir))
    yield srv
    srv.stop()


def test_every_panel_view_is_a_tab_that_embeds_it(browser, server: Server, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(server.url + "/", timeout=UI_TIMEOUT_MS)
    page.locator("#home-load").wait_for()
    for title, (slug, control) in VIEWS.items():
        page.get_by_role("tab", name=title, exact=True).click()
        frame = page.locator(f'iframe[src="/panel/{slug}"]')
        expect(frame).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(frame.content_frame.get_by_role("button", name=control)).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "navigation.png"))
    page.close()
