"""Server-side role check for every Gradio event of a tab that is not for annotators.

A tab's handlers are wrapped after it is built, so no event can be forgotten: with an
annotator's login an action fails with a clear error, and a page-load or timer event quietly
changes nothing (an annotator opening the app should not see a wall of errors). A hidden
button is not a permission; this is.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import gradio as gr

from workbench.app.auth import OWNER, login_name, role_of
from workbench.errors import PermissionDenied

# Triggers an annotator's page fires by itself (and .then() chains, which have no trigger); opening a
# tab (its "select") is passive too: it only refreshes what the tab lists.
_PASSIVE = {"load", "tick"}
_REQUEST = "_workbench_request"


def _refusal(settings: Any, request: Any, tab: str) -> PermissionDenied | None:
    user = login_name(request)
    if role_of(settings, user) == OWNER:
        return None
    return PermissionDenied(f"You are logged in as annotator '{user}'; only the workbench owner can use the {tab} tab.",
                            hint="Annotators label in the Labeling tab, in the sessions they are assigned to.")


def _guarded(fn: Callable[..., Any], settings: Any, tab: str, passive: bool, n_outputs: int) -> Callable[..., Any]:
    """``fn`` with an extra leading ``gr.Request`` parameter (Gradio fills it) checked before ``fn`` runs."""
    nothing = tuple(gr.skip() for _ in range(n_outputs)) if n_outputs != 1 else gr.skip()

    def check(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
        refusal = _refusal(settings, args[0], tab)
        if refusal is not None and not passive:
            raise gr.Error(str(refusal))
        return args[1:], refusal is None

    if inspect.isasyncgenfunction(fn):
        async def wrapper(*args: Any) -> Any:
            args, allowed = check(args)
            if not allowed:
                yield nothing
                return
            async for item in fn(*args):
                yield item
    elif inspect.isgeneratorfunction(fn):
        def wrapper(*args: Any) -> Any:
            args, allowed = check(args)
            if not allowed:
                yield nothing
                return
            yield from fn(*args)
    elif inspect.iscoroutinefunction(fn):
        async def wrapper(*args: Any) -> Any:
            args, allowed = check(args)
            return await fn(*args) if allowed else nothing
    else:
        def wrapper(*args: Any) -> Any:
            args, allowed = check(args)
            return fn(*args) if allowed else nothing

    # The request goes first: Gradio inserts a gr.Request at its parameter's index, and index 0 leaves the
    # handler's own parameters (its *args, its gr.Request or gr.Progress) exactly where they were, one further on.
    signature = inspect.signature(fn)
    first = inspect.Parameter(_REQUEST, inspect.Parameter.POSITIONAL_ONLY, annotation=gr.Request)
    wrapper.__signature__ = signature.replace(parameters=[first, *signature.parameters.values()])  # type: ignore[attr-defined]
    # Resolved objects (not strings): Gradio reads the hints to know where gr.Request/gr.Progress go.
    wrapper.__annotations__ = {**{k: v for k, v in gr.utils.get_type_hints(fn).items() if k != "return"}, _REQUEST: gr.Request}
    wrapper.__name__ = getattr(fn, "__name__", "fn")
    return wrapper


def guard_new_events(blocks: gr.Blocks, before: Iterable[int], settings: Any, tab: str) -> int:
    """Wrap every event registered since ``before`` (the ids of ``blocks.fns`` then); returns how many."""
    seen = set(before)
    wrapped = 0
    for key, block_fn in blocks.fns.items():
        if key in seen or block_fn.fn is None:
            continue
        passive = all(trigger in _PASSIVE or (trigger == "select" and isinstance(blocks.blocks.get(block), gr.Tab))
                      for block, trigger in block_fn.targets)
        block_fn.fn = _guarded(block_fn.fn, settings, tab, passive, len(block_fn.outputs))
        wrapped += 1
    return wrapped
