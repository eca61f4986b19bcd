"""Zero-shot stitching: a head trained on model A's space, applied unchanged to model B's.

In relative space both models describe an input by its similarity to the same anchor
inputs, so a classifier trained on A's relative vectors can read B's. The same attempt in
absolute space is reported next to it (only possible when the widths match) together with
heads trained natively on each space, which bound what stitching can reach.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import DataError
from workbench.files import atomic_write_text
from workbench.geometry.relative import relative_encode
from workbench.geometry.space import Space, check_same_inputs


def _standardize_rows(x: np.ndarray) -> np.ndarray:
    """Per-input z-score across anchors: the head then sees which anchors an input is *closer*
    to, not the overall level of similarity, which differs from model to model."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-12)


def make_head(relative: bool, seed: int = 0) -> Any:
    """Logistic regression; relative inputs are z-scored per input, absolute ones per feature."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn: only in make_head()
    from sklearn.pipeline import make_pipeline  # scikit-learn: only in make_head()
    from sklearn.preprocessing import FunctionTransformer, StandardScaler  # scikit-learn: only in make_head()

    scale = FunctionTransformer(_standardize_rows) if relative else StandardScaler()
    return make_pipeline(scale, LogisticRegression(max_iter=3000, C=1.0, random_state=seed))


@dataclass
class StitchingResult:
    """Test accuracies of every (representation, trained on, evaluated on) combination."""

    task: str
    classes: list[str]
    n_train: int
    n_test: int
    chance: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    def accuracy(self, representation: str, trained_on: str, evaluated_on: str) -> float | None:
        for r in self.rows:
            if (r["representation"], r["trained_on"], r["evaluated_on"]) == (representation, trained_on, evaluated_on):
                return r["accuracy"]
        return None

    @property
    def retained(self) -> float | None:
        """Relative A→B stitched accuracy as a fraction of B's native relative accuracy."""
        stitched, native = self.accuracy("relative", "A", "B"), self.accuracy("relative", "B", "B")
        return stitched / native if stitched is not None and native else None


def _labels(labels: Sequence[Any], n: int) -> np.ndarray:
    y = np.asarray([str(v) for v in labels])
    if len(y) != n:
        raise DataError(f"Got {len(y)} labels for {n} inputs.", field="labels", hint="Give one label per input, in the spaces' order.")
    classes, counts = np.unique(y, return_counts=True)
    classes = classes.tolist()  # plain str, so messages read 'c5', not np.str_('c5')
    if len(classes) < 2:
        raise DataError(f"Stitching needs at least two classes; every label is {classes[0]!r}.", field="labels",
                        hint="Pick a label column that varies across the inputs.")
    if counts.min() < 4:
        raise DataError(f"Class {classes[np.argmin(counts)]!r} has only {int(counts.min())} input(s); each class needs at least 4.",
                        field="labels", hint="Use more inputs or merge rare classes.")
    return y


def stitching_key(a: Space, b: Space, y: np.ndarray, anchor_keys: Sequence[str], settings: dict[str, Any]) -> str:
    """sha256 of both spaces' bytes and keys, the labels, the anchors, the settings and scikit-learn's version."""
    h = hashlib.sha256(json.dumps({**settings, "sklearn": metadata.version("scikit-learn"), "keys": list(a.keys),
                                   "labels": y.tolist(), "anchors": list(anchor_keys),
                                   "shapes": [list(a.vectors.shape), list(b.vectors.shape)]}, sort_keys=True).encode())
    for space in (a, b):
        h.update(memoryview(np.ascontiguousarray(space.vectors)).cast("B"))
    return h.hexdigest()


def stitch(a: Space, b: Space, labels: Sequence[Any], anchor_keys: Sequence[str], *, test_fraction: float = 0.3,
           seed: int = 0, normalize: str = "standardize", task: str = "", cache_dir: Path | None = None) -> StitchingResult:
    """Train heads on A and on B (relative and absolute) and evaluate each on both spaces.

    Anchor inputs are left out of the train and test sets. The split is stratified. With
    ``cache_dir`` the result is kept as ``<content hash>.json``: the six heads take tens of
    seconds for a few hundred inputs, and an identical request should not pay that again.
    """
    check_same_inputs(a, b)
    y = _labels(labels, a.n)
    path = None
    if cache_dir is not None:
        settings = {"test_fraction": test_fraction, "seed": seed, "normalize": normalize, "task": task}
        path = Path(cache_dir) / f"{stitching_key(a, b, y, anchor_keys, settings)}.json"
        try:
            return StitchingResult(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError):  # damaged: recompute and overwrite
            path.unlink(missing_ok=True)
    result = _stitch(a, b, y, anchor_keys, test_fraction=test_fraction, seed=seed, normalize=normalize, task=task)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(dataclasses.asdict(result)))
    return result


def _stitch(a: Space, b: Space, y: np.ndarray, anchor_keys: Sequence[str], *, test_fraction: float, seed: int,
            normalize: str, task: str) -> StitchingResult:
    from sklearn.model_selection import train_test_split  # scikit-learn: only in _stitch()

    anchor_rows = a.rows(anchor_keys)
    rest = np.setdiff1d(np.arange(a.n), anchor_rows)
    _labels(y[rest], len(rest))  # the non-anchor inputs must still hold two classes
    train, test = train_test_split(rest, test_size=test_fraction, random_state=seed, stratify=y[rest])
    spaces = {
        "relative": {"A": relative_encode(a.vectors, a.vectors[anchor_rows], normalize=normalize),
                     "B": relative_encode(b.vectors, b.vectors[anchor_rows], normalize=normalize)},
        "absolute": {"A": a.vectors, "B": b.vectors},
    }
    classes, counts = np.unique(y[test], return_counts=True)
    result = StitchingResult(task=task, classes=[str(c) for c in classes], n_train=len(train), n_test=len(test),
                             chance=float(counts.max() / counts.sum()))
    for representation, xs in spaces.items():
        for source in ("A", "B"):
            head = make_head(representation == "relative", seed).fit(xs[source][train], y[train])
            for target in ("A", "B"):
                row = {"representation": representation, "trained_on": source, "evaluated_on": target, "accuracy": None, "note": ""}
                if xs[target].shape[1] != xs[source].shape[1]:
                    row["note"] = f"widths differ ({xs[source].shape[1]} vs {xs[target].shape[1]}): cannot even be applied"
                else:
                    row["accuracy"] = float(np.mean(head.predict(xs[target][test]) == y[test]))
                    row["note"] = "native" if source == target else "stitched (zero-shot)"
                result.rows.append(row)
    return result
