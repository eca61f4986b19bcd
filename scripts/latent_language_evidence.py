"""Evidence run: the latent-language translation experiment on the demo model.

Runs translation pairs (default fr→zh, de→zh, de→fr, zh→en; 4-shot prompts built from
``../shared/data/latent-language/`` or any folder of the authors' tables, ``--data``) through the
logit lens of SmolLM2-135M-Instruct. Watched per task: the target, English (the latent language,
unless it is the target) and the source word (copies of it; examples whose source tokens overlap
the others' are dropped and counted). Prints, per layer and language, the mean, median, control
and the share of examples beating their control, the warnings (a result carried by ≤ 10% of
the examples among them), a summary table, and writes one figure per task to docs/img/.

    WORKBENCH_HOME=/tmp/wbhome-dev .venv/bin/python scripts/latent_language_evidence.py --pairs fr-zh,de-zh --limit 40
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
from workbench.lenses import LatentResult, LensTask, make_task, read_word_table, run_latent  # noqa: E402
from workbench.models.embedded import DEMO_MODEL_NAME  # noqa: E402

PAIRS = "fr-zh,de-zh,de-fr,zh-en"


def load_task(data: Path, source: str, target: str, *, latent: tuple[str, ...] = ("en",), shots: int = 4,
              limit: int | None = None) -> LensTask:
    """The translation task of one pair, read with every watched language (source, target and latent),
    so a non-English target keeps the English column of the authors' tables."""
    table = read_word_table(data, tuple(dict.fromkeys((source, target, *latent))))
    return make_task(table, "translation", source, target, shots=shots, limit=limit)


def layer_table(result: LatentResult) -> str:
    """Markdown, one row per layer: per watched language mean / median / control / share beating the control."""
    curves = result.curves()
    head = ["layer"] + [f"P({lang}) {result.role(lang)}: mean / median / control / beats" for lang in result.languages]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in curves.iterrows():
        cells = [str(int(row.layer))]
        for lang in result.languages:
            if result.has_control:
                cells.append(f"{row[f'p_{lang}']:.4f} / {row[f'p_{lang}_median']:.4f} / {row[f'p_{lang}_control']:.4f} / "
                             f"{row[f'p_{lang}_beats_control']:.0%}")
            else:
                cells.append(f"{row[f'p_{lang}']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_line(result: LatentResult, seconds: float) -> str:
    """One markdown row: counts, then each quoted result as mean (median, control, share beating, carried by k)."""
    s = result.summary()
    parts = []
    for lang in result.languages:
        at = "final" if lang == result.languages[0] else "peak"
        where = "output" if at == "final" else f"layer {s[f'peak_layer_{lang}']}"
        if result.has_control:
            parts.append(f"P({lang}) {result.role(lang)} {s[f'{at}_p_{lang}']:.3f} at {where} (median {s[f'{at}_median_{lang}']:.4f}, "
                         f"control {s[f'{at}_control_{lang}']:.4f}, {s[f'{at}_beats_control_{lang}']:.0%} beat it, "
                         f"carried by {s[f'{at}_carried_by_{lang}']})")
        else:
            parts.append(f"P({lang}) {result.role(lang)} {s[f'{at}_p_{lang}']:.3f} at {where}")
    flag = "**carried by ≤ 10%**: " + s["carried_by_few"] if s["carried_by_few"] else "—"
    return (f"| {s['task']} | {s['n']} ({s['n_overlap']}, {s['n_source_overlap']} via the source) | " + "<br>".join(parts)
            + f" | {flag} | {seconds:.0f} |")


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
        task = load_task(args.data, source, target, shots=args.shots, limit=args.limit)
        t0 = time.perf_counter()
        result = run_latent(lm, task, latent=("en",))
        seconds = time.perf_counter() - t0
        rows.append(summary_line(result, seconds))
        png = args.out / f"latent_language_{source}_{target}.png"
        png.write_bytes(figure_bytes(latent_figure([result], title=f"{lm.name}: {task.title}, n={len(result.examples)} "
                                                                  f"(−{result.n_overlap} overlap, {result.n_source_overlap} via the source)")))
        print(f"\n## {task.title}: {len(task.examples)} examples, {len(result.examples)} kept, {result.n_overlap} dropped for "
              f"shared tokens ({result.n_source_overlap} through the source word), {seconds:.1f} s -> {png}")
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(layer_table(result), flush=True)
    print("\n| task | n (dropped, via the source) | quoted results | flag | seconds |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
