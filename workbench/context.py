"""The application context handed to every plugin: settings, models, datasets, store.

Plugins never load checkpoints or open the database themselves; they ask the context,
so the browser app, notebooks and the CLI share one loaded model and one store.
"""
from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import ModelError, SecurityError
from workbench.models.catalog import CatalogEntry, find_entry, scan_catalog
from workbench.models.embedded import DEMO_MODEL_NAME, ensure_demo_model
from workbench.models.loading import LoadedModel, load_model
from workbench.settings import Settings

if TYPE_CHECKING:
    from workbench.activations.cache import ActivationCache
    from workbench.plugins import PluginHost
    from workbench.store import Store

DEMO_DATASET = "demo"


class AppContext:
    """Shared state for one workbench process (thread-safe model loading)."""

    def __init__(self, settings: Settings | None = None, plugins: PluginHost | None = None) -> None:
        self.settings = settings or Settings()
        self.settings.ensure_dirs()
        self._plugins = plugins
        self.models: dict[str, LoadedModel] = {}
        self.active_model_name: str | None = None
        self._lock = threading.RLock()

    # -- shared services -------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        from workbench.store import Store

        return Store(self.settings.db_path)

    @cached_property
    def activation_cache(self) -> ActivationCache:
        from workbench.activations.cache import ActivationCache

        return ActivationCache(self.settings.cache_dir)

    @property
    def plugins(self) -> PluginHost:
        if self._plugins is None:
            from workbench.plugins import PluginHost

            self._plugins = PluginHost()
        return self._plugins

    # -- models ----------------------------------------------------------------------
    def catalog(self) -> list[CatalogEntry]:
        return scan_catalog(self.settings)

    def load_model(self, name_or_path: str, *, base: str | None = None) -> LoadedModel:
        """Load a catalog entry (by name or path) once and make it the active model."""
        with self._lock:
            if name_or_path in self.models:
                self.active_model_name = name_or_path
                return self.models[name_or_path]
            if name_or_path == DEMO_MODEL_NAME:
                path, name = ensure_demo_model(self.settings), DEMO_MODEL_NAME
            else:
                entry = find_entry(self.catalog(), name_or_path)
                if entry is None and not Path(name_or_path).expanduser().exists():
                    raise ModelError(
                        f"No model named {name_or_path!r} in the catalog, and no such path.",
                        hint="Run `workbench models` to list loadable models, or give a local path.",
                    )
                path, name = (entry.path, entry.name) if entry else (Path(name_or_path), Path(name_or_path).name)
            s = self.settings
            lm = load_model(
                path, device=s.device, dtype=s.dtype, allow_pickle=s.allow_pickle,
                trust_remote_code=s.trust_remote_code, base=base, converted_dir=s.models_dir / "converted",
                search_roots=s.all_model_roots(), name=name,
            )
            self.models[name] = lm
            self.active_model_name = name
            return lm

    @property
    def active_model(self) -> LoadedModel | None:
        return self.models.get(self.active_model_name or "")

    # -- datasets --------------------------------------------------------------------
    def check_data_path(self, path: str | Path) -> Path:
        """Confine browser-initiated file access to the configured data roots."""
        resolved = Path(path).expanduser().resolve()
        roots = [r.expanduser().resolve() for r in self.settings.all_data_roots()]
        if not any(resolved == r or r in resolved.parents for r in roots):
            raise SecurityError(
                f"{resolved} is outside the configured data folders ({', '.join(map(str, roots))}).",
                hint="Move the file into one of those folders, or add its folder to WORKBENCH_DATA_ROOTS.",
            )
        return resolved

    def import_dataset(self, path: str | Path, name: str | None = None, format: str = "auto", *, confine: bool = False, replace: bool = False) -> str:
        """Read a pair file in any supported format and store it under ``name`` (atomic)."""
        from workbench.data.readers import read_pairs

        path = self.check_data_path(path) if confine else Path(path).expanduser()
        pairs = read_pairs(path, format=format)
        name = name or path.name.split(".")[0]
        self.store.import_pairs(name, pairs, source=str(path), format=format, replace=replace)
        return name

    def ensure_demo_dataset(self) -> str:
        """Import the packaged demo pairs once, so a fresh install has data to look at."""
        from workbench.data.demo import load_demo_pairs

        if not any(d["name"] == DEMO_DATASET for d in self.store.list_datasets()):
            self.store.import_pairs(DEMO_DATASET, load_demo_pairs(), source="workbench demo", format="unlabeled")
        return DEMO_DATASET
