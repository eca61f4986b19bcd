"""Plugin discovery through real entry points: a third-party package, a broken one, the CLI listing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.plugin_types import GradioTab
from workbench.plugins import PluginHost


def make_distribution(root: Path) -> Path:
    """Lay out an installed distribution (dist-info + modules) exactly as pip would."""
    (root / "goodplug.py").write_text(textwrap.dedent('''
        from workbench.hookspecs import hookimpl
        from workbench.plugin_types import GradioTab

        @hookimpl
        def gradio_tabs(context):
            return [GradioTab(title="Good tab", build=lambda ctx: None, order=5)]
    '''))
    (root / "brokenplug.py").write_text("import a_module_that_does_not_exist\n")
    (root / "raisingplug.py").write_text(textwrap.dedent('''
        from workbench.hookspecs import hookimpl

        @hookimpl
        def gradio_tabs(context):
            raise RuntimeError("tab factory exploded")
    '''))
    (root / "wrongspec.py").write_text(textwrap.dedent('''
        from workbench.hookspecs import hookimpl

        @hookimpl
        def gradio_tabz(context):
            return []
    '''))
    info = root / "fake_workbench_plugins-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-workbench-plugins\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(
        "[workbench.plugins]\ngood = goodplug\nbroken = brokenplug\nraising = raisingplug\nwrongspec = wrongspec\n"
    )
    return root


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    root = make_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(root))
    return root


def test_third_party_plugins_are_discovered_and_broken_ones_listed(fake_dist):
    host = PluginHost()
    infos = {i.name: i for i in host.infos}
    assert infos["home"].status == "ok" and "gradio_tabs" in infos["home"].hooks  # first-party, same mechanism
    assert infos["good"].status == "ok" and infos["good"].version == "0.3.1"
    assert infos["broken"].status == "broken" and "a_module_that_does_not_exist" in infos["broken"].error
    assert infos["wrongspec"].status == "broken" and "gradio_tabz" in infos["wrongspec"].error
    tabs = host.collect("gradio_tabs", context=None)
    titles = [t.title for t in tabs if isinstance(t, GradioTab)]
    assert "Good tab" in titles  # the raising plugin did not stop the others
    assert infos["raising"].status == "broken" and "tab factory exploded" in infos["raising"].error


def test_cli_lists_plugins_with_versions_and_errors(fake_dist):
    env = {**os.environ, "PYTHONPATH": f"{fake_dist}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["good"]["version"] == "0.3.1" and rows["good"]["status"] == "ok"
    assert rows["broken"]["status"] == "broken"
    table = subprocess.run([sys.executable, "-m", "workbench.cli", "plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert "broken" in table.stdout and "home" in table.stdout
