"""Multi-objective reward heads on frozen features of any local model.

A reward model here is a frozen language model plus one linear head per attribute
(verbosity, helpfulness, …) on the mean-pooled residual stream of the response at one
layer. Two kinds of head, one per kind of supervision:

- ``ridge``: ridge regression on absolute attribute ratings of single responses;
- ``bradley_terry``: logistic regression on feature differences of per-aspect pairwise
  judgments, P(a beats b on aspect k) = sigmoid(w_k · (f(a) - f(b))).

Heads live in a standardised feature space (mean and scale stored with them) so one L2
strength suits every layer, and their outputs are standardised over the training responses
(mean 0, std 1 per attribute) so rewards of different attributes share a unit. Quality is reported as held-out pairwise accuracy per
attribute, with its interval (the project's Wilson interval for pairwise heads, Kendall's τ
variance for rating heads). Saved reward models are folders under
``<home>/reward_models/<name>/`` and ``list_reward_models`` lists them (the Steering tab and
best-of-n read that list).

``train_reward_model_from_session`` fits them on what people voted in a labeling session:
one head for the overall outcome and one per aspect the annotators judged, held out by
prompt, with the session's vote snapshot recorded, and the DPA direction the overall votes
imply over the aspect heads.
"""
from __future__ import annotations

import json
import math
import numbers
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.activations import ActivationCache, chat_texts, extract_activations
from workbench.data.types import Judgment, Pair, Prompt
from workbench.errors import ConfigError, DataError, ModelError
from workbench.files import atomic_path, is_temporary
from workbench.models.loading import LoadedModel
from workbench.preference.intervals import rate_interval, z_value
from workbench.preference.ridge import ridge_loo
from workbench.preference.votes import VoteSource, snapshot_of, votes_from_judgments

HEAD_KINDS = ("ridge", "bradley_terry")
MODEL_FILE = "reward_model.json"
WEIGHTS_FILE = "heads.npz"
FEATURES_STAGE, HEADS_STAGE = "features", "heads"


@dataclass
class RatedResponse:
    """One response with absolute ratings per attribute (any numeric scale)."""

    prompt: Prompt
    response: str
    ratings: dict[str, float]


@dataclass
class AspectComparison:
    """A pairwise judgment on one aspect: ``winner`` is "A" or "B"."""

    prompt: Prompt
    response_a: str
    response_b: str
    aspect: str
    winner: str


def comparisons_from_poles(pairs: Sequence[Pair], high_poles: dict[str, str]) -> list[AspectComparison]:
    """Pairs that differ along ``metadata.attribute`` as comparisons: the response at the
    attribute's high pole (``high_poles[attribute]``, e.g. ``{"verbosity": "verbose"}``) wins."""
    out = []
    for p in pairs:
        meta = p.metadata or {}
        attribute = meta.get("attribute")
        high = high_poles.get(attribute or "")
        if high is None:
            continue
        if meta.get("a_pole") == high:
            out.append(AspectComparison(p.prompt, p.response_a, p.response_b, attribute, "A"))
        elif meta.get("b_pole") == high:
            out.append(AspectComparison(p.prompt, p.response_a, p.response_b, attribute, "B"))
    return out


def comparisons_from_judgments(pairs: Sequence[Pair], judgments: Sequence[Judgment], overall: str | None = None) -> list[AspectComparison]:
    """Per-aspect outcomes of labeling judgments (ties and skips dropped); with ``overall``
    set, the overall outcome also counts as a comparison on an aspect of that name."""
    by_id = {p.id: p for p in pairs}
    out = []
    for j in judgments:
        pair = by_id.get(j.pair_id)
        if pair is None:
            continue
        aspects = dict(j.aspects)
        if overall:
            aspects[overall] = j.outcome.value if hasattr(j.outcome, "value") else str(j.outcome)
        for aspect, outcome in aspects.items():
            if outcome in ("A", "B"):
                out.append(AspectComparison(pair.prompt, pair.response_a, pair.response_b, aspect, outcome))
    return out


@dataclass
class RewardModel:
    """Linear heads ``r_k(x, y) = w_k · (f(x, y) - mean) / scale + b_k`` on frozen features."""

    name: str
    base_model: str
    base_path: str
    layer: int
    attributes: list[str]
    kinds: list[str]
    weights: np.ndarray  # [k, d]
    bias: np.ndarray  # [k]
    mean: np.ndarray  # [d]
    scale: np.ndarray  # [d]
    system: str | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    source: dict[str, Any] = field(default_factory=dict)  # what it was fitted on (e.g. session + vote snapshot)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """Rewards ``[n, k]`` for pooled features ``[n, d]``."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return z @ self.weights.T + self.bias

    def score(self, lm: LoadedModel, prompts: Sequence[Prompt], responses: Sequence[str], *,
              cache: ActivationCache | None = None, batch_size: int = 16) -> np.ndarray:
        """Rewards ``[n, k]`` of responses to prompts, read through the frozen base model."""
        self.check_model(lm)
        return self.score_features(featurize(lm, prompts, responses, self.layer, system=self.system, cache=cache, batch_size=batch_size))

    def check_model(self, lm: LoadedModel) -> None:
        d = lm.adapter.d_model(lm.model)
        if d != self.weights.shape[1] or self.layer > lm.n_layers:
            raise ModelError(
                f"Reward model {self.name!r} was trained on {self.base_model} (d={self.weights.shape[1]}, layer {self.layer}); "
                f"{lm.name} has d={d} and {lm.n_layers} layers.",
                hint=f"Load {self.base_model} ({self.base_path}) to use this reward model.",
            )

    def index(self, attribute: str) -> int:
        try:
            return self.attributes.index(attribute)
        except ValueError:
            raise ConfigError(f"Reward model {self.name!r} has no attribute {attribute!r}.",
                              hint=f"Its attributes are: {', '.join(self.attributes)}.") from None

    # -- persistence -----------------------------------------------------------------
    def save(self, root: str | Path) -> Path:
        """Write ``root/<name>/`` atomically, replacing an older save of the same name."""
        folder = Path(root) / self.name
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            np.savez(tmp / WEIGHTS_FILE, weights=self.weights, bias=self.bias, mean=self.mean, scale=self.scale)
            meta = {k: getattr(self, k) for k in ("name", "base_model", "base_path", "layer", "attributes", "kinds", "system", "metrics", "created_at", "source")}
            (tmp / MODEL_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RewardModel:
        folder = Path(folder)
        try:
            meta = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
            with np.load(folder / WEIGHTS_FILE) as arrays:
                tensors = {k: arrays[k] for k in ("weights", "bias", "mean", "scale")}
        except (OSError, json.JSONDecodeError, KeyError, ValueError) as exc:
            raise DataError(f"Cannot read reward model: {exc}.", path=folder,
                            hint="The folder should hold reward_model.json and heads.npz written by RewardModel.save().") from exc
        return cls(**meta, **tensors)


def reward_models_dir(settings: Any) -> Path:
    return Path(settings.home) / "reward_models"


def list_reward_models(settings: Any) -> list[dict[str, Any]]:
    """Saved reward models with their base model, attributes and held-out accuracies."""
    rows = []
    for path in sorted(reward_models_dir(settings).glob(f"*/{MODEL_FILE}")):
        if is_temporary(path.parent.name):
            continue
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        rows.append({"name": meta["name"], "path": str(path.parent), "base_model": meta["base_model"], "layer": meta["layer"],
                     "attributes": meta["attributes"], "kinds": meta["kinds"],
                     "heldout_accuracy": {a: m.get("heldout_pairwise_accuracy") for a, m in meta.get("metrics", {}).items()},
                     "session": meta.get("source", {}).get("session")})
    return rows


def load_reward_model(settings: Any, name: str) -> RewardModel:
    folder = reward_models_dir(settings) / name
    if not (folder / MODEL_FILE).exists():
        names = [r["name"] for r in list_reward_models(settings)]
        raise ModelError(f"No reward model named {name!r} in {reward_models_dir(settings)}.",
                         hint=f"Saved reward models: {', '.join(names) or 'none yet — train one first'}.")
    return RewardModel.load(folder)


# -- features and fitting --------------------------------------------------------------
def featurize(lm: LoadedModel, prompts: Sequence[Prompt], responses: Sequence[str], layer: int, *, system: str | None = None,
              cache: ActivationCache | None = None, batch_size: int = 16,
              progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """Mean-pooled residual stream over the response tokens at ``layer`` (``[n, d]``, float64).

    An empty response is read as the end-of-sequence token, which is what the model produced.
    With a ``cache`` every layer is extracted and stored (one forward gives them all), so heads
    at other layers of the same texts are a cache read. ``progress`` hears ("features", texts
    done, texts) after every batch.
    """
    eos = lm.tokenizer.eos_token or " "
    rendered = chat_texts(list(prompts), [r if r.strip() else eos for r in responses], lm.tokenizer, system=system)
    acts = extract_activations(lm, rendered.texts, layers=None if cache is not None else [layer], pooling="mean",
                               prefix_lengths=rendered.prefix_lengths, batch_size=batch_size, cache=cache,
                               add_special_tokens=rendered.add_special_tokens,
                               progress=(lambda done, total: progress(FEATURES_STAGE, done, total)) if progress else False)
    return np.asarray(acts.get(layer), dtype=np.float64)


def fit_ridge_head(z: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Closed-form ridge with an unpenalised intercept (``z`` and ``y`` centred; dual form when n < d)."""
    y = np.asarray(y, dtype=np.float64)
    centre = z.mean(0)
    zc, yc = z - centre, y - y.mean()
    n, d = z.shape
    if n < d:
        w = zc.T @ np.linalg.solve(zc @ zc.T + l2 * np.eye(n), yc)
    else:
        w = np.linalg.solve(zc.T @ zc + l2 * np.eye(d), zc.T @ yc)
    return w, float(y.mean() - centre @ w)


L2_GRID = tuple(float(v) for v in np.logspace(-1, 4, 11))  # prior precisions cross-validation chooses from
CV_FOLDS = 5
MIN_CV_COMPARISONS = 20  # below this (or with fewer than 3 prompts to fold by) L2 stays at FIXED_L2
MIN_LOO_RATINGS = 10  # below this a ridge head's L2 stays at FIXED_L2
FIXED_L2 = 1.0


def choose_ridge_l2(z: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """A ridge (rating) head's L2 by exact leave-one-out squared error over ``L2_GRID``, and how
    it was chosen: at a fixed L2 = 1 a head over hundreds of features all but interpolates a few
    dozen noisy ratings, as the Bradley–Terry heads did (``choose_l2``)."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) < MIN_LOO_RATINGS:
        return FIXED_L2, f"fixed at {FIXED_L2:g} ({len(y)} ratings: too few to choose it by leave-one-out)"
    if np.ptp(y) == 0:
        return FIXED_L2, f"fixed at {FIXED_L2:g} (every rating is the same)"
    l2 = ridge_loo(z, y, L2_GRID, intercept=True)[1]
    return l2, f"{l2:.3g}, chosen by exact leave-one-out squared error from {L2_GRID[0]:g}–{L2_GRID[-1]:g}"


def choose_l2(diff: np.ndarray, a_wins: np.ndarray, groups: Sequence[str] | None = None, seed: int = 0) -> tuple[float, str]:
    """The Bradley–Terry head's L2 with the best cross-validated log-loss over ``L2_GRID``, and
    how it was chosen. A fixed L2 suits no vote count: at L2 = 1 on a few hundred noisy votes a
    head over hundreds of features fits the noise, and its held-out accuracy *falls* as votes
    are added (measured in ``benchmarks/active.py``). Folds keep a prompt's comparisons together
    when ``groups`` names them, so the choice is made on prompts the fit did not see."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn: only when a head is fitted
    from sklearn.model_selection import GroupKFold, KFold

    a_wins = np.asarray(a_wins, dtype=bool)
    n = len(diff)
    n_groups = len(set(groups)) if groups is not None else n
    if n < MIN_CV_COMPARISONS:
        return FIXED_L2, f"fixed at {FIXED_L2:g} ({n} comparisons: too few to choose it by cross-validation)"
    if n_groups < 3:
        return FIXED_L2, f"fixed at {FIXED_L2:g} ({n_groups} prompt(s): too few to hold prompts out)"
    if len(np.unique(a_wins)) < 2:
        return FIXED_L2, f"fixed at {FIXED_L2:g} (every vote went to one side)"
    folds = min(CV_FOLDS, n_groups)
    splitter = GroupKFold(folds) if groups is not None else KFold(folds, shuffle=True, random_state=seed)
    fits = []  # per fold: its classifier, training data (both orientations of each comparison) and held-out rows
    for train, test in splitter.split(diff, groups=None if groups is None else list(groups)):
        x, y = np.concatenate([diff[train], -diff[train]]), np.concatenate([a_wins[train], ~a_wins[train]]).astype(int)
        fits.append((LogisticRegression(fit_intercept=False, max_iter=5000, warm_start=True), x, y, test))
    # Strongest penalty first, each fit starting from the last one's weights; the path stops two
    # steps past the best held-out log-loss (weakly penalised fits are the slow ones, and past the
    # minimum the loss only rises as the head fits more noise).
    losses: dict[float, float] = {}
    for l2 in sorted(L2_GRID, reverse=True):
        total = 0.0
        for clf, x, y, test in fits:
            clf.set_params(C=1.0 / l2).fit(x, y)
            total += float(np.sum(np.logaddexp(0.0, -np.where(a_wins[test], 1.0, -1.0) * (diff[test] @ clf.coef_[0]))))
        losses[l2] = total
        if len(losses) - 1 - list(losses).index(min(losses, key=losses.get)) >= 2:
            break
    l2 = min(losses, key=losses.get)
    by = "prompt" if groups is not None else "comparison"
    return l2, f"{l2:.3g}, chosen by {folds}-fold cross-validation by {by} (held-out log-loss) from {L2_GRID[0]:g}–{L2_GRID[-1]:g}"


def fit_bt_head(z_a: np.ndarray, z_b: np.ndarray, a_wins: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Bradley–Terry head: logistic regression on ``z_a - z_b`` with no intercept.

    Both orientations of every comparison are used, so the fit is symmetric by construction.
    """
    from sklearn.linear_model import LogisticRegression  # scikit-learn: only in fit_bt_head()

    a_wins = np.asarray(a_wins, dtype=bool)  # 0/1 ints would make ~a_wins −1/−2: four classes
    diff = z_a - z_b
    x = np.concatenate([diff, -diff])
    y = np.concatenate([a_wins, ~a_wins]).astype(int)
    if len(np.unique(y)) < 2:
        raise DataError("Bradley–Terry needs comparisons won by both sides.")
    clf = LogisticRegression(C=1.0 / l2, fit_intercept=False, max_iter=5000).fit(x, y)
    return clf.coef_[0]


def pairwise_concordance(pred: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The share of response pairs with different ``y`` that ``pred`` orders the same way (NaN
    when there are none), and how many such pairs there are."""
    dy = np.sign(y[:, None] - y[None, :])
    dp = np.sign(pred[:, None] - pred[None, :])
    mask = np.triu(dy != 0, k=1)
    n = int(mask.sum())
    return (float((dy == dp)[mask].mean()) if n else float("nan")), n


def _split(n: int, test_fraction: float, rng: np.random.Generator, groups: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, test) indices; with ``groups`` whole groups (prompts) go to one side."""
    if groups is None:
        order = rng.permutation(n)
        n_test = int(round(n * test_fraction)) if n >= 4 else 0
        return order[n_test:], order[:n_test]
    names = sorted(set(groups))
    picked = rng.permutation(len(names))[:int(round(len(names) * test_fraction)) if len(names) >= 4 else 0]
    held = {names[i] for i in picked}
    test = np.array([i for i, g in enumerate(groups) if g in held], dtype=np.int64)
    return np.array([i for i, g in enumerate(groups) if g not in held], dtype=np.int64), test


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}", name):
        raise ConfigError(f"Reward model name {name!r} is not a safe folder name.", hint="Use letters, digits, '-', '_' and '.'.")


def _check_training_data(lm: LoadedModel, name: str, layer: int, ratings: Sequence[RatedResponse],
                         comparisons: Sequence[AspectComparison]) -> tuple[list[str], list[str]]:
    """The rated and the compared attributes, once the inputs can train a reward model."""
    _check_name(name)
    if not ratings and not comparisons:
        raise DataError("No training data: give attribute ratings and/or per-aspect comparisons.",
                        hint="E.g. comparisons_from_poles(load_demo_pairs(), {'verbosity': 'verbose'}).")
    if not 1 <= layer <= lm.n_layers:
        raise ConfigError(f"Layer {layer} is out of range for {lm.name} (1..{lm.n_layers}).")
    rated_attrs = sorted({a for r in ratings for a in r.ratings})
    compared_attrs = sorted({c.aspect for c in comparisons})
    if clash := set(rated_attrs) & set(compared_attrs):
        raise DataError(f"Attribute(s) {', '.join(sorted(clash))} have both ratings and comparisons; a head takes one kind.",
                        hint="Rename one of them, or train two reward models.")
    for i, r in enumerate(ratings):
        for attr, value in r.ratings.items():
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise DataError(f"Rating {i + 1} gives '{attr}' the value {str(value)[:20]!r}; a rating is a finite number.",
                                field=f"ratings[{i}].{attr}", hint="Give every rating as a number on the attribute's scale, or leave it out.")
    for c in comparisons:
        if c.winner not in ("A", "B"):
            raise DataError(f"Comparison winner must be 'A' or 'B', got {c.winner!r}.", field="winner")
    return rated_attrs, compared_attrs


def _concordance_interval(acc: float, n: int, level: float) -> list[float]:
    """An interval for the share of correctly ordered pairs among ``n`` responses: pairs share
    responses, so neither a binomial over pairs nor a bootstrap (degenerate at 1.0) fits; the
    normal interval with Kendall's τ variance under independence, (2n + 5) / (9n(n − 1)), halved
    to the share's scale (share = (τ + 1) / 2), is the conservative width (τ's variance shrinks
    away from 0)."""
    half = z_value(level) * math.sqrt((2 * n + 5) / (18 * n * (n - 1)))
    return [max(0.0, acc - half), min(1.0, acc + half)]


def _rating_head(z_r: np.ndarray, ratings: Sequence[RatedResponse], attr: str, l2: float | None, test_fraction: float,
                 rng: np.random.Generator, ci: float) -> tuple[np.ndarray, float, dict[str, Any]]:
    """A ridge head for one rated attribute: held-out pairwise accuracy with its interval first,
    then refitted on all; ``l2`` None chooses it by leave-one-out (on the training part for the
    held-out figure, on all ratings for the head kept)."""
    idx = np.array([i for i, r in enumerate(ratings) if attr in r.ratings])
    y = np.array([ratings[i].ratings[attr] for i in idx], dtype=np.float64)
    train, test = _split(len(idx), test_fraction, rng)

    def penalty(rows: np.ndarray) -> tuple[float, str]:
        """``l2`` as given, or chosen on ``rows`` alone (the held-out part never informs it)."""
        return (l2, f"fixed at {l2:g}") if l2 is not None else choose_ridge_l2(z_r[idx[rows]], y[rows])

    acc, acc_ci, n_pairs = float("nan"), None, 0
    if len(test) >= 2:
        w, b = fit_ridge_head(z_r[idx[train]], y[train], penalty(train)[0])
        acc, n_pairs = pairwise_concordance(z_r[idx[test]] @ w + b, y[test])
        acc_ci = _concordance_interval(acc, len(test), ci) if np.isfinite(acc) else None
    chosen, how = penalty(np.arange(len(idx)))
    w, b = fit_ridge_head(z_r[idx], y, chosen)
    unmeasured = {} if np.isfinite(acc) else {"heldout_note": f"{len(test)} held-out response(s): no two rated differently"}
    return w, b, {"heldout_pairwise_accuracy": acc, "heldout_ci": acc_ci, "n_train": len(train), "n_test": len(test),
                  "n_test_pairs": n_pairs, "l2": chosen, "l2_note": how, **unmeasured}


def _comparison_head(z_a: np.ndarray, z_b: np.ndarray, comparisons: Sequence[AspectComparison], attr: str, l2: float | None,
                     test_fraction: float, rng: np.random.Generator, *, split_by_prompt: bool,
                     ci: float) -> tuple[np.ndarray, dict[str, Any]]:
    """A Bradley–Terry head for one compared aspect: held-out accuracy with its interval, then
    refitted on all; ``l2`` None chooses it by cross-validation (on the training part for the
    held-out figure, on all comparisons for the head kept)."""
    idx = np.array([i for i, c in enumerate(comparisons) if c.aspect == attr])
    a_wins = np.array([comparisons[i].winner == "A" for i in idx])
    groups = [json.dumps(comparisons[i].prompt, sort_keys=True) for i in idx] if split_by_prompt else None
    train, test = _split(len(idx), test_fraction, rng, groups)
    diff = z_a[idx] - z_b[idx]

    def penalty(rows: np.ndarray) -> tuple[float, str]:
        """``l2`` as given, or chosen on ``rows`` alone (the held-out part never informs it)."""
        return (l2, f"fixed at {l2:g}") if l2 is not None else choose_l2(
            diff[rows], a_wins[rows], None if groups is None else [groups[i] for i in rows])

    acc, acc_ci, unmeasured = float("nan"), None, {}
    if len(test) and len(np.unique(a_wins[train])) == 2:
        w = fit_bt_head(z_a[idx[train]], z_b[idx[train]], a_wins[train], penalty(train)[0])
        correct = ((diff[test] @ w > 0) == a_wins[test]).astype(np.float64)
        acc, acc_ci = float(correct.mean()), rate_interval(correct, ci)
    else:
        unmeasured = {"heldout_note": "no held-out pairs" if not len(test) else
                      f"{len(test)} held out, but every training vote went to one side: no head to test"}
    chosen, how = penalty(np.arange(len(idx)))
    w = fit_bt_head(z_a[idx], z_b[idx], a_wins, chosen)
    return w, {"heldout_pairwise_accuracy": acc, "heldout_ci": acc_ci, "n_train": len(train), "n_test": len(test),
               "l2": chosen, "l2_note": how, **unmeasured}


def train_reward_model(
    lm: LoadedModel,
    *,
    name: str,
    layer: int,
    ratings: Sequence[RatedResponse] = (),
    comparisons: Sequence[AspectComparison] = (),
    l2: float | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    system: str | None = None,
    cache: ActivationCache | None = None,
    batch_size: int = 16,
    split_by_prompt: bool = False,
    ci: float = 0.95,
    features: np.ndarray | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RewardModel:
    """Fit one head per attribute (ridge on ratings, Bradley–Terry on comparisons) and report
    held-out pairwise accuracy with its interval (``ci``, the level); after evaluation each
    head is refitted on all of its data. ``split_by_prompt`` holds out whole prompts, so the
    accuracy is on prompts no head saw. ``features`` are ``featurize``'s rows for the ratings'
    responses, then every comparison's A, then every B, when the caller already has them.
    ``progress(stage, done, total)`` hears "features" (texts) and then "heads" (attributes fitted).
    ``l2`` is the heads' prior precision; None (the default) chooses each head's on its own data
    (Bradley–Terry: ``choose_l2``, cross-validation; ridge: ``choose_ridge_l2``, leave-one-out);
    the metrics say which and how."""
    rated_attrs, compared_attrs = _check_training_data(lm, name, layer, ratings, comparisons)
    # One feature pass for every text involved.
    prompts = [r.prompt for r in ratings] + [c.prompt for c in comparisons] * 2
    responses = [r.response for r in ratings] + [c.response_a for c in comparisons] + [c.response_b for c in comparisons]
    if features is None:
        features = featurize(lm, prompts, responses, layer, system=system, cache=cache, batch_size=batch_size, progress=progress)
    elif features.shape[0] != len(responses):
        raise ConfigError(f"features has {features.shape[0]} rows for {len(responses)} responses.")
    feats = features
    mean, scale = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mean) / scale
    n_r, n_c = len(ratings), len(comparisons)
    z_r, z_a, z_b = z[:n_r], z[n_r:n_r + n_c], z[n_r + n_c:]
    rng = np.random.default_rng(seed)
    attributes, kinds, weights, biases, metrics = [], [], [], [], {}
    n_heads = len(rated_attrs) + len(compared_attrs)
    for attr in rated_attrs:
        w, b, metrics[attr] = _rating_head(z_r, ratings, attr, l2, test_fraction, rng, ci)
        attributes.append(attr), kinds.append("ridge"), weights.append(w), biases.append(b)
        if progress:
            progress(HEADS_STAGE, len(attributes), n_heads)
    for attr in compared_attrs:
        w, metrics[attr] = _comparison_head(z_a, z_b, comparisons, attr, l2, test_fraction, rng,
                                            split_by_prompt=split_by_prompt, ci=ci)
        attributes.append(attr), kinds.append("bradley_terry"), weights.append(w), biases.append(0.0)
        if progress:
            progress(HEADS_STAGE, len(attributes), n_heads)
    # Standardise every head over the training responses, so rewards of different kinds and
    # attributes share one unit and a direction v over them means what its angles say.
    w_all, b_all = np.stack(weights), np.asarray(biases, dtype=np.float64)
    train_scores = np.concatenate([z_r, z_a, z_b]) @ w_all.T + b_all
    centre, spread = train_scores.mean(0), train_scores.std(0) + 1e-12
    return RewardModel(
        name=name, base_model=lm.name, base_path=str(lm.path), layer=layer, attributes=attributes, kinds=kinds,
        weights=w_all / spread[:, None], bias=(b_all - centre) / spread, mean=mean, scale=scale, system=system, metrics=metrics,
    )


def accuracy_parts(rm: RewardModel) -> list[tuple[str, str]]:
    """(attribute, its held-out pairwise accuracy with interval, n and the L2 it was fitted with)
    per head, for a status line: an accuracy without its interval reads surer than it is."""
    parts = []
    for attr, m in rm.metrics.items():
        acc = m.get("heldout_pairwise_accuracy")
        l2 = f", L2 {m['l2']:.3g}{' cross-validated' if 'chosen by' in m.get('l2_note', '') else ''}" if "l2" in m else ""
        if acc is None or not np.isfinite(acc):
            parts.append((attr, f"not measured ({m.get('heldout_note', 'no held-out pairs')}{l2})"))
            continue
        ci = f" [{m['heldout_ci'][0]:.2f}, {m['heldout_ci'][1]:.2f}]" if m.get("heldout_ci") else ", no interval"
        n = (f"n {m['n_test_pairs']} held-out pairs of {m['n_test']} responses" if "n_test_pairs" in m
             else f"n {m.get('n_test', '?')} held out")
        parts.append((attr, f"{acc:.2f}{ci} ({n}{l2})"))
    return parts


def vote_direction(rm: RewardModel, comparisons: Sequence[AspectComparison], features_a: np.ndarray, features_b: np.ndarray,
                   overall: str, l2: float = 1.0) -> dict[str, float] | None:
    """The DPA direction the overall votes imply: a unit vector v over the aspect heads with
    P(A wins overall) = sigmoid(c · vᵀ(r(A) − r(B))), fitted by logistic regression (None without aspects)."""
    aspects = [a for a in rm.attributes if a != overall]
    rows = [i for i, c in enumerate(comparisons) if c.aspect == overall]
    if not aspects or not rows:
        return None
    cols = [rm.index(a) for a in aspects]
    diff = (rm.score_features(features_a[rows]) - rm.score_features(features_b[rows]))[:, cols]
    a_wins = np.array([comparisons[i].winner == "A" for i in rows])
    try:
        w = fit_bt_head(diff, np.zeros_like(diff), a_wins, l2)
    except DataError:
        return None
    norm = float(np.linalg.norm(w))
    return {a: float(x / norm) for a, x in zip(aspects, w, strict=True)} if norm > 0 else None


def train_reward_model_from_session(lm: LoadedModel, labeling: VoteSource, session: str, *, name: str, layer: int,
                                    overall: str = "overall", min_votes: int = 8, **options: Any) -> RewardModel:
    """Reward heads fitted on a session's votes: ``overall`` on the A/B outcome, one head per judged aspect.

    Held out by prompt; the model records the session, its vote snapshot and the DPA direction
    the overall votes imply over the aspect heads. Refuses (DataError) below ``min_votes``
    usable overall votes, saying how many there are.
    """
    judgments = labeling.judgments(session)  # one read: the snapshot describes exactly these
    pairs = labeling.pairs(session)
    votes = votes_from_judgments(session, pairs, judgments).require(min_votes=min_votes)
    comparisons = comparisons_from_judgments(pairs, judgments, overall=overall)
    _check_name(name)
    if not 1 <= layer <= lm.n_layers:
        raise ConfigError(f"Layer {layer} is out of range for {lm.name} (1..{lm.n_layers}).")
    options.setdefault("split_by_prompt", True)
    feats = featurize(lm, [c.prompt for c in comparisons] * 2, [c.response_a for c in comparisons] + [c.response_b for c in comparisons],
                      layer, system=options.get("system"), cache=options.get("cache"), batch_size=options.get("batch_size", 16),
                      progress=options.get("progress"))
    rm = train_reward_model(lm, name=name, layer=layer, comparisons=comparisons, features=feats, **options)
    n = len(comparisons)
    rm.source = {"session": session, "snapshot": snapshot_of(session, judgments).to_dict(), "overall": overall,
                 "left_out": votes.left_out, "annotators": votes.annotators,
                 "dpa_direction": vote_direction(rm, comparisons, feats[:n], feats[n:], overall)}
    return rm
