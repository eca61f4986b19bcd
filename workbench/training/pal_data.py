"""Preference data for PAL: users' pairs as feature-table indices, and planted-group data.

Texts are embedded once by a frozen local model (any checkpoint the workbench loads; the
default is the bundled sentence embedder), mean-pooled and L2-normalised, through the
activation cache, so a second run on the same data reads features from disk.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.activations.extract import extract_activations
from workbench.data.types import Pair
from workbench.errors import DataError
from workbench.training.pal import PrefData


def embed_texts(lm: Any, texts: Sequence[str], *, layer: int | None = None, pooling: str = "mean", cache: Any = None,
                batch_size: int = 32) -> np.ndarray:
    """Frozen features [n, d]: one layer's pooled residual stream, L2-normalised."""
    layer = lm.n_layers if layer is None else layer
    acts = extract_activations(lm, list(texts), layers=[layer], pooling=pooling, cache=cache, batch_size=batch_size).get(layer)
    acts = np.asarray(acts, dtype=np.float32)
    return acts / np.maximum(np.linalg.norm(acts, axis=1, keepdims=True), 1e-8)


@dataclass
class UserPairs:
    """Features plus the map from user index back to user id."""

    data: PrefData
    users: list[str]  # index → user id


def build_pref_data(pairs: Sequence[Pair], embed: Callable[[list[str]], np.ndarray], *, user_field: str = "user",
                    users: list[str] | None = None, source: str = "") -> UserPairs:
    """Index labelled pairs by user; ``users`` fixes the user order (new ids are appended)."""
    labelled = [p for p in pairs if p.preferred in ("A", "B")]
    if not labelled:
        raise DataError(f"None of the {len(pairs)} pairs is labelled 'A' or 'B'.", path=source or None,
                        hint="PAL trains on labelled pairs with a user id per pair.")
    missing = next((i for i, p in enumerate(labelled) if user_field not in p.metadata), None)
    if missing is not None:
        raise DataError(f"Pair {labelled[missing].id!r} has no user id.", path=source or None, field=user_field,
                        hint=f"Every pair needs a '{user_field}' column (or set user_field to the column that holds it).")
    user_ids = list(users or [])
    index = {u: i for i, u in enumerate(user_ids)}
    for p in labelled:
        u = str(p.metadata[user_field])
        if u not in index:
            index[u] = len(user_ids)
            user_ids.append(u)
    prompt_texts = list(dict.fromkeys(p.prompt_text for p in labelled))
    item_texts = list(dict.fromkeys(t for p in labelled for t in (p.response_a, p.response_b)))
    p_index = {t: i for i, t in enumerate(prompt_texts)}
    i_index = {t: i for i, t in enumerate(item_texts)}
    feats = embed(prompt_texts + item_texts)
    data = PrefData(
        items=torch.as_tensor(feats[len(prompt_texts):]), prompts=torch.as_tensor(feats[:len(prompt_texts)]),
        prompt=torch.tensor([p_index[p.prompt_text] for p in labelled]),
        a=torch.tensor([i_index[p.response_a] for p in labelled]), b=torch.tensor([i_index[p.response_b] for p in labelled]),
        user=torch.tensor([index[str(p.metadata[user_field])] for p in labelled]),
        label=torch.tensor([1.0 if p.preferred == "A" else 0.0 for p in labelled]),
    )
    return UserPairs(data, user_ids)


@dataclass
class Planted:
    """Synthetic data with known groups: what PAL should recover."""

    data: PrefData
    group: np.ndarray  # [n_users] dominant true group
    weights: np.ndarray  # [n_users, K] true simplex weights
    oracle: np.ndarray  # [n] the true model's prediction (1 = a)


def planted_groups(*, n_groups: int = 3, n_users: int = 60, pairs_per_user: int = 80, d: int = 16, n_items: int = 400,
                   beta: float = 5.0, alpha: float = 0.0, seed: int = 0) -> Planted:
    """Items in R^d; group k likes direction θ_k; user i's utility is (Σ_k w_ik θ_k)·x.

    ``alpha`` = 0 makes every user pure (one group); > 0 draws w_i ~ Dirichlet(alpha).
    Labels are drawn from σ(beta·Δu), so even the true model (the oracle) is not perfect.
    """
    rng = np.random.default_rng(seed)
    items = (rng.normal(size=(n_items, d)) / np.sqrt(d)).astype(np.float32)
    theta = rng.normal(size=(n_groups, d))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    group = np.arange(n_users) % n_groups
    weights = np.eye(n_groups)[group] if alpha <= 0 else rng.dirichlet([alpha] * n_groups, size=n_users)
    if alpha > 0:
        group = weights.argmax(1)
    user = np.repeat(np.arange(n_users), pairs_per_user)
    a, b = rng.integers(0, n_items, size=(2, len(user)))
    utility = items @ (weights @ theta).T  # [n_items, n_users]
    du = utility[a, user] - utility[b, user]
    label = (rng.random(len(user)) < 1 / (1 + np.exp(-beta * np.sqrt(d) * du))).astype(np.float32)
    data = PrefData(torch.as_tensor(items), torch.zeros(1, 1), torch.zeros(len(user), dtype=torch.long), torch.as_tensor(a),
                    torch.as_tensor(b), torch.as_tensor(user), torch.as_tensor(label))
    return Planted(data, group, weights, (du > 0).astype(np.float32))
