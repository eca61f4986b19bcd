"""The one-server app, run as a real process: health, Gradio, Panel, bind safety, auth.

Servers run as ``python -m workbench.cli serve`` in their own process group with a
temporary WORKBENCH_HOME; their output goes to a log file that failures print.
"""
from __future__ import annotations

import base64
import importlib.resources
import posixpath
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ServerProcess, launch

from workbench import __version__
from workbench.hookspecs import hookimpl
from workbench.models.embedded import DEMO_MODEL_NAME


def make_home(root: Path, demo_model_dir: Path) -> Path:
    """A fresh workbench home that reuses the session's converted demo model (no 30 s re-conversion)."""
    home = root / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / DEMO_MODEL_NAME).symlink_to(demo_model_dir, target_is_directory=True)
    return home


Server = ServerProcess  # the name tests/test_browser.py and tests/test_steering_browser.py import


def start_server(home: Path, *args: str, auth: tuple[str, str] | None = None, wait: bool = True) -> ServerProcess:
    """``workbench serve`` on a free port (``launch`` in conftest does the rest)."""
    return launch(home, ["workbench.cli", "serve", *args], auth=auth, wait=wait)


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_model_dir) -> Iterator[Server]:
    srv = start_server(make_home(tmp_path_factory.mktemp("serve"), demo_model_dir))
    yield srv
    srv.stop()


def _resource_urls(html: str, page_path: str) -> list[str]:
    base = page_path.rsplit("/", 1)[0] + "/"
    urls = [u for u in re.findall(r'(?:src|href)="([^"#]+)"', html) if not u.startswith(("http:", "https:", "data:"))]
    return [u if u.startswith("/") else posixpath.normpath(posixpath.join(base, u)) for u in urls]


def test_health_reports_version_plugins_and_models(server: Server) -> None:
    body = httpx.get(f"{server.url}/api/health", timeout=30).json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert body["models"] == [] and body["active_model"] is None
    home = next(p for p in body["plugins"] if p["name"] == "home")
    assert home["status"] == "ok" and {"gradio_tabs", "panel_views"} <= set(home["hooks"])


def test_gradio_app_at_root(server: Server) -> None:
    page = httpx.get(f"{server.url}/", timeout=60)
    assert page.status_code == 200 and '"title":"Preference Workbench"' in page.text
    config = httpx.get(f"{server.url}/config", timeout=60).json()
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    assert {"Models & data", "Plugins"} <= labels, labels
    assert "home-chatbot" in {c.get("props", {}).get("elem_id") for c in config["components"]}
    # Gradio's own /static files are still Gradio's (Bokeh's mount was moved under /panel).
    img = next(p for p in (importlib.resources.files("gradio") / "templates/frontend/static/img").iterdir() if p.is_file())
    assert httpx.get(f"{server.url}/static/img/{img.name}", timeout=30).status_code == 200


def test_panel_overview_and_its_resources(server: Server) -> None:
    page = httpx.get(f"{server.url}/panel/overview", timeout=120)
    assert page.status_code == 200 and "<title>Workbench overview</title>" in page.text
    scripts = [u for u in _resource_urls(page.text, "/panel/overview") if u.endswith(".js") or ".js?" in u]
    assert any("bokeh.min.js" in u for u in scripts) and any("panel.min.js" in u for u in scripts)
    for url in scripts:
        assert httpx.get(server.url + url, timeout=30).status_code == 200, url


def test_public_bind_without_auth_is_refused(tmp_path, demo_model_dir) -> None:
    srv = start_server(make_home(tmp_path, demo_model_dir), "--host", "0.0.0.0", wait=False)
    port = int(srv.url.rsplit(":", 1)[1])
    try:
        assert srv.proc.wait(timeout=120) != 0
    finally:
        srv.stop()
    assert "Refusing to listen on 0.0.0.0" in srv.logs() and "--auth" in srv.logs()
    assert "Traceback" not in srv.logs()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "nothing may listen after a refused bind"


def test_busy_port_is_a_clear_error(server: Server, tmp_path, demo_model_dir) -> None:
    port = server.url.rsplit(":", 1)[1]
    home = make_home(tmp_path, demo_model_dir)
    log = tmp_path / "busy.log"
    with open(log, "wb") as out:
        rc = subprocess.run([sys.executable, "-m", "workbench.cli", "serve", "--port", port, "--home", str(home)],
                            stdout=out, stderr=subprocess.STDOUT, timeout=180).returncode
    text = log.read_text()
    assert rc != 0 and f"Cannot listen on 127.0.0.1:{port}" in text and "Traceback" not in text, text


def test_auth_guards_every_route(tmp_path, demo_model_dir) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    srv = start_server(make_home(tmp_path, demo_model_dir), "--auth", "ann:s3cret", auth=("ann", "s3cret"))
    try:
        paths = ("/api/health", "/", "/config", "/panel/overview", "/panel/static/js/bokeh.min.js", "/gradio_api/info")
        for k, path in enumerate(paths):
            anon = httpx.get(srv.url + path, timeout=60)
            assert anon.status_code == 401, path
            assert anon.headers["www-authenticate"].startswith("Basic ")
            # Wrong logins from one address are locked out after ten (tests/test_security_http.py): one address per path.
            with httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{10 + k}"), timeout=60) as other:
                assert other.get(srv.url + path, auth=("ann", "wrong")).status_code == 401, path
                assert other.get(srv.url + path, auth=("bob", "s3cret")).status_code == 401, path
        for path in ("/api/health", "/", "/config", "/panel/overview"):
            assert httpx.get(srv.url + path, auth=("ann", "s3cret"), timeout=120).status_code == 200, path

        # The Panel websocket: refused without credentials, accepted with them.
        html = httpx.get(srv.url + "/panel/overview", auth=("ann", "s3cret"), timeout=120).text
        token = re.search(r'"token":\s*"([^"]+)"', html).group(1)
        ws_url = srv.url.replace("http://", "ws://") + "/panel/overview/ws"
        with pytest.raises(InvalidStatus):
            connect(ws_url, subprotocols=["bokeh", token], open_timeout=30)
        basic = "Basic " + base64.b64encode(b"ann:s3cret").decode()
        with connect(ws_url, subprotocols=["bokeh", token], additional_headers={"Authorization": basic}, open_timeout=30) as ws:
            assert '"msgtype": "ACK"' in ws.recv(timeout=30)
    finally:
        srv.stop()


# -- in-process: a faulty plugin never takes the app down --------------------------------
class RaisingHookPlugin:
    """Its gradio_tabs hook itself raises."""

    @hookimpl
    def gradio_tabs(self, context):
        raise RuntimeError("tab hook exploded")


class FaultyTabPlugin:
    """Its tab and Panel view are returned fine but fail when built."""

    def build_tab(self, ctx) -> None:
        import gradio as gr

        gr.Markdown("half-built content")
        raise ValueError("tab build exploded")

    def build_view(self, ctx):
        raise ValueError("view build exploded")

    @hookimpl
    def gradio_tabs(self, context):
        from workbench.plugin_types import GradioTab

        return [GradioTab("Faulty", self.build_tab, order=5)]

    @hookimpl
    def panel_views(self, context):
        from workbench.plugin_types import PanelView

        return [PanelView("faulty", "Faulty view", self.build_view)]


def _parent_id(node: dict, child: int) -> int | None:
    for sub in node.get("children", []):
        if sub["id"] == child:
            return node["id"]
        found = _parent_id(sub, child)
        if found is not None:
            return found
    return None


def test_broken_plugins_do_not_take_the_app_down(tmp_path, demo_model_dir) -> None:
    from fastapi.testclient import TestClient

    from workbench.app.server import create_app
    from workbench.context import AppContext
    from workbench.plugins import PluginHost
    from workbench.settings import Settings

    host = PluginHost()
    host.register(RaisingHookPlugin(), "raising")
    host.register(FaultyTabPlugin(), "faulty")
    ctx = AppContext(Settings(home=make_home(tmp_path, demo_model_dir)), plugins=host)
    with TestClient(create_app(ctx)) as client:
        plugins = {p["name"]: p for p in client.get("/api/health").json()["plugins"]}
        assert plugins["raising"]["status"] == "broken" and "tab hook exploded" in plugins["raising"]["error"]
        assert plugins["faulty"]["status"] == "broken" and "tab build exploded" in plugins["faulty"]["error"]
        assert plugins["home"]["status"] == "ok"

        assert client.get("/").status_code == 200
        components = client.get("/config").json()["components"]
        texts = " ".join(str(c.get("props", {}).get("value", "")) for c in components)
        labels = {c.get("props", {}).get("label") for c in components}
        assert {"Models & data", "Faulty", "Plugins"} <= labels
        assert "ValueError: tab build exploded" in texts and "This tab failed to build" in texts
        # What the tab built before failing is hidden, not left half-working on the page.
        half_built = next(c["id"] for c in components if c.get("props", {}).get("value") == "half-built content")
        parent = _parent_id(client.get("/config").json()["layout"], half_built)
        assert next(c for c in components if c["id"] == parent)["props"]["visible"] is False
        # The failing Panel view still serves a page (its error shows in place of the view).
        assert client.get("/panel/faulty").status_code == 200
        assert client.get("/panel/overview").status_code == 200


def test_overview_view_shows_catalog_and_dataset_charts(tmp_path, demo_model_dir) -> None:
    import holoviews as hv
    import panel as pn

    from plugins.home.overview import build_overview
    from workbench.context import AppContext
    from workbench.data.types import Pair
    from workbench.settings import Settings

    ctx = AppContext(Settings(home=make_home(tmp_path, demo_model_dir)))
    pairs = [Pair(f"q{i}", "short answer", "a much longer answer " * (i + 1), metadata={"topic": ["math", "code"][i % 2]}) for i in range(6)]
    ctx.store.import_pairs("mini", pairs, source="test", format="unlabeled")
    view = build_overview(ctx)
    assert isinstance(view, pn.viewable.Viewable)
    card = next(c for c in view.objects if isinstance(c, pn.Column) and "Dataset `mini`" in str(c.objects[0].object))
    assert "**6** pairs" in card.objects[1].object
    panes = card.select(pn.pane.HoloViews)
    bars = [p.object for p in panes if isinstance(p.object, hv.Bars)]
    assert len(bars) == 1 and sorted(bars[0].dimension_values(0)) == ["code", "math"]
    assert list(bars[0].dimension_values(1)) == [3, 3]
    hists = [p.object for p in panes if isinstance(p.object, hv.Overlay)]
    assert len(hists) == 1 and sum(h.dimension_values(1).sum() for h in hists[0]) == 12
    tables = view.select(pn.pane.DataFrame)
    assert DEMO_MODEL_NAME in set(tables[0].object["name"])
