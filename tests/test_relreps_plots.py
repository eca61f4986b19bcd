"""Latent-explorer scatters stay readable (issue 21 §5): a legend only when it fits beside the plot."""
from __future__ import annotations

import holoviews as hv
import pandas as pd

from plugins.relreps.plots import MAX_LEGEND_ENTRIES, points_plot

hv.extension("bokeh")


def _legend(n_categories: int) -> bool:
    frame = pd.DataFrame({"x": range(40), "y": range(40), "c": [f"cat{i % n_categories}" for i in range(40)],
                          "hover": "t", "key": [str(i) for i in range(40)]})
    plot = points_plot(frame, "x", "y", "c", "title", "UMAP")
    state = hv.renderer("bokeh").get_plot(plot).state
    assert state.xaxis[0].axis_label == "UMAP 1" and state.yaxis[0].axis_label == "UMAP 2"
    return bool(state.legend) and bool(state.legend[0].items)


def test_a_legend_only_when_it_fits() -> None:
    assert _legend(4)
    assert not _legend(MAX_LEGEND_ENTRIES + 5)  # 15 entries ran past the plot and over the next title
