"""The application context handed to every plugin: settings, models, datasets, store.

Plugins never load checkpoints or open the database themselves; they ask the context,
so the browser app, notebooks and the CLI share one loaded model and one store.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from workbench.data.demo import load_demo_pairs
from workbench.data.readers import detect_file_format, read_pairs
from workbench.errors import DataError, ModelError, SecurityError
from workbench.models.catalog import CatalogEntry, scan_catalog
from workbench.plugins import PluginHost
from workbench.settings import Settings
from workbench.store import Store

if TYPE_CHECKING:  # the core context loads no torch or scipy; these come with their services
    from workbench.activations.cache import ActivationCache
    from workbench.labeling.sessions import LabelingStore
    from workbench.models.loading import LoadedModel
    from workbench.models.service import ModelService

DEMO_DATASET = "demo"


def dataset_name_for(path: Path) -> str:
    """The dataset name a file gets when none is given: its name up to the first dot, leading dots
    left out (``.pairs.jsonl`` → ``pairs``), so a dot-file does not become the empty name."""
    name = path.name.lstrip(".").split(".")[0]
    if not name:
        raise DataError(f"{path.name}: no dataset name can be made from this file name.",
                        hint="Give the dataset a name: `--name NAME` on the command line, the Name box in the browser.")
    return name


class AppContext:
    """Shared state for one workbench process.

    The core (settings, store, labeling, activation cache, catalog listing, plugins) imports
    no torch, scipy, transformers or Gradio; models go through ``model_service``, created on
    the first model request, so ``workbench data list`` and friends stay quick.
    """

    def __init__(self, settings: Settings | None = None, plugins: PluginHost | None = None) -> None:
        self.settings = settings or Settings()
        self.settings.ensure_dirs()
        self._plugins = plugins
        self._service_lock = threading.Lock()

    # -- shared services -------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return Store(self.settings.store_target)

    @property
    def labeling(self) -> LabelingStore:
        """The one LabelingStore over this context's store: the tab, the API and the CLI share its caches and pair reservations.

        Its model-uncertain sessions read response features through this context's model service
        and activation cache, so the model they need is loaded once for the whole app. Made under
        a lock: two server threads asking first at once must not get two stores."""
        with self._service_lock:
            if "_labeling" not in self.__dict__:
                # scipy (Bradley–Terry) comes with sessions: only where sessions are used
                from workbench.labeling.sessions import LabelingStore
                from workbench.labeling.uncertain import ModelFeatures

                # ``get_model`` runs on the first refit: no torch is imported before a head is fitted.
                features = ModelFeatures(get_model=self.get_model, cache=self.activation_cache)
                self.__dict__["_labeling"] = LabelingStore(self.store, features=features)
            return self.__dict__["_labeling"]

    @cached_property
    def activation_cache(self) -> ActivationCache:
        from workbench.activations.cache import ActivationCache  # numpy: only views that read activations

        return ActivationCache(self.settings.cache_dir)

    @property
    def plugins(self) -> PluginHost:
        if self._plugins is None:
            self._plugins = PluginHost()
        return self._plugins

    # -- models ----------------------------------------------------------------------
    def catalog(self) -> list[CatalogEntry]:
        return scan_catalog(self.settings)

    @property
    def model_service(self) -> ModelService:
        """The loaded models; created (and torch imported) on the first call."""
        with self._service_lock:
            if "_model_service" not in self.__dict__:
                from workbench.models.service import ModelService  # imports torch and transformers: only once a model is needed

                self.__dict__["_model_service"] = ModelService(self.settings)
            return self.__dict__["_model_service"]

    @property
    def models(self) -> Mapping[str, LoadedModel]:
        """The models loaded so far (read-only); empty, and torch not imported, before the first load."""
        service = self.__dict__.get("_model_service")
        return MappingProxyType(service.models if service is not None else {})

    @property
    def active_model_name(self) -> str | None:
        service = self.__dict__.get("_model_service")
        return service.active_name if service is not None else None

    @property
    def active_model(self) -> LoadedModel | None:
        return self.models.get(self.active_model_name or "")

    def get_model(self, name_or_path: str | Path, *, base: str | Path | None = None) -> LoadedModel:
        """Load a catalog entry (by name or path) once into the shared cache; no other side effect.

        The model is shared by every tab, view and notebook cell: a caller that changes it in
        place (hooks, adapters) must scope that change and undo it.
        """
        return self.model_service.get(name_or_path, base=base)

    def causal_model(self, model: str | None = None) -> LoadedModel:
        """The causal LM a request names (the server's active model when it names none), from the
        shared cache: steering, reward heads and the loop need a decoder, and nothing here
        switches the model anyone else is using."""
        name = model or self.active_model_name
        if not name:
            raise ModelError("No model picked.", hint="Pick a model in the Model dropdown at the top of this tab.")
        lm = self.get_model(name)
        if lm.is_encoder:
            raise ModelError(f"{lm.name} is an encoder; steering needs a causal language model.", hint="Pick a decoder model.")
        return lm

    def activate(self, name_or_path: str | Path) -> LoadedModel:
        """Make a model the app's active one (the Home tab's Load, ``serve --model``)."""
        return self.model_service.activate(name_or_path)

    # -- datasets --------------------------------------------------------------------
    def check_data_path(self, path: str | Path) -> Path:
        """Confine browser-initiated file access to the configured data roots.

        A relative path starts from the data folders the UI names (the first that holds it, else
        the first), so what a browser box reads never depends on the server's working folder.
        """
        try:
            os.fsencode(path)
        except UnicodeEncodeError as err:  # a lone surrogate (e.g. pasted or sent as "\ud800") names no file
            raise DataError(f"The path {str(path)!r} holds U+{ord(err.object[err.start]):04X}, which cannot be part of a file name.",
                            hint="Retype the path, or copy it again from your file manager.") from None
        roots = [r.expanduser().resolve() for r in self.settings.all_data_roots()]
        typed = Path(path).expanduser()
        if not typed.is_absolute():
            typed = next((root / typed for root in roots if (root / typed).exists()), roots[0] / typed)
        resolved = typed.resolve()
        if not any(resolved == r or r in resolved.parents for r in roots):
            raise SecurityError(
                f"{resolved} is outside the configured data folders ({', '.join(map(str, roots))}).",
                hint="Move the file into one of those folders, or add its folder to WORKBENCH_DATA_ROOTS.",
            )
        return resolved

    def import_dataset(self, path: str | Path, name: str | None = None, format: str = "auto", *, confine: bool = False,
                       replace: bool = False, allow: Collection[str] = ()) -> str:
        """Read a pair file in any supported format and store it under ``name`` (atomic).

        ``allow`` keeps records the reader would refuse as likely mistakes (``readers.QUALITY_CHECKS``);
        the store records the format auto-detection found, not "auto".
        """
        path = self.check_data_path(path) if confine else Path(path).expanduser()
        name = name or dataset_name_for(path)  # before the read: a file can be large
        pairs = read_pairs(path, format=format, allow=allow)
        detected = detect_file_format(path) if format == "auto" else format
        self.store.import_pairs(name, pairs, source=str(path), format=detected, replace=replace)
        return name

    def ensure_demo_dataset(self) -> str:
        """Import the packaged demo pairs once, so a fresh install has data to look at."""
        if not any(d["name"] == DEMO_DATASET for d in self.store.list_datasets()):
            self.store.import_pairs(DEMO_DATASET, load_demo_pairs(), source="workbench demo", format="unlabeled")
        return DEMO_DATASET
