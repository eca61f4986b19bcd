"""RecSAE on MovieLens latest-small (genres as attributes): the figures in docs/recsae.md.

    OMP_NUM_THREADS=1 python scripts/recsae_evidence.py ../shared/data/recsys/ml-latest-small runs/recsae-ml

Writes the run folder (open it with ``RecSAEResult.load`` or the RecSAE view) and prints
the summary as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.sae.recsae import RecSAEConfig, run_recsae
from workbench.sae.training import SAESpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("movielens", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--expansion", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1_000_000)
    args = ap.parse_args()
    cfg = RecSAEConfig(interactions=str(args.movielens / "ratings.csv"), attributes=str(args.movielens / "movies.csv"),
                       max_len=50, d_model=64, epochs=args.epochs,
                       sae=SAESpec(expansion=args.expansion, k=args.k, training_samples=args.samples, batch_size=512))

    def report(stage: str, step: int, total: int, row: dict) -> None:
        if stage != "sae" or step >= total or step % 100_000 < 512:
            print(stage, step, total, json.dumps(row, default=float), file=sys.stderr, flush=True)

    print(json.dumps(run_recsae(cfg, args.out, report=report), indent=2, default=float))


if __name__ == "__main__":
    main()
