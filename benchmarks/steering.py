"""Steering cost on the demo model: steered vs unsteered generation speed, best-of-n reranking cost.

    .venv/bin/python benchmarks/steering.py [--tokens 64] [--repeats 5] [--n 8] [--threads 0]
    .venv/bin/python benchmarks/steering.py --evidence [--threads 1]


1. tokens/s of Hugging Face ``generate`` (greedy, a fixed number of new tokens) without hooks
   and inside ``SteeringVector.apply`` (one vector, and three vectors at once); the ratio
   steered/unsteered is the figure of merit (target ≥ 0.9). Runs alternate, medians are reported.
2. tokens/s of the paired decoder (``decode_rows``: unsteered + steered rows in one batch with
   shared noise), per output row, against unsteered ``generate`` of one row.
3. best-of-n: generation time and reward-scoring time per candidate (one extra forward pass over
   prompt + response through the frozen model), and scoring as a share of the whole.

The directions and reward heads are random: the cost does not depend on their values.

``--evidence`` instead runs the behavioural evidence for docs/steering.md: a verbosity
vector's dose-response on the demo model, reward-head held-out accuracies on the demo
pairs, and (when ../shared/data is present) a Bradley–Terry head on HH-RLHF chosen/rejected.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from workbench.models.embedded import ensure_demo_model
from workbench.models.generation import SamplingSettings
from workbench.models.loading import load_model
from workbench.preference.reward_heads import RewardModel
from workbench.settings import Settings
from workbench.steering.decoding import generate_rows
from workbench.steering.dpa import angle_direction, best_of_n
from workbench.steering.vectors import SteeringVector, steer

PROMPT = "Tell me about the history of the moon landing."


def _fixed_generate(lm, tokens: int) -> float:
    """Seconds for one greedy generation of exactly ``tokens`` new tokens."""
    enc = lm.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    t0 = time.perf_counter()
    with torch.inference_mode():
        lm.model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    return time.perf_counter() - t0


def evidence(lm) -> None:
    """Behavioural numbers on real data (the docs quote them)."""
    import json
    from pathlib import Path

    from workbench.data.types import Pair
    from workbench.preference.reward_heads import AspectComparison, comparisons_from_poles, train_reward_model
    from workbench.steering.contrastive import attribute_set, contrastive_vectors
    from workbench.steering.sweep import dose_response

    root = Path(__file__).resolve().parents[1]
    try:
        from workbench.data.demo import load_demo_pairs

        pairs, source = load_demo_pairs(), "demo dataset"
    except Exception:  # the packaged demo pairs are missing: use the test fixture made the same way
        fixtures = root / "tests" / "fixtures" / "steering"
        pairs = [Pair.from_dict(r) for f in ("verbosity_pairs.json", "formality_pairs.json")
                 for r in json.loads((fixtures / f).read_text(encoding="utf-8"))]
        source = "tests/fixtures/steering"
    data = attribute_set(pairs, "verbosity", "verbose")
    print(f"verbosity pairs: {len(data.prompts)} from {source}")
    vectors = contrastive_vectors(lm, data, [8, 12, 16, 20])
    print("\n| layer | scale | accuracy | separation |\n|---|---|---|---|")
    for layer, v in vectors.items():
        print(f"| {layer} | {v.scale:.2f} | {v.info['accuracy']:.2f} | {v.info['separation']:.2f} |")
    # The demo model's default answers run into any small length cap, so ask for short answers.
    prompts = ["What is a noun?", "What is a volcano?", "How do magnets work?"]
    sweep = dose_response(lm, vectors[12], prompts, [-2, -1, 1, 2], system="Answer in two or three sentences.",
                          settings=SamplingSettings(max_new_tokens=128, do_sample=False, repetition_penalty=1.1))
    print("\n| coefficient | length (tokens) | KL (nats/token) | repetition | compression | usable |\n|---|---|---|---|---|---|")
    for r in sweep.rows():
        print(f"| {r['coefficient']:+g} | {r['length']:.1f} | {r['kl']:.3f} | {r['repetition']:.3f} | {r['compression']:.2f} | {r['usable']} |")
    print(f"suggested usable range: {sweep.usable}")
    comps = comparisons_from_poles(pairs, {"verbosity": "verbose", "formality": "formal", "confidence": "hedged", "example": "with_example"})
    for layer in (10, 20):
        rm = train_reward_model(lm, name="evidence", layer=layer, comparisons=comps)
        accs = ", ".join(f"{a} {m['heldout_pairwise_accuracy']:.2f} (n_test {m['n_test']})" for a, m in rm.metrics.items())
        print(f"reward heads, layer {layer}: {accs}")
    hh = root.parent / "shared" / "data" / "preference" / "hh-rlhf-harmless-base-test.jsonl.gz"
    if not hh.exists():
        print(f"({hh} not found: HH-RLHF evidence skipped)")
        return
    from workbench.data.readers import read_pairs

    hh_pairs = [p for p in read_pairs(hh, limit=200) if p.chosen and p.rejected][:160]
    hh_comps = [AspectComparison(p.prompt, p.chosen, p.rejected, "harmless", "A") if i % 2 else
                AspectComparison(p.prompt, p.rejected, p.chosen, "harmless", "B") for i, p in enumerate(hh_pairs)]
    for layer in (20,):
        rm = train_reward_model(lm, name="hh", layer=layer, comparisons=hh_comps, l2=10.0)
        m = rm.metrics["harmless"]
        print(f"HH-RLHF harmless-base, {len(hh_comps)} pairs, layer {layer}: held-out pairwise accuracy {m['heldout_pairwise_accuracy']:.3f} "
              f"(n_test {m['n_test']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--evidence", action="store_true", help="run the behavioural evidence instead of the timings")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(ensure_demo_model(Settings()), name="SmolLM2-135M-Instruct")
    if args.evidence:
        evidence(lm)
        return
    d, n_layers = lm.adapter.d_model(lm.model), lm.n_layers
    g = torch.Generator().manual_seed(0)
    vectors = [SteeringVector(f"v{i}", layer, torch.randn(d, generator=g), scale=4.0) for i, layer in enumerate((12, 16, 20))]
    print(f"device {lm.device}, dtype {lm.dtype}, torch threads {torch.get_num_threads()}, {args.tokens} new tokens, {args.repeats} repeats")

    _fixed_generate(lm, 8)  # warm-up
    times: dict[str, list[float]] = {"unsteered": [], "steered (1 vector)": [], "steered (3 vectors)": []}
    for _ in range(args.repeats):
        times["unsteered"].append(_fixed_generate(lm, args.tokens))
        with vectors[0].apply(lm, 1.0):
            times["steered (1 vector)"].append(_fixed_generate(lm, args.tokens))
        with steer(lm, [(v, 1.0) for v in vectors]):
            times["steered (3 vectors)"].append(_fixed_generate(lm, args.tokens))
    base = args.tokens / statistics.median(times["unsteered"])
    print("\n== generate(): tokens/s (median) ==")
    for name, ts in times.items():
        rate = args.tokens / statistics.median(ts)
        print(f"{name:22s} {rate:8.1f} tok/s   ratio to unsteered {rate / base:5.3f}")

    settings = SamplingSettings(max_new_tokens=args.tokens, temperature=1.0, top_p=1.0, top_k=0, seed=0)
    paired = []
    for _ in range(max(1, args.repeats // 2)):
        t0 = time.perf_counter()
        rows = generate_rows(lm, PROMPT, [vectors[0]], [[0.0], [1.0]], settings)
        paired.append((time.perf_counter() - t0, sum(r.n_tokens for r in rows), max(r.n_tokens for r in rows)))
    secs, toks, steps = min(paired)
    print("\n== paired decoder (unsteered + steered rows, one batch) ==")
    print(f"{toks} tokens in {secs:.2f} s over {steps} steps: {toks / secs:.1f} tok/s of output, {steps / secs:.1f} steps/s "
          f"(ratio to unsteered generate(), per output token: {toks / secs / base:.3f})")

    rng = np.random.default_rng(0)
    rm = RewardModel("bench", lm.name, str(lm.path), n_layers * 2 // 3, ["a", "b"], ["ridge", "ridge"], rng.normal(size=(2, d)),
                     np.zeros(2), np.zeros(d), np.ones(d))
    best_of_n(lm, PROMPT, rm, angle_direction(30), n=2, settings=SamplingSettings(max_new_tokens=8, seed=0))  # warm-up
    res = best_of_n(lm, PROMPT, rm, angle_direction(30), n=args.n, settings=SamplingSettings(max_new_tokens=args.tokens, seed=0))
    gen_per = res.timings["generate_s"] / args.n
    score_per = res.timings["score_s_per_candidate"]
    print(f"\n== best-of-{args.n} reranking ==")
    print(f"generation {gen_per * 1000:.0f} ms per candidate, reward scoring {score_per * 1000:.1f} ms per candidate "
          f"(scoring / generation {score_per / gen_per:.3f}; scoring is {100 * score_per / (gen_per + score_per):.1f}% of best-of-n time)")


if __name__ == "__main__":
    main()
