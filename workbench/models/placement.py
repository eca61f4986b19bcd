"""Where a checkpoint's weights go, decided before any weight is read.

The estimate comes from the safetensors headers alone (every tensor's dtype and shape), so a
70B checkpoint is sized in milliseconds. When the model fits one device it goes there; when it
only fits several GPUs together, Accelerate's ``infer_auto_device_map`` splits it by whole
decoder blocks and that explicit map is what ``from_pretrained`` receives, so the plan shown
to the user is the plan that is loaded. When it fits nowhere we refuse with the numbers
instead of letting the loader run out of memory halfway through.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelError
from workbench.models.checkpoint_files import read_safetensors_header, tensor_count

# Activations, the CUDA context and allocator slack on top of the weights; an inference-sized
# margin (training needs optimizer state and is sized by its own job).
OVERHEAD_FRACTION = 0.15
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_FLOATS = {"F64", "F32", "F16", "BF16"}


def format_bytes(n: float) -> str:
    """1536 -> '1.50 KiB'; binary units, as GPU memory is reported."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes the weights take at the load dtype, plus the inference margin."""

    n_params: int
    weight_bytes: int
    dtype: torch.dtype

    @property
    def total_bytes(self) -> int:
        return int(self.weight_bytes * (1 + OVERHEAD_FRACTION))

    def describe(self) -> str:
        return (f"{self.n_params:,} parameters: {format_bytes(self.weight_bytes)} of weights in "
                f"{str(self.dtype).removeprefix('torch.')}, {format_bytes(self.total_bytes)} with a {OVERHEAD_FRACTION:.0%} margin")


def estimate_memory(folder: Path, dtype: torch.dtype) -> MemoryEstimate:
    """Size a checkpoint folder's weights at ``dtype`` from its safetensors headers (no weights read)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelError(f"No weight files (*.safetensors) found in {folder}.", hint="Check that the checkpoint finished saving.")
    target = torch.finfo(dtype).bits // 8
    n_params = weight_bytes = 0
    for path in files:
        for name, info in read_safetensors_header(path).items():
            numel = tensor_count(info)
            kind = info["dtype"]
            if kind not in _SAFETENSORS_BYTES:
                raise ModelError(f"Tensor {name} in {path} has dtype {kind}, which the memory estimate does not know.",
                                 hint="Convert the checkpoint to a float dtype (float32, float16 or bfloat16).")
            n_params += numel
            # Floating weights are cast to the load dtype; integer buffers keep their own size.
            weight_bytes += numel * (target if kind in _FLOATS else _SAFETENSORS_BYTES[kind])
    return MemoryEstimate(n_params=n_params, weight_bytes=weight_bytes, dtype=dtype)


def available_memory(device: torch.device) -> dict[int | str, int]:
    """Free bytes per device the model may use: every visible GPU for CUDA, else host RAM."""
    from accelerate.utils import get_max_memory  # the one place that knows free GPU and host memory

    free = get_max_memory()
    if device.type == "cuda":
        return {k: v for k, v in free.items() if isinstance(k, int)}
    return {"cpu": free["cpu"]}


@dataclass
class Placement:
    """Where the weights go: one ``device``, or a ``device_map`` over several GPUs."""

    estimate: MemoryEstimate
    budget: dict[int | str, int]
    device: torch.device
    device_map: dict[str, int | str] | None = None
    blocks_per_device: dict[str, int] = field(default_factory=dict)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments: the explicit map when split, none otherwise."""
        return {"device_map": self.device_map} if self.device_map else {}

    def describe(self) -> str:
        free = ", ".join(f"{_device_name(k)} {format_bytes(v)} free" for k, v in self.budget.items())
        where = (", ".join(f"{n} blocks on {d}" for d, n in self.blocks_per_device.items()) if self.device_map
                 else f"all on {self.device}")
        return f"{self.estimate.describe()}; {free}; placement: {where}"


def _device_name(key: int | str) -> str:
    return f"cuda:{key}" if isinstance(key, int) else str(key)


def _split(config: Any, dtype: torch.dtype, budget: dict[int | str, int]) -> dict[str, int | str]:
    """Accelerate's block-wise map of the model (built on the meta device) over ``budget``."""
    from accelerate import infer_auto_device_map, init_empty_weights  # accelerate: only in _split()
    from transformers import AutoModelForCausalLM  # transformers: only in _split()

    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(config)
    skeleton.tie_weights()
    # Leave each device its margin for activations, as the single-device check does.
    usable = {k: int(v / (1 + OVERHEAD_FRACTION)) for k, v in budget.items()}
    return infer_auto_device_map(skeleton, max_memory=usable, no_split_module_classes=skeleton._no_split_modules or [], dtype=dtype)


def plan_placement(folder: Path, config: Any, device: torch.device, dtype: torch.dtype,
                   budget: dict[int | str, int] | None = None) -> Placement:
    """Decide where a checkpoint goes, or raise ``ModelError`` with the numbers when it cannot fit.

    ``budget`` (free bytes per device; default: what is free now) is there for callers that
    reserve memory for something else, and for tests.
    """
    estimate = estimate_memory(folder, dtype)
    budget = dict(budget) if budget is not None else available_memory(device)
    single = device.index if device.type == "cuda" and device.index is not None else next(iter(budget))
    if estimate.total_bytes <= budget.get(single, 0) or device.type not in ("cuda", "cpu"):
        return Placement(estimate=estimate, budget=budget, device=device)
    total = sum(budget.values())
    if device.type == "cuda" and len(budget) > 1 and estimate.total_bytes <= total:
        device_map = _split(config, dtype, budget)
        if all(isinstance(d, int) for d in device_map.values()):
            blocks = Counter(_device_name(d) for name, d in device_map.items() if name.count(".") and name.split(".")[-1].isdigit())
            return Placement(estimate=estimate, budget=budget, device=torch.device("cuda", min(device_map.values())),
                             device_map=device_map, blocks_per_device=dict(blocks))
    free = ", ".join(f"{_device_name(k)} {format_bytes(v)}" for k, v in budget.items())
    raise ModelError(
        f"{folder.name} does not fit: it needs {estimate.describe()}, but the free memory is {free} ({format_bytes(total)} in all).",
        hint="Load it in a smaller dtype (--dtype bfloat16 halves float32), free memory held by other programs, "
             "or use a machine with more (GPU) memory.",
    )
