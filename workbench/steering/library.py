"""Saved steering vectors: one JSON file each under ``<home>/steering_vectors/``.

The browser app, notebooks and the CLI share vectors through this folder; a vector records
the model it was fitted on, so lists can show which vectors fit the loaded model.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.steering.vectors import SteeringVector


def vectors_dir(settings: Any) -> Path:
    return Path(settings.home) / "steering_vectors"


def _file_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.@=+-]+", "_", name).strip("._")
    if not safe:
        raise ConfigError(f"Steering vector name {name!r} has no usable characters.", hint="Use letters, digits, '-', '_', '@'.")
    return safe + ".json"


def save_vector(settings: Any, vector: SteeringVector) -> Path:
    """Save (or replace) ``vector`` under its name."""
    return vector.save(vectors_dir(settings) / _file_name(vector.name))


def save_fitted(settings: Any, vectors: dict[int, SteeringVector], **info: Any) -> list[SteeringVector]:
    """Save a fit's per-layer vectors as ``<set>@<layer>:<method>`` (the names the sliders list), ``info`` added to each."""
    saved = [replace(v, name=f"{v.name}@{layer}:{v.method}", info={**v.info, **info}) for layer, v in vectors.items()]
    for v in saved:
        save_vector(settings, v)
    return saved


def list_vectors(settings: Any, d_model: int | None = None) -> list[SteeringVector]:
    """Saved vectors, optionally only those with ``d_model`` dimensions; unreadable files are skipped."""
    out = []
    for path in sorted(vectors_dir(settings).glob("*.json")):
        try:
            vec = SteeringVector.load(path)
        except Exception:  # a damaged file must not hide the others
            continue
        if d_model is None or vec.d_model == d_model:
            out.append(vec)
    return out


def load_vector(settings: Any, name: str) -> SteeringVector:
    path = vectors_dir(settings) / _file_name(name)
    if not path.exists():
        known = [v.name for v in list_vectors(settings)]
        raise ConfigError(f"No steering vector named {name!r} in {vectors_dir(settings)}.",
                          hint=f"Saved vectors: {', '.join(known) or 'none yet — fit one from a contrastive set first'}.")
    return SteeringVector.load(path)
