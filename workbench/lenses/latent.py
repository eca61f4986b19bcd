"""The latent-language experiment: per layer, how much probability the lens puts on the
answer in the target language, in English, and in any other language.

Examples whose languages share a token (``piano`` is French and English) cannot say which
language the model is using, so they are dropped and counted, per tokenizer.

Every mass comes with a control: the mean mass, at the same prompt and layer, on the *other*
concepts' token sets of that language. P(target) means "the right word" only where it stands
above its control; a set shared by many concepts (byte fragments of a script) cannot.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.lenses.lens import LensMetrics, Progress, lens_metrics, mean_ci
from workbench.lenses.tasks import Example, LensTask
from workbench.lenses.token_sets import concept_token_set
from workbench.models.loading import LoadedModel

SHARED_WARNING = 0.10  # warn when more than this share of concepts has a token set identical to another's


@dataclass
class LatentResult:
    """Lens metrics of one checkpoint on one task, after the overlap filter.

    ``fragments[lang]`` lists the words whose token set fell back to byte fragments;
    ``shared[lang]`` counts the concepts whose set is identical to another concept's.
    """

    model_name: str
    task: LensTask
    languages: tuple[str, ...]  # target first, then the latent languages
    examples: list[Example]
    metrics: LensMetrics
    n_overlap: int
    fragments: dict[str, list[str]] = field(default_factory=dict)
    shared: dict[str, int] = field(default_factory=dict)

    @property
    def has_control(self) -> bool:
        return bool(self.metrics.control)

    @property
    def warnings(self) -> list[str]:
        """What makes the numbers weaker than they look, in words."""
        n, out = len(self.examples), []
        if not self.has_control:
            out.append(f"Only {n} example was measured: there is no control (other concepts) and no confidence band.")
        for lang in self.languages:
            if self.shared.get(lang, 0) > SHARED_WARNING * n:
                out.append(f"{self.shared[lang]} of {n} {lang} concepts have a token set identical to another concept's: "
                           f"P({lang}) cannot tell those words apart; compare it with its control.")
            if words := self.fragments.get(lang):
                shown = ", ".join(words[:5]) + (", …" if len(words) > 5 else "")
                out.append(f"{len(words)} {lang} word(s) have no whole-character token in this vocabulary, so only byte "
                           f"fragments count toward them ({shown}).")
        return out

    def curves(self, level: float = 0.95) -> pd.DataFrame:
        """Per layer: mean and confidence band of P(language) and of its control for each language, and of entropy."""
        data: dict[str, np.ndarray] = {"layer": np.arange(self.metrics.n_points)}
        series = {f"p_{lang}": self.metrics.mass[lang][:, :, 0] for lang in self.languages}
        series.update({f"p_{lang}_control": self.metrics.control[lang][:, :, 0] for lang in self.languages if self.has_control})
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
            if self.has_control:
                frame[f"p_{lang}_control"] = self.metrics.control[lang][:, :, 0].ravel()
        return frame

    def summary(self) -> dict[str, object]:
        """The numbers quoted in reports: final P(target), peak P(latent) and where it peaks, each
        beside its control (None with a single example)."""
        curves = self.curves()
        target = self.languages[0]

        def control(lang: str, layer: int) -> float | None:
            return float(curves[f"p_{lang}_control"].iloc[layer]) if self.has_control else None

        out: dict[str, object] = {"model": self.model_name, "task": self.task.title, "n": len(self.examples), "n_overlap": self.n_overlap,
                                  f"final_p_{target}": float(curves[f"p_{target}"].iloc[-1]),
                                  f"final_control_{target}": control(target, -1)}
        for lang in self.languages[1:]:
            col = curves[f"p_{lang}"]
            out[f"peak_p_{lang}"] = float(col.max())
            out[f"peak_layer_{lang}"] = int(col.idxmax())
            out[f"peak_control_{lang}"] = control(lang, int(col.idxmax()))
        out["shared_sets"] = sum(self.shared.values())
        return out


def run_latent(lm: LoadedModel, task: LensTask, *, latent: tuple[str, ...] = ("en",), batch_size: int = 16,
               progress: Progress | None = None) -> LatentResult:
    """Measure P(target), P(latent languages) and their controls per layer at the prompt's last position.

    A concept's token set is the union over all its translations (``Example.forms``).
    """
    languages = tuple(dict.fromkeys((task.target, *latent)))
    kept, sets = [], {lang: [] for lang in languages}
    fragments: dict[str, list[str]] = {lang: [] for lang in languages}
    for ex in task.examples:
        missing = [lang for lang in languages if lang not in ex.words]
        if missing:
            raise DataError(f"The word list has no {', '.join(missing)} words for the latent languages.",
                            hint="Measure only languages the word list holds.")
        per_lang = {lang: concept_token_set(lm.tokenizer, ex.forms.get(lang) or (ex.words[lang],)) for lang in languages}
        ids = {lang: set(ts.ids) for lang, ts in per_lang.items()}
        if sum(len(v) for v in ids.values()) != len(set().union(*ids.values())) or not all(ids.values()):
            continue
        kept.append(ex)
        for lang in languages:
            sets[lang].append(sorted(ids[lang]))
            fragments[lang].extend(per_lang[lang].fragments)
    if not kept:
        raise DataError(f"All {len(task.examples)} examples of {task.title} share tokens between languages.",
                        hint="Use a longer word list, or fewer latent languages.")
    shared = {}
    for lang, per_example in sets.items():
        counts = Counter(tuple(ids) for ids in per_example)
        shared[lang] = sum(c for c in counts.values() if c > 1)
    metrics = lens_metrics(lm, [e.prompt for e in kept], token_sets=sets, batch_size=batch_size, controls=len(kept) > 1,
                           progress=progress)
    return LatentResult(lm.name, task, languages, kept, metrics, len(task.examples) - len(kept),
                        {k: v for k, v in fragments.items() if v}, shared)
