"""Package exports that import their submodule on first access (PEP 562).

A package ``__init__`` that imported its submodules eagerly made ``import workbench.models``
(and so the catalog, the store and the quick CLI commands) load torch, scipy or
transformers; with ``lazy_exports`` a name costs its import only when someone uses it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``: ``modules`` maps a submodule to the public names it exports."""
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
