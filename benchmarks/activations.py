"""Benchmark: all-layer activation extraction from the demo model.

Measures, in one run on one machine:
  1. batched extraction (sorted by length, one forward per batch, all layers) in tokens/s,
     against a naive Hugging Face loop that runs one text at a time;
  2. the fraction of the machine's matmul throughput the batched extraction achieves
     (model FLOP/s ≈ 2 · non-embedding parameters · tokens/s, over torch.mm FLOP/s);
  3. the cache-hit speedup (the same request again, served from disk).
The texts are split into chunks and both paths run on each chunk in turn, so a machine whose
load changes during the run does not favour either.

Usage: python benchmarks/activations.py [--n 256] [--batch-size 16] [--chunks 4] [--device auto]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from workbench.activations import ActivationCache, extract_activations, pair_texts
from workbench.data.types import Pair
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import LoadedModel, load_model
from workbench.settings import Settings

DEMO_PAIRS = Path(__file__).resolve().parents[1] / "workbench" / "data" / "demo" / "demo_pairs.jsonl"
WORDS = (
    "the a model answer prefers concise helpful honest response question because however which explains "
    "preference reward policy human label annotator tie better worse clearly example data training token "
    "layer residual stream direction steering vector probe linear safe harmful polite short long detailed"
).split()


def demo_texts(tokenizer: object, n: int) -> tuple[list[str], bool, str]:
    """Prompt+response texts from the packaged demo pairs, or deterministic generated texts."""
    if DEMO_PAIRS.exists():
        from workbench.data.readers import read_pairs

        pairs: list[Pair] = read_pairs(DEMO_PAIRS)
        if pairs:
            rendered = pair_texts(pairs, tokenizer)
            texts = (rendered.texts * (n // len(rendered.texts) + 1))[:n]
            return texts, rendered.add_special_tokens, f"{DEMO_PAIRS.name} ({len(pairs)} pairs, chat template)"
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 160))).capitalize() + "." for _ in range(n)]
    return texts, True, "generated (seeded) texts of 8-160 words"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int = 2048, reps: int = 10) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - t0)


def naive_loop(lm: LoadedModel, texts: list[str], add_special_tokens: bool) -> tuple[float, list[np.ndarray]]:
    """One text at a time, the way a first script would: full forward, last token of every layer."""
    rows = []
    sync(lm.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for text in texts:
            ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=add_special_tokens).to(lm.device)
            out = lm.model(**ids, output_hidden_states=True)
            rows.append(torch.stack([h[0, -1] for h in out.hidden_states]).float().cpu().numpy())
    sync(lm.device)
    return time.perf_counter() - t0, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="number of texts (default 256)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=4, help="alternate batched and naive runs over this many chunks")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    lm = load_model(ensure_demo_model(Settings()), device=args.device, dtype=args.dtype, name="SmolLM2-135M-Instruct")
    texts, add_special, source = demo_texts(lm.tokenizer, args.n)
    n_tokens = sum(len(ids) for ids in lm.tokenizer(texts, add_special_tokens=add_special)["input_ids"])
    embed = lm.model.get_input_embeddings().weight.numel()
    n_params = sum(p.numel() for p in lm.model.parameters()) - embed  # the lookup and the (skipped) LM head are not per-token matmuls
    print(f"device: {lm.device} ({lm.dtype}), torch threads: {torch.get_num_threads()}, "
          f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"texts: {len(texts)} from {source}, {n_tokens} tokens, {lm.n_layers + 1} layers")

    # Warm-up both paths (allocator, kernels) on a few texts.
    extract_activations(lm, texts[:4], batch_size=args.batch_size, add_special_tokens=add_special)
    naive_loop(lm, texts[:2], add_special)

    # The two paths alternate chunk by chunk (and the matmul peak is sampled between chunks),
    # so a machine whose load changes during the run slows both alike.
    chunks = [list(c) for c in np.array_split(np.arange(len(texts)), min(args.chunks, len(texts)))]
    t_batched = t_naive = t_hit = 0.0
    peaks, diffs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cache = ActivationCache(Path(tmp))
        for chunk in chunks:
            part = [texts[i] for i in chunk]
            sync(lm.device)
            t0 = time.perf_counter()
            first = extract_activations(lm, part, batch_size=args.batch_size, cache=cache, add_special_tokens=add_special)
            sync(lm.device)
            t_batched += time.perf_counter() - t0
            t0 = time.perf_counter()
            second = extract_activations(lm, part, batch_size=args.batch_size, cache=cache, add_special_tokens=add_special)
            t_hit += time.perf_counter() - t0
            assert second.from_cache and not first.from_cache
            seconds, naive_rows = naive_loop(lm, part, add_special)
            t_naive += seconds
            # The naive hidden_states[-1] has the final norm applied; compare the layers before it.
            diffs += [float(np.abs(first.get(layer) - np.stack([r[layer] for r in naive_rows])).max()) for layer in range(lm.n_layers)]
            peaks.append(matmul_flops(lm.device, lm.dtype))
        cache_mb = cache.size_bytes() / 1e6

    batched_tps, naive_tps = n_tokens / t_batched, n_tokens / t_naive
    peak = statistics.median(peaks)
    model_flops = 2 * n_params * batched_tps
    print(f"batched extraction: {batched_tps:,.0f} tokens/s ({t_batched:.2f} s, batch size {args.batch_size})")
    print(f"naive one-at-a-time loop: {naive_tps:,.0f} tokens/s ({t_naive:.2f} s)")
    print(f"batched / naive: {batched_tps / naive_tps:.2f}x")
    print(f"max |batched - naive| over layers 0..{lm.n_layers - 1}: {max(diffs):.2e}")
    print(f"matmul peak (torch.mm 2048x2048, {lm.dtype}, median of {len(peaks)}): {peak / 1e9:,.1f} GFLOP/s")
    print(f"model FLOP/s (2 x {n_params / 1e6:.1f}M non-embedding params x tokens/s): {model_flops / 1e9:,.1f} GFLOP/s")
    print(f"fraction of matmul peak: {model_flops / peak:.2f}")
    print(f"cache first requests: {t_batched:.2f} s, repeated requests: {t_hit * 1e3:.1f} ms ({len(chunks)} requests, {cache_mb:.1f} MB on disk)")
    print(f"cache hit speedup: {t_batched / t_hit:,.0f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
