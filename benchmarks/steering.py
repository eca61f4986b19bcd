"""Steering cost on the demo model: steered vs unsteered generation speed, best-of-n reranking cost.

    .venv/bin/python benchmarks/steering.py [--tokens 64] [--rounds 8] [--n 8] [--threads 1]
    .venv/bin/python benchmarks/steering.py --evidence [--threads 1]


1. tokens/s of Hugging Face ``generate`` (greedy, a fixed number of new tokens) without hooks
   and steered by the same vector at the same block through ours (``SteeringVector.apply``; also
   three vectors at once), steering-vectors' ``SteeringVector.apply`` and repeng's ``ControlModel``;
   steered/unsteered per library (target ≥ 0.95) and ``ratio_vs_<peer>`` (our steered tokens/s ÷
   theirs); the greedy outputs must agree. ``--rounds`` interleaved rounds, each contender
   once per round, order rotated; medians and IQRs over rounds, ratios per round.
2. tokens/s of the paired decoder (``decode_rows``: unsteered + steered rows in one batch with
   shared noise), per output row, against unsteered ``generate`` of one row.
3. steering-vector fit (``contrastive_vectors`` on ``--fit-pairs`` demo verbosity pairs): seconds,
   tokens forwarded and the bound at the measured matmul rate (2 x non-embedding params x tokens
   / torch.mm FLOP/s); then a second fit at other layers with the same cache (a read).
4. best-of-n: generation time and reward-scoring time per candidate (one extra forward pass over
   prompt + response through the frozen model), and scoring as a share of the whole.

The directions and reward heads are random: the cost does not depend on their values.

``--evidence`` instead runs the behavioural evidence for docs/steering.md: a verbosity
vector's dose-response on the demo model, reward-head held-out accuracies on the demo
pairs, and (when ../shared/data is present) a Bradley–Terry head on HH-RLHF chosen/rejected.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import peers
import torch
from peers import add_round_args, interleave, machine_line, median_iqr, report_rounds, round_ratios, set_threads, spread, sync

from workbench.jobs.options import SamplingOptions
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import load_model
from workbench.preference.reward_heads import RewardModel
from workbench.settings import Settings
from workbench.steering.decoding import generate_rows
from workbench.steering.dpa import angle_direction, best_of_n
from workbench.steering.vectors import SteeringVector, steer

PROMPT = "Tell me about the history of the moon landing."


def _fixed_generate(lm, tokens: int) -> tuple[float, list[int]]:
    """(seconds, token ids) of one greedy generation of exactly ``tokens`` new tokens."""
    enc = lm.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(**enc.to(lm.device), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id)
    sync(lm.device)
    return time.perf_counter() - t0, out[0].tolist()


def steered_generation(lm, vectors: list[SteeringVector], tokens: int, rounds: int, clock: str = "cpu") -> dict[str, float]:
    """Unsteered vs steered greedy generation, ours and the peers on one vector, in interleaved rounds.

    Returns the ``ratio_vs_<peer>`` medians and the unsteered tokens/s (median over rounds).
    """
    vec = vectors[0]
    block = vec.layer - 1  # our layer i is the output of block i-1, the peers' layer index
    delta = vec.vector().to(lm.device, lm.dtype)
    runs: dict[str, Callable[[], tuple[float, list[int]]]] = {"unsteered": lambda: _fixed_generate(lm, tokens)}

    def ours() -> tuple[float, list[int]]:
        with vec.apply(lm, 1.0):
            return _fixed_generate(lm, tokens)

    def three() -> tuple[float, list[int]]:
        with steer(lm, [(v, 1.0) for v in vectors]):
            return _fixed_generate(lm, tokens)

    runs["ours"], runs["ours_3_vectors"] = ours, three
    sv_cls, why = peers.steering_vectors(lm)
    if sv_cls is None:
        print(f"steering_vectors: cannot run here: {why}")
    else:
        sv = sv_cls(layer_activations={block: delta}, layer_type="decoder_block")

        def theirs() -> tuple[float, list[int]]:
            with sv.apply(lm.model, multiplier=1.0):
                return _fixed_generate(lm, tokens)
        runs["steering_vectors"] = theirs
    repeng, why = peers.repeng(lm)
    if repeng is None:
        print(f"repeng: cannot run here: {why}")
    else:
        control = repeng.ControlVector(model_type=lm.model.config.model_type, directions={block: delta.float().cpu().numpy()})

        def controlled() -> tuple[float, list[int]]:
            cm = repeng.ControlModel(lm.model, [block])  # wraps the block in place; unwrapped again below
            try:
                cm.set_control(control, 1.0)
                return _fixed_generate(lm, tokens)
            finally:
                cm.unwrap()
        runs["repeng"] = controlled

    set_threads(torch.get_num_threads())  # again after the peers' imports: none keeps a thread count of its own
    _fixed_generate(lm, 8)  # warm-up
    outputs: dict[str, list[int]] = {}

    def keep(r: int, out: dict[str, tuple[float, list[int]]]) -> None:
        outputs.update({name: ids for name, (_, ids) in out.items()})

    # A round is one greedy generation per contender, order rotated, timed around the whole call (apply/wrap included).
    seconds = interleave({name: lambda r, run=run: run() for name, run in runs.items()}, rounds, lm.device, keep, cpu_clock=clock == "cpu")
    print(f"\n== generate(): {tokens} new tokens, greedy, {rounds} interleaved rounds, {clock} clock ==")
    peer_names = [name for name in ("steering_vectors", "repeng") if name in runs]
    ratios = report_rounds(seconds, tokens, "tokens/s", metric="tokens_per_s", peers=peer_names, ratio_fmt=".3f")
    for name in peer_names:
        print(f"greedy_output_{name}: {'same as' if outputs[name] == outputs['ours'] else 'DIFFERS from'} ours")
    for name in ("ours", "ours_3_vectors"):
        print(f"steering_overhead_{name}: {spread(round_ratios(seconds, name, 'unsteered'), '.3f')} "
              "(steered / unsteered tokens/s in the same round; target >= 0.95)")
    ratios["unsteered_tokens_per_s"] = median_iqr(tokens / np.asarray(seconds["unsteered"]))[0]
    return ratios


def fit_cost(lm, n_pairs: int, cpu_clock: bool) -> None:
    """Steering-vector fit time vs what the matmuls alone would take (fit and matmul rate on one clock); a refit from the cache."""
    import tempfile
    from pathlib import Path

    from workbench.activations import ActivationCache, chat_texts
    from workbench.data.demo import load_demo_pairs
    from workbench.steering.contrastive import CLIP_MARGIN, attribute_set, clip_responses, contrastive_vectors

    data = attribute_set(load_demo_pairs(), "verbosity", "verbose")
    data.prompts, data.positive, data.negative = data.prompts[:n_pairs], data.positive[:n_pairs], data.negative[:n_pairs]
    clipped = clip_responses(lm.tokenizer, data.positive + data.negative, 16 + CLIP_MARGIN)
    rendered = chat_texts(data.prompts * 2, clipped, lm.tokenizer)
    n_tokens = sum(map(len, lm.tokenizer(rendered.texts, add_special_tokens=rendered.add_special_tokens)["input_ids"]))
    peak = peers.matmul_flops(lm.device, lm.dtype, cpu_clock=cpu_clock)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ActivationCache(Path(tmp))
        first, _ = peers.clocked(lm.device, lambda: contrastive_vectors(lm, data, [8, 12, 16, 20], cache=cache), cpu_clock)
        refit, _ = peers.clocked(lm.device, lambda: contrastive_vectors(lm, data, [10, 14], method="pca", cache=cache), cpu_clock)
    bound = 2 * peers.non_embedding_params(lm) * n_tokens / peak
    print(f"\n== steering-vector fit, {len(data.prompts)} verbosity pairs ({n_tokens} tokens forwarded) ==")
    print(f"steering_fit_seconds: {first:.2f} s (matmul bound {bound:.2f} s at {peak / 1e9:.1f} GFLOP/s: {bound / first:.2f} of it)")
    print(f"steering_refit_from_cache_seconds: {refit:.3f} s (other layers and method, same cache entry)")


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
                          settings=SamplingOptions(max_new_tokens=128, do_sample=False, repetition_penalty=1.1))
    print("\n| coefficient | length (tokens) | KL (nats/token) | repetition | compression | usable |\n|---|---|---|---|---|---|")
    for r in sweep.rows():
        print(f"| {r['coefficient']:+g} | {r['length']:.1f} | {r['kl']:.3f} | {r['repetition']:.3f} | {r['compression']:.2f} | {r['usable']} |")
    print(f"suggested usable range: {sweep.usable}")
    comps = comparisons_from_poles(pairs, {"verbosity": "verbose", "formality": "formal", "confidence": "hedged", "example": "with_example"})
    for layer in (10, 20):
        rm = train_reward_model(lm, name="evidence", layer=layer, comparisons=comps)
        accs = ", ".join(f"{a} {m['heldout_pairwise_accuracy']:.2f} (n_test {m['n_test']})" for a, m in rm.metrics.items())
        print(f"reward heads, layer {layer}: {accs}")
    rating_heads(lm, pairs)
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


def rating_heads(lm, pairs: list, layer: int = 15, seeds: int = 5) -> None:
    """Ridge (rating) heads at the old fixed L2 = 1 against the penalty ``choose_ridge_l2``
    picks: every distinct demo answer rated 1–5 by a hidden taste (a random direction in the top
    8 principal components of the answers' features, as benchmarks/active.py's preference) plus
    unit noise; concordance with the taste on 200 answers no head saw."""
    from workbench.preference.reward_heads import choose_ridge_l2, featurize, fit_ridge_head, pairwise_concordance

    answers = sorted({(str(p.prompt), r) for p in pairs for r in (p.response_a, p.response_b)})
    feats = featurize(lm, [a for a, _ in answers], [r for _, r in answers], layer, batch_size=8)
    z = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    values, vectors = np.linalg.eigh(z.T @ z)
    basis = z @ vectors[:, np.argsort(values)[::-1][:8]]
    basis /= basis.std(0)
    print(f"\nrating heads on {len(answers)} demo answers (layer {layer}), {seeds} seeds: held-out concordance with the hidden taste")
    print("| ratings | fixed L2 = 1 | chosen L2 | L2 chosen | choice (ms) |\n|---|---|---|---|---|")
    for n in (30, 60, 120, 240):
        fixed, chosen, l2s, ms = [], [], [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            taste = basis @ rng.normal(size=8)
            taste = (taste - taste.mean()) / taste.std()
            ratings = np.clip(np.round(3 + taste + rng.normal(size=len(z))), 1, 5)
            order = rng.permutation(len(z))
            test, train = order[:200], order[200:200 + n]
            t0 = time.perf_counter()
            l2, _ = choose_ridge_l2(z[train], ratings[train])
            ms.append(1000 * (time.perf_counter() - t0))
            for penalty, into in ((1.0, fixed), (l2, chosen)):
                w, b = fit_ridge_head(z[train], ratings[train], penalty)
                into.append(pairwise_concordance(z[test] @ w + b, taste[test])[0])
            l2s.append(l2)
        print(f"| {n} | {np.mean(fixed):.3f} | {np.mean(chosen):.3f} | {', '.join(f'{v:.3g}' for v in l2s)} | {max(ms):.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--fit-pairs", type=int, default=60, help="pairs for the steering-vector fit timing (0 = skip)")
    ap.add_argument("--evidence", action="store_true", help="run the behavioural evidence instead of the timings")
    add_round_args(ap)
    args = ap.parse_args()
    set_threads(args.threads)
    lm = load_model(ensure_demo_model(Settings()), name="SmolLM2-135M-Instruct")
    if args.evidence:
        evidence(lm)
        return
    d, n_layers = lm.adapter.d_model(lm.model), lm.n_layers
    g = torch.Generator().manual_seed(0)
    vectors = [SteeringVector(f"v{i}", layer, torch.randn(d, generator=g), scale=4.0) for i, layer in enumerate((12, 16, 20))]
    print(machine_line(lm))

    base = steered_generation(lm, vectors, args.tokens, args.rounds, args.clock)["unsteered_tokens_per_s"]
    if args.fit_pairs:
        fit_cost(lm, args.fit_pairs, args.clock == "cpu")

    settings = SamplingOptions(max_new_tokens=args.tokens, temperature=1.0, top_p=1.0, top_k=0, seed=0)
    paired = []
    for _ in range(max(1, args.rounds // 4)):  # on the clock the unsteered rate above was taken on
        secs, rows = peers.clocked(lm.device, lambda: generate_rows(lm, PROMPT, [vectors[0]], [[0.0], [1.0]], settings), args.clock == "cpu")
        paired.append((secs, sum(r.n_tokens for r in rows), max(r.n_tokens for r in rows)))
    secs, toks, steps = min(paired)
    print(f"\n== paired decoder (unsteered + steered rows, one batch, {args.clock} clock) ==")
    print(f"{toks} tokens in {secs:.2f} s over {steps} steps: {toks / secs:.1f} tok/s of output, {steps / secs:.1f} steps/s "
          f"(ratio to unsteered generate(), per output token: {toks / secs / base:.3f})")

    rng = np.random.default_rng(0)
    rm = RewardModel("bench", lm.name, str(lm.path), n_layers * 2 // 3, ["a", "b"], ["ridge", "ridge"], rng.normal(size=(2, d)),
                     np.zeros(2), np.zeros(d), np.ones(d))
    best_of_n(lm, PROMPT, rm, angle_direction(30), n=2, settings=SamplingOptions(max_new_tokens=8, seed=0))  # warm-up
    res = best_of_n(lm, PROMPT, rm, angle_direction(30), n=args.n, settings=SamplingOptions(max_new_tokens=args.tokens, seed=0))
    gen_per = res.timings["generate_s"] / args.n
    score_per = res.timings["score_s_per_candidate"]
    print(f"\n== best-of-{args.n} reranking (wall clock: best_of_n times its own two parts) ==")
    print(f"generation {gen_per * 1000:.0f} ms per candidate, reward scoring {score_per * 1000:.1f} ms per candidate "
          f"(scoring / generation {score_per / gen_per:.3f}; scoring is {100 * score_per / (gen_per + score_per):.1f}% of best-of-n time)")


if __name__ == "__main__":
    main()
