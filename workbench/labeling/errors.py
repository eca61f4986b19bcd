"""Labeling failures, each with the HTTP status the vote API answers with.

They are ``WorkbenchError``s like every user-facing failure, so the Gradio tab shows the same
message the HTTP client gets; the status only tells an API client which kind it was.
"""
from __future__ import annotations

from workbench.errors import WorkbenchError


class LabelingError(WorkbenchError):
    """Base: a request the labeling store refused; nothing was written."""

    status = 400


class NotFound(LabelingError):
    """An unknown session, annotator or pair."""

    status = 404


class Forbidden(LabelingError):
    """A token that does not belong to the annotator named in the request."""

    status = 403


class Conflict(LabelingError):
    """The request is well formed but clashes with the state: closed session, double submit."""

    status = 409


class Invalid(LabelingError):
    """A malformed payload: unknown outcome, strength out of range, wrong displayed order."""

    status = 422
