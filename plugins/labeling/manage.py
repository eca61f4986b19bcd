"""The session tools under the labeling view: create, analyse, find disagreements, export, import.

Plots are matplotlib figures built from ``session_report``; the numbers are the same ones
the notebook and the API see.
"""
from __future__ import annotations

import json
from typing import Any

import gradio as gr
import numpy as np

from plugins.labeling.loop_panel import build_loop_panel
from workbench.app.auth import OWNER, login_name, require_owner, role_of
from workbench.app.ui import error_markdown, md_escape, model_choices
from workbench.data.readers import FileDataError
from workbench.errors import WorkbenchError
from workbench.jobs import JobManager, describe_failure
from workbench.labeling.alpacaeval import import_alpacaeval
from workbench.labeling.analysis import agreement_rows, fmt_num, session_report
from workbench.labeling.export import SESSION_EXPORT_FORMATS, export_session_as
from workbench.labeling.generate import GENERATE_PAIRS
from workbench.labeling.scores import disagreement_queue, model_scores
from workbench.labeling.sessions import ORDERS, LabelingStore, SessionSettings
from workbench.labeling.verdict import session_verdict, verdict_tables
from workbench.preference.annotators import annotator_rows, group_verdicts, session_annotators
from workbench.preference.vote_features import LM_SAE_TYPE, comparison_rows, explain_session, group_rows, latent_rows

DISAGREEMENT_HEADERS = ["pair", "humans", "model", "model preference"]
NO_MODEL = ("— none —", "")


def owner_only(ctx: Any, request: gr.Request | None) -> None:
    """Refuse a named annotator's login: these tools show (or act on) everyone's votes."""
    require_owner(ctx.settings, login_name(request), "use the labeling session tools (they show everyone's votes)")


def ratings_figure(report: dict[str, Any]) -> Any:
    """Bradley–Terry ratings with Laplace intervals (left) and the win-rate matrix (right)."""
    # matplotlib only when a figure is drawn: its import is slow and the backend must be set first.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # once the backend is set

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    rows = report["ratings"]
    if rows:
        y = np.arange(len(rows))[::-1]
        theta = np.array([r["theta"] for r in rows])
        low = np.array([r["low"] if r["low"] is not None else r["theta"] for r in rows])
        high = np.array([r["high"] if r["high"] is not None else r["theta"] for r in rows])
        ax1.errorbar(theta, y, xerr=[theta - low, high - theta], fmt="o", capsize=4)
        ax1.set_yticks(y, [r["source"] for r in rows])
        ax1.axvline(0, color="#999", lw=0.8)
        ax1.set_xlabel(f"log-strength θ (95% Laplace interval, ties: {report['tie_model']})")
    else:
        ax1.text(0.5, 0.5, "no source comparisons yet", ha="center", va="center")
        ax1.set_axis_off()
    wr = report["win_rate"]
    if wr["items"]:
        rate = np.array(wr["rate"], dtype=float)
        im = ax2.imshow(rate, vmin=0, vmax=1, cmap="RdBu")
        ax2.set_xticks(range(len(wr["items"])), wr["items"], rotation=45, ha="right")
        ax2.set_yticks(range(len(wr["items"])), wr["items"])
        for (i, j), n in np.ndenumerate(np.array(wr["count"])):
            if n:
                ax2.text(j, i, f"{rate[i, j]:.2f}\n(n={n})", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax2, label="row beats column (ties ½)")
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    return fig


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {' | '.join(r)} |" for r in rows)]


def report_markdown(report: dict[str, Any], verdict: dict[str, Any]) -> str:
    """The statistics as Markdown: did it win, what explains the votes, then agreement."""
    p, a = report["progress"], report["agreement"]
    tables = verdict_tables(verdict)
    lines = [
        f"**{report['stopping_hint']}**", "",
        f"Votes: {p['judgments']} ({p['skips']} skips, which do not count toward coverage) · coverage {p['covered']}/{p['needed']}"
        f" · annotators: {', '.join(a['annotators']) or '—'}",
        f"Davidson tie parameter ν = {fmt_num(report['davidson_nu'])}"
        + (f" · {report['ranking_fragility']['note']}" if report["ranking_fragility"] else ""),
        "", "#### Did it win?", "",
    ]
    if tables["win_error"]:
        lines.append(f"⚠️ {tables['win_error']}")
    else:
        lines += _md_table(["source", "Bradley–Terry θ", "CI", "Elo"], [list(r.values()) for r in tables["ratings"]]) + [""]
        lines += _md_table(["measure", "value"], [list(r) for r in tables["win"]])
    lines += ["", "#### What explains these votes (logistic regression on response factors)", ""]
    if tables["factors_error"]:
        lines.append(f"⚠️ {tables['factors_error']}")
    else:
        lines += _md_table(["factor", "coefficient (log-odds)", "95% CI", "odds ratio", "p"], [list(r.values()) for r in tables["factors"]])
    lines += ["", "#### Agreement", ""] + _md_table(["agreement", "value"], [list(r) for r in agreement_rows(a)])
    if p.get("selection"):
        lines += ["", *selection_markdown(p["selection"])]
    return "\n".join(lines)


def _share(acc: dict[str, Any] | None) -> str:
    return "—" if acc is None else f"{acc['rate']:.2f} [{acc['ci'][0]:.2f}, {acc['ci'][1]:.2f}], n {acc['n']}"


def selection_markdown(sel: dict[str, Any]) -> list[str]:
    """A model-uncertain session's order (``LabelingStore.selection_status``): what it does now and
    what its reward head rests on, so an owner sees whether the order is steering yet."""
    rows = [["doing", md_escape(sel["doing"])], ["refits", str(sel["refits"])],
            ["votes since the last refit", f"{sel['votes_since_refit']} (refit every {sel['refit_every']})"],
            ["feature model", md_escape(sel["features"] or "— (read on the first refit)")],
            ["held-out accuracy (each head on the votes after it)", _share(sel["heldout_accuracy"])],
            ["accuracy on its own votes", _share(sel["self_accuracy"])]]
    return ["#### Selection: model-uncertain", "", *_md_table(["order", "now"], rows), "", md_escape(sel["note"])]


ANNOTATOR_COLUMNS = ["annotator", "votes", "taste_group", "noisy", "competence", "consensus", "gold", "self_consistency",
                     "taste (interval excludes 0)", "evidence"]


def _interval(rate: float | None, ci: list[float] | None) -> str:
    return "—" if rate is None or ci is None else f"{rate:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def annotators_markdown(labeling: LabelingStore, session: str, candidate: str | None, *, model: str = "",
                        models: Any = None) -> str:
    """Noisy, or a different taste? (issue 25): each annotator's competence, noise flag with its
    evidence, taste group and strongest tastes; with a candidate, whether it won for each group
    and over everyone weighted by competence (said as such); with a ``model`` (loaded by the
    ``models`` service), each annotator's PAL ideal point and whether it groups them the same way."""
    lines = ["#### Annotators: noisy or a different taste?", ""]
    try:
        analysis = session_annotators(labeling, session)
    except WorkbenchError as err:
        return "\n".join([*lines, f"⚠️ {md_escape(str(err))}"])
    if model and analysis["annotators"]:
        try:  # a model that fails to load or embed costs the ideal points, not the rest of the block
            analysis = session_annotators(labeling, session, model=model, models=models)
        except WorkbenchError as err:
            lines += [f"⚠️ Ideal points on {md_escape(model)}: {md_escape(str(err))}", ""]
    if not analysis["annotators"]:
        return "\n".join([*lines, "No votes yet."])
    lines += [f"Noisy = no test tells the votes from coin flips (Bonferroni, family-wise α = {analysis['alpha']}); "
              f"tastes whose predictions have mean cosine ≥ {analysis['group_cosine']} form one group; competence is a "
              f"one-coin Dawid–Skene accuracy within the group, with gold and self-consistency where present "
              f"({analysis['level']:.0%} intervals, n votes).", ""]
    rows = annotator_rows(analysis)
    columns = ANNOTATOR_COLUMNS + [c for c in rows[0] if c not in ANNOTATOR_COLUMNS]
    lines += _md_table(columns, [[md_escape(r[c]) for c in columns] for r in rows])
    groups = [f"**{g}**: {', '.join(md_escape(a) for a in names)}" for g, names in analysis["groups"].items()]
    noisy = [md_escape(r["annotator"]) for r in analysis["annotators"] if r["noisy"]]
    lines += ["", f"Taste groups: {' · '.join(groups) or 'none'} · noisy: {', '.join(noisy) or 'none'}"]
    if "ideal_points" in analysis:
        lines += ["", _ideal_point_line(analysis["ideal_points"])]
    if candidate:
        lines += ["", *_group_verdict_lines(group_verdicts(labeling, session, candidate, analysis=analysis))]
    return "\n".join(lines)


def _ideal_point_line(found: dict[str, Any]) -> str:
    """The ideal points' grouping beside the factor groups, with what the distances measure."""
    g = found["grouping"]
    clusters = " · ".join(f"**{c}**: {', '.join(md_escape(a) for a in names)}" for c, names in g["clusters"].items())
    verdict = (f"adjusted Rand index vs the taste groups {g['adjusted_rand']:.2f} ({'agrees' if g['agrees'] else 'differs'})"
               if g["adjusted_rand"] is not None else md_escape(g["note"]))
    return (f"Ideal points (PAL-A on the features of {md_escape(found['feature_model'])}, {found['fit']['votes']} votes, "
            f"{found['fit']['resamples']} bootstrap refits): {clusters or 'no clusters'}; {verdict}. "
            f"Distances: {md_escape(found['units'])}.")


def _group_verdict_lines(answer: dict[str, Any]) -> list[str]:
    """Did the candidate win, for whom: one row per taste group (and the noisy apart), then the
    competence-weighted win rate with its effective n and the rule that weighted it."""
    cand = md_escape(answer["candidate"])
    rows = []
    for group, g in answer["groups"].items():
        who = ", ".join(md_escape(a) for a in g["annotators"])
        if "error" in g:
            rows.append([group, who, "—", "—", md_escape(g["error"]), "—"])
        else:
            rows.append([group, who, str(g["n"]), _interval(g["win_rate"], g["win_rate_ci"]), md_escape(str(g["verdict"])),
                         _interval(g["lc_win_rate"], g["lc_win_rate_ci"])])
    lines = [f"Did {cand} win, for whom?", "",
             *_md_table(["group", "annotators", "votes", "win rate [CI]", "verdict", "length-controlled [CI]"], rows)]
    w = answer["competence_weighted"]
    if w["rate"] is None:
        lines += ["", f"Weighted by competence: no vote has weight above 0 ({w['n']} votes; {w['weighting']})."]
    else:
        lines += ["", f"Weighted by competence: {cand} wins {_interval(w['rate'], w['ci'])} of {w['n']} votes "
                      f"(effective n {w['effective_n']:.1f}; {w['weighting']})."]
    return lines


def build_manage_section(ctx: Any, view: Any) -> None:
    """The session tools under the labeling view: one accordion per section, shown to the owner only.

    Hiding is for tidiness; every handler checks the role itself (``owner_only``). The
    analysis section's session dropdown is made first (unrendered) because creating a
    session refreshes it; page loads refresh it for the owner.
    """
    which = gr.Dropdown(choices=[s.name for s in ctx.labeling.list_sessions()], label="Session",
                        elem_id="wb-lab-an-session", render=False)
    loop = build_loop_panel(ctx)
    new_section, datasets = _new_session_section(ctx, view, which)
    generate = _generate_section(ctx)
    analysis, ideal = _analysis_section(ctx, which)
    features, sae_runs = _features_section(ctx, which)
    sections = [loop, new_section, generate, analysis, features]

    def tools_visible(request: gr.Request) -> list[Any]:
        """Show the tools to the owner, with the sessions, datasets and models as they are now (not at start-up)."""
        owner = role_of(ctx.settings, login_name(request)) == OWNER
        every = [s.name for s in ctx.labeling.list_sessions()]
        names = gr.update(choices=every, value=every[0] if every else None) if owner else gr.update()
        data = gr.update(choices=[d["name"] for d in ctx.store.list_datasets()]) if owner else gr.update()
        models = gr.update(choices=[NO_MODEL, *model_choices(ctx)]) if owner else gr.update()
        runs = gr.update(choices=lm_sae_run_choices(ctx)) if owner else gr.update()
        return [*[gr.update(visible=owner)] * len(sections), names, data, models, runs]

    gr.context.Context.root_block.load(tools_visible, None, [*sections, which, datasets, ideal, sae_runs])


def _new_session_section(ctx: Any, view: Any, which: gr.Dropdown) -> tuple[gr.Accordion, gr.Dropdown]:
    with gr.Accordion("New session", open=False) as section:
        with gr.Row():
            name = gr.Textbox(label="Session name", elem_id="wb-lab-new-name")
            dataset = gr.Dropdown(choices=[d["name"] for d in ctx.store.list_datasets()], label="Dataset", elem_id="wb-lab-new-dataset")
            order = gr.Dropdown(list(ORDERS), value="sequential", label="Pair order", elem_id="wb-lab-new-order")
            overlap = gr.Number(1, precision=0, minimum=1, label="Annotators per pair", elem_id="wb-lab-new-overlap")
        with gr.Row():
            aspects = gr.Textbox(label="Aspects (comma separated)", placeholder="helpfulness, verbosity, harmlessness")
            gold = gr.Textbox(label="Gold pairs (JSON: {pair_id: 'A'|'B'|'tie'})", placeholder="{}")
            annotators = gr.Textbox(label="Assigned annotators (comma separated; empty = every annotator login)",
                                    elem_id="wb-lab-new-annotators")
        with gr.Row():
            policy = gr.Textbox(label="Policy model for post-vote scores (optional)")
            reference = gr.Textbox(label="Reference model (optional)")
            reward = gr.Textbox(label="Reward model (optional)")
            beta = gr.Number(0.1, label="β")
        create = gr.Button("Create session", elem_id="wb-lab-create")
        created = gr.Markdown()

    def make(name: str, dataset: str, order: str, overlap: float, aspects: str, gold: str, annotators: str, policy: str,
             reference: str, reward: str, beta: float, request: gr.Request) -> tuple[str, Any, Any]:
        try:
            owner_only(ctx, request)
            try:
                gold_map = json.loads(gold) if gold.strip() else {}
            except json.JSONDecodeError as err:
                raise WorkbenchError(f"Gold pairs are not valid JSON: {err}.", hint='Write e.g. {"p1": "A"}.') from None
            settings = SessionSettings(aspects=_names(aspects), overlap=int(overlap or 1), gold=gold_map, order=order,
                                       policy_model=policy.strip(), reference_model=reference.strip(),
                                       reward_model=reward.strip(), beta=float(beta or 0.1), annotators=_names(annotators))
            info = ctx.labeling.create_session(name, dataset or "", settings)
        except WorkbenchError as err:
            return f"⚠️ {err}", gr.update(), gr.update()
        names = view.session_names(login_name(request))
        every = [s.name for s in ctx.labeling.list_sessions()]
        return (f"✓ Created session **{info.name}** over {info.n_pairs} pairs.", gr.update(choices=every),
                gr.update(choices=names, value=info.name))

    create.click(make, [name, dataset, order, overlap, aspects, gold, annotators, policy, reference, reward, beta],
                 [created, which, view.session_dropdown])
    return section, dataset


def _names(text: str) -> list[str]:
    return [a.strip() for a in (text or "").split(",") if a.strip()]


def _generate_section(ctx: Any) -> gr.Accordion:
    with gr.Accordion("Generate pairs from two sources (background job)", open=False) as section:
        with gr.Row():
            gen_dataset = gr.Textbox(label="New dataset name", elem_id="wb-lab-gen-dataset")
            gen_session = gr.Textbox(label="Open a session on it (name, optional)")
            gen_tokens = gr.Number(128, precision=0, minimum=1, label="Max new tokens")
        gen_prompts = gr.Textbox(label="Prompts (one per line)", lines=4)
        with gr.Row():
            model_a = gr.Textbox(label="Source A: model (catalog name or path)")
            system_a = gr.Textbox(label="A: system prompt")
            temp_a = gr.Number(0.7, label="A: temperature (0 = greedy)")
        with gr.Row():
            model_b = gr.Textbox(label="Source B: model")
            system_b = gr.Textbox(label="B: system prompt")
            temp_b = gr.Number(1.0, label="B: temperature (0 = greedy)")
        with gr.Row():
            gen_btn = gr.Button("Start generating", elem_id="wb-lab-generate")
            gen_refresh = gr.Button("Refresh progress")
        gen_status = gr.Markdown()
        gen_run = gr.State("")

    def source(model: str, system: str, temp: float, label: str) -> dict[str, Any]:
        temp = float(temp or 0)
        sampling = {"do_sample": False} if temp <= 0 else {"temperature": temp}
        name = f"{label}: {model.strip()}" + (f" (t={temp:g})" if temp > 0 else " (greedy)") + (" +system" if system.strip() else "")
        return {"name": name, "model": model.strip(), "system": system.strip() or None, "sampling": sampling}

    def generate(dataset: str, session: str, tokens: float, prompts: str, ma: str, sa: str, ta: float, mb: str, sb: str,
                 tb: float, request: gr.Request) -> tuple[str, str]:
        try:
            owner_only(ctx, request)
            a, b = source(ma, sa, ta, "A"), source(mb, sb, tb, "B")
            for src in (a, b):
                src["sampling"]["max_new_tokens"] = int(tokens or 128)
            config = {"dataset": dataset.strip(), "prompts": [p for p in prompts.splitlines() if p.strip()], "sources": [a, b]}
            if session.strip():
                config["session"] = session.strip()
            run = JobManager.for_context(ctx).submit(GENERATE_PAIRS.name, config)
        except WorkbenchError as err:
            return f"⚠️ {err}", ""
        return f"Started run `{run.id}`; press Refresh progress.", run.id

    def progress(run_id: str, request: gr.Request) -> str:
        try:
            owner_only(ctx, request)
        except WorkbenchError as err:
            return f"⚠️ {err}"
        if not run_id:
            return "No generation started in this page."
        run = JobManager.for_context(ctx).get(run_id)
        p = run.progress()
        if run.status == "failed":
            return f"⚠️ Run `{run.id}` failed:\n\n```\n{describe_failure(run)}\n```"
        done = f"{p.get('step', 0)}/{p.get('total', '?')} responses" if p else "starting"
        return f"Run `{run.id}`: **{run.status}** · {done} · {p.get('message', '') if p else ''}"

    gen_btn.click(generate, [gen_dataset, gen_session, gen_tokens, gen_prompts, model_a, system_a, temp_a, model_b, system_b, temp_b],
                  [gen_status, gen_run])
    gen_refresh.click(progress, gen_run, gen_status)
    return section


def analysis_outputs(labeling: LabelingStore, session: str, ties: str, model: str = "", models: Any = None) -> tuple[str, Any, Any, str]:
    """The statistics, the ratings figure, the per-annotator table and the annotators block of one
    session (with ideal points on ``model``'s features when one is picked)."""
    report = session_report(labeling, session, ties=ties)
    verdict = session_verdict(labeling, session, ties=ties)
    rows = [[fmt_num(v) for v in r.values()] for r in report["annotators"]]
    headers = list(report["annotators"][0]) if report["annotators"] else ["annotator"]
    return (report_markdown(report, verdict), ratings_figure(report), gr.update(value=rows, headers=headers),
            annotators_markdown(labeling, session, verdict["did_it_win"].get("candidate"), model=model, models=models))


def lm_sae_run_choices(ctx: Any) -> list[tuple[str, str]]:
    """Finished LM-SAE runs as (label, id), newest first: the runs ``explain_session`` can read."""
    runs = [r for r in JobManager(ctx.settings).runs(LM_SAE_TYPE) if r.manifest.status == "finished"]
    return [(f"{r.id} · {r.config.get('model') or '?'}, layer {r.config.get('layer') or 'middle'}", r.id) for r in runs]


def features_markdown(ctx: Any, session: str, run: str, top: int) -> str:
    """Which latents of LM-SAE run ``run`` the session's votes reward, as the CLI's three tables."""
    result = explain_session(ctx, session, run, top=top)
    overall = result["overall"]
    lines = [f"#### Which SAE latents the votes of **{md_escape(session)}** reward", "",
             f"{md_escape(result['method'])}", "", "AUC on held-out prompts:", ""]
    compare = comparison_rows(overall)
    lines += _md_table(list(compare[0]), [list(r.values()) for r in compare])
    latents = latent_rows(overall)
    lines += ["", "Top latents:", ""] + (_md_table(list(latents[0]), [[md_escape(v) for v in r.values()] for r in latents])
                                        if latents else ["No latent was selected: the latents do not predict these votes."])
    groups = group_rows(result)
    if groups:
        lines += ["", "Per taste group:", ""] + _md_table(list(groups[0]), [[md_escape(v) for v in r.values()] for r in groups])
    return "\n".join(lines)


def _features_section(ctx: Any, which: gr.Dropdown) -> tuple[gr.Accordion, gr.Dropdown]:
    """The statistics view's card for issue 25 §3: the analysis section's session, an LM-SAE run, the answer."""
    with gr.Accordion("Which SAE features the votes reward", open=False) as section:
        with gr.Row():
            run = gr.Dropdown(lm_sae_run_choices(ctx), label="LM-SAE run (make one with `workbench sae lm`)",
                              elem_id="wb-lab-sae-run")
            top = gr.Number(value=10, precision=0, minimum=1, label="Top latents")
            go = gr.Button("Explain the votes (minutes on a CPU)", elem_id="wb-lab-explain")
        answer = gr.Markdown(elem_id="wb-lab-features")

    def explain(session: str, run_id: str, n: float, request: gr.Request) -> str:
        try:
            owner_only(ctx, request)
            if not run_id:
                raise WorkbenchError("Pick an LM-SAE run first.", hint="Start one with `workbench sae lm --model … --dataset …`.")
            return features_markdown(ctx, session or "", run_id, int(n or 10))
        except WorkbenchError as err:
            return error_markdown(err)

    go.click(explain, [which, run, top], answer)
    return section, run


def _analysis_section(ctx: Any, which: gr.Dropdown) -> tuple[gr.Accordion, gr.Dropdown]:
    with gr.Accordion("Analysis, disagreements and export", open=False) as section:
        with gr.Row():
            which.render()
            ties = gr.Radio(["davidson", "half"], value="davidson", label="Tie treatment")
            ideal = gr.Dropdown([NO_MODEL, *model_choices(ctx)], value="", elem_id="wb-lab-ideal-model",
                                label="Ideal points: feature model (optional; minutes on a CPU)")
            refresh = gr.Button("Refresh statistics", elem_id="wb-lab-refresh")
        summary = gr.Markdown()
        plot = gr.Plot(label="Ratings and win rates")
        per_annotator = gr.Dataframe(label="Per annotator", interactive=False)
        tastes = gr.Markdown(elem_id="wb-lab-annotators")
        with gr.Row():
            score_btn = gr.Button("Find pairs where the model and humans disagree")
        disagreements = gr.Dataframe(label="Model–human disagreements", interactive=False, headers=DISAGREEMENT_HEADERS)
        with gr.Row():
            fmt = gr.Dropdown(list(SESSION_EXPORT_FORMATS), value="trl-jsonl", label="Export format", elem_id="wb-lab-export-format")
            aggregate = gr.Radio(["judgment", "majority"], value="judgment", label="DPO rows per")
            export_btn = gr.Button("Export", elem_id="wb-lab-export")
        export_msg = gr.Markdown(elem_id="wb-lab-export-msg")
        export_file = gr.File(label="Download", interactive=False)
        with gr.Row():
            alpaca_path = gr.Textbox(label="AlpacaEval annotations file (inside a data folder)")
            alpaca_session = gr.Textbox(label="New session name")
            alpaca_btn = gr.Button("Import as judgments")
        alpaca_msg = gr.Markdown()

    def analyse(session: str, ties: str, model: str, request: gr.Request) -> tuple[str, Any, Any, str]:
        try:
            owner_only(ctx, request)
            return analysis_outputs(ctx.labeling, session or "", ties, model or "", ctx.model_service if model else None)
        except WorkbenchError as err:
            return f"⚠️ {err}", None, None, ""

    def disagree(session: str, request: gr.Request) -> Any:
        lab = ctx.labeling
        try:
            owner_only(ctx, request)
            info = lab.session(session or "")
            if not (info.settings.policy_model and info.settings.reference_model) and not info.settings.reward_model:
                raise WorkbenchError(f"Session '{info.name}' names no policy/reference or reward model.",
                                     hint="Create a session with a policy and reference model (or a reward model).")
            scores = model_scores(ctx, lab.pairs(info.name), info.settings)
            rows = disagreement_queue(lab.judgments(info.name), scores)
        except WorkbenchError as err:
            return gr.update(value=[[str(err)]], headers=["error"])
        return gr.update(value=[[r["pair_id"], r["humans"], r["model"], f"{r['model_pref']:+.3f}"] for r in rows],
                         headers=DISAGREEMENT_HEADERS)

    def export(session: str, fmt: str, aggregate: str, request: gr.Request) -> tuple[str, Any]:
        folder = ctx.settings.home / "exports"
        path = folder / f"{session}-{fmt}{SESSION_EXPORT_FORMATS.get(fmt, '')}"
        try:
            owner_only(ctx, request)
            report = export_session_as(ctx.labeling, session or "", path, fmt, aggregate=aggregate)
            if "rows" in report:
                return f"✓ Wrote {report['rows']} rows (one per vote) to `{path}`.", str(path)
        except WorkbenchError as err:
            return f"⚠️ {err}", None
        skipped = ", ".join(f"{n} {k}" for k, n in report["skipped"].items()) or "none"
        return f"✓ Wrote {report['written']} DPO rows to `{path}`; left out: {skipped}.", None if path.is_dir() else str(path)

    def import_alpaca(path: str, session: str, request: gr.Request) -> str:
        try:
            owner_only(ctx, request)
            counts = import_alpacaeval(ctx.labeling, ctx.check_data_path(path), session.strip())
        except FileDataError as err:  # it names the resolved path; the user typed ``path``
            return error_markdown(err.shown_as(path))
        except WorkbenchError as err:
            return error_markdown(err)
        return (f"✓ Session **{session}**: {counts['pairs']} pairs, {counts['votes']} votes by {', '.join(counts['annotators'])} "
                f"({counts['unlabeled']} without a preference, {counts['repeated']} repeated votes ignored).")

    refresh.click(analyse, [which, ties, ideal], [summary, plot, per_annotator, tastes])
    score_btn.click(disagree, which, disagreements)
    export_btn.click(export, [which, fmt, aggregate], [export_msg, export_file])
    alpaca_btn.click(import_alpaca, [alpaca_path, alpaca_session], alpaca_msg)
    return section, ideal
