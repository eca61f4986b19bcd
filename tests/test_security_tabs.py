"""Every event of a tab that is not for annotators, and every Panel view, is owner-only on the server.

Called directly (``/gradio_api/call/<event>``, raw HTTP), as an attacker's script would: the UI
hiding nothing proves nothing.
"""
from __future__ import annotations

import httpx
from conftest import PROBE_ALICE, PROBE_OWNER, ProbeServer

from workbench.plugins import PluginHost


def _call(url: str, api_name: str, data: list, auth: tuple[str, str]) -> tuple[str, str]:
    """(event kind, its data) of the last SSE message of a direct Gradio call."""
    r = httpx.post(f"{url}/gradio_api/call/{api_name}", json={"data": data}, auth=auth, timeout=60)
    assert r.status_code == 200, (api_name, r.status_code, r.text)
    text = httpx.get(f"{url}/gradio_api/call/{api_name}/{r.json()['event_id']}", auth=auth, timeout=120).text
    last = [b for b in text.split("\n\n") if b.strip()][-1]
    kind, _, data_line = last.partition("\n")
    return kind.removeprefix("event: ").strip(), data_line.removeprefix("data:").strip()


def _api_names(url: str, auth: tuple[str, str]) -> dict[str, list]:
    """Each named event and a valid input per parameter (its default, else Gradio's example value)."""
    info = httpx.get(f"{url}/gradio_api/info", auth=auth, timeout=60).json()
    def value(p: dict) -> object:  # no file example: Gradio's points at a URL this machine cannot reach
        return None if p.get("component") in ("File", "Files", "UploadButton") else (
            p.get("parameter_default") if p.get("parameter_has_default") else p.get("example_input"))

    return {name.lstrip("/"): [value(p) for p in spec["parameters"]]
            for name, spec in info["named_endpoints"].items()}


def test_annotator_gets_a_clear_refusal_from_every_owner_tab_event(probe_server: ProbeServer) -> None:
    url = probe_server.server.url
    names = _api_names(url, PROBE_OWNER)
    # Events of the Models & data, Steering, Fine-tune and Runs tabs (the Labeling tab checks its own).
    probes = ["on_load", "on_import", "on_send", "on_fit", "on_train", "on_start_dpo", "on_cancel"]
    assert set(probes) <= set(names), sorted(names)
    for name in probes:
        kind, data = _call(url, name, names[name], PROBE_ALICE)
        assert kind == "error" and "only the workbench owner can use the" in data, (name, kind, data)


def test_panel_views_are_refused_to_annotators_and_served_to_the_owner(probe_server: ProbeServer) -> None:
    url = probe_server.server.url
    slugs = [v.slug for v in PluginHost().collect("panel_views", context=None)]
    assert "relreps" in slugs
    for slug in slugs:
        assert httpx.get(f"{url}/panel/{slug}", auth=PROBE_ALICE, timeout=60).status_code == 403
    assert httpx.get(f"{url}/panel/relreps", auth=PROBE_OWNER, timeout=120).status_code == 200
