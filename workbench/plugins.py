"""The plugin host: discovers entry points, registers them, and keeps broken ones listed.

A plugin that fails to import is recorded with its error and left out; it never takes
the app down (Datasette-style). Architecture families (``architecture_adapters``) and
capability tags (``capabilities``) a plugin adds join their registries when the plugin is
registered; a clash with a known one makes the plugin broken. ``collect`` checks the type of
everything a hook returns and keeps who returned it, so a plugin that answers with the wrong
object is listed as broken instead of crashing the shell.

``WORKBENCH_LOAD_PLUGINS`` (comma-separated entry-point names, like Datasette's
``DATASETTE_LOAD_PLUGINS``) loads only those plugins; the others are listed as ``disabled``.
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Generic, TypeVar

import pluggy

from workbench import hookspecs
from workbench.plugin_types import Capability, register_capabilities

GROUP = "workbench.plugins"
LOAD_ENV = "WORKBENCH_LOAD_PLUGINS"
T = TypeVar("T")


def enabled_from_env() -> frozenset[str] | None:
    """The plugin names ``WORKBENCH_LOAD_PLUGINS`` allows (None: unset, every plugin loads; empty: none)."""
    value = os.environ.get(LOAD_ENV)
    return None if value is None else frozenset(n.strip() for n in value.split(",") if n.strip())


@dataclass(frozen=True)
class Contribution(Generic[T]):
    """One object a hook returned, with the plugin that returned it (the shell names it on failure)."""

    plugin: str
    item: T


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str
    status: str  # "ok" | "broken" | "disabled"
    hooks: list[str]
    error: str = ""


class PluginHost:
    """Wraps a pluggy PluginManager loaded from the ``workbench.plugins`` entry points."""

    def __init__(self, load: bool = True, enabled: Collection[str] | None = None) -> None:
        """``enabled`` names the entry points to load (default: ``WORKBENCH_LOAD_PLUGINS``, else all)."""
        self.pm = pluggy.PluginManager("workbench")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self.enabled = frozenset(enabled) if enabled is not None else enabled_from_env()
        if load:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            version = ep.dist.version if ep.dist else "?"
            if self.enabled is not None and ep.name not in self.enabled:
                self.infos.append(PluginInfo(ep.name, ep.value, version, "disabled", [], f"not in {LOAD_ENV}"))
                continue
            try:
                module = ep.load()
                self.register(module, ep.name, version)
            except Exception as exc:  # a broken plugin is listed, never fatal
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                self.infos.append(PluginInfo(ep.name, ep.value, version, "broken", [], last))

    def register(self, module: ModuleType | object, name: str, version: str = "?") -> None:
        """Register a plugin object; a hook implementation that does not match a spec counts as broken."""
        try:
            self.pm.register(module, name=name)
            self.pm.check_pending()
            self._add_architectures(module)
            self._add_capabilities(module)
        except Exception as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            self.infos.append(PluginInfo(name, getattr(module, "__name__", repr(module)), version, "broken", [], str(exc)))
            return
        hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self.infos.append(PluginInfo(name, getattr(module, "__name__", repr(module)), version, "ok", hooks))

    def _add_architectures(self, plugin: object) -> None:
        impls = [i for i in self.pm.hook.architecture_adapters.get_hookimpls() if i.plugin is plugin]
        if not impls:
            return
        from workbench.models.adapters import register_adapters  # imports torch: only for plugins that add a family

        for impl in impls:
            adapters = impl.function()
            if not isinstance(adapters, (list, tuple)):
                raise TypeError(f"architecture_adapters() returned {type(adapters).__name__}, not a list of ArchitectureAdapter")
            register_adapters(adapters)

    def _add_capabilities(self, plugin: object) -> None:
        for impl in self.pm.hook.capabilities.get_hookimpls():
            if impl.plugin is plugin:
                tags = impl.function()
                if not isinstance(tags, (list, tuple)) or not all(isinstance(t, Capability) for t in tags):
                    raise TypeError(f"capabilities() returned {type(tags).__name__}, not a list of Capability")
                register_capabilities(tags)

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.pm.hook

    def collect(self, hook_name: str, expected: type[T] | None, **kwargs: object) -> list[Contribution[T]]:
        """Call each plugin's implementation separately; every item it returns, with its plugin.

        ``expected`` is the type of the items of the hook's list (None: the hook returns nothing).
        A plugin whose hook raises, or returns anything else, is marked broken with the reason and
        contributes nothing; the others still run.
        """
        out: list[Contribution[T]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                self.mark_broken(impl.plugin_name, f"{hook_name}: {type(exc).__name__}: {exc}")
                continue
            problem = _type_problem(result, expected)
            if problem:
                self.mark_broken(impl.plugin_name, f"{hook_name}: {problem}")
                continue
            out.extend(Contribution(impl.plugin_name, item) for item in result or ())
        return out

    def mark_broken(self, name: str, error: str) -> None:
        for info in self.infos:
            if info.name == name:
                info.status, info.error = "broken", error


def _type_problem(result: object, expected: type | None) -> str:
    """Why a hook's answer is not a list of ``expected`` ("" when it is)."""
    if expected is None:
        return "" if result is None else f"returned {type(result).__name__}; this hook returns nothing"
    if result is None:
        return ""
    if not isinstance(result, (list, tuple)):
        return f"returned {type(result).__name__}, not a list of {expected.__name__}"
    wrong = next((item for item in result if not isinstance(item, expected)), None)
    if wrong is not None:
        return f"returned a {type(wrong).__name__} in its list, not a {expected.__name__}"
    return ""
