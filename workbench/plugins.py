"""The plugin host: discovers entry points, registers them, and keeps broken ones listed.

A plugin that fails to import is recorded with its error and left out; it never takes
the app down (Datasette-style). Architecture families a plugin adds (``architecture_adapters``)
join the one adapter registry when the plugin is registered, so the catalog and every
``load_model`` know them; a plugin whose family clashes with a known one is listed as broken.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from workbench import hookspecs

GROUP = "workbench.plugins"


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str
    status: str  # "ok" | "broken"
    hooks: list[str]
    error: str = ""


class PluginHost:
    """Wraps a pluggy PluginManager loaded from the ``workbench.plugins`` entry points."""

    def __init__(self, load: bool = True) -> None:
        self.pm = pluggy.PluginManager("workbench")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        if load:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            version = ep.dist.version if ep.dist else "?"
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

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.pm.hook

    def collect(self, hook_name: str, **kwargs: object) -> list:
        """Call each plugin's implementation separately and flatten the lists.

        A plugin whose hook raises is marked broken with its error; the others still run.
        """
        out: list = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                self.mark_broken(impl.plugin_name, f"{hook_name}: {type(exc).__name__}: {exc}")
                continue
            if result is not None:
                out.extend(result if isinstance(result, list) else [result])
        return out

    def mark_broken(self, name: str, error: str) -> None:
        for info in self.infos:
            if info.name == name:
                info.status, info.error = "broken", error
