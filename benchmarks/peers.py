"""The peer libraries the benchmarks compare against, built offline from our loaded model.

Peers are an optional extra (``pip install -e .[bench]``), never a runtime dependency. Each
loader returns the peer object, or None and a sentence saying why it cannot run here, which
the benchmark prints instead of a figure. Nothing is fetched from a hub: TransformerLens gets
its config from the converted demo folder (its own ``convert_hf_model_config`` reads a local
``config.json``) and its weights from our already loaded model through its own converter.
Shared timing helpers live here too, so every benchmark measures the same way.
"""
from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from workbench.models.loading import LoadedModel

PEERS = ("transformerlens", "nnsight", "steering_vectors", "repeng")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``fn()``, with the device synchronised on both sides."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int = 2048, reps: int = 10) -> float:
    """FLOP/s of ``torch.mm`` on ``size``² matrices: this machine's practical matmul peak right now."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    seconds, _ = timed(device, lambda: [torch.mm(a, b) for _ in range(reps)])
    return 2 * size**3 * reps / seconds


def machine_line(lm: LoadedModel) -> str:
    return (f"device: {lm.device} ({str(lm.dtype).removeprefix('torch.')}), torch threads: {torch.get_num_threads()}, "
            f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def non_embedding_params(lm: LoadedModel) -> int:
    """Parameters that do per-token matmuls (the embedding lookup and a tied LM head do not)."""
    return sum(p.numel() for p in lm.model.parameters()) - lm.model.get_input_embeddings().weight.numel()


def _missing(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{package} is not installed (pip install -e '.[bench]')"
    return None


def transformerlens(lm: LoadedModel) -> tuple[Any, str | None]:
    """A HookedTransformer with our weights, unprocessed (no LN folding), so its states equal ours."""
    if (why := _missing("transformer_lens", "transformer-lens")):
        return None, why
    if lm.adapter.family != "llama":
        return None, f"the offline TransformerLens build here handles Llama-family models; {lm.name} is {lm.adapter.family}"
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    cfg = HookedTransformerConfig(**{**convert_hf_model_config(str(lm.path)), "dtype": lm.dtype, "device": str(lm.device)})
    model = HookedTransformer(cfg, tokenizer=lm.tokenizer, move_to_device=True)
    model.load_and_process_state_dict(convert_llama_weights(lm.model, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False)
    return model.eval(), None


def nnsight(lm: LoadedModel) -> tuple[Any, str | None]:
    """nnsight's LanguageModel wrapping our model object (no second copy of the weights)."""
    if (why := _missing("nnsight", "nnsight")):
        return None, why
    from nnsight import LanguageModel

    return LanguageModel(lm.model, tokenizer=lm.tokenizer), None


def steering_vectors(lm: LoadedModel) -> tuple[Any, str | None]:
    """steering-vectors' SteeringVector class (it guesses the layer layout from the model)."""
    if (why := _missing("steering_vectors", "steering-vectors")):
        return None, why
    from steering_vectors import SteeringVector

    return SteeringVector, None


def repeng(lm: LoadedModel) -> tuple[Any, str | None]:
    """repeng's module (ControlModel, ControlVector), or why it cannot run.

    repeng 0.4.0 annotates with ``np.float_``, removed in NumPy 2; the alias is restored for
    this benchmark process only (it is the same type as ``np.float64``) and the output says so.
    """
    if (why := _missing("repeng", "repeng")):
        return None, why
    import numpy as np

    if lm.adapter.family != "llama":
        return None, f"repeng's ControlModel wraps model.model.layers of Llama-family models; {lm.name} is {lm.adapter.family}"
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
        print("note: repeng 0.4.0 needs numpy's removed np.float_ alias; restored as np.float64 for this run")
    import repeng as module

    return module, None
