"""Build the semi-synthetic PAL persona benchmark (design: docs/pal_persona.md).

    python scripts/make_persona_benchmark.py ../shared/data/persona /tmp/persona-bench --groups 4 --seed 0

Prints the statements it used per trait and answer; traits with fewer confident statements
than asked are refused unless --allow-unbalanced.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.training.persona import DEFAULT_TRAITS, PersonaSpec, build_persona_benchmark, write_benchmark

DEFAULTS = PersonaSpec()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("persona_dir", type=Path, help="folder of persona trait JSONL files (anthropics/evals persona/)")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--traits", nargs="+", default=DEFAULT_TRAITS)
    ap.add_argument("--groups", type=int, default=DEFAULTS.n_groups)
    ap.add_argument("--seen-users", type=int, default=DEFAULTS.n_seen_users)
    ap.add_argument("--unseen-users", type=int, default=DEFAULTS.n_unseen_users)
    ap.add_argument("--train-pairs", type=int, default=DEFAULTS.train_pairs_per_user, help="train pairs per seen user")
    ap.add_argument("--test-pairs", type=int, default=DEFAULTS.test_pairs_per_user, help="test pairs per user")
    ap.add_argument("--shot-pool", type=int, default=DEFAULTS.unseen_pool_per_user, help="few-shot pool per unseen user")
    ap.add_argument("--statements-per-trait", type=int, default=DEFAULTS.statements_per_trait,
                    help="statements per trait, half of each answer")
    ap.add_argument("--min-confidence", type=float, default=DEFAULTS.min_confidence, help="lowest label_confidence kept")
    ap.add_argument("--allow-unbalanced", action="store_true",
                    help="use what a trait has when it has fewer statements of an answer than asked (default: refuse)")
    ap.add_argument("--test-fraction", type=float, default=DEFAULTS.test_statement_fraction, help="share of statements kept for test pairs")
    ap.add_argument("--min-gap", type=float, default=DEFAULTS.min_gap, help="redraw pairs whose utility gap |Δu| is below this")
    ap.add_argument("--draws-per-pair", type=int, default=DEFAULTS.draws_per_pair, help="pair draws allowed per wanted pair")
    ap.add_argument("--alpha", type=float, default=DEFAULTS.alpha, help="Dirichlet concentration of users' group mixtures")
    ap.add_argument("--beta", type=float, default=DEFAULTS.beta, help="label sharpness: P(a) = sigmoid(beta * Δu)")
    ap.add_argument("--seed", type=int, default=DEFAULTS.seed)
    args = ap.parse_args()
    if not args.persona_dir.is_dir():
        print(f"error: {args.persona_dir} is not a folder (the persona data lives in ../shared/data/persona/).", file=sys.stderr)
        return 2
    spec = PersonaSpec(traits=args.traits, n_groups=args.groups, n_seen_users=args.seen_users, n_unseen_users=args.unseen_users,
                       train_pairs_per_user=args.train_pairs, test_pairs_per_user=args.test_pairs,
                       unseen_pool_per_user=args.shot_pool, statements_per_trait=args.statements_per_trait,
                       min_confidence=args.min_confidence, allow_unbalanced=args.allow_unbalanced,
                       test_statement_fraction=args.test_fraction, min_gap=args.min_gap, draws_per_pair=args.draws_per_pair,
                       alpha=args.alpha, beta=args.beta, seed=args.seed)
    try:
        pairs, truth = build_persona_benchmark(args.persona_dir, spec)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    half = spec.statements_per_trait // 2
    for trait, n in truth["statements_per_trait"].items():
        flag = "" if min(n.values()) >= half else f"  (unbalanced: {half} of each asked)"
        print(f"{trait}: {n['yes']} Yes / {n['no']} No{flag}")
    path = write_benchmark(pairs, truth, args.out_dir)
    print(f"wrote {len(pairs)} pairs for {len(truth['users'])} users ({spec.n_groups} groups, {len(spec.traits)} traits) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
