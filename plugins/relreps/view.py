"""The Panel view: two models' spaces of the same inputs, absolute and relative, side by side.

Computation lives in ``workbench.geometry``; this module gathers the choices, runs the
analysis off the event loop, and shows projections, the similarity table, the stitching
results and a table of whatever is selected (box or lasso, linked across all four plots).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn

from plugins.relreps.plots import hover_text, points_plot
from workbench.app.ui import model_choices, run_guarded, show_alert
from workbench.context import DEMO_DATASET, AppContext
from workbench.errors import ConfigError, DataError, WorkbenchError
from workbench.geometry import (
    ANCHOR_METHODS,
    PROJECTION_METHODS,
    ProjectionCache,
    Space,
    StitchingResult,
    add_vote_columns,
    compare_spaces,
    dataset_judgments,
    encode_items_layers,
    items_frame,
    kmeans_labels,
    pair_items,
    project,
    relative_space,
    select_anchors,
    stitch,
)
from workbench.geometry.compare import agreement_by_layer, layer_pairs
from workbench.models.embedded import DEMO_MODEL_NAME, EMBEDDER_NAME

PANELS = (("abs_a", "absolute", "a"), ("abs_b", "absolute", "b"), ("rel_a", "relative", "a"), ("rel_b", "relative", "b"))
HIDDEN_COLUMNS = {"key", "text", "hover", "prompt", "pair_id"}
N_CLUSTERS = 8
REQUIRES = ["causal_lm|encoder"]  # any model with hidden states
NOT_COMPUTABLE = "cannot be computed (different widths)"
STAGES = ("encode A", "encode B", "anchors", "compare", "stitch", "project")
StageProgress = Callable[[str, int, int], None]  # (stage, steps done, steps in the stage)
METRIC_NAMES = {"knn_overlap": "k-NN overlap", "mean_cosine": "mean cosine", "jaccard": "Jaccard@k", "mrr": "MRR"}


def readable_similarity(similarity: pd.DataFrame) -> pd.DataFrame:
    """The absolute/relative comparison with plain headers and the reason where a metric has no value."""
    table = similarity.rename(columns={"kind": "space", "space_a": "space A", "space_b": "space B", "n": "inputs", "k": "k",
                                       **METRIC_NAMES}).round(4)
    return table.astype(object).where(table.notna(), NOT_COMPUTABLE)


def readable_agreement(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-layer agreement rows as a table a person reads: "absolute · k-NN overlap", …, reasons for gaps."""
    table = pd.DataFrame(rows).round(4)
    table.columns = [{"layer_a": "layer A", "layer_b": "layer B"}.get(c) or f"{c.split('_', 1)[0]} · {METRIC_NAMES[c.split('_', 1)[1]]}"
                     for c in table.columns]
    return table.astype(object).where(table.notna(), NOT_COMPUTABLE)


def readable_stitching(stitching: StitchingResult) -> pd.DataFrame:
    """Stitching accuracies; a head no better than always answering the majority class is flagged as at chance."""
    rows = []
    for r in stitching.rows:
        note = r["note"]
        if r["accuracy"] is not None and r["accuracy"] <= stitching.chance + 1e-9:
            note += f" · at chance: no better than always answering the majority class ({stitching.chance:.1%})"
        rows.append({"representation": r["representation"], "trained on": r["trained_on"], "evaluated on": r["evaluated_on"],
                     "accuracy": NOT_COMPUTABLE if r["accuracy"] is None else round(r["accuracy"], 4), "note": note})
    return pd.DataFrame(rows)


def selected_rows(frame: pd.DataFrame, expr: Any) -> pd.DataFrame:
    """The rows a HoloViews selection expression picks; an empty selection is an error that says what to do."""
    if expr is None:
        raise DataError("Nothing is selected.", field="selection", hint="Drag a box or lasso over points in any of the four plots.")
    rows = hv.Dataset(frame).select(selection_expr=expr).data
    if len(rows) == 0:
        raise DataError("The selection holds no inputs.", field="selection", hint="Draw the box or lasso over some points.")
    return rows


class StageClock:
    """Turns (stage, done, total) reports into a status line with an ETA from the stage's own rate.

    A run's stages differ in speed by orders of magnitude (encoding is a forward pass per batch,
    anchors take milliseconds), so an ETA from the whole run's rate would be wrong in every stage.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stage: str | None = None
        self.started = 0.0
        self.seconds: dict[str, float] = {}  # time spent in each stage so far

    def line(self, stage: str, done: int, total: int) -> str:
        now = self.clock()
        if stage != self.stage:
            self.stage, self.started = stage, now
        elapsed = now - self.started
        self.seconds[stage] = elapsed
        if done >= total:
            eta = f"done in {elapsed:.1f} s"
        elif done == 0:
            eta = "ETA —"
        else:
            eta = f"ETA {elapsed / done * (total - done):.0f} s"
        return f"Stage {STAGES.index(stage) + 1}/{len(STAGES)} · {stage} · {done}/{total} · {eta}"

    @staticmethod
    def percent(stage: str, done: int, total: int) -> int:
        """Share of the run done, counting each stage as an equal part."""
        return int(100 * (STAGES.index(stage) + (done / total if total else 1)) / len(STAGES))

    def summary(self) -> str:
        return "Finished: " + " · ".join(f"{stage} {self.seconds[stage]:.1f} s" for stage in STAGES if stage in self.seconds)


@dataclass
class Analysis:
    """Everything one run computed; the plots are redrawn from it without recomputing."""

    frame: pd.DataFrame
    spaces: dict[str, Space]
    anchors: tuple[str, ...]
    similarity: pd.DataFrame
    agreement: list[dict[str, Any]]  # per layer pair at the same relative depth: absolute and relative metrics
    stitching: StitchingResult | None
    stitching_error: str = ""
    projections: dict[str, Any] = field(default_factory=dict)


class RelRepsView:
    """State and widgets of one browser session (or one notebook cell)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.analysis: Analysis | None = None
        self.links: Any = None
        self.elements: list[Any] = []  # the four plots before selection linking (what is drawn)
        choices = model_choices(ctx, REQUIRES)
        datasets = [d["name"] for d in ctx.store.list_datasets()] or [DEMO_DATASET]
        # Defaults only among the models that exist here: a name that is not in the catalog would answer "Unknown model".
        first = next((m for m in (ctx.active_model_name, DEMO_MODEL_NAME) if m in choices), choices[0] if choices else None)
        second = EMBEDDER_NAME if EMBEDDER_NAME in choices else next((m for m in reversed(choices) if m != first), first)
        self.model_a = pn.widgets.Select(label="Model A", options=choices, value=first)
        self.model_b = pn.widgets.Select(label="Model B", options=choices, value=second)
        self.layer_a = pn.widgets.IntInput(label="Layer A (−1 = last)", value=-1, width=130)
        self.layer_b = pn.widgets.IntInput(label="Layer B (−1 = last)", value=-1, width=130)
        self.pooling = pn.widgets.Select(label="Pooling", options=["mean", "last"], value="mean", width=100)
        self.dataset = pn.widgets.Select(label="Dataset", options=datasets, value=DEMO_DATASET if DEMO_DATASET in datasets else datasets[0])
        self.max_inputs = pn.widgets.IntInput(label="Max inputs (2 per pair)", value=400, start=4, step=100, width=150)
        self.n_anchors = pn.widgets.IntInput(label="Anchors", value=64, start=1, width=100)
        self.anchor_method = pn.widgets.Select(label="Anchor selection", options=list(ANCHOR_METHODS), value="random", width=130)
        self.k = pn.widgets.IntInput(label="k (Jaccard@k)", value=10, start=1, width=110)
        self.projection = pn.widgets.Select(label="Projection", options=list(PROJECTION_METHODS), value="pca", width=100)
        self.label = pn.widgets.Select(label="Stitching label", options=[], width=170)
        self.color_by = pn.widgets.Select(label="Colour by", options=[], width=170)
        self.run_button = pn.widgets.Button(label="Compare spaces", color="primary")
        self.status = pn.pane.Alert("", alert_type="light", visible=False, sizing_mode="stretch_width")
        self.progress = pn.indicators.Progress(label="Progress", value=0, max=100, visible=False, sizing_mode="stretch_width")
        self.stage_line = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.plots = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width", linked_axes=False)
        self.similarity = pn.pane.DataFrame(None, index=False, sizing_mode="stretch_width")
        self.agreement = pn.pane.DataFrame(None, index=False, sizing_mode="stretch_width")
        self.agreement_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.stitching = pn.pane.DataFrame(None, index=False, sizing_mode="stretch_width")
        self.stitching_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.selection = pn.widgets.Tabulator(pd.DataFrame(), pagination="local", page_size=10, sizing_mode="stretch_width",
                                              disabled=True, show_index=False)
        self.selection_note = pn.pane.Markdown("Select points with the box or lasso tool to list them here.")
        self.run_button.on_click(self._on_run)
        self.color_by.param.watch(lambda _e: self.draw(), "value")

    # -- actions (plain methods, so notebooks and tests call them directly) -------------
    def _show_error(self, exc: Exception) -> None:
        show_alert(self.status, exc)

    def _items(self) -> list:
        name = self.dataset.value
        if name == DEMO_DATASET:
            self.ctx.ensure_demo_dataset()
        if self.max_inputs.value < 4:
            raise ConfigError(f"Max inputs is {self.max_inputs.value}; at least 4 are needed.")
        pairs = self.ctx.store.get_pairs(name)
        wanted = self.max_inputs.value // 2
        if len(pairs) > wanted:  # every k-th pair, so a dataset sorted by attribute keeps all of them
            pairs = pairs[:: -(-len(pairs) // wanted)][:wanted]
        if not pairs:
            raise DataError(f"Dataset {name!r} has no pairs.", field="dataset", hint="Import pairs on the Models & data tab.")
        return pair_items(pairs)

    def _judgments(self) -> dict:
        """Current labeling votes on the chosen dataset, by annotator (empty without sessions)."""

        return dataset_judgments(self.ctx.labeling, self.dataset.value)

    def run(self, progress: StageProgress | None = None) -> Analysis:
        """Encode the dataset with both models, compare, stitch and project; then draw.

        ``progress(stage, done, total)`` is called as each stage of ``STAGES`` starts, advances
        and ends (from this thread: a UI hands it on to its event loop).
        """
        report = progress or (lambda stage, done, total: None)
        items = self._items()
        cache = self.ctx.activation_cache
        lm_a, lm_b = self.ctx.get_model(self.model_a.value), self.ctx.get_model(self.model_b.value)
        depths = layer_pairs(lm_a.n_layers, lm_b.n_layers)
        # One pass per model gives the chosen layer and the layers of the per-layer agreement.
        encoded = {}
        for stage, lm, layer, side in (("encode A", lm_a, self.layer_a.value, 0), ("encode B", lm_b, self.layer_b.value, 1)):
            report(stage, 0, len(items))
            encoded[stage] = encode_items_layers(lm, items, layers=[layer, *(pair[side] for pair in depths)], pooling=self.pooling.value,
                                                 cache=cache, progress=lambda done, total, stage=stage: report(stage, done, total))
        layers_a, layers_b = encoded["encode A"], encoded["encode B"]
        abs_a = layers_a[self.layer_a.value % (lm_a.n_layers + 1)]  # the encoder refused out-of-range layers already
        abs_b = layers_b[self.layer_b.value % (lm_b.n_layers + 1)]
        report("anchors", 0, 1)
        anchors = select_anchors(abs_a, self.n_anchors.value, self.anchor_method.value)
        spaces = {"abs_a": abs_a, "abs_b": abs_b, "rel_a": relative_space(abs_a, anchors), "rel_b": relative_space(abs_b, anchors)}
        report("anchors", 1, 1)
        k = self.k.value
        report("compare", 0, 3)
        similarity = pd.DataFrame([compare_spaces(abs_a, abs_b, k=k).row(), compare_spaces(spaces["rel_a"], spaces["rel_b"], k=k).row()])
        report("compare", 1, 3)
        agreement = agreement_by_layer(layers_a, layers_b, depths, anchors, k=k)
        report("compare", 2, 3)
        frame = add_vote_columns(items_frame(items), self._judgments())
        frame["anchor"] = frame["key"].isin(set(anchors)).map({True: "anchor", False: "input"})
        frame["cluster_a"] = [f"c{c}" for c in kmeans_labels(abs_a, min(N_CLUSTERS, abs_a.n))]
        frame["hover"] = hover_text(frame["text"])
        report("compare", 3, 3)
        labels = [c for c in frame.columns if c not in HIDDEN_COLUMNS and not c.endswith(("_x", "_y")) and frame[c].nunique() > 1]
        label = self.label.value if self.label.value in labels else next((c for c in ("attribute_pole", "role", "side") if c in labels), None)
        report("stitch", 0, 1)
        result, error = None, ""
        try:
            if label is None:
                raise DataError("No metadata column varies across these inputs, so there is nothing to classify.", field="labels")
            result = stitch(abs_a, abs_b, frame[label].tolist(), anchors, task=label, cache_dir=self.ctx.settings.cache_dir / "stitching")
        except WorkbenchError as exc:
            error = str(exc)
        report("stitch", 1, 1)
        projections = {}
        pcache = ProjectionCache(self.ctx.settings.cache_dir / "projections")
        report("project", 0, len(spaces))
        for i, (name, space) in enumerate(spaces.items(), 1):
            projections[name] = project(space.vectors, self.projection.value, cache=pcache)
            frame[f"{name}_x"], frame[f"{name}_y"] = projections[name].coords[:, 0], projections[name].coords[:, 1]
            report("project", i, len(spaces))
        self.analysis = Analysis(frame, spaces, anchors, similarity, agreement, result, error, projections)
        self.label.options, self.label.value = labels, label
        colours = [c for c in frame.columns if c not in HIDDEN_COLUMNS and not c.endswith(("_x", "_y"))]
        self.color_by.options = colours
        if self.color_by.value not in colours:
            self.color_by.value = label if label in colours else colours[0]
        self.show_tables()
        self.draw()
        return self.analysis

    def show_tables(self) -> None:
        a = self.analysis
        self.similarity.object = readable_similarity(a.similarity)
        self.agreement.object = readable_agreement(a.agreement)
        same_depth = all(la == lb for la, lb in ((r["layer_a"], r["layer_b"]) for r in a.agreement))
        self.agreement_note.object = (
            f"The two models' spaces of the same {a.frame.shape[0]} inputs, layer by layer "
            + ("(layer i of A against layer i of B). " if same_depth else "(layers paired at the same relative depth: the models differ in depth). ")
            + "Absolute metrics compare each model's own coordinates; relative ones describe every input by its similarity to "
              f"the same {len(a.anchors)} anchors. k-NN overlap (k = {self.k.value}): the share of each input's nearest "
              "neighbours both spaces agree on (1 = identical neighbourhoods). Mean cosine, Jaccard@k and MRR line the "
              "coordinates up directly, so they cannot be computed for absolute spaces of different widths.")
        if a.stitching is None:
            self.stitching.object, self.stitching_note.object = None, f"**Stitching not run:** {a.stitching_error}"
            return
        s = a.stitching
        self.stitching.object = readable_stitching(s)
        retained = f"{s.retained:.0%}" if s.retained is not None else "n/a"
        stitched = s.accuracy("relative", "A", "B")
        at_chance = (f" **The stitched head is at chance**: its accuracy {stitched:.1%} is no better than always answering the "
                     f"majority class ({s.chance:.1%}), so this task says nothing about agreement."
                     if stitched is not None and stitched <= s.chance + 1e-9 else "")
        self.stitching_note.object = (f"Task **{s.task}** ({len(s.classes)} classes, {s.n_train} train / {s.n_test} test, "
                                      f"majority class {s.chance:.1%}). Relative head trained on A keeps **{retained}** "
                                      "of B's native accuracy when applied to B." + at_chance)

    def draw(self) -> None:
        """(Re)draw the four projections from the last analysis, coloured by the chosen column."""
        if self.analysis is None or self.color_by.value is None:
            return
        frame, names = self.analysis.frame, {"a": self.model_a.value, "b": self.model_b.value}
        # The method these points were computed with, not the widget's (changed while a new run computes).
        method = next(iter(self.analysis.projections.values())).method if self.analysis.projections else self.projection.value
        axis = {"pca": "PC", "umap": "UMAP"}.get(method, method)
        self.elements = plots = [points_plot(frame, f"{p}_x", f"{p}_y", self.color_by.value, f"{kind} · {side.upper()}: {names[side]}", axis)
                 for p, kind, side in PANELS]
        self.links = hv.link_selections.instance()
        self.links.param.watch(lambda e: self.show_selection(e.new), "selection_expr")
        self.plots.object = self.links(hv.Layout(plots).cols(2))

    def show_selection(self, expr: Any) -> pd.DataFrame | None:
        """List the selected inputs; an empty selection says so instead of showing an empty table."""
        try:
            rows = selected_rows(self.analysis.frame, expr)
        except DataError as exc:
            self.selection.value, self.selection_note.object = pd.DataFrame(), f"{exc.message} {exc.hint or ''}"
            return None
        keep = [c for c in rows.columns if not c.endswith(("_x", "_y")) and c != "hover"]
        self.selection.value = rows[keep].reset_index(drop=True)
        self.selection_note.object = f"{len(rows)} selected input(s)."
        return rows

    # -- event handlers ------------------------------------------------------------------
    def _show_stage(self, percent: int, line: str) -> None:
        self.progress.value, self.stage_line.object = percent, line

    async def _on_run(self, _event: object) -> None:
        loop, clock = asyncio.get_running_loop(), StageClock()
        self.progress.value, self.progress.visible, self.stage_line.object = 0, True, "Starting…"

        def progress(stage: str, done: int, total: int) -> None:
            # Timed here, in the worker, so the ETA does not include the wait for the event loop.
            loop.call_soon_threadsafe(self._show_stage, clock.percent(stage, done, total), clock.line(stage, done, total))

        # The worker's last stage update was queued before its completion, so the summary lands last.
        result = await run_guarded(self.run_button, self.status, lambda: self.run(progress))
        self.progress.visible = False
        self.stage_line.object = clock.summary() if result is not None else ""

    # -- layout --------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        controls = pn.Column(
            pn.Row(self.model_a, self.layer_a, self.model_b, self.layer_b, self.pooling),
            pn.Row(self.dataset, self.max_inputs, self.n_anchors, self.anchor_method, self.k, self.projection),
            pn.Row(self.label, self.color_by, self.run_button),
        )
        return pn.Column(
            "# Latent explorer · relative representations",
            pn.pane.Markdown("The same inputs encoded by two models. Absolute spaces are each model's own coordinates; "
                             "relative spaces describe every input by its cosine similarity to shared anchor inputs, "
                             "which makes spaces of different models (and widths) comparable."),
            controls, self.progress, self.stage_line, self.status,
            pn.Tabs(("Projections", pn.Column(self.plots, self.selection_note, self.selection)),
                    ("Similarity", pn.Column(self.similarity, "### Agreement by layer", self.agreement_note, self.agreement)),
                    ("Stitching", pn.Column(self.stitching_note, self.stitching))),
            sizing_mode="stretch_width",
        )


def build_view(ctx: AppContext) -> pn.viewable.Viewable:
    return RelRepsView(ctx).panel()

