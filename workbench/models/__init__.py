"""Checkpoints: loading, architecture adapters, the catalog, embedded models, generation."""
from workbench.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "adapters": ("ArchitectureAdapter", "adapter_for", "register_adapter"),
    "loading": ("LoadedModel", "load_model"),
})
