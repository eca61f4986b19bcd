"""Evidence run: the latent-language translation experiment on the demo model.

Runs translation pairs (default fr→zh, de→fr, ru→en, zh→en; 4-shot prompts built from
``../shared/data/latent-language/``) through the logit lens of SmolLM2-135M-Instruct, prints
per-task numbers beside their controls (the same mass on the other concepts' token sets), the
token-set warnings and a per-layer table, and writes one figure per task to docs/img/.

    WORKBENCH_HOME=/tmp/wbhome-dev .venv/bin/python scripts/latent_language_evidence.py --pairs fr-zh,zh-en
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plugins.logit_lens.figures import figure_bytes, latent_figure  # noqa: E402
from workbench.context import AppContext  # noqa: E402
from workbench.lenses import make_task, read_word_table, run_latent  # noqa: E402
from workbench.models.embedded import DEMO_MODEL_NAME  # noqa: E402

PAIRS = "fr-zh,de-fr,ru-en,zh-en"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "latent-language")
    parser.add_argument("--model", default=DEMO_MODEL_NAME)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples per task")
    parser.add_argument("--pairs", default=PAIRS, help="comma-separated source-target pairs (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (the evidence run needs the shared latent-language data)")
        return 0
    lm = AppContext().get_model(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for source, target in (pair.split("-", 1) for pair in args.pairs.split(",")):
        # X→en: the target is English itself, so the latent language watched is the source
        latent = ("en",) if target != "en" else (source,)
        table = read_word_table(args.data, (source, target))
        task = make_task(table, "translation", source, target, shots=args.shots, limit=args.limit)
        t0 = time.perf_counter()
        result = run_latent(lm, task, latent=latent)
        seconds = time.perf_counter() - t0
        summary = result.summary()
        curves = result.curves()
        rows.append((summary, seconds))
        png = args.out / f"latent_language_{source}_{target}.png"
        png.write_bytes(figure_bytes(latent_figure([result], title=f"{lm.name}: {task.title}, n={len(result.examples)} "
                                                                  f"(−{result.n_overlap} overlap)")))
        print(f"\n## {task.title}: {len(table)} concepts, {len(result.examples)} kept, {result.n_overlap} dropped for "
              f"shared tokens, {seconds:.1f} s -> {png}")
        for warning in result.warnings:
            print(f"warning: {warning}")
        cols = ["layer"] + [f"p_{lang}{suffix}" for lang in result.languages for suffix in ("", "_control")] + ["entropy_bits"]
        every = curves[cols][(curves.layer % 3 == 0) | (curves.layer >= curves.layer.max() - 3)]
        print(every.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\n| task | n (dropped) | final P(target) | its control | peak P(latent), layer | its control | shared sets | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for summary, seconds in rows:
        target = next(k.removeprefix("final_p_") for k in summary if k.startswith("final_p_"))
        latent = next(k.removeprefix("peak_p_") for k in summary if k.startswith("peak_p_"))
        print(f"| {summary['task']} | {summary['n']} ({summary['n_overlap']}) | {summary[f'final_p_{target}']:.3f} | "
              f"{summary[f'final_control_{target}']:.3f} | {latent}: {summary[f'peak_p_{latent}']:.3f}, "
              f"{summary[f'peak_layer_{latent}']} | {summary[f'peak_control_{latent}']:.3f} | {summary['shared_sets']} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
