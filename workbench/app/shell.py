"""The Gradio shell: a header, one tab per plugin tab (by ``order``) and a Plugins tab.

Tabs come only from the ``gradio_tabs`` hook, the first-party ones included. A tab whose
build raises is replaced by its error text, so one faulty plugin never takes the app down.
"""
from __future__ import annotations

import logging
import traceback
from html import escape
from types import ModuleType
from typing import Any

import gradio as gr

from workbench import __version__
from workbench.app.roles_guard import guard_new_events
from workbench.app.server import collect_panel_views, panel_url
from workbench.app.ui import dataset_capabilities, md_escape, model_choices
from workbench.context import AppContext
from workbench.plugin_types import DATASET_CAPABILITIES, GradioTab, PanelView, is_compatible

log = logging.getLogger(__name__)

THEME_CSS = """
.wb-header h1 { margin-bottom: 0.1em; }
.wb-error { border-left: 4px solid #dc2626; padding-left: 0.75em; }
.wb-view iframe { width: 100%; height: 1400px; border: 0; }
"""


def theme() -> gr.themes.Base:
    """A theme with system fonts only: the app must look right without internet access."""
    return gr.themes.Soft(
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def _owner(ctx: AppContext, fn: Any) -> str | None:
    """The plugin that provided ``fn`` (its bound method or a function of its module), if any."""
    module = getattr(fn, "__module__", "") or ""
    for info in ctx.plugins.infos:
        plugin = ctx.plugins.pm.get_plugin(info.name)
        if plugin is None:
            continue
        if getattr(fn, "__self__", None) is plugin:
            return info.name
        if isinstance(plugin, ModuleType) and (module == plugin.__name__ or module.startswith(plugin.__name__ + ".")):
            return info.name
    return None


def _build_tab(ctx: AppContext, tab: GradioTab) -> None:
    """Build one tab's body; on failure hide what was half-built and show the error."""
    with gr.Column() as body:
        try:
            tab.build(ctx)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("Tab %r failed to build:\n%s", tab.title, traceback.format_exc())
    body.visible = False
    owner = _owner(ctx, tab.build)
    if owner:
        ctx.plugins.mark_broken(owner, f"gradio tab {tab.title!r}: {error}")
    gr.Markdown(
        f"**This tab failed to build** (plugin {owner or 'unknown'}):\n\n```\n{error}\n```\n\n"
        "The rest of the app works; see the Plugins tab and the server log.",
        elem_classes=["wb-error"],
    )


def unmet_requirements(ctx: AppContext, requires: list[str]) -> str | None:
    """Why nothing in this workbench can feed a tab or view that ``requires`` these capabilities (None: something can).

    Model needs are checked against every model on offer, dataset needs against the stored
    datasets (the demo dataset counts: it is imported on first use).
    """
    model_needs = [r for r in requires if not set(r.split("|")) <= set(DATASET_CAPABILITIES)]
    data_needs = [r for r in requires if set(r.split("|")) <= set(DATASET_CAPABILITIES)]
    reasons = []
    if model_needs and not model_choices(ctx, model_needs):
        reasons.append(f"a model that {is_compatible(model_needs, ())[1].removeprefix('needs ')}; "
                       "add one under the workbench home's models folder or WORKBENCH_MODEL_ROOTS")
    datasets = dataset_capabilities(ctx) or {"demo": frozenset({"pairs"})}
    if data_needs and not any(is_compatible(data_needs, caps)[0] for caps in datasets.values()):
        reasons.append(f"a dataset with {is_compatible(data_needs, ())[1].removeprefix('needs ')}; import one on the Models & data tab")
    return " and ".join(reasons) or None


def _build_tab_if_compatible(ctx: AppContext, tab: GradioTab) -> None:
    missing = unmet_requirements(ctx, tab.requires)
    if missing:
        gr.Markdown(f"**{md_escape(tab.title)} cannot run here yet:** it needs {md_escape(missing)}. "
                    "Restart the server once it exists.", elem_classes=["wb-error"])
        return
    _build_tab(ctx, tab)


def _view_tab(ctx: AppContext, view: PanelView) -> gr.Tab:
    """A navigation tab that embeds one Panel view; the view loads only when the tab is opened."""
    missing = unmet_requirements(ctx, view.requires)
    with gr.Tab(view.title.split(" · ")[0]) as tab:  # the short name: the tab bar must fit a laptop screen
        if missing:
            gr.Markdown(f"**{md_escape(view.title)} cannot run here yet:** it needs {md_escape(missing)}.", elem_classes=["wb-error"])
            return tab
        url = panel_url(view.slug)
        gr.Markdown(f"Also usable on its own page: [{url}]({url}) and in notebooks.")
        frame = gr.HTML("", elem_classes=["wb-view"])
    html = f"<iframe src=\"{url}\" title=\"{escape(view.title)}\"></iframe>"
    tab.select(lambda: html, outputs=frame, queue=False, show_progress="hidden")
    return tab


def _plugins_tab(ctx: AppContext, views: list[PanelView]) -> None:
    rows = [[i.name, i.version, i.status, ", ".join(i.hooks), i.error] for i in ctx.plugins.infos]
    gr.Dataframe(
        value=rows, headers=["plugin", "version", "status", "hooks", "error"],
        interactive=False, wrap=True, label="Installed plugins (entry-point group workbench.plugins)",
    )
    links = "\n".join(f"- [{v.title}]({panel_url(v.slug)}) — `{panel_url(v.slug)}`" for v in views) or "_No Panel views installed._"
    gr.Markdown(f"### Panel views\n\nDashboards served by this same server (they also work in notebooks):\n\n{links}")


def build_blocks(ctx: AppContext, views: list[PanelView] | None = None) -> gr.Blocks:
    """The whole Gradio UI for ``ctx``; ``views`` are the Panel views to link to."""
    tabs = sorted(ctx.plugins.collect("gradio_tabs", context=ctx), key=lambda t: t.order)
    if views is None:
        views = collect_panel_views(ctx)
    with gr.Blocks(title="Preference Workbench", analytics_enabled=False) as blocks:
        gr.Markdown(
            f"# Preference Workbench\nLabel, inspect, steer and fine-tune preferences in local models · v{__version__}",
            elem_classes=["wb-header"],
        )
        with gr.Tabs():
            for tab in tabs:
                before = list(blocks.fns)
                with gr.Tab(tab.title):
                    _build_tab_if_compatible(ctx, tab)
                if not tab.annotators:
                    guard_new_events(blocks, before, ctx.settings, tab.title)
            before = list(blocks.fns)
            for view in views:
                _view_tab(ctx, view)
            guard_new_events(blocks, before, ctx.settings, "Panel view")
            # Built last, so it shows tabs that failed above as broken.
            with gr.Tab("Plugins"):
                _plugins_tab(ctx, views)
    return blocks
