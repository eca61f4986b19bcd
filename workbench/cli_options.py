"""Options and helpers every ``workbench`` command group shares: ``--home``, ``--json``, ``--database-url``, the
settings and application context over a home, the plugin host ``main`` built, plain tables.

The ``PluginHost`` that ``workbench.cli.main`` built travels as the click context's ``obj``,
so commands take their plugins from it instead of loading the entry points a second time.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from workbench.context import AppContext
from workbench.db import URL_OPTION_HELP
from workbench.plugins import PluginHost
from workbench.settings import Settings

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Workbench home folder (default: $WORKBENCH_HOME or the per-user data dir).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DatabaseUrlOpt = Annotated[str | None, typer.Option("--database-url", show_default=False, help=URL_OPTION_HELP)]


def settings_for(home: Path | None, **settings: Any) -> Settings:
    """The settings over ``home`` (default: $WORKBENCH_HOME or the per-user data dir)."""
    return Settings(home=home, **settings) if home else Settings(**settings)


def host_of(ctx: typer.Context | None) -> PluginHost | None:
    """The PluginHost handed down by ``workbench.cli.main`` (``app(obj=host)``), if any."""
    return ctx.obj if ctx is not None and isinstance(ctx.obj, PluginHost) else None


def context_for(ctx: typer.Context | None, home: Path | None, **settings: Any) -> AppContext:
    """The AppContext over ``home`` holding the host ``main`` built (a fresh one outside ``main``)."""
    return AppContext(settings_for(home, **settings), plugins=host_of(ctx))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned plain-text columns (a missing cell is blank)."""
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
