"""The SAE pipeline on a language model's residual stream over preference pairs.

Token activations of every response (prompt tokens excluded) at one layer train the SAE;
each response is then summarised by its mean latent activation. A latent separates chosen
from rejected when its per-response activation ranks chosen responses above rejected ones
(AUROC, with the paired win rate). Each latent also gets its top-activating texts (with
the peak token), its logit effects — the decoder direction read through the final norm's
scale and the unembedding — and a histogram of its non-zero token activations.

``latent_shift`` reads the same responses through a second checkpoint of the same model (a
fine-tune) with the run's SAE, and ranks the latents whose per-response activation moved most.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from workbench.activations import extract_activations, pair_texts
from workbench.compare.diff import check_comparable
from workbench.errors import ConfigError, DataError, ModelError
from workbench.files import atomic_write_text
from workbench.sae.training import SAESpec, encode, load_sae, train_sae

RESULT_FILE = "lm_latents.json"


@dataclass
class LMLatent:
    latent: int
    auroc: float  # P(chosen response's mean activation > rejected's), over all chosen × rejected
    paired_win_rate: float  # share of pairs where the chosen response activates it more
    mean_chosen: float
    mean_rejected: float
    frequency: float  # share of response tokens where it fires
    top_texts: list[dict[str, Any]] = field(default_factory=list)
    logits_up: list[tuple[str, float]] = field(default_factory=list)
    logits_down: list[tuple[str, float]] = field(default_factory=list)
    histogram: tuple[list[int], list[float]] = ((), ())  # type: ignore[assignment]


@dataclass
class LMSAEResult:
    model: str
    layer: int
    n_pairs: int
    n_tokens: int
    metrics: dict[str, float]
    latents: list[LMLatent]

    def separating(self, n: int = 10) -> list[LMLatent]:
        """Latents ranked by how far their AUROC is from 0.5 (either direction)."""
        return sorted(self.latents, key=lambda c: -abs(c.auroc - 0.5))[:n]

    def save(self, folder: Path) -> None:
        atomic_write_text(folder / RESULT_FILE, json.dumps(asdict(self), default=float))

    @classmethod
    def load(cls, folder: str | Path) -> LMSAEResult:
        path = Path(folder) / RESULT_FILE
        if not path.exists():
            raise DataError("Not a finished LM-SAE result.", path=path, hint="Run the pipeline (`run_lm_sae`) into this folder first.")
        raw = json.loads(path.read_text())
        return cls(**{**raw, "latents": [LMLatent(**c) for c in raw["latents"]]})


def label_by_pole(pairs: Sequence[Any], pole: str) -> list[Any]:
    """Label demo-style pairs: the response whose attribute pole is ``pole`` is preferred.

    Pairs that do not contrast that pole stay unlabeled; useful when no human labels exist.
    """
    out = []
    for p in pairs:
        m = p.metadata or {}
        side = "A" if m.get("a_pole") == pole else "B" if m.get("b_pole") == pole else None
        out.append(replace(p, preferred=side) if side else replace(p, preferred=None))
    return out


def response_token_activations(lm: Any, pairs: Sequence[Any], layer: int, *, cache: Any = None,
                               batch_size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[tokens, d]`` activations of all response tokens; rows of A responses first, then B.

    Returns the activations, the response index of each row (``i`` for pair i's A, ``n + i``
    for its B) and the token id of each row.
    """
    if not 0 <= layer <= lm.n_layers:
        raise ConfigError(f"Layer {layer} is out of range; {lm.name} has layers 0..{lm.n_layers}.")
    rendered = pair_texts(list(pairs), lm.tokenizer)
    acts = extract_activations(lm, rendered.texts, layers=[layer], pooling="tokens", prefix_lengths=rendered.prefix_lengths,
                               batch_size=batch_size, cache=cache, add_special_tokens=rendered.add_special_tokens)
    offsets = np.asarray(acts.offsets)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return np.asarray(acts.get(layer), dtype=np.float32), owner, np.asarray(acts.token_ids)


def _per_response(z: np.ndarray, owner: np.ndarray, n_responses: int) -> np.ndarray:
    """``[responses, latents]`` mean latent activation over each response's tokens (0 for a response without tokens)."""
    counts = np.bincount(owner, minlength=n_responses).astype(np.float32)
    per_response = np.zeros((n_responses, z.shape[1]), dtype=np.float32)
    np.add.at(per_response, owner, z)
    return per_response / np.maximum(counts, 1)[:, None]


def _auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Column-wise AUROC of ``pos`` vs ``neg`` rows (Mann–Whitney U / (n_pos · n_neg)), ties counted half."""
    ranks = rankdata(np.vstack([pos, neg]), axis=0)
    u = ranks[: len(pos)].sum(0) - len(pos) * (len(pos) + 1) / 2
    return u / (len(pos) * len(neg))


def logit_effects(lm: Any, directions: torch.Tensor, k: int = 8) -> list[tuple[list[tuple[str, float]], list[tuple[str, float]]]]:
    """Top promoted and suppressed tokens of each residual direction ``[m, d]``."""
    norm = lm.adapter.final_norm(lm.model)
    scale = getattr(norm, "weight", None)
    d = directions.to(lm.dtype) * (scale.detach() if scale is not None else 1.0)
    with torch.inference_mode():
        logits = lm.adapter.unembed(lm.model)(d.to(lm.device)).float().cpu()
    logits = logits - logits.mean(-1, keepdim=True)
    up, down = logits.topk(k, dim=-1), (-logits).topk(k, dim=-1)
    tok = lm.tokenizer.convert_ids_to_tokens
    return [([(t, float(v)) for t, v in zip(tok(up.indices[i].tolist()), up.values[i].tolist(), strict=True)],
             [(t, float(-v)) for t, v in zip(tok(down.indices[i].tolist()), down.values[i].tolist(), strict=True)])
            for i in range(len(d))]


def run_lm_sae(lm: Any, pairs: Sequence[Any], layer: int, spec: SAESpec, folder: str | Path, *, cache: Any = None,
               top_texts: int = 5, n_latents_described: int = 64,
               on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> LMSAEResult:
    """Train an SAE on the responses' residual stream at ``layer`` and describe its latents.

    Every latent gets separation statistics; the ``n_latents_described`` most separating
    ones also get top texts, logit effects and a histogram (the rest would cost time and
    disk for latents nobody looks at first).
    """
    pairs = list(pairs)
    labelled = [i for i, p in enumerate(pairs) if p.preferred in ("A", "B")]
    if len(labelled) < 4:
        raise DataError(f"Only {len(labelled)} of {len(pairs)} pairs say which response was preferred.",
                        hint="Label pairs first (a labeling session), or use label_by_pole(pairs, 'verbose') on the demo data.")
    folder = Path(folder)
    acts, owner, token_ids = response_token_activations(lm, pairs, layer, cache=cache)
    trained = train_sae(acts, spec, folder=folder / "sae",
                        metadata={"model_name": lm.name, "hook_name": f"blocks.{layer}.hook_resid_post"},
                        on_progress=on_progress, should_stop=should_stop)
    z = encode(trained.sae, acts).numpy()
    n = len(pairs)
    per_response = _per_response(z, owner, 2 * n)
    chosen = np.array([i if pairs[i].preferred == "A" else n + i for i in labelled])
    rejected = np.array([n + i if pairs[i].preferred == "A" else i for i in labelled])
    auroc = _auroc(per_response[chosen], per_response[rejected])
    wins = (per_response[chosen] > per_response[rejected]).mean(0) + 0.5 * (per_response[chosen] == per_response[rejected]).mean(0)
    latents = [LMLatent(latent=j, auroc=float(auroc[j]), paired_win_rate=float(wins[j]),
                        mean_chosen=float(per_response[chosen, j].mean()), mean_rejected=float(per_response[rejected, j].mean()),
                        frequency=float((z[:, j] > 0).mean())) for j in range(z.shape[1])]
    described = sorted(range(len(latents)), key=lambda j: -abs(latents[j].auroc - 0.5))[:n_latents_described]
    effects = logit_effects(lm, trained.sae.W_dec[described].detach())
    texts = [p.response_a for p in pairs] + [p.response_b for p in pairs]
    for j, (up, down) in zip(described, effects, strict=True):
        c = latents[j]
        c.logits_up, c.logits_down = up, down
        col = z[:, j]
        peak = np.full(2 * n, -1.0)
        np.maximum.at(peak, owner, col)
        for r in np.argsort(-peak)[:top_texts]:
            if peak[r] <= 0:
                break
            rows = np.flatnonzero(owner == r)
            at = rows[np.argmax(col[rows])]
            c.top_texts.append({"response": int(r), "pair": pairs[r % n].id, "side": "A" if r < n else "B",
                                "activation": float(peak[r]), "peak_token": lm.tokenizer.decode([int(token_ids[at])]),
                                "text": texts[r][:400]})
        nz = col[col > 0]
        hist, edges = np.histogram(nz, bins=20) if len(nz) else (np.zeros(20, int), np.linspace(0, 1, 21))
        c.histogram = (hist.tolist(), edges.tolist())
    result = LMSAEResult(model=lm.name, layer=layer, n_pairs=len(labelled), n_tokens=len(acts),
                         metrics={**trained.metrics.as_dict(), "samples_per_s": trained.samples_per_s}, latents=latents)
    result.save(folder)
    return result


@dataclass
class LatentShift:
    """How each SAE latent's per-response activation moved from model A (the run's) to model B."""

    model_a: str
    model_b: str
    layer: int
    n_responses: int
    table: pd.DataFrame  # one row per latent, see ``latent_shift``

    def top(self, k: int = 20) -> pd.DataFrame:
        """The ``k`` latents that moved most (mean |B − A| per response), largest first."""
        return self.table.sort_values("mean_abs_shift", ascending=False, kind="stable").head(k).reset_index(drop=True)


def latent_shift(folder: str | Path, lm_a: Any, lm_b: Any, pairs: Sequence[Any], *, cache: Any = None,
                 batch_size: int = 8) -> LatentShift:
    """Encode every response of ``pairs`` under A and under B with the LM-SAE saved in ``folder``.

    Per latent: the mean activation per response under each model, the signed mean shift,
    the mean absolute shift (what ranks "moved most": a latent can move up on some responses
    and down on others), the share of responses where it rose, its firing rate under each
    model and the run's chosen-vs-rejected AUROC. The SAE was trained on one model's residual
    stream, so B must be a checkpoint of that model: same tokenizer, family and width.
    """
    result = LMSAEResult.load(folder)
    sae = load_sae(Path(folder) / "sae")
    check_comparable(lm_a, lm_b)
    d_in = int(sae.cfg.d_in)
    for lm in (lm_a, lm_b):
        width = lm.adapter.d_model(lm.model)
        if width != d_in:
            raise ModelError(f"The SAE of this run reads {d_in}-wide residual states (layer {result.layer} of {result.model}); "
                             f"{lm.name} is {width} wide.", hint="Compare the run's model with one of its own fine-tunes.")
    pairs = list(pairs)
    if not pairs:
        raise DataError("There are no responses to encode.", field="pairs", hint="Pick a dataset or session with pairs.")
    per = {}
    for key, lm in (("a", lm_a), ("b", lm_b)):
        acts, owner, _ = response_token_activations(lm, pairs, result.layer, cache=cache, batch_size=batch_size)
        z = encode(sae, acts).numpy()
        per[key] = (_per_response(z, owner, 2 * len(pairs)), (z > 0).mean(0))
    (resp_a, fires_a), (resp_b, fires_b) = per["a"], per["b"]
    delta = resp_b - resp_a
    auroc = np.full(delta.shape[1], np.nan)
    for c in result.latents:
        auroc[c.latent] = c.auroc
    table = pd.DataFrame({"latent": np.arange(delta.shape[1]), "mean_a": resp_a.mean(0), "mean_b": resp_b.mean(0),
                          "shift": delta.mean(0), "mean_abs_shift": np.abs(delta).mean(0), "share_up": (delta > 0).mean(0),
                          "fires_a": fires_a, "fires_b": fires_b, "auroc": auroc})
    return LatentShift(lm_a.name, lm_b.name, result.layer, 2 * len(pairs), table)
