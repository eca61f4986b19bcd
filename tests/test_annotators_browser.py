"""The statistics view answers "noisy, or a different taste?" in the browser (issue 25 §1):
simulated annotators vote through the store on the demo pairs, and the Analysis section of the
real labeling server shows the random voter flagged noisy and the length lovers and short
lovers in two taste groups, with the per-group verdicts and the competence-weighted one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from page_watch import open_app
from test_annotators import demo_pairs, voters
from test_labeling_browser import UI_TIMEOUT_MS

from workbench.labeling import LabelingStore
from workbench.store import Store

pytestmark = pytest.mark.browser

VOTES = 100
HEADING = "Annotators: noisy or a different taste?"


def simulated_session(home: Path) -> None:
    """Five annotators, 100 votes each, interleaved through the store: a coin, two who prefer the
    longer answer, two who prefer the shorter; the pairs record "verbose" as the candidate."""
    rng = np.random.default_rng(7)
    pairs = demo_pairs(rng)
    for p in pairs:
        p.metadata["candidate"] = "verbose"
    rules = {name: rule for name, rule in voters(rng).items() if name != "chosen"}
    with Store(home / "workbench.sqlite") as store:
        store.import_pairs("demo", pairs)
        lab = LabelingStore(store)
        lab.create_session("tastes", "demo", {"overlap": len(rules), "order": "random"})
        for name in rules:
            lab.join("tastes", name)
        for _ in range(VOTES):
            for name, rule in rules.items():
                item = lab.next_item("tastes", name)
                lab.vote("tastes", name, item.pair.id, rule(item.pair), displayed_order=item.displayed_order)


def test_the_statistics_view_tells_the_noisy_voter_from_the_two_tastes(tmp_path: Path, browser, server_process) -> None:
    simulated_session(tmp_path)
    server = server_process(tmp_path, ["apps.labeling_server"])
    page = open_app(browser, server.url, timeout_ms=UI_TIMEOUT_MS)
    page.locator("#wb-lab-frame").wait_for()  # the page-load event has chosen a session
    page.get_by_text("Analysis, disagreements and export", exact=True).click()
    page.wait_for_function("document.querySelector('#wb-lab-an-session input')?.value === 'tastes'")  # the only session
    page.click("#wb-lab-refresh")
    page.wait_for_function(f"document.querySelector('#wb-lab-annotators')?.innerText.includes({HEADING!r})")
    block = page.locator("#wb-lab-annotators")
    rows = block.locator("table").first.evaluate(
        "t => [...t.querySelectorAll('tr')].map(r => [...r.querySelectorAll('th, td')].map(c => c.innerText.trim()))")
    header, body = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert header[:5] == ["annotator", "votes", "taste_group", "noisy", "competence"]
    assert set(body) == {"random", "long1", "long2", "short1", "short2"}
    assert [a for a, r in body.items() if r["noisy"] == "yes"] == ["random"]
    group = {a: r["taste_group"] for a, r in body.items()}
    assert group["random"] == "—" and group["long1"] == group["long2"] != group["short1"] == group["short2"]
    assert "length +" in body["long1"]["taste (interval excludes 0)"] and "length -" in body["short2"]["taste (interval excludes 0)"]
    assert all("[" in r["competence"] and "n=100" in r["consensus"] for r in body.values())  # every figure with its interval and n
    text = block.inner_text()
    assert f"{group['long1']}: long1, long2" in text and "noisy: random" in text
    verdicts = block.locator("table").nth(1).evaluate(
        "t => [...t.querySelectorAll('tr')].slice(1).map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))")
    by_group = {r[0]: r for r in verdicts}
    assert by_group[group["long1"]][4].startswith("better") and by_group[group["short1"]][4].startswith("worse")
    assert "Did verbose win, for whom?" in text and "Weighted by competence: verbose wins" in text and "effective n" in text
    page.close()
