"""The Models & data tab in a real headless Chromium against a real ``workbench serve`` with two
tiny random checkpoints: the chat's "Compare with" answers next to the loaded model, each
pane labelled and showing a note until its words arrive; a bad upload's error names the
user's file, line and field, never the copy under uploads/."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from checkpoints import write_tiny_checkpoint
from page_watch import attach_file, open_app, record_texts, recorded
from playwright.sync_api import expect
from test_home_chat import write_plain_gpt2
from test_server import Server, start_server

from plugins.home.actions import WORKING

pytestmark = pytest.mark.browser

MODEL_TIMEOUT_MS = 180_000  # the server's first torch import and model load on a busy 2-core CPU

# Every text the compare pane's answer bubble shows, in order (MutationObserver: no state is missed).
@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("home-browser") / "home"
    write_tiny_checkpoint("llama", home / "models" / "tiny-llama")
    write_plain_gpt2(home / "models" / "tiny-gpt2")
    srv = start_server(home)
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, server: Server):
    page = open_app(browser, server.url, 1440, 1400)
    page.locator("#home-load").wait_for()
    yield page
    page.close()


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.locator(f"#{elem_id} input")).to_have_value(option)


def test_compare_with_answers_side_by_side(page) -> None:
    _pick(page, "home-model", "tiny-llama")
    page.locator("#home-load").click()
    expect(page.locator("#home-load-status")).to_contain_text("Loaded tiny-llama", timeout=MODEL_TIMEOUT_MS)
    expect(page.locator("#home-chatbot-compare")).to_be_hidden()  # no second model: one pane, as before
    _pick(page, "home-chat-compare", "tiny-gpt2")
    expect(page.locator("#home-chatbot-compare")).to_be_visible()
    box = page.locator("#home-chat-max-new input[type=number]")  # sampled (temperature 0.7, seed 0): the
    box.fill("8")                                                   # tiny GPT-2's greedy answer is empty
    box.press("Enter")
    record_texts(page, "#home-chatbot-compare", "paneTexts", inner='[data-testid="bot"]')
    page.locator("#home-chat-input textarea").fill("Which answer is more concise?")
    page.locator("#home-chat-send").click()

    for pane in ("#home-chatbot", "#home-chatbot-compare"):
        expect(page.locator(f'{pane} [data-testid="user"]')).to_contain_text("Which answer is more concise?", timeout=MODEL_TIMEOUT_MS)
        bot = page.locator(f'{pane} [data-testid="bot"]')
        expect(bot).to_have_count(1, timeout=MODEL_TIMEOUT_MS)
        expect(bot).not_to_contain_text("⏳", timeout=MODEL_TIMEOUT_MS)
        expect(bot).to_have_text(re.compile(r"\S"))
    expect(page.locator("#home-chat-status")).not_to_contain_text("working")
    expect(page.locator("#home-chatbot")).to_contain_text("tiny-llama")  # each pane is labelled with its model
    expect(page.locator("#home-chatbot-compare")).to_contain_text("tiny-gpt2")
    seen = recorded(page, "paneTexts")
    first = next(t for t in seen if t.strip())
    assert "Waiting: tiny-llama answers first" in first, seen  # the second pane was never left blank
    assert WORKING.strip("*⏳ ").split(" —")[0] in " ".join(seen)  # then it showed that it was working
    page.screenshot(path="/tmp/wb-home-compare.png", full_page=True)


def test_a_bad_upload_names_the_users_file_line_and_field(page, tmp_path: Path) -> None:
    good = {"prompt": "q", "chosen": "short", "rejected": "long and winding"}
    rows = [good, {**good, "prompt": "q2"}, {"prompt": "q3", "chosen": 5, "rejected": "b"}]
    picked = tmp_path / "my-bad-prefs.jsonl"
    picked.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    attach_file(page, "#home-import-file", picked)
    page.locator("#home-import").click()
    status = page.locator("#home-import-status")
    expect(status).to_contain_text("Error:")
    text = status.inner_text()
    assert "my-bad-prefs.jsonl, line 3, field 'chosen'" in text, text
    assert "uploads/" not in text and "Traceback" not in text
