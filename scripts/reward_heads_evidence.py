"""Held-out accuracy of per-attribute reward heads on the demo model (docs/steering.md).

Bradley–Terry heads on frozen SmolLM2-135M-Instruct features (mean over response tokens) for
(1) the four demo attributes, comparisons from the pairs' poles, and (2) harmlessness on
Anthropic HH-RLHF harmless-base test pairs (../shared/data/preference), chosen beats rejected.
Each is split 75/25 with three seeds; next to it, how often "the longer response wins" holds
on the same comparisons, so a head that only learned length shows up.

    OMP_NUM_THREADS=1 python scripts/reward_heads_evidence.py [--hh-pairs 300] [--layer 20]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from workbench.activations import ActivationCache
from workbench.data.demo import load_demo_pairs
from workbench.data.readers import read_pairs
from workbench.models.embedded import ensure_demo_model
from workbench.models.loading import load_model
from workbench.preference.reward_heads import AspectComparison, comparisons_from_poles, train_reward_model
from workbench.settings import Settings

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference" / "hh-rlhf-harmless-base-test.jsonl.gz"
HIGH_POLES = {"verbosity": "verbose", "formality": "formal", "confidence": "direct", "example": "with_example"}


def longer_wins(comparisons: list[AspectComparison]) -> float:
    return float(np.mean([(len(c.response_a) > len(c.response_b)) == (c.winner == "A") for c in comparisons]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hh-pairs", type=int, default=300)
    ap.add_argument("--layer", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    settings = Settings()
    lm = load_model(str(ensure_demo_model(settings)))
    cache = ActivationCache(settings.cache_dir)
    hh = [p for p in read_pairs(HH, "hh-rlhf") if p.preferred in ("A", "B")]
    random.Random(0).shuffle(hh)
    hh_comparisons = [AspectComparison(p.prompt, p.response_a, p.response_b, "harmlessness", p.preferred) for p in hh[: args.hh_pairs]]
    sets = {"demo attributes": comparisons_from_poles(load_demo_pairs(), HIGH_POLES), "HH-RLHF harmless-base": hh_comparisons}
    rows = []
    for label, comparisons in sets.items():
        for seed in args.seeds:
            model = train_reward_model(lm, name=f"evidence-{seed}", layer=args.layer, comparisons=comparisons, seed=seed, cache=cache)
            rows += [{"set": label, "attribute": attr, "seed": seed, **model.metrics[attr]} for attr in model.attributes]
    print(json.dumps(rows, indent=1))
    print(f"\n| set | attribute | train / test pairs | held-out accuracy (mean ± sd, seeds {args.seeds}) | longer response wins |")
    print("|---|---|---|---|---|")
    for label, comparisons in sets.items():
        for attr in sorted({c.aspect for c in comparisons}):
            rs = [r for r in rows if r["set"] == label and r["attribute"] == attr]
            acc = np.array([r["heldout_pairwise_accuracy"] for r in rs])
            length = longer_wins([c for c in comparisons if c.aspect == attr])
            print(f"| {label} | {attr} | {rs[0]['n_train']} / {rs[0]['n_test']} | {acc.mean():.3f} ± {acc.std():.3f} | {length:.3f} |")


if __name__ == "__main__":
    main()
