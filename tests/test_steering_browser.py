"""The Steering tab in a real headless Chromium: pick a saved vector, move its slider, generate.

Runs the real demo model behind ``workbench serve --model``; Chromium is the Debian package
driven by Playwright through ``executable_path``.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from page_watch import UI_TIMEOUT_MS, open_app
from playwright.sync_api import Page, expect
from sessions import longer, open_session, voted_session
from test_server import Server, make_home, start_server
from test_steering_votes import voted_pairs

from workbench.data.types import Pair
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.settings import Settings
from workbench.steering.library import save_vector
from workbench.steering.vectors import SteeringVector
from workbench.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.demo_model]

LOOP_PROMPTS = ["Name a primary color.", "Say hello."]
MODEL_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_model_dir) -> Iterator[Server]:
    home = make_home(tmp_path_factory.mktemp("steer-browser"), demo_model_dir)
    direction = torch.randn(576, generator=torch.Generator().manual_seed(0))
    save_vector(Settings(home=home), SteeringVector("random@12", 12, direction, scale=40.0))
    with Store(Settings(home=home).db_path) as store:  # a session whose 16 votes chose the longer answer
        voted_session(store, "voted", voted_pairs(), "votes")
        # The loop panel's session: 10 of 12 prompts voted, and two new ones for the blind test.
        loop_pairs = voted_pairs(12) + [Pair(prompt, "a", "b", id=f"new{i}") for i, prompt in enumerate(LOOP_PROMPTS)]
        lab = open_session(store, "loop-ds", loop_pairs, "loop")
        for p in loop_pairs[:10]:
            lab.vote("loop", "ann", p.id, longer(p))
    srv = start_server(home, "--model", DEMO_MODEL_NAME)
    yield srv
    srv.stop()


def pick(page: Page, elem: str, option: str) -> None:
    """Choose ``option`` in the dropdown ``elem``."""
    page.locator(f"{elem} input").click()
    page.get_by_role("option", name=option).click()


def set_number(page: Page, elem: str, value: str) -> None:
    """Type ``value`` into the number box of ``elem`` and commit it with Enter, as a user does."""
    box = page.locator(f"{elem} input[type=number]")
    box.fill(value)
    box.press("Enter")


def generate(page: Page, prompt: str) -> None:
    """Generate from ``prompt`` with the sliders as set, and wait until the model is done."""
    page.locator("#steer-prompt textarea").fill(prompt)
    page.locator("#steer-generate").click()
    expect(page.locator("#steer-gen-status")).to_contain_text("Done.", timeout=MODEL_TIMEOUT_MS)


def test_slider_steers_the_right_panel_only(browser, server: Server) -> None:
    page = open_app(browser, server.url, 1400, 1600, tab="Steering")
    pick(page, "#steer-slot-0", "random@12")
    set_number(page, "#steer-coef-0", "1")
    set_number(page, "#steer-max-new", "16")
    generate(page, "Name a primary color.")
    plain = page.locator("#steer-plain .wb-token")
    steered = page.locator("#steer-steered .wb-token")
    assert plain.count() > 0 and steered.count() > 0
    assert plain.first.get_attribute("title").startswith("log p = ")  # the hover text
    assert page.locator("#steer-plain").inner_text() != page.locator("#steer-steered").inner_text()
    page.close()


def test_a_coefficient_without_a_vector_warns(browser, server: Server) -> None:
    """It used to return two identical texts and "Done."."""
    page = open_app(browser, server.url, 1400, 1600, tab="Steering")
    expect(page.locator("#steer-model input")).to_have_value(DEMO_MODEL_NAME, timeout=UI_TIMEOUT_MS)  # the model the server started with, named
    set_number(page, "#steer-coef-1", "2")
    page.locator("#steer-generate").click()
    expect(page.locator("#steer-gen-status")).to_contain_text("Coefficient 2 is 2, but slot 2 has no vector")
    assert page.locator("#steer-plain .wb-token").count() == 0
    page.close()


def test_compare_with_shows_the_second_model_side_by_side(browser, server: Server) -> None:
    """The same prompt, seed and slider under a second model: here the model itself, so B reads as A."""
    page = open_app(browser, server.url, 1400, 1800, tab="Steering")
    expect(page.locator("#steer-b-plain")).to_be_hidden()  # no second model picked: no second row
    pick(page, "#steer-slot-0", "random@12")
    pick(page, "#steer-compare", DEMO_MODEL_NAME)
    set_number(page, "#steer-coef-0", "1")
    set_number(page, "#steer-max-new", "8")
    generate(page, "Name a primary color.")
    expect(page.locator("#steer-b-title")).to_contain_text(DEMO_MODEL_NAME)
    assert page.locator("#steer-b-plain .wb-token").count() > 0 and page.locator("#steer-b-steered .wb-token").count() > 0
    assert page.locator("#steer-b-plain").inner_text() == page.locator("#steer-plain").inner_text()
    assert page.locator("#steer-b-steered").inner_text() == page.locator("#steer-steered").inner_text()
    page.close()


def test_fit_from_votes_then_blind_test_the_setting(browser, server: Server) -> None:
    """The loop through steering from the browser: a vector from the session's votes goes straight into the
    slider dropdowns, and "Blind-test this setting" starts the generation job of a new session."""
    page = open_app(browser, server.url, 1400, 2000, tab="Steering")
    pick(page, "#steer-votes-session", "votes (16 A/B votes)")
    page.locator("#steer-votes-layers textarea, #steer-votes-layers input").first.fill("12")
    page.locator("#steer-votes-fit").click()
    expect(page.locator("#steer-votes-status")).to_contain_text("Saved 1 vector(s) from the votes of votes", timeout=MODEL_TIMEOUT_MS)
    expect(page.locator("#steer-votes-table")).to_contain_text("votes:votes@12:mean_diff")
    pick(page, "#steer-slot-0", "votes:votes@12:mean_diff")
    set_number(page, "#steer-coef-0", "4")
    page.get_by_text("Blind-test this setting: a labeling session").click()
    page.locator("#steer-blind-prompts textarea").fill("Name a primary color.\nSay hello.")
    page.locator("#steer-blind-name textarea, #steer-blind-name input").first.fill("steered-check")
    page.locator("#steer-blind-run").click()
    expect(page.locator("#steer-blind-status")).to_contain_text("answers 2 prompts unsteered and steered")
    expect(page.locator("#steer-blind-status")).to_contain_text("steered-check")
    expect(page.locator("#steer-blind-status")).to_contain_text("2 prompt(s) of your own")
    # Reward heads + DPA direction from the same session's votes (the form listed datasets only).
    page.get_by_role("tab", name="DPA", exact=True).click()
    page.get_by_text("Train a reward model (per-attribute Bradley–Terry heads)").click()
    box = page.locator("#steer-rm-dataset input")
    box.click()
    page.get_by_role("option", name="session votes (16 A/B votes)").click()
    expect(box).to_have_value("session votes (16 A/B votes)")
    page.locator("#steer-rm-name textarea, #steer-rm-name input").first.fill("votes-rewards")
    page.locator("#steer-rm-train").click()
    expect(page.locator("#steer-rm-status")).to_contain_text("from the votes of session votes, with its DPA direction",
                                                             timeout=MODEL_TIMEOUT_MS)
    page.close()


def test_from_votes_to_verdict_in_at_most_8_clicks(browser, server: Server) -> None:
    """Issue 21: the Labeling tab's guided panel goes from a session with 10 votes to the verdict
    of a blind unsteered-vs-steered session, every click counted (keys to label are not clicks)."""
    clicks = 0

    def click(locator) -> None:
        nonlocal clicks
        locator.click()
        clicks += 1

    page = open_app(browser, server.url, 1400, 2000)
    click(page.get_by_role("tab", name="Labeling"))
    click(page.get_by_text("From votes to verdict"))
    click(page.locator("#wb-loop-session input"))
    page.locator("#wb-loop-session input").fill("loop")  # the dropdown filters as you type; Enter takes the match
    page.keyboard.press("Enter")
    expect(page.locator("#wb-loop-session input")).to_have_value("loop (10 A/B votes)")
    click(page.locator("#wb-loop-fit"))
    expect(page.locator("#wb-loop-fit-status")).to_contain_text("Saved steering vector votes:loop@12:mean_diff", timeout=MODEL_TIMEOUT_MS)
    click(page.locator("#wb-loop-blind-run"))
    status = page.locator("#wb-loop-blind-status")
    # How many prompts and why: the 10 voted prompts fitted the vector; the other 4 are the test.
    expect(status).to_contain_text("4 of the 14 prompt(s) of session 'loop': 10 fitted the vector(s)")
    expect(status).to_contain_text("Made the blind session", timeout=2 * MODEL_TIMEOUT_MS)
    blind = page.locator("#wb-loop-blind input, #wb-loop-blind textarea").first.input_value()
    link = status.get_by_role("link", name=f"/label/{blind}")
    with page.context.expect_page() as opened:
        click(link)
    fast = opened.value
    fast.set_default_timeout(UI_TIMEOUT_MS)
    fast.locator("#name").fill("researcher")
    fast.locator("#name").press("Enter")
    for k, key in enumerate("1212", start=1):
        expect(fast.locator("#progress")).to_contain_text(f"Pair {k} of 4")
        fast.keyboard.press(key)
    expect(fast.locator("#message")).to_contain_text("All done")
    fast.close()
    click(page.locator("#wb-loop-verdict"))
    out = page.locator("#wb-loop-verdict-out")
    expect(out).to_contain_text("Did it win?")
    expect(out).to_contain_text("steered")
    assert clicks <= 8, clicks
    page.close()
