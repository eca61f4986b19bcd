"""2-D projections (PCA, UMAP) of a space, fitted once per (data, method, parameters).

UMAP on 20k points takes tens of seconds on a CPU; moving a slider in the UI should not
pay that twice. Results are cached as ``.npy`` files named by a content hash of the array
bytes, the method, its parameters and the library version.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError, DataError
from workbench.files import atomic_path

PROJECTION_METHODS = ("pca", "umap")
DEFAULTS: dict[str, dict[str, Any]] = {
    "pca": {},
    "umap": {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"},
}


@dataclass
class Projection:
    coords: np.ndarray
    method: str
    params: dict[str, Any]
    key: str
    from_cache: bool
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


class ProjectionCache:
    """``<root>/<key>.npy`` files, written to a temporary name and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def get(self, key: str) -> np.ndarray | None:
        path = self.root / f"{key}.npy"
        try:
            return np.load(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # damaged (truncated, not an .npy): drop it and recompute
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, coords: np.ndarray) -> None:
        with atomic_path(self.root / f"{key}.npy", keep_existing=True) as tmp, open(tmp, "wb") as out:
            np.save(out, coords)  # a file object: np.save would append ".npy" to the temporary's name

    def clear(self) -> None:
        for p in self.root.glob("*.npy"):
            p.unlink(missing_ok=True)


def _library_version(method: str) -> str:
    """From the installed metadata, not an import: importing umap compiles numba code (seconds to
    tens of seconds per process), which a cache hit must not pay just to build its key."""
    package = "umap-learn" if method == "umap" else "scikit-learn"
    return f"{package} {metadata.version(package)}"


def projection_key(x: np.ndarray, method: str, params: dict[str, Any]) -> str:
    """sha256 of the array (shape, dtype, bytes), the method, its parameters and library version."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(json.dumps({"method": method, "params": params, "lib": _library_version(method),
                                   "shape": list(x.shape), "dtype": str(x.dtype)}, sort_keys=True).encode())
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()


def _fit(x: np.ndarray, method: str, params: dict[str, Any]) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA  # scikit-learn: only in _fit()

        return PCA(n_components=params["n_components"], random_state=params["seed"]).fit_transform(x)
    import umap  # umap-learn: only in _fit()

    reducer = umap.UMAP(n_components=params["n_components"], n_neighbors=params["n_neighbors"], min_dist=params["min_dist"],
                        metric=params["metric"], random_state=params["seed"], n_jobs=1)
    return reducer.fit_transform(x)


def project(x: np.ndarray, method: str = "pca", *, n_components: int = 2, seed: int = 0,
            cache: ProjectionCache | None = None, **params: Any) -> Projection:
    """Project the rows of ``x`` to ``n_components`` dimensions; a repeated request is a file read.

    UMAP's ``n_neighbors`` is lowered to ``n - 1`` for small inputs (recorded in ``params``).
    """
    if method not in PROJECTION_METHODS:
        raise ConfigError(f"Unknown projection method {method!r}.", hint=f"Choose one of: {', '.join(PROJECTION_METHODS)}.")
    unknown = set(params) - set(DEFAULTS[method])
    if unknown:
        raise ConfigError(f"{method.upper()} does not take {', '.join(sorted(unknown))}.",
                          hint=f"Parameters it takes: {', '.join(['n_components', 'seed', *DEFAULTS[method]])}.")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"Expected a 2-D array [inputs, dimensions], got shape {x.shape}.", field="vectors")
    if x.shape[0] < n_components + 2:
        raise DataError(f"Cannot project {x.shape[0]} inputs to {n_components} dimensions.", field="vectors",
                        hint=f"Select at least {n_components + 2} inputs.")
    full = {**DEFAULTS[method], **params, "n_components": n_components, "seed": seed}
    if method == "umap":
        full["n_neighbors"] = int(min(full["n_neighbors"], x.shape[0] - 1))
    key = projection_key(x, method, full)
    t0 = time.perf_counter()
    if cache is not None and (hit := cache.get(key)) is not None and hit.shape == (x.shape[0], n_components):
        return Projection(hit, method, full, key, True, time.perf_counter() - t0)
    coords = np.asarray(_fit(x, method, full), dtype=np.float32)
    if cache is not None:
        cache.put(key, coords)
    return Projection(coords, method, full, key, False, time.perf_counter() - t0)
