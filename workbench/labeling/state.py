"""One LabelingStore per application context, so the tab, the API and the CLI share caches
(pair reservations live in the store, shared by every process)."""
from __future__ import annotations

import threading
from typing import Any

from workbench.labeling.sessions import LabelingStore

_lock = threading.Lock()
ATTRIBUTE = "labeling"  # where the store is kept on the context, as a cached_property would


def labeling_store(ctx: Any) -> LabelingStore:
    """The context's LabelingStore over ``ctx.store``, created on first use and kept on the context
    (so it lives exactly as long as the context, without a module-level registry)."""
    with _lock:
        if ATTRIBUTE not in vars(ctx):
            vars(ctx)[ATTRIBUTE] = LabelingStore(ctx.store)
        return vars(ctx)[ATTRIBUTE]
