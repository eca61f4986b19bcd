"""Browser-test helpers: a page opened on the app, and states that come and go (every text an
element shows, a file picked into a page still settling).

Playwright's ``expect`` polls, so on a fast machine a state that lasts one frame (the chat's
"working" note before the first token) can come and go between two polls. A MutationObserver
installed before the action sees every rendered state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

_RECORD = """([selector, inner, key]) => {
  window[key] = [];
  const root = document.querySelector(selector);
  const read = () => {
    const found = inner ? root.querySelectorAll(inner) : [root];
    if (found.length) window[key].push(found[found.length - 1].innerText);
  };
  read();
  new MutationObserver(read).observe(root, {subtree: true, childList: true, characterData: true});
}"""


def record_texts(page: Any, selector: str, key: str, inner: str = "") -> None:
    """From now on, push the text of ``selector`` (or of its last ``inner`` match) to ``window[key]`` on every change."""
    page.evaluate(_RECORD, [selector, inner, key])


def recorded(page: Any, key: str) -> list[str]:
    return page.evaluate(f"window[{key!r}]")


PICK_TIMEOUT_MS = 60_000


def attach_file(page: Any, elem: str, path: Path) -> None:
    """Pick ``path`` in a File component and wait until it shows the name. A file picked while the
    page's load-time fills are still re-rendering can be dropped by the component (seen once in
    CI: the name never showed); the user sees no file and picks again, and so does this."""
    for attempt in range(2):
        page.locator(f"{elem} input[type=file]").set_input_files(str(path))
        try:
            page.locator(elem).get_by_text(path.name).wait_for(timeout=15_000 if attempt == 0 else PICK_TIMEOUT_MS)
            return
        except PlaywrightTimeoutError:
            if attempt:
                raise


UI_TIMEOUT_MS = 60_000  # one UI step on a busy 2-core machine (a model's work waits longer, per test)


def open_app(browser: Any, url: str, width: int = 1400, height: int = 1400, *, tab: str = "", exact: bool = False,
             timeout_ms: int = UI_TIMEOUT_MS) -> Any:
    """A new page on the app at ``url`` (its root) in a ``width`` × ``height`` viewport, every wait bounded by
    ``timeout_ms``, on ``tab`` when one is named: how every browser test starts."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(timeout_ms)
    page.goto(url + "/", timeout=timeout_ms)
    if tab:
        page.get_by_role("tab", name=tab, exact=exact).click()
    return page
