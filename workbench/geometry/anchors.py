"""Anchor selection: which inputs every space is described relative to.

Anchors are *inputs* (keys), chosen once in a reference space and then looked up in every
other space, so all relative spaces share the same anchors by construction.
"""
from __future__ import annotations

import numpy as np

from workbench.errors import ConfigError, DataError
from workbench.geometry.relative import _unit_rows
from workbench.geometry.space import Space

ANCHOR_METHODS = ("random", "kmeans", "farthest")


def _check(space: Space, k: int, method: str) -> None:
    if method not in ANCHOR_METHODS:
        raise ConfigError(f"Unknown anchor method {method!r}.", hint=f"Choose one of: {', '.join(ANCHOR_METHODS)}.")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"The number of anchors must be a positive integer, got {k!r}.")
    if k > space.n:
        raise DataError(
            f"{space.name!r} has {space.n} inputs, fewer than the {k} anchors asked for.", field="n_anchors",
            hint=f"Ask for at most {space.n} anchors (a few hundred inputs per anchor set is typical), or add inputs.",
        )


def _kmeans_anchors(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The input nearest each k-means centroid (on unit vectors), so anchors cover the clusters."""
    from sklearn.cluster import KMeans  # scikit-learn: only in _kmeans_anchors()

    unit = _unit_rows(x)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(unit)
    centers = km.cluster_centers_.astype(np.float32)
    dist = (unit ** 2).sum(1)[:, None] - 2 * unit @ centers.T + (centers ** 2).sum(1)[None, :]
    chosen: list[int] = []
    taken = np.zeros(len(unit), dtype=bool)
    for c in np.argsort(dist.min(axis=0)):  # clusters whose medoid is tightest pick first; no input twice
        i = int(np.argmin(np.where(taken, np.inf, dist[:, c])))
        taken[i] = True
        chosen.append(i)
    return np.array(chosen, dtype=np.int64)


def _farthest_anchors(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Greedy farthest-point sampling in cosine distance, from a random first input."""
    unit = _unit_rows(x)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(unit)))]
    nearest = 1.0 - unit @ unit[chosen[0]]
    for _ in range(k - 1):
        nearest[chosen] = -np.inf
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, 1.0 - unit @ unit[nxt])
    return np.array(chosen, dtype=np.int64)


def select_anchors(space: Space, k: int, method: str = "random", *, seed: int = 0) -> tuple[str, ...]:
    """Keys of ``k`` anchor inputs chosen in ``space`` by "random", "kmeans" or "farthest"."""
    _check(space, k, method)
    if method == "random":
        rows = np.random.default_rng(seed).choice(space.n, size=k, replace=False)
    elif method == "kmeans":
        rows = _kmeans_anchors(space.vectors, k, seed)
    else:
        rows = _farthest_anchors(space.vectors, k, seed)
    return tuple(space.keys[int(i)] for i in rows)


def kmeans_labels(space: Space, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """A cluster number per input (k-means on unit vectors), for colouring projections."""
    from sklearn.cluster import KMeans  # scikit-learn: only in kmeans_labels()

    if n_clusters < 1 or n_clusters > space.n:
        raise ConfigError(f"Cannot make {n_clusters} clusters of {space.n} inputs.", hint=f"Use 1..{space.n} clusters.")
    return KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(_unit_rows(space.vectors))
