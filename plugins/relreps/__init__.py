"""The latent-explorer plugin: relative representations, space comparison, stitching and
PCA/UMAP projections of two models side by side, as a Panel/HoloViews view.

Registered through the ``panel_views`` hook like any third-party plugin; Panel and
HoloViews are imported only when the view is built.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import PanelView


@hookimpl
def panel_views(context: Any) -> list[PanelView]:
    return [PanelView("relreps", "Latent explorer · relative representations", "plugins.relreps.view:build_view", requires=["pairs"])]
