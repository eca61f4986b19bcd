"""The Runs tab in a real headless Chromium against a real ``workbench serve``: a declared ready
example fills its form, start an LM-SAE run on a tiny random checkpoint from its generated form,
see its stage and ETA, cancel it and see "cancelled" within a few seconds."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from checkpoints import write_tiny_checkpoint
from page_watch import UI_TIMEOUT_MS, open_app
from playwright.sync_api import expect
from test_server import Server, start_server

from workbench.context import AppContext
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.sae.synthetic import synthetic_paths
from workbench.settings import Settings

pytestmark = pytest.mark.browser

JOB_TIMEOUT_MS = 420_000  # the worker's first torch import and the extraction on a busy 2-core CPU
SCREENSHOT = Path("/tmp/wb-runs-tab.png")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[Server, str]]:
    home = tmp_path_factory.mktemp("runs-browser") / "home"
    write_tiny_checkpoint("llama", home / "models" / "tiny-llama")
    dataset = AppContext(Settings(home=home)).ensure_demo_dataset()
    srv = start_server(home)
    yield srv, dataset
    srv.stop()


def _fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id}").locator("textarea, input").first
    box.fill(value)
    box.press("Tab")


def test_start_follow_and_cancel_a_run(browser, server) -> None:
    srv, dataset = server
    page = open_app(browser, srv.url, 1440, 1600, tab="Runs", exact=True)
    # A form whose only list is its model: the list is filled, and its box does not show an object's repr.
    page.locator("#runs-dpa-rsf-model input").click()
    page.wait_for_selector("#runs-dpa-rsf-model [data-testid=dropdown-option]", state="attached")
    page.keyboard.press("Escape")
    assert "gradio" not in page.locator("#runs-dpa-rsf-model input").input_value()
    # Each form starts as a ready example (issue 21 §5): pair generation names a new dataset in a text box and
    # shows its prompts and sources; LM-SAE starts with a model and a dataset, and an error names the form's fields.
    page.get_by_role("tab", name="generate-pairs", exact=True).click()
    expect(page.locator("#runs-generate-pairs-dataset textarea")).to_have_value("greedy-vs-sampled")
    example = page.locator("#runs-generate-pairs-yaml textarea").input_value()
    assert "prompts:" in example and "sources:" in example and DEMO_MODEL_NAME in example, example
    # A job type's declared ready run (JobType.example): its button fills the fields with values known at run time.
    page.get_by_role("tab", name="recsae", exact=True).click()
    page.locator("#runs-recsae-example").click()
    interactions, items, _ = synthetic_paths()
    expect(page.locator("#runs-recsae-interactions").locator("textarea, input").first).to_have_value(str(interactions))
    expect(page.locator("#runs-recsae-attributes").locator("textarea, input").first).to_have_value(str(items))
    page.get_by_role("tab", name="lm-sae", exact=True).click()
    expect(page.locator("#runs-lm-sae-model input")).to_have_value(DEMO_MODEL_NAME)
    expect(page.locator("#runs-lm-sae-dataset input")).to_have_value("demo")
    _fill(page, "runs-lm-sae-model", "")
    page.locator("#runs-lm-sae-start").click()
    expect(page.locator("#runs-start-status")).to_contain_text("needs a model", timeout=UI_TIMEOUT_MS)
    assert "--" not in page.locator("#runs-start-status").inner_text()  # no CLI flags in the browser's words
    for elem, value in (("runs-lm-sae-model", "tiny-llama"), ("runs-lm-sae-dataset", dataset),
                        ("runs-lm-sae-prefer-pole", "verbose"), ("runs-lm-sae-yaml", "sae: {training_samples: 2000000}")):
        _fill(page, elem, value)
    page.locator("#runs-lm-sae-start").click()
    expect(page.locator("#runs-start-status")).to_contain_text("Started", timeout=UI_TIMEOUT_MS)
    status = page.locator("#runs-status")
    expect(status).to_contain_text(re.compile(r"sae \d+ / 2000000 .*ETA \d+ s"), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#runs-table")).to_contain_text("running")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.locator("#runs-cancel").click()
    t0 = time.monotonic()
    expect(status).to_contain_text("cancelled", timeout=120_000)  # waits longer than the bound, so the bound can fail
    assert time.monotonic() - t0 < 15, f"cancelled after {time.monotonic() - t0:.1f} s; runs promise a cancel within seconds"
    expect(page.locator("#runs-table")).to_contain_text("cancelled")
    page.close()
