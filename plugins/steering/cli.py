"""``workbench steer vectors|from-session|blind``: the Steering tab's vector fit from votes and its
"Blind-test this setting" from the shell.

The same functions as the tab (``plugins.steering.actions.fit_from_votes``) and the loop
(``workbench.loop.start_steering_blind_session``); every refusal is a ``WorkbenchError``, which
``workbench`` prints as one message and turns into exit code 2. The commands import the
steering actions (4.7 s: torch, transformers) and the vector library inside themselves, so that
every other ``workbench`` command starts without them (tests/test_import_boundaries.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from plugins.steering.progress import ProgressText
from workbench.cli_options import HomeOpt, host_of, settings_for, table
from workbench.context import AppContext
from workbench.errors import ConfigError
from workbench.jobs.commands import follow, manager_for
from workbench.loop import BLIND_MAX_NEW_TOKENS, read_prompt_file, start_steering_blind_session
from workbench.models.embedded import DEMO_MODEL_NAME

steer_app = typer.Typer(help="Steering vectors: list them, fit one from a session's votes, blind-test a steering setting.",
                        no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option("--model", help="Catalog name or folder of the causal LM (default: the demo model).")]


def parse_vector_options(values: list[str]) -> list[tuple[str, float]]:
    """``NAME=COEF`` options (the coefficient after the last '=', since vector names may hold one) → (name, coefficient)."""
    out = []
    for text in values:
        name, sep, coef = text.rpartition("=")
        try:
            value = float(coef)
        except ValueError:
            value = None
        if not sep or not name or value is None:
            raise ConfigError(f"--vector {text!r} is not of the form NAME=COEFFICIENT.", hint="E.g. --vector 'votes:s@8:mean_diff=4'.")
        out.append((name, value))
    return out


@steer_app.command("vectors")
def vectors(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False, home: HomeOpt = None) -> None:
    """List the saved steering vectors (the ones the Steering tab's sliders offer)."""
    from workbench.steering.library import list_vectors  # imports torch: `workbench --help` should not pay for it

    saved = list_vectors(settings_for(home))
    rows = [[v.name, v.layer, v.method, v.d_model, round(v.scale, 3), v.info.get("model", ""), v.info.get("session", "")] for v in saved]
    columns = ["vector", "layer", "method", "d_model", "scale", "model", "session"]
    records = [dict(zip(columns, r, strict=True)) for r in rows]
    typer.echo(json.dumps(records) if as_json else table(records, columns))


@steer_app.command("from-session")
def from_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Labeling session whose A/B votes give the contrast (chosen vs rejected).")],
    layers: Annotated[str, typer.Option("--layers", help="Block outputs to fit a vector at, e.g. '8,12,16'.")] = "8,12,16",
    method: Annotated[str, typer.Option("--method", help="mean_diff, pca or probe.")] = "mean_diff",
    model: ModelOpt = None,
    home: HomeOpt = None,
) -> None:
    """Fit one steering vector per layer toward what the session's annotators chose, and save them."""
    from plugins.steering.actions import (  # torch and transformers: only this command pays
        FIT_UNITS,
        VECTOR_COLUMNS,
        fit_from_votes,
    )

    app_ctx = AppContext(settings_for(home), plugins=host_of(ctx))
    status = ProgressText(f"Fitting vectors from the votes of '{session}'", FIT_UNITS)

    def progress(stage: str, done: int, total: int) -> None:
        if status.update(stage, done, total) or done == total:
            typer.echo(status.text())

    rows = fit_from_votes(app_ctx, session, method, layers, model=model or DEMO_MODEL_NAME, progress=progress)
    typer.echo(table([dict(zip(VECTOR_COLUMNS, r, strict=True)) for r in rows], VECTOR_COLUMNS))
    typer.echo(f"saved {len(rows)} vector(s); `workbench steer blind --vector NAME=COEF …` blind-tests one.")


@steer_app.command("blind")
def blind(
    ctx: typer.Context,
    vector: Annotated[list[str], typer.Option("--vector", help="NAME=COEFFICIENT of a saved vector; repeat for several.")],
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Prompt file (one per line, or JSONL with 'prompt').")] = None,
    from_session_: Annotated[str | None, typer.Option("--from-session", help="Use this session's prompts that fitted none of "
                                                      "the vectors.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Use the first N prompts.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Name of the new session (default: steered-blind-<time>).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens per answer.")] = BLIND_MAX_NEW_TOKENS,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sample at this temperature (a seed per "
                                                      "side) instead of greedy, e.g. when greedy answers came out identical.")] = None,
    model: ModelOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the generation until it ends.")] = False,
    home: HomeOpt = None,
) -> None:
    """A blind session of unsteered-vs-steered answers (greedy or sampled, same model) on held-out prompts."""
    manager = manager_for(home, host_of(ctx))
    run = start_steering_blind_session(manager, model or DEMO_MODEL_NAME, parse_vector_options(vector),
                                       prompts=read_prompt_file(prompts) if prompts else None, from_session=from_session_, n=n,
                                       session=session, max_new_tokens=max_new_tokens, temperature=temperature)
    name = run.config["session"]
    typer.echo(f"started {run.id}: {len(run.config['prompts'])} prompts answered unsteered and steered; it opens session '{name}'. "
               f"Label it, then `workbench label stats {name}` says whether steered won.")
    if wait:
        follow(run)
