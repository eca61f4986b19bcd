"""RecSAE on MovieLens latest-small (genres as attributes): the figures in docs/recsae.md.

    OMP_NUM_THREADS=1 python scripts/recsae_evidence.py ../shared/data/recsys/ml-latest-small runs/recsae-ml
    python scripts/recsae_evidence.py ../shared/data/recsys/ml-latest-small runs/recsae-ml --plots-only docs/img

Writes the run folder (open it with ``RecSAEResult.load`` or the RecSAE view) and prints
the summary as JSON: SASRec and popularity under both protocols (full ranking over unseen
items, and 1 positive + 99 sampled negatives); with ``--plots-only DIR`` it prints those
figures of a finished folder and only draws its plots; ``--recommender-only`` trains SASRec
alone and prints the two protocols (the quick check when the SAE stages are not needed).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from workbench.sae.job_configs import RecSAEJobConfig, SAESpec
from workbench.sae.recsae import RecSAEResult, load_data, run_recsae
from workbench.sae.sasrec import SASRecConfig, evaluate_protocols, train_sasrec


def plots(result: RecSAEResult, folder: Path) -> None:
    """F1 of every concept latent against its chance F1, and boost/ablate shifts per latent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    table = result.dictionary.table()
    named = table[table.concept.notna()]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(named.chance_f1, named.f1, s=12)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.axhline(0.5, color="tab:red", lw=0.8, ls="--")
    ax.set(xlabel="chance F1 (independent predictor, same rates)", ylabel="held-out F1 of the concept",
           title=f"{Path(result.data.source).parent.name}: {int((named.f1 >= 0.5).sum())} of {len(table)} latents have F1 ≥ 0.5")
    fig.tight_layout()
    fig.savefig(folder / "recsae_f1.png", dpi=110)
    rows = result.interventions
    if rows:
        labels = sorted({(r["latent"], r["concept"]) for r in rows}, key=lambda t: t[0])
        fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.7), 4))
        x = np.arange(len(labels))
        get = {(r["latent"], r["mode"]): r for r in rows}
        ax.bar(x - 0.25, [get[(latent, "boost")]["share_before"] for latent, _ in labels], 0.25, label="before")
        ax.bar(x, [get[(latent, "boost")]["share_after"] for latent, _ in labels], 0.25, label="boost")
        ax.bar(x + 0.25, [get[(latent, "ablate")]["share_after"] for latent, _ in labels], 0.25, label="ablate")
        ax.set_xticks(x, [f"{latent}\n{c}" for latent, c in labels], fontsize=7)
        ax.set(ylabel="share of concept items in top-10", title=f"Interventions on confident latents ({result.data.n_users} users)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "recsae_interventions.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("movielens", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--expansion", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--plots-only", type=Path, default=None, help="Draw the figures of a finished OUT into this folder.")
    ap.add_argument("--recommender-only", action="store_true", help="Train SASRec only and print both evaluation protocols.")
    args = ap.parse_args()
    if args.plots_only:
        result = RecSAEResult.load(args.out)
        print(json.dumps({k: v for k, v in result.summary.items() if k.startswith("test_")}, indent=2))
        plots(result, args.plots_only)
        return
    cfg = RecSAEJobConfig(interactions=str(args.movielens / "ratings.csv"), attributes=str(args.movielens / "movies.csv"),
                          max_len=50, d_model=64, epochs=args.epochs,
                          sae=SAESpec(expansion=args.expansion, k=args.k, training_samples=args.samples, batch_size=512))

    if args.recommender_only:
        data = load_data(cfg)
        model, _, _ = train_sasrec(data, SASRecConfig(n_items=data.n_items, max_len=cfg.max_len, d_model=cfg.d_model, n_layers=cfg.n_layers),
                                      epochs=cfg.epochs, seed=cfg.seed, on_epoch=lambda e, row: print("sasrec", e, json.dumps(row), file=sys.stderr, flush=True))
        print(json.dumps({**evaluate_protocols(model, data, "test", seed=cfg.seed), "epochs": cfg.epochs,
                          "tied_test_items": data.info["tied_test_items"], "notes": data.notes}, indent=2))
        return

    def report(stage: str, step: int, total: int, row: dict) -> None:
        if stage != "sae" or step >= total or step % 100_000 < 512:
            print(stage, step, total, json.dumps(row, default=float), file=sys.stderr, flush=True)

    print(json.dumps(run_recsae(cfg, args.out, report=report), indent=2, default=float))


if __name__ == "__main__":
    main()
