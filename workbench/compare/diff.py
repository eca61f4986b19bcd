"""The model diff: where and how much two checkpoints of one tokenizer differ, over pairs of texts.

Each pair gives two texts (prompt + chosen, prompt + rejected; response A counts as chosen
when a pair is unlabelled). Both models read every text once, batch by batch (one forward
pass per batch per model, all layers from ``forward_states``), and from those two passes:

- per lens point (0 = embeddings, i = output of block i-1): the mean KL(A ‖ B) between the
  two models' logit-lens distributions at up to ``lens_positions`` response positions per
  text, the mean cosine between the two models' response-mean hidden states, and linear CKA
  of those states across texts;
- the preference-lens margin per layer for both models (log p(chosen token) − log p(rejected
  token) at the first token where the two responses differ, as ``workbench.lenses.preference``
  defines it), read from the chosen text's pass;
- per response token, log π_B − log π_A of the actual token; per response the summed
  log-probability (with EOS, as DPO counts it), hence the implicit reward shift
  β·(log π_B − log π_A) with A as the reference, per pair for chosen, rejected and the margin;
- how the shift relates to response length (does B favour longer responses more than A?);
- when B is a training run that saved its split, the reward and preference-lens margin shifts
  separately for the pairs it trained on, the pairs it held out and pairs it never saw (``split``).

Two models with different tokenizers cannot be lined up token by token: ``check_comparable``
refuses them and says which views still work.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.activations.extract import forward_states
from workbench.data.types import Pair, prompt_text
from workbench.errors import ConfigError, DataError, ModelError
from workbench.lenses.token_sets import display_token
from workbench.models.batching import pad_token_id, right_padded
from workbench.models.loading import LoadedModel
from workbench.training.logprobs import encode_pair

Progress = Callable[[int, int], None]
TOKEN_CHUNK = 1024  # response positions unembedded at once: bounds the [positions, vocab] block
READOUT_CHUNK = 512  # lens rows unembedded at once per model: near the full matmul rate, ~100 MB of fp32 logits
TOKEN_NOISE = 1e-5  # nats: a token's mean log-prob shift below this is float noise, not a change
SPLIT_GROUPS = ("train", "held_out", "never_seen")  # a run's pairs, the ones it held out, and pairs it was never given


def check_comparable(lm_a: LoadedModel, lm_b: LoadedModel) -> list[str]:
    """Refuse two models whose tokens do not line up; return notes on what is not compared per layer."""
    if lm_a.is_encoder or lm_b.is_encoder:
        raise ModelError(f"The model diff needs two causal language models; {lm_a.name if lm_a.is_encoder else lm_b.name} is an encoder.",
                         hint="Compare causal LMs (Llama, Qwen2, Gemma, GPT-2, ...).")
    fam_a, fam_b = lm_a.adapter.family, lm_b.adapter.family
    same_vocab = lm_a.tokenizer.get_vocab() == lm_b.tokenizer.get_vocab()
    if fam_a != fam_b or not same_vocab:
        what = (f"families differ ({lm_a.name}: {fam_a}, {lm_b.name}: {fam_b})" if fam_a != fam_b else
                f"tokenizers differ ({lm_a.name}: {len(lm_a.tokenizer)} tokens, {lm_b.name}: {len(lm_b.tokenizer)} tokens)")
        raise ModelError(
            f"Cannot diff {lm_a.name} and {lm_b.name}: their {what}, so their tokens and lens distributions do not line up. "
            "Per-layer KL, token log-prob shifts, implicit reward shifts and the two-model logit-lens heatmap need one tokenizer.",
            hint="What still works across them: the latent explorer (relative representations: absolute vs relative agreement), "
                 "each model's own logit lens and preference lens side by side, and chat answers side by side. "
                 "For the full diff compare two checkpoints of one family, e.g. a base model and its fine-tune.")
    notes = []
    if lm_a.n_layers != lm_b.n_layers:
        notes.append(f"{lm_a.name} has {lm_a.n_layers} layers and {lm_b.name} {lm_b.n_layers}: per-layer KL, cosine, CKA and "
                     "preference-lens margins are compared at the final layer only.")
    elif lm_a.adapter.d_model(lm_a.model) != lm_b.adapter.d_model(lm_b.model):
        notes.append("The hidden sizes differ: per-layer cosine is left out (CKA compares them anyway).")
    return notes


@dataclass
class _Encoded:
    ids: list[list[int]]
    starts: list[int]  # index of the first response token in each text
    pref_pos: list[int]  # chosen texts: position whose next token is the first differing one (-1: none)
    pref_tokens: list[tuple[int, int]]


def _orient(pair: Pair) -> tuple[str, str]:
    return (pair.chosen, pair.rejected) if pair.preferred in ("A", "B") else (pair.response_a, pair.response_b)  # type: ignore[return-value]


def _encode(lm: LoadedModel, pairs: Sequence[Pair], max_length: int) -> _Encoded:
    """Rows 0..n-1 prompt + chosen, n..2n-1 prompt + rejected, tokenized as DPO counts them."""
    chosen = [encode_pair(lm.tokenizer, p.prompt, _orient(p)[0], max_length) for p in pairs]
    rejected = [encode_pair(lm.tokenizer, p.prompt, _orient(p)[1], max_length) for p in pairs]
    pref_pos, pref_tokens = [], []
    for (a, _), (b, _) in zip(chosen, rejected, strict=True):
        n = min(len(a), len(b))
        d = next((i for i in range(n) if a[i] != b[i]), n)
        ok = 0 < d < n
        pref_pos.append(d - 1 if ok else -1)
        pref_tokens.append((a[d], b[d]) if ok else (0, 0))
    rows = chosen + rejected
    for i, (ids, r0) in enumerate(rows):
        if r0 >= len(ids):
            raise DataError("The response has no tokens after the prompt (cut at the maximum length?).", field=f"pairs[{i % len(pairs)}]")
    return _Encoded([r[0] for r in rows], [r[1] for r in rows], pref_pos + [-1] * len(pairs), pref_tokens)


def _lens_positions(start: int, length: int, k: int) -> np.ndarray:
    """Up to k positions, evenly spaced, whose next token is a response token."""
    return np.unique(np.linspace(start - 1, length - 2, num=min(k, length - start)).round().astype(np.int64))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same n inputs."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, dtype=np.float64) - np.mean(y, axis=0)
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(np.linalg.norm(x.T @ y) ** 2 / denom) if denom > 0 else float("nan")


@dataclass
class _Pass:
    """What one model's pass over one batch leaves behind."""

    pooled: torch.Tensor  # [points, B, d]
    lens_states: torch.Tensor  # [points, positions, d]
    pref_states: torch.Tensor  # [points, pairs in batch, d]
    token_logp: torch.Tensor  # [response tokens]


def _forward(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor, targets: torch.Tensor,
             lens_idx: tuple[torch.Tensor, torch.Tensor], pref_idx: tuple[torch.Tensor, torch.Tensor]) -> _Pass:
    # The model's own logits cover one position only: the response positions are unembedded below, in chunks.
    states = forward_states(lm, input_ids=ids, attention_mask=mask)
    weights = resp.float()
    pooled = torch.stack([torch.einsum("btd,bt->bd", s.float(), weights) for s in states]) / weights.sum(1)[None, :, None]
    lens_states = torch.stack([s[lens_idx] for s in states])
    pref_states = torch.stack([s[pref_idx] for s in states])
    # Position t predicts token t+1: the response tokens are predicted from resp shifted left by one.
    pred = torch.zeros_like(resp)
    pred[:, :-1] = resp[:, 1:]
    last = states[-1][pred]
    logp = [torch.log_softmax(lm.adapter.logits(lm.model, last[i:i + TOKEN_CHUNK]).float(), -1)
            .gather(-1, targets[i:i + TOKEN_CHUNK, None])[:, 0] for i in range(0, len(last), TOKEN_CHUNK)]
    return _Pass(pooled, lens_states, pref_states, torch.cat(logp) if logp else torch.zeros(0, device=ids.device))


@dataclass
class LensRows:
    """Two models' logit lens read out at the same rows of states."""

    kl: torch.Tensor  # [rows] KL(A ‖ B) of the two lens distributions, nats, on the CPU
    logp_a: torch.Tensor | None  # [rows, k] A's log-probabilities of the asked tokens (None: none asked)
    logp_b: torch.Tensor | None


def lens_kl(lm_a: LoadedModel, lm_b: LoadedModel, states_a: torch.Tensor, states_b: torch.Tensor,
            tokens: torch.Tensor | None = None) -> LensRows:
    """KL(A ‖ B) between A's and B's logit lens, row by row, over ``[rows, d]`` residual states.

    Every lens point's rows go through the unembedding together, ``READOUT_CHUNK`` rows at a
    time: one ``[rows, vocab]`` matmul per chunk runs near the machine's matmul rate, where one
    call per point with a few rows reads the whole unembedding for each (a few rows: 1/7 of it).
    ``tokens`` ``[rows, k]`` asks for each model's log-probabilities of k tokens per row as well.
    Both models read the same chunk shapes, so one model against itself gives exactly 0.
    """
    kl, logp_a, logp_b = [], [], []
    for i in range(0, len(states_a), READOUT_CHUNK):
        la = torch.log_softmax(lm_a.adapter.logits(lm_a.model, states_a[i:i + READOUT_CHUNK].to(lm_a.device)).float(), dim=-1)
        lb = torch.log_softmax(lm_b.adapter.logits(lm_b.model, states_b[i:i + READOUT_CHUNK].to(lm_b.device)).float(), dim=-1)
        lb = lb.to(la.device)
        if tokens is not None:
            idx = tokens[i:i + READOUT_CHUNK].to(la.device)
            logp_a.append(la.gather(-1, idx).cpu())
            logp_b.append(lb.gather(-1, idx).cpu())
        diff = la - lb
        kl.append(la.exp_().mul_(diff).sum(-1).clamp_min(0).cpu())
    empty = torch.zeros(0)
    return LensRows(torch.cat(kl) if kl else empty, torch.cat(logp_a) if logp_a else None, torch.cat(logp_b) if logp_b else None)


def _batch(enc: _Encoded, rows: np.ndarray, lengths: np.ndarray, lens_positions: int,
           pad: int) -> tuple[torch.Tensor, torch.Tensor, tuple[list[int], list[int]], tuple[list[int], list[int], list[int]]]:
    """One batch's padded ids, response mask, (row, position) of its lens reads and of its preference reads
    (with the chosen texts they come from)."""
    ids, real = right_padded([enc.ids[i] for i in rows], pad)
    resp = real & (torch.arange(ids.shape[1])[None, :] >= torch.as_tensor([enc.starts[i] for i in rows])[:, None])
    lens_r, lens_c, pref_r, pref_c, pref_rows = [], [], [], [], []
    for r, i in enumerate(rows):
        pos = _lens_positions(enc.starts[i], int(lengths[i]), lens_positions)
        lens_r += [r] * len(pos)
        lens_c += pos.tolist()
        if enc.pref_pos[i] >= 0:
            pref_r.append(r), pref_c.append(enc.pref_pos[i]), pref_rows.append(int(i))
    return ids, resp, (lens_r, lens_c), (pref_r, pref_c, pref_rows)


@dataclass
class ModelDiff:
    """Everything the diff measured; arrays are per lens point, per pair or per response token."""

    model_a: str
    model_b: str
    beta: float
    prompts: list[str]
    pair_ids: list[str]
    points: np.ndarray  # lens points compared (0..L, or only the final one)
    kl: np.ndarray  # mean KL(A || B) per point, nats
    cosine: np.ndarray | None  # mean cosine of response-mean states per point
    cka: np.ndarray  # linear CKA across texts per point
    pref_a: np.ndarray  # [pairs, points] preference-lens margin under A (NaN where the responses never differ)
    pref_b: np.ndarray
    logp_a: np.ndarray  # [2n] summed response log-prob, chosen rows first
    logp_b: np.ndarray
    n_tokens: np.ndarray  # [2n] response tokens (with EOS)
    token_ids: np.ndarray  # [total response tokens]
    token_shift: np.ndarray  # log π_B − log π_A per response token
    token_text: np.ndarray  # which text each token belongs to
    notes: list[str] = field(default_factory=list)
    token_names: dict[int, str] = field(default_factory=dict)
    split: list[str] = field(default_factory=list)  # per pair one of SPLIT_GROUPS; empty: no split known
    split_run: str | None = None  # the training run whose saved split ``split`` is
    split_note: str = ""  # why no split is known

    @property
    def n_pairs(self) -> int:
        return len(self.pair_ids)

    def reward_shift(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Implicit reward of B with A as reference, β·(log π_B − log π_A): (chosen, rejected, margin) per pair."""
        shift = self.beta * (self.logp_b - self.logp_a)
        n = self.n_pairs
        return shift[:n], shift[n:], shift[:n] - shift[n:]

    def length_effect(self) -> dict[str, float]:
        """Does B favour longer responses more than A did? Correlation of each response's shift with its
        length, and the mean implicit-reward gain of the longer response of a pair over the shorter."""
        shift = self.logp_b - self.logp_a
        n = self.n_pairs
        lc, lr = self.n_tokens[:n], self.n_tokens[n:]
        longer_gain = np.where(lc > lr, 1, np.where(lc < lr, -1, 0)) * (shift[:n] - shift[n:]) * self.beta
        differ = lc != lr
        corr = float(np.corrcoef(shift, self.n_tokens)[0, 1]) if np.std(shift) > 0 and np.std(self.n_tokens) > 0 else 0.0
        return {"corr_shift_vs_length": corr, "longer_response_gain": float(longer_gain[differ].mean()) if differ.any() else 0.0,
                "mean_shift_per_token": float(self.token_shift.mean()) if len(self.token_shift) else 0.0}

    def top_pairs(self, k: int = 10) -> list[dict[str, Any]]:
        """The pairs whose implicit reward margin moved most (either way)."""
        chosen, rejected, margin = self.reward_shift()
        order = np.argsort(-np.abs(margin), kind="stable")[:k]
        return [{"pair_id": self.pair_ids[i], "split": self.split[i] if self.split else "all", "prompt": self.prompts[i][:200],
                 "margin_shift": float(margin[i]),
                 "chosen_shift": float(chosen[i]), "rejected_shift": float(rejected[i])} for i in order]

    def top_tokens(self, k: int = 10, min_count: int = 2) -> dict[str, list[dict[str, Any]]]:
        """Tokens whose log-probability rose / fell most on average (seen at least ``min_count`` times)."""
        if not len(self.token_ids):
            return {"up": [], "down": []}
        ids, inverse, counts = np.unique(self.token_ids, return_inverse=True, return_counts=True)
        mean = np.bincount(inverse, self.token_shift) / counts
        keep = np.flatnonzero(counts >= min_count)

        def rows(order: np.ndarray) -> list[dict[str, Any]]:
            return [{"token": self.token_names.get(int(ids[i]), str(int(ids[i]))), "token_id": int(ids[i]),
                     "mean_shift": float(mean[i]), "count": int(counts[i])} for i in order]

        # Only tokens that moved that way: a token at +0.00 is not "up", and a zero diff lists none.
        ranked = keep[np.argsort(mean[keep], kind="stable")]
        up, down = ranked[::-1][mean[ranked[::-1]] > TOKEN_NOISE], ranked[mean[ranked] < -TOKEN_NOISE]
        return {"up": rows(up[:k]), "down": rows(down[:k])}

    def split_summary(self) -> dict[str, Any]:
        """Reward and preference-lens margin shifts per group: a run's train, held-out and never-seen pairs
        (a tune moves its training pairs most, so one mixed mean overstates what generalises), or one 'all' group."""
        labels = np.asarray(self.split if self.split else ["all"] * self.n_pairs)
        groups = SPLIT_GROUPS if self.split else ("all",)
        return {"known": bool(self.split), "run": self.split_run, "note": self.split_note,
                "groups": {g: self._group_figures(np.flatnonzero(labels == g)) for g in groups}}

    def _group_figures(self, idx: np.ndarray) -> dict[str, Any]:
        chosen, rejected, margin = self.reward_shift()
        out: dict[str, Any] = {"n": int(len(idx))}
        if not len(idx):
            return out
        lens_a, lens_b = self.pref_a[idx, -1], self.pref_b[idx, -1]  # final layer: the model's own output
        defined = ~np.isnan(lens_a) & ~np.isnan(lens_b)
        out.update({"mean_chosen_shift": float(chosen[idx].mean()), "mean_rejected_shift": float(rejected[idx].mean()),
                    "mean_margin_shift": float(margin[idx].mean()), "share_margin_up": float((margin[idx] > 0).mean()),
                    "pref_margin_a": float(lens_a[defined].mean()) if defined.any() else None,
                    "pref_margin_b": float(lens_b[defined].mean()) if defined.any() else None,
                    "pref_margin_shift": float((lens_b - lens_a)[defined].mean()) if defined.any() else None})
        return out

    def per_layer(self) -> pd.DataFrame:
        pa, pb = np.nanmean(self.pref_a, axis=0), np.nanmean(self.pref_b, axis=0)
        return pd.DataFrame({"layer": self.points, "kl_a_b": self.kl, "cosine": self.cosine if self.cosine is not None else np.nan,
                             "cka": self.cka, "pref_margin_a": pa, "pref_margin_b": pb, "pref_margin_shift": pb - pa})

    def per_pair(self) -> pd.DataFrame:
        chosen, rejected, margin = self.reward_shift()
        n = self.n_pairs
        return pd.DataFrame({"pair_id": self.pair_ids, "split": self.split or ["all"] * n, "prompt": self.prompts, "logp_chosen_a": self.logp_a[:n],
                             "logp_chosen_b": self.logp_b[:n], "logp_rejected_a": self.logp_a[n:], "logp_rejected_b": self.logp_b[n:],
                             "tokens_chosen": self.n_tokens[:n], "tokens_rejected": self.n_tokens[n:],
                             "reward_shift_chosen": chosen, "reward_shift_rejected": rejected, "reward_margin_shift": margin})

    def summary(self, k: int = 10) -> dict[str, Any]:
        """Plain JSON-ready numbers: per layer, the reward and length shifts, the top pairs and tokens."""
        chosen, rejected, margin = self.reward_shift()
        changed = np.flatnonzero(self.kl > 1e-9)
        return {
            "model_a": self.model_a, "model_b": self.model_b, "beta": self.beta, "n_pairs": self.n_pairs,
            "n_response_tokens": int(len(self.token_shift)), "notes": self.notes,
            "first_changed_layer": int(self.points[changed[0]]) if len(changed) else None,
            "per_layer": self.per_layer().replace({np.nan: None}).to_dict(orient="records"),
            "implicit_reward": {"mean_chosen_shift": float(chosen.mean()), "mean_rejected_shift": float(rejected.mean()),
                                "mean_margin_shift": float(margin.mean()), "share_margin_up": float((margin > 0).mean())},
            "token_logprob": {"mean_shift": float(self.token_shift.mean()) if len(self.token_shift) else 0.0,
                              "mean_abs_shift": float(np.abs(self.token_shift).mean()) if len(self.token_shift) else 0.0},
            "split": self.split_summary(), "length": self.length_effect(), "top_pairs": self.top_pairs(k), "top_tokens": self.top_tokens(k),
        }


def model_diff(lm_a: LoadedModel, lm_b: LoadedModel, pairs: Sequence[Pair], *, beta: float = 0.1, lens_positions: int = 8,
               batch_size: int = 8, max_length: int = 512, progress: Progress | None = None) -> ModelDiff:
    """Diff B against A (the reference) over ``pairs``; see the module docstring for what is measured."""
    if not pairs:
        raise DataError("There are no pairs to compare the models on.", hint="Give a dataset or a session with at least two pairs.")
    if len(pairs) < 2:
        raise DataError("The model diff needs at least 2 pairs (CKA compares states across texts).", hint="Give more pairs.")
    if not (isinstance(beta, int | float) and beta > 0) or lens_positions < 1 or batch_size < 1:
        raise ConfigError(f"beta must be > 0 and lens_positions, batch_size ≥ 1 (got {beta}, {lens_positions}, {batch_size}).")
    notes = check_comparable(lm_a, lm_b)
    per_layer = lm_a.n_layers == lm_b.n_layers
    same_d = per_layer and lm_a.adapter.d_model(lm_a.model) == lm_b.adapter.d_model(lm_b.model)
    limit = min(getattr(m.model.config, "max_position_embeddings", None) or max_length for m in (lm_a, lm_b))
    enc = _encode(lm_a, pairs, min(max_length, limit))
    n_texts, n = len(enc.ids), len(pairs)
    points_a = list(range(lm_a.n_layers + 1)) if per_layer else [lm_a.n_layers]
    points_b = list(range(lm_b.n_layers + 1)) if per_layer else [lm_b.n_layers]
    n_pts = len(points_a)
    pooled = {"a": [np.zeros((n_texts, lm_a.adapter.d_model(lm_a.model)), np.float32) for _ in points_a],
              "b": [np.zeros((n_texts, lm_b.adapter.d_model(lm_b.model)), np.float32) for _ in points_b]}
    kl_sum, kl_count = np.zeros(n_pts), 0
    pref = {"a": np.full((n, n_pts), np.nan), "b": np.full((n, n_pts), np.nan)}
    logp = {"a": np.zeros(n_texts), "b": np.zeros(n_texts)}
    lengths = np.array([len(x) for x in enc.ids])
    n_tokens = lengths - np.array(enc.starts)
    offsets = np.concatenate([[0], np.cumsum(n_tokens)])
    token_ids = np.concatenate([np.asarray(x[s:], dtype=np.int64) for x, s in zip(enc.ids, enc.starts, strict=True)])
    shift = np.zeros(len(token_ids))
    pad = pad_token_id(lm_a.tokenizer)
    order = np.argsort(-lengths, kind="stable")
    for b0 in range(0, n_texts, batch_size):
        rows = order[b0:b0 + batch_size]
        ids, resp, (lens_r, lens_c), (pref_r, pref_c, pref_rows) = _batch(enc, rows, lengths, lens_positions, pad)
        mask = (torch.arange(ids.shape[1])[None, :] < torch.as_tensor(lengths[rows])[:, None]).long()
        targets = ids[resp]
        idx = lambda r, c: (torch.tensor(r, dtype=torch.long, device=lm_a.device), torch.tensor(c, dtype=torch.long, device=lm_a.device))  # noqa: E731
        out = {}
        with torch.inference_mode():
            for key, lm in (("a", lm_a), ("b", lm_b)):
                out[key] = _forward(lm, ids.to(lm.device), mask.to(lm.device), resp.to(lm.device), targets.to(lm.device),
                                    idx(lens_r, lens_c), idx(pref_r, pref_c))
            # Per lens point its lens rows, then its preference rows: all read out together, once per batch.
            read = {key: torch.cat([out[key].lens_states[pts], out[key].pref_states[pts]], 1)
                    for key, pts in (("a", points_a), ("b", points_b))}
            n_lens, per_point = len(lens_r), len(lens_r) + len(pref_rows)
            pref_tok = torch.zeros((n_pts, per_point, 2), dtype=torch.long)
            pref_tok[:, n_lens:] = torch.tensor([enc.pref_tokens[i] for i in pref_rows], dtype=torch.long).reshape(-1, 2)
            lens = lens_kl(lm_a, lm_b, read["a"].flatten(0, 1), read["b"].flatten(0, 1), pref_tok.flatten(0, 1))
            kl_sum += lens.kl.reshape(n_pts, per_point)[:, :n_lens].sum(1).double().numpy()
            kl_count += n_lens
            for key, lp in (("a", lens.logp_a), ("b", lens.logp_b)):
                p = out[key]
                for j, point in enumerate(points_a if key == "a" else points_b):
                    pooled[key][j][rows] = p.pooled[point].cpu().numpy()
                if pref_rows:
                    lp = lp.reshape(n_pts, per_point, 2)[:, n_lens:]  # type: ignore[union-attr]
                    pref[key][pref_rows] = (lp[..., 0] - lp[..., 1]).T.numpy()
                tok_lp = p.token_logp.cpu().numpy().astype(np.float64)
                # Token rows come out in row-major order of the batch: text rows[0]'s tokens, then rows[1]'s ...
                cuts = np.concatenate([[0], np.cumsum(n_tokens[rows])])
                for r, i in enumerate(rows):
                    seg = tok_lp[cuts[r]:cuts[r + 1]]
                    logp[key][i] = seg.sum()
                    shift[offsets[i]:offsets[i + 1]] += seg if key == "b" else -seg
        if progress:
            progress(min(b0 + batch_size, n_texts), n_texts)
    kl = kl_sum / max(kl_count, 1)
    cosine = None
    if same_d:
        cosine = np.array([float(np.mean(np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)))
                           for x, y in zip(pooled["a"], pooled["b"], strict=True)])
    cka = np.array([linear_cka(x, y) for x, y in zip(pooled["a"], pooled["b"], strict=True)])
    tok = lm_a.tokenizer
    names = {int(t): display_token(tok, int(t)) for t in np.unique(token_ids)}
    return ModelDiff(
        model_a=lm_a.name, model_b=lm_b.name, beta=float(beta), prompts=[prompt_text(p.prompt) for p in pairs],
        pair_ids=[p.id for p in pairs], points=np.asarray(points_a), kl=kl, cosine=cosine, cka=cka, pref_a=pref["a"], pref_b=pref["b"],
        logp_a=logp["a"], logp_b=logp["b"], n_tokens=n_tokens, token_ids=token_ids, token_shift=shift,
        token_text=np.repeat(np.arange(n_texts), n_tokens), notes=notes, token_names=names,
    )
