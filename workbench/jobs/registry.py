"""Job types by name: what plugins return from the ``job_types`` hook.

A hook returns ``{name: JobType}`` or ``{name: run_function}``. The function must be
importable by its module path, because the worker process imports it by name.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from workbench.errors import ConfigError
from workbench.settings import Settings

RunFn = Callable[[Any], "str | None"]
ValidateFn = Callable[[dict[str, Any], Settings], dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    """``run(job)`` does the work in the worker; ``validate(config, settings)`` runs in the
    submitting process and returns the normalised config, raising a WorkbenchError for a
    bad one, so a broken run never starts."""

    name: str
    run: RunFn
    validate: ValidateFn | None = None
    description: str = ""

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


def as_job_type(name: str, value: Any) -> JobType:
    if isinstance(value, JobType):
        return value
    if callable(value):
        return JobType(name, value)
    raise ConfigError(f"Job type {name!r} is neither a JobType nor a function: {value!r}.")


def collect_job_types(plugins: Any | None) -> dict[str, JobType]:
    """Merge every plugin's ``job_types`` hook result into one name → JobType map."""
    if plugins is None:
        return {}
    out: dict[str, JobType] = {}
    for mapping in plugins.collect("job_types"):
        for name, value in (mapping or {}).items():
            out[name] = as_job_type(name, value)
    return out


def check_options(config: dict[str, Any], known: Collection[str], what: str) -> None:
    """Refuse option names a job does not know, suggesting the closest known one."""
    known = list(known)
    unknown = sorted(set(config) - set(known))
    if unknown:
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        raise ConfigError(f"Unknown {what} option(s): {', '.join(unknown)}.",
                          hint="; ".join(f"{k}: did you mean {c[0]!r}?" for k, c in close.items() if c) or f"Known options: {', '.join(known)}.")
