"""Benchmark: the model diff of two demo-size checkpoints beside its FLOP floor, and beside a naive loop.

Model A is the demo model (SmolLM2-135M-Instruct); model B is a copy with noise on one middle
block's MLP weights (in memory), so the two differ from that layer on. Texts are the packaged
demo pairs (prompt + each response, rendered with the chat template): ``--pairs N`` gives 2N texts.

  1. ``model_diff`` (what ``workbench compare`` runs): ``compare_seconds``.
  2. its floor, ``floor_seconds``: the matmul FLOPs the diff cannot avoid, at the ``torch.mm``
     rate measured in the same process just before and after it: two forwards per text
     (2 x non-embedding parameters x the text's tokens, per model, no padding) plus the lens
     readout (final norm + unembedding, 2 x d x vocab) at every row it reads, per model: each
     lens position at every lens point, the preference-lens position at every point, and every
     response token at the final layer (its log-probability). ``ratio_to_floor`` is 1 for a diff
     that did nothing but those matmuls at the ``torch.mm`` rate.
  3. baseline (``--naive-pairs K``, 0 skips it): the straightforward loop, one text at a time and
     one layer at a time: for every text and every lens point, a forward pass of A and of B for
     that layer's KL and pooled state, plus one more pass each for the token log-probabilities.
     It costs the same for every text, so it is timed on the first K pairs and scaled by N / K.

Each variant runs in its own child process, so the peak resident memory printed for each is its
own (ru_maxrss of that child). Timing follows ``peers``: ``--threads`` torch threads (default 1)
and the ``--clock`` (default cpu: the process's CPU time, which a neighbour's seconds on the
cores do not inflate; a GPU uses the wall clock), the same clock for the diff and the peak.

Usage: python benchmarks/compare.py [--pairs 128] [--naive-pairs 2] [--batch-size 8] [--threads 1] [--clock cpu|wall]
The issue's full size is --pairs 128 (256 texts); on a shared 2-core CPU use e.g. --pairs 16.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import peers
import torch

from workbench.compare.diff import _encode, _lens_positions, linear_cka, model_diff
from workbench.data.demo import load_demo_pairs
from workbench.data.types import Pair
from workbench.models.adapters import residual_stream
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import LoadedModel, load_model
from workbench.settings import Settings

LENS_POSITIONS = 8
MAX_LENGTH = 512  # model_diff's default


def models(device: str) -> tuple[LoadedModel, LoadedModel]:
    path = ensure_demo_model(Settings())
    a = load_model(path, device=device, name="demo")
    b = load_model(path, device=device, name="demo-perturbed")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in b.adapter.layers(b.model)[b.n_layers // 2].mlp.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return a, b


def floor_work(lm: LoadedModel, pairs: Sequence[Pair]) -> dict[str, float]:
    """FLOPs the diff of two models shaped like ``lm`` cannot avoid on ``pairs``: forwards and lens readouts."""
    enc = _encode(lm, pairs, MAX_LENGTH)
    tokens = sum(len(ids) for ids in enc.ids)
    points = lm.n_layers + 1
    lens_rows = sum(len(_lens_positions(s, len(ids), LENS_POSITIONS)) for ids, s in zip(enc.ids, enc.starts, strict=True))
    pref_rows = sum(p >= 0 for p in enc.pref_pos)
    response = sum(len(ids) - s for ids, s in zip(enc.ids, enc.starts, strict=True))
    readouts = (lens_rows + pref_rows) * points + response
    d, vocab = lm.adapter.d_model(lm.model), lm.adapter.vocab_size(lm.model)
    forward = 2 * peers.non_embedding_params(lm) * tokens
    return {"tokens": tokens, "response_tokens": response, "readout_rows": readouts,
            "forward_flops": 2 * forward, "readout_flops": 2 * 2 * d * vocab * readouts}


def naive(a: LoadedModel, b: LoadedModel, pairs: list) -> dict[str, np.ndarray]:
    """The same per-layer KL and pooled states, one text and one layer per forward pass."""
    enc = _encode(a, pairs, MAX_LENGTH)
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


def child(variant: str, args: argparse.Namespace, n_pairs: int) -> None:
    peers.set_threads(args.threads)
    a, b = models(args.device)
    pairs = load_demo_pairs()[:n_pairs]
    cpu_clock = args.clock == "cpu"
    result: dict[str, Any] = {"texts": 2 * len(pairs), "layers": a.n_layers, "device": str(a.device), "dtype": str(a.dtype),
                              "threads": torch.get_num_threads()}
    if variant == "batched":
        peak_before = peers.matmul_flops(a.device, a.dtype, cpu_clock=cpu_clock)
        seconds, diff = peers.clocked(a.device, lambda: model_diff(a, b, pairs, batch_size=args.batch_size, lens_positions=LENS_POSITIONS,
                                                                   max_length=MAX_LENGTH), cpu_clock)
        peak_after = peers.matmul_flops(a.device, a.dtype, cpu_clock=cpu_clock)
        result.update({"kl": diff.kl.tolist(), "cka": diff.cka.tolist(), "peak": [peak_before, peak_after], **floor_work(a, pairs)})
    else:
        seconds, out = peers.clocked(a.device, lambda: naive(a, b, pairs), cpu_clock)
        result.update({"kl": out["kl"].tolist(), "cka": out["cka"].tolist()})
    result["seconds"] = seconds
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available() and a.device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result))


def run_child(variant: str, n_pairs: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--pairs", str(n_pairs), "--batch-size", str(args.batch_size),
           "--device", args.device, "--threads", str(args.threads), "--clock", args.clock]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.exit(f"{variant} run failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def report_floor(run: dict, args: argparse.Namespace) -> None:
    """The diff's figure lines: its seconds, its floor at the same run's matmul rate, and their ratio."""
    rate = float(np.median(run["peak"]))
    floor = (run["forward_flops"] + run["readout_flops"]) / rate
    print(f"models: demo vs demo with noise on block {run['layers'] // 2}'s MLP ({run['layers']} layers, {run['device']}, "
          f"{run['dtype']}, {run['threads']} torch threads, {args.clock} clock)")
    print(f"texts: {run['texts']} ({run['tokens']} tokens, {run['response_tokens']} response tokens), lens KL at "
          f"{LENS_POSITIONS} response positions per text, batch size {args.batch_size}")
    print(f"compare_seconds: {run['seconds']:.2f} s ({run['texts'] / run['seconds']:.3f} texts/s)")
    print(f"matmul_peak: {rate / 1e9:.1f} GFLOP/s (torch.mm 2048x2048, before {run['peak'][0] / 1e9:.1f} and after "
          f"{run['peak'][1] / 1e9:.1f}, same process, same clock)")
    print(f"floor_seconds: {floor:.2f} s (forwards {run['forward_flops'] / 1e12:.3f} TFLOP = {run['forward_flops'] / rate:.2f} s, "
          f"lens readouts {run['readout_rows']} rows per model, {run['readout_flops'] / 1e12:.3f} TFLOP = {run['readout_flops'] / rate:.2f} s)")
    print(f"ratio_to_floor: {run['seconds'] / floor:.2f}")
    print(f"peak_rss_batched: {run['peak_rss_mib']:.0f} MiB" + (f"; peak CUDA {run['peak_cuda_mib']:.0f} MiB" if "peak_cuda_mib" in run else ""),
          flush=True)


def report_naive(batched: dict, args: argparse.Namespace) -> None:
    """The naive loop on ``--naive-pairs``, scaled, and the batched diff's agreement with it on those texts."""
    check = run_child("batched", args.naive_pairs, args)
    slow = run_child("naive", args.naive_pairs, args)
    scale = args.pairs / args.naive_pairs
    naive_seconds = slow["seconds"] * scale
    print(f"naive_seconds: {naive_seconds:.2f} s (measured {slow['seconds']:.2f} s on {slow['texts']} texts, scaled by {scale:g})")
    print(f"ratio_vs_naive: {naive_seconds / batched['seconds']:.1f}")
    print(f"peak_rss_naive: {slow['peak_rss_mib']:.0f} MiB")
    kl_diff = float(np.max(np.abs(np.array(check["kl"]) - np.array(slow["kl"]))))
    cka_diff = float(np.max(np.abs(np.array(check["cka"]) - np.array(slow["cka"]))))
    print(f"max_abs_difference_naive: KL {kl_diff:.2e} nats, CKA {cka_diff:.2e} (on the {slow['texts']} baseline texts)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Model diff beside its FLOP floor and a per-text, per-layer loop.")
    parser.add_argument("--pairs", type=int, default=128, help="pairs to diff (2 texts each); 128 = the issue's 256 texts")
    parser.add_argument("--naive-pairs", type=int, default=2, help="pairs the baseline is timed on (scaled to --pairs; 0 skips it)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 = one per CPU), as in peers")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu", help="cpu (default): the process's CPU time on a CPU "
                        "device; wall: elapsed time. A GPU always uses the wall clock")
    parser.add_argument("--child", choices=["batched", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_pairs and (args.naive_pairs < 2 or args.pairs < args.naive_pairs):
        parser.error("--naive-pairs must be 0 or at least 2 (CKA compares texts) and at most --pairs")
    if args.child:
        child(args.child, args, args.pairs)
        return
    print(f"at_start: {peers.load_line()}", flush=True)
    batched = run_child("batched", args.pairs, args)
    report_floor(batched, args)  # printed as soon as measured, so a run cut short still reports the diff's figures
    if args.naive_pairs:
        report_naive(batched, args)
    print(f"at_end: {peers.load_line()}")


if __name__ == "__main__":
    main()
