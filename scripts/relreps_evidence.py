"""Evidence for relative representations at CPU scale (docs/relative_representations.md).

Two different encoders read the same 600 persona statements (6 traits x 100, anthropics/evals
in ../shared/data/persona): the embedded LM (SmolLM2-135M-Instruct, mean-pooled residual
stream, several layers) and the sentence embedder (all-MiniLM-L6-v2). We compare their
absolute and relative spaces and stitch a trait classifier across them. With ``--tuned PATH``
the LM is also compared with a fine-tuned copy (equal widths, so absolute metrics exist too).

    WORKBENCH_HOME=/tmp/wbhome-dev .venv/bin/python scripts/relreps_evidence.py [--tuned RUN_DIR/adapter [--demo-pairs]]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.activations import ActivationCache
from workbench.geometry import (
    Item,
    ProjectionCache,
    compare_spaces,
    encode_items_layers,
    pair_items,
    project,
    relative_space,
    select_anchors,
    stitch,
)
from workbench.models.embedded import embedder_path, ensure_demo_model
from workbench.models.loading import load_model
from workbench.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "persona"
TRAITS = ["openness", "extraversion", "interest-in-art", "subscribes-to-Atheism", "risk-seeking", "politically-conservative"]
LAYERS = [5, 10, 15, 20, 25, 30]
N_PER_TRAIT, N_ANCHORS, K = 100, 100, 10


def persona_items() -> list[Item]:
    items = []
    for trait in TRAITS:
        lines = (DATA / f"{trait}.jsonl").read_text(encoding="utf-8").splitlines()[:N_PER_TRAIT]
        items += [Item(key=f"{trait}:{i}", text=json.loads(line)["statement"], metadata={"trait": trait}) for i, line in enumerate(lines)]
    return items


def markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A Markdown table (pandas' to_markdown needs tabulate, which we do not depend on)."""
    frame = frame.reset_index() if index else frame
    cells = [[fmt(v) if isinstance(v, float) or v is None else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, help="a fine-tuned copy of the demo LM (folder, e.g. a DPO run's final adapter or model)")
    parser.add_argument("--demo-pairs", action="store_true",
                        help="with --tuned: also compare base and tuned on the demo pairs' 480 responses (in-domain for a DPO run on them; chat template)")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"The persona data is not at {DATA}; this script needs ../shared/data (see its README).")
    settings = Settings()
    cache = ActivationCache(settings.cache_dir)
    items = persona_items()
    labels = [it.metadata["trait"] for it in items]
    lm = load_model(ensure_demo_model(settings), name="SmolLM2-135M-Instruct")
    embedder = load_model(embedder_path(), name="all-MiniLM-L6-v2")
    lm_spaces = encode_items_layers(lm, items, layers=LAYERS, pooling="mean", cache=cache)
    emb = encode_items_layers(embedder, items, layers=[embedder.n_layers], pooling="mean", cache=cache)[embedder.n_layers]
    chance_mrr = float(np.mean(1 / np.arange(1, len(items) + 1)) * 1)  # E[1/rank] for a uniformly random rank
    print(f"{len(items)} statements, {len(TRAITS)} traits; {N_ANCHORS} random anchors; k = {K}; MRR of a random ranking = {chance_mrr:.4f}\n")

    # 1. LM layer vs embedder, every normalization.
    rows = []
    for normalize in ("standardize", "center", "none"):
        for seed in (0, 1, 2):
            anchors = select_anchors(emb, N_ANCHORS, "random", seed=seed)
            rel_emb = relative_space(emb, anchors, normalize=normalize)
            for layer, space in lm_spaces.items():
                a = compare_spaces(space, emb, k=K)
                r = compare_spaces(relative_space(space, anchors, normalize=normalize), rel_emb, k=K)
                rows.append({"normalize": normalize, "seed": seed, "layer": layer, "abs_knn_overlap": a.knn_overlap,
                             "abs_jaccard": a.jaccard, "abs_mrr": a.mrr, "rel_jaccard": r.jaccard, "rel_mrr": r.mrr,
                             "rel_cosine": r.mean_cosine, "rel_knn_overlap": r.knn_overlap})
    table = pd.DataFrame(rows)
    mean = table.groupby(["normalize", "layer"], sort=False).mean(numeric_only=True).drop(columns="seed")
    print("## LM layer vs sentence embedder (mean of 3 anchor draws)\n")
    print(markdown(mean))

    # 2. Stitching a 6-way trait classifier, best layer by MRR under the default normalization.
    std = mean.loc["standardize"]
    best = int(std["rel_mrr"].idxmax())
    anchors = select_anchors(emb, N_ANCHORS, "random", seed=0)
    print(f"\n## Stitching (trait, 6 classes), LM layer {best} <-> embedder\n")
    stitched = {}
    for normalize in ("standardize", "center", "none"):
        res = stitch(lm_spaces[best], emb, labels, anchors, normalize=normalize, task="trait")
        stitched[normalize] = res
        print(f"normalize={normalize}: chance {res.chance:.3f}, retained {fmt(res.retained)}")
        print(markdown(pd.DataFrame(res.rows), index=False), "\n")

    # 3. Equal widths: two layers of the same LM, where absolute metrics are defined.
    a10, a20 = lm_spaces[10], lm_spaces[20]
    print("## Equal widths: LM layer 10 vs layer 20 (576-d each)\n")
    same = [compare_spaces(a10, a20, k=K).row(), compare_spaces(relative_space(a10, anchors), relative_space(a20, anchors), k=K).row()]
    print(markdown(pd.DataFrame(same)[["kind", "jaccard", "mrr", "mean_cosine", "knn_overlap"]], index=False))

    # 4. Anchor selection at the best layer.
    print(f"\n## Anchor selection (LM layer {best}, standardize)\n")
    sel = []
    for method in ("random", "kmeans", "farthest"):
        chosen = select_anchors(emb, N_ANCHORS, method, seed=0)
        r = compare_spaces(relative_space(lm_spaces[best], chosen), relative_space(emb, chosen), k=K)
        s = stitch(lm_spaces[best], emb, labels, chosen, task="trait")
        sel.append({"method": method, "rel_jaccard": r.jaccard, "rel_mrr": r.mrr, "stitched_acc": s.accuracy("relative", "A", "B"),
                    "native_acc": s.accuracy("relative", "B", "B")})
    print(markdown(pd.DataFrame(sel), index=False))

    # 5. Tuned copy (same widths).
    if args.tuned:
        tuned = load_model(args.tuned, name="tuned")
        tuned_spaces = encode_items_layers(tuned, items, layers=LAYERS, pooling="mean", cache=cache)
        print(f"\n## Demo LM vs tuned copy ({args.tuned})\n")
        trows, srows = [], []
        for layer in LAYERS:
            a = compare_spaces(lm_spaces[layer], tuned_spaces[layer], k=K)
            r = compare_spaces(relative_space(lm_spaces[layer], anchors), relative_space(tuned_spaces[layer], anchors), k=K)
            trows.append({"layer": layer, "abs_jaccard": a.jaccard, "abs_mrr": a.mrr, "abs_cosine": a.mean_cosine, "abs_knn_overlap": a.knn_overlap,
                          "rel_jaccard": r.jaccard, "rel_mrr": r.mrr, "rel_cosine": r.mean_cosine, "rel_knn_overlap": r.knn_overlap})
            s = stitch(lm_spaces[layer], tuned_spaces[layer], labels, anchors, task="trait")  # A = base, B = tuned
            srows.append({"layer": layer, "rel_native_base": s.accuracy("relative", "A", "A"), "rel_base_to_tuned": s.accuracy("relative", "A", "B"),
                          "rel_native_tuned": s.accuracy("relative", "B", "B"), "abs_native_base": s.accuracy("absolute", "A", "A"),
                          "abs_base_to_tuned": s.accuracy("absolute", "A", "B"), "abs_native_tuned": s.accuracy("absolute", "B", "B")})
        print(markdown(pd.DataFrame(trows), index=False))
        print(f"\n## Stitching (trait, 6 classes) base -> tuned, same layer (chance {s.chance:.3f})\n")
        print(markdown(pd.DataFrame(srows), index=False))
        print("\n## Demo LM vs tuned copy, precise (persona statements)\n")
        print(drift_table(lm_spaces, tuned_spaces, anchors))
        if args.demo_pairs:
            from workbench.context import AppContext

            ctx = AppContext(settings)
            demo = pair_items(ctx.store.get_pairs(ctx.ensure_demo_dataset()))
            base_demo = encode_items_layers(lm, demo, layers=LAYERS, pooling="mean", cache=cache)
            tuned_demo = encode_items_layers(tuned, demo, layers=LAYERS, pooling="mean", cache=cache)
            demo_anchors = select_anchors(base_demo[LAYERS[0]], N_ANCHORS, "random", seed=0)
            print(f"\n## Demo LM vs tuned copy on the demo pairs' {len(demo)} responses (chat template, response tokens)\n")
            print(drift_table(base_demo, tuned_demo, demo_anchors))
    else:
        print("\n## Demo LM vs tuned copy: pending (pass --tuned PATH once a fine-tuned checkpoint exists)")

    figures(mean, lm_spaces[best], emb, anchors, labels, best, args.img, settings)


def drift_table(base: dict, tuned: dict, anchors) -> str:
    """Per layer: absolute and relative Jaccard@K / MRR / 1 - mean cosine, and rel_change = mean ‖tuned − base‖ / ‖base‖."""
    rows = []
    for layer in LAYERS:
        a = compare_spaces(base[layer], tuned[layer], k=K)
        r = compare_spaces(relative_space(base[layer], anchors), relative_space(tuned[layer], anchors), k=K)
        x, y = base[layer].vectors, tuned[layer].vectors
        change = float(np.mean(np.linalg.norm(y - x, axis=1) / np.linalg.norm(x, axis=1)))
        rows.append({"layer": layer, "abs_jaccard": f"{a.jaccard:.3f}", "abs_mrr": f"{a.mrr:.4f}", "abs_1-cos": f"{1 - a.mean_cosine:.1e}",
                     "rel_jaccard": f"{r.jaccard:.3f}", "rel_mrr": f"{r.mrr:.4f}", "rel_1-cos": f"{1 - r.mean_cosine:.1e}",
                     "rel_change": f"{change:.4f}"})
    return markdown(pd.DataFrame(rows), index=False)


def figures(mean: pd.DataFrame, lm_space, emb, anchors, labels, best: int, img: Path, settings: Settings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for normalize, style in (("standardize", "-o"), ("center", "--s"), ("none", ":^")):
        m = mean.loc[normalize]
        axes[0].plot(m.index, m["rel_mrr"], style, label=f"relative MRR ({normalize})")
        axes[1].plot(m.index, m["rel_jaccard"], style, label=f"relative Jaccard@{K} ({normalize})")
    axes[1].plot(mean.loc["standardize"].index, mean.loc["standardize"]["abs_knn_overlap"], "k-x", label=f"absolute k-NN overlap@{K}")
    axes[0].axhline(float(np.mean(1 / np.arange(1, len(labels) + 1))), color="grey", lw=1, label="random ranking")
    for ax in axes:
        ax.set_xlabel("SmolLM2 layer")
        ax.legend(fontsize=7)
    axes[0].set_title("SmolLM2 vs MiniLM: MRR of the input itself")
    axes[1].set_title("neighbourhood agreement")
    fig.tight_layout()
    fig.savefig(img / "relreps_layers.png", dpi=110)
    pcache = ProjectionCache(settings.cache_dir / "projections")
    spaces = [(lm_space, f"absolute · SmolLM2 layer {best}"), (emb, "absolute · MiniLM"),
              (relative_space(lm_space, anchors), "relative · SmolLM2"), (relative_space(emb, anchors), "relative · MiniLM")]
    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    traits = sorted(set(labels))
    colour = np.array([traits.index(t) for t in labels])
    for ax, (space, title) in zip(axes.ravel(), spaces, strict=True):
        xy = project(space.vectors, "umap", cache=pcache).coords
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="tab10", s=6, vmin=0, vmax=9)
        ax.set_title(title)
        ax.set_xticks([]), ax.set_yticks([])
    fig.legend(sc.legend_elements()[0][: len(traits)], traits, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(img / "relreps_umap.png", dpi=100)
    print(f"\nfigures: {img / 'relreps_layers.png'}, {img / 'relreps_umap.png'}")


if __name__ == "__main__":
    main()
