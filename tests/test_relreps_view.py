"""The latent-explorer plugin: registered through the hook; its Panel view compares two
models, stitches, projects, lists selections and reports bad input in the page."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
from sessions import verbosity_pairs

from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.settings import Settings


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_checkpoint):
    """One context for the module (the tests only read from it), so the models load once."""
    return explorer_context(tmp_path_factory.mktemp("relreps") / "home", tiny_checkpoint, "toy",
                            verbosity_pairs(20, preferred=lambda i: "A" if i % 2 else "B"))


def explorer_context(home: Path, tiny_checkpoint: Callable[[str], Path], dataset: str, pairs: list[Pair]) -> AppContext:
    """The explorer's two models (tiny qwen2, then llama) active, and ``pairs`` stored as ``dataset``."""
    context = AppContext(Settings(home=home))
    context.activate(str(tiny_checkpoint("qwen2")))
    context.activate(str(tiny_checkpoint("llama")))
    context.store.import_pairs(dataset, pairs, source="test", format="unlabeled")
    return context


def _view(ctx):
    from plugins.relreps.view import RelRepsView

    view = RelRepsView(ctx)
    view.model_a.value, view.model_b.value, view.dataset.value = "llama", "qwen2", "toy"
    view.n_anchors.value, view.k.value = 8, 5
    return view


def test_plugin_contributes_the_panel_view(ctx):
    from workbench.app.panel_views import collect_panel_views

    views = {v.slug: v for v in collect_panel_views(ctx)}
    assert "relreps" in views
    assert "Latent explorer" in views["relreps"].build(ctx).objects[0].object


def test_view_compares_stitches_projects_and_lists_selections(ctx):
    view = _view(ctx)
    analysis = view.run()
    assert len(analysis.frame) == 40 and analysis.frame["anchor"].eq("anchor").sum() == 8
    sim = view.similarity.object
    # Values in range, not just floats: NaN is a float too.
    assert sim["space"].tolist() == ["absolute", "relative"] and sim["MRR"].map(lambda v: 0 < v <= 1).all()  # both 32-dim
    assert view.label.value == "attribute_pole" and view.stitching.object["accuracy"].map(lambda v: 0 <= v <= 1).all()
    assert "keeps" in view.stitching_note.object
    assert view.plots.object is not None
    assert [p.kdims[0].name for p in view.elements] == ["abs_a_x", "abs_b_x", "rel_a_x", "rel_b_x"]
    assert all(isinstance(p, hv.Points) and p.opts.get().kwargs["color"] == "attribute_pole" for p in view.elements)
    assert view.color_by.value == "attribute_pole"
    view.color_by.value = "role"  # recolours without recomputing
    assert view.analysis is analysis and all(p.opts.get().kwargs["color"] == "role" for p in view.elements)
    view.links.selection_expr = hv.dim("rel_a_x") > float(np.median(analysis.frame["rel_a_x"]))
    assert len(view.selection.value) == 20 and "text" in view.selection.value.columns
    assert view.selection_note.object == "20 selected input(s)."
    view.links.selection_expr = hv.dim("rel_a_x") > 1e9
    assert view.selection.value.empty and "The selection holds no inputs" in view.selection_note.object


def test_bad_choices_are_reported_in_the_page(ctx):
    view = _view(ctx)
    view.n_anchors.value = 100
    asyncio.run(view._on_run(None))
    assert view.status.visible and view.status.alert_type == "danger"
    assert "fewer than the 100 anchors" in view.status.object
    view.n_anchors.value, view.layer_a.value = 8, 7
    asyncio.run(view._on_run(None))
    assert "Layer 7 is out of range" in view.status.object


def test_more_than_20k_points_are_datashaded():
    from plugins.relreps.plots import DATASHADE_ABOVE, points_plot

    hv.extension("bokeh")  # the view loads it too; this keeps the test valid when run alone
    rng = np.random.default_rng(0)
    n = DATASHADE_ABOVE + 1
    frame = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "pole": rng.choice(["a", "b"], n),
                          "score": rng.normal(size=n), "hover": "t", "key": [f"k{i}" for i in range(n)]})
    assert isinstance(points_plot(frame.iloc[:100], "x", "y", "pole", "small"), hv.Points)
    for column in ("pole", "score"):
        big = points_plot(frame, "x", "y", column, "big")
        assert isinstance(big, hv.DynamicMap)
        rendered = big[()]  # evaluate once: Datashader aggregates the 20k points into an image
        assert isinstance(rendered, (hv.RGB, hv.Image, hv.ImageStack))
