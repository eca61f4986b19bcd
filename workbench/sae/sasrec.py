"""SASRec (Kang & McAuley, 2018): a causal self-attention next-item recommender in torch.

The user state is the last position's output; item scores are its dot products with the
item embeddings, so a latent edit of the state moves the whole ranking. Trained with a
full softmax over all items (no negative sampling: every catalog here is small enough),
evaluated leave-one-out: train on all but the last two items, validate on the second to
last, test on the last. Two protocols: full ranking over every item the user has not seen
(ours), and the sampled one of the recommender literature (the target among 99 items the user
never interacted with, drawn with a fixed seed), each next to training-split popularity, so
results compare both with papers and with an honest floor.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from workbench.errors import ModelError
from workbench.files import atomic_path
from workbench.sae.interactions import Interactions

CONFIG_FILE = "sasrec_config.json"
WEIGHTS_FILE = "sasrec.safetensors"


@dataclass
class SASRecConfig:
    n_items: int
    max_len: int = 50
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 1
    dropout: float = 0.2


class SASRec(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, dim_feedforward=cfg.d_model, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """``[batch, max_len]`` item indices (left-padded with 0) → states ``[batch, max_len, d]``."""
        length = seqs.shape[1]
        x = self.item_emb(seqs) * math.sqrt(self.cfg.d_model) + self.pos_emb(torch.arange(length, device=seqs.device))
        x = self.drop(x) * (seqs > 0).unsqueeze(-1)
        causal = torch.triu(torch.full((length, length), float("-inf"), device=seqs.device), diagonal=1)
        h = self.encoder(x, mask=causal, is_causal=True)
        return self.norm(h)

    def scores(self, states: torch.Tensor) -> torch.Tensor:
        """Item scores for user states ``[..., d]`` → ``[..., n_items + 1]`` (column 0 is padding)."""
        return states @ self.item_emb.weight.T

    def save(self, folder: Path) -> None:
        with atomic_path(folder) as tmp:  # the config marks a finished model: never beside half its weights
            tmp.mkdir()
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(asdict(self.cfg), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> SASRec:
        folder = Path(folder)
        if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
            raise ModelError(f"{folder} is not a saved SASRec model (needs {CONFIG_FILE} and {WEIGHTS_FILE}).",
                             hint="Train one with `workbench sae recsae` or `train_sasrec()`.")
        model = cls(SASRecConfig(**json.loads((folder / CONFIG_FILE).read_text())))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model.eval()


def left_pad(seq: np.ndarray, max_len: int) -> np.ndarray:
    out = np.zeros(max_len, dtype=np.int64)
    tail = seq[-max_len:]
    if len(tail):
        out[-len(tail):] = tail
    return out


def training_windows(sequences: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets from each training sequence, in windows of ``max_len`` + 1."""
    inputs, targets = [], []
    for seq in sequences:
        for end in range(len(seq), 1, -max_len):
            window = seq[max(0, end - max_len - 1):end]
            inputs.append(left_pad(window[:-1], max_len))
            targets.append(left_pad(window[1:], max_len))
    return np.stack(inputs), np.stack(targets)


@dataclass
class RankingMetrics:
    hr_at_10: float
    ndcg_at_10: float
    n_users: int

    def as_dict(self) -> dict[str, float]:
        return {"hr@10": self.hr_at_10, "ndcg@10": self.ndcg_at_10, "n_users": self.n_users}


@torch.inference_mode()
def user_states(model: SASRec, histories: list[np.ndarray], batch_size: int = 256) -> torch.Tensor:
    """Last-position state of each history ``[n, d]`` (histories longer than ``max_len`` are cut)."""
    model.eval()
    out = []
    for start in range(0, len(histories), batch_size):
        batch = torch.from_numpy(np.stack([left_pad(h, model.cfg.max_len) for h in histories[start:start + batch_size]]))
        out.append(model(batch)[:, -1])
    return torch.cat(out) if out else torch.zeros(0, model.cfg.d_model)


def seen_mask(histories: list[np.ndarray], n_items: int) -> torch.Tensor:
    mask = torch.zeros(len(histories), n_items + 1, dtype=torch.bool)
    for row, h in enumerate(histories):
        mask[row, torch.from_numpy(h)] = True
    mask[:, 0] = True
    return mask


def rank_metrics(scores: torch.Tensor, targets: np.ndarray, histories: list[np.ndarray], k: int = 10) -> RankingMetrics:
    """HR@k and NDCG@k of each target among all items the user has not interacted with."""
    scores = scores.clone()
    scores[seen_mask(histories, scores.shape[1] - 1)] = float("-inf")
    target = torch.from_numpy(targets)
    target_score = scores.gather(1, target[:, None])
    rank = (scores > target_score).sum(1)  # 0-based
    hit = rank < k
    ndcg = torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), torch.zeros_like(rank, dtype=torch.float))
    return RankingMetrics(float(hit.float().mean()), float(ndcg.mean()), len(targets))


def sample_negatives(sequences: list[np.ndarray], n_items: int, n: int = 99, seed: int = 0) -> list[np.ndarray]:
    """Per user, ``n`` distinct items they never interacted with (fewer if the catalog runs out), fixed seed."""
    rng = np.random.default_rng(seed)
    out = []
    for seq in sequences:
        unseen = np.ones(n_items + 1, dtype=bool)
        unseen[0] = False
        unseen[seq] = False
        pool = np.flatnonzero(unseen)
        out.append(rng.choice(pool, size=min(n, len(pool)), replace=False))
    return out


def sampled_rank_metrics(scores: torch.Tensor, targets: np.ndarray, negatives: list[np.ndarray], k: int = 10) -> RankingMetrics:
    """HR@k and NDCG@k of each target among its own sampled negatives (the 1 + 99 protocol)."""
    rank = torch.tensor([int((scores[row, torch.from_numpy(neg)] > scores[row, int(t)]).sum()) for row, (t, neg)
                         in enumerate(zip(targets, negatives, strict=True))])
    hit = rank < k
    ndcg = torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), torch.zeros_like(rank, dtype=torch.float))
    return RankingMetrics(float(hit.float().mean()), float(ndcg.mean()), len(targets))


def popularity_scores(data: Interactions, n_rows: int, seed: int = 0) -> torch.Tensor:
    """Training-split item counts (all but each user's last two items), ties broken at random with a fixed seed.

    Counts are integers, so a jitter in [0, 1) orders equal counts without reordering
    different ones; without it every tie would count as a hit (``rank_metrics`` ranks ties
    optimistically) and the floor would look higher than it is.
    """
    counts = np.bincount(np.concatenate([s[:-2] for s in data.sequences]), minlength=data.n_items + 1).astype(np.float64)
    jitter = np.random.default_rng(seed).random(data.n_items + 1)
    return torch.from_numpy(np.tile(counts + jitter, (n_rows, 1)).astype(np.float32))


def leave_one_out(data: Interactions, which: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Leave-one-out: ``test`` predicts the last item from the rest, ``valid`` the one before."""
    cut = 1 if which == "test" else 2
    return [s[:-cut] for s in data.sequences], np.array([s[-cut] for s in data.sequences])


@torch.inference_mode()
def evaluate(model: SASRec, data: Interactions, which: str = "test") -> RankingMetrics:
    """Full-ranking metrics of one leave-one-out split (what training selects epochs by)."""
    histories, targets = leave_one_out(data, which)
    return rank_metrics(model.scores(user_states(model, histories)), targets, histories)


@torch.inference_mode()
def evaluate_protocols(model: SASRec, data: Interactions, which: str = "test", *, n_negatives: int = 99,
                       seed: int = 0) -> dict[str, float]:
    """Full ranking and sampled ranking (``sampled_``), each for SASRec and popularity (``popularity_``).

    Model and popularity are ranked against the same sampled negatives.
    """
    histories, targets = leave_one_out(data, which)
    negatives = sample_negatives(data.sequences, data.n_items, n_negatives, seed)
    model_scores, popular = model.scores(user_states(model, histories)), popularity_scores(data, len(histories), seed)
    out: dict[str, float] = {"n_users": len(targets), "sampled_negatives": n_negatives}
    for prefix, scores in (("", model_scores), ("popularity_", popular)):
        full, sampled = rank_metrics(scores, targets, histories), sampled_rank_metrics(scores, targets, negatives)
        out.update({f"{prefix}hr@10": full.hr_at_10, f"{prefix}ndcg@10": full.ndcg_at_10,
                    f"{prefix}sampled_hr@10": sampled.hr_at_10, f"{prefix}sampled_ndcg@10": sampled.ndcg_at_10})
    return out


CHECKPOINT_FILE = "checkpoint.pt"


def train_sasrec(data: Interactions, cfg: SASRecConfig | None = None, *, epochs: int = 40, batch_size: int = 64,
                 lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0, eval_every: int = 5,
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 checkpoint: Path | None = None) -> tuple[SASRec, list[dict[str, float]], bool]:
    """Train on every user's sequence minus the last two items; keep the best validation NDCG@10.

    Returns ``(model, history, finished)``. A stop (checked between batches) writes ``checkpoint``
    (weights, optimizer, epochs done, best so far, the shuffling generator) and returns
    ``finished=False``; a later call with the same ``checkpoint`` continues from the epoch it
    stopped in, so a resumed run trains its full ``epochs`` instead of keeping a half-trained model.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = cfg or SASRecConfig(n_items=data.n_items)
    model = SASRec(cfg)
    inputs, targets = training_windows([s[:-2] for s in data.sequences], cfg.max_len)
    x_all, y_all = torch.from_numpy(inputs), torch.from_numpy(targets)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    history: list[dict[str, float]] = []
    best, best_state, done = -1.0, None, 0
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)  # our own file, written below
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        done, best, best_state, history = saved["epochs_done"], saved["best"], saved["best_state"], saved["history"]
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
    for epoch in range(done + 1, epochs + 1):
        model.train()
        rng_at_epoch, torch_rng_at_epoch = rng.bit_generator.state, torch.get_rng_state()
        t0, total, count = time.perf_counter(), 0.0, 0
        for idx in np.array_split(rng.permutation(len(x_all)), max(1, len(x_all) // batch_size)):
            if should_stop and should_stop():  # this epoch is redone on resume, from its own shuffle
                if checkpoint is not None:
                    with atomic_path(checkpoint) as tmp:
                        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epochs_done": epoch - 1,
                                    "best": best, "best_state": best_state, "history": history, "rng": rng_at_epoch,
                                    "torch_rng": torch_rng_at_epoch}, tmp)
                return model.eval(), history, False
            x, y = x_all[idx], y_all[idx]
            logits = model.scores(model(x))
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        row = {"epoch": epoch, "loss": total / count, "epoch_s": time.perf_counter() - t0}
        if epoch % eval_every == 0 or epoch == epochs:
            valid = evaluate(model, data, "valid")
            row.update({"valid_hr@10": valid.hr_at_10, "valid_ndcg@10": valid.ndcg_at_10})
            if valid.ndcg_at_10 > best:
                best, best_state = valid.ndcg_at_10, {k: v.clone() for k, v in model.state_dict().items()}
        history.append(row)
        if on_epoch:
            on_epoch(epoch, row)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history, True


def below_popularity_warning(metrics: dict[str, float], prefix: str = "test_") -> str | None:
    """A warning when the recommender does not beat popularity on full-ranking HR@10.

    Its latents then describe a model that learned less than item counts do, so a concept
    dictionary read from them says little about user preferences.
    """
    model, popular = metrics.get(f"{prefix}hr@10"), metrics.get(f"{prefix}popularity_hr@10")
    if model is None or popular is None or model > popular:
        return None
    return (f"The recommender does not beat popularity: HR@10 {model:.3f} vs popularity's {popular:.3f}. Its SAE latents describe "
            "a model that learned less than item counts; train longer (epochs) or check the data before reading the concepts.")


def all_prefix_states(model: SASRec, data: Interactions, *, drop_last: int = 1,
                      min_prefix: int = 1) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """States at every position of every user's history (one forward pass per window).

    Histories are cut into windows of ``max_len`` from the end, as in training, so a position
    early in a later window sees only the items since its window began (the model's view
    during training), while ``user_states`` gives the last position the full ``max_len``.
    Returns states ``[n, d]``, the user row and the prefix end (exclusive) of each state, so
    the sequence behind state ``j`` is ``data.sequences[user[j]][:end[j]]``.
    """
    max_len = model.cfg.max_len
    windows, owners, ends = [], [], []
    for u, seq in enumerate(data.sequences):
        seq = seq[: len(seq) - drop_last] if drop_last else seq
        for end in range(len(seq), min_prefix - 1, -max_len):
            start = max(0, end - max_len)
            windows.append((u, start, end))
    states, users, prefix_ends = [], [], []
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(windows), 256):
            chunk = windows[lo:lo + 256]
            batch = torch.from_numpy(np.stack([left_pad(data.sequences[u][s:e], max_len) for u, s, e in chunk]))
            h = model(batch)
            for row, (u, s, e) in enumerate(chunk):
                n = e - s
                first = max(min_prefix, s + 1) - s  # positions whose prefix is long enough
                if first > n:
                    continue
                states.append(h[row, max_len - n + first - 1:])
                users.append(np.full(n - first + 1, u))
                prefix_ends.append(np.arange(s + first, e + 1))
    owners = np.concatenate(users) if users else np.zeros(0, dtype=np.int64)
    ends = np.concatenate(prefix_ends) if prefix_ends else np.zeros(0, dtype=np.int64)
    return torch.cat(states) if states else torch.zeros(0, model.cfg.d_model), owners, ends
