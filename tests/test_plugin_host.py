"""The plugin host checks what plugins return (issue 23 §3).

A plugin answering a hook with the wrong object is marked broken with the reason, and the
shell still builds (it used to crash sorting on ``.order``); a failing tab names the plugin
that returned it; ``WORKBENCH_LOAD_PLUGINS`` loads only the plugins it names; plugins add
capability tags, and a tag with another meaning is refused.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from workbench.app.panel_views import collect_panel_views
from workbench.app.shell import build_blocks
from workbench.context import AppContext
from workbench.hookspecs import hookimpl
from workbench.plugin_types import CAPABILITIES, Capability, GradioTab, is_compatible
from workbench.plugins import PluginHost
from workbench.settings import Settings


def fail_to_build(ctx: object) -> None:
    raise RuntimeError("no widgets today")


def plugin(**hooks: object) -> SimpleNamespace:
    """A plugin object whose hooks return the given values."""
    def make(value: object) -> object:
        @hookimpl
        def impl(context: object) -> object:
            return value
        return impl
    return SimpleNamespace(**{name: make(value) for name, value in hooks.items()})


def test_a_wrong_answer_marks_its_plugin_broken_and_the_shell_still_builds(tmp_path: Path) -> None:
    host = PluginHost(load=False)
    host.register(plugin(gradio_tabs=[GradioTab("Fine", build=lambda ctx: gr.Markdown("fine"), order=2)]), "fine")
    host.register(plugin(gradio_tabs=["a string, not a tab"]), "stringy")
    host.register(plugin(gradio_tabs=GradioTab("Bare", build=lambda ctx: None)), "bare")
    host.register(plugin(gradio_tabs=[GradioTab("Boom", build=fail_to_build, order=1)]), "boom")
    host.register(plugin(panel_views=[object()]), "objecty")

    found = host.collect("gradio_tabs", GradioTab, context=None)
    assert sorted((c.plugin, c.item.title) for c in found) == [("boom", "Boom"), ("fine", "Fine")]
    infos = {i.name: i for i in host.infos}
    assert infos["stringy"].status == "broken" and "returned a str in its list, not a GradioTab" in infos["stringy"].error
    assert infos["bare"].status == "broken" and "returned GradioTab, not a list of GradioTab" in infos["bare"].error

    ctx = AppContext(Settings(home=tmp_path), plugins=host)
    blocks = build_blocks(ctx, views=[])
    assert isinstance(blocks, gr.Blocks)
    assert infos["boom"].status == "broken" and "gradio tab 'Boom': RuntimeError: no widgets today" in infos["boom"].error
    assert infos["fine"].status == "ok"
    assert collect_panel_views(ctx) == []
    assert infos["objecty"].status == "broken" and "returned a object in its list, not a PanelView" in infos["objecty"].error


def test_a_hook_that_returns_nothing_must_return_nothing() -> None:
    host = PluginHost(load=False)
    host.register(plugin(), "quiet")

    @hookimpl
    def cli_commands(app: object) -> object:
        return ["surprise"]
    host.register(SimpleNamespace(cli_commands=cli_commands), "chatty")
    assert host.collect("cli_commands", None, app=None) == []
    assert {i.name: i.status for i in host.infos} == {"quiet": "ok", "chatty": "broken"}


def test_load_plugins_env_loads_only_the_named_plugins(tmp_path: Path) -> None:
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path), "WORKBENCH_LOAD_PLUGINS": "home, runs"}
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    status = {r["name"]: r["status"] for r in json.loads(out.stdout)}
    assert status["home"] == status["runs"] == "ok"
    assert status["labeling"] == status["steering"] == "disabled"
    assert PluginHost(enabled=()).infos and all(i.status == "disabled" for i in PluginHost(enabled=()).infos)


def test_plugins_add_capability_tags_and_a_clash_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown capability 'test-sae-latents'"):
        is_compatible(["test-sae-latents"], ())
    tag = Capability("test-sae-latents", "an SAE over the residual stream", "model")

    @hookimpl
    def capabilities() -> list[Capability]:
        return [tag]
    host = PluginHost(load=False)
    host.register(SimpleNamespace(capabilities=capabilities), "saes")

    @hookimpl
    def capabilities_again() -> list[Capability]:
        return [Capability("causal_lm", "something else")]
    host.register(SimpleNamespace(capabilities=capabilities_again), "thief")
    infos = {i.name: i for i in host.infos}
    assert infos["saes"].status == "ok" and infos["thief"].status == "broken" and "already known" in infos["thief"].error
    assert is_compatible(["test-sae-latents"], {"test-sae-latents"}) == (True, "")
    assert is_compatible(["test-sae-latents"], ())[1] == "needs an SAE over the residual stream"
    assert CAPABILITIES["causal_lm"].startswith("a decoder language model")
