"""Relative representations (Moschella et al., ICLR 2023): each input as its cosine
similarity to a fixed set of anchor inputs.

Two encoders that differ by an angle-preserving transformation (rotation, rescaling) give
the same relative representation, which is what lets spaces of different models and even
different widths be compared and stitched.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.errors import ConfigError, DataError
from workbench.geometry.space import Space

CHUNK_ROWS = 16384


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(np.float32).tiny)


NORMALIZATIONS = ("standardize", "center", "none")


def relative_encode(x: np.ndarray, anchors: np.ndarray, *, normalize: str = "standardize") -> np.ndarray:
    """Cosine similarity of every row of ``x`` to every anchor: ``[n, n_anchors]``.

    ``normalize`` prepares each space with statistics of its own anchors only, so nothing
    is learned from the other space: "center" subtracts the anchors' mean (LM residual
    streams are anisotropic, every cosine near 1); "standardize" also divides each
    dimension by the anchors' standard deviation, which stops the few huge "outlier"
    dimensions of mid-layer LM residuals from dominating every cosine, at the price of
    exact rotation invariance (per-dimension scaling does not commute with rotation);
    "none" is the paper's plain cosine. "none" and "center" are exactly invariant to
    rotations and rescaling (and "center" to shifts). Computed as one matrix product per chunk of rows.
    """
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"Unknown normalization {normalize!r}.", hint=f"Choose one of: {', '.join(NORMALIZATIONS)}.")
    x = np.asarray(x, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    if x.ndim != 2 or anchors.ndim != 2 or x.shape[1] != anchors.shape[1]:
        raise DataError(f"Inputs {x.shape} and anchors {anchors.shape} must be 2-D with the same width.", field="anchors")
    offset = anchors.mean(axis=0, keepdims=True) if normalize != "none" else np.zeros((1, x.shape[1]), np.float32)
    scale = anchors.std(axis=0, keepdims=True) + 1e-6 if normalize == "standardize" else np.ones((1, x.shape[1]), np.float32)
    unit_anchors = _unit_rows((anchors - offset) / scale).T.copy()
    out = np.empty((x.shape[0], anchors.shape[0]), dtype=np.float32)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        out[start:start + CHUNK_ROWS] = _unit_rows((x[start:start + CHUNK_ROWS] - offset) / scale) @ unit_anchors
    return out


def relative_space(space: Space, anchor_keys: Sequence[str], *, normalize: str = "standardize") -> Space:
    """``space`` re-expressed relative to the inputs named ``anchor_keys`` (looked up by key)."""
    if len(anchor_keys) == 0:
        raise DataError("No anchors given.", field="anchor_keys", hint="Pick anchors with select_anchors() first.")
    anchors = space.vectors[space.rows(anchor_keys)]
    info = {**space.info, "relative": True, "n_anchors": len(anchor_keys), "normalize": normalize}
    return Space(f"{space.name} · relative", relative_encode(space.vectors, anchors, normalize=normalize), space.keys, info)
