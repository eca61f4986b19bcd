"""Steering vectors from contrastive sets: two groups of texts that differ in one property.

Three estimators per layer, on pooled activations of the two groups:

- ``mean_diff``: difference of the group means (CAA / ActAdd style).
- ``pca``: first principal direction of the paired differences (RepE style). The SVD of
  the uncentred differences is PCA of the sign-symmetrised set {d, -d}, so a consistent
  shift and a consistent axis of variation both show up.
- ``probe``: the weight vector of an L2-regularised logistic regression separating the
  groups (features standardised, the weights mapped back to the raw residual space).

Every direction is sign-calibrated so the positive group projects higher, and scaled by the
distance between the group means along it (see ``SteeringVector.scale``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workbench.activations import ActivationCache, chat_texts, extract_activations
from workbench.data.types import Pair, Prompt
from workbench.errors import ConfigError, DataError
from workbench.models.loading import LoadedModel
from workbench.steering.vectors import SteeringVector

METHODS = ("mean_diff", "pca", "probe")
# progress(stage, done, total): called as work advances, stage by stage (done never falls within one).
StageProgress = Callable[[str, int, int], None]
ACTIVATIONS_STAGE, FIT_STAGE = "activations", "fit"


@dataclass
class ContrastiveSet:
    """Prompts with a positive and a negative response each (row i of both lists pair up)."""

    name: str
    prompts: list[Prompt]
    positive: list[str]
    negative: list[str]

    def __post_init__(self) -> None:
        if not (len(self.prompts) == len(self.positive) == len(self.negative)):
            raise DataError(f"Contrastive set {self.name!r}: {len(self.prompts)} prompts, {len(self.positive)} positive and "
                            f"{len(self.negative)} negative responses; they must pair up one to one.")
        if len(self.prompts) < 2:
            raise DataError(f"Contrastive set {self.name!r} has {len(self.prompts)} example(s); a direction needs at least 2.",
                            hint="Add more pairs that differ in the property you want to steer.")


def chosen_rejected_set(pairs: Sequence[Pair], name: str = "chosen-vs-rejected") -> ContrastiveSet:
    """Labelled pairs as a contrastive set: chosen responses positive, rejected negative (ties dropped)."""
    kept = [p for p in pairs if p.preferred in ("A", "B")]
    return ContrastiveSet(name, [p.prompt for p in kept], [p.chosen for p in kept], [p.rejected for p in kept])


def attribute_set(pairs: Sequence[Pair], attribute: str, positive_pole: str) -> ContrastiveSet:
    """Pairs that differ along ``metadata["attribute"]`` (poles in ``a_pole``/``b_pole``):
    the response at ``positive_pole`` is positive, the other negative."""
    prompts: list[Prompt] = []
    pos: list[str] = []
    neg: list[str] = []
    poles: set[str] = set()
    for p in pairs:
        meta = p.metadata or {}
        if meta.get("attribute") != attribute:
            continue
        poles.update(str(meta.get(k)) for k in ("a_pole", "b_pole"))
        if meta.get("a_pole") == positive_pole:
            prompts.append(p.prompt), pos.append(p.response_a), neg.append(p.response_b)
        elif meta.get("b_pole") == positive_pole:
            prompts.append(p.prompt), pos.append(p.response_b), neg.append(p.response_a)
    if not prompts:
        known = sorted({str((p.metadata or {}).get("attribute")) for p in pairs})
        raise DataError(
            f"No pairs with attribute {attribute!r} and pole {positive_pole!r}"
            + (f" (poles seen: {', '.join(sorted(poles))})." if poles else f" (attributes present: {', '.join(known)})."),
            field="metadata.attribute", hint="Pick an attribute and pole that the dataset records in metadata.",
        )
    return ContrastiveSet(f"{attribute}:{positive_pole}", prompts, pos, neg)


CLIP_MARGIN = 8  # tokens kept beyond ``first_tokens``, so re-tokenising the cut text cannot change the pooled ones


def clip_responses(tokenizer, responses: Sequence[str], keep: int) -> list[str]:
    """Each response cut after its first ``keep`` tokens (tokenised on its own).

    The model is causal, so the activations of the first k response tokens do not depend on
    anything after them; cutting the text first makes the forward passes several times
    shorter for long responses. Needs a fast tokenizer (offsets); otherwise texts stay whole.
    """
    if not getattr(tokenizer, "is_fast", False):
        return list(responses)
    enc = tokenizer(list(responses), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for text, offsets in zip(responses, enc["offset_mapping"], strict=True):
        out.append(text if len(offsets) <= keep else text[: offsets[keep - 1][1]])
    return out


def contrastive_activations(lm: LoadedModel, data: ContrastiveSet, layers: list[int], *, system: str | None = None,
                            first_tokens: int | None = 16, batch_size: int = 16,
                            cache: ActivationCache | None = None,
                            progress: StageProgress | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Pooled response activations per layer: rows ``0..n-1`` positive, ``n..2n-1`` negative.

    With ``first_tokens`` = k only the first k response tokens are averaged, so both groups are
    compared at the same positions. A mean over whole responses confounds the property with
    position: a long response's mean sits "deep into the answer", and adding that makes the
    model wrap up sooner, the opposite of what a verbosity direction should do. Responses are
    then cut a few tokens past k before the forward pass (``clip_responses``): same result, less work.
    With a ``cache`` every layer is stored, so fits at other layers reuse the entry. ``progress``
    hears ("activations", texts done, texts) after every batch (all at once on a cache hit).
    """
    responses = data.positive + data.negative
    if first_tokens is not None:
        responses = clip_responses(lm.tokenizer, responses, first_tokens + CLIP_MARGIN)
    rendered = chat_texts(data.prompts * 2, responses, lm.tokenizer, system=system)
    # One forward gives every layer; with a cache, keep them all so a later fit at other layers
    # (a layer scan, another method) is a cache read instead of the same forward passes again.
    common = dict(layers=None if cache is not None else layers, prefix_lengths=rendered.prefix_lengths, batch_size=batch_size, cache=cache,
                  add_special_tokens=rendered.add_special_tokens,
                  progress=(lambda done, total: progress(ACTIVATIONS_STAGE, done, total)) if progress else False)
    if first_tokens is None:
        acts = extract_activations(lm, rendered.texts, pooling="mean", **common)
        return {layer: np.asarray(acts.get(layer)) for layer in layers}, len(data.prompts)
    if first_tokens < 1:
        raise ConfigError(f"first_tokens must be at least 1 (or None for whole responses), got {first_tokens}.")
    acts = extract_activations(lm, rendered.texts, pooling="tokens", **common)
    starts, ends = acts.offsets[:-1], acts.offsets[1:]
    counts = np.minimum(ends - starts, first_tokens)
    rows = np.repeat(np.arange(len(starts)), counts)
    index = np.repeat(starts, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    out = {}
    for layer in layers:
        sums = np.zeros((len(starts), acts.d_model))
        np.add.at(sums, rows, np.asarray(acts.get(layer))[index])
        out[layer] = sums / counts[:, None]
    return out, len(data.prompts)


def _probe_direction(pos: np.ndarray, neg: np.ndarray, l2: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression  # scikit-learn: only in _probe_direction()

    x = np.concatenate([pos, neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=1.0 / l2, max_iter=2000).fit((x - mu) / sd, y)
    return clf.coef_[0] / sd  # w·(x-mu)/sd is linear in x with weights w/sd


def fit_direction(pos: np.ndarray, neg: np.ndarray, method: str = "mean_diff", *, l2: float = 1.0) -> tuple[np.ndarray, float, dict[str, float]]:
    """(unit direction, scale, diagnostics) separating ``pos`` from ``neg`` ([n, d] each).

    Diagnostics: ``accuracy`` of thresholding the projection at the midpoint of the group
    means, and ``separation`` (difference of projected means over their pooled std).
    """
    if method not in METHODS:
        raise ConfigError(f"Unknown steering method {method!r}.", hint=f"Choose one of: {', '.join(METHODS)}.")
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if len(pos) < 2 or len(neg) < 2:
        raise DataError(f"Need at least 2 examples per group, got {len(pos)} positive and {len(neg)} negative.")
    gap = pos.mean(0) - neg.mean(0)
    if method == "mean_diff":
        direction = gap
    elif method == "pca":
        if len(pos) != len(neg):
            raise DataError("PCA of differences needs paired groups of equal size.", hint="Use mean_diff or probe for unpaired sets.")
        direction = np.linalg.svd(pos - neg, full_matrices=False)[2][0]
    else:
        direction = _probe_direction(pos, neg, l2)
    norm = np.linalg.norm(direction)
    if not np.isfinite(norm) or norm == 0:
        raise DataError("The two groups cannot be told apart at this layer (zero direction).", hint="Try another layer.")
    direction = direction / norm
    if gap @ direction < 0:  # sign calibration: the positive group projects higher
        direction = -direction
    scale = float(gap @ direction)
    p, n = pos @ direction, neg @ direction
    mid = (p.mean() + n.mean()) / 2
    pooled = np.sqrt((p.var() + n.var()) / 2) + 1e-12
    diagnostics = {"accuracy": float(((p > mid).sum() + (n <= mid).sum()) / (len(p) + len(n))),
                   "separation": float((p.mean() - n.mean()) / pooled)}
    return direction, scale, diagnostics


def fit_steering_vectors(acts: dict[int, np.ndarray], n_positive: int, *, name: str, method: str = "mean_diff",
                         l2: float = 1.0, model: str = "", progress: StageProgress | None = None) -> dict[int, SteeringVector]:
    """One sign-calibrated vector per layer from ``{layer: [2n, d]}`` (positive rows first);
    ``progress`` hears ("fit", layers done, layers) after each."""
    out: dict[int, SteeringVector] = {}
    for i, (layer, x) in enumerate(acts.items(), start=1):
        if len(x) != 2 * n_positive:
            raise ConfigError(f"Expected {2 * n_positive} rows (positive then negative), got {len(x)}.")
        direction, scale, diag = fit_direction(x[:n_positive], x[n_positive:], method, l2=l2)
        out[layer] = SteeringVector(name=name, layer=layer, direction=direction, scale=scale, method=method,
                                    info={**diag, "n_pairs": n_positive, "model": model})
        if progress:
            progress(FIT_STAGE, i, len(acts))
    return out


def contrastive_vectors(lm: LoadedModel, data: ContrastiveSet, layers: list[int], *, method: str = "mean_diff",
                        system: str | None = None, first_tokens: int | None = 16, cache: ActivationCache | None = None,
                        batch_size: int = 16, l2: float = 1.0, progress: StageProgress | None = None) -> dict[int, SteeringVector]:
    """Extract the contrastive activations (one forward pass per batch, all layers) and fit a vector per layer;
    ``progress(stage, done, total)`` hears both stages ("activations" in texts, then "fit" in layers)."""
    if not layers or any(layer < 1 or layer > lm.n_layers for layer in layers):
        raise ConfigError(f"Layers must be block outputs (1..{lm.n_layers}); got {layers}.")
    acts, n = contrastive_activations(lm, data, layers, system=system, first_tokens=first_tokens, batch_size=batch_size, cache=cache,
                                      progress=progress)
    return fit_steering_vectors(acts, n, name=data.name, method=method, l2=l2, model=lm.name, progress=progress)
