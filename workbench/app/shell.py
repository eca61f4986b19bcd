"""The Gradio shell: a header, one tab per plugin tab (by ``order``) and a Plugins tab.

Tabs come only from the ``gradio_tabs`` hook, the first-party ones included. A tab whose
build raises is replaced by its error text, so one faulty plugin never takes the app down.
"""
from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Iterable
from html import escape
from typing import Any

import gradio as gr

from workbench import __version__
from workbench.app.panel_views import collect_panel_views, panel_url
from workbench.app.roles_guard import guard_new_events
from workbench.app.ui import md_escape, model_choices
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


def _build_tab(ctx: AppContext, owner: str, tab: GradioTab) -> None:
    """Build one tab's body; on failure hide what was half-built, show the error and mark ``owner`` broken."""
    with gr.Column() as body:
        try:
            tab.build(ctx)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("Tab %r failed to build:\n%s", tab.title, traceback.format_exc())
    body.visible = False
    ctx.plugins.mark_broken(owner, f"gradio tab {tab.title!r}: {error}")
    gr.Markdown(
        f"**This tab failed to build** (plugin {md_escape(owner)}):\n\n```\n{error}\n```\n\n"
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
    datasets = ctx.store.dataset_capabilities() or {"demo": frozenset({"pairs"})}
    if data_needs and not any(is_compatible(data_needs, caps)[0] for caps in datasets.values()):
        reasons.append(f"a dataset with {is_compatible(data_needs, ())[1].removeprefix('needs ')}; import one on the Models & data tab")
    return " and ".join(reasons) or None


def _update_fields(update: Any) -> dict[str, Any]:
    """What a fill handler returned for a dropdown (a component or a ``gr.update`` dict), as fields."""
    if isinstance(update, gr.components.Component):
        return dict(getattr(update, "constructor_args", {}))
    return update if isinstance(update, dict) else {}


def refresh_on_open(blocks: gr.Blocks, tab: gr.Tab, before: Iterable[int]) -> int:
    """Run the tab's page-load dropdown fills again whenever the tab is opened; returns how many.

    So a session, dataset, model, run, vector or reward model that another tab (or another
    browser) made since the page loaded is offered as soon as the user comes back here, with no
    Refresh button. Only the choices change: a value the user picked is kept while it still exists.
    """
    seen = set(before)
    fills = [f for key, f in list(blocks.fns.items())
             if key not in seen and f.fn is not None and not f.inputs and f.targets
             and all(trigger == "load" for _, trigger in f.targets) and not inspect.isgeneratorfunction(f.fn)
             and not inspect.iscoroutinefunction(f.fn)
             and any(isinstance(o, gr.Dropdown) for o in f.outputs)]
    for fill in fills:
        outputs = list(fill.outputs)
        dropdowns = [o for o in outputs if isinstance(o, gr.Dropdown)]
        # A fill that reads the login (``request: gr.Request``) gets the tab-open event's request.
        wants = [name for name, hint in gr.utils.get_type_hints(fill.fn).items() if hint is gr.Request]

        def refresh(request: gr.Request, /, *current: Any, fn: Any = fill.fn, outputs: list[Any] = outputs,
                    wants: list[str] = wants) -> Any:
            result = fn(**{name: request for name in wants})
            results = list(result) if len(outputs) > 1 else [result]
            values = iter(current)
            updates = []
            for out, update in zip(outputs, results, strict=True):
                if not isinstance(out, gr.Dropdown):
                    updates.append(gr.skip())
                    continue
                picked, fields = next(values), _update_fields(update)
                if fields.get("choices") is None:
                    updates.append(gr.skip())
                    continue
                names = [c[1] if isinstance(c, (tuple, list)) else c for c in fields["choices"]]
                still_there = picked in names if not out.multiselect else bool(picked) and set(picked) <= set(names)
                if still_there:
                    fields["value"] = picked
                updates.append(gr.update(**{k: fields[k] for k in ("choices", "value") if k in fields}))
            return updates if len(outputs) > 1 else updates[0]

        tab.select(refresh, inputs=dropdowns, outputs=outputs, queue=False, show_progress="hidden")
    return len(fills)


def _build_tab_if_compatible(ctx: AppContext, owner: str, tab: GradioTab) -> None:
    missing = unmet_requirements(ctx, tab.requires)
    if missing:
        gr.Markdown(f"**{md_escape(tab.title)} cannot run here yet:** it needs {md_escape(missing)}. "
                    "Restart the server once it exists.", elem_classes=["wb-error"])
        return
    _build_tab(ctx, owner, tab)


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
    tabs = sorted(ctx.plugins.collect("gradio_tabs", GradioTab, context=ctx), key=lambda c: c.item.order)
    if views is None:
        views = collect_panel_views(ctx)
    guarded: dict[str, tuple[int, int]] = {}
    with gr.Blocks(title="Preference Workbench", analytics_enabled=False) as blocks:
        gr.Markdown(
            f"# Preference Workbench\nLabel, inspect, steer and fine-tune preferences in local models · v{__version__}",
            elem_classes=["wb-header"],
        )
        with gr.Tabs():
            for contribution in tabs:
                tab = contribution.item
                before = set(blocks.fns)
                with gr.Tab(tab.title) as tab_block:
                    _build_tab_if_compatible(ctx, contribution.plugin, tab)
                refresh_on_open(blocks, tab_block, before)
                new = [f for k, f in blocks.fns.items() if k not in before]
                events = sum(f.fn is not None for f in new)  # a js-only event runs nothing on the server
                guarded[tab.title] = (events, 0 if tab.annotators else guard_new_events(blocks, before, ctx.settings, tab.title))
            before = list(blocks.fns)
            for view in views:
                _view_tab(ctx, view)
            guard_new_events(blocks, before, ctx.settings, "Panel view")
            # Built last, so it shows tabs that failed above as broken.
            with gr.Tab("Plugins"):
                _plugins_tab(ctx, views)
    # Per tab title: (events the tab registered, events the role guard wrapped). The guard rewrites
    # Gradio internals, so tests/test_security_tabs.py checks these numbers agree for every tab.
    blocks.guarded_events = guarded  # type: ignore[attr-defined]
    return blocks
