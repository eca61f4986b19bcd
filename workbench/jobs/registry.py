"""Job types by name: what plugins return from the ``job_types`` hook.

A hook returns ``{name: JobType}`` or ``{name: run_function}``. The function must be
importable by its module path, because the worker process imports it by name. Two plugins
offering the same job-type name is an error naming both, never a silent overwrite.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from workbench.errors import ConfigError
from workbench.settings import Settings

RunFn = Callable[[Any], "str | None"]
ValidateFn = Callable[[Any, Settings], dict[str, Any]]  # gets the parsed JobConfig when config_cls is set
FigureFn = Callable[[list[dict[str, Any]]], Any]  # a run's metrics rows → a matplotlib Figure (or None: nothing to draw yet)


@dataclass(frozen=True)
class JobExample:
    """A ready run whose option values exist only at run time (e.g. the paths of data shipped
    inside a package): the Runs tab shows a button labelled ``label`` that fills the form with
    ``values()``. ``JobConfig.example`` stays the static values a form starts with."""

    label: str
    values: Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    """``run(job)`` does the work in the worker; ``validate(config, settings)`` runs in the
    submitting process and returns the normalised config, raising a WorkbenchError for a
    bad one, so a broken run never starts. ``config_cls`` (a ``JobConfig`` subclass) is the
    job's typed options: without an explicit ``validate`` the config is checked by its
    ``from_dict`` alone; with one, ``validate`` receives the config already parsed by it.
    ``figure`` draws the job's own metrics plot (None: one generic panel per metric) and
    ``example`` offers a ready run, so the Runs tab shows both without knowing any job by name."""

    name: str
    run: RunFn
    validate: ValidateFn | None = None
    description: str = ""
    config_cls: type | None = None
    plugin: str = ""
    figure: FigureFn | None = None
    example: JobExample | None = None

    def normalise(self, config: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """The config as the run folder stores it (typed check first, then the job's own checks)."""
        if self.config_cls is not None:
            parsed = self.config_cls.from_dict(config)
            return self.validate(parsed, settings) if self.validate else parsed.to_dict()
        return self.validate(dict(config), settings) if self.validate else dict(config)

    @property
    def options_entry(self) -> str | None:
        """Where the worker imports the job's typed options class from ("module:Class"); None without one."""
        cls = self.config_cls
        return f"{cls.__module__}:{cls.__qualname__}" if cls is not None else None

    @property
    def entry(self) -> str:
        fn = self.run
        qual = getattr(fn, "__qualname__", "")
        if "<" in qual or not getattr(fn, "__module__", None):
            raise ConfigError(
                f"Job type {self.name!r}: its run function {fn!r} cannot be imported by the worker process.",
                hint="Define the job function at module level (not a lambda or a nested function).",
            )
        return f"{fn.__module__}:{qual}"


def as_job_type(name: str, value: Any, plugin: str = "") -> JobType:
    if isinstance(value, JobType):
        return dataclasses.replace(value, plugin=plugin) if plugin else value
    if callable(value):
        return JobType(name, value, plugin=plugin)
    raise ConfigError(f"Job type {name!r} is neither a JobType nor a function: {value!r}.")


def add_job_type(types: dict[str, JobType], name: str, value: Any, plugin: str = "") -> JobType:
    """Register one job type; a name already taken is a ConfigError naming both owners."""
    job_type = as_job_type(name, value, plugin)
    if name in types:
        first = types[name].plugin or "code that registered it directly"
        raise ConfigError(f"Two plugins offer the job type {name!r}: {first} and {plugin or 'code that registered it directly'}.",
                          hint="Uninstall or disable one of them, or rename the job type in one plugin.")
    types[name] = job_type
    return job_type


def collect_job_types(plugins: Any | None) -> dict[str, JobType]:
    """Merge every plugin's ``job_types`` hook result into one name → JobType map.

    Called per implementation (not through ``PluginHost.collect``) so a duplicate name can
    name both plugins; a hook that raises marks its plugin broken, like ``collect`` does.
    """
    if plugins is None:
        return {}
    out: dict[str, JobType] = {}
    for impl in plugins.hook.job_types.get_hookimpls():
        try:
            mapping = impl.function()
        except Exception as exc:
            plugins.mark_broken(impl.plugin_name, f"job_types: {type(exc).__name__}: {exc}")
            continue
        for name, value in (mapping or {}).items():
            add_job_type(out, name, value, impl.plugin_name)
    return out


def check_options(config: dict[str, Any], known: Collection[str], what: str) -> None:
    """Refuse option names a job does not know, suggesting the closest known one."""
    known = list(known)
    unknown = sorted(set(config) - set(known))
    if unknown:
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        raise ConfigError(f"Unknown {what} option(s): {', '.join(unknown)}.",
                          hint="; ".join(f"{k}: did you mean {c[0]!r}?" for k, c in close.items() if c) or f"Known options: {', '.join(known)}.")
