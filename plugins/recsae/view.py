"""The Panel view "RecSAE · concept dictionary": open a finished RecSAE run, rank its SAE
latents by concept confidence, and inspect one latent in a feature card (top-activating
sequences, attribute enrichment, activation histogram, ablate/boost intervention).

Computation lives in ``workbench.sae``; ``plugins.recsae.actions`` finds and tabulates
results. Every action is a plain method (notebooks and tests call them directly); the
event handlers run them off the event loop and show any failure as an alert in the page.

For an LM-SAE run (an SAE on a language model's response tokens) a second model selector
lists the latents whose activation on a dataset's or session's responses moved most between
the run's model and the chosen one (``workbench.sae.lm.latent_shift``), and a card says which
latents a labeling session's votes reward (``workbench.preference.vote_features``).
"""
from __future__ import annotations

from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter, ScientificFormatter

from plugins.recsae import actions
from workbench.app.ui import dataset_choices, model_choices, run_guarded, show_alert
from workbench.compare.pairs import diff_pairs
from workbench.context import AppContext
from workbench.errors import ConfigError
from workbench.preference.vote_features import comparison_rows, explain_session, group_rows, latent_rows
from workbench.sae.interventions import MODES, InterventionResult
from workbench.sae.lm import LatentShift, latent_shift
from workbench.sae.sasrec import below_popularity_warning

TITLE = "RecSAE · concept dictionary"
FLOAT3 = NumberFormatter(format="0.000")
FORMATTERS = {"f1": FLOAT3, "precision": FLOAT3, "recall": FLOAT3, "enrichment": NumberFormatter(format="0.00"),
              "p_value": ScientificFormatter(precision=2), "frequency": NumberFormatter(format="0.0%"),
              "threshold": NumberFormatter(format="0.00"), "max_activation": FLOAT3}
SHIFT_COLUMNS = {"latent": "latent", "mean_abs_shift": "mean |B − A| per response", "shift": "mean shift (B − A)",
                 "share_up": "rose on", "mean_a": "mean activation A", "mean_b": "mean activation B", "fires_a": "fires on (A)",
                 "fires_b": "fires on (B)", "auroc": "chosen vs rejected AUROC (run)"}
SHIFT_FORMATTERS = {SHIFT_COLUMNS[c]: NumberFormatter(format="0.0%") for c in ("share_up", "fires_a", "fires_b")} | {
    SHIFT_COLUMNS[c]: NumberFormatter(format="0.0000") for c in ("mean_abs_shift", "shift", "mean_a", "mean_b")} | {
    SHIFT_COLUMNS["auroc"]: FLOAT3}
DATASET, SESSION = "dataset: ", "session: "


class RecSAEView:
    """State and widgets of one browser session (or one notebook cell)."""

    def __init__(self, ctx: AppContext, run: str | None = None) -> None:
        self.ctx = ctx
        self.result: Any = None
        self.latent: int | None = None
        self.last_intervention: InterventionResult | None = None
        self.numbers: dict[str, Any] = {}
        self.run_select = pn.widgets.Select(label="RecSAE run", options={}, sizing_mode="stretch_width")
        self.refresh_button = pn.widgets.Button(label="↻ Refresh list", width=110, align="end")
        self.open_button = pn.widgets.Button(label="Open run", color="primary", width=110, align="end")
        self.folder = pn.widgets.TextInput(label="…or a RecSAE folder (under the runs folder or a data folder)",
                                           placeholder="/path/to/runs/recsae-…/recsae", sizing_mode="stretch_width")
        self.folder_button = pn.widgets.Button(label="Open folder", width=110, align="end")
        self.status = pn.pane.Alert("", alert_type="light", visible=False, sizing_mode="stretch_width")
        self.summary = pn.pane.Markdown("Open a finished RecSAE run to see its concept dictionary.", sizing_mode="stretch_width")
        self.weak = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.only_concepts = pn.widgets.Checkbox(label="Only latents with an enriched concept", value=False)
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=actions.TABLE_COLUMNS), selectable=1, disabled=True, show_index=False,
                                          pagination="local", page_size=15, sizing_mode="stretch_width", formatters=FORMATTERS,
                                          sorters=[{"field": "f1", "dir": "desc"}])
        # The feature card.
        self.card_title = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.card_stats = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.sequences = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, pagination="local", page_size=10,
                                              sizing_mode="stretch_width", layout="fit_data_stretch")
        self.attributes_plot = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width")
        self.histogram_plot = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width")
        self.mode = pn.widgets.Select(label="Intervention", options=list(MODES), value="boost", width=120)
        self.strength = pn.widgets.FloatSlider(label="Boost strength (× largest activation)", start=0.0, end=10.0, step=0.25, value=2.0, width=260)
        self.concept = pn.widgets.Select(label="Measure the share of", options=[], width=180)
        self.intervene_button = pn.widgets.Button(label="Run intervention", color="primary", align="end")
        self.intervention_plot = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width")
        self.intervention_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.card = pn.Card(
            self.card_title, self.card_stats,
            pn.Tabs(("Top sequences", self.sequences), ("Attributes", self.attributes_plot), ("Activations", self.histogram_plot),
                    ("Intervention", pn.Column(pn.Row(self.mode, self.strength, self.concept, self.intervene_button),
                                               self.intervention_note, self.intervention_plot)),
                    dynamic=False),
            title="Feature card", collapsible=False, visible=False, sizing_mode="stretch_width",
        )
        # LM-SAE: latents that moved between the run's model and a second one.
        self.shift: LatentShift | None = None
        self.lm_run = pn.widgets.Select(label="LM-SAE run", options={}, sizing_mode="stretch_width")
        self.lm_compare = pn.widgets.Select(label="Compare with", options=model_choices(ctx, ["causal_lm"]))
        self.lm_source = pn.widgets.Select(label="Responses of", options=[])
        self.lm_limit = pn.widgets.IntInput(label="Max pairs", value=64, start=1, width=110)
        self.lm_top = pn.widgets.IntInput(label="Latents listed", value=20, start=1, width=110)
        self.lm_button = pn.widgets.Button(label="Find latents that moved", color="primary", align="end")
        self.lm_note = pn.pane.Markdown("Pick a finished LM-SAE run and a second checkpoint of its model (e.g. its fine-tune).",
                                        sizing_mode="stretch_width")
        self.lm_table = pn.widgets.Tabulator(pd.DataFrame(columns=list(SHIFT_COLUMNS.values())), disabled=True, show_index=False,
                                             pagination="local", page_size=20, sizing_mode="stretch_width", formatters=SHIFT_FORMATTERS)
        # LM-SAE: which latents a labeling session's votes reward.
        self.votes_result: dict[str, Any] | None = None
        self.votes_run = pn.widgets.Select(label="LM-SAE run", options={}, sizing_mode="stretch_width")
        self.votes_session = pn.widgets.Select(label="Labeling session", options=[])
        self.votes_top = pn.widgets.IntInput(label="Latents listed", value=10, start=1, width=110)
        self.votes_button = pn.widgets.Button(label="Which latents do the votes reward?", color="primary", align="end")
        self.votes_note = pn.pane.Markdown("Pick a finished LM-SAE run and a labeling session with votes (at least 20, on 10 prompts).",
                                           sizing_mode="stretch_width")
        self.votes_compare = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, sizing_mode="stretch_width")
        self.votes_table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, pagination="local", page_size=10,
                                                sizing_mode="stretch_width", layout="fit_data_stretch")
        self.votes_groups = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, sizing_mode="stretch_width")
        self.votes_button.on_click(self._on_explain)
        self.lm_button.on_click(self._on_shift)
        self.refresh_button.on_click(lambda _e: self.refresh_runs())
        self.open_button.on_click(self._on_open_run)
        self.folder_button.on_click(self._on_open_folder)
        self.intervene_button.on_click(self._on_intervene)
        self.table.param.watch(self._on_select, "selection")
        self.only_concepts.param.watch(lambda _e: self.show_table(), "value")
        self.mode.param.watch(lambda e: setattr(self.strength, "disabled", e.new == "ablate"), "value")
        self.refresh_runs()
        if run is not None:
            self.open(run)

    # -- actions (plain methods, so notebooks and tests call them directly) -------------
    def _show_error(self, exc: Exception) -> None:
        show_alert(self.status, exc)

    def refresh_runs(self) -> dict[str, str]:
        """List the RecSAE runs (newest first, any status: picking an unfinished one says so)."""
        options = {actions.run_label(r): r.id for r in actions.recsae_runs(self.ctx.settings)}
        self.run_select.options = options
        if options and self.run_select.value not in options.values():
            self.run_select.value = next(iter(options.values()))
        lm_options = {actions.run_label(r): r.id for r in actions.lm_sae_runs(self.ctx.settings)}
        self.lm_run.options = lm_options
        if lm_options and self.lm_run.value not in lm_options.values():
            self.lm_run.value = next(iter(lm_options.values()))
        self.votes_run.options = lm_options
        if lm_options and self.votes_run.value not in lm_options.values():
            self.votes_run.value = next(iter(lm_options.values()))
        sessions = [s.name for s in self.ctx.labeling.list_sessions()]
        self.votes_session.options = sessions
        if sessions and self.votes_session.value not in sessions:
            self.votes_session.value = sessions[0]
        sources = [DATASET + d for d in dataset_choices(self.ctx)] + [SESSION + s for s in sessions]
        self.lm_source.options = sources
        if sources and self.lm_source.value not in sources:
            self.lm_source.value = sources[0]
        return options

    def moved_latents(self) -> pd.DataFrame:
        """The LM-SAE latents whose per-response activation moved most from the run's model to the chosen one."""
        if not self.lm_run.value:
            raise ConfigError("There is no LM-SAE run to compare with.",
                              hint="Start one on the Runs tab (type lm-sae), or with `workbench sae lm --model … --dataset …`.")
        if not self.lm_source.value:
            raise ConfigError("There is no dataset or session to read responses from.", hint="Import pairs on the Models & data tab.")
        folder, config = actions.lm_sae_folder(self.ctx.settings, self.lm_run.value)
        source = self.lm_source.value
        dataset = source.removeprefix(DATASET) if source.startswith(DATASET) else None
        session = source.removeprefix(SESSION) if source.startswith(SESSION) else None
        pairs = diff_pairs(self.ctx, dataset, session, max(2, int(self.lm_limit.value)))
        lm_a, lm_b = self.ctx.get_model(config["model"]), self.ctx.get_model(self.lm_compare.value)
        self.shift = shift = latent_shift(folder, lm_a, lm_b, pairs, cache=self.ctx.activation_cache)
        top = shift.top(int(self.lm_top.value))
        self.lm_table.value = top[list(SHIFT_COLUMNS)].rename(columns=SHIFT_COLUMNS)
        self.lm_note.object = (
            f"Layer **{shift.layer}** SAE of run {self.lm_run.value}: A = **{shift.model_a}** (the run's model), "
            f"B = **{shift.model_b}**, over the {shift.n_responses} responses of {len(pairs)} pairs ({source}). "
            f"The {len(top)} latents listed moved most: mean |B − A| of each response's mean activation. "
            "*rose on* is the share of responses where B activates the latent more than A.")
        return top

    def explain_votes(self) -> dict[str, Any]:
        """Which latents of the chosen LM-SAE run the chosen session's votes reward, and what they add over the factors."""
        if not self.votes_run.value:
            raise ConfigError("There is no LM-SAE run to read the answers with.",
                              hint="Start one on the Runs tab (type lm-sae), or with `workbench sae lm --model … --dataset …`.")
        if not self.votes_session.value:
            raise ConfigError("There is no labeling session to explain.", hint="Create one on the Labeling tab and vote first.")
        self.votes_result = r = explain_session(self.ctx, self.votes_session.value, self.votes_run.value, top=int(self.votes_top.value))
        overall = r["overall"]
        self.votes_compare.value = pd.DataFrame(comparison_rows(overall))
        self.votes_table.value = pd.DataFrame(latent_rows(overall))
        self.votes_groups.value = pd.DataFrame(group_rows(r))
        self.votes_note.object = (
            f"Session **{r['session']}** read through **{r['model']}** at layer {r['layer']} (run {r['run']}, {r['d_sae']} latents): "
            f"{overall['n_votes']} votes on {overall['n_prompts']} prompts, {r['ties_dropped']} ties dropped. "
            f"{overall['latents_selected']} latents selected by the L1 fit; *coef* is log-odds per RMS of the chosen − rejected "
            f"difference, *folds* how many held-out folds chose it. AUCs are on held-out prompts, {r['level']:.0%} bootstrap intervals."
            + ("" if overall["latents"] else " **No latent predicts these votes.**"))
        return r

    def open(self, ref: str, *, confined: bool = False) -> Any:
        """Load a result by run id or folder; ``confined`` applies the browser's folder rule."""
        result = actions.load_result(self.ctx.settings, ref, confined=confined)
        _ = result.latents  # encode every state once, here (off the event loop in the handlers)
        self.result, self.latent, self.last_intervention = result, None, None
        self.status.visible = False
        self.show_summary()
        self.show_table()
        self.card.visible = False
        self.concept.options = list(result.data.attributes)
        self.strength.value = float(result.config.boost_strength)
        return result

    def open_selected_run(self) -> Any:
        if not self.run_select.value:
            raise ConfigError("There is no RecSAE run to open.", hint="Start one with `workbench sae recsae --interactions … --attributes …`.")
        return self.open(self.run_select.value)

    def open_folder(self) -> Any:
        return self.open(self.folder.value, confined=True)

    def show_summary(self) -> None:
        r = self.result
        self.numbers = actions.summary_numbers(r)
        s = r.summary
        # Read from the metrics (not a stored flag), so runs made before the warning existed are flagged too.
        warning = below_popularity_warning(s)
        self.weak.object, self.weak.visible = f"**Weak recommender.** {warning}" if warning else "", bool(warning)
        self.summary.object = (
            f"**{r.folder}**\n\n"
            + " · ".join(f"{label} **{actions.format_value(label, value)}**" for label, value in self.numbers.items())
            + f"\n\n{s.get('users', '?')} users · {s.get('items', '?')} items · {s.get('sequences', '?')} sequences probed · "
              f"{len(r.dictionary.latents)} latents, {s.get('n_with_concept', '?')} with an enriched concept "
              f"(chance F1 {r.dictionary.chance_f1:.2f}). Confidence = held-out F1 of predicting the latent from its concept."
        )

    def show_table(self) -> pd.DataFrame | None:
        if self.result is None:
            return None
        table = actions.latent_table(self.result, only_concepts=self.only_concepts.value)
        self.table.selection = []
        self.table.value = table
        return table

    def show_latent(self, latent: int) -> None:
        """Fill the feature card for one latent."""
        r = self.result
        if r is None:
            raise ConfigError("No RecSAE run is open.", hint="Open a run first.")
        c = r.dictionary.get(int(latent))
        self.latent = c.latent
        concept = c.concept or "no enriched concept"
        self.card.title = f"Latent {c.latent} · {concept}"
        self.card_title.object = f"### Latent {c.latent} · {concept}"
        counts, edges, fires = r.histogram(c.latent)
        stats = (f"F1 **{c.f1:.3f}** (precision {c.precision:.3f}, recall {c.recall:.3f}; chance {c.chance_f1:.3f}) · "
                 f"enrichment **{c.enrichment:.2f}×** (p = {c.p_value:.2g}, Mann–Whitney, Bonferroni) · "
                 f"fires on **{fires:.1%}** of sequences · largest activation {c.max_activation:.3f}")
        if c.concept and c.threshold == c.threshold:
            stats += f" · predicted to fire when ≥ {c.threshold:.0%} of the recent items are {c.concept}"
        self.card_stats.object = stats
        self.sequences.value = actions.top_sequences(r, c.latent)
        scores = pd.DataFrame(sorted(c.attribute_scores.items(), key=lambda kv: -kv[1]), columns=["attribute", "enrichment"])
        self.attributes_plot.object = hv.Bars(scores, "attribute", "enrichment").opts(
            title=f"Attribute enrichment in the top {len(c.top_sequences)} sequences (1 = as common as overall)",
            xrotation=30, height=320, responsive=True, tools=["hover"], color="#4c78a8") * hv.HLine(1.0).opts(color="grey", line_dash="dashed")
        self.histogram_plot.object = hv.Histogram((edges, counts), kdims=["activation"], vdims=["sequences"]).opts(
            title=f"Non-zero activations (fires on {fires:.1%} of {len(r.states)} sequences)", height=320, responsive=True,
            tools=["hover"], color="#72b7b2")
        self.concept.value = c.concept or (self.concept.value if self.concept.value in r.data.attributes else r.data.attributes[0])
        self.intervention_plot.object = None
        self.last_intervention = None
        stored = [i for i in r.interventions if i.get("latent") == c.latent]
        self.intervention_note.object = ("Computed when the run finished: " + "; ".join(
            f"{i['mode']} → {i['concept']} share {i['share_before']:.1%} → {i['share_after']:.1%}" for i in stored)
            if stored else "Choose a mode and run the intervention: every user's state is edited and re-ranked.")
        self.card.visible = True

    def select_latent(self, latent: int) -> None:
        """Select the latent's row in the table (which fills the card)."""
        rows = self.table.value.index[self.table.value["latent"] == int(latent)].tolist()
        if not rows:
            raise ConfigError(f"Latent {latent} is not in the table.", hint="Untick 'Only latents with an enriched concept'.")
        self.table.selection = rows[:1]

    def intervene(self) -> InterventionResult:
        """Ablate or boost the card's latent and show the share of concept items in the top-N before vs after."""
        r = self.result
        if r is None or self.latent is None:
            raise ConfigError("No latent is selected.", hint="Click a row of the latent table first.")
        out = r.intervene(self.latent, self.mode.value, float(self.strength.value), self.concept.value)
        self.last_intervention = out
        bars = pd.DataFrame({"ranking": ["before", "after", "catalog"], "share": [out.share_before, out.share_after, out.catalog_share]})
        self.intervention_plot.object = hv.Bars(bars, "ranking", "share").opts(
            title=f"Share of {out.concept} items in the top-{out.top_n}", ylim=(0, 1), height=300, responsive=True,
            tools=["hover"], color=hv.dim("ranking").categorize({"before": "#9e9e9e", "after": "#e45756", "catalog": "#d0d0d0"}))
        edit = "set to 0" if out.mode == "ablate" else f"set to {out.value:.3f} ({self.strength.value:g} × its largest activation)"
        self.intervention_note.object = (
            f"**{out.mode}** latent {out.latent} ({edit}) for all {out.n_users} users: share of **{out.concept}** items in the "
            f"top-{out.top_n} **{out.share_before:.1%} → {out.share_after:.1%}** (shift {out.shift:+.1%}; "
            f"catalog share {out.catalog_share:.1%}); top-{out.top_n} changed for {out.users_changed:.1%} of users."
            + (" Ablation changes only users whose current state fires the latent." if out.mode == "ablate"
               and out.users_changed == 0 else ""))
        return out

    # -- event handlers ------------------------------------------------------------------
    async def _on_open_run(self, _event: object) -> None:
        await run_guarded(self.open_button, self.status, self.open_selected_run)

    async def _on_open_folder(self, _event: object) -> None:
        await run_guarded(self.folder_button, self.status, self.open_folder)

    async def _on_shift(self, _event: object) -> None:
        await run_guarded(self.lm_button, self.status, self.moved_latents)

    async def _on_explain(self, _event: object) -> None:
        await run_guarded(self.votes_button, self.status, self.explain_votes)

    async def _on_intervene(self, _event: object) -> None:
        await run_guarded(self.intervene_button, self.status, self.intervene)

    def _on_select(self, event: Any) -> None:
        if not event.new or self.result is None:
            return
        try:
            self.show_latent(int(self.table.value.iloc[event.new[0]]["latent"]))
        except Exception as exc:  # noqa: BLE001
            self._show_error(exc)

    # -- layout --------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            f"# {TITLE}",
            pn.pane.Markdown("A sparse autoencoder on a sequential recommender's user state: each latent is described by the item "
                             "attributes enriched among its top-activating sequences, and ranked by how well that concept predicts "
                             "the latent on held-out users. Start runs with `workbench sae recsae`."),
            pn.Row(self.run_select, self.refresh_button, self.open_button, sizing_mode="stretch_width"),
            pn.Row(self.folder, self.folder_button, sizing_mode="stretch_width"),
            self.status, self.weak, self.summary, self.only_concepts, self.table, self.card,
            pn.Card(pn.pane.Markdown("An SAE on a language model's response tokens: which latents does a second checkpoint "
                                     "(a fine-tune of the run's model) activate differently on the same responses?"),
                    pn.Row(self.lm_run, self.lm_compare, sizing_mode="stretch_width"),
                    pn.Row(self.lm_source, self.lm_limit, self.lm_top, self.lm_button), self.lm_note, self.lm_table,
                    title="LM-SAE · latents that moved between two models", collapsible=False, sizing_mode="stretch_width"),
            pn.Card(pn.pane.Markdown("Which of the run's latents do a session's votes reward? Sparse logistic regression of each vote "
                                     "on the chosen − rejected latent activation, tested on held-out prompts, against the "
                                     "interpretable factors (length, lists, markdown, hedging, refusals, poles)."),
                    pn.Row(self.votes_run, self.votes_session, self.votes_top, self.votes_button, sizing_mode="stretch_width"),
                    self.votes_note, self.votes_compare, self.votes_table, pn.pane.Markdown("**Per taste group**"), self.votes_groups,
                    title="LM-SAE · which latents the votes reward", collapsible=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


def build_view(ctx: AppContext, run: str | None = None) -> pn.viewable.Viewable:
    return RecSAEView(ctx, run).panel()
