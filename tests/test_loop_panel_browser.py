"""The Labeling tab's loop panel in a real headless Chromium, on every branch that makes a blind session:
a DPO run (a very short one on a tiny random checkpoint) and reward heads + the DPA direction, from a
session with 10 votes to the verdict, every click counted (typing and labeling keys are not clicks).
The steering branch is walked in tests/test_steering_browser.py.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from checkpoints import write_tiny_checkpoint
from page_watch import record_texts, recorded
from playwright.sync_api import expect
from test_server import Server, start_server
from test_steering_votes import voted_pairs

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.settings import Settings
from workbench.store import Store

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 60_000
JOB_TIMEOUT_MS = 600_000  # the worker's first torch import, training and generation on a busy 2-core CPU
NEW_PROMPTS = ["Name a primary color.", "Say hello."]
SHOTS_TO = "WORKBENCH_SCREENSHOTS"  # set to docs/screenshots to refresh the docs' pictures; else they go to a temporary folder


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("loop-panel") / "home"
    write_tiny_checkpoint("llama", home / "models" / "tiny-llama")
    with Store(Settings(home=home).db_path) as store:  # 10 of 12 prompts voted (the longer answer), two never voted
        pairs = voted_pairs(12) + [Pair(prompt, "a", "b", id=f"new{i}") for i, prompt in enumerate(NEW_PROMPTS)]
        store.import_pairs("loop-ds", pairs)
        lab = LabelingStore(store)
        lab.create_session("loop", "loop-ds")
        lab.join("loop", "ann")
        for p in pairs[:10]:
            lab.vote("loop", "ann", p.id, "A" if len(p.response_a) > len(p.response_b) else "B")
    srv = start_server(home, "--model", "tiny-llama")
    yield srv
    srv.stop()


class Clicks:
    """Clicks counted, as a researcher would make them."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, locator) -> None:
        locator.click()
        self.n += 1


def open_panel(browser, server: Server, click: Clicks, method: str):
    page = browser.new_page(viewport={"width": 1400, "height": 2000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(server.url + "/", timeout=UI_TIMEOUT_MS)
    click(page.get_by_role("tab", name="Labeling"))
    click(page.get_by_text("From votes to verdict"))
    expect(page.locator("#wb-loop-session input")).to_have_value("loop (10 A/B votes)")  # the session with most votes, chosen
    expect(page.locator("#wb-loop-blind-run")).to_be_disabled()  # nothing fitted yet
    click(page.locator("#wb-loop-method").get_by_text(method, exact=True))
    return page


def label_all(page, status, click: Clicks) -> str:
    """Follow step 3's link and vote on every pair with keys; the blind session's name."""
    blind = page.locator("#wb-loop-blind input, #wb-loop-blind textarea").first.input_value()
    with page.context.expect_page() as opened:
        click(status.get_by_role("link", name=f"/label/{blind}"))
    fast = opened.value
    fast.set_default_timeout(UI_TIMEOUT_MS)
    fast.locator("#name").fill("researcher")
    fast.locator("#name").press("Enter")
    expect(fast.locator("#progress")).to_contain_text("Pair 1 of")
    total = int(re.search(r"Pair 1 of (\d+)", fast.locator("#progress").inner_text()).group(1))
    for k in range(1, total + 1):
        expect(fast.locator("#progress")).to_contain_text(f"Pair {k} of {total}")
        fast.keyboard.press("2")  # the right-hand answer, whichever source it is
    expect(fast.locator("#message")).to_contain_text("All done")
    fast.close()
    return blind


def test_dpo_branch_from_votes_to_verdict_in_at_most_8_clicks(browser, server: Server, tmp_path: Path) -> None:
    shots = Path(os.environ.get(SHOTS_TO) or tmp_path)
    click = Clicks()
    page = open_panel(browser, server, click, "DPO run")
    page.locator("#wb-loop-steps input").fill("2")  # a very short run (typed)
    # Two steps leave greedy answers unchanged ("No difference to judge"): sample them, a seed per side.
    page.locator("#wb-loop-temperature input").fill("0.7")
    record_texts(page, "#wb-loop-fit-status", "fitStates")
    click(page.locator("#wb-loop-fit"))
    fit_status = page.locator("#wb-loop-fit-status")
    expect(fit_status.get_by_role("link").first).to_have_text(re.compile(r"^dpo-"))
    run_id = fit_status.get_by_role("link").first.inner_text()
    assert run_id.startswith("dpo-"), run_id
    assert fit_status.get_by_role("link").first.get_attribute("href") == f"/?tab=runs&run={run_id}"
    expect(fit_status).to_contain_text("Finished", timeout=JOB_TIMEOUT_MS)
    # While the job ran, the status showed its progress line (stage k/n, with an ETA once it has one).
    assert any("⏳" in t and ("running:" in t or "queued:" in t) for t in recorded(page, "fitStates")), recorded(page, "fitStates")
    expect(page.locator("#wb-loop-blind-run")).to_be_enabled()
    click(page.locator("#wb-loop-blind-run"))
    status = page.locator("#wb-loop-blind-status")
    expect(status).to_contain_text("Base vs tuned")
    expect(status).to_contain_text("Made the blind session", timeout=JOB_TIMEOUT_MS)
    expect(status.locator("a[href$='/stats']")).to_have_attribute("href", re.compile(r"^/api/labeling/sessions/dpo-.+-blind/stats$"))
    page.locator("#wb-loop").screenshot(path=str(shots / "loop-panel.png"))  # the docs' picture of the panel
    blind = label_all(page, status, click)
    click(page.locator("#wb-loop-verdict"))
    out = page.locator("#wb-loop-verdict-out")
    expect(out).to_contain_text("Did it win?")
    assert "tuned" in out.inner_text(), out.inner_text()
    assert click.n <= 8, click.n
    out.screenshot(path=str(shots / "loop-verdict.png"))
    for name in ("loop-panel.png", "loop-verdict.png"):
        assert (shots / name).stat().st_size < 300_000, name  # committed to the docs: kept small
    # The run's link opens the Runs tab with that run selected.
    page.goto(server.url + f"/?tab=runs&run={run_id}", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("tab", name="Runs", exact=True)).to_have_attribute("aria-selected", "true", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#runs-run input")).to_have_value(run_id, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#runs-status")).to_contain_text(f"{run_id} (dpo) — finished", timeout=UI_TIMEOUT_MS)
    assert blind.endswith("-blind")
    page.close()


def test_dpa_branch_from_votes_to_verdict(browser, server: Server) -> None:
    click = Clicks()
    page = open_panel(browser, server, click, "reward head + DPA direction")
    click(page.locator("#wb-loop-fit"))
    fit_status = page.locator("#wb-loop-fit-status")
    expect(fit_status).to_contain_text("Saved reward model loop-loop", timeout=JOB_TIMEOUT_MS)
    expect(fit_status).to_contain_text("Your response should maximize weighted rating")  # the steered side's system prompt
    click(page.locator("#wb-loop-blind-run"))
    status = page.locator("#wb-loop-blind-status")
    # Only the four never-voted prompts: the 10 voted ones fitted the reward heads.
    expect(status).to_contain_text("4 prompt(s) of session 'loop' with no vote (the voted ones fitted the reward model)")
    expect(status).to_contain_text("Made the blind session", timeout=JOB_TIMEOUT_MS)
    label_all(page, status, click)
    click(page.locator("#wb-loop-verdict"))
    out = page.locator("#wb-loop-verdict-out")
    expect(out).to_contain_text("Did it win?")
    expect(out).to_contain_text("steered")
    assert click.n <= 8, click.n
    page.close()
