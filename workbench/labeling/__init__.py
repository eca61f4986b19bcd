"""Pairwise labeling: sessions, annotators, the append-only vote log, selection and export.

See docs/labeling.md. Start from ``LabelingStore(store)``; the HTTP vote API is in
``workbench.labeling.api`` and the statistics in ``workbench.preference``.
"""
from workbench.labeling.errors import Conflict, Forbidden, Invalid, LabelingError, NotFound
from workbench.labeling.sessions import ORDERS, Item, LabelingStore, Progress, SessionInfo, SessionSettings, VoteAck

__all__ = ["ORDERS", "Conflict", "Forbidden", "Invalid", "Item", "LabelingError", "LabelingStore", "NotFound",
           "Progress", "SessionInfo", "SessionSettings", "VoteAck"]
