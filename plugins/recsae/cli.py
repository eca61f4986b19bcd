"""``workbench sae recsae|concepts|intervene``: train a RecSAE concept dictionary as a
background job, print its latent table, and ablate or boost one latent."""
from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from plugins.recsae import actions
from workbench.cli_options import HomeOpt, settings_for
from workbench.errors import ConfigError
from workbench.jobs.commands import job_command
from workbench.sae.job_configs import LMSAEJobConfig, RecSAEJobConfig

sae_app = typer.Typer(help="SAE concept dictionaries: train RecSAE on interaction data, list its concepts, intervene on latents.",
                      no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="RecSAE run id (or a unique prefix), a run folder, or a RecSAE result folder.")]


def _show_concepts_hint(run: Any) -> None:
    typer.echo(f"concepts: `workbench sae concepts {run.manifest.id}`")


def _show_latents_file(run: Any) -> None:
    typer.echo(f"latents: {run.dir / run.manifest.output / 'lm_latents.json'} (open with workbench.sae.lm.LMSAEResult.load)")


sae_app.command("recsae")(job_command(
    actions.JOB_TYPE, RecSAEJobConfig,
    "Train SASRec, an SAE on its user states, the concept dictionary and interventions (a background job).",
    on_finished=_show_concepts_hint))
sae_app.command("lm")(job_command(
    "lm-sae", LMSAEJobConfig,
    "Train an SAE on a language model's response tokens and rank latents by how they separate chosen from rejected.",
    on_finished=_show_latents_file))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    return str(value)


@sae_app.command("concepts")
def concepts(
    run: RunArg,
    top: Annotated[int, typer.Option(help="Rows to print (latents ranked by concept F1).")] = 20,
    all_latents: Annotated[bool, typer.Option("--all", help="Include latents without an enriched concept.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows instead of a table.")] = False,
    home: HomeOpt = None,
) -> None:
    """The concept dictionary: latents sorted by confidence (held-out F1 of predicting the latent from its concept)."""
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}.")
    result = actions.load_result(settings_for(home), run)
    table = actions.latent_table(result, only_concepts=not all_latents).head(top)
    if as_json:
        typer.echo(json.dumps(table.to_dict("records"), indent=1, default=float))
        return
    typer.echo(f"{result.folder}\n{actions.format_numbers(actions.summary_numbers(result))}")
    if table.empty:
        typer.echo("no latent has an enriched concept (try --all)")
        return
    columns = ["latent", "concept", "f1", "precision", "recall", "enrichment", "p_value", "frequency"]
    rows = [{c: _fmt(r[c]) for c in columns} for r in table.to_dict("records")]
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        typer.echo("  ".join(r[c].ljust(widths[c]) for c in columns))


@sae_app.command("intervene")
def intervene(
    run: RunArg,
    latent: Annotated[int, typer.Option(help="The SAE latent to edit.")],
    mode: Annotated[str, typer.Option(help="boost (set it to strength × its largest activation) or ablate (set it to 0).")] = "boost",
    strength: Annotated[float | None, typer.Option(help="Boost factor (default: the run's boost_strength).")] = None,
    concept: Annotated[str | None, typer.Option(help="Attribute whose share in the top-N is measured (default: the latent's concept).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Edit one latent in every user's state and print the share of concept items in the top-N, before vs after."""
    result = actions.load_result(settings_for(home), run)
    out = result.intervene(latent, mode, strength, concept)
    if as_json:
        typer.echo(json.dumps(out.as_dict(), indent=1))
        return
    typer.echo(f"latent {out.latent} · {out.mode} (value {out.value:.3f}) · concept {out.concept} · top-{out.top_n} of {out.n_users} users")
    typer.echo(f"share of {out.concept} items: before {out.share_before:.1%}, after {out.share_after:.1%} "
               f"(shift {out.shift:+.1%}; catalog share {out.catalog_share:.1%}); users whose top-{out.top_n} changed: {out.users_changed:.1%}")
