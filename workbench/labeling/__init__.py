"""Pairwise labeling: sessions, annotators, the append-only vote log, selection and export.

See docs/labeling.md. Start from ``LabelingStore(store)``; the HTTP vote API is in
``workbench.labeling.api`` and the statistics in ``workbench.preference``.
"""
from workbench.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "errors": ("Conflict", "Forbidden", "Invalid", "LabelingError", "NotFound"),
    "sessions": ("ORDERS", "Item", "LabelingStore", "Progress", "SessionInfo", "SessionSettings", "VoteAck"),
})
