"""Train TopK / BatchTopK sparse autoencoders with sae-lens on activations we already hold.

sae-lens's ``SAETrainer`` runs the loop (aux loss for dead latents, sparsity tracking,
checkpoints); we only supply what it lacks here: a data provider, a held-out evaluation
(FVU, L0, dead fraction) and a metadata file. The provider streams: activations come as one
matrix or as a list of shards (memory-mapped cache entries, e.g. from
``workbench.activations.distributed``), read one shard at a time into a mixing buffer that
is shuffled and half emptied, as sae-lens's own activation store does, so a corpus larger
than memory trains in bounded memory. The
saved folder is sae-lens's inference format, so ``sae_lens.SAE.load_from_disk`` opens it
(a BatchTopK SAE is saved as JumpReLU, as sae-lens does).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.errors import ConfigError, ModelError
from workbench.sae.job_configs import SAESpec

META_FILE = "workbench_sae.json"


@dataclass
class SAEMetrics:
    fvu: float
    l0: float
    dead_fraction: float
    n_eval: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class TrainedSAE:
    sae: Any
    metrics: SAEMetrics
    folder: Path | None
    samples_per_s: float
    history: list[dict[str, float]] = field(default_factory=list)


Rows = torch.Tensor | np.ndarray | Sequence[np.ndarray]


def streamed_batches(shards: Sequence[np.ndarray], rows: Sequence[np.ndarray], batch_size: int, seed: int,
                     buffer_rows: int) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of ``shards[i][rows[i]]``, holding at most one shard plus the buffer.

    Each epoch visits the shards in a fresh random order. Rows collect in a buffer; once it
    holds ``buffer_rows`` (or the epoch's last shard is in) it is shuffled and batches are
    handed out until half of it (at the epoch's end: less than a batch) is left to mix with
    the next shards.
    """
    gen = torch.Generator().manual_seed(seed)
    buffer = torch.empty(0, shards[0].shape[1])
    while True:
        order = torch.randperm(len(shards), generator=gen).tolist()
        for j, i in enumerate(order):
            buffer = torch.cat([buffer, torch.from_numpy(np.asarray(shards[i][rows[i]], dtype=np.float32))])
            last = j == len(order) - 1
            if len(buffer) < buffer_rows and not last:
                continue
            buffer = buffer[torch.randperm(len(buffer), generator=gen)]
            n_out = (len(buffer) if last else max(0, len(buffer) - buffer_rows // 2)) // batch_size * batch_size
            yield from buffer[:n_out].split(batch_size)
            buffer = buffer[n_out:]


def split_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * fraction)))
    return np.sort(order[cut:]), np.sort(order[:cut])


def _sae_config(spec: SAESpec, d_in: int, metadata: dict[str, Any]) -> Any:
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAEConfig  # sae-lens: only in _sae_config()
    from sae_lens.saes.topk_sae import TopKTrainingSAEConfig  # sae-lens: only in _sae_config()

    cls = TopKTrainingSAEConfig if spec.architecture == "topk" else BatchTopKTrainingSAEConfig
    cfg = cls(d_in=d_in, d_sae=spec.expansion * d_in, k=spec.k, dtype="float32", device="cpu",
              normalize_activations="expected_average_only_in")
    for key in ("model_name", "hook_name"):
        if key in metadata:
            setattr(cfg.metadata, key, metadata[key])
    return cfg


@torch.no_grad()
def _init_decoder_bias(sae: Any, acts: torch.Tensor) -> None:
    """Start b_dec at the mean input, in the units the trainer's norm scaling will use.

    Without it a large shared offset (a LayerNorm output has one) lets the same k latents
    win on every input and the rest die.
    """
    scale = (acts.shape[1] ** 0.5) / float(acts.norm(dim=1).mean())
    sae.b_dec.copy_(acts.mean(0) * scale)


@torch.inference_mode()
def evaluate_sae(sae: Any, acts: torch.Tensor, batch_size: int = 4096) -> SAEMetrics:
    """Fraction of variance unexplained, mean L0 and the share of latents that never fire."""
    sse = 0.0
    fired = None
    l0 = 0.0
    mean = acts.mean(0)
    total_var = float(((acts - mean) ** 2).sum())
    for start in range(0, len(acts), batch_size):
        x = acts[start:start + batch_size]
        f = sae.encode(x)
        sse += float(((sae.decode(f) - x) ** 2).sum())
        active = f > 0
        l0 += float(active.sum())
        fired = active.any(0) if fired is None else fired | active.any(0)
    return SAEMetrics(fvu=sse / max(total_var, 1e-12), l0=l0 / len(acts),
                      dead_fraction=float((~fired).float().mean()) if fired is not None else 1.0, n_eval=len(acts))


def _as_shards(acts: Rows) -> list[np.ndarray]:
    """One matrix is one shard; shards stay as given (memory maps are not read here)."""
    if isinstance(acts, (torch.Tensor, np.ndarray)):
        return [np.asarray(acts, dtype=np.float32)]
    return list(acts)


def _check_shards(shards: list[np.ndarray]) -> int:
    """Every shard a finite ``[n, d]`` matrix of one width; returns ``d``. Reads each shard once."""
    if not shards:
        raise ConfigError("There are no activation shards to train on.")
    d = shards[0].shape[1] if shards[0].ndim == 2 else -1
    for i, shard in enumerate(shards):
        where = f" (shard {i})" if len(shards) > 1 else ""
        if shard.ndim != 2 or shard.shape[1] != d or not np.isfinite(shard).all():
            raise ConfigError(f"Activations must be a finite [n, d] matrix{where}; got shape {tuple(shard.shape)}"
                              + ("" if shard.ndim != 2 or shard.shape[1] != d else " with non-finite values") + ".")
    return int(d)


def _held_out_split(shards: list[np.ndarray], spec: SAESpec) -> tuple[list[np.ndarray], torch.Tensor]:
    """Per shard, training row indices; and the held-out rows (at most ``max_eval_rows``) in memory."""
    total = sum(len(s) for s in shards)
    train_rows, held_out = [], []
    for i, shard in enumerate(shards):
        train, evaluate = split_rows(len(shard), spec.held_out_fraction, spec.seed + i)
        train_rows.append(train)
        held_out.append(np.asarray(shard[evaluate[:max(1, -(-spec.max_eval_rows * len(shard) // total))]], dtype=np.float32))
    return train_rows, torch.from_numpy(np.concatenate(held_out))


def _sample(shards: list[np.ndarray], rows: list[np.ndarray], n: int) -> torch.Tensor:
    """Up to ``n`` training rows, an equal share from each shard (for the decoder-bias start)."""
    per = -(-n // len(shards))
    return torch.from_numpy(np.concatenate([np.asarray(s[r[:per]], dtype=np.float32) for s, r in zip(shards, rows, strict=True)]))


def train_sae(acts: Rows, spec: SAESpec, *, folder: str | Path | None = None,
              metadata: dict[str, Any] | None = None, on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
              should_stop: Callable[[], bool] | None = None, log_every: int = 50) -> TrainedSAE:
    """Train on a held-in split of ``acts`` ``[n, d_in]`` (or a list of such shards), evaluate on the rest, save to ``folder``.

    ``on_progress(samples_done, total, row)`` gets the loss, the batch's FVU and L0 every
    ``log_every`` steps; ``should_stop()`` ends training early (the SAE so far is still
    evaluated and saved).
    """
    from sae_lens.config import SAETrainerConfig  # sae-lens: only in train_sae()
    from sae_lens.saes.sae import TrainingSAE  # sae-lens: only in train_sae()
    from sae_lens.training.sae_trainer import SAETrainer  # sae-lens: only in train_sae()

    shards = _as_shards(acts)
    d_in = _check_shards(shards)
    n_rows = sum(len(s) for s in shards)
    spec.check_for(n_rows, d_in)
    torch.manual_seed(spec.seed)
    train_rows, held_out = _held_out_split(shards, spec)
    n_train = sum(len(r) for r in train_rows)
    metadata = dict(metadata or {})
    sae = TrainingSAE.from_dict(_sae_config(spec, d_in, metadata).to_dict())
    checkpoint_path = str(Path(folder) / "checkpoints") if folder and spec.n_checkpoints else None
    trainer_cfg = SAETrainerConfig(
        total_training_samples=spec.training_samples, train_batch_size_samples=spec.batch_size, lr=spec.lr, lr_end=spec.lr,
        lr_scheduler_name="constant", dead_feature_window=max(1, spec.dead_window_samples // spec.batch_size),
        feature_sampling_window=max(1, spec.dead_window_samples // spec.batch_size), n_checkpoints=spec.n_checkpoints,
        checkpoint_path=checkpoint_path, n_batches_for_norm_estimate=min(100, max(1, n_train // spec.batch_size)),
    )
    _init_decoder_bias(sae, _sample(shards, train_rows, spec.buffer_rows))
    batches = streamed_batches(shards, train_rows, spec.batch_size, spec.seed, spec.buffer_rows)
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches)
    history: list[dict[str, float]] = []
    original_step = trainer.step

    def step(batch: torch.Tensor) -> Any:  # report through sae-lens's own step seam
        out = original_step(batch)
        n = trainer.n_training_steps
        if n % log_every == 0 or trainer.n_training_samples >= spec.training_samples:
            with torch.no_grad():
                err = ((out.sae_out - out.sae_in) ** 2).sum()
                var = ((out.sae_in - out.sae_in.mean(0)) ** 2).sum()
                row = {"step": n, "samples": trainer.n_training_samples, "loss": float(out.loss),
                       "fvu": float(err / var.clamp_min(1e-12)), "l0": float((out.feature_acts > 0).sum(-1).float().mean()),
                       "dead_fraction": float(trainer.dead_neurons.float().mean())}
            history.append(row)
            if on_progress:
                on_progress(trainer.n_training_samples, spec.training_samples, row)
        if should_stop and should_stop():
            trainer.cfg.total_training_samples = trainer.n_training_samples  # ends fit() after this step
        return out

    trainer.step = step  # type: ignore[method-assign]
    t0 = time.perf_counter()
    trained = trainer.fit()
    rate = trainer.n_training_samples / max(time.perf_counter() - t0, 1e-9)
    trained.eval()
    metrics = evaluate_sae(trained, held_out)
    out = None
    if folder is not None:
        out = Path(folder)
        trained.save_inference_model(out)
        (out / META_FILE).write_text(json.dumps({
            "spec": asdict(spec), "metrics": metrics.as_dict(), "samples_per_s": rate, "d_in": d_in,
            "n_rows": n_rows, "n_shards": len(shards), **metadata}, indent=2, default=str))
    return TrainedSAE(sae=load_sae(out) if out else trained, metrics=metrics, folder=out, samples_per_s=rate, history=history)


def load_sae(folder: str | Path) -> Any:
    """An SAE saved by ``train_sae`` (or any sae-lens inference folder), for inference."""
    from sae_lens import SAE  # sae-lens: only in load_sae()

    folder = Path(folder)
    if not (folder / "cfg.json").exists():
        raise ModelError(f"{folder} holds no sae-lens SAE (cfg.json is missing).", hint="Train one with `workbench sae train` first.")
    return SAE.load_from_disk(str(folder), device="cpu").eval()


@torch.inference_mode()
def encode(sae: Any, acts: torch.Tensor | np.ndarray, batch_size: int = 8192) -> torch.Tensor:
    """Latent activations ``[n, d_sae]`` in batches."""
    x = torch.as_tensor(np.asarray(acts, dtype=np.float32))
    return torch.cat([sae.encode(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]) if len(x) else torch.zeros(0, sae.cfg.d_sae)
