"""Evidence run: PAL-A / PAL-B vs one Bradley–Terry reward on the persona benchmark.

    python benchmarks/pal_persona.py --seeds 0 1 2 --plot docs/img/pal_persona_shots.png

For each seed it builds the semi-synthetic benchmark from ../shared/data/persona/ (design in
docs/pal_persona.md), trains PAL-A, PAL-B and BT on frozen all-MiniLM-L6-v2 features with the
same code as the `pal` job, and prints seen-user accuracy and unseen-user accuracy by
number of shots, with the oracle (the hidden generating model) as the ceiling.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from workbench.jobs import manifest as files
from workbench.jobs.context import JobContext
from workbench.settings import Settings
from workbench.training.pal_job import run_pal, validate_pal
from workbench.training.persona import PersonaSpec, build_persona_benchmark, write_benchmark

PERSONA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "persona"


def one_seed(seed: int, model: str, settings: Settings) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        pairs, truth = build_persona_benchmark(PERSONA, PersonaSpec(seed=seed))
        data = write_benchmark(pairs, truth, Path(tmp) / "bench")
        cfg = validate_pal({"dataset": str(data), "model": model, "k": 4, "seed": seed}, settings)
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        files.write_manifest(run_dir, files.Manifest(id=f"persona-{seed}", type="pal", entry=""))
        run_pal(JobContext(run_dir, cfg, settings, resume=False, run_id=f"persona-{seed}"))
        return files.read_manifest(run_dir).summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    if not PERSONA.is_dir():
        print(f"skipped: {PERSONA} not found (the persona data lives in ../shared/data/persona/)")
        return 0
    settings = Settings()
    results = [one_seed(s, args.model, settings) for s in args.seeds]
    print(json.dumps(results, indent=1))
    models = ["BT", "PAL-A", "PAL-B", "oracle"]

    def mean_sd(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"

    print(f"\nseeds {args.seeds}; mean ± sd over seeds")
    print("| model | seen users | " + " | ".join(f"unseen, {k} shots" for k in results[0]["unseen"]["shots"]) + " |")
    print("|---|---|" + "---|" * len(results[0]["unseen"]["shots"]))
    for m in models:
        seen = mean_sd([r["seen"][m] for r in results])
        shots = [mean_sd([r["unseen"]["shots"][k][m] for r in results]) for k in results[0]["unseen"]["shots"]]
        print(f"| {m} | {seen} | " + " | ".join(shots) + " |")
    for m in ("PAL-A", "PAL-B"):
        ratio = statistics.mean(r["seen"][m] / r["seen"]["BT"] for r in results)
        print(f"{m} / BT seen-user accuracy ratio: {ratio:.3f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shots = [int(k) for k in results[0]["unseen"]["shots"]]
        fig, ax = plt.subplots(figsize=(6, 4))
        for m, style in zip(models, ("s--", "o-", "^-", ":"), strict=True):
            ys = [statistics.mean(r["unseen"]["shots"][str(k)][m] for r in results) for k in shots]
            ax.plot(shots, ys, style, label=m)
        ax.set_xscale("log")
        ax.set_xlabel("examples from the new user (shots)")
        ax.set_ylabel("accuracy on the new user's test pairs")
        ax.set_title(f"Unseen users, persona benchmark ({len(results)} seeds)")
        ax.legend()
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
