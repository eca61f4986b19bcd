"""Roles on every action, probed as an annotator would: real ``workbench serve`` process, raw
HTTP to the labeling API and direct calls of the Gradio events (hidden UI is no permission).

Owner = the ``--auth`` login; annotators = the users file. See docs/security.md.
"""
from __future__ import annotations

import httpx
from conftest import PROBE_ALICE, PROBE_BOB, PROBE_OWNER, ProbeServer, gradio_call

from workbench.labeling import LabelingStore
from workbench.store import Store

API = "/api/labeling"


def _datasets(probe: ProbeServer) -> list[str]:
    with Store(probe.home / "workbench.sqlite") as store:
        return [d["name"] for d in store.list_datasets()]


def test_annotators_never_see_gold_or_others_tallies(probe_server: ProbeServer) -> None:
    url = probe_server.server.url + API
    as_alice = httpx.get(f"{url}/sessions/gold", auth=PROBE_ALICE, timeout=30)
    assert as_alice.status_code == 200, as_alice.text
    body = as_alice.json()
    assert body["settings"]["gold"] == {} and body["settings"]["n_gold"] == 1 and "progress" not in body
    assert '"p1": "A"' not in as_alice.text and "token" not in as_alice.text
    listed = httpx.get(f"{url}/sessions", auth=PROBE_BOB, timeout=30).json()["sessions"]
    assert {s["name"] for s in listed} == {"gold"}  # not alice's session, not the closed one
    assert all(s["settings"]["gold"] == {} for s in listed)
    owner = httpx.get(f"{url}/sessions/gold", auth=PROBE_OWNER, timeout=30).json()
    assert owner["settings"]["gold"] == {"p1": "A"} and owner["progress"]["pairs"] == 6


def test_annotators_label_only_where_assigned(probe_server: ProbeServer) -> None:
    url = probe_server.server.url + API
    r = httpx.post(f"{url}/sessions/alice-only/annotators", json={"name": "bob"}, auth=PROBE_BOB, timeout=30)
    assert r.status_code == 403 and "not assigned" in r.json()["error"], r.text
    assert httpx.get(f"{url}/sessions/alice-only", auth=PROBE_BOB, timeout=30).status_code == 403
    assert httpx.post(f"{url}/sessions/closed/annotators", json={"name": "bob"}, auth=PROBE_BOB, timeout=30).status_code == 403
    r = httpx.post(f"{url}/sessions/alice-only/annotators", json={"name": "alice"}, auth=PROBE_ALICE, timeout=30)
    assert r.status_code == 201, r.text
    # Owner-only actions, refused by role before the body is looked at.
    for path, body in (("/sessions", {"name": "x", "dataset": "ds"}), ("/sessions/gold/status", {"status": "closed"})):
        r = httpx.post(url + path, json=body, auth=PROBE_ALICE, timeout=30)
        assert r.status_code == 403 and "only the workbench owner" in r.json()["error"], (path, r.text)
    # The Labeling tab's Loop panel (fit, blind session, verdict) is the owner's, called directly as an annotator.
    for event, data in (("loop_fit", [None, "dpo", 1]), ("loop_blind", [None, {}, 1.0, 0]), ("loop_verdict", [None, {}])):
        out = gradio_call(probe_server.server.url, event, data, PROBE_ALICE)
        assert "only the workbench owner" in str(out), (event, out)
    with Store(probe_server.home / "workbench.sqlite") as store:
        lab = LabelingStore(store)
        assert lab.annotators("alice-only") == ["alice"] and lab.annotators("closed") == []
        assert [s.name for s in lab.list_sessions()] == ["gold", "alice-only", "closed"]


def test_annotators_cannot_import_replace_or_use_session_tools(probe_server: ProbeServer) -> None:
    url = probe_server.server.url
    typed = probe_server.home / "data" / "new.jsonl"
    typed.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    before = _datasets(probe_server)
    for name, replace in (("new", False), ("ds", True)):  # a new dataset, and replacing the owner's
        out = gradio_call(url, "on_import", [None, str(typed), "auto", name, replace, []], PROBE_ALICE)
        assert "only the workbench owner" in str(out[0]), out
    assert _datasets(probe_server) == before
    out = gradio_call(url, "make", ["mine", "ds", "sequential", 1, "", "", "", "", "", "", 0.1], PROBE_BOB)
    assert "only the workbench owner" in str(out[0]), out
    out = gradio_call(url, "export", ["gold", "trl-jsonl", "judgment"], PROBE_BOB)
    assert "only the workbench owner" in str(out[0]), out
    assert not (probe_server.home / "exports").exists()
    # The owner may import (the same event, the same file).
    out = gradio_call(url, "on_import", [None, str(typed), "auto", "new", False, []], PROBE_OWNER)
    assert "Imported" in str(out[0]) and "new" in _datasets(probe_server), out
