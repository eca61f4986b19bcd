"""Build the semi-synthetic PAL persona benchmark (design: docs/pal_persona.md).

    python scripts/make_persona_benchmark.py ../shared/data/persona /tmp/persona-bench --groups 4 --seed 0
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.training.persona import DEFAULT_TRAITS, PersonaSpec, build_persona_benchmark, write_benchmark


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("persona_dir", type=Path, help="folder of persona trait JSONL files (anthropics/evals persona/)")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--traits", nargs="+", default=DEFAULT_TRAITS)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--seen-users", type=int, default=50)
    ap.add_argument("--unseen-users", type=int, default=20)
    ap.add_argument("--train-pairs", type=int, default=160, help="train pairs per seen user")
    ap.add_argument("--test-pairs", type=int, default=40, help="test pairs per user")
    ap.add_argument("--shot-pool", type=int, default=100, help="few-shot pool per unseen user")
    ap.add_argument("--alpha", type=float, default=0.2, help="Dirichlet concentration of users' group mixtures")
    ap.add_argument("--beta", type=float, default=3.0, help="label sharpness: P(a) = sigmoid(beta * Δu)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.persona_dir.is_dir():
        print(f"error: {args.persona_dir} is not a folder (the persona data lives in ../shared/data/persona/).", file=sys.stderr)
        return 2
    spec = PersonaSpec(traits=args.traits, n_groups=args.groups, n_seen_users=args.seen_users, n_unseen_users=args.unseen_users,
                       train_pairs_per_user=args.train_pairs, test_pairs_per_user=args.test_pairs,
                       unseen_pool_per_user=args.shot_pool, alpha=args.alpha, beta=args.beta, seed=args.seed)
    try:
        pairs, truth = build_persona_benchmark(args.persona_dir, spec)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = write_benchmark(pairs, truth, args.out_dir)
    print(f"wrote {len(pairs)} pairs for {len(truth['users'])} users ({spec.n_groups} groups, {len(spec.traits)} traits) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
