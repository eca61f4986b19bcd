"""Benchmark: the all-layer logit lens at the last position, ours beside TransformerLens and nnsight.

Every contender reads the residual stream after the embedding and after every block (before the
final norm) at each prompt's last token out through the final norm and the unembedding, giving
fp32 lens logits ``[layers + 1, prompts, vocab]``, on the same prompts in the same batches
(sorted by length, right-padded):
  ours             ``workbench.lenses.lens.lens_logits`` (only the requested positions are unembedded)
  transformerlens  ``run_with_cache`` + ``cache.accumulated_resid`` + ``ln_final`` + ``unembed``
  nnsight          ``trace`` saving every layer's output, then the model's own norm and LM head
The run is ``--rounds`` short rounds (at least one per batch): a round is one batch, every
contender once on it, a different one first each round, so load that comes and goes slows the
contenders of a round alike. Printed: prompt-layers/s per contender (median and IQR over
rounds), ``ratio_vs_<peer>`` (the median of the per-round ratios ours ÷ theirs in throughput,
> 1 means ours is faster) with ``ratio_vs_<peer>_iqr``, and the largest difference of the lens
log-probabilities to ours. Every contender runs with the same torch thread count (``--threads``).

``--baseline-layers K`` additionally times lens *metrics* (entropy, KL to the final layer, token-set
mass, rank) from one pass against a per-layer recomputation (one forward per layer) on K evenly
spaced layers, scaled by (layers + 1) / K.
Prompts: 4-shot fr→zh translation prompts from the packaged word list.

Usage: python benchmarks/lens.py [--n 64] [--batch-size 16] [--rounds 8] [--threads 1] [--peers all|none|name,...] [--baseline-layers K]
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from peers import (
    add_round_args,
    interleave,
    interpretability_peers,
    load_line,
    machine_line,
    report_rounds,
    set_threads,
)

from workbench.lenses import make_task, packaged_words, word_token_set
from workbench.lenses.lens import LN2, batch_inputs, encode, lens_logits, lens_metrics
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
                inputs = batch_inputs(lm, [ids[i] for i in idx])
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


# A contender maps one batch of id lists to lens logits [layers + 1, batch, vocab] (fp32, on the device).
Lens = Callable[[list[list[int]]], torch.Tensor]


def _last(lm: LoadedModel, batch: list[list[int]], states: list[torch.Tensor]) -> torch.Tensor:
    rows = torch.arange(len(batch), device=lm.device)
    last = torch.tensor([len(ids) - 1 for ids in batch], device=lm.device)
    return torch.stack([s[rows, last.to(s.device)] for s in states])


def tl_lens(lm: LoadedModel, tl: object) -> Lens:
    # accumulated_resid reads every block's resid_pre and the last block's resid_post.
    names = {*(f"blocks.{i}.hook_resid_pre" for i in range(lm.n_layers)), f"blocks.{lm.n_layers - 1}.hook_resid_post"}

    def lens(batch: list[list[int]]) -> torch.Tensor:
        inputs = batch_inputs(lm, batch)
        _, cache = tl.run_with_cache(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                     names_filter=lambda name: name in names, return_type=None)
        resid = cache.accumulated_resid(incl_mid=False)  # [layers + 1, batch, pos, d]
        return tl.unembed(tl.ln_final(_last(lm, batch, list(resid)))).float()
    return lens


def nnsight_lens(lm: LoadedModel, nm: object) -> Lens:
    def lens(batch: list[list[int]]) -> torch.Tensor:
        saved: list[object] = []
        with nm.trace(batch_inputs(lm, batch), use_cache=False):
            saved.append(nm.model.embed_tokens.output.save())
            for i in range(lm.n_layers):
                saved.append(nm.model.layers[i].output.save())
        states = [s[0] if isinstance(s, tuple) else s for s in saved]
        return lm.adapter.logits(lm.model, _last(lm, batch, states)).float()
    return lens


def run_lens(lm: LoadedModel, ids: list[list[int]], order: list[int], batch_size: int, lens: Lens) -> torch.Tensor:
    """Lens log-probabilities [layers + 1, prompts, vocab] in the prompts' order."""
    out = []
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            out.append(torch.log_softmax(lens([ids[i] for i in order[b:b + batch_size]]), -1))
    return torch.cat(out, 1)[:, torch.argsort(torch.tensor(order))]


def compare_peers(lm: LoadedModel, prompts: list[str], batch_size: int, rounds: int, peers: str, clock: str = "cpu") -> dict[str, float]:
    """Print the side-by-side lens figures from interleaved rounds; return ``ratio_vs_<peer>`` medians.

    A round is one batch of ``batch_size`` prompts, every contender once on it (order rotated);
    rounds walk through the batches, at least ``rounds`` of them and at least once over all prompts.
    """
    wanted = {"transformerlens", "nnsight"} if peers == "all" else set() if peers == "none" else set(peers.split(","))
    contenders: dict[str, Lens] = {"ours": lambda batch: lens_logits(lm, batch, [-1])[:, :, 0]}
    makers = {"transformerlens": tl_lens, "nnsight": nnsight_lens}
    contenders.update(interpretability_peers(lm, wanted, lambda name, peer: makers[name](lm, peer)))
    ids = encode(lm, prompts)
    for lens in contenders.values():  # warm-up
        run_lens(lm, ids[:2], [0, 1], 2, lens)
    chunks = [ids[c:c + batch_size] for c in range(0, len(ids), batch_size)]
    orders = [sorted(range(len(part)), key=lambda i, part=part: len(part[i])) for part in chunks]
    rounds = max(rounds, len(chunks))
    print(f"{rounds} rounds of one batch each, {clock} clock")
    diffs = dict.fromkeys(contenders, 0.0)

    def check(r: int, outputs: dict[str, torch.Tensor]) -> None:
        for name in outputs:
            diffs[name] = max(diffs[name], float((outputs[name] - outputs["ours"]).abs().max()))

    seconds = interleave({name: lambda r, lens=lens: run_lens(lm, chunks[r % len(chunks)], orders[r % len(chunks)], batch_size, lens)
                          for name, lens in contenders.items()}, rounds, lm.device, check,
                         cpu_clock=clock == "cpu")
    work = [len(chunks[r % len(chunks)]) * (lm.n_layers + 1) for r in range(rounds)]
    ratios = report_rounds(seconds, work, "prompt-layers/s", metric="prompt_layers_per_s")
    for name in ratios:
        print(f"max_abs_difference_{name}: {diffs[name]:.2e} (lens log-probabilities, all layers)")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--peers", default="all", help="all, none, or a comma list of transformerlens,nnsight")
    parser.add_argument("--baseline-layers", type=int, default=None, help="also time metrics vs a per-layer baseline on K layers")
    parser.add_argument("--device", default="auto")
    add_round_args(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    lm = load_model(ensure_demo_model(Settings()), device=args.device, name="SmolLM2-135M-Instruct")
    prompts, sets, targets = prompts_and_sets(lm, args.n)
    n_tokens = sum(len(x) for x in encode(lm, prompts))
    print(machine_line(lm))
    print(f"model: {lm.name} ({lm.n_layers} layers); prompts: {len(prompts)} ({n_tokens} tokens), batch size {args.batch_size}")
    compare_peers(lm, prompts, args.batch_size, args.rounds, args.peers, args.clock)
    if args.baseline_layers:
        metrics_vs_per_layer(lm, prompts, sets, targets, args.batch_size, args.baseline_layers)
    print(f"at_end: {load_line()}")


def metrics_vs_per_layer(lm: LoadedModel, prompts: list[str], sets: dict[str, list[list[int]]], targets: list[int],
                         batch_size: int, baseline_layers: int) -> None:
    """Lens metrics from one pass vs one forward per layer (the same metrics for that layer)."""
    lens_metrics(lm, prompts[:batch_size], token_sets={k: v[:batch_size] for k, v in sets.items()})  # warm-up
    t0 = time.perf_counter()
    fast = lens_metrics(lm, prompts, token_sets=sets, targets={"target": targets}, batch_size=batch_size)
    t_fast = time.perf_counter() - t0
    n_points = lm.n_layers + 1
    k = min(baseline_layers, n_points)
    layers = sorted({round(i * (n_points - 1) / max(k - 1, 1)) for i in range(k)})
    t0 = time.perf_counter()
    slow = per_layer_baseline(lm, prompts, sets, targets, batch_size, layers)
    t_slow = (time.perf_counter() - t0) * n_points / len(layers)
    diff = max(
        float(np.abs(fast.entropy[:, layers, 0] - slow["entropy"][:, layers]).max()),
        float(np.abs(fast.kl_to_final[:, layers, 0] - slow["kl"][:, layers]).max()),
        *(float(np.abs(fast.mass[k][:, layers, 0] - slow[k][:, layers]).max()) for k in sets),
    )
    rank_mismatch = float((fast.rank["target"][:, layers, 0] != slow["rank"][:, layers]).mean())
    points = len(prompts) * n_points
    scaled = f" (timed on layers {layers}, scaled by {n_points}/{len(layers)})" if len(layers) < n_points else ""
    print(f"metrics_one_pass_seconds: {t_fast:.2f} s ({points / t_fast:.0f} prompt-layers/s)")
    print(f"metrics_per_layer_baseline_seconds: {t_slow:.2f} s ({points / t_slow:.0f} prompt-layers/s){scaled}")
    print(f"metrics_speedup: {t_slow / t_fast:.1f}x (one forward pass for all {n_points} lens points vs one per layer)")
    print(f"metrics_max_abs_difference: {diff:.2e} (entropy, KL, token-set mass); rank mismatches: {rank_mismatch:.2%}")


if __name__ == "__main__":
    main()
