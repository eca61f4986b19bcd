"""A representation space: one vector per input, with the inputs' keys kept alongside.

Comparing two spaces only makes sense on the same inputs in the same order, so every
space carries the keys of its rows and every comparison checks them first.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import DataError


@dataclass(frozen=True)
class Space:
    """``vectors[i]`` is the representation of the input named ``keys[i]``."""

    name: str
    vectors: np.ndarray
    keys: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors)
        if vectors.ndim != 2:
            raise DataError(f"Space {self.name!r} needs a 2-D array [inputs, dimensions], got shape {vectors.shape}.", field="vectors")
        if len(self.keys) != vectors.shape[0]:
            raise DataError(f"Space {self.name!r} has {vectors.shape[0]} vectors but {len(self.keys)} keys.", field="keys",
                            hint="Give exactly one key per row.")
        if len(set(self.keys)) != len(self.keys):
            dup = next(k for i, k in enumerate(self.keys) if k in self.keys[:i])
            raise DataError(f"Space {self.name!r} has the key {dup!r} more than once.", field="keys", hint="Keys must name distinct inputs.")
        object.__setattr__(self, "vectors", vectors.astype(np.float32, copy=False))
        object.__setattr__(self, "keys", tuple(self.keys))

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Row indices of ``keys``; a key this space does not hold is an error that names it."""
        index = {k: i for i, k in enumerate(self.keys)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise DataError(f"Space {self.name!r} has no input with key {missing[0]!r} ({len(missing)} of {len(keys)} keys missing).",
                            field="keys", hint="Anchors and selections must be inputs that every compared space holds.")
        return np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))

    def aligned_to(self, keys: Sequence[str]) -> Space:
        """The same space with its rows reordered to ``keys`` (which must be exactly its inputs)."""
        if len(keys) != self.n:
            raise DataError(f"Cannot align {self.name!r} ({self.n} inputs) to {len(keys)} keys.", field="keys")
        return Space(self.name, self.vectors[self.rows(keys)], tuple(keys), dict(self.info))


def check_same_inputs(a: Space, b: Space) -> None:
    """Raise a DataError unless ``a`` and ``b`` hold the same inputs in the same order."""
    if a.keys == b.keys:
        return
    only_a = set(a.keys) - set(b.keys)
    only_b = set(b.keys) - set(a.keys)
    if not only_a and not only_b:
        raise DataError(
            f"{a.name!r} and {b.name!r} hold the same inputs in a different order.", field="keys",
            hint="Reorder one with space.aligned_to(other.keys) before comparing.",
        )
    example = next(iter(only_a or only_b))
    raise DataError(
        f"{a.name!r} ({a.n} inputs) and {b.name!r} ({b.n} inputs) were computed on different inputs: "
        f"{len(only_a)} only in the first, {len(only_b)} only in the second (e.g. {example!r}).",
        field="keys", hint="Encode the same inputs with both models; relative representations compare spaces input by input.",
    )
