"""Test data shared by many test files: the verbosity toy pairs, a labeling session with votes cast
through the LabelingStore API, and annotators voting at once from threads. One copy, so a change
to how a session is made (or to the toy pairs) is made once."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

LONG_ANSWER = "Topic {i} is a long subject; here is a detailed, careful and thorough explanation of it."
VERBOSITY = {"attribute": "verbosity", "a_pole": "concise", "b_pole": "verbose"}


def verbosity_pairs(n: int, **fields: Any) -> list[Pair]:
    """``n`` pairs of a short answer (A) and a long one (B) on the verbosity attribute; ``fields`` are
    more Pair fields, each a value or a function of the index (``preferred=lambda i: ...``)."""
    return [Pair(prompt=f"Tell me about topic {i}.", response_a=f"Topic {i}: short.", response_b=LONG_ANSWER.format(i=i),
                 metadata=dict(VERBOSITY), **{k: v(i) if callable(v) else v for k, v in fields.items()})
            for i in range(n)]


def longer(pair: Pair) -> str:
    """The side with the longer answer: the taste of the simulated annotator."""
    return "A" if len(pair.response_a) > len(pair.response_b) else "B"


def open_session(store: Store, dataset: str, pairs: Sequence[Pair], session: str, annotators: Iterable[str] = ("ann",),
                 settings: dict[str, Any] | None = None) -> LabelingStore:
    """Import ``pairs`` as ``dataset``, open ``session`` on it and let ``annotators`` join."""
    store.import_pairs(dataset, list(pairs))
    lab = LabelingStore(store)
    lab.create_session(session, dataset, settings)
    for name in annotators:
        lab.join(session, name)
    return lab


def voted_session(store: Store, dataset: str, pairs: Sequence[Pair], session: str, annotator: str = "ann",
                  choose: Callable[[Pair], str] = longer) -> LabelingStore:
    """``open_session`` with one annotator who votes ``choose(pair)`` on every pair, in order."""
    lab = open_session(store, dataset, pairs, session, (annotator,))
    for p in pairs:
        lab.vote(session, annotator, p.id, choose(p))
    return lab


def run_annotators(annotate: Callable[[str], None], names: Sequence[str], timeout: float = 600) -> None:
    """Run ``annotate(name)`` for every name at once, each in its own thread, and wait for them all."""
    threads = [threading.Thread(target=annotate, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
