"""``workbench label sessions|create|stats|annotators|explain|import-judgments|leaderboard|export|close|reopen|serve``: labeling sessions from the shell.

The same store and functions as the Labeling tab and the notebook: ``LabelingStore``,
``session_report`` and the session exporters. Every refusal is a ``WorkbenchError``, which
``workbench`` prints as one message and turns into exit code 2. Each command imports the
labeling layer it runs inside itself (the store's sessions 0.9 s, the verdict 2.2 s, the app
context 4.6 s: scipy, torch), so that every other ``workbench`` command starts in 0.4 s.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from workbench.cli_options import DatabaseUrlOpt, HomeOpt, JsonOpt, context_for, host_of, table
from workbench.data.readers import FileDataError
from workbench.data.user_files import read_user_text
from workbench.errors import ConfigError, DataError
from workbench.jobs.commands import follow, manager_for
from workbench.labeling.alpacaeval import import_alpacaeval, session_leaderboard
from workbench.labeling.export import export_session_as
from workbench.labeling.sessions import ORDERS, LabelingStore, SessionSettings
from workbench.labeling.uncertain import DEFAULT_REFIT_EVERY
from workbench.loop import BLIND_MAX_NEW_TOKENS, read_prompt_file, start_blind_session
from workbench.settings import parse_auth

label_app = typer.Typer(help="Labeling sessions: list, create, statistics (Bradley–Terry, agreement) and export.",
                        no_args_is_help=True)



def _labeling(ctx: typer.Context, home: Path | None) -> LabelingStore:
    """The LabelingStore over ``home``, with the plugin host ``workbench`` built."""
    return context_for(ctx, home).labeling


def _clean(x: Any) -> Any:
    """JSON without NaN (which is not JSON): NaN becomes null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


@label_app.command("sessions")
def sessions(ctx: typer.Context, as_json: JsonOpt = False, home: HomeOpt = None) -> None:
    """List labeling sessions with their progress (pairs covered to the overlap asked for)."""
    lab = _labeling(ctx, home)
    rows = []
    for info in lab.list_sessions():
        p = lab.session_progress(info.name)
        rows.append({"name": info.name, "dataset": info.dataset, "status": info.status, "order": info.settings.order,
                     "overlap": info.settings.overlap, "pairs": info.n_pairs, "judgments": p["judgments"],
                     "annotators": len(lab.annotators(info.name)), "covered": p["covered"], "needed": p["needed"],
                     "progress": f"{100 * p['covered'] / p['needed']:.0f}%" if p["needed"] else "—"})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    elif not rows:
        typer.echo("no labeling sessions yet; create one with `workbench label create NAME --dataset DATASET`")
    else:
        typer.echo(table(rows, ["name", "dataset", "status", "order", "overlap", "pairs", "annotators", "judgments", "covered",
                                 "needed", "progress"]))


@label_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Session name.")],
    dataset: Annotated[str, typer.Option("--dataset", help="An imported dataset (see `workbench data list`).")],
    aspects: Annotated[str, typer.Option("--aspects", help="Aspects to judge, comma separated, e.g. helpfulness,verbosity.")] = "",
    overlap: Annotated[int, typer.Option("--overlap", help="Annotators per pair.")] = 1,
    order: Annotated[str, typer.Option("--order", help=f"Pair order: {', '.join(ORDERS)} (model-uncertain: the pairs whose "
                                                       "vote would most lower the uncertainty of a reward head refitted from the votes; needs a model).")] = "sequential",
    repeat_share: Annotated[float, typer.Option("--repeat-share", help="Share of each annotator's items that are hidden repeats "
                                                                       "(0–0.5), sides swapped, for self-consistency.")] = 0.0,
    uncertainty_model: Annotated[str, typer.Option("--uncertainty-model", help="Model whose features the model-uncertain order "
                                                                               "reads (default: --policy-model).")] = "",
    refit_every: Annotated[int, typer.Option("--refit-every", help="Decisive votes between the model-uncertain head's refits.")] = DEFAULT_REFIT_EVERY,
    gold: Annotated[Path | None, typer.Option("--gold", help="JSON file {pair_id: 'A'|'B'|'tie'} of gold pairs.")] = None,
    policy_model: Annotated[str, typer.Option("--policy-model", help="Model for the post-vote log-probs (catalog name).")] = "",
    reference_model: Annotated[str, typer.Option("--reference-model", help="Reference model for the DPO margin.")] = "",
    reward_model: Annotated[str, typer.Option("--reward-model", help="Reward model to score responses after the vote.")] = "",
    beta: Annotated[float, typer.Option("--beta", help="β of the implicit DPO reward margin.")] = 0.1,
    home: HomeOpt = None,
) -> None:
    """Create an open labeling session over an imported dataset."""

    gold_map: dict[str, str] = {}
    if gold is not None:
        try:
            gold_map = json.loads(read_user_text(gold))  # size-bounded, a pipe refused, errors naming the file
        except json.JSONDecodeError as err:
            raise DataError(f"The gold file is not valid JSON: {err.msg}.", path=gold, line=err.lineno,
                            hint='Write e.g. {"p1": "A", "p7": "tie"}.') from None
        if not isinstance(gold_map, dict):
            raise DataError("The gold file must hold one JSON object {pair_id: answer}.", path=gold, hint='E.g. {"p1": "A"}.')
    settings = SessionSettings(aspects=[a.strip() for a in aspects.split(",") if a.strip()], overlap=overlap, gold=gold_map,
                               order=order, policy_model=policy_model, reference_model=reference_model,
                               reward_model=reward_model, beta=beta, repeat_share=repeat_share,
                               uncertainty_model=uncertainty_model, refit_every=refit_every)
    info = _labeling(ctx, home).create_session(name, dataset, settings)
    typer.echo(f"created session '{info.name}' over {info.n_pairs} pairs of '{info.dataset}' "
               f"(order {info.settings.order}, overlap {info.settings.overlap}"
               + (f", aspects {', '.join(info.settings.aspects)}" if info.settings.aspects else "") + ")")


@label_app.command("stats")
def stats(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session name.")],
    ties: Annotated[str, typer.Option("--ties", help="Tie treatment: davidson or half (half-wins).")] = "davidson",
    precision: Annotated[float | None, typer.Option("--precision", help="Win-rate half-width at which labeling may stop "
                                                    "even when undecided (default: stop only when decided).")] = None,
    candidate: Annotated[str | None, typer.Option("--candidate", help="Source whose win rate to report (default: the one "
                                                  "recorded when the session was made, else the top-rated).")] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """Did it win (Bradley–Terry of the sources, raw and length-controlled win rate, with CIs),
    what explains the votes (factor regression), agreement and annotators."""
    from workbench.labeling.analysis import agreement_rows, fmt_num, session_report  # scipy: only the statistics
    from workbench.labeling.verdict import session_verdict, verdict_tables

    if ties not in ("davidson", "half"):
        raise ConfigError(f"Unknown tie treatment {ties!r}.", hint="Use --ties davidson or --ties half.")
    if precision is not None and not 0 < precision < 0.5:
        raise ConfigError(f"--precision must be between 0 and 0.5, got {precision}.", hint="E.g. 0.05 for a win rate ± 0.05.")
    lab = _labeling(ctx, home)
    report = session_report(lab, session, ties=ties, precision=precision)
    verdict = session_verdict(lab, session, candidate=candidate, ties=ties)
    if as_json:
        typer.echo(json.dumps(_clean({**report, **verdict}), indent=1))
        return
    p, a = report["progress"], report["agreement"]
    typer.echo(f"session {session}: {p['judgments']} votes ({p['skips']} skips), coverage {p['covered']}/{p['needed']}, "
               f"annotators: {', '.join(a['annotators']) or '—'}")
    typer.echo(report["stopping_hint"])
    tables = verdict_tables(verdict)
    typer.echo("\ndid it win?")
    if tables["win_error"]:
        typer.echo(tables["win_error"])
    else:
        typer.echo(f"Bradley–Terry ratings (ties: {report['tie_model']}; 95% Laplace interval of the MAP fit)")
        typer.echo(table(tables["ratings"], ["source", "theta", "ci", "elo"]))
        if ties == "davidson":
            typer.echo(f"Davidson tie parameter ν = {fmt_num(report['davidson_nu'])}")
        typer.echo(table([{"measure": m, "value": v} for m, v in tables["win"]], ["measure", "value"]))
    typer.echo("\nwhat explains these votes (logistic regression of the outcome on response factors)")
    if tables["factors_error"]:
        typer.echo(tables["factors_error"])
    else:
        typer.echo(table(tables["factors"], ["factor", "coef", "ci", "odds_ratio", "p"]))
    typer.echo("\nagreement")
    typer.echo(table([{"measure": m, "value": v} for m, v in agreement_rows(a)], ["measure", "value"]))
    if report["annotators"]:
        typer.echo("\nannotators")
        cols = list(report["annotators"][0])
        typer.echo(table([{c: fmt_num(v) for c, v in r.items()} for r in report["annotators"]], cols))


@label_app.command("import-judgments")
def import_judgments(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="AlpacaEval-style annotations (JSON list or JSONL: instruction, output_1, "
                                                    "output_2, preference, optional annotator/generator_1/generator_2); "
                                                    "several files (one per model, one baseline) make one session.")],
    session: Annotated[str, typer.Option("--session", help="Name of the new session holding the judges' votes.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Name of the new dataset (default: the session name).")] = None,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Keep records that look like mistakes, by kind (comma "
                                                                    "separated or repeated), e.g. identical.")] = None,
    names: Annotated[str | None, typer.Option("--names", help="The files' model names, comma separated in file order "
                                                              "(default: each record's generator_2).")] = None,
    home: HomeOpt = None,
) -> None:
    """Import judges' annotations as a session's votes (a fractional preference stays a soft vote),
    to rank and check like human votes; `workbench label leaderboard` gives AlpacaEval's table."""

    kinds = [k.strip() for a in allow or () for k in a.split(",") if k.strip()]
    model_names = [n.strip() for n in names.split(",")] if names is not None else None
    try:
        counts = import_alpacaeval(_labeling(ctx, home), paths, session, dataset=dataset, allow=kinds, names=model_names)
    except FileDataError as err:
        if not err.refused:
            raise
        raise err.shown_as(err.path or "", hint=f"Fix or drop those records, or keep them with `workbench label import-judgments "
                                                f"… --allow {','.join(err.refused)}`.") from None
    typer.echo(f"session '{session}': {counts['pairs']} pairs, {counts['votes']} votes by {', '.join(counts['annotators']) or 'nobody'} "
               f"({counts['unlabeled']} without a preference, {counts['repeated']} repeated votes ignored); {counts['files']} file(s)"
               + (f", baseline {counts['baseline']}, {len(counts['sources'])} source(s)" if counts["baseline"] else "")
               + f"; `workbench label leaderboard {session}` gives the win rates, `workbench label stats {session}` ranks the sources")


@label_app.command("leaderboard")
def leaderboard(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session name.")],
    baseline: Annotated[str | None, typer.Option("--baseline", help="The source every other is compared with "
                                                                    "(default: the one on one side of every pair).")] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """AlpacaEval's leaderboard of a session, one row per source against the baseline: n, soft and
    discrete win rate, length-controlled win rate with its interval, length coefficient, whether
    that rate extrapolates, and how many votes would flip the winner (percent, as AlpacaEval prints)."""

    from workbench.labeling.analysis import fmt_num  # scipy: only the statistics

    board = session_leaderboard(_labeling(ctx, home), session, baseline=baseline)
    if as_json:
        rows = [{**r, "baseline": board["baseline"], "difficulty": board["difficulty"]} for r in board["rows"]]
        typer.echo(json.dumps(_clean(rows), indent=1))
        return
    typer.echo(f"session {session}: {len(board['rows'])} source(s) against {board['baseline']} on {board['instructions']} "
               f"instructions; percent, as AlpacaEval prints them")
    typer.echo(f"instruction difficulty: {board['difficulty']}")
    if board["rows"]:
        typer.echo(f"regularisation: {board['rows'][0]['regularisation']}")
    level = f"{board['level']:.0%}"
    rows = [{"source": r["source"], "n": r["n"], "win_rate": fmt_num(r["win_rate"], ".2f"),
             "discrete": fmt_num(r["discrete_win_rate"], ".2f"), "lc_win_rate": fmt_num(r["lc_win_rate"], ".2f"),
             f"lc {level} CI": f"[{fmt_num(r['lc_win_rate_ci'][0], '.2f')}, {fmt_num(r['lc_win_rate_ci'][1], '.2f')}]",
             "length_coef": fmt_num(r["length_coef"], ".2f"), "extrapolates": "yes" if r["extrapolates"] else "no",
             "votes_to_flip": "—" if r["votes_to_flip"] is None else r["votes_to_flip"]} for r in board["rows"]]
    typer.echo(table(rows, list(rows[0])))
    notes = [f"{r['source']}: {r['extrapolation_note']}" for r in board["rows"] if r["extrapolates"]]
    if notes:
        typer.echo("\n".join(["", "extrapolation (the LC rate predicts equal length from votes mostly on one side):", *notes]))


@label_app.command("annotators")
def annotators(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session name.")],
    candidate: Annotated[str | None, typer.Option("--candidate", help="Also say whether this source won, per taste group.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Also place each annotator at a PAL ideal point among this model's "
                                                              "features of the answers (catalog name or path).")] = None,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap refits for the ideal-point distances' intervals.")] = 20,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """Noisy, or a different taste? Per annotator: taste (factor weights with intervals), taste
    group, competence (consensus within the group, gold, self-consistency) and a noisy flag with its
    evidence; with ``--model``, each annotator's PAL ideal point and its distance to the others."""
    from workbench.preference.annotators import annotator_rows, group_verdicts, session_annotators  # scipy: only this command

    wb = context_for(ctx, home)
    lab = wb.labeling
    analysis = session_annotators(lab, session, model=model, models=wb.model_service if model else None, resamples=resamples)
    by_group = group_verdicts(lab, session, candidate, analysis=analysis) if candidate else None
    if as_json:
        typer.echo(json.dumps(_clean(analysis["annotators"]), indent=1))
        return
    typer.echo(f"session {session}: {len(analysis['annotators'])} annotator(s), taste groups "
               + (", ".join(f"{g}: {', '.join(m)}" for g, m in analysis["groups"].items()) or "none")
               + f"; noisy = no test (taste LR, one factor, majority, gold, repeats) significant at {analysis['alpha']} (Bonferroni)")
    if "ideal_points" in analysis:
        g = analysis["ideal_points"]["grouping"]
        typer.echo(f"ideal points ({analysis['ideal_points']['feature_model']}): "
                   + (", ".join(f"{c}: {', '.join(m)}" for c, m in g["clusters"].items()) or "no clusters")
                   + (f"; adjusted Rand vs taste groups {g['adjusted_rand']:.2f}" if g["adjusted_rand"] is not None else f"; {g['note']}"))
    rows = annotator_rows(analysis)
    if rows:
        typer.echo(table(rows, list(rows[0])))
    if by_group:
        typer.echo(f"\ndid {candidate} win, for whom?")
        typer.echo(table([{"group": g, "annotators": ", ".join(v["annotators"]),
                            "win rate": v.get("error") or f"{v['win_rate']:.3f} [{v['win_rate_ci'][0]:.3f}, {v['win_rate_ci'][1]:.3f}] "
                                                          f"n={v['n']}: {v['verdict']}"} for g, v in by_group["groups"].items()],
                          ["group", "annotators", "win rate"]))
        w = by_group["competence_weighted"]
        typer.echo(f"everyone, weighted by {w['weighting']}: " + ("—" if w["rate"] is None else
                   f"{w['rate']:.3f} [{w['ci'][0]:.3f}, {w['ci'][1]:.3f}], effective n {w['effective_n']:.0f} of {w['n']}"))
        bt = by_group["competence_weighted_bradley_terry"]
        typer.echo(f"Bradley–Terry, {bt.get('error') or bt['weighting']}" + ("" if bt.get("error") else ": " + ", ".join(
            f"{r['source']} {r['theta']:.2f} [{r['low']:.2f}, {r['high']:.2f}]" for r in bt["ratings"])))


@label_app.command("explain")
def explain(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session name.")],
    sae: Annotated[str, typer.Option("--sae", help="A finished LM-SAE run (id or unique prefix; `workbench sae lm` makes one). "
                                                   "The session's answers are read through that run's model.")],
    top: Annotated[int, typer.Option("--top", help="Latents listed (ranked by |coefficient|).")] = 10,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """Which features the votes reward: the SAE latents whose chosen-minus-rejected activation predicts
    the votes (L1 logistic regression, AUC on held-out prompts with an interval), overall and per taste
    group, and how much they add over the interpretable factors (length, lists, markdown, …)."""
    from workbench.preference.vote_features import (  # sklearn: only this command
        comparison_rows,
        explain_session,
        group_rows,
        latent_rows,
    )

    result = explain_session(context_for(ctx, home), session, sae, top=top)
    if as_json:
        typer.echo(json.dumps(_clean(result), indent=1))
        return
    overall = result["overall"]
    typer.echo(f"session {session} · LM-SAE run {result['run']} ({result['model']}, layer {result['layer']}, {result['d_sae']} latents): "
               f"{overall['n_votes']} votes on {overall['n_prompts']} prompts ({result['ties_dropped']} ties dropped; "
               f"{overall['latents_tested']} latents differ on some pair, {overall['latents_selected']} selected)")
    typer.echo(f"method: {result['method']}; intervals {result['level']:.0%}")
    typer.echo("\nAUC on held-out prompts")
    typer.echo(table(comparison_rows(overall), ["model", "AUC [interval]", "n"]))
    rows = latent_rows(overall)
    typer.echo("\ntop latents (coef: log-odds per RMS of the chosen − rejected difference; folds: cross-fit folds that chose it)")
    typer.echo(table(rows, list(rows[0])) if rows else "no latent was selected: the latents do not predict these votes")
    if result["groups"]:
        typer.echo("\nper taste group (workbench label annotators)")
        typer.echo(table(group_rows(result), ["group", "annotators", "latents AUC [interval]", "top latents"]))


@label_app.command("export")
def export(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session name.")],
    path: Annotated[Path, typer.Argument(help="Output file (or folder for --format hf).")],
    format: Annotated[str, typer.Option("--format", help="trl-jsonl, trl-parquet (TRL columns), hf-dataset (datasets folder), "
                                                        "long-table-csv or long-table-parquet (one row per vote).")] = "trl-jsonl",
    aggregate: Annotated[str, typer.Option("--aggregate", help="DPO rows per judgment, or per pair by majority.")] = "judgment",
    home: HomeOpt = None,
) -> None:
    """Export a session's votes for trainers (TRL DPO) or analysts (the long table)."""

    typer.echo(json.dumps(export_session_as(_labeling(ctx, home), session, path, format, aggregate=aggregate)))


def _set_status(ctx: typer.Context, session: str, status: str, home: Path | None) -> None:
    info = _labeling(ctx, home).set_status(session, status)
    typer.echo(f"session '{info.name}' is {info.status}")


@label_app.command("close")
def close(ctx: typer.Context, session: Annotated[str, typer.Argument(help="Session name.")], home: HomeOpt = None) -> None:
    """Close a session: it takes no more votes (its votes stay)."""
    _set_status(ctx, session, "closed", home)


@label_app.command("reopen")
def reopen(ctx: typer.Context, session: Annotated[str, typer.Argument(help="Session name.")], home: HomeOpt = None) -> None:
    """Reopen a closed session."""
    _set_status(ctx, session, "open", home)


@label_app.command("from-run")
def from_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A finished DPO run (id or unique prefix).")],
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Prompt file (one per line, or JSONL with 'prompt'); "
                                                 "default: the source session's prompts that trained nothing.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Use the first N prompts.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Name of the new session (default: <run>-blind).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens per answer.")] = BLIND_MAX_NEW_TOKENS,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sample at this temperature (a seed per "
                                                      "side) instead of greedy, e.g. when greedy answers came out identical.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the generation until it ends.")] = False,
    home: HomeOpt = None,
) -> None:
    """A blind session of base-vs-tuned answers from a finished DPO run, on prompts it never trained on."""

    manager = manager_for(home, host_of(ctx))
    run = start_blind_session(manager, run_id, prompts=read_prompt_file(prompts) if prompts else None, n=n, session=session,
                              max_new_tokens=max_new_tokens, temperature=temperature)
    name = run.config["session"]
    typer.echo(f"started {run.id}: {len(run.config['prompts'])} prompts answered by base and tuned; it opens session '{name}'. "
               f"Label it, then `workbench label stats {name}` says whether tuned won.")
    if wait:
        follow(run)


@label_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; a non-loopback one needs --auth or --users.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 7861,
    auth: Annotated[str | None, typer.Option("--auth", help="owner:password for every request (or WORKBENCH_AUTH).")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="File of name:password lines, one login per annotator.")] = None,
    api_only: Annotated[bool, typer.Option("--api-only", help="Serve the vote API and the fast page without the Gradio UI.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes on the port (needs --api-only; all share the store).")] = 1,
    home: HomeOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Serve labeling only, for annotators: the fast keyboard page /label/<session>, the API and the Labeling tab.

    The same server as ``python -m apps.labeling_server`` (both call ``plugins.labeling.server.serve``),
    so both check the bind address, the logins and the home the same way.
    """
    from plugins.labeling.server import serve as serve_labeling  # uvicorn + the app: only this command needs them

    serve_labeling(host=host, port=port, auth=parse_auth(auth) if auth else None, users=users, home=home,
                   api_only=api_only, workers=workers, database_url=database_url)  # a refusal: the CLI prints it, exit 2
