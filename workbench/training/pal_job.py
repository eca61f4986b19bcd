"""PAL as a job: embed pairs with a frozen model, train PAL-A/PAL-B and a BT baseline,
evaluate seen users and unseen users by number of shots, save models and the latent view.

Resume granularity is one model: each trained model is saved under
``checkpoints/checkpoint-<n>/``; a resumed run loads those and trains the rest (an epoch on
10k pairs takes well under a second on a CPU, so finer checkpoints would cost more than
they save).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from workbench.activations import ActivationCache
from workbench.errors import ConfigError, DataError
from workbench.files import atomic_path
from workbench.jobs.config import parsed
from workbench.jobs.context import JobCancelled, JobContext
from workbench.jobs.registry import JobType
from workbench.models.embedded import EMBEDDER_NAME
from workbench.models.resolve import resolve
from workbench.settings import Settings
from workbench.training.configs import PALJobConfig
from workbench.training.pairs import PairSplit, freeze_session_split, frozen_session_split, load_pairs, session_split
from workbench.training.pal import BTModel, PALModel, PrefData, accuracy, adapt_new_users, fit
from workbench.training.pal_data import build_pref_data, embed_texts

OUTPUT = "pal"
MIN_SESSION_VOTES = 8  # fewer usable votes leave nothing meaningful to hold out per annotator


def validate_pal(cfg: PALJobConfig | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Check the pairs (labelled, with user ids, enough users for k) and the feature model."""
    cfg = parsed(PALJobConfig, cfg)
    # workbench.models imports torch: the CLI builds its flags from this module without it.

    if cfg.session:
        split = session_split(settings, cfg.session, cfg.test_fraction, cfg.seed, min_strength=cfg.min_strength,
                              min_votes=MIN_SESSION_VOTES, min_annotators=2)
        check_late_annotators(cfg, split)
        pairs = session_pal_pairs(split, cfg)
    else:
        pairs = load_pairs(str(cfg.dataset), settings, cfg.format)
    labelled = [p for p in pairs if p.preferred in ("A", "B")]
    if not labelled:
        raise DataError(f"None of the {len(pairs)} pairs is labelled 'A' or 'B'.", path=str(cfg.dataset))
    no_user = [p for p in labelled if cfg.user_field not in p.metadata]
    if no_user:
        raise DataError(f"{len(no_user)} of {len(labelled)} labelled pairs have no user id (first: pair {no_user[0].id!r}).",
                        path=str(cfg.dataset), field=cfg.user_field,
                        hint="PAL learns one point per user: add a user column, or set user_field to the column that holds it.")
    n_users = len({p.metadata[cfg.user_field] for p in labelled})
    if cfg.k > n_users:
        raise ConfigError(f"k = {cfg.k} prototypes for only {n_users} users.", hint="Use k ≤ the number of users.")
    if cfg.dataset and Path(cfg.dataset).expanduser().exists():
        cfg.dataset = str(Path(cfg.dataset).expanduser().resolve())
    cfg.model = cfg.model or EMBEDDER_NAME
    ref = resolve(settings, cfg.model)
    if Path(cfg.model).expanduser().exists():
        cfg.model = str(ref.path.resolve())
    return cfg.to_dict()


def check_late_annotators(cfg: PALJobConfig, split: PairSplit) -> None:
    """Late annotators must be in the session, and at least two annotators must remain seen (PAL vs one BT)."""
    annotators = split.record["annotators"]
    unknown = sorted(set(cfg.late_annotators) - set(annotators))
    if unknown:
        raise ConfigError(f"late_annotators names annotator(s) with no usable vote in session '{cfg.session}': {', '.join(unknown)}.",
                          hint=f"Annotators with usable votes: {', '.join(annotators)}.")
    seen = [a for a in annotators if a not in cfg.late_annotators]
    if len(seen) < 2:
        raise ConfigError(f"Only {len(seen)} annotator(s) remain seen ({', '.join(seen) or 'none'}) after late_annotators; PAL vs one "
                          "Bradley–Terry model needs at least 2.", hint="Mark fewer annotators as late.")


def session_pal_pairs(split: PairSplit, cfg: PALJobConfig) -> list[Any]:
    """A session's votes as PAL pairs: the annotator is the user, held-out prompts are the test split,
    and late annotators are unseen users (their training-prompt votes are the shots pool)."""
    late = set(cfg.late_annotators)
    out = []
    for part, pairs in (("train", split.train), ("test", split.held_out)):
        for p in pairs:
            who = p.metadata["annotator"]
            meta = {**p.metadata, cfg.user_field: who, cfg.split_field: part, cfg.unseen_field: "unseen" if who in late else "seen"}
            out.append(dataclasses.replace(p, metadata=meta))
    return out


def _pairs(job: JobContext) -> list[Any]:
    """The run's pairs; a session run reads its votes once, at first start, and keeps them in the run folder."""
    cfg: PALJobConfig = job.options
    if not cfg.session:
        return load_pairs(str(cfg.dataset), job.settings, cfg.format)
    split = frozen_session_split(job.run_dir)
    if split is None:
        split = session_split(job.settings, cfg.session, cfg.test_fraction, cfg.seed, min_strength=cfg.min_strength,
                              min_votes=MIN_SESSION_VOTES, min_annotators=2)
        freeze_session_split(job.run_dir, split)
        job.set_summary(votes=split.record)
    return session_pal_pairs(split, cfg)


def per_user_accuracy(models: dict[str, torch.nn.Module], test: PrefData, users: list[str]) -> dict[str, dict[str, float]]:
    """Held-out accuracy of every model on each user's own test pairs (users without test pairs are left out)."""
    out = {}
    for i, user in enumerate(users):
        idx = torch.nonzero(test.user == i).flatten()
        if len(idx):
            sub = test.subset(idx)
            out[user] = {"n": int(len(idx)), **{name: accuracy(m, sub) for name, m in models.items()}}
    return out


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """A model's state dict as safetensors (which needs contiguous tensors)."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)


def _hash01(text: str, seed: int) -> float:
    return int.from_bytes(hashlib.sha1(f"{seed}:{text}".encode()).digest()[:8], "big") / 2**64


def split_users_and_pairs(pairs: list[Any], cfg: PALJobConfig) -> dict[str, list[Any]]:
    """seen-train / seen-test / unseen-train (shots pool) / unseen-test, from metadata or hashes."""
    uf, seed = cfg.user_field, cfg.seed
    users = sorted({str(p.metadata[uf]) for p in pairs})
    if any(cfg.unseen_field in p.metadata for p in pairs):
        unseen = {str(p.metadata[uf]) for p in pairs if p.metadata.get(cfg.unseen_field) == "unseen"}
    else:
        unseen = {u for u in users if _hash01(u, seed) < cfg.unseen_fraction}
    out: dict[str, list[Any]] = {"seen_train": [], "seen_test": [], "unseen_train": [], "unseen_test": []}
    for p in pairs:
        split = p.metadata.get(cfg.split_field)
        test = split == "test" if split in ("train", "test") else _hash01(p.id, seed) < cfg.test_fraction
        out[("unseen_" if str(p.metadata[uf]) in unseen else "seen_") + ("test" if test else "train")].append(p)
    return out


def _oracle(pairs: list[Any], field: str) -> float | None:
    if not pairs or any(field not in p.metadata for p in pairs):
        return None
    return float(np.mean([(float(p.metadata[field]) > 0.5) == (p.preferred == "A") for p in pairs]))


def _first_shots(data: PrefData, n: int, seed: int) -> PrefData:
    """Each user's first ``n`` pairs in a seeded order (the same across shot counts)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    keep, count = [], {}
    for i in order.tolist():
        u = int(data.user[i])
        if count.get(u, 0) < n:
            count[u] = count.get(u, 0) + 1
            keep.append(i)
    return data.subset(torch.tensor(sorted(keep), dtype=torch.long))


def latent_view(model: PALModel, users: list[str], groups: dict[str, Any]) -> dict[str, Any]:
    """2-D PCA of PAL-A prototypes and ideal points (PAL-B: of the users' simplex weights)."""
    from sklearn.decomposition import PCA  # scikit-learn: only in latent_view()

    with torch.no_grad():
        weights = model.user_weights().numpy()
        if model.variant == "A":
            points, protos = model.ideal_points().numpy(), model.prototypes.numpy()
        else:
            points, protos = weights, np.eye(model.k)
    pca = PCA(n_components=2).fit(np.vstack([points, protos]))
    return {"variant": model.variant, "prototypes": pca.transform(protos).tolist(), "users": users,
            "points": pca.transform(points).tolist(), "weights": weights.tolist(),
            "groups": [groups.get(u) for u in users]}


def run_pal(job: JobContext) -> str:
    cfg: PALJobConfig = job.options
    s = job.settings
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    pairs = [p for p in _pairs(job) if p.preferred in ("A", "B")]
    parts = split_users_and_pairs(pairs, cfg)
    job.progress(0, 1, "embedding texts with the frozen model")
    lm = job.load_model(cfg.model)
    cache = ActivationCache(s.cache_dir)
    texts = list(dict.fromkeys([p.prompt_text for p in pairs] + [t for p in pairs for t in (p.response_a, p.response_b)]))
    table = dict(zip(texts, embed_texts(lm, texts, layer=cfg.layer, pooling=cfg.pooling, cache=cache), strict=True))
    del lm

    def embed(batch: list[str]) -> np.ndarray:
        return np.stack([table[t] for t in batch])

    uf = cfg.user_field
    seen = build_pref_data(parts["seen_train"] + parts["seen_test"], embed, user_field=uf)
    n_tr = len(parts["seen_train"])
    train, test = seen.data.subset(torch.arange(n_tr)), seen.data.subset(torch.arange(n_tr, len(seen.data)))
    d_item, d_prompt = seen.data.items.shape[1], seen.data.prompts.shape[1]
    variants = ["A", "B"] if cfg.variant == "both" else [cfg.variant]
    models: dict[str, torch.nn.Module] = {"BT": BTModel(d_item, d_prompt, cfg.hidden, cfg.seed)}
    for v in variants:
        models[f"PAL-{v}"] = PALModel(d_item, d_prompt, len(seen.users), cfg.k, cfg.dim, v, cfg.hidden, cfg.seed)
    total = cfg.epochs * len(models)
    done_models = 0
    for i, (name, model) in enumerate(models.items()):
        ckpt = job.checkpoints_dir / f"checkpoint-{i + 1}" / f"{name}.safetensors"
        if job.resume and ckpt.exists():
            model.load_state_dict(load_file(ckpt))
            job.log.info("resumed %s from %s", name, ckpt.parent.name)
            done_models += 1
            continue

        def on_epoch(epoch: int, loss: float, acc: float, name: str = name, base: int = done_models * cfg.epochs) -> bool:
            job.log_metrics({"model": name, "epoch": epoch + 1, "loss": loss, "train_accuracy": acc})
            job.progress(base + epoch + 1, total, f"training {name}")
            return job.should_stop()

        fit(model, train, epochs=cfg.epochs, lr=cfg.learning_rate, batch_size=cfg.batch_size,
            weight_decay=cfg.weight_decay, seed=cfg.seed, on_epoch=on_epoch)
        if job.should_stop():
            raise JobCancelled
        with atomic_path(ckpt.parent) as tmp:
            tmp.mkdir()
            save_weights(model, tmp / ckpt.name)
        done_models += 1

    results: dict[str, Any] = {"n_seen_users": len(seen.users), "n_train_pairs": len(train), "n_test_pairs": len(test),
                               "seen": {name: accuracy(m, test) for name, m in models.items()}}
    oracle = _oracle(parts["seen_test"], cfg.oracle_field)
    if oracle is not None:
        results["seen"]["oracle"] = oracle
    if cfg.session:  # a handful of annotators: each one's held-out accuracy, PAL vs one BT model for all
        results["per_annotator"] = per_user_accuracy(models, test, seen.users)
    if parts["unseen_train"] and parts["unseen_test"]:
        results["unseen"] = evaluate_unseen(models, seen.users, parts, embed, cfg)
    groups = {str(p.metadata[uf]): p.metadata.get(cfg.group_field) for p in pairs}
    latent = {name: latent_view(m, seen.users, groups) for name, m in models.items() if isinstance(m, PALModel)}
    with atomic_path(job.run_dir / OUTPUT) as out:
        out.mkdir()
        for name, model in models.items():
            save_weights(model, out / f"{name}.safetensors")
        (out / "latent.json").write_text(json.dumps(latent), encoding="utf-8")
        (out / "pal_config.json").write_text(json.dumps({
            "feature_model": cfg.model, "layer": cfg.layer, "pooling": cfg.pooling, "k": cfg.k, "dim": cfg.dim,
            "hidden": cfg.hidden, "d_item": d_item, "d_prompt": d_prompt, "users": seen.users, "models": list(models)}, indent=1),
            encoding="utf-8")
        (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    job.set_summary(**results)
    return OUTPUT


def evaluate_unseen(models: dict[str, torch.nn.Module], seen_users: list[str], parts: dict[str, list[Any]], embed: Any,
                    cfg: PALJobConfig) -> dict[str, Any]:
    """Accuracy on unseen users' test pairs after n-shot adaptation (BT: the same global reward)."""
    uf = cfg.user_field
    new = build_pref_data(parts["unseen_train"] + parts["unseen_test"], embed, user_field=uf, users=list(seen_users))
    n_tr = len(parts["unseen_train"])
    pool, test = new.data.subset(torch.arange(n_tr)), new.data.subset(torch.arange(n_tr, len(new.data)))
    n_new = len(new.users) - len(seen_users)
    out: dict[str, Any] = {"n_users": n_new, "n_test_pairs": len(test), "shots": {}}
    oracle = _oracle(parts["unseen_test"], cfg.oracle_field)
    for n in cfg.shots:
        shots = _first_shots(pool, n, cfg.seed)
        row: dict[str, float] = {"BT": accuracy(models["BT"], test)}
        for name, model in models.items():
            if isinstance(model, PALModel):
                adapted = copy.deepcopy(model)
                adapted.add_users(n_new)
                adapt_new_users(adapted, shots, steps=cfg.adapt_steps, lr=cfg.adapt_lr)
                row[name] = accuracy(adapted, test)
        if oracle is not None:
            row["oracle"] = oracle
        out["shots"][str(n)] = row
    return out


PAL_JOB = JobType("pal", run_pal, validate_pal, description="PAL pluralistic reward models (A/B) vs a Bradley–Terry baseline",
                  config_cls=PALJobConfig)
