"""Every tab and every Panel view opens cleanly, in a real headless Chromium: no HTTP error, no
console error, no page wider than the viewport (issue 21 §3, §5)."""
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
LONG_PROMPT = " ".join(["The quick brown fox jumps over the lazy dog."] * 6)  # ~60 tokens: a 3,600 px heatmap
# How much wider than its viewport a document may scroll (a scrollbar's rounding).
WIDTH_SLACK_PX = 2
_WIDTHS = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_model_dir) -> Iterator[Server]:
    srv = start_server(make_home(tmp_path_factory.mktemp("navigation"), demo_model_dir))
    yield srv
    srv.stop()


def _too_wide(page) -> list[str]:
    """Every frame (the app and each embedded view) whose document scrolls sideways."""
    wide = []
    for frame in page.frames:
        try:
            scroll, client = frame.evaluate(_WIDTHS)
        except Exception:  # a frame that navigated away meanwhile
            continue
        if client and scroll > client + WIDTH_SLACK_PX:
            wide.append(f"{frame.url}: {scroll} px in a {client} px viewport")
    return wide


def test_every_tab_and_view_opens_cleanly(browser, server: Server, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    failures: list[str] = []
    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("favicon.ico")
            and failures.append(f"HTTP {r.status} {r.request.method} {r.url}"))
    page.on("console", lambda m: m.type == "error" and failures.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: failures.append(f"page error: {e}"))
    page.goto(server.url + "/", timeout=UI_TIMEOUT_MS)
    page.locator("#home-load").wait_for()
    titles = [t.inner_text().strip() for t in page.locator(".tab-container > [role=tab]").all()]
    assert {"Labeling", "Runs", *VIEWS} <= set(titles), titles
    for title in titles:
        page.get_by_role("tab", name=title, exact=True).click()
        if title in VIEWS:
            slug, control = VIEWS[title]
            frame = page.locator(f'iframe[src="/panel/{slug}"]')
            expect(frame).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(frame.content_frame.get_by_role("button", name=control)).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.wait_for_timeout(2500)  # the tab-open refresh answers (Gradio's timers never let the network idle)
        failures += [f"{title}: {w}" for w in _too_wide(page)]
    # A long prompt's lens heatmap (60 px a token) scrolls in its own box: the page stays as wide as the screen.
    page.get_by_role("tab", name="Logit lens", exact=True).click()
    lens = page.locator('iframe[src="/panel/logit-lens"]').content_frame
    lens.get_by_label("Prompt").fill(LONG_PROMPT)
    lens.get_by_role("button", name="Run lens").click()
    expect(lens.locator("canvas").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(2000)  # the plot's final layout
    failures += [f"lens heatmap: {w}" for w in _too_wide(page)]
    page.screenshot(path=str(tmp_path / "navigation.png"))
    page.close()
    # An event that fails inside Gradio (e.g. a list update sent to a text box) answers 200 and only logs.
    failures += [f"server log: {line}" for line in server.logs().splitlines() if "Traceback" in line or "Error:" in line]
    assert not failures, "\n".join(failures)
