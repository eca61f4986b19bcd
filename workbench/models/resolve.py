"""The one path from a model name or path to a LoadedModel, for the app and for every job.

A name is looked up in the catalog (embedded models, the home's models, model roots, the
HF cache, finished runs); anything else must be a local path. A PEFT adapter's base is
found by its recorded path or, failing that, by *name* in the catalog, so an adapter that
loads in the app loads the same way inside a job. Device, dtype, pickle and remote-code
permissions, and where GGUF files are converted, always come from the Settings.

Loaded models are shared, read-only objects: a caller that changes one in place (hooks,
LoRA wrapping, training) must undo it or load its own copy with ``load``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ModelError
from workbench.models import embedded
from workbench.models.catalog import describe, scan_catalog
from workbench.models.checkpoint_files import read_json_object
from workbench.models.loading import LoadedModel, gguf_tokenizer, load_model, load_tokenizer
from workbench.settings import Settings


@dataclass(frozen=True)
class ModelRef:
    """What a name or path stands for, found without loading any weights."""

    name: str  # catalog name, or the folder/file name of a path outside the catalog
    path: Path
    format: str  # hf | peft | gguf


def resolve(settings: Settings, name_or_path: str | Path) -> ModelRef:
    """The catalog entry (by name or path) or local checkpoint behind ``name_or_path``."""
    text = str(name_or_path)
    if text == embedded.DEMO_MODEL_NAME:  # converted from the shipped GGUF on first load
        return ModelRef(text, embedded.demo_model_dir(settings), "hf")
    if text == embedded.EMBEDDER_NAME:  # a folder in a package: when that is missing, the error names what to install
        return ModelRef(text, embedded.embedder_path(), "hf")
    candidate = Path(text).expanduser()
    resolved = candidate.resolve() if candidate.exists() else None
    for entry in scan_catalog(settings):
        if text == entry.name or (resolved is not None and entry.path.resolve() == resolved):
            return ModelRef(entry.name, entry.path, entry.format)
    if resolved is None:
        raise ModelError(f"Unknown model {text!r}: not in the catalog and no such path.",
                         hint="Run `workbench models` to list loadable models, or give a local path.")
    entry = describe(resolved)
    return ModelRef(resolved.name, resolved, entry.format if entry else "hf")


def adapter_base(settings: Settings, adapter_dir: Path) -> Path:
    """A PEFT adapter's base model: its recorded path if that exists, else the catalog model of that name."""
    config_file = adapter_dir / "adapter_config.json"
    recorded = read_json_object(config_file).get("base_model_name_or_path")
    recorded = recorded if isinstance(recorded, str) else ""
    for candidate in (Path(recorded).expanduser(), adapter_dir / recorded):
        if recorded and (candidate / "config.json").exists():
            return candidate.resolve()
    short = recorded.rstrip("/").split("/")[-1]
    if short == embedded.DEMO_MODEL_NAME:
        return embedded.ensure_demo_model(settings)
    for entry in scan_catalog(settings):
        if entry.format == "hf" and entry.status == "ok" and recorded and (entry.name == recorded or entry.name.split("/")[-1] == short):
            return entry.path
    raise ModelError(f"The base model {recorded!r} named in {config_file} is not available locally.",
                     hint="Put the base model under a model root (WORKBENCH_MODEL_ROOTS) under that name, or pass its folder as the base.")


def load(settings: Settings, name_or_path: str | Path, *, base: str | Path | None = None,
         device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """A fresh LoadedModel for a name or path (no cache: see ``AppContext.get_model`` for the shared one).

    ``device``/``dtype`` override the Settings' choice (a trainer that wants float32 on the CPU).
    """
    ref = resolve(settings, name_or_path)
    path = embedded.ensure_demo_model(settings) if ref.name == embedded.DEMO_MODEL_NAME and ref.format == "hf" else ref.path
    if ref.format == "peft" and base is None:
        base = adapter_base(settings, path)
    return load_model(
        path, device=device or settings.device, dtype=dtype or settings.dtype, allow_pickle=settings.allow_pickle,
        trust_remote_code=settings.trust_remote_code, base=base, converted_dir=settings.models_dir / "converted",
        name=ref.name,
    )


def tokenizer(settings: Settings, name_or_path: str | Path) -> Any:
    """A model's tokenizer alone (no weights): to count tokens before a run or a load exists."""
    ref = resolve(settings, name_or_path)
    if ref.format == "gguf":
        return gguf_tokenizer(ref.path)
    path = embedded.ensure_demo_model(settings) if ref.name == embedded.DEMO_MODEL_NAME else ref.path  # converted once; a run needs it anyway
    return load_tokenizer(path, settings.trust_remote_code)
