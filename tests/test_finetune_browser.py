"""The Fine-tune tab in a real headless Chromium (issue 21 §4, §5): it lists only its own job types (DPO,
PAL; a pair-generation run stays in the Runs tab), and a run shows only the panels its job type has —
a PAL run no DPO before/after tables, a DPO run no PAL accuracy table or latent plot. Real runs, made by
real workers on a tiny random checkpoint before the server starts."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from checkpoints import write_tiny_checkpoint
from page_watch import UI_TIMEOUT_MS, open_app
from playwright.sync_api import expect
from sessions import voted_session
from test_loop import ONE_THREAD, dpo_options
from test_server import Server, start_server
from test_steering_votes import voted_pairs
from test_training_pal_job import SMALL, fake_persona

from workbench.jobs import JobManager
from workbench.labeling.generate import GENERATE_PAIRS
from workbench.settings import Settings
from workbench.store import Store
from workbench.training.dpo import DPO_JOB
from workbench.training.pal_job import PAL_JOB
from workbench.training.persona import build_persona_benchmark, write_benchmark

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[tuple[Server, dict[str, str]]]:
    root = tmp_path_factory.mktemp("ft-browser")
    home = root / "home"
    model = write_tiny_checkpoint("llama", home / "models" / "tiny-llama")
    settings = Settings(home=home)
    with Store(settings.db_path) as store:
        voted_session(store, "ds", voted_pairs(16), "s", "alice")
    bench = write_benchmark(*build_persona_benchmark(fake_persona(root / "persona"), SMALL), root / "bench")
    manager = JobManager(settings, job_types={"dpo": DPO_JOB, "pal": PAL_JOB, GENERATE_PAIRS.name: GENERATE_PAIRS})
    sides = [{"name": n, "model": str(model), "sampling": {"max_new_tokens": 2}} for n in ("a", "b")]
    started = {"dpo": manager.submit("dpo", dpo_options(model), env=ONE_THREAD),
               "pal": manager.submit("pal", {"dataset": str(bench), "model": str(model), "k": 2, "epochs": 2, "shots": [1],
                                             "adapt_steps": 5}, env=ONE_THREAD),
               "pairs": manager.submit(GENERATE_PAIRS.name, {"dataset": "made", "prompts": ["hi"], "sources": sides}, env=ONE_THREAD)}
    for run in started.values():
        assert run.wait(600).status == "finished", run.log_tail()
    srv = start_server(home)
    yield srv, {kind: run.id for kind, run in started.items()}
    srv.stop()


def pick_run(page, run_id: str) -> None:
    box = page.locator("#ft-run input")
    box.fill(run_id)  # the dropdown filters as you type; Enter takes the match
    box.press("Enter")
    expect(page.locator("#ft-status")).to_contain_text(run_id, timeout=UI_TIMEOUT_MS)


def test_a_run_shows_only_its_job_types_panels(browser, runs) -> None:
    server, ids = runs
    page = open_app(browser, server.url, 1400, 2400, tab="Fine-tune", exact=True)
    # Its own runs only: the pair-generation run is the Runs tab's.
    expect(page.locator("#ft-table")).to_contain_text(ids["dpo"], timeout=UI_TIMEOUT_MS)
    expect(page.locator("#ft-table")).to_contain_text(ids["pal"])
    expect(page.locator("#ft-table")).not_to_contain_text(ids["pairs"])
    page.locator("#ft-run input").click()
    options = page.locator("[role=option]")
    expect(options).to_have_count(2)
    assert sorted(t.split("\n")[-1] for t in options.all_inner_texts()) == sorted([ids["dpo"], ids["pal"]])  # after the ✓ of the pick
    page.keyboard.press("Escape")
    pick_run(page, ids["pal"])
    expect(page.locator("#ft-pal-results")).to_be_visible()
    expect(page.locator("#ft-pal-results")).to_contain_text("PAL-A")
    expect(page.locator("#ft-latent")).to_be_visible()
    expect(page.locator("#ft-before-after")).to_be_hidden()
    expect(page.locator("#ft-samples")).to_be_hidden()
    pick_run(page, ids["dpo"])
    expect(page.locator("#ft-before-after")).to_be_visible()
    expect(page.locator("#ft-before-after")).to_contain_text("held_out")
    expect(page.locator("#ft-pal-results")).to_be_hidden()
    expect(page.locator("#ft-latent")).to_be_hidden()
    page.close()
