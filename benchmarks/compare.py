"""Benchmark: the model diff of two demo-size checkpoints, one batched pass per model vs a naive loop.

Model A is the demo model (SmolLM2-135M-Instruct); model B is a copy with noise on one middle
block's MLP weights (in memory), so the two differ from that layer on. Texts are the packaged
demo pairs (prompt + each response, rendered with the chat template): ``--pairs N`` gives 2N texts.

  1. ``model_diff``: texts sorted by length, batched; each batch goes once through A and once
     through B, and every layer's lens KL, pooled states (cosine, CKA) and the response tokens'
     log-probabilities come from those two passes.
  2. baseline: the straightforward loop, one text at a time and one layer at a time: for every
     text and every lens point, a forward pass of A and of B for that layer's KL and pooled
     state, plus one more pass each for the token log-probabilities.

The baseline costs the same for every text, so ``--naive-pairs K`` times it on the first K pairs
and scales the time by N / K (said so in the output). Each variant runs in its own child
process, so the peak resident memory printed for each is its own (ru_maxrss of that child).

Usage: python benchmarks/compare.py [--pairs 128] [--naive-pairs 2] [--batch-size 8] [--device auto]
The issue's full size is --pairs 128 (256 texts); on a shared 2-core CPU use e.g. --pairs 16.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from workbench.compare.diff import _encode, _lens_positions, linear_cka, model_diff
from workbench.data.demo import load_demo_pairs
from workbench.models.adapters import residual_stream
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import LoadedModel, load_model
from workbench.settings import Settings

LENS_POSITIONS = 8


def models(device: str) -> tuple[LoadedModel, LoadedModel]:
    path = ensure_demo_model(Settings())
    a = load_model(path, device=device, name="demo")
    b = load_model(path, device=device, name="demo-perturbed")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in b.adapter.layers(b.model)[b.n_layers // 2].mlp.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return a, b


def naive(a: LoadedModel, b: LoadedModel, pairs: list) -> dict[str, np.ndarray]:
    """The same per-layer KL and pooled states, one text and one layer per forward pass."""
    enc = _encode(a, pairs, 512)
    points = a.n_layers + 1
    kl = np.zeros(points)
    count = 0
    pooled = {k: np.zeros((points, len(enc.ids), a.adapter.d_model(a.model))) for k in "ab"}
    with torch.inference_mode():
        for t, (ids, start) in enumerate(zip(enc.ids, enc.starts, strict=True)):
            x = torch.tensor([ids], device=a.device)
            pos = torch.as_tensor(_lens_positions(start, len(ids), LENS_POSITIONS), device=a.device)
            for layer in range(points):
                sa = residual_stream(a.adapter, a.model, input_ids=x)[layer][0]
                sb = residual_stream(b.adapter, b.model, input_ids=x)[layer][0]
                la = torch.log_softmax(a.adapter.logits(a.model, sa[pos]).float(), -1)
                lb = torch.log_softmax(b.adapter.logits(b.model, sb[pos]).float(), -1)
                kl[layer] += float((la.exp() * (la - lb)).sum(-1).clamp_min(0).sum())
                pooled["a"][layer, t] = sa[start:].float().mean(0).cpu().numpy()
                pooled["b"][layer, t] = sb[start:].float().mean(0).cpu().numpy()
            count += len(pos)
            for lm in (a, b):  # token log-probabilities of the response, one more pass each
                logits = lm.model(input_ids=x).logits[0, start - 1:-1].float()
                torch.log_softmax(logits, -1).gather(-1, x[0, start:, None])
    return {"kl": kl / count, "cka": np.array([linear_cka(pooled["a"][i], pooled["b"][i]) for i in range(points)])}


def child(variant: str, n_pairs: int, batch_size: int, device: str) -> None:
    a, b = models(device)
    pairs = load_demo_pairs()[:n_pairs]
    t0 = time.perf_counter()
    if variant == "batched":
        diff = model_diff(a, b, pairs, batch_size=batch_size, lens_positions=LENS_POSITIONS)
        result = {"kl": diff.kl.tolist(), "cka": diff.cka.tolist(), "tokens": int(diff.n_tokens.sum())}
    else:
        out = naive(a, b, pairs)
        result = {"kl": out["kl"].tolist(), "cka": out["cka"].tolist()}
    result["seconds"] = time.perf_counter() - t0
    result["texts"] = 2 * len(pairs)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available() and a.device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    result["layers"], result["device"], result["dtype"] = a.n_layers, str(a.device), str(a.dtype)
    print("RESULT " + json.dumps(result))


def run_child(variant: str, n_pairs: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--pairs", str(n_pairs), "--batch-size", str(args.batch_size), "--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.exit(f"{variant} run failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description="Model diff: one batched pass per model vs a per-text, per-layer loop.")
    parser.add_argument("--pairs", type=int, default=128, help="pairs to diff (2 texts each); 128 = the issue's 256 texts")
    parser.add_argument("--naive-pairs", type=int, default=2, help="pairs the baseline is timed on (its time is scaled to --pairs)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", choices=["batched", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_pairs < 2 or args.pairs < args.naive_pairs:
        parser.error("--naive-pairs must be at least 2 (CKA compares texts) and at most --pairs")
    if args.child:
        child(args.child, args.pairs, args.batch_size, args.device)
        return
    print(f"torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    batched = run_child("batched", args.pairs, args)
    # Printed as soon as measured, so a run cut short still reports the batched figures.
    print(f"models: demo vs demo with noise on block {batched['layers'] // 2}'s MLP ({batched['layers']} layers, "
          f"{batched['device']}, {batched['dtype']})")
    print(f"texts: {batched['texts']} ({batched['tokens']} response tokens), lens KL at {LENS_POSITIONS} response positions per text")
    print(f"batched_seconds: {batched['seconds']:.2f} s ({batched['texts'] / batched['seconds']:.2f} texts/s, batch size {args.batch_size})",
          flush=True)
    check = run_child("batched", args.naive_pairs, args)
    slow = run_child("naive", args.naive_pairs, args)
    scale = args.pairs / args.naive_pairs
    naive_seconds = slow["seconds"] * scale
    print(f"naive_seconds: {naive_seconds:.2f} s (measured {slow['seconds']:.2f} s on {slow['texts']} texts, scaled by {scale:g})")
    print(f"speedup: {naive_seconds / batched['seconds']:.1f}x")
    print(f"peak_rss_batched: {batched['peak_rss_mib']:.0f} MiB; peak_rss_naive: {slow['peak_rss_mib']:.0f} MiB"
          + (f"; peak CUDA {batched['peak_cuda_mib']:.0f} / {slow['peak_cuda_mib']:.0f} MiB" if "peak_cuda_mib" in batched else ""))
    kl_diff = float(np.max(np.abs(np.array(check["kl"]) - np.array(slow["kl"]))))
    cka_diff = float(np.max(np.abs(np.array(check["cka"]) - np.array(slow["cka"]))))
    print(f"max |batched - naive| on the {slow['texts']} baseline texts: KL {kl_diff:.2e} nats, CKA {cka_diff:.2e}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
