"""PAL-style ideal points of a session's annotators: where each one's taste sits among the
model's representations of the answers (issue 25 §1).

The factor tastes of ``annotators.py`` see only what the factors name (length, lists, hedging…);
an ideal point sees what the chosen model sees. Each answer is embedded with the model (one
layer's pooled residual stream through the activation cache, as PAL training does:
``pal_data.embed_texts``) and a PAL-A model (``training.pal.PALModel``: a shared map g of
(prompt, answer) features into a latent space, K prototypes, each annotator a point on their
simplex) is fitted to the decisive votes, the annotator being PAL's user: the answer nearer the
annotator's ideal point u_i wins, P(a ≻ b) = σ(‖g(b) − u_i‖² − ‖g(a) − u_i‖²).

- Distances between ideal points are relative to the mean distance between annotators' ideal
  points in the same fit (1 = as far apart as two annotators are on average): a refit may shrink
  or stretch the latent space as a whole (weight decay acts on it), which this ratio ignores. In
  units of the answers' spread instead, the bootstrap refits came out shorter than the fit on
  all votes, and 95 % percentile intervals missed their point estimates. Their interval is the
  percentile bootstrap over votes (each annotator's votes resampled). Every
  refit, and the point estimate itself, continues from one first fit on all votes with the same
  budget, so all of them live in one latent frame and share the same shrinkage.
- The 2-D point for display is the PCA projection of the ideal points (scikit-learn).
- Agreement with the factor groups: the ideal points of the non-noisy annotators are clustered
  (average linkage, as many clusters as there are factor groups) and compared with the factor
  groups by the adjusted Rand index; 1 means the same partition.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from workbench.activations.cache import ActivationCache
from workbench.data.types import Judgment, Pair
from workbench.errors import DataError
from workbench.preference.intervals import LEVEL
from workbench.training.pal import PALModel, PrefData, accuracy, fit
from workbench.training.pal_data import build_pref_data, embed_texts

K_MAX = 8  # prototypes: at most one per annotator, as few as PAL needs for a handful of tastes
DIM = 8  # latent dimensions of g
HIDDEN = 32
EPOCHS = 60
WEIGHT_DECAY = 0.5  # strong decay on g and the prototypes: 100 votes an annotator would otherwise be memorised (train accuracy 1.0 at 1e-4)
RESAMPLES = 20  # bootstrap refits; each is a few hundred tiny Adam steps
USER = "annotator"


def _vote_pairs(pairs: Sequence[Pair], judgments: Sequence[Judgment]) -> list[Pair]:
    """Each decisive vote as a labelled pair whose user is its annotator (PAL's input)."""
    by_id = {p.id: p for p in pairs}
    out = []
    for j in judgments:
        outcome = str(getattr(j.outcome, "value", j.outcome))
        if outcome in ("A", "B") and j.pair_id in by_id:
            p = by_id[j.pair_id]
            out.append(replace(p, preferred=outcome, metadata={**(p.metadata or {}), USER: j.annotator}))
    return out


def _fit(data: PrefData, n_users: int, seed: int, epochs: int, start: PALModel | None = None) -> PALModel:
    """PAL-A on the votes; ``start`` (the fit on all votes) warm-starts a bootstrap refit, so every
    resample stays in the same latent frame instead of finding a rotated or relabelled one."""
    model = PALModel(data.items.shape[1], data.prompts.shape[1], n_users, min(n_users, K_MAX), DIM, "A", HIDDEN, seed)
    if start is not None:
        model.load_state_dict(start.state_dict())
    fit(model, data, epochs=epochs, lr=1e-2, batch_size=128, weight_decay=WEIGHT_DECAY, seed=seed)
    return model


def _distances(model: PALModel) -> np.ndarray:
    """Pairwise distances of the ideal points over their mean (1 = as far apart as two annotators are on average)."""
    with torch.no_grad():
        d = torch.cdist(model.ideal_points(), model.ideal_points())
    n = d.shape[0]
    return (d / max(float(d.sum()) / max(n * (n - 1), 1), 1e-8)).numpy()


def _resample(data: PrefData, rng: np.random.Generator) -> PrefData:
    """Each annotator's votes drawn with replacement (so every annotator keeps their n)."""
    users = data.user.numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(users == u), size=int(np.sum(users == u))) for u in np.unique(users)])
    return data.subset(idx)


def ideal_points(pairs: Sequence[Pair], judgments: Sequence[Judgment], embed: Callable[[list[str]], np.ndarray],
                 groups: dict[str, list[str]], *, resamples: int = RESAMPLES, epochs: int = EPOCHS, seed: int = 0,
                 level: float = LEVEL) -> dict[str, Any]:
    """Per annotator: the 2-D ideal point, and the distance to each other annotator's with its
    bootstrap interval; overall: the fit, and whether the ideal points group the annotators as
    the factor tastes do (``groups``: factor group → members, noisy annotators left out)."""
    votes = _vote_pairs(pairs, judgments)
    if not votes:
        raise DataError("No decisive (A or B) vote, so no annotator has an ideal point.", hint="Vote on some pairs first.")
    built = build_pref_data(votes, embed, user_field=USER)
    users, data = built.users, built.data
    first = _fit(data, len(users), seed, epochs)
    model = _fit(data, len(users), seed, epochs, first)  # the same budget from the same start as every bootstrap refit
    dist = _distances(model)
    rng = np.random.default_rng(seed)
    boot = np.stack([_distances(_fit(sample, len(users), seed, epochs, first))
                     for sample in (_resample(data, rng) for _ in range(resamples))]) if resamples else dist[None]
    tail = (1 - level) / 2
    low, high = np.quantile(boot, tail, axis=0), np.quantile(boot, 1 - tail, axis=0)
    with torch.no_grad():
        points = model.ideal_points().numpy()
    xy = PCA(n_components=2).fit_transform(points) if len(users) > 2 else np.pad(points[:, :2], ((0, 0), (0, max(0, 2 - points.shape[1]))))
    per = {u: {"xy": [float(v) for v in xy[i]],
               "distances": {o: {"distance": float(dist[i, k]), "ci": [float(low[i, k]), float(high[i, k])], "resamples": resamples}
                             for k, o in enumerate(users) if k != i},
               "votes": int((data.user == i).sum())}
           for i, u in enumerate(users)}
    for row in per.values():
        row["nearest"] = min(row["distances"], key=lambda o: row["distances"][o]["distance"], default=None)
    return {"annotators": per, "grouping": _grouping(users, dist, groups),
            "fit": {"train_accuracy": accuracy(model, data), "votes": len(data), "prototypes": model.k, "dim": DIM,
                    "epochs": epochs, "resamples": resamples, "level": level},
            "units": "distance between two ideal points over the mean distance between annotators' ideal points in the same fit",
            "interval": "percentile bootstrap over each annotator's votes; each refit, like the point estimate, continues "
                        "from one fit on all votes; a distance is never negative, so a near-zero one can sit at its interval's edge",
            "model": "PAL-A: P(a beats b | annotator i) = sigmoid(|g(b) - u_i|^2 - |g(a) - u_i|^2), u_i on the simplex of K prototypes"}


def _grouping(users: list[str], dist: np.ndarray, groups: dict[str, list[str]]) -> dict[str, Any]:
    """Cluster the grouped annotators' ideal points into as many groups as the factor tastes
    found, and compare the two partitions (adjusted Rand index)."""
    factor = {a: g for g, members in groups.items() for a in members if a in users}
    names = sorted(factor)
    if len(groups) < 2 or len(names) < 3:
        return {"adjusted_rand": None, "agrees": None, "clusters": {},
                "note": "needs at least two factor taste groups and three grouped annotators to compare"}
    at = [users.index(a) for a in names]
    labels = AgglomerativeClustering(n_clusters=len(groups), metric="precomputed", linkage="average").fit_predict(dist[np.ix_(at, at)])
    clusters: dict[str, list[str]] = {}
    for a, c in zip(names, labels, strict=True):
        clusters.setdefault(f"i{c + 1}", []).append(a)
    ari = float(adjusted_rand_score([factor[a] for a in names], labels))
    return {"adjusted_rand": ari, "agrees": ari == 1.0, "clusters": clusters,
            "note": f"ideal points of {len(names)} annotators in {len(groups)} clusters vs the factor taste groups"}


def model_embedder(lm: Any, cache: ActivationCache | None = None, layer: int | None = None) -> Callable[[list[str]], np.ndarray]:
    """Texts → the model's pooled, L2-normalised features (``embed_texts``: mean over tokens of
    one layer, the last by default), read from the activation cache when already extracted."""
    def embed(texts: list[str]) -> np.ndarray:
        return embed_texts(lm, texts, layer=layer, pooling="mean", cache=cache)

    return embed


def service_embedder(models: Any, name: str) -> Callable[[list[str]], np.ndarray]:
    """``model_embedder`` of ``name`` loaded once by a ``ModelService`` (shared, read-only), caching
    features in the activation cache of the service's settings."""
    return model_embedder(models.get(name), ActivationCache(models.settings.cache_dir))
