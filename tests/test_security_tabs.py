"""Every event of a tab that is not for annotators, and every Panel view, is owner-only on the server.

Called directly (``/gradio_api/call/<event>``, raw HTTP), as an attacker's script would: the UI
hiding nothing proves nothing.
"""
from __future__ import annotations

import inspect

import gradio as gr
import httpx
import pytest
from conftest import PROBE_ALICE, PROBE_OWNER, ProbeServer
from gradio.helpers import special_args

from workbench.app.roles_guard import guard_new_events
from workbench.plugin_types import PanelView
from workbench.plugins import PluginHost
from workbench.settings import Settings


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
    slugs = [c.item.slug for c in PluginHost().collect("panel_views", PanelView, context=None)]
    assert "relreps" in slugs
    for slug in slugs:
        assert httpx.get(f"{url}/panel/{slug}", auth=PROBE_ALICE, timeout=60).status_code == 403
    assert httpx.get(f"{url}/panel/relreps", auth=PROBE_OWNER, timeout=120).status_code == 200


def test_the_guard_keeps_every_handler_signature_working(tmp_path) -> None:
    """Handlers with *args, their own gr.Request or a gr.Progress default get the same values once guarded."""
    settings = Settings(home=tmp_path, users={"ann": "pw"})

    def variadic(a, *rest):
        return f"{a}|{','.join(rest)}"

    def with_request(a, b, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - Gradio's own idiom
        return f"{a}|{b}|{request.username}"

    with gr.Blocks() as blocks:
        x, y, z, out = gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Textbox()
        before = list(blocks.fns)
        x.submit(variadic, [x, y, z], out)
        y.submit(with_request, [x, y], out)
        assert guard_new_events(blocks, before, settings, "Test") == 2
    first, second = list(blocks.fns.values())[-2:]
    owner, annotator = gr.Request(username=None), gr.Request(username="ann")
    assert first.fn(*special_args(first.fn, ["1", "2", "3"], request=owner)[0]) == "1|2,3"
    assert second.fn(*special_args(second.fn, ["1", "2"], request=owner)[0]) == "1|2|None"
    with pytest.raises(gr.Error, match="only the workbench owner can use the Test tab"):
        second.fn(*special_args(second.fn, ["1", "2"], request=annotator)[0])


def test_the_guard_wraps_every_event_of_every_owner_tab(tmp_path) -> None:
    """The guard rewrites ``Blocks.fns`` (Gradio internals, pinned to one minor release): per tab, the
    events it wrapped must be all the events the tab registered, and each wrapped handler asks for
    the request it checks. A Gradio upgrade that moves events elsewhere fails here, not in production."""
    from workbench.app.roles_guard import _REQUEST
    from workbench.app.shell import build_blocks
    from workbench.context import AppContext

    blocks = build_blocks(AppContext(Settings(home=tmp_path)), views=[])
    counts = blocks.guarded_events
    assert {"Models & data", "Labeling", "Steering", "Fine-tune", "Runs"} <= set(counts)
    for title, (events, guarded) in counts.items():
        assert events > 0, title
        assert guarded == (0 if title == "Labeling" else events), (title, events, guarded)
    wrapped = [f for f in blocks.fns.values() if f.fn is not None and next(iter(inspect.signature(f.fn).parameters), "") == _REQUEST]
    assert len(wrapped) == sum(guarded for _, guarded in counts.values())
