"""Reproduce AlpacaEval 2's public leaderboard from its released judge annotations alone.

    .venv/bin/python benchmarks/alpacaeval.py --annotations DIR --leaderboard CSV

DIR holds one ``<model>.json`` per model (the released ``annotations.json``: output_1 the
baseline, output_2 the model); CSV is the published ``weighted_alpaca_eval_gpt4_turbo_
leaderboard.csv``. Every file is imported into one session through the product path
(``import_alpacaeval``, as ``workbench label import-judgments FILE … --allow identical,…``: the
published figures count every released record, so every likely-mistake kind is allowed) and
ranked by ``session_leaderboard`` (as ``workbench label leaderboard``). Printed: per model the
soft, discrete and length-controlled win rates beside the published ones, then the summary
lines the issue asks for: models within 0.1 points (soft, discrete), Spearman and mean
absolute difference of the LC win rate, and the import and leaderboard seconds.

The authors look instruction difficulty up by the row's position in the file, so in a file
with a record missing every later row gets its neighbour's difficulty; we match by
instruction text. The last lines measure how much of the LC gap that accounts for, by
repeating the fit with the authors' positional lookup (diagnostic only; the product keeps
the text match). Skips with a message when DIR or CSV is absent.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.data.readers import QUALITY_CHECKS  # noqa: E402
from workbench.data.types import pair_sources  # noqa: E402
from workbench.labeling.alpacaeval import import_alpacaeval, session_leaderboard  # noqa: E402
from workbench.labeling.sessions import LabelingStore  # noqa: E402
from workbench.preference.length_control import instruction_difficulty, length_controlled, matchups  # noqa: E402
from workbench.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "alpacaeval2"
WITHIN = 0.1  # points


def published(path: Path) -> dict[str, dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row[""]: {k: float(v) if v not in ("", None) else math.nan for k, v in row.items() if k not in ("", "mode")}
                for row in csv.DictReader(f)}


def positional_lc(lab: LabelingStore, session: str, baseline: str) -> dict[str, float]:
    """LC win rates with the authors' lookup: difficulty by row position in each model's file."""
    pairs = lab.pairs(session)
    sources = {p.id: s for p in pairs if (s := pair_sources(p.metadata))}
    table, instructions = matchups(pairs, lab.judgments(session), baseline, sources)
    longest = max(table.values(), key=len)
    by_position = {name: replace(m, instruction=longest.instruction[:len(m)]) for name, m in table.items()}
    difficulty = instruction_difficulty(by_position, len(instructions))
    return {name: r["lc_win_rate"] for name, r in length_controlled(by_position, baseline, difficulty).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--annotations", type=Path, default=SHARED / "annotations")
    ap.add_argument("--leaderboard", type=Path, default=SHARED / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
    args = ap.parse_args()
    if not args.annotations.is_dir() or not args.leaderboard.is_file():
        print(f"skipped: needs the released annotations folder ({args.annotations}) and the published leaderboard CSV "
              f"({args.leaderboard}); pass --annotations DIR --leaderboard CSV")
        return 0
    files = sorted(args.annotations.glob("*.json"))
    pub = published(args.leaderboard)
    with tempfile.TemporaryDirectory() as home:
        lab = LabelingStore(Store(Path(home) / "workbench.sqlite"))
        t0 = time.perf_counter()
        counts = import_alpacaeval(lab, files, "ae", allow=list(QUALITY_CHECKS), names=[f.stem for f in files])
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        board = session_leaderboard(lab, "ae")
        t_board = time.perf_counter() - t0
        rows = [r for r in board["rows"] if r["source"] in pub]
        missing = [r["source"] for r in board["rows"] if r["source"] not in pub]
        by_position = positional_lc(lab, "ae", board["baseline"])

    print(f"{len(files)} files, {counts['votes']} votes against {board['baseline']}; instruction difficulty: {board['difficulty']}")
    print(f"regularisation: {rows[0]['regularisation'] if rows else '—'}")
    head = f"{'model':34s} {'n':>4s} {'soft':>7s} {'pub':>7s} {'Δ':>6s} {'discr':>7s} {'pub':>7s} {'Δ':>6s} {'LC':>6s} {'pub':>6s} {'Δ':>6s}  LC 95% CI      len.coef extrap"
    print(head)
    for r in rows:
        p = pub[r["source"]]
        print(f"{r['source']:34s} {r['n']:4d} {r['win_rate']:7.3f} {p['win_rate']:7.3f} {r['win_rate'] - p['win_rate']:+6.3f} "
              f"{r['discrete_win_rate']:7.3f} {p['discrete_win_rate']:7.3f} {r['discrete_win_rate'] - p['discrete_win_rate']:+6.3f} "
              f"{r['lc_win_rate']:6.2f} {p['length_controlled_winrate']:6.2f} {r['lc_win_rate'] - p['length_controlled_winrate']:+6.2f}  "
              f"[{r['lc_win_rate_ci'][0]:5.2f}, {r['lc_win_rate_ci'][1]:5.2f}] {r['length_coef']:8.2f} {'yes' if r['extrapolates'] else 'no'}")
    if missing:
        print(f"not in the published table (left out): {', '.join(missing)}")
    soft_ok = sum(abs(r["win_rate"] - pub[r["source"]]["win_rate"]) <= WITHIN for r in rows)
    disc_ok = sum(abs(r["discrete_win_rate"] - pub[r["source"]]["discrete_win_rate"]) <= WITHIN for r in rows)
    ours = np.array([r["lc_win_rate"] for r in rows])
    theirs = np.array([pub[r["source"]]["length_controlled_winrate"] for r in rows])
    pos = np.array([by_position[r["source"]] for r in rows])
    print(f"soft win rate within {WITHIN} points of the published win_rate: {soft_ok}/{len(rows)}")
    print(f"discrete win rate within {WITHIN} points of the published discrete_win_rate: {disc_ok}/{len(rows)}")
    print(f"LC win rate vs published length_controlled_winrate: Spearman {spearmanr(ours, theirs).statistic:.4f}, "
          f"mean abs difference {np.abs(ours - theirs).mean():.2f} points (max {np.abs(ours - theirs).max():.2f})")
    short = [r["source"] for r in rows if r["n"] < max(x["n"] for x in rows)]
    print(f"diagnostic, the authors' positional difficulty lookup (matters for files with missing records: "
          f"{', '.join(short) or 'none'}): Spearman {spearmanr(pos, theirs).statistic:.4f}, "
          f"mean abs difference {np.abs(pos - theirs).mean():.2f} points")
    print(f"import {t_import:.1f} s ({len(files)} files), leaderboard {t_board:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
