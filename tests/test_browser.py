"""The home tab and the overview in a real headless Chromium against a real server.

Chromium is the Debian package (/usr/bin/chromium) driven by Playwright through
``executable_path``; nothing is downloaded. The chat test runs the real embedded demo model.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from page_watch import UI_TIMEOUT_MS, attach_file, open_app, record_texts, recorded
from playwright.sync_api import expect
from test_server import Server, make_home, start_server

from workbench.models.embedded import DEMO_MODEL_NAME

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/wb-home-tab.png")
MODEL_TIMEOUT_MS = 300_000  # first load and generation on a busy 2-core CPU


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_model_dir) -> Iterator[Server]:
    srv = start_server(make_home(tmp_path_factory.mktemp("browser"), demo_model_dir))
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, server):
    page = open_app(browser, server.url)
    page.locator("#home-load").wait_for()
    yield page
    page.close()


def _upload(page, path: Path) -> None:
    attach_file(page, "#home-import-file", path)


def test_load_demo_model_and_chat(page, server: Server) -> None:
    # Before any model is loaded, chatting says so in the page (this test runs first in the module).
    page.locator("#home-chat-input textarea").fill("Hello?")
    page.locator("#home-chat-send").click()
    expect(page.locator("#home-chat-status")).to_contain_text("No model is loaded")
    expect(page.locator('#home-chatbot [data-testid="user"]')).to_have_count(0)

    page.locator("#home-model input").click()
    page.get_by_role("option", name=DEMO_MODEL_NAME).click()
    expect(page.locator("#home-model input")).to_have_value(DEMO_MODEL_NAME)
    page.locator("#home-load").click()
    status = page.locator("#home-load-status")
    expect(status).to_contain_text(f"Loaded {DEMO_MODEL_NAME}", timeout=MODEL_TIMEOUT_MS)
    expect(status).to_contain_text("30 layers")
    health = httpx.get(server.url + "/api/health", timeout=30).json()
    assert health["active_model"] == DEMO_MODEL_NAME and health["models"][0]["layers"] == 30

    record_texts(page, "#home-chatbot", "answerTexts", inner='[data-testid="bot"]')
    record_texts(page, "#home-chat-status", "statusTexts")
    page.locator("#home-chat-input textarea").fill("What is the capital of France?")
    page.locator("#home-chat-send").click()
    expect(page.locator('#home-chatbot [data-testid="user"]')).to_contain_text("What is the capital of France?", timeout=UI_TIMEOUT_MS)
    reply = page.locator('#home-chatbot [data-testid="bot"]').first
    expect(reply).not_to_contain_text("The model is working", timeout=MODEL_TIMEOUT_MS)
    expect(reply).to_have_text(re.compile(r"\w{2,}"))
    # Streaming finished: the chatbot's progress tracker is hidden again, and so is the note.
    expect(page.locator('#home-chatbot [data-testid="status-tracker"]').first).to_have_class(re.compile(r"\bhide\b"), timeout=MODEL_TIMEOUT_MS)
    expect(page.locator("#home-chat-status")).not_to_contain_text("working")
    assert re.search(r"\w{2,}", reply.inner_text()) and "⏳" not in reply.inner_text()
    expect(page.locator("#home-chat-status")).not_to_contain_text("Error")
    # Before the first token the answer's place and the status said the model was working. The
    # note can last a single frame on a fast machine, so the recorders, not polling, saw it.
    answers, statuses = recorded(page, "answerTexts"), recorded(page, "statusTexts")
    first_answer = next(t for t in answers if t.strip())
    assert "The model is working" in first_answer, answers
    assert any("The model is working" in t for t in statuses), statuses
    # Then how far it is: tokens so far out of the maximum (128), and an ETA (issue 21 §4).
    assert any(re.search(rf"{DEMO_MODEL_NAME}: \d+ / 128 tokens, ETA \d+ s", t) for t in statuses), statuses
    page.locator("#home-chat-send").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_bad_file_import_shows_where_it_is_wrong(page, server: Server, tmp_path: Path) -> None:
    bad = tmp_path / "broken-pairs.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + '\n{"prompt": "q", "chosen": \n', encoding="utf-8")
    _upload(page, bad)
    page.locator("#home-import").click()
    status = page.locator("#home-import-status")
    expect(status).to_contain_text("Error:", timeout=UI_TIMEOUT_MS)
    expect(status).to_contain_text("line 2")
    expect(status).to_contain_text("broken-pairs")
    assert "Traceback" not in status.inner_text()
    uploads = server.home / "data" / "uploads"
    assert not list(uploads.glob("broken-pairs*")), "a failed import must not leave its upload copy behind"


def test_import_then_browse_pairs(page, server: Server, tmp_path: Path) -> None:
    good = tmp_path / "three.jsonl"
    rows = [{"prompt": f"Question {i}?", "chosen": f"Good answer {i}", "rejected": f"Bad answer {i}", "topic": "t"} for i in range(3)]
    good.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _upload(page, good)
    page.locator("#home-import-name input, #home-import-name textarea").first.fill("three-pairs")
    page.locator("#home-import").click()
    expect(page.locator("#home-import-status")).to_contain_text("Imported 3 pairs as dataset three-pairs")
    header = page.locator("#home-pair-header")
    expect(header).to_contain_text("Pair 1 of 3 in three-pairs")
    expect(page.locator("#home-pair-prompt")).to_contain_text("Question 0?")
    expect(page.locator("#home-pair-a")).to_contain_text("Good answer 0")
    expect(page.locator("#home-pair-b")).to_contain_text("Bad answer 0")
    page.get_by_role("button", name="Next ▶").click()
    expect(header).to_contain_text("Pair 2 of 3")
    expect(page.locator("#home-pair-a")).to_contain_text("Good answer 1")


def test_overview_renders_dataset_charts(browser, server: Server) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    try:
        page.goto(server.url + "/panel/overview", timeout=UI_TIMEOUT_MS)
        page.get_by_text("Dataset demo").wait_for(timeout=UI_TIMEOUT_MS)
        page.get_by_text(DEMO_MODEL_NAME).first.wait_for()
        expect(page.locator(".bk-Figure")).not_to_have_count(0, timeout=UI_TIMEOUT_MS)
        # Demo pairs carry categorical metadata: one bar chart per such field plus the length histogram.
        assert page.locator(".bk-Figure").count() >= 3  # at least metadata.attribute, metadata.topic, lengths
        page.screenshot(path="/tmp/wb-overview.png", full_page=True)
    finally:
        page.close()
