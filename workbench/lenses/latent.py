"""The latent-language experiment: per layer, how much probability the lens puts on the
answer in the target language, in English, and in any other language.

Examples whose languages share a token (``piano`` is French and English) cannot say which
language the model is using, so they are dropped and counted, per tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.lenses.lens import LensMetrics, Progress, lens_metrics, mean_ci
from workbench.lenses.tasks import Example, LensTask
from workbench.lenses.token_sets import word_token_set
from workbench.models.loading import LoadedModel


@dataclass
class LatentResult:
    """Lens metrics of one checkpoint on one task, after the overlap filter."""

    model_name: str
    task: LensTask
    languages: tuple[str, ...]  # target first, then the latent languages
    examples: list[Example]
    metrics: LensMetrics
    n_overlap: int

    def curves(self, level: float = 0.95) -> pd.DataFrame:
        """Per layer: mean and confidence band of P(language) for each language, and of entropy."""
        data: dict[str, np.ndarray] = {"layer": np.arange(self.metrics.n_points)}
        series = {f"p_{lang}": self.metrics.mass[lang][:, :, 0] for lang in self.languages}
        series["entropy_bits"] = self.metrics.entropy[:, :, 0]
        series["kl_to_final_bits"] = self.metrics.kl_to_final[:, :, 0]
        for name, values in series.items():
            data[name], data[f"{name}_lo"], data[f"{name}_hi"] = mean_ci(values, level)
        return pd.DataFrame(data).assign(model=self.model_name, task=self.task.title, n=len(self.examples))

    def to_frame(self) -> pd.DataFrame:
        """Long table, one row per example and layer: what is exported as CSV."""
        n, points = len(self.examples), self.metrics.n_points
        frame = pd.DataFrame({
            "model": self.model_name, "task": self.task.title,
            "example": np.repeat(np.arange(n), points), "layer": np.tile(np.arange(points), n),
            "word": np.repeat([e.words[self.languages[0]] for e in self.examples], points),
            "entropy_bits": self.metrics.entropy[:, :, 0].ravel(), "kl_to_final_bits": self.metrics.kl_to_final[:, :, 0].ravel(),
        })
        for lang in self.languages:
            frame[f"p_{lang}"] = self.metrics.mass[lang][:, :, 0].ravel()
        return frame

    def summary(self) -> dict[str, object]:
        """The numbers quoted in reports: final P(target), peak P(latent) and where it peaks."""
        curves = self.curves()
        out: dict[str, object] = {"model": self.model_name, "task": self.task.title, "n": len(self.examples), "n_overlap": self.n_overlap,
                                  f"final_p_{self.languages[0]}": float(curves[f"p_{self.languages[0]}"].iloc[-1])}
        for lang in self.languages[1:]:
            col = curves[f"p_{lang}"]
            out[f"peak_p_{lang}"] = float(col.max())
            out[f"peak_layer_{lang}"] = int(col.idxmax())
        return out


def run_latent(lm: LoadedModel, task: LensTask, *, latent: tuple[str, ...] = ("en",), batch_size: int = 16,
               progress: Progress | None = None) -> LatentResult:
    """Measure P(target), P(latent languages) per layer at the prompt's last position."""
    languages = tuple(dict.fromkeys((task.target, *latent)))
    kept, sets = [], {lang: [] for lang in languages}
    for ex in task.examples:
        missing = [lang for lang in languages if lang not in ex.words]
        if missing:
            raise DataError(f"The word list has no {', '.join(missing)} words for the latent languages.",
                            hint="Measure only languages the word list holds.")
        per_lang = {lang: set(word_token_set(lm.tokenizer, ex.words[lang])) for lang in languages}
        if sum(len(s) for s in per_lang.values()) != len(set().union(*per_lang.values())) or not all(per_lang.values()):
            continue
        kept.append(ex)
        for lang in languages:
            sets[lang].append(sorted(per_lang[lang]))
    if not kept:
        raise DataError(f"All {len(task.examples)} examples of {task.title} share tokens between languages.",
                        hint="Use a longer word list, or fewer latent languages.")
    metrics = lens_metrics(lm, [e.prompt for e in kept], token_sets=sets, batch_size=batch_size, progress=progress)
    return LatentResult(lm.name, task, languages, kept, metrics, len(task.examples) - len(kept))
