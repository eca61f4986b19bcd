"""The UI kit every plugin shares: error display, model and dataset choices, Panel run handlers.

One copy of each, so every tab shows errors the same (escaped) way and offers the same,
capability-checked lists of models and datasets.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Collection
from typing import Any

from workbench.errors import WorkbenchError
from workbench.models.adapters import ADAPTERS
from workbench.models.capabilities import model_capabilities
from workbench.models.embedded import DEMO_MODEL_NAME, EMBEDDER_NAME
from workbench.plugin_types import is_compatible

# The embedded models are offered before they are converted or loaded, so their capabilities are
# known up front: the demo GGUF becomes a full Llama folder (trainable), the embedder is a BERT encoder.
DEMO_CAPABILITIES = model_capabilities(ADAPTERS["llama"], "hf", chat=True) | {"gguf-dequantized"}
EMBEDDER_CAPABILITIES = model_capabilities(ADAPTERS["bert"], "hf")

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def md_escape(text: str) -> str:
    """Show text literally in Markdown (paths and field names are full of underscores)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def error_text(exc: BaseException) -> str:
    """What went wrong, where and what to do, as plain text; never a traceback."""
    if isinstance(exc, WorkbenchError):
        return exc.message + (f"\n\n→ {exc.hint}" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def error_markdown(exc: BaseException) -> str:
    """An error as a Gradio Markdown component shows it (escaped, so a path cannot inject markup)."""
    if isinstance(exc, WorkbenchError):
        text = f"**Error:** {md_escape(exc.message)}"
        return text + (f"\n\n→ {md_escape(exc.hint)}" if exc.hint else "")
    return f"**Error:** {md_escape(f'{type(exc).__name__}: {exc}')}"


def model_choices(ctx: Any, requires: Collection[str] = ()) -> list[str]:
    """Names of the models that meet ``requires`` (see ``plugin_types.MODEL_CAPABILITIES``).

    Loaded models first, then the embedded ones, then the catalog; broken or unsupported
    catalog entries are never offered.
    """
    offered: dict[str, frozenset[str]] = {
        name: model_capabilities(lm.adapter, lm.format, chat=bool(getattr(lm.tokenizer, "chat_template", None)))
        for name, lm in ctx.models.items()}
    catalog = [entry for entry in ctx.catalog() if entry.status == "ok"]
    present = {entry.name for entry in catalog}  # an embedded model whose package is missing is not offered
    for name, caps in ((DEMO_MODEL_NAME, DEMO_CAPABILITIES), (EMBEDDER_NAME, EMBEDDER_CAPABILITIES)):
        if name in present:
            offered.setdefault(name, caps)
    for entry in catalog:
        offered.setdefault(entry.name, entry.capabilities)
    return [name for name, caps in offered.items() if is_compatible(requires, caps)[0]]


def dataset_choices(ctx: Any, requires: Collection[str] = ()) -> list[str]:
    """Names of the stored datasets that meet ``requires`` (oldest first)."""
    return [name for name, caps in ctx.store.dataset_capabilities().items() if is_compatible(requires, caps)[0]]


async def run_guarded(button: Any, alert: Any, fn: Callable[[], Any]) -> Any:
    """Panel handler body: busy button, ``fn`` off the event loop, any failure shown in ``alert``."""
    alert.visible = False
    button.loading = True
    try:
        return await asyncio.to_thread(fn)
    except Exception as exc:  # noqa: BLE001 - every failure is shown to the user
        show_alert(alert, exc)
        return None
    finally:
        button.loading = False


def show_alert(alert: Any, exc: BaseException) -> None:
    """Show ``exc`` in a Panel ``Alert`` pane."""
    alert.object, alert.alert_type, alert.visible = error_text(exc), "danger", True
