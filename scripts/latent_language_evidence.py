"""Evidence run: the latent-language translation experiment on the demo model.

Runs fr→zh, de→fr, ru→en and zh→en (4-shot translation prompts built from
``../shared/data/latent-language/``) through the logit lens of SmolLM2-135M-Instruct,
prints per-task numbers and a per-layer table, and writes one figure per task to docs/img/.

    WORKBENCH_HOME=/tmp/wbhome-dev .venv/bin/python scripts/latent_language_evidence.py
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

PAIRS = [("fr", "zh"), ("de", "fr"), ("ru", "en"), ("zh", "en")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "latent-language")
    parser.add_argument("--model", default=DEMO_MODEL_NAME)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples per task")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (the evidence run needs the shared latent-language data)")
        return 0
    lm = AppContext().load_model(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for source, target in PAIRS:
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
              f"shared tokens, {seconds:.1f} s -> {png.relative_to(ROOT)}")
        cols = ["layer"] + [f"p_{lang}" for lang in result.languages] + ["entropy_bits"]
        every = curves[cols][(curves.layer % 3 == 0) | (curves.layer >= curves.layer.max() - 3)]
        print(every.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\n| task | n (dropped) | final P(target) | peak P(latent) | peak layer | seconds |")
    print("|---|---|---|---|---|---|")
    for summary, seconds in rows:
        target_key = next(k for k in summary if k.startswith("final_p_"))
        peak_key = next(k for k in summary if k.startswith("peak_p_"))
        layer_key = next(k for k in summary if k.startswith("peak_layer_"))
        print(f"| {summary['task']} | {summary['n']} ({summary['n_overlap']}) | {summary[target_key]:.3f} | "
              f"{peak_key.removeprefix('peak_p_')}: {summary[peak_key]:.3f} | {summary[layer_key]} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
