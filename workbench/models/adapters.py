"""Architecture adapters: the one place that knows where each family keeps its parts.

Analyses (logit lens, steering, activation extraction) ask the adapter for the decoder
layers, the final norm and the unembedding instead of guessing attribute names. Plugins add
families through the ``architecture_adapters`` hook; the registry refuses a second adapter
for a family or model type it already knows instead of silently replacing the first.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import ConfigError, ModelError

if TYPE_CHECKING:  # the registry is read by the catalog, which must not load torch
    import torch
    from torch import nn


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = getattr(module, part)
    return module


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Layout of one model family, as dotted attribute paths from the top-level model."""

    family: str
    model_types: tuple[str, ...]
    layers_path: str
    final_norm_path: str | None
    unembed_path: str | None
    is_encoder: bool = False

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return _get(model, self.layers_path)

    def final_norm(self, model: nn.Module) -> nn.Module:
        if self.final_norm_path is None:
            raise ModelError(f"{self.family} models have no final norm before an unembedding.")
        return _get(model, self.final_norm_path)

    def unembed(self, model: nn.Module) -> nn.Module:
        if self.unembed_path is None:
            raise ModelError(f"{self.family} models have no unembedding (they are encoders).")
        return _get(model, self.unembed_path)

    def n_layers(self, model: nn.Module) -> int:
        return len(self.layers(model))

    def d_model(self, model: nn.Module) -> int:
        cfg = model.config
        return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)

    def vocab_size(self, model: nn.Module) -> int:
        return int(model.config.vocab_size)

    def logits(self, model: nn.Module, residual: torch.Tensor) -> torch.Tensor:
        """Read a residual-stream tensor out through final norm and unembedding (logit lens).

        Applies the family's final-logit soft-capping where the config asks for it (Gemma 2),
        so the last layer reproduces the model's own logits.
        """
        logits = self.unembed(model)(self.final_norm(model)(residual))
        cap = getattr(model.config, "final_logit_softcapping", None)
        if cap:
            logits = (logits / cap).tanh() * cap
        return logits


def residual_stream(adapter: ArchitectureAdapter, model: nn.Module, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All residual-stream states from one forward pass: index 0 is the embedding output,
    index i the output of block i-1, every one *before* the final norm.

    Hugging Face's ``hidden_states[-1]`` already has the final norm applied (checked for every
    supported family), so the last block's raw output is captured with a hook instead; a
    logit lens then applies the final norm exactly once, for every layer alike.
    """
    captured: list[torch.Tensor] = []
    caller = threading.get_ident()

    def keep(_module: nn.Module, _args: object, output: object) -> None:
        # The model is shared: another thread's forward (a generation step) runs the same hook.
        if threading.get_ident() == caller:
            captured.append(output[0] if isinstance(output, tuple) else output)

    handle = adapter.layers(model)[-1].register_forward_hook(keep)
    try:
        out = model(**inputs, output_hidden_states=True)
    finally:
        handle.remove()
    states = out.hidden_states
    return states if adapter.is_encoder else (*states[:-1], captured[-1])


_DECODER_LLAMA_LIKE = dict(layers_path="model.layers", final_norm_path="model.norm", unembed_path="lm_head")

ADAPTERS: dict[str, ArchitectureAdapter] = {}


def _stage(staged: dict[str, ArchitectureAdapter], adapter: object) -> None:
    if not isinstance(adapter, ArchitectureAdapter):
        raise ConfigError(f"{adapter!r} is not an ArchitectureAdapter.",
                          hint="architecture_adapters() must return a list of workbench.models.ArchitectureAdapter.")
    known = {a.family: a for a in staged.values()}
    clashes = [f"model type {t!r} (family {staged[t].family!r})" for t in adapter.model_types
               if t in staged and staged[t] != adapter]
    if adapter.family in known and known[adapter.family] != adapter:
        clashes.insert(0, f"family {adapter.family!r}")
    if clashes:
        raise ConfigError(f"Cannot register the {adapter.family!r} architecture adapter: {', '.join(clashes)} "
                          "already has a different adapter.",
                          hint="Give the new family its own name and model types; one adapter per model type.")
    staged.update(dict.fromkeys(adapter.model_types, adapter))


def register_adapters(adapters: Iterable[object]) -> None:
    """Make families known, all or none. Registering an identical adapter again is a no-op
    (every PluginHost registers its plugins' families); a different one for a known family or
    model type is refused."""
    staged = dict(ADAPTERS)
    for adapter in adapters:
        _stage(staged, adapter)
    ADAPTERS.update(staged)


def register_adapter(adapter: ArchitectureAdapter) -> ArchitectureAdapter:
    """Make one family known (see ``register_adapters``)."""
    register_adapters([adapter])
    return adapter


for _adapter in (
    ArchitectureAdapter("llama", ("llama", "mistral", "mixtral"), **_DECODER_LLAMA_LIKE),
    ArchitectureAdapter("qwen2", ("qwen2", "qwen3"), **_DECODER_LLAMA_LIKE),
    ArchitectureAdapter("gemma", ("gemma", "gemma2"), **_DECODER_LLAMA_LIKE),
    ArchitectureAdapter("phi", ("phi",), "model.layers", "model.final_layernorm", "lm_head"),
    ArchitectureAdapter("phi3", ("phi3",), **_DECODER_LLAMA_LIKE),
    ArchitectureAdapter("gpt2", ("gpt2",), "transformer.h", "transformer.ln_f", "lm_head"),
    ArchitectureAdapter("gpt_neox", ("gpt_neox",), "gpt_neox.layers", "gpt_neox.final_layer_norm", "lm_head"),
    ArchitectureAdapter("bert", ("bert",), "encoder.layer", None, None, is_encoder=True),
):
    register_adapter(_adapter)


def supported_model_types() -> list[str]:
    return sorted(ADAPTERS)


def adapter_for(model_or_config: nn.Module | object, *, source: Path | None = None) -> ArchitectureAdapter:
    """The adapter for a model, its config or a raw config.json dict; a clear error for unsupported
    families, naming the config file (``source``) when there is one."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    try:
        return ADAPTERS[model_type]
    except KeyError:
        prefix = f"{source}, field 'model_type'" if source else "Model type"
        what = "missing" if model_type is None else f"unsupported architecture {model_type!r}"
        raise ModelError(
            f"{prefix}: {what}. Supported model types: {', '.join(supported_model_types())}.",
            hint="Use a checkpoint of a supported family, or register an ArchitectureAdapter for it "
            "(workbench.models.adapters.register_adapter).",
        ) from None
