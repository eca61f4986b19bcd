"""PAL pluralistic reward models on frozen features, and the Bradley–Terry baseline.

PAL (Chen et al., 2024, "PAL: Pluralistic Alignment Framework") models a population whose
preferences differ: K shared prototypes, and each user a point on the simplex over them.

- PAL-A (ideal point): a map g sends (prompt, response) features to a latent space; user i
  has the ideal point u_i = Σ_k w_ik p_k; the response nearer to u_i wins
  (score = −‖g(x, y) − u_i‖²).
- PAL-B (mixture of prompt mappings): K prompt maps h_k; user i's view of prompt x is
  Σ_k w_ik h_k(x); score = exp(s)·cos(g(y), Σ_k w_ik h_k(x)) with a learned logit scale s.
- Bradley–Terry: one reward r(x, y) for everybody (what a single reward model learns).

P(a ≻ b | user) = σ(score(a) − score(b)). Everything works on index tensors into feature
tables (items, prompts), so 10k pairs train in seconds on a CPU. Few-shot adaptation to a
new user trains only that user's K simplex weights.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass
class PrefData:
    """Pairs as indices into feature tables; ``label`` is 1 when response a was preferred."""

    items: torch.Tensor  # [n_items, d] response features
    prompts: torch.Tensor  # [n_prompts, dp] prompt features
    prompt: torch.Tensor  # [n] long
    a: torch.Tensor  # [n] long
    b: torch.Tensor  # [n] long
    user: torch.Tensor  # [n] long
    label: torch.Tensor  # [n] float

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def subset(self, idx: torch.Tensor | np.ndarray) -> PrefData:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return PrefData(self.items, self.prompts, self.prompt[idx], self.a[idx], self.b[idx], self.user[idx], self.label[idx])


class BTModel(nn.Module):
    """A single reward r(x, y) = MLP([x; y]) shared by all users."""

    def __init__(self, d_item: int, d_prompt: int, hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the global RNG alone
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(d_item + d_prompt, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def score(self, data: PrefData, items: torch.Tensor, users: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([data.prompts[prompts], data.items[items]], -1)).squeeze(-1)


class PALModel(nn.Module):
    """PAL-A or PAL-B with ``n_users`` users on the simplex over ``k`` prototypes."""

    def __init__(self, d_item: int, d_prompt: int, n_users: int, k: int, dim: int = 16, variant: str = "A",
                 hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        if variant not in ("A", "B"):
            raise ValueError(f"variant must be 'A' or 'B', got {variant!r}")
        g = torch.Generator().manual_seed(seed)
        self.variant, self.k, self.dim = variant, k, dim
        d_in = d_item + d_prompt if variant == "A" else d_item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.item_map = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.user_logits = nn.Parameter(0.01 * torch.randn(n_users, k, generator=g))
        if variant == "A":
            self.prototypes = nn.Parameter(torch.randn(k, dim, generator=g))
        else:
            self.prompt_maps = nn.Parameter(torch.randn(k, d_prompt, dim, generator=g) / d_prompt**0.5)
            self.prompt_bias = nn.Parameter(torch.randn(k, dim, generator=g))
            self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    @property
    def n_users(self) -> int:
        return int(self.user_logits.shape[0])

    def user_weights(self, users: torch.Tensor | None = None) -> torch.Tensor:
        """Points on the simplex (softmax of free logits)."""
        logits = self.user_logits if users is None else self.user_logits[users]
        return torch.softmax(logits, -1)

    def ideal_points(self) -> torch.Tensor:
        """PAL-A: every user's ideal point u_i = Σ_k w_ik p_k in the latent space."""
        return self.user_weights() @ self.prototypes

    def score(self, data: PrefData, items: torch.Tensor, users: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        w = self.user_weights(users)
        if self.variant == "A":
            z = self.item_map(torch.cat([data.prompts[prompts], data.items[items]], -1))
            return -((z - w @ self.prototypes) ** 2).sum(-1)
        z = nn.functional.normalize(self.item_map(data.items[items]), dim=-1)
        per_k = torch.einsum("nd,kde->nke", data.prompts[prompts], self.prompt_maps) + self.prompt_bias
        u = nn.functional.normalize(torch.einsum("nk,nke->ne", w, per_k), dim=-1)
        return self.logit_scale.exp() * (z * u).sum(-1)

    def add_users(self, n: int) -> torch.Tensor:
        """Append ``n`` new users at the simplex centre; returns their ids."""
        start = self.n_users
        self.user_logits = nn.Parameter(torch.cat([self.user_logits.data, torch.zeros(n, self.k)]))
        return torch.arange(start, start + n)


def pair_logits(model: nn.Module, data: PrefData) -> torch.Tensor:
    return model.score(data, data.a, data.user, data.prompt) - model.score(data, data.b, data.user, data.prompt)


@dataclass
class FitHistory:
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def fit(model: nn.Module, data: PrefData, *, epochs: int = 30, lr: float = 3e-3, batch_size: int = 512, weight_decay: float = 1e-4,
        seed: int = 0, params: list[nn.Parameter] | None = None, on_epoch: object = None) -> FitHistory:
    """Minibatch Adam on the pairwise logistic loss; ``params`` restricts what trains.

    ``on_epoch(epoch, loss, accuracy)`` may return True to stop early (a cancelled job).
    The layers are tiny, so intra-op threads only add overhead (10× slower on a busy
    machine): training runs single-threaded and restores the thread count afterwards.
    """

    with _one_thread():
        return _fit(model, data, epochs, lr, batch_size, weight_decay, seed, params, on_epoch)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded, restoring the thread count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fit(model: nn.Module, data: PrefData, epochs: int, lr: float, batch_size: int, weight_decay: float, seed: int,
         params: list[nn.Parameter] | None, on_epoch: object) -> FitHistory:
    if params is None:
        # User weights get a 10× learning rate and no decay: each user sees few pairs, and
        # users that commit to a prototype early keep every prototype in use.
        users = [p for n, p in model.named_parameters() if n == "user_logits"]
        rest = [p for n, p in model.named_parameters() if n != "user_logits"]
        groups = [{"params": rest}] + ([{"params": users, "lr": 10 * lr, "weight_decay": 0.0}] if users else [])
    else:
        groups = [{"params": params}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    hist = FitHistory()
    n = len(data)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=g)
        total, correct = 0.0, 0
        for start in range(0, n, batch_size):
            batch = data.subset(perm[start:start + batch_size])
            logits = pair_logits(model, batch)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
            correct += int(((logits > 0).float() == batch.label).sum())
        hist.loss.append(total / n)
        hist.accuracy.append(correct / n)
        hist.seconds.append(time.perf_counter() - t0)
        if on_epoch is not None and on_epoch(epoch, hist.loss[-1], hist.accuracy[-1]):
            break
    model.eval()
    return hist


def accuracy(model: nn.Module, data: PrefData) -> float:
    if len(data) == 0:
        return float("nan")
    with torch.inference_mode():
        return float(((pair_logits(model, data) > 0).float() == data.label).float().mean())


def adapt_new_users(model: PALModel, train: PrefData, *, steps: int = 200, lr: float = 0.1) -> None:
    """Few-shot: learn only the weights of the users in ``train`` (everything else frozen)."""
    users = torch.unique(train.user)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    model.user_logits.requires_grad_(True)
    mask = torch.zeros_like(model.user_logits)
    mask[users] = 1.0
    opt = torch.optim.Adam([model.user_logits], lr=lr)
    try:
        with _one_thread():
            for _ in range(steps):
                loss = nn.functional.binary_cross_entropy_with_logits(pair_logits(model, train), train.label)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                model.user_logits.grad *= mask  # only the new users move
                opt.step()
    finally:
        for p, req in frozen:
            p.requires_grad_(req)
    model.eval()
