"""After a vote in the Labeling tab's embedded fast page, the session's reward model scores the two
answers (issue 21: the scores were lost when the tab began embedding the fast page). Real server,
real reward model fitted on a tiny random checkpoint's features, headless Chromium."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from checkpoints import write_tiny_checkpoint
from page_watch import open_app
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from sessions import voted_session
from test_server import Server, start_server
from test_steering_votes import voted_pairs

from workbench.data.types import Pair
from workbench.models.loading import load_model
from workbench.preference.reward_heads import reward_models_dir, train_reward_model_from_session
from workbench.settings import Settings
from workbench.store import Store

pytestmark = pytest.mark.browser

MODEL_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("after-vote") / "home"
    model = write_tiny_checkpoint("llama", home / "models" / "tiny-llama")
    settings = Settings(home=home)
    with Store(settings.db_path) as store:
        lab = voted_session(store, "voted", voted_pairs(12), "votes")
        rm = train_reward_model_from_session(load_model(model, name="tiny-llama"), lab, "votes", name="rm", layer=1)
        rm.save(reward_models_dir(settings))
        store.import_pairs("fresh", [Pair("Say hello.", "Hello there, friend.", "Hi", id="q0"),
                                     Pair("Name a color.", "Red", "Blue is a calm color.", id="q1")])
        lab.create_session("scored", "fresh", {"reward_model": "rm"})
    srv = start_server(home)
    yield srv
    srv.stop()


def test_scores_show_after_the_vote_never_before(browser, server: Server) -> None:
    page = open_app(browser, server.url, 1300, 1500, tab="Labeling")
    box = page.locator("#wb-lab-session input")
    # The tab's load event may refresh the session choices while the list is open, which closes it
    # (a clean-clone CI run once waited 60 s on a detached option): open it again, as a user would.
    for _ in range(4):
        box.click()
        try:
            page.get_by_role("option", name="scored", exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeoutError:
            continue
    else:
        pytest.fail("the session list never offered 'scored' long enough to pick it")
    frame = page.frame_locator("#wb-lab-frame")
    frame.locator("#name").fill("kim")
    frame.locator("#name").press("Enter")
    expect(frame.locator("#progress")).to_contain_text("Pair 1 of 2")
    scores = page.locator("#wb-lab-after-vote")
    assert "reward model" not in scores.inner_text()  # nothing before a vote
    first = frame.locator("#prompt").inner_text()
    page.keyboard.press("1")
    expect(frame.locator("#progress")).to_contain_text("Pair 2 of 2")
    expect(scores).to_contain_text("After your vote on the previous pair", timeout=MODEL_TIMEOUT_MS)
    pair_id = "q0" if first == "Say hello." else "q1"
    expect(scores).to_contain_text(f"({pair_id})")
    # In the left/right terms the annotator saw, with the reward model's difference.
    assert re.search(r"reward model: (left − right|right − left) = [+-]\d+\.\d{3}", scores.inner_text()), scores.inner_text()
    assert re.search(r"length: (left|right) has [+-]\d+ words", scores.inner_text()), scores.inner_text()
    page.close()
