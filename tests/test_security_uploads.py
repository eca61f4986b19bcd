"""The home tab's upload field accepts only files Gradio itself received through an upload
(or paths inside the data folders): a crafted FileData naming a server path is refused
before the file is opened, so its content and keys never reach the page. Real server process."""
from __future__ import annotations

import httpx
from conftest import PROBE_OWNER, ProbeServer, gradio_call

from workbench.store import Store


def test_crafted_filedata_outside_the_data_folders_is_refused(probe_server: ProbeServer) -> None:
    url = probe_server.server.url
    crafted = {"path": str(probe_server.outside), "meta": {"_type": "gradio.FileData"}}
    out = gradio_call(url, "on_import", [crafted, "", "auto", "stolen", False, []], PROBE_OWNER)
    message = str(out[0])
    assert "not uploaded through this page" in message, message
    for secret in ("aws_secret_access_key", "db_password", "hunter2", "AKIA"):
        assert secret not in message
    with Store(probe_server.home / "workbench.sqlite") as store:
        assert "stolen" not in [d["name"] for d in store.list_datasets()]
    assert not list((probe_server.home / "data").glob("uploads/creds*"))  # nothing was copied in


def test_a_real_upload_still_imports(probe_server: ProbeServer) -> None:
    url = probe_server.server.url
    files = {"files": ("mine.jsonl", b'{"prompt": "q", "chosen": "good", "rejected": "bad"}\n', "application/json")}
    r = httpx.post(f"{url}/gradio_api/upload", files=files, auth=PROBE_OWNER, timeout=60)
    assert r.status_code == 200, r.text
    uploaded = {"path": r.json()[0], "orig_name": "mine.jsonl", "meta": {"_type": "gradio.FileData"}}
    out = gradio_call(url, "on_import", [uploaded, "", "auto", "uploaded", False, []], PROBE_OWNER)
    assert "Imported" in str(out[0]), out
    with Store(probe_server.home / "workbench.sqlite") as store:
        assert store.count_pairs("uploaded") == 1
