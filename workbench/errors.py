"""User-facing errors.

Every failure a user can cause is a ``WorkbenchError``: the message says what was wrong,
where (file, line, field, path) and what to do. The UI shows ``str(err)``, the CLI prints it
and exits non-zero.
"""
from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\n  → {hint}" if hint else message)


class DataError(WorkbenchError):
    """A dataset file or record is missing, malformed or in an unknown format."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)


class ModelError(WorkbenchError):
    """A checkpoint cannot be found, loaded or is not supported."""


class SecurityError(WorkbenchError):
    """An action needs an explicit opt-in (pickle weights, remote code, public bind)."""


class ConfigError(WorkbenchError):
    """A setting or command-line option is invalid."""


class PermissionDenied(WorkbenchError):
    """The logged-in user's role does not allow this action (checked on the server)."""

    status = 403
