"""Benchmark: logit-lens metrics for every layer over 200 prompts.

Measures, in one run on one machine, lens metrics (entropy, KL to the final layer, P(target
language), P(English), rank of the target token) for all layers and all prompts:
  1. ``lens_metrics``: one forward pass per batch gives every layer's residual stream;
  2. baseline: a per-layer recomputation, one forward pass per layer and batch (what hooking
     one layer at a time costs), computing the same metrics for that layer only.
Both use the same batches (sorted by length), so the ratio isolates the forward passes. The
largest difference between the two results is printed as a correctness check.

Usage: python benchmarks/lens.py [--n 200] [--batch-size 16] [--baseline-layers K] [--device auto]

``--baseline-layers K`` times the per-layer baseline on K evenly spaced layers only and scales its
time by (layers + 1) / K: every layer costs the baseline one full forward pass, so the scaled
figure is what all layers would take (said so in the output). Default: all layers.
Prompts: 4-shot fr→zh translation prompts from the packaged word list (5 seeds × 40 words).
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from workbench.lenses import make_task, packaged_words, word_token_set
from workbench.lenses.lens import LN2, _batch_inputs, encode, lens_metrics
from workbench.models.adapters import residual_stream
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import LoadedModel, load_model
from workbench.settings import Settings


def prompts_and_sets(lm: LoadedModel, n: int) -> tuple[list[str], dict[str, list[list[int]]], list[int]]:
    words = packaged_words()
    examples = [e for seed in range(math.ceil(n / len(words))) for e in make_task(words, "translation", "fr", "zh", seed=seed).examples][:n]
    sets = {lang: [word_token_set(lm.tokenizer, e.words[lang]) for e in examples] for lang in ("zh", "en")}
    targets = [lm.tokenizer(e.words["zh"], add_special_tokens=False)["input_ids"][0] for e in examples]
    return [e.prompt for e in examples], sets, targets


def per_layer_baseline(lm: LoadedModel, prompts: list[str], sets: dict[str, list[list[int]]], targets: list[int], batch_size: int,
                       layers: list[int]) -> dict[str, np.ndarray]:
    """The same metrics, recomputing the forward pass for every layer in ``layers``."""
    ids = encode(lm, prompts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    n_points = lm.n_layers + 1
    out = {k: np.zeros((len(ids), n_points)) for k in ("entropy", "kl", "rank", *sets)}
    with torch.inference_mode():
        for layer in layers:
            for start in range(0, len(ids), batch_size):
                idx = order[start : start + batch_size]
                inputs = _batch_inputs(lm, [ids[i] for i in idx])
                last = torch.tensor([len(ids[i]) - 1 for i in idx], device=lm.device)
                rows = torch.arange(len(idx), device=lm.device)
                states = residual_stream(lm.adapter, lm.model, **inputs)
                logp = torch.log_softmax(lm.adapter.logits(lm.model, states[layer][rows, last]).float(), -1)
                final = torch.log_softmax(lm.adapter.logits(lm.model, states[-1][rows, last]).float(), -1)
                p = logp.exp()
                out["entropy"][idx, layer] = (-(p * logp).sum(-1) / LN2).cpu().numpy()
                out["kl"][idx, layer] = ((final.exp() * (final - logp)).sum(-1) / LN2).clamp_min(0).cpu().numpy()
                t = torch.tensor([targets[i] for i in idx], device=lm.device)
                out["rank"][idx, layer] = (logp > logp[rows, t][:, None]).sum(-1).cpu().numpy()
                for lang, per_prompt in sets.items():
                    out[lang][idx, layer] = np.array([float(p[r, per_prompt[i]].sum()) for r, i in enumerate(idx)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Logit-lens metrics: one forward pass vs per-layer recomputation.")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--baseline-layers", type=int, default=None, help="time the baseline on this many layers and scale")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    settings = Settings()
    lm = load_model(ensure_demo_model(settings), device=args.device, name="SmolLM2-135M-Instruct")
    prompts, sets, targets = prompts_and_sets(lm, args.n)
    n_tokens = sum(len(x) for x in encode(lm, prompts))
    print(f"model: {lm.name} ({lm.n_layers} layers, {lm.device}, {str(lm.dtype).removeprefix('torch.')}); "
          f"prompts: {len(prompts)} ({n_tokens} tokens); load average: {os.getloadavg()[0]:.1f}")
    lens_metrics(lm, prompts[: args.batch_size], token_sets={k: v[: args.batch_size] for k, v in sets.items()})  # warm-up

    t0 = time.perf_counter()
    fast = lens_metrics(lm, prompts, token_sets=sets, targets={"target": targets}, batch_size=args.batch_size)
    t_fast = time.perf_counter() - t0
    n_points = lm.n_layers + 1
    k = min(args.baseline_layers or n_points, n_points)
    layers = sorted({round(i * (n_points - 1) / max(k - 1, 1)) for i in range(k)})
    t0 = time.perf_counter()
    slow = per_layer_baseline(lm, prompts, sets, targets, args.batch_size, layers)
    t_slow = (time.perf_counter() - t0) * n_points / len(layers)

    diff = max(
        float(np.abs(fast.entropy[:, layers, 0] - slow["entropy"][:, layers]).max()),
        float(np.abs(fast.kl_to_final[:, layers, 0] - slow["kl"][:, layers]).max()),
        *(float(np.abs(fast.mass[k][:, layers, 0] - slow[k][:, layers]).max()) for k in sets),
    )
    rank_mismatch = float((fast.rank["target"][:, layers, 0] != slow["rank"][:, layers]).mean())
    points = len(prompts) * n_points
    scaled = f" (timed on layers {layers}, scaled by {n_points}/{len(layers)})" if len(layers) < n_points else ""
    print(f"one_pass_seconds: {t_fast:.2f} s ({points / t_fast:.0f} prompt-layers/s)")
    print(f"per_layer_baseline_seconds: {t_slow:.2f} s ({points / t_slow:.0f} prompt-layers/s){scaled}")
    print(f"speedup: {t_slow / t_fast:.1f}x (one forward pass for all {lm.n_layers + 1} lens points vs one per layer)")
    print(f"max_abs_difference: {diff:.2e} (entropy, KL, token-set mass); rank mismatches: {rank_mismatch:.2%}")


if __name__ == "__main__":
    main()
