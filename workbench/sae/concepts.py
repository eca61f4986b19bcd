"""Concept dictionary: what each SAE latent means, and how sure we are.

For every latent: its top-activating sequences; the item attributes enriched among them
(the statistic: ratio of the mean attribute share in the top sequences to the mean share
over all sequences, with a one-sided Mann–Whitney U p-value (normal approximation with tie correction), sequences as the unit,
Bonferroni-corrected over attributes); and a confidence score — how well "the sequence's
share of the concept attribute is at least t" predicts "the latent fires" on held-out
users (precision, recall, F1; t chosen on the other users). Latents are ranked by F1.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from workbench.errors import ConfigError
from workbench.sae.interactions import Interactions

THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)


@dataclass
class LatentConcept:
    latent: int
    concept: str | None
    enrichment: float
    p_value: float
    precision: float
    recall: float
    f1: float
    threshold: float
    frequency: float
    chance_f1: float
    max_activation: float
    top_sequences: list[int] = field(default_factory=list)
    attribute_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class ConceptDictionary:
    latents: list[LatentConcept]
    attributes: list[str]
    n_sequences: int
    top_k: int
    chance_f1: float  # mean F1 of predictors independent of the latents, at the fitted rates

    def table(self) -> pd.DataFrame:
        """One row per latent, sorted by confidence (F1) — what the view shows."""
        rows = [{k: v for k, v in asdict(c).items() if k not in ("top_sequences", "attribute_scores")} for c in self.latents]
        return pd.DataFrame(rows).sort_values(["f1", "enrichment"], ascending=False, ignore_index=True)

    def get(self, latent: int) -> LatentConcept:
        for c in self.latents:
            if c.latent == latent:
                return c
        raise ConfigError(f"Latent {latent} is not in this dictionary (it has {len(self.latents)} latents).")

    def confident(self, min_f1: float = 0.5) -> list[LatentConcept]:
        return sorted((c for c in self.latents if c.concept and c.f1 >= min_f1), key=lambda c: -c.f1)


def sequence_profiles(data: Interactions, users: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Share of each attribute among the last ``window`` items of each prefix ``[n, n_attributes]``."""
    attr = data.attribute_matrix()
    out = np.zeros((len(users), attr.shape[1]), dtype=np.float32)
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        cum = np.vstack([np.zeros((1, attr.shape[1]), np.float32), np.cumsum(attr[data.sequences[u]], axis=0)])
        e = ends[rows]
        s = np.maximum(0, e - window)
        out[rows] = (cum[e] - cum[s]) / np.maximum(e - s, 1)[:, None]
    return out


class _UTest:
    """One-sided Mann–Whitney U of a few values against one fixed large sample.

    The large sample is sorted once, so each test costs O(m log n) instead of ranking n + m
    values again; the p-value is the normal approximation with the tie correction.
    """

    def __init__(self, sample: np.ndarray) -> None:
        self.sorted = np.sort(sample)
        _, counts = np.unique(self.sorted, return_counts=True)
        self.tie_sum = float((counts.astype(np.float64) ** 3 - counts).sum())

    def p_greater(self, values: np.ndarray) -> float:
        n1, n2 = len(values), len(self.sorted)
        below = np.searchsorted(self.sorted, values, side="left")
        equal = np.searchsorted(self.sorted, values, side="right") - below
        u = float((below + 0.5 * equal).sum())
        n = n1 + n2
        var = n1 * n2 / 12.0 * ((n + 1) - self.tie_sum / (n * (n - 1)))
        if var <= 0:
            return 1.0
        return float(norm.sf((u - n1 * n2 / 2.0 - 0.5) / np.sqrt(var)))


def _best_threshold(share: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 at every threshold for many latents sharing one concept: ``share [n]``, ``active [n, L]``."""
    pred = (share[:, None] >= THRESHOLDS[None, :]).astype(np.float32)  # [n, T]
    tp = pred.T @ active.astype(np.float32)  # [T, L]
    n_pred = pred.sum(0)[:, None]
    n_true = active.sum(0)[None, :]
    return tp, 2 * tp / np.maximum(n_pred + n_true, 1e-9)


def build_dictionary(latent_acts: np.ndarray, profiles: np.ndarray, attributes: list[str], groups: np.ndarray, *,
                     top_k: int = 20, held_out_fraction: float = 0.25, alpha: float = 0.01, seed: int = 0) -> ConceptDictionary:
    """Concept per latent from activations ``[n, d_sae]`` and attribute profiles ``[n, A]``.

    ``groups`` (user of each sequence) keeps the confidence honest: thresholds are fitted
    on some users and F1 is measured on the others.
    """
    z = np.asarray(latent_acts, dtype=np.float32)
    if z.ndim != 2 or profiles.shape != (len(z), len(attributes)) or len(groups) != len(z):
        raise ConfigError(f"Shapes do not line up: activations {z.shape}, profiles {profiles.shape}, "
                          f"{len(attributes)} attributes, {len(groups)} group labels.")
    if len(z) < 2 * top_k:
        raise ConfigError(f"Only {len(z)} sequences for top_k = {top_k}.", hint="Use more sequences or a smaller top_k.")
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    test_groups = rng.choice(uniq, size=max(1, int(len(uniq) * held_out_fraction)), replace=False)
    test = np.isin(groups, test_groups)
    active = z > 0
    mean_share = profiles.mean(0)
    zt = np.ascontiguousarray(z.T)  # one latent per row: column reads of z are strided and slow
    part = np.argpartition(-zt, top_k - 1, axis=1)[:, :top_k]  # [d_sae, top_k], unordered: O(n) per latent
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(zt, part, axis=1), axis=1), axis=1)
    frequency, peak = (zt > 0).mean(1), zt.max(1)
    ranker = [_UTest(profiles[:, a]) for a in range(profiles.shape[1])]
    concepts: list[LatentConcept] = []
    for j in range(z.shape[1]):
        rows = top[j][zt[j, top[j]] > 0]
        base = dict(latent=j, frequency=float(frequency[j]), chance_f1=0.0, max_activation=float(peak[j]), top_sequences=rows.tolist())
        if len(rows) < 3:
            concepts.append(LatentConcept(concept=None, enrichment=0.0, p_value=1.0, precision=0.0, recall=0.0, f1=0.0,
                                          threshold=float("nan"), **base))
            continue
        ratio = profiles[rows].mean(0) / np.maximum(mean_share, 1e-9)
        best = int(np.argmax(ratio))
        p = ranker[best].p_greater(profiles[rows, best]) * len(attributes)
        scores = {attributes[a]: float(ratio[a]) for a in np.argsort(-ratio)[:8]}
        concepts.append(LatentConcept(concept=attributes[best] if p < alpha and ratio[best] > 1 else None,
                                      enrichment=float(ratio[best]), p_value=min(p, 1.0), precision=0.0, recall=0.0, f1=0.0,
                                      threshold=float("nan"), attribute_scores=scores, **base))
    by_concept: dict[str, list[LatentConcept]] = {}
    for c in concepts:
        if c.concept is not None:
            by_concept.setdefault(c.concept, []).append(c)
    active_train, active_test = active[~test], active[test]
    for name, members in by_concept.items():
        a = attributes.index(name)
        cols = [c.latent for c in members]
        _, f1_train = _best_threshold(profiles[~test, a], active_train[:, cols])
        best_t = f1_train.argmax(0)
        tp, _ = _best_threshold(profiles[test, a], active_test[:, cols])
        pred_n = (profiles[test, a][:, None] >= THRESHOLDS[None, :]).sum(0)
        true_n = active_test[:, cols].sum(0)
        n_test = max(int(test.sum()), 1)
        for i, c in enumerate(members):
            t = best_t[i]
            hit = float(tp[t, i])
            c.threshold = float(THRESHOLDS[t])
            c.precision = hit / pred_n[t] if pred_n[t] else 0.0
            c.recall = hit / true_n[i] if true_n[i] else 0.0
            c.f1 = 2 * c.precision * c.recall / (c.precision + c.recall) if c.precision + c.recall else 0.0
            f, q = true_n[i] / n_test, pred_n[t] / n_test  # an independent predictor with the same rates
            c.chance_f1 = float(2 * f * q / (f + q)) if f + q else 0.0
    with_concept = [c.chance_f1 for c in concepts if c.concept is not None]
    return ConceptDictionary(concepts, list(attributes), len(z), top_k, chance_f1=float(np.mean(with_concept)) if with_concept else 0.0)


def concept_summary(dictionary: ConceptDictionary, min_f1: float = 0.5) -> dict[str, Any]:
    confident = dictionary.confident(min_f1)
    return {
        "n_latents": len(dictionary.latents),
        "n_with_concept": sum(c.concept is not None for c in dictionary.latents),
        f"n_f1_ge_{min_f1}": len(confident),
        "concepts_covered": sorted({c.concept for c in confident if c.concept}),
        "chance_f1": dictionary.chance_f1,
    }
