"""The Panel view: a prompt → layer × position heatmap of lens tokens, and the experiment runner.

Computation lives in ``workbench.lenses``; this module only gathers inputs, runs it off the
event loop (so the progress bar moves), and shows or exports the results.
"""
from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend, as hv.extension would)
import pandas as pd
import panel as pn

from plugins.logit_lens.compare import PromptLensKL, prompt_lens_kl
from plugins.logit_lens.figures import figure_bytes, latent_figure
from workbench.app.ui import error_text, model_choices, show_alert
from workbench.context import AppContext
from workbench.errors import ConfigError, ModelError
from workbench.lenses import (
    KINDS,
    LatentResult,
    LensGrid,
    WordTable,
    lens_grid,
    make_task,
    packaged_words,
    read_word_table,
    run_latent,
)

PACKAGED = "packaged list (en, fr, de, ru, zh)"
NONE = "—"
DEFAULT_PROMPT = 'Français: "fleur" - English: "flower"\nFrançais: "montagne" - English: "mountain"\nFrançais: "nuage" - English: "'
COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]


def shown(token: str) -> str:
    """A token as text, its whitespace made visible (· for a space, ⏎ for a newline), never a Python repr."""
    return token.replace(" ", "·").replace("\n", "⏎").replace("\t", "⇥").replace("\xa0", "⍽") or "∅"


def grid_heatmap(grid: LensGrid, model: str = "") -> hv.Overlay:
    """Layer × position heatmap coloured by the top-1 probability; hover lists the top-k."""
    n_points, n_pos, k = grid.top_probs.shape
    xs = [f"{i}:{shown(tok)}" for i, tok in enumerate(grid.input_tokens)]
    rows = [
        (xs[p], layer, float(grid.top_probs[layer, p, 0]), grid.top_tokens[layer][p][0],
         " | ".join(f"{shown(t)} {q:.2f}" for t, q in zip(grid.top_tokens[layer][p], grid.top_probs[layer, p], strict=True)),
         float(grid.entropy[layer, p]))
        for layer in range(n_points) for p in range(n_pos)
    ]
    # object columns: HoloViews grids HeatMap values by reshaping, which pandas' Arrow strings refuse
    frame = pd.DataFrame(rows, columns=["position", "layer", "p_top1", "top1", "top_k", "entropy_bits"]).astype(
        {"position": object, "top1": object, "top_k": object})
    heat = hv.HeatMap(frame, kdims=["position", "layer"], vdims=["p_top1", "top1", "top_k", "entropy_bits"]).opts(
        cmap="Blues", clim=(0, 1), colorbar=True, tools=["hover"], xrotation=60, width=max(500, 60 * n_pos), height=24 * n_points + 140,
        title=f"Logit lens{' · ' + model if model else ''}: top-1 token per layer (hover for top-k)", invert_yaxis=False,
        xlabel="input position: token", ylabel="layer (0 = embeddings)",
    )
    labels = hv.Labels(frame.assign(text=frame["top1"].map(lambda t: shown(t)[:6])), kdims=["position", "layer"], vdims=["text"])
    return heat * labels.opts(text_font_size="7pt", text_color="black")


def kl_plot(result: PromptLensKL) -> hv.Overlay:
    """Mean KL(A ‖ B) per layer over the prompt's positions, with the largest position's KL."""
    frame = result.per_layer()
    mean = hv.Curve(frame, "layer", "mean_kl", label="mean over positions").opts(color=COLORS[0], tools=["hover"])
    worst = hv.Curve(frame, "layer", "max_kl", label="largest position").opts(color=COLORS[1], line_dash="dashed", tools=["hover"])
    dots = hv.Scatter(frame, "layer", "mean_kl").opts(color=COLORS[0], size=6)
    return (mean * worst * dots).opts(
        title=f"KL({result.model_a} ‖ {result.model_b}) of the lens distributions per layer", xlabel="layer (0 = embeddings)",
        ylabel="KL (nats)", width=700, height=300, legend_position="top_left")


def latent_plot(results: list[LatentResult]) -> hv.Layout:
    """P(language) curves with bands per checkpoint (hover: median, share beating the control, examples
    carrying it; a red ring on a quoted result carried by ≤ 10% of the examples), the share of
    examples beating their control, and an entropy curve per checkpoint."""
    curves, shares, entropy = [], [], []
    languages = list(dict.fromkeys(lang for r in results for lang in r.languages))
    for m, result in enumerate(results):
        c = result.curves()
        dash = ["solid", "dashed", "dotted", "dashdot"][m % 4]
        for lang in result.languages:
            color = COLORS[languages.index(lang) % len(COLORS)]
            label = f"P({lang}) {result.role(lang)} · {result.model_name}"
            curves.append(hv.Spread((c["layer"], c[f"p_{lang}"], c[f"p_{lang}"] - c[f"p_{lang}_lo"], c[f"p_{lang}_hi"] - c[f"p_{lang}"]),
                                    kdims="layer", vdims=["p", "lo", "hi"]).opts(color=color, alpha=0.15))
            extra = [f"p_{lang}_median"] + ([f"p_{lang}_beats_control", f"p_{lang}_carried_by"] if result.has_control else [])
            frame = c[["layer", f"p_{lang}", *extra]].rename(columns={f"p_{lang}": "probability"})
            curves.append(hv.Curve(frame, "layer", ["probability", *extra], label=label).opts(color=color, line_dash=dash, tools=["hover"]))
            if result.has_control:  # the same mass on the other concepts' sets: the level P(lang) must beat
                curves.append(hv.Curve((c["layer"], c[f"p_{lang}_control"]), "layer", "probability", label=f"control {label}").opts(
                    color=color, line_dash="dotted", line_width=1, alpha=0.8, tools=["hover"]))
                shares.append(hv.Curve((c["layer"], c[f"p_{lang}_beats_control"]), "layer", "share beating control", label=label).opts(
                    color=color, line_dash=dash))
        few = result.few_carriers()
        if few:
            curves.append(hv.Points([(f.layer, f.mean, f"{f.k} of {f.n}") for f in few], ["layer", "probability"], ["carried by"],
                                    label="carried by ≤ 10% of the examples").opts(
                marker="circle", size=16, fill_alpha=0, line_color="#dc2626", line_width=2, tools=["hover"]))
        entropy.append(hv.Curve((c["layer"], c["entropy_bits"]), "layer", "entropy (bits)", label=result.model_name).opts(line_dash=dash, color="#444"))
    top = hv.Overlay(curves).opts(title=results[0].task.title, width=700, height=340, ylim=(0, 1), legend_position="top_left")
    panels = [top]
    if shares:
        panels.append(hv.Overlay(shares).opts(width=700, height=150, ylim=(0, 1.05), show_legend=False))
    panels.append(hv.Overlay(entropy).opts(width=700, height=150, show_legend=False))
    return hv.Layout(panels).cols(1)


class LogitLensView:
    """State and widgets of one browser session (or one notebook cell)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.grid: LensGrid | None = None
        self.grid_b: LensGrid | None = None
        self.kl: PromptLensKL | None = None
        self.results: list[LatentResult] = []
        choices = model_choices(ctx, ["causal_lm"])
        self.model = pn.widgets.Select(label="Model", options=choices, value=ctx.active_model_name or choices[0])
        self.compare = pn.widgets.Select(label="Compare with (optional)", options=[NONE, *choices], value=NONE)
        self.status = pn.pane.Alert("", alert_type="light", visible=False, sizing_mode="stretch_width")
        # heatmap
        self.prompt = pn.widgets.TextAreaInput(label="Prompt", value=DEFAULT_PROMPT, height=110, sizing_mode="stretch_width")
        self.top_k = pn.widgets.IntSlider(label="Top-k in hover", start=1, end=10, value=5)
        self.run_grid_button = pn.widgets.Button(label="Run lens", color="primary")
        self.heatmap = pn.pane.HoloViews(None, backend="bokeh")
        self.heatmap_b = pn.pane.HoloViews(None, backend="bokeh", visible=False)
        self.kl_note = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.kl_plot = pn.pane.HoloViews(None, backend="bokeh", visible=False)
        self.kl_table = pn.pane.DataFrame(None, index=False, visible=False)
        self.grid_csv = pn.widgets.FileDownload(callback=self._grid_csv, filename="logit_lens_grid.csv", label="Download CSV", disabled=True)
        self.run_grid_button.on_click(self._on_grid)
        # experiment
        self.wordlist = pn.widgets.TextInput(label="Word list (CSV, or a folder of <lang>/word_translation.csv or <lang>/clean.csv; "
                                                   "empty = packaged)", placeholder=PACKAGED)
        self.kind = pn.widgets.Select(label="Task", options=list(KINDS), value="translation")
        self.source = pn.widgets.TextInput(label="Source language", value="fr", width=120)
        self.target = pn.widgets.TextInput(label="Target language", value="zh", width=120)
        self.latent = pn.widgets.TextInput(label="Latent languages (comma-separated)", value="en", width=220)
        self.shots = pn.widgets.IntInput(label="Shots", value=4, start=0, end=16, width=100)
        self.limit = pn.widgets.IntInput(label="Max examples", value=40, start=1, end=5000, width=120)
        self.run_button = pn.widgets.Button(label="Run experiment", color="primary")
        self.progress = pn.indicators.Progress(label="Progress", value=0, max=100, sizing_mode="stretch_width", bar_color="primary")
        self.plot = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width")
        self.summary = pn.pane.DataFrame(None, index=False, sizing_mode="stretch_width")
        self.caveats = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.control_note = pn.pane.Markdown(
            "Dotted lines and the *control* columns: the same probability on the **other** concepts' token sets. "
            "P(language) says the model predicts *that* word only where it stands above its control. The middle panel is "
            "the share of examples beating their control; hover a curve for its median. A red ring marks a result carried by "
            "≤ 10% of the examples (also in the summary's *carried_by_few*). In translation the source word is watched "
            "too: P(source) is the mass on copying it, and examples whose source tokens are target or latent tokens are "
            "dropped (*n_source_overlap*).", visible=False)
        self.downloads = [
            pn.widgets.FileDownload(callback=self._results_csv, filename="latent_language.csv", label="Data (CSV)", disabled=True),
            pn.widgets.FileDownload(callback=lambda: io.BytesIO(self.figure("png")), filename="latent_language.png", label="Figure (PNG)", disabled=True),
            pn.widgets.FileDownload(callback=lambda: io.BytesIO(self.figure("svg")), filename="latent_language.svg", label="Figure (SVG)", disabled=True),
        ]
        self.run_button.on_click(self._on_run)

    # -- actions (plain methods, so notebooks and tests call them directly) -------------
    def _show_error(self, exc: Exception) -> None:
        show_alert(self.status, exc)

    def _second_model(self) -> str | None:
        return self.compare.value if self.compare.value not in (NONE, self.model.value) else None

    def run_grid(self) -> LensGrid:
        """The lens heatmap of the model; with a second model, its heatmap beside it and their per-layer KL.

        Two models whose tokens do not line up still get both heatmaps; the KL is refused with
        the model diff's message, which says which views still work across them.
        """
        lm = self.ctx.get_model(self.model.value)
        self.grid = lens_grid(lm, self.prompt.value, top_k=self.top_k.value)
        self.heatmap.object = grid_heatmap(self.grid, lm.name)
        self.grid_b, self.kl, self.kl_note.visible = None, None, False
        other = self._second_model()
        if other is not None:
            lm_b = self.ctx.get_model(other)
            self.grid_b = lens_grid(lm_b, self.prompt.value, top_k=self.top_k.value)
            self.heatmap_b.object = grid_heatmap(self.grid_b, lm_b.name)
            try:
                self.kl = prompt_lens_kl(lm, lm_b, self.prompt.value)
            except ModelError as exc:
                self.kl_note.object, self.kl_note.visible = "**Per-layer KL not computed.** " + error_text(exc), True
            else:
                self.kl_plot.object = kl_plot(self.kl)
                self.kl_table.object = self.kl.per_layer().round(4).rename(columns={
                    "mean_kl": "mean KL (nats)", "max_kl": "largest KL (nats)", "worst_position": "at position"})
                if self.kl.notes:
                    self.kl_note.object, self.kl_note.visible = " ".join(self.kl.notes), True
        self.heatmap_b.visible = self.grid_b is not None
        self.kl_plot.visible = self.kl_table.visible = self.kl is not None
        self.grid_csv.disabled = False
        return self.grid

    def _word_table(self, languages: tuple[str, ...]) -> WordTable:
        """The chosen list, restricted to the languages in play (a folder then keeps more concepts)."""
        raw = self.wordlist.value.strip()
        if not raw:
            return packaged_words()
        path = self.ctx.check_data_path(raw)
        try:
            return read_word_table(path, languages)
        except ConfigError:  # a plain word,translation list holds just source and target
            return read_word_table(path, languages[:2])

    def run_experiment(self, progress: Any = None) -> list[LatentResult]:
        """Run the chosen task on the model (and the comparison model), updating the progress bar."""
        latent = tuple(s.strip() for s in self.latent.value.split(",") if s.strip())
        kind, source, target = self.kind.value, self.source.value.strip(), self.target.value.strip()
        if not target:
            raise ConfigError("No target language given.", hint="Type a language code of the word list, e.g. zh.")
        languages = tuple(dict.fromkeys([source, target, *latent] if kind == "translation" else [target, *latent]))
        task = make_task(self._word_table(languages), kind, source, target, shots=self.shots.value, limit=self.limit.value)
        names = [self.model.value] + ([self.compare.value] if self.compare.value not in (NONE, self.model.value) else [])
        results = []
        for m, name in enumerate(names):
            lm = self.ctx.get_model(name)

            def report(done: int, total: int, m: int = m) -> None:
                value = int(100 * (m + done / total) / len(names))
                (progress or self._set_progress)(value)

            results.append(run_latent(lm, task, latent=latent, progress=report))
        self.results = results
        self.plot.object = latent_plot(results)
        self.summary.object = pd.DataFrame([r.summary() for r in results])
        caveats = [f"{r.model_name}: {w}" if len(results) > 1 else w for r in results for w in r.warnings]
        self.caveats.object, self.caveats.visible = "\n\n".join(caveats), bool(caveats)
        self.control_note.visible = any(r.has_control for r in results)
        for d in self.downloads:
            d.disabled = False
        return results

    def _set_progress(self, value: int) -> None:
        self.progress.value = value

    def figure(self, fmt: str) -> bytes:
        if not self.results:
            raise ConfigError("No experiment has run yet.", hint="Press Run experiment first.")
        return figure_bytes(latent_figure(self.results), fmt)

    def _grid_csv(self) -> io.StringIO:
        """The heatmap(s) as one long table, with a model column when two models are shown."""
        grids = [(self.model.value, self.grid), (self.compare.value, self.grid_b)]
        frames = [g.to_frame().assign(model=name) for name, g in grids if g is not None]
        # Every text quoted: a lone carriage-return token would otherwise end the row for CSV readers.
        return io.StringIO(pd.concat(frames).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)) if frames else io.StringIO("")

    def _results_csv(self) -> io.StringIO:
        return io.StringIO(pd.concat([r.to_frame() for r in self.results]).to_csv(index=False))

    # -- event handlers: run off the event loop, report errors in the page ----------------
    async def _on_grid(self, _event: object) -> None:
        self.status.visible = False
        self.run_grid_button.loading = True
        try:
            await asyncio.to_thread(self.run_grid)
        except Exception as exc:  # noqa: BLE001 - every failure is shown to the user
            self._show_error(exc)
        finally:
            self.run_grid_button.loading = False

    async def _on_run(self, _event: object) -> None:
        self.status.visible = self.caveats.visible = False
        self.run_button.disabled = True
        self.progress.value = 0
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.run_experiment, lambda v: loop.call_soon_threadsafe(self._set_progress, v))
            self.progress.value = 100
        except Exception as exc:  # noqa: BLE001
            self._show_error(exc)
        finally:
            self.run_button.disabled = False

    # -- layout --------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        # A heatmap is 60 px per prompt token: a long prompt (or two models) scrolls inside its own box
        # instead of making the whole page wider than the screen; the KL plot and table wrap.
        heatmaps = pn.Column(self.heatmap, self.heatmap_b, scroll=True, sizing_mode="stretch_width")
        lens_tab = pn.Column(self.prompt, pn.Row(self.top_k, self.run_grid_button, self.grid_csv), heatmaps,
                             self.kl_note, pn.FlexBox(self.kl_plot, self.kl_table), name="Prompt lens", sizing_mode="stretch_width")
        experiment_tab = pn.Column(
            self.wordlist, pn.Row(self.kind, self.source, self.target, self.latent), pn.Row(self.shots, self.limit, self.run_button),
            self.progress, self.caveats, pn.Column(self.plot, scroll=True, sizing_mode="stretch_width"), self.control_note,
            pn.Column(self.summary, scroll=True, sizing_mode="stretch_width"), pn.Row(*self.downloads), name="Latent language",
            sizing_mode="stretch_width",
        )
        return pn.Column(
            "# Logit lens · latent language",
            pn.pane.Markdown("Each layer's residual stream read out through the final norm and unembedding "
                             "(layer 0 = embeddings). The last layer equals the model's own prediction."),
            pn.Row(self.model, self.compare), self.status, pn.Tabs(lens_tab, experiment_tab), sizing_mode="stretch_width",
        )


def build_view(ctx: AppContext) -> pn.viewable.Viewable:
    return LogitLensView(ctx).panel()


