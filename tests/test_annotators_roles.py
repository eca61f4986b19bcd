"""The annotators block shows everyone's votes, so the server gives it to the owner only: an
annotator's call of the Analysis event (as a script would make it) gets the refusal and no block."""
from __future__ import annotations

import httpx
from conftest import PROBE_ALICE, PROBE_OWNER, ProbeServer, gradio_call


def _analysis_event(url: str) -> str:
    """The named event whose inputs start with the Analysis section's session and tie treatment."""
    info = httpx.get(f"{url}/gradio_api/info", auth=PROBE_OWNER, timeout=60).json()["named_endpoints"]
    found = [name.lstrip("/") for name, spec in info.items() if [p.get("label") for p in spec["parameters"]][:2] == ["Session", "Tie treatment"]]
    assert len(found) == 1, sorted(info)
    return found[0]


def test_the_annotators_block_is_for_the_owner_only(probe_server: ProbeServer) -> None:
    url = probe_server.server.url
    event = _analysis_event(url)
    refused = gradio_call(url, event, ["gold", "davidson", ""], PROBE_ALICE)
    assert "only the workbench owner can use the labeling session tools" in refused[0] and refused[3] == ""
    shown = gradio_call(url, event, ["gold", "davidson", ""], PROBE_OWNER)
    assert shown[3].startswith("#### Annotators: noisy or a different taste?") and "No votes yet." in shown[3]
