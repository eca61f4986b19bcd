"""One LabelingStore per application context, so the tab and the API share caches."""
from __future__ import annotations

import threading
import weakref
from typing import Any

from workbench.labeling.sessions import LabelingStore

_stores: weakref.WeakKeyDictionary[Any, LabelingStore] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def labeling_store(ctx: Any) -> LabelingStore:
    """The context's LabelingStore over ``ctx.store`` (created on first use)."""
    with _lock:
        if ctx not in _stores:
            _stores[ctx] = LabelingStore(ctx.store)
        return _stores[ctx]
