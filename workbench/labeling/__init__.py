"""Pairwise labeling: sessions, annotators, the append-only vote log, selection and export.

See docs/labeling.md. Start from ``LabelingStore(store)``; the HTTP vote API is in
``workbench.labeling.api`` and the statistics in ``workbench.preference``.
"""
from workbench.lazy import lazy_exports

_EXPORTS = {
    "Conflict": "errors",
    "Forbidden": "errors",
    "Invalid": "errors",
    "LabelingError": "errors",
    "NotFound": "errors",
    "ORDERS": "sessions",
    "Item": "sessions",
    "LabelingStore": "sessions",
    "Progress": "sessions",
    "SessionInfo": "sessions",
    "SessionSettings": "sessions",
    "VoteAck": "sessions",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
