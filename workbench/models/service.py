"""The model service: checkpoints loaded once and shared by every tab, view and notebook cell.

It is the part of the application context that needs torch and transformers, so the context
creates it on the first model request (``AppContext.model_service``); listing datasets,
sessions or runs never loads it.
"""
from __future__ import annotations

import threading
from pathlib import Path

from workbench.models.loading import LoadedModel
from workbench.models.resolve import load, resolve
from workbench.settings import Settings


class ModelService:
    """Loaded models by name, the active one, and a lock so two threads load a model once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[str, LoadedModel] = {}
        self.active_name: str | None = None
        self._lock = threading.RLock()

    def get(self, name_or_path: str | Path, *, base: str | Path | None = None) -> LoadedModel:
        """Load a catalog entry (by name or path) once into the shared cache; no other side effect.

        The model is shared: a caller that changes it in place (hooks, adapters) must scope
        that change and undo it.
        """
        with self._lock:
            cached = self.models.get(str(name_or_path))
            if cached is not None and base is None:
                return cached
            ref = resolve(self.settings, name_or_path)
            key = ref.name
            if key in self.models and self.models[key].path != ref.path.resolve():
                key = str(ref.path.resolve())  # two folders of the same name: keep both
            if key not in self.models:
                self.models[key] = load(self.settings, name_or_path, base=base)
            return self.models[key]

    def activate(self, name_or_path: str | Path) -> LoadedModel:
        """Make a model the active one (the Home tab's Load, ``serve --model``)."""
        with self._lock:
            lm = self.get(name_or_path)
            self.active_name = next(k for k, v in self.models.items() if v is lm)
            return lm
