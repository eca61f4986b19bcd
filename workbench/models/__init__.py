"""Checkpoints: loading, architecture adapters, the catalog, embedded models, generation."""
from workbench.lazy import lazy_exports

_EXPORTS = {
    "ArchitectureAdapter": "adapters",
    "adapter_for": "adapters",
    "register_adapter": "adapters",
    "LoadedModel": "loading",
    "load_model": "loading",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
