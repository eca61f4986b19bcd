"""The logit-lens plugin: a Panel view of the lens heatmap and the latent-language experiments.

Registered through the ``panel_views`` hook like any third-party plugin; Panel and
HoloViews are imported only when the view is built.
"""
from __future__ import annotations

from typing import Any

from workbench.hookspecs import hookimpl
from workbench.plugin_types import PanelView


@hookimpl
def panel_views(context: Any) -> list[PanelView]:
    return [PanelView("logit-lens", "Logit lens · latent language", "plugins.logit_lens.view:build_view", requires=["causal_lm"])]
