"""Evidence run: PAL-A / PAL-B vs one Bradley–Terry reward on the persona benchmark.

    python benchmarks/pal_persona.py --seeds 0 1 2 --plot docs/img/pal_persona_shots.png
    python benchmarks/pal_persona.py --trait-draws 3 --data /path/to/persona

For each seed it builds the semi-synthetic benchmark from the persona trait files in ``--data``
(default ../shared/data/persona/, beside the repository; design in
docs/pal_persona.md), trains PAL-A, PAL-B and BT on frozen all-MiniLM-L6-v2 features with the
same code as the `pal` job, and prints seen-user accuracy and unseen-user accuracy by
number of shots, with the oracle (the hidden generating model) as the ceiling.
``--trait-draws N`` replaces the fixed trait list by N random draws of as many traits from
every trait file with enough confident statements of both answers (draw d uses seed d for
the traits and the benchmark), and prints each draw and the spread over draws: the figures
depend on which traits the users disagree about.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError
from workbench.jobs import manifest as files
from workbench.jobs.context import JobContext
from workbench.settings import Settings
from workbench.training.configs import PALJobConfig
from workbench.training.pal_job import run_pal, validate_pal
from workbench.training.persona import DEFAULT_TRAITS, PersonaSpec, build_persona_benchmark, trait_counts, write_benchmark

PERSONA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "persona"  # --data's default


def eligible_traits(spec: PersonaSpec, data: Path) -> list[str]:
    """Every trait with ``statements_per_trait / 2`` confident statements of each answer: the pool traits are drawn from."""
    counts = trait_counts(data, sorted(p.stem for p in data.glob("*.jsonl")), spec.min_confidence)
    return [t for t, c in counts.items() if min(c.values()) >= spec.statements_per_trait // 2]


def one_seed(seed: int, model: str, settings: Settings, data: Path, traits: list[str] | None = None,
             shots: list[int] | None = None) -> dict:
    """One benchmark build and PAL run; its summary, also printed at once (a long run that is stopped keeps what it did)."""
    spec = PersonaSpec(seed=seed) if traits is None else PersonaSpec(traits=traits, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        pairs, truth = build_persona_benchmark(data, spec)
        data = write_benchmark(pairs, truth, Path(tmp) / "bench")
        options = {"dataset": str(data), "model": model, "k": 4, "seed": seed, **({"shots": shots} if shots else {})}
        cfg = validate_pal(PALJobConfig.from_dict(options), settings)
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        files.write_manifest(run_dir, files.Manifest(id=f"persona-{seed}", type="pal", entry=""))
        run_pal(JobContext(run_dir, PALJobConfig.from_dict(cfg), settings, resume=False, run_id=f"persona-{seed}"))
        summary = files.read_manifest(run_dir).summary
    print(json.dumps({"seed": seed, "traits": spec.traits, "seen": summary["seen"]}), file=sys.stderr, flush=True)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trait-draws", type=int, default=0, help="instead of the default traits, N random trait draws (seeds 0..N-1)")
    ap.add_argument("--shots", type=int, nargs="+", help="unseen-user shot counts (default: the PAL job's 1 5 10 20 50 100)")
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--data", type=Path, help="folder of persona trait files (<trait>.jsonl); default: ../shared/data/persona/")
    args = ap.parse_args()
    if args.data is None and not PERSONA.is_dir():
        print(f"skipped: {PERSONA} not found; give the persona trait folder with --data DIR")
        return 0
    data = (args.data or PERSONA).expanduser()
    if not data.is_dir():
        print(f"--data {data}: not a folder. Give the folder that holds the persona trait files (<trait>.jsonl).", file=sys.stderr)
        return 2
    try:
        return run(args, data)
    except WorkbenchError as err:  # a bad trait file or too few statements: the message names the file and what to change
        print(err, file=sys.stderr)
        return 2


def run(args: argparse.Namespace, data: Path) -> int:
    """Every seed (or trait draw) on the persona data in ``data``, printed as tables (and a plot with --plot)."""
    settings = Settings()
    if args.trait_draws:
        pool = eligible_traits(PersonaSpec(), data)
        runs = [(d, sorted(np.random.default_rng(d).choice(pool, size=len(DEFAULT_TRAITS), replace=False).tolist()))
                for d in range(args.trait_draws)]
        print(f"drawing {len(DEFAULT_TRAITS)} of {len(pool)} eligible traits: {', '.join(pool)}", file=sys.stderr)
    else:
        runs = [(s, None) for s in args.seeds]
    results = [one_seed(s, args.model, settings, data, traits, args.shots) for s, traits in runs]
    print(json.dumps(results, indent=1))
    models = ["BT", "PAL-A", "PAL-B", "oracle"]

    def mean_sd(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"

    if args.trait_draws:
        print("\n| draw | traits | BT seen | PAL-A seen | PAL-B seen | oracle | PAL-A / BT |\n|---|---|---|---|---|---|---|")
        for (d, traits), r in zip(runs, results, strict=True):
            seen = r["seen"]
            print(f"| {d} | {', '.join(traits)} | {seen['BT']:.3f} | {seen['PAL-A']:.3f} | {seen['PAL-B']:.3f} | {seen['oracle']:.3f} "
                  f"| {seen['PAL-A'] / seen['BT']:.3f} |")
        for m in models:
            values = [r["seen"][m] for r in results]
            print(f"{m} seen-user accuracy over {len(values)} trait draws: {mean_sd(values)} (range {min(values):.3f}–{max(values):.3f})")
    print(f"\n{'trait draws' if args.trait_draws else 'seeds'} {[s for s, _ in runs]}; mean ± sd")
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
