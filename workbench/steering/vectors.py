"""Steering vectors: a small value object added to the residual stream through hooks.

``vector.apply(model, coefficient)`` is a context manager (as in steering-vectors/repeng):
inside it, the output of the decoder block that produced residual layer ``vector.layer``
gets ``coefficient * vector.scale * vector.direction`` added at every position; on exit the
hook is removed, even when the body raised. The coefficient may be one number or one
number per batch row, so a single batched forward can compare several strengths.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import ConfigError, DataError, ModelError
from workbench.files import atomic_write_text
from workbench.models.adapters import ArchitectureAdapter, adapter_for
from workbench.models.loading import LoadedModel

Coefficient = float | Sequence[float] | torch.Tensor | np.ndarray


def _model_and_adapter(model: LoadedModel | nn.Module) -> tuple[nn.Module, ArchitectureAdapter]:
    if isinstance(model, LoadedModel):
        return model.model, model.adapter
    return model, adapter_for(model)


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """A unit ``direction`` in the residual stream at ``layer`` and its natural ``scale``.

    ``layer`` uses the activation store's numbering (0 = embeddings, i = output of block
    i-1), so a vector fitted on ``Activations.get(i)`` is applied where it was measured.
    ``scale`` is the distance between the two contrastive groups' means along the
    direction: coefficient 1 moves a typical negative example to the positive mean.
    """

    name: str
    layer: int
    direction: torch.Tensor
    scale: float = 1.0
    method: str = "mean_diff"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        direction = torch.as_tensor(self.direction, dtype=torch.float32).detach().cpu().flatten()
        norm = float(direction.norm())
        if not np.isfinite(norm) or norm == 0.0:
            raise ConfigError(f"Steering vector {self.name!r} has a zero or non-finite direction.",
                              hint="The two contrastive groups have the same mean at this layer; pick another layer or method.")
        if self.layer < 1:
            raise ConfigError(f"Steering vector {self.name!r} is at layer {self.layer}; steering needs a block output (layer >= 1).",
                              hint="Layer 0 is the embedding output; fit the vector at layer 1 or later.")
        object.__setattr__(self, "direction", direction / norm)

    @property
    def d_model(self) -> int:
        return int(self.direction.shape[0])

    def vector(self) -> torch.Tensor:
        """The vector added at coefficient 1."""
        return self.direction * self.scale

    def _block(self, model: nn.Module, adapter: ArchitectureAdapter) -> nn.Module:
        layers = adapter.layers(model)
        if self.layer > len(layers):
            raise ModelError(f"Steering vector {self.name!r} is at layer {self.layer}, but the model has {len(layers)} blocks.",
                             hint="Use a vector fitted on this model (layers 1..n_layers).")
        d_model = adapter.d_model(model)
        if d_model != self.d_model:
            raise ModelError(f"Steering vector {self.name!r} has {self.d_model} dimensions, the model's residual stream has {d_model}.",
                             hint="Steering vectors only fit the model (or fine-tunes of it) they were fitted on.")
        return layers[self.layer - 1]

    def check_fits(self, model: LoadedModel | nn.Module) -> None:
        """Raise ``ModelError`` when this vector cannot steer ``model`` (a layer past its blocks, another width),
        so a long action can refuse before it starts rather than when it reaches the steered part."""
        module, adapter = _model_and_adapter(model)
        self._block(module, adapter)

    @contextmanager
    def apply(self, model: LoadedModel | nn.Module, coefficient: Coefficient) -> Iterator[None]:
        """Add ``coefficient * scale * direction`` to the residual stream while inside the block.

        ``coefficient`` is a number, or one number per batch row (shape ``[batch]``). Only
        forwards run by the thread that entered the block are steered, so run the forward
        (``generate`` included) in that thread, not in a helper thread such as a streamer's.
        """
        module, adapter = _model_and_adapter(model)
        block = self._block(module, adapter)
        param = next(block.parameters())  # the block's own device: with device_map, blocks sit on different GPUs
        coef = torch.as_tensor(coefficient, dtype=torch.float32)
        if coef.ndim > 1:
            raise ConfigError(f"A coefficient must be a number or one number per batch row; got shape {tuple(coef.shape)}.")
        delta = (coef.reshape(-1, 1, 1) if coef.ndim == 1 else coef) * self.vector()
        delta = delta.to(device=param.device, dtype=param.dtype)
        rows = int(coef.shape[0]) if coef.ndim == 1 else None
        silent = bool((coef == 0).all())
        owner = threading.get_ident()

        def add(_module: nn.Module, _args: object, output: Any) -> Any:
            # The model is shared: another thread's forward (a lens, another user's generation)
            # runs through the same block and must not be steered by this request.
            if silent or threading.get_ident() != owner:
                return output  # exactly the unsteered computation
            hidden = output[0] if isinstance(output, tuple) else output
            if rows is not None and hidden.shape[0] != rows:
                raise ConfigError(f"Per-row coefficients were given for {rows} rows but the batch has {hidden.shape[0]}.")
            hidden = hidden + delta
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        handle = block.register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "scale": self.scale, "method": self.method,
                "info": self.info, "direction": self.direction.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SteeringVector:
        try:
            return cls(name=d["name"], layer=int(d["layer"]), direction=torch.tensor(d["direction"]),
                       scale=float(d.get("scale", 1.0)), method=d.get("method", "mean_diff"), info=d.get("info", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"Not a steering vector record: {exc}.", hint="Save vectors with SteeringVector.save().") from exc

    def save(self, path: str | Path) -> Path:
        """Write the vector as one small JSON file, atomically (two saves at once never share a temp file)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringVector:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"Cannot read steering vector: {exc}.", path=path, hint="Point at a file written by SteeringVector.save().") from exc
        return cls.from_dict(d)


@contextmanager
def steer(model: LoadedModel | nn.Module, vectors: Sequence[tuple[SteeringVector, Coefficient]]) -> Iterator[None]:
    """Apply several vectors at once, each with its own coefficient; all hooks go on exit."""
    with ExitStack() as stack:
        for vector, coefficient in vectors:
            stack.enter_context(vector.apply(model, coefficient))
        yield


def active_hook_count(model: LoadedModel | nn.Module) -> int:
    """Forward hooks currently on the decoder blocks (a leak check for tests and the UI)."""
    module, adapter = _model_and_adapter(model)
    return sum(len(block._forward_hooks) for block in adapter.layers(module))
