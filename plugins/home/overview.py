"""The Panel "overview" view: model catalog and, per dataset, counts and distributions.

``build_overview(ctx)`` returns a Panel viewable, so the same dashboard is served at
/panel/overview and displayed in a notebook cell (after ``pn.extension()``).
"""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend, as hv.extension would)
import numpy as np
import pandas as pd
import panel as pn

from plugins.home import actions
from workbench.app import ui
from workbench.context import AppContext

BINS = 20


def _category_bars(stats: actions.DatasetStats, key: str) -> hv.Bars:
    counts = stats.categories[key].most_common()
    return hv.Bars(counts, kdims=[key], vdims=["pairs"]).opts(
        title=f"metadata.{key}", width=420, height=260, xrotation=30, tools=["hover"], color="#6366f1",
    )


def _length_histogram(stats: actions.DatasetStats) -> hv.Overlay:
    lengths = np.asarray(stats.words_a + stats.words_b)
    edges = np.histogram_bin_edges(lengths, bins=BINS)
    a, _ = np.histogram(stats.words_a, bins=edges)
    b, _ = np.histogram(stats.words_b, bins=edges)
    return (hv.Histogram((edges, a), kdims=["words"], vdims=["pairs"], label="response A").opts(alpha=0.6, color="#6366f1")
            * hv.Histogram((edges, b), kdims=["words"], vdims=["pairs"], label="response B").opts(alpha=0.6, color="#f59e0b")
            ).opts(title="Response length (words)", width=420, height=260, legend_position="top_right")


def _dataset_card(ctx: AppContext, name: str) -> pn.viewable.Viewable:
    stats = actions.dataset_stats(ctx, name)
    sampled = f" (charts from the first {stats.sampled})" if stats.sampled < stats.n_pairs else ""
    summary = pn.pane.Markdown(
        f"**{stats.n_pairs}** pairs{sampled} · **{stats.n_labelled}** of {stats.sampled} carry a preference label"
    )
    charts = [pn.pane.HoloViews(_category_bars(stats, key), backend="bokeh", linked_axes=False) for key in stats.categories]
    if stats.sampled:
        charts.append(pn.pane.HoloViews(_length_histogram(stats), backend="bokeh", linked_axes=False))
    return pn.Column(f"### Dataset `{name}`", summary, pn.FlexBox(*charts), sizing_mode="stretch_width")


def build_overview(ctx: AppContext) -> pn.viewable.Viewable:
    """Catalog table and one card per dataset; built fresh for each browser session."""
    catalog = pd.DataFrame(actions.catalog_table(ctx)[0], columns=actions.CATALOG_COLUMNS)
    datasets = ui.dataset_choices(ctx)
    cards = [_dataset_card(ctx, name) for name in datasets] or [pn.pane.Markdown("_No datasets yet: import one in the Models & data tab._")]
    return pn.Column(
        "# Preference Workbench · overview",
        "## Models",
        pn.pane.DataFrame(catalog, index=False, sizing_mode="stretch_width"),
        "## Datasets",
        *cards,
        sizing_mode="stretch_width",
    )
