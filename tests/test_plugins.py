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
    tabs = host.collect("gradio_tabs", GradioTab, context=None)
    titles = [c.item.title for c in tabs]
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


@pytest.fixture
def adapter_registry():
    """Plugins add families to the one process-wide registry: put it back after the test."""
    from workbench.models.adapters import ADAPTERS

    saved = dict(ADAPTERS)
    yield ADAPTERS
    ADAPTERS.clear()
    ADAPTERS.update(saved)


def make_family_distribution(root: Path) -> Path:
    """A third-party package that teaches the workbench OPT, and one that tries to take over llama."""
    root.mkdir()
    (root / "optfamily.py").write_text(textwrap.dedent('''
        from workbench.hookspecs import hookimpl
        from workbench.models.adapters import ArchitectureAdapter

        @hookimpl
        def architecture_adapters():
            return [ArchitectureAdapter("opt", ("opt",), "model.decoder.layers", "model.decoder.final_layer_norm", "lm_head")]
    '''))
    (root / "llamathief.py").write_text(textwrap.dedent('''
        from workbench.hookspecs import hookimpl
        from workbench.models.adapters import ArchitectureAdapter

        @hookimpl
        def architecture_adapters():
            return [ArchitectureAdapter("thief", ("falcon", "llama"), "model.layers", "model.norm", "lm_head")]
    '''))
    info = root / "opt_family-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: opt-family\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[workbench.plugins]\noptfamily = optfamily\nllamathief = llamathief\n")
    return root


def test_a_plugin_adds_an_architecture_family_and_its_checkpoint_loads(tiny_checkpoint, tmp_path, monkeypatch, adapter_registry):
    import torch

    from workbench.errors import ModelError
    from workbench.models.adapters import residual_stream
    from workbench.models.catalog import describe
    from workbench.models.loading import load_model

    opt = tiny_checkpoint("opt")
    with pytest.raises(ModelError, match="unsupported architecture 'opt'"):
        load_model(opt)
    assert describe(opt).status == "unsupported"
    llama_before = adapter_registry["llama"]
    monkeypatch.syspath_prepend(str(make_family_distribution(tmp_path / "dist")))

    host = PluginHost()
    infos = {i.name: i for i in host.infos}
    assert infos["optfamily"].status == "ok" and "architecture_adapters" in infos["optfamily"].hooks
    # A family clash is refused as a whole: the plugin is broken and neither of its model types is taken.
    assert infos["llamathief"].status == "broken" and "model type 'llama' (family 'llama')" in infos["llamathief"].error
    assert adapter_registry["llama"] is llama_before and "falcon" not in adapter_registry

    entry = describe(opt)
    assert (entry.status, entry.family) == ("ok", "opt") and "causal_lm" in entry.capabilities
    lm = load_model(opt)
    assert lm.adapter.family == "opt" and lm.n_layers == 2 and "causal_lm" in lm.capabilities
    enc = lm.tokenizer(["hello world, preferences"], return_tensors="pt")
    with torch.inference_mode():
        states = residual_stream(lm.adapter, lm.model, **enc)
        lens = lm.adapter.logits(lm.model, states[-1])
        logits = lm.model(**enc).logits
    assert (lens - logits).abs().max().item() <= 1e-4  # the plugin's layout is the real one

    again = {i.name: i for i in PluginHost().infos}  # every host registers its plugins: the same family again is fine
    assert again["optfamily"].status == "ok"


def test_adapter_registry_refuses_a_second_adapter_for_a_known_family(adapter_registry):
    from workbench.errors import ConfigError
    from workbench.models.adapters import ArchitectureAdapter, register_adapter

    with pytest.raises(ConfigError, match="family 'gpt2'"):
        register_adapter(ArchitectureAdapter("gpt2", ("my_gpt",), "h", None, None))
    assert "my_gpt" not in adapter_registry
    same = adapter_registry["gpt2"]
    assert register_adapter(same) is same  # re-registering the identical adapter is a no-op
