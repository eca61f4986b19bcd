"""Training benchmarks (not a test): DPO step time with vs without precomputed reference
log-probs, and PAL epoch time on 10k pairs against a Bradley–Terry epoch.

    python benchmarks/training.py                  # demo model, 8 DPO steps
    python benchmarks/training.py --model PATH --steps 20 --pal-pairs 10000

DPO pairs come from ../shared/data/preference (HH-RLHF) when present, else from the demo
pairs labelled by their verbosity pole. Step time is the median gap between consecutive
logged steps, so the one-off precompute pass is reported separately.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from workbench.jobs.context import JobContext
from workbench.settings import Settings
from workbench.training.configs import DPOJobConfig
from workbench.training.dpo import train_dpo, validate_dpo
from workbench.training.pal import BTModel, PALModel, fit
from workbench.training.pal_data import planted_groups

HH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "preference" / "hh-rlhf-harmless-base-test.jsonl.gz"


def dpo_pairs_file(out: Path, n: int) -> Path:
    from workbench.data.types import Pair

    if HH.exists():
        from workbench.data.readers import read_pairs

        pairs = read_pairs(HH, limit=n)
        source = "HH-RLHF harmless-base test"
    else:
        from workbench.data.demo import load_demo_pairs

        pairs = [Pair(p.prompt, p.response_a, p.response_b, preferred="A" if p.metadata.get("a_pole") == "concise" else "B")
                 for p in load_demo_pairs()[:n]]
        source = "demo pairs (concise preferred)"
    with open(out, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p.to_dict()) + "\n")
    print(f"DPO data: {len(pairs)} pairs from {source}")
    return out


def dpo_run(settings: Settings, data: Path, model: str, steps: int, precompute: bool, max_length: int) -> dict[str, float]:
    cfg = validate_dpo({"model": model, "dataset": str(data), "max_steps": steps, "batch_size": 2, "max_length": max_length,
                        "held_out_fraction": 0.0, "precompute_ref_log_probs": precompute, "save_steps": 10_000}, settings)
    with tempfile.TemporaryDirectory() as tmp:
        job = JobContext(Path(tmp), DPOJobConfig.from_dict(cfg), settings, resume=False, run_id="bench")
        from workbench.jobs import manifest as files

        files.write_manifest(Path(tmp), files.Manifest(id="bench", type="dpo", entry=""))
        t0, wall0 = time.perf_counter(), time.time()
        train_dpo(job)
        total = time.perf_counter() - t0
        times = [r["time"] for r in files.read_metrics(Path(tmp)) if "loss" in r]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # First step: from the call to the first logged step (model load, reference pass if precomputed, one step).
    return {"step_s": statistics.median(gaps), "total_s": total, "first_step_s": times[0] - wall0}


def dpo_flop_bound(model: str, settings: Settings, max_length: int, precompute: bool) -> float:
    """Seconds one DPO step (batch 2, chosen + rejected, every sequence at max_length) needs at the matmul peak.

    Policy forward + backward ≈ 6 x params x tokens (an upper bound for LoRA, which skips the
    weight gradients); the reference forward adds 2 x params x tokens unless precomputed.
    """
    from peers import matmul_flops

    from workbench.models.loading import resolve_device
    from workbench.models.placement import estimate_memory
    from workbench.models.resolve import resolve

    ref = resolve(settings, model)
    params = estimate_memory(ref.path, torch.float32).n_params  # a GGUF has no safetensors header: use its converted folder
    device = resolve_device("auto")
    tokens = 2 * 2 * max_length
    return (6 + (0 if precompute else 2)) * params * tokens / matmul_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)


def pal_epochs(n_pairs: int, d: int, epochs: int) -> dict[str, float]:
    n_users = 100
    data = planted_groups(n_groups=4, n_users=n_users, pairs_per_user=n_pairs // n_users, d=d, n_items=4000, seed=0).data
    out = {}
    for name, model in (("BT", BTModel(d, 1)), ("PAL-A", PALModel(d, 1, n_users, 4, variant="A")), ("PAL-B", PALModel(d, 1, n_users, 4, variant="B"))):
        hist = fit(model, data, epochs=epochs, batch_size=256)
        out[name] = statistics.median(hist.seconds)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--pal-pairs", type=int, default=10_000)
    ap.add_argument("--pal-dim", type=int, default=384, help="feature size (all-MiniLM-L6-v2 gives 384)")
    ap.add_argument("--pal-epochs", type=int, default=5)
    ap.add_argument("--skip-dpo", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA: {torch.cuda.is_available()}")
    settings = Settings()
    if not args.skip_dpo:
        with tempfile.TemporaryDirectory() as tmp:
            data = dpo_pairs_file(Path(tmp) / "pairs.jsonl", args.pairs)
            base = dpo_run(settings, data, args.model, args.steps, False, args.max_length)
            pre = dpo_run(settings, data, args.model, args.steps, True, args.max_length)
        print(f"DPO step, reference model forward each step : {base['step_s']:.3f} s  (run {base['total_s']:.1f} s)")
        print(f"DPO step, precomputed reference log-probs   : {pre['step_s']:.3f} s  (run {pre['total_s']:.1f} s incl. the precompute pass)")
        print(f"ratio precomputed / baseline step time      : {pre['step_s'] / base['step_s']:.2f}×")
        print(f"dpo_first_step_seconds: {base['first_step_s']:.1f} s (reference forward each step), "
              f"{pre['first_step_s']:.1f} s (precomputed, incl. the reference pass)")
        bound = dpo_flop_bound(args.model, settings, args.max_length, precompute=False)
        print(f"dpo_step_matmul_bound_seconds: {bound:.3f} s (8 x params x 2x2x{args.max_length} tokens at the measured "
              f"torch.mm rate; measured step {base['step_s']:.3f} s: {bound / base['step_s']:.2f} of it)")
    pal = pal_epochs(args.pal_pairs, args.pal_dim, args.pal_epochs)
    for name, sec in pal.items():
        print(f"{name:6s} epoch on {args.pal_pairs} pairs (d={args.pal_dim}): {sec:.3f} s  ratio to BT {sec / pal['BT']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
