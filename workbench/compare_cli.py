"""``workbench compare MODEL_A MODEL_B --dataset DS|--session NAME --out DIR``: the command.

The diff is ``workbench.compare.diff``; what it reads and writes around it (a run folder as
MODEL_B, the run's split, the output files, the summary) is ``workbench.compare.report``.
MODEL_B may be a training run's folder: its manifest must say it finished, and the run's
adapter is loaded onto its base. When it is a run that saved its split, the pairs are
reported as the run's train, held-out and never-seen pairs, each with its own figures.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli_options import HomeOpt, context_for
from workbench.compare.report import model_source, summary_lines, with_run_split, write_outputs


def compare(
    model_a: Annotated[str, typer.Argument(help="Reference model: catalog name or path.")],
    model_b: Annotated[str, typer.Argument(help="Model to diff against it: catalog name, path, PEFT adapter or run folder "
                                                "(a run's train, held-out and never-seen pairs are reported apart).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for diff.json, CSVs and PNG plots.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Stored dataset name or pair file.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Labeling session whose pairs (oriented by its votes) to use.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many pairs (each gives two texts).")] = 128,
    beta: Annotated[float, typer.Option(help="β of the implicit reward β·Δlog π.")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 8,
    lens_positions: Annotated[int, typer.Option(help="Response positions per text where the lens KL is measured.")] = 8,
    home: HomeOpt = None,
) -> None:
    """Diff two checkpoints of one tokenizer: per-layer KL/cosine/CKA, preference-lens margins, implicit reward and token shifts."""
    # torch, transformers and the labeling store: only when the command runs, not at every CLI start.
    from workbench.compare.diff import model_diff  # torch: only in compare()
    from workbench.compare.pairs import diff_pairs  # scipy: only in compare()

    ctx = context_for(None, home)
    pairs = diff_pairs(ctx, dataset, session, limit)
    source_a, source_b = model_source(model_a), model_source(model_b)  # refuse an unfinished run before loading anything
    lm_a, lm_b = ctx.get_model(source_a), ctx.get_model(source_b)
    if lm_a is lm_b:
        typer.echo("note: MODEL_A and MODEL_B are the same checkpoint; the diff will be zero.")
    elif lm_a.name == lm_b.name:  # two folders of one name (e.g. two runs' "adapter"): label them apart
        lm_a, lm_b = replace(lm_a, name=f"A:{lm_a.name}"), replace(lm_b, name=f"B:{lm_b.name}")
    diff = with_run_split(model_diff(lm_a, lm_b, pairs, beta=beta, batch_size=batch_size, lens_positions=lens_positions), model_b, ctx.settings)
    files = write_outputs(diff, out)
    for line in summary_lines(diff):
        typer.echo(line)
    typer.echo(f"wrote {', '.join(p.name for p in files)} to {out}")
