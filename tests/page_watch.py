"""Record every text an element shows, for browser tests of states too brief to poll.

Playwright's ``expect`` polls, so on a fast machine a state that lasts one frame (the chat's
"working" note before the first token) can come and go between two polls. A MutationObserver
installed before the action sees every rendered state.
"""
from __future__ import annotations

from typing import Any

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
