"""Preference lens: at which depth does the model start to favour the chosen continuation?

For each pair, chosen and rejected texts share the prompt and often a few response tokens;
at the first token where they differ, the lens gives per layer the log-probability margin
log p(chosen token) − log p(rejected token). One forward pass over the shared prefix serves
both continuations.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.lenses.lens import Progress, lens_metrics, mean_ci
from workbench.lenses.token_sets import display_token
from workbench.models.generation import render_prompt
from workbench.models.loading import LoadedModel

UNLABELED = ("skip", "a")


@dataclass
class PreferenceLensResult:
    """Per kept pair and lens point: the chosen-minus-rejected log-prob margin (nats)."""

    model_name: str
    pair_ids: list[str]
    chosen_tokens: list[str]
    rejected_tokens: list[str]
    margins: np.ndarray  # [pairs, layers + 1]
    skipped: Counter = field(default_factory=Counter)

    def decision_layers(self) -> np.ndarray:
        """Per pair, the first layer from which the margin keeps the final layer's sign."""
        sign = np.sign(self.margins)
        agree = sign == sign[:, -1:]
        # the last run of agreeing layers ends at the final layer; find where it starts
        disagree_idx = np.where(~agree, np.arange(agree.shape[1]), -1).max(axis=1)
        return disagree_idx + 1

    def curve(self, level: float = 0.95) -> pd.DataFrame:
        """Per layer: mean margin with its band, and the share of pairs whose sign matches the final layer."""
        mean, lo, hi = mean_ci(self.margins, level)
        agree = (np.sign(self.margins) == np.sign(self.margins[:, -1:])).mean(axis=0)
        return pd.DataFrame({"layer": np.arange(self.margins.shape[1]), "margin": mean, "margin_lo": lo, "margin_hi": hi,
                             "agree_with_final": agree, "prefers_chosen": (self.margins > 0).mean(axis=0)})

    def to_frame(self) -> pd.DataFrame:
        n, points = self.margins.shape
        return pd.DataFrame({
            "model": self.model_name, "pair_id": np.repeat(self.pair_ids, points), "layer": np.tile(np.arange(points), n),
            "chosen_token": np.repeat(self.chosen_tokens, points), "rejected_token": np.repeat(self.rejected_tokens, points),
            "margin": self.margins.ravel(),
        })


def _orient(pair: Pair, unlabeled: str) -> tuple[str, str] | None:
    if pair.preferred in ("A", "B"):
        return pair.chosen, pair.rejected  # type: ignore[return-value]
    if pair.preferred is None and unlabeled == "a":
        return pair.response_a, pair.response_b
    return None


def preference_lens(lm: LoadedModel, pairs: Sequence[Pair], *, unlabeled: str = "skip", system: str | None = None,
                    batch_size: int = 16, progress: Progress | None = None) -> PreferenceLensResult:
    """Run the preference lens on labelled pairs (``unlabeled="a"`` treats A as chosen when unlabelled)."""
    if unlabeled not in UNLABELED:
        raise ConfigError(f"unlabeled must be one of {UNLABELED}, got {unlabeled!r}.")
    tok = lm.tokenizer
    special = not getattr(tok, "chat_template", None)
    skipped: Counter = Counter()
    prefixes, chosen_ids, rejected_ids, kept = [], [], [], []
    for pair in pairs:
        oriented = _orient(pair, unlabeled)
        if oriented is None:
            skipped["tie" if pair.preferred == "tie" else "unlabeled"] += 1
            continue
        head = render_prompt(tok, pair.prompt, system)
        a, b = (tok(head + text, add_special_tokens=special)["input_ids"] for text in oriented)
        n = min(len(a), len(b))
        diff = next((i for i in range(n) if a[i] != b[i]), n)
        if diff == n:
            skipped["one response is a prefix of the other"] += 1
            continue
        prefixes.append(a[:diff])
        chosen_ids.append(a[diff])
        rejected_ids.append(b[diff])
        kept.append(pair.id)
    if not kept:
        raise DataError(f"None of the {len(pairs)} pairs can be measured ({dict(skipped) or 'no pairs'}).",
                        hint="Use labelled pairs (preferred A or B), or unlabeled='a' to treat A as chosen.")
    m = lens_metrics(lm, prefixes, targets={"chosen": chosen_ids, "rejected": rejected_ids}, batch_size=batch_size, progress=progress)
    return PreferenceLensResult(
        lm.name, kept, [display_token(tok, i) for i in chosen_ids], [display_token(tok, i) for i in rejected_ids],
        (m.logprob["chosen"] - m.logprob["rejected"])[:, :, 0], skipped,
    )
