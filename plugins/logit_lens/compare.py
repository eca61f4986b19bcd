"""Two checkpoints' logit lens on one prompt: KL between their lens distributions per layer.

The refusal (different tokenizers or families) and the lens points compared (every layer,
or only the final one when the layer counts differ) are the model diff's
(``workbench.compare.diff.check_comparable``), and so is the KL: one forward pass per model,
then every point's positions through the final norm and unembedding together in chunks
(``workbench.compare.diff.lens_kl``), so at most ``READOUT_CHUNK`` rows of logits per model
are held at once.
No UI imports, so notebooks can call it too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.activations.extract import forward_states
from workbench.compare.diff import check_comparable, lens_kl
from workbench.errors import ConfigError
from workbench.lenses.lens import batch_inputs, encode
from workbench.models.loading import LoadedModel


@dataclass
class PromptLensKL:
    """KL(A ‖ B) of the two lens distributions per lens point and prompt position, in nats."""

    model_a: str
    model_b: str
    points: list[int]  # lens points compared (0 = embeddings)
    kl: np.ndarray  # [points, positions]
    notes: list[str] = field(default_factory=list)

    def per_layer(self) -> pd.DataFrame:
        """Mean and largest KL over the prompt's positions, one row per lens point."""
        return pd.DataFrame({"layer": self.points, "mean_kl": self.kl.mean(1), "max_kl": self.kl.max(1),
                             "worst_position": self.kl.argmax(1)})


def prompt_lens_kl(lm_a: LoadedModel, lm_b: LoadedModel, text: str, *, max_tokens: int = 256) -> PromptLensKL:
    """Per-layer, per-position KL between A's and B's logit lens on ``text`` (B read with A's tokens)."""
    notes = check_comparable(lm_a, lm_b)
    ids = encode(lm_a, [text])[0][-max_tokens:]
    if not ids:
        raise ConfigError("The prompt is empty.", hint="Type a prompt to look at.")
    same_depth = lm_a.n_layers == lm_b.n_layers
    points = list(range(lm_a.n_layers + 1)) if same_depth else [lm_a.n_layers]
    points_b = points if same_depth else [lm_b.n_layers]
    with torch.inference_mode():
        states_a, states_b = forward_states(lm_a, **batch_inputs(lm_a, [ids])), forward_states(lm_b, **batch_inputs(lm_b, [ids]))
        rows_a = torch.stack([states_a[p][0] for p in points]).flatten(0, 1)
        rows_b = torch.stack([states_b[p][0] for p in points_b]).flatten(0, 1)
        kl = lens_kl(lm_a, lm_b, rows_a, rows_b).kl.reshape(len(points), len(ids)).double().numpy()
    return PromptLensKL(lm_a.name, lm_b.name, points, kl, notes)
