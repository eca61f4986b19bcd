"""Benchmark: all-layer residual activations of the demo model, ours beside the peers.

Every contender does the same work on the same texts, sorted by length and right-padded, in
batches of ``--batch-size`` (ours, as in the app, also keeps a CPU batch under
``CPU_BATCH_TOKENS`` padded tokens, because larger ones are slower per token there): the residual stream after the embedding and after every block (before the
final norm), pooled on the device ("mean" over each text's tokens, or "tokens": every real
token's row), copied to host memory as float32 numpy arrays.
  ours              ``extract_activations`` (no LM head: one-position logits)
  hf_batched        the plain Hugging Face base model, ``output_hidden_states=True``, batched
  hf_one_at_a_time  the same, one text per forward
  transformerlens   ``run_with_cache`` with a ``names_filter`` on every ``resid_post``
  nnsight           ``trace`` saving the embedding's and every layer's output
Peers reuse one pooling function, so only the forward and the capture differ. The run is
``--rounds`` short rounds (at least one per batch of texts): a round is one batch, every
contender once on it, a different one first each round, and the matmul peak sampled after it,
so load that comes and goes slows the contenders of a round alike and cancels in that round's
ratio. Printed: tokens/s per contender (median and IQR over rounds), ``ratio_vs_<peer>`` (the
median of the per-round ratios ours ÷ theirs, > 1 means ours is faster) with
``ratio_vs_<peer>_iqr``, the largest difference to ours, and model FLOP/s as a fraction of the
measured ``torch.mm`` peak. Every contender runs with the same torch thread count (``--threads``),
timed by the process's CPU time on a CPU device (``--clock cpu``, the default) or the wall clock.

Usage: python benchmarks/activations.py [--n 32] [--batch-size 16] [--rounds 8] [--threads 1] [--clock cpu|wall] [--pooling mean|tokens]
                                        [--peers all|none|name,...] [--device auto] [--dtype auto]
"""
from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from peers import (
    add_round_args,
    interleave,
    interpretability_peers,
    load_line,
    machine_line,
    matmul_flops,
    non_embedding_params,
    report_rounds,
    set_threads,
    spread,
    sync,
    timed,
)

from workbench.activations import ActivationCache, extract_activations, pair_texts
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import LoadedModel, load_model
from workbench.settings import Settings

DEMO_PAIRS = Path(__file__).resolve().parents[1] / "workbench" / "data" / "demo" / "demo_pairs.jsonl"
WORDS = (
    "the a model answer prefers concise helpful honest response question because however which explains "
    "preference reward policy human label annotator tie better worse clearly example data training token "
    "layer residual stream direction steering vector probe linear safe harmful polite short long detailed"
).split()
# States per batch: one [batch, width, d] tensor per residual layer (embedding first).
Capture = Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]]


def demo_texts(tokenizer: object, n: int) -> tuple[list[str], bool, str]:
    """Prompt+response texts from the packaged demo pairs, or deterministic generated texts."""
    if DEMO_PAIRS.exists():
        from workbench.data.readers import read_pairs

        pairs = read_pairs(DEMO_PAIRS)
        if pairs:
            rendered = pair_texts(pairs, tokenizer)
            texts = (rendered.texts * (n // len(rendered.texts) + 1))[:n]
            return texts, rendered.add_special_tokens, f"{DEMO_PAIRS.name} ({len(pairs)} pairs, chat template)"
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 160))).capitalize() + "." for _ in range(n)]
    return texts, True, "generated (seeded) texts of 8-160 words"


def pool(states: list[torch.Tensor], mask: torch.Tensor, pooling: str) -> np.ndarray:
    """[layers, rows, d] float32 on the host: the mean over real tokens, or every real token's row."""
    if pooling == "mean":
        w = mask.to(states[0].device, torch.float32)
        return torch.stack([torch.einsum("bld,bl->bd", s.float(), w) / w.sum(1, keepdim=True) for s in states]).cpu().numpy()
    keep = mask.bool().to(states[0].device)
    return torch.stack([s[keep].float() for s in states]).cpu().numpy()


def run_peer(lm: LoadedModel, texts: list[str], add_special: bool, batch_size: int, pooling: str, capture: Capture) -> np.ndarray:
    """One peer over ``texts`` in our batches; rows back in the texts' order."""
    ids = lm.tokenizer(texts, add_special_tokens=add_special)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad = lm.tokenizer.pad_token_id or 0
    parts, owners = [], []
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            parts.append(pool(capture(input_ids.to(lm.device), mask.to(lm.device)), mask, pooling))
            owners += [[i] * (len(ids[i]) if pooling == "tokens" else 1) for i in rows]
    out = np.concatenate(parts, axis=1)
    # Stable sort by owning text restores the texts' order (token rows keep their order within a text).
    return out[:, np.argsort(np.concatenate(owners), kind="stable")]


def hf_capture(lm: LoadedModel) -> Capture:
    base, last = lm.model.model, lm.adapter.layers(lm.model)[-1]

    def capture(input_ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        raw: list[torch.Tensor] = []  # hidden_states[-1] is after the final norm: take the last block's own output
        handle = last.register_forward_hook(lambda _m, _a, out: raw.append(out[0] if isinstance(out, tuple) else out))
        try:
            states = base(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states
        finally:
            handle.remove()
        return [*states[:-1], raw[0]]
    return capture


def hf_one_at_a_time(lm: LoadedModel, texts: list[str], add_special: bool, pooling: str) -> np.ndarray:
    capture = hf_capture(lm)
    return np.concatenate([run_peer(lm, [t], add_special, 1, pooling, capture) for t in texts], axis=1)


def tl_capture(tl: object, n_layers: int) -> Capture:
    names = {"blocks.0.hook_resid_pre", *(f"blocks.{i}.hook_resid_post" for i in range(n_layers))}

    def capture(input_ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        _, cache = tl.run_with_cache(input_ids, attention_mask=mask, names_filter=lambda name: name in names, return_type=None)
        return [cache["blocks.0.hook_resid_pre"], *(cache[f"blocks.{i}.hook_resid_post"] for i in range(n_layers))]
    return capture


def nnsight_capture(nm: object, n_layers: int) -> Capture:
    def capture(input_ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        saved: list[object] = []
        with nm.trace({"input_ids": input_ids, "attention_mask": mask}, use_cache=False):
            saved.append(nm.model.embed_tokens.output.save())
            for i in range(n_layers):
                saved.append(nm.model.layers[i].output.save())
        return [s[0] if isinstance(s, tuple) else s for s in saved]
    return capture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="number of texts (default 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per batch, and per round")
    parser.add_argument("--pooling", choices=("mean", "tokens"), default="mean")
    parser.add_argument("--peers", default="all", help="all, none, or a comma list of hf_batched,hf_one_at_a_time,transformerlens,nnsight")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    add_round_args(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    run_benchmark(load_model(ensure_demo_model(Settings()), device=args.device, dtype=args.dtype, name="SmolLM2-135M-Instruct"),
                  args.n, args.batch_size, args.rounds, args.pooling, args.peers, args.clock)


def run_benchmark(lm: LoadedModel, n: int, batch_size: int, rounds: int, pooling: str, peers: str, clock: str = "cpu") -> dict[str, float]:
    """Print every figure; return ``ratio_vs_<peer>`` medians per peer.

    A round is one batch of ``batch_size`` texts, every contender once on it (order rotated);
    rounds walk through the texts' batches in turn, at least ``rounds`` of them and at least
    once over all ``n`` texts, so each round is short and the load it meets hits all alike.
    """
    texts, add_special, source = demo_texts(lm.tokenizer, n)
    n_chunks = -(-len(texts) // batch_size)
    rounds = max(rounds, n_chunks)
    chunks = [texts[c * batch_size:(c + 1) * batch_size] for c in range(n_chunks)]
    chunk_tokens = [sum(map(len, lm.tokenizer(part, add_special_tokens=add_special)["input_ids"])) for part in chunks]
    work = [chunk_tokens[r % n_chunks] for r in range(rounds)]
    print(machine_line(lm))
    print(f"texts: {len(texts)} from {source}, {sum(chunk_tokens)} tokens, {lm.n_layers + 1} residual layers, pooling {pooling}, "
          f"batch size {batch_size}; {rounds} rounds of one batch each ({sum(work)} tokens per contender), {clock} clock")
    wanted = {"hf_batched", "hf_one_at_a_time", "transformerlens", "nnsight"} if peers == "all" else (
        set() if peers == "none" else set(peers.split(",")))
    contenders: dict[str, Callable[[list[str]], np.ndarray]] = {}
    layers = list(range(lm.n_layers + 1))

    def ours(part: list[str]) -> np.ndarray:
        acts = extract_activations(lm, part, pooling=pooling, batch_size=batch_size, add_special_tokens=add_special)
        return np.stack([acts.get(layer) for layer in layers])

    contenders["ours"] = ours
    if "hf_batched" in wanted:
        contenders["hf_batched"] = lambda part: run_peer(lm, part, add_special, batch_size, pooling, hf_capture(lm))
    if "hf_one_at_a_time" in wanted:
        contenders["hf_one_at_a_time"] = lambda part: hf_one_at_a_time(lm, part, add_special, pooling)
    captures = {"transformerlens": tl_capture, "nnsight": nnsight_capture}

    def peer_contender(name: str, peer: object) -> Callable[[list[str]], np.ndarray]:
        capture = captures[name](peer, lm.n_layers)
        return lambda part: run_peer(lm, part, add_special, batch_size, pooling, capture)

    contenders.update(interpretability_peers(lm, wanted, peer_contender))

    for fn in contenders.values():  # warm-up: allocator, kernels, first-call set-up
        fn(texts[:2])
    diffs = dict.fromkeys(contenders, 0.0)
    peaks: list[float] = []

    def check(r: int, outputs: dict[str, np.ndarray]) -> None:
        """Largest difference to ours, and the matmul peak sampled between rounds."""
        for name in outputs:
            diffs[name] = max(diffs[name], float(np.abs(outputs[name] - outputs["ours"]).max()))
        peaks.append(matmul_flops(lm.device, lm.dtype, reps=3, cpu_clock=clock == "cpu"))

    seconds = interleave({name: lambda r, fn=fn: fn(chunks[r % n_chunks]) for name, fn in contenders.items()}, rounds, lm.device, check,
                         cpu_clock=clock == "cpu")
    sync(lm.device)
    ratios = report_rounds(seconds, work, "tokens/s", metric="tokens_per_s")
    for name in ratios:
        print(f"max_abs_difference_{name}: {diffs[name]:.2e} (all {lm.n_layers + 1} layers, {pooling} pooling)")
    flops = 2 * non_embedding_params(lm) * np.asarray(work) / np.asarray(seconds["ours"])
    dtype = str(lm.dtype).removeprefix("torch.")
    print(f"matmul_peak: {spread(np.asarray(peaks) / 1e9, ',.1f')} GFLOP/s (torch.mm 2048x2048 {dtype}, sampled after each round)")
    print(f"model_flops: {spread(flops / 1e9, ',.1f')} GFLOP/s (2 x {non_embedding_params(lm) / 1e6:.1f}M non-embedding params x ours tokens/s)")
    print(f"fraction_of_matmul_peak: {spread(flops / np.asarray(peaks))} (ours in a round / the peak right after it)")
    with tempfile.TemporaryDirectory() as tmp:  # a cache hit is a file read: shown on a few texts
        cache = ActivationCache(Path(tmp))
        few = texts[:4]
        first, _ = timed(lm.device, lambda: extract_activations(lm, few, pooling=pooling, cache=cache, add_special_tokens=add_special))
        hit, acts = timed(lm.device, lambda: extract_activations(lm, few, pooling=pooling, cache=cache, add_special_tokens=add_special))
        assert acts.from_cache
    print(f"cache_hit_seconds: {hit * 1e3:.1f} ms for {len(few)} texts (first request {first:.2f} s, speedup {first / hit:,.0f}x)")
    print(f"at_end: {load_line()}")
    return ratios


if __name__ == "__main__":
    main()
