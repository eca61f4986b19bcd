"""How much two spaces of the same inputs agree.

The three metrics of Moschella et al. (2023) treat B as a search index and query it with
A's vectors, so they need equal widths (always true for relative spaces sharing anchors,
and why the absolute versions are only computed when widths match):
- Jaccard@k: the k rows of B nearest to ``a[i]`` versus the k rows of B nearest to ``b[i]``.
- MRR: the rank of ``b[i]`` among all rows of B by cosine to ``a[i]``; the mean of 1/rank.
- Mean cosine: cosine between ``a[i]`` and ``b[i]``.
One more metric works at any widths, so two different models' absolute spaces can be
compared at all: the k-NN overlap, the Jaccard index of each input's k nearest neighbours
found within A and within B. It is rotation-invariant already, so it shows how much
neighbourhood structure two models share rather than whether their coordinates line up.
Everything is computed in row chunks of one matrix product, never a Python loop over inputs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from workbench.errors import ConfigError
from workbench.geometry.relative import _unit_rows, relative_space
from workbench.geometry.space import Space, check_same_inputs

CHUNK_ROWS = 2048


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ConfigError(f"k = {k} nearest neighbours needs 1 <= k < {n} (the number of inputs).", hint=f"Use k between 1 and {n - 1}.")


def nearest_neighbours(queries: np.ndarray, index: np.ndarray, k: int, *, exclude_self: bool = False) -> np.ndarray:
    """``[n, k]`` indices of the k rows of ``index`` most cosine-similar to each query row.

    ``exclude_self`` (queries and index are the same rows) leaves row i out of i's neighbours.
    """
    _check_k(k, index.shape[0])
    uq, ui = _unit_rows(np.asarray(queries, dtype=np.float32)), _unit_rows(np.asarray(index, dtype=np.float32))
    out = np.empty((uq.shape[0], k), dtype=np.int64)
    for start in range(0, uq.shape[0], CHUNK_ROWS):
        sims = uq[start:start + CHUNK_ROWS] @ ui.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        out[start:start + CHUNK_ROWS] = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return out


def _mean_jaccard(na: np.ndarray, nb: np.ndarray) -> float:
    k = na.shape[1]
    inter = (na[:, :, None] == nb[:, None, :]).sum((1, 2))  # n·k² booleans: small for k ≤ 100
    return float(np.mean(inter / (2 * k - inter)))


def jaccard_at_k(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean Jaccard index of {k rows of b nearest a[i]} and {k rows of b nearest b[i]} (equal widths)."""
    _check_widths(a, b, "Jaccard@k")
    return _mean_jaccard(nearest_neighbours(a, b, k), nearest_neighbours(b, b, k))


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean Jaccard index of each input's k nearest neighbours within ``a`` and within ``b`` (any widths)."""
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"k-NN overlap needs the same inputs in both spaces, got {a.shape[0]} and {b.shape[0]} rows.")
    return _mean_jaccard(nearest_neighbours(a, a, k, exclude_self=True), nearest_neighbours(b, b, k, exclude_self=True))


def _check_widths(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"{what} needs spaces of the same shape, got {a.shape} and {b.shape}.",
                          hint="Compare relative spaces (same anchors give the same width), or use Jaccard@k.")


def mean_reciprocal_rank(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over inputs i of 1 / (rank of b[i] among all rows of b by cosine to a[i])."""
    _check_widths(a, b, "MRR")
    ua, ub = _unit_rows(np.asarray(a, np.float32)), _unit_rows(np.asarray(b, np.float32))
    reciprocal = np.empty(ua.shape[0], dtype=np.float64)
    for start in range(0, ua.shape[0], CHUNK_ROWS):
        sims = ua[start:start + CHUNK_ROWS] @ ub.T
        own = sims[np.arange(sims.shape[0]), np.arange(sims.shape[0]) + start]
        reciprocal[start:start + CHUNK_ROWS] = 1.0 / (1 + (sims > own[:, None]).sum(1))
    return float(reciprocal.mean())


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity between each input's vector in ``a`` and in ``b``."""
    _check_widths(a, b, "Mean cosine")
    return float(np.mean((_unit_rows(np.asarray(a, np.float32)) * _unit_rows(np.asarray(b, np.float32))).sum(1)))


@dataclass
class SpaceComparison:
    """Agreement of two spaces; the cross-space metrics are None when their widths differ."""

    kind: str
    space_a: str
    space_b: str
    n: int
    k: int
    jaccard: float | None
    mrr: float | None
    mean_cosine: float | None
    knn_overlap: float

    def row(self) -> dict[str, object]:
        return asdict(self)


def compare_spaces(a: Space, b: Space, *, k: int = 10, kind: str = "") -> SpaceComparison:
    """Jaccard@k, MRR, mean cosine (equal widths) and k-NN overlap of two spaces over the same inputs."""
    check_same_inputs(a, b)
    _check_k(k, a.n)
    same = a.dim == b.dim
    return SpaceComparison(
        kind=kind or ("relative" if a.info.get("relative") else "absolute"), space_a=a.name, space_b=b.name, n=a.n, k=k,
        jaccard=jaccard_at_k(a.vectors, b.vectors, k) if same else None,
        mrr=mean_reciprocal_rank(a.vectors, b.vectors) if same else None,
        mean_cosine=mean_cosine(a.vectors, b.vectors) if same else None,
        knn_overlap=knn_overlap(a.vectors, b.vectors, k),
    )


def layer_pairs(n_layers_a: int, n_layers_b: int, max_points: int = 9) -> list[tuple[int, int]]:
    """Layers of A and B at the same relative depth (0 = embeddings, 1 = last block), at most ``max_points``.

    Equal depths pair layer i with layer i; different depths pair by fraction of the way through.
    """
    depths = np.linspace(0.0, 1.0, min(max_points, min(n_layers_a, n_layers_b) + 1))
    return list(dict.fromkeys((int(round(d * n_layers_a)), int(round(d * n_layers_b))) for d in depths))


def agreement_by_layer(a: dict[int, Space], b: dict[int, Space], pairs: list[tuple[int, int]], anchor_keys: tuple[str, ...],
                       *, k: int = 10) -> list[dict[str, object]]:
    """Absolute vs relative agreement of A's and B's spaces at each ``(layer_a, layer_b)``, one row each.

    The relative spaces use the same anchor inputs at every layer; cross-space metrics of
    absolute spaces are None where the widths differ (see ``compare_spaces``).
    """
    rows = []
    for la, lb in pairs:
        absolute = compare_spaces(a[la], b[lb], k=k)
        relative = compare_spaces(relative_space(a[la], anchor_keys), relative_space(b[lb], anchor_keys), k=k)
        rows.append({"layer_a": la, "layer_b": lb,
                     **{f"absolute_{m}": getattr(absolute, m) for m in ("knn_overlap", "mean_cosine", "jaccard", "mrr")},
                     **{f"relative_{m}": getattr(relative, m) for m in ("knn_overlap", "mean_cosine", "jaccard", "mrr")}})
    return rows
