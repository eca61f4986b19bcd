"""The latent-language experiment: per layer, how much probability the lens puts on the
answer in the target language, in English, and on a copy of the source word.

Examples whose languages share a token (``piano`` is French and English) cannot say which
language the model is using, so they are dropped and counted, per tokenizer. The source
language is watched too (by default): a prompt whose French source word *forêt* starts with
the same tokens as the English *forest* (`` for``) would count a copy of the source as the
"English phase", so such examples are dropped and counted apart (``n_source_overlap``), and
the mass on the source word is its own curve.

Every mass comes with a control: the mean mass, at the same prompt and layer, on the *other*
concepts' token sets of that language. P(target) means "the right word" only where it stands
above its control; a set shared by many concepts (byte fragments of a script) cannot. A mean
can also be carried by a few examples, so every curve has its median and the share of examples
beating their control, and a quoted result whose excess over the control comes from at most
10% of the examples is flagged.
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
FEW_CARRIERS = 0.10  # flag a result when at most this share of the examples carries it
CARRY_SHARE = 0.8  # "carries": the examples whose excess over their control makes up this share of all examples' excess
SOURCE_ROLE = "source copy"


def carried_by(p: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Per layer, the fewest examples whose excess over their control makes up 80% of all examples' excess.

    ``p`` and ``control`` are ``[examples, layers]``; 0 where no example beats its control. A mean
    held up by three copies out of forty gives 3 here, however many of the rest beat their control
    by a hair (the share beating the control would call that a broad result).
    """
    excess = np.clip(np.asarray(p, np.float64) - np.asarray(control, np.float64), 0.0, None)
    ordered = -np.sort(-excess, axis=0)
    total = ordered.sum(axis=0)
    needed = (np.cumsum(ordered, axis=0) < CARRY_SHARE * total * (1 - 1e-9)).sum(axis=0) + 1
    return np.where(total > 0, needed, 0)


@dataclass(frozen=True)
class FewCarriers:
    """A quoted result whose excess over its control comes from ``k`` of ``n`` examples (k ≤ 10% of n)."""

    lang: str
    role: str
    layer: int
    k: int
    n: int
    mean: float
    control: float
    median: float
    beats_control: float  # share of examples whose P beats their control at this layer

    def __str__(self) -> str:
        return (f"P({self.lang}) {self.role} at layer {self.layer} (mean {self.mean:.4f}, control {self.control:.4f}) is carried "
                f"by {self.k} of {self.n} examples: median {self.median:.4f} ({'above' if self.median > self.control else 'not above'} "
                f"the control), {self.beats_control:.0%} beat their control")


@dataclass
class LatentResult:
    """Lens metrics of one checkpoint on one task, after the overlap filter.

    ``roles[lang]`` says why a language is watched (``target``, ``latent``, ``source copy``, or
    ``latent + source copy`` for an English source); ``n_source_overlap`` counts the dropped
    examples whose source-word set overlaps a target or latent set (they are in ``n_overlap`` too).
    ``fragments[lang]`` lists the words whose token set fell back to byte fragments;
    ``shared[lang]`` counts the concepts whose set is identical to another concept's.
    """

    model_name: str
    task: LensTask
    languages: tuple[str, ...]  # target first, then the latent languages, then the source
    examples: list[Example]
    metrics: LensMetrics
    n_overlap: int
    fragments: dict[str, list[str]] = field(default_factory=dict)
    shared: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    n_source_overlap: int = 0

    @property
    def has_control(self) -> bool:
        return bool(self.metrics.control)

    def role(self, lang: str) -> str:
        """Why ``lang`` is watched: target, latent or source copy."""
        return self.roles.get(lang) or ("target" if lang == self.languages[0] else "latent")

    def _p(self, lang: str) -> np.ndarray:
        return self.metrics.mass[lang][:, :, 0]

    def _control(self, lang: str) -> np.ndarray:
        return self.metrics.control[lang][:, :, 0]

    def _quoted(self) -> list[tuple[str, int]]:
        """The results reports quote: P(target) at the output, every other language at its peak layer."""
        out = [(self.languages[0], self.metrics.n_points - 1)]
        for lang in self.languages[1:]:
            out.append((lang, int(np.argmax(self._p(lang).mean(axis=0)))))
        return out

    def few_carriers(self) -> list[FewCarriers]:
        """The quoted results (mean above the control) carried by at most 10% of the examples (none without a control)."""
        if not self.has_control:
            return []
        n, out = len(self.examples), []
        for lang, layer in self._quoted():
            k = int(carried_by(self._p(lang), self._control(lang))[layer])
            p, c = self._p(lang)[:, layer], self._control(lang)[:, layer]
            if p.mean() > c.mean() and k <= FEW_CARRIERS * n:  # a mean at or below its control is no result to carry
                out.append(FewCarriers(lang, self.role(lang), layer, k, n, float(p.mean()), float(c.mean()),
                                       float(np.median(p)), float(np.mean(p > c))))
        return out

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
            if self.role(lang) == f"latent + {SOURCE_ROLE}":
                out.append(f"The source language {lang} is also a latent language: P({lang}) includes copies of the source word.")
        out.extend(f"{few} (≤ {FEW_CARRIERS:.0%} of the examples)." for few in self.few_carriers())
        return out

    def curves(self, level: float = 0.95) -> pd.DataFrame:
        """Per layer: mean, confidence band and median of P(language) and of its control for each language,
        of entropy and KL; per language the share of examples whose P beats their own control and the
        fewest examples carrying 80% of the excess over the control (``_carried_by``)."""
        data: dict[str, np.ndarray] = {"layer": np.arange(self.metrics.n_points)}
        series = {f"p_{lang}": self._p(lang) for lang in self.languages}
        series.update({f"p_{lang}_control": self._control(lang) for lang in self.languages if self.has_control})
        series["entropy_bits"] = self.metrics.entropy[:, :, 0]
        series["kl_to_final_bits"] = self.metrics.kl_to_final[:, :, 0]
        for name, values in series.items():
            data[name], data[f"{name}_lo"], data[f"{name}_hi"] = mean_ci(values, level)
            data[f"{name}_median"] = np.median(values, axis=0)
        if self.has_control:
            for lang in self.languages:
                data[f"p_{lang}_beats_control"] = np.mean(self._p(lang) > self._control(lang), axis=0)
                data[f"p_{lang}_carried_by"] = carried_by(self._p(lang), self._control(lang))
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
            frame[f"p_{lang}"] = self._p(lang).ravel()
            if self.has_control:
                frame[f"p_{lang}_control"] = self._control(lang).ravel()
        return frame

    def summary(self) -> dict[str, object]:
        """The numbers quoted in reports: final P(target), peak P of every other watched language and where
        it peaks, each with its median, its control, the share beating the control and how many examples
        carry it (None with a single example); ``carried_by_few`` names those carried by ≤ 10%."""
        curves = self.curves()

        def control(column: str, layer: int) -> object:
            return curves[column].iloc[layer].item() if self.has_control else None

        out: dict[str, object] = {"model": self.model_name, "task": self.task.title, "n": len(self.examples),
                                  "n_overlap": self.n_overlap, "n_source_overlap": self.n_source_overlap,
                                  "source": next((lang for lang in self.languages if SOURCE_ROLE in self.role(lang)), None)}
        for lang, layer in self._quoted():
            at = "final" if lang == self.languages[0] else "peak"
            out[f"{at}_p_{lang}"] = float(curves[f"p_{lang}"].iloc[layer])
            if at == "peak":
                out[f"peak_layer_{lang}"] = layer
            out[f"{at}_median_{lang}"] = float(curves[f"p_{lang}_median"].iloc[layer])
            out[f"{at}_control_{lang}"] = control(f"p_{lang}_control", layer)
            out[f"{at}_beats_control_{lang}"] = control(f"p_{lang}_beats_control", layer)
            out[f"{at}_carried_by_{lang}"] = control(f"p_{lang}_carried_by", layer)
        out["shared_sets"] = sum(self.shared.values())
        out["carried_by_few"] = "; ".join(map(str, self.few_carriers()))
        return out


def copy_forms(forms: tuple[str, ...]) -> tuple[str, ...]:
    """The source word as a copy may come out: as written, lower-cased and capitalised (``Lune`` → `` L``,
    ``Version`` → `` version``), so a case change cannot hide a copy from the overlap filter or the curve."""
    return tuple(dict.fromkeys(v for w in forms for v in (w, w.lower(), w[:1].upper() + w[1:])))


def _roles(task: LensTask, latent: tuple[str, ...], watch_source: bool) -> dict[str, str]:
    """Watched language → role, target first; the source is watched in translation tasks unless it is the target."""
    roles = {task.target: "target"}
    for lang in latent:
        roles.setdefault(lang, "latent")
    if watch_source and task.kind == "translation" and task.source != task.target:
        roles[task.source] = f"latent + {SOURCE_ROLE}" if task.source in roles else SOURCE_ROLE
    return roles


def run_latent(lm: LoadedModel, task: LensTask, *, latent: tuple[str, ...] = ("en",), watch_source: bool = True,
               batch_size: int = 16, progress: Progress | None = None) -> LatentResult:
    """Measure P(target), P(latent languages), P(source copy) and their controls per layer at the prompt's last position.

    A concept's token set is the union over all its translations (``Example.forms``). With
    ``watch_source`` (the default for translation) the source word is a watched set too (its forms
    in every case, ``copy_forms``), so examples whose source tokens overlap the target or latent
    sets are dropped and counted.
    """
    roles = _roles(task, latent, watch_source)
    languages = tuple(roles)
    kept, sets = [], {lang: [] for lang in languages}
    fragments: dict[str, list[str]] = {lang: [] for lang in languages}
    n_source = 0
    for ex in task.examples:
        missing = [lang for lang in languages if lang not in ex.words]
        if missing:
            raise DataError(f"The word list has no {', '.join(missing)} words for the watched languages "
                            f"({', '.join(f'{lang}: {role}' for lang, role in roles.items())}).",
                            hint="Read the word list with these languages, or measure only languages it holds.")
        forms = {lang: ex.forms.get(lang) or (ex.words[lang],) for lang in languages}
        per_lang = {lang: concept_token_set(lm.tokenizer, copy_forms(forms[lang]) if roles[lang] == SOURCE_ROLE else forms[lang])
                    for lang in languages}
        ids = {lang: set(ts.ids) for lang, ts in per_lang.items()}
        if sum(len(v) for v in ids.values()) != len(set().union(*ids.values())) or not all(ids.values()):
            source = next((lang for lang, role in roles.items() if role == SOURCE_ROLE), None)
            if source and any(ids[source] & ids[lang] for lang in languages if lang != source):
                n_source += 1
            continue
        kept.append(ex)
        for lang in languages:
            sets[lang].append(sorted(ids[lang]))
            fragments[lang].extend(w for w in per_lang[lang].fragments if w in forms[lang])  # not the case variants of a copy
    if not kept:
        raise DataError(f"All {len(task.examples)} examples of {task.title} share tokens between the watched languages "
                        f"({', '.join(languages)}; {n_source} through the source word).",
                        hint="Use a longer word list, or fewer latent languages.")
    shared = {}
    for lang, per_example in sets.items():
        counts = Counter(tuple(ids) for ids in per_example)
        shared[lang] = sum(c for c in counts.values() if c > 1)
    metrics = lens_metrics(lm, [e.prompt for e in kept], token_sets=sets, batch_size=batch_size, controls=len(kept) > 1,
                           progress=progress)
    return LatentResult(lm.name, task, languages, kept, metrics, len(task.examples) - len(kept),
                        {k: v for k, v in fragments.items() if v}, shared, roles, n_source)
