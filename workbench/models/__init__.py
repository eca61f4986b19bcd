"""Checkpoints: loading, architecture adapters, the catalog, embedded models, generation."""
from workbench.models.adapters import ArchitectureAdapter, adapter_for, register_adapter
from workbench.models.loading import LoadedModel, load_model

__all__ = ["ArchitectureAdapter", "LoadedModel", "adapter_for", "load_model", "register_adapter"]
