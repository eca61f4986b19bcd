"""The labeling HTTP API: join a session, fetch the next pair, vote, undo, read history.

Mounted on the main app (through the ``api_routes`` hook) and by the standalone labeling
server. Each annotator gets a secret token when joining and sends it as
``X-Annotator-Token``; a request for another annotator's queue is refused (403). Items are
served in displayed order (``left``/``right``) and votes name the displayed side, so a
client cannot mix up the randomised order.

A lost token is recovered by joining again with ``"recover": true``, which answers only a
caller who may act as that name: the annotator logged in under it, or the owner (on a server
without logins, the loopback user). Without it a second join under a taken name is refused
(409), so a client does not take over a queue by mistake.

Roles come from ``workbench.app.auth``: a request logged in as an annotator may only join,
read and vote under that same name (the token is still required), only in sessions they are
assigned to, and never sees gold answers, others' votes or tokens; creating, closing and
reopening sessions is for the owner. A vote is answered only after it is committed, and the
answer carries the next item, so "vote to next pair" is one round trip.

Bodies are bounded before they are parsed (size in ``RequestGuard``; nesting depth and valid
Unicode here), and wrong tokens count toward the client's login back-off. Every refusal is
JSON ``{"error", "hint"}`` with 400/403/404/409/413/422/429, and changes nothing.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from workbench.app.auth import OWNER, request_user, require_assigned, require_owner, role_of
from workbench.app.limits import GUARD_KEY, client_of
from workbench.errors import WorkbenchError
from workbench.labeling.errors import Conflict, Forbidden, Invalid
from workbench.labeling.sessions import LabelingStore, SessionInfo
from workbench.plugin_types import FOR_ANNOTATORS
from workbench.settings import Settings

PREFIX = "/api/labeling"
TOKEN_HEADER = "x-annotator-token"
NAME_SHOWN = 40
ANNOTATORS = "/sessions/{session}/annotators"


def _error(err: WorkbenchError) -> JSONResponse:
    return JSONResponse({"error": err.message, "hint": err.hint}, status_code=getattr(err, "status", 400))


def _check_value(value: Any, max_depth: int, where: str = "body") -> None:
    """Refuse JSON nested deeper than ``max_depth`` or holding text that is not valid Unicode.

    Iterative, so a hostile depth cannot exhaust the stack; a lone surrogate (``"\\ud800"``)
    is valid JSON but cannot be stored or sent back, so it is refused here with its field.
    """
    stack = [(value, 1, where)]
    while stack:
        item, depth, path = stack.pop()
        if depth > max_depth:
            raise Invalid(f"The request body is nested more than {max_depth} levels deep.", hint="Send a flat JSON object.")
        if isinstance(item, dict):
            stack.extend((v, depth + 1, f"{path}.{str(k)[:NAME_SHOWN]}") for k, v in item.items())
            stack.extend((k, depth + 1, path) for k in item)
        elif isinstance(item, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Invalid(f"Field '{path.removeprefix('body.')}' is not valid Unicode (it holds a lone surrogate).",
                              hint="Send text as UTF-8; a \\ud800-\\udfff escape must be one half of a pair.") from None


class _Body(BaseModel):
    """A request body: unknown fields refused, no type coercion (``"1"`` is not a number, ``true`` not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NewSession(_Body):
    name: str
    dataset: str
    settings: dict[str, Any] = {}


class NewStatus(_Body):
    status: str


class Join(_Body):
    name: str
    recover: bool = False


class Vote(_Body):
    """A vote names the displayed side (``left``/``right``/``tie``) and the order it was shown in."""

    pair_id: str
    choice: str
    displayed_order: str
    strength: int | None = None
    aspects: dict[str, Any] = {}
    rationale: str = ""
    reason: str = ""  # an older client's name for the rationale
    started_at: int | float | None = None
    request_id: str | None = None
    edit: bool = False


class Undo(_Body):
    event_id: int | None = None
    request_id: str | None = None


B = TypeVar("B", bound=_Body)


def _validated(model: type[B], data: dict[str, Any]) -> B:
    """``data`` as ``model`` (a null counts as absent), or the first problem in the API's words."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as err:
        errors = err.errors()
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            raise Invalid(f"Unknown field(s): {', '.join(unknown)}.",
                          hint=f"Allowed fields: {', '.join(sorted(model.model_fields))}.") from None
        first = errors[0]
        field = ".".join(map(str, first["loc"][:1]))
        if first["type"] == "missing":
            raise Invalid(f"Field '{field}' is required.", hint="See docs/labeling.md for the request bodies.") from None
        raise Invalid(f"Field '{field}' has the wrong type ({type(data.get(field)).__name__}).",
                      hint="See docs/labeling.md for the request bodies.") from None


async def _body(request: Request, model: type[B], max_depth: int) -> B:
    """The request's JSON body as ``model``, bounded first (depth, valid Unicode) and then typed."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Invalid(f"The request body is not valid JSON ({err}).", hint="Send a JSON object, e.g. {\"pair_id\": ..., \"choice\": \"left\"}.") from None
    except RecursionError:
        raise Invalid(f"The request body is nested more than {max_depth} levels deep.", hint="Send a flat JSON object.") from None
    _check_value(data, max_depth)
    if not isinstance(data, dict):
        raise Invalid(f"The request body must be a JSON object, got {type(data).__name__}.", hint="Wrap the fields in {...}.")
    return _validated(model, data)


class _Api:
    """What every route needs: the store, the settings, and the role, token and timing checks."""

    def __init__(self, labeling_for: Callable[[], LabelingStore], settings: Settings) -> None:
        self.labeling_for = labeling_for
        self.settings = settings

    def is_owner(self, request: Request) -> bool:
        return role_of(self.settings, request_user(request)) == OWNER

    def owner_only(self, request: Request, what: str) -> None:
        require_owner(self.settings, request_user(request), what)

    def as_self(self, request: Request, annotator: str) -> None:
        """Refuse an annotator login acting for someone else."""
        user = request_user(request)
        if not self.is_owner(request) and annotator.strip() != user:
            raise Forbidden(f"You are logged in as '{user}' and cannot act as annotator '{annotator[:NAME_SHOWN]}'.",
                            hint=f"Use your own name, '{user}', in the URL and when joining.")

    def session_for(self, request: Request, labeling: LabelingStore, session: str) -> SessionInfo:
        info = labeling.session(session)
        require_assigned(self.settings, request_user(request), info)
        return info

    async def body(self, request: Request, model: type[B]) -> B:
        return await _body(request, model, self.settings.max_json_depth)

    async def call(self, fn: Callable[[], Any], status: int | Callable[[Any], int] = 200, *, inline: bool = False) -> JSONResponse:
        """Run ``fn`` off the event loop, or on it when ``inline``; ``Server-Timing`` reports its time.

        The per-vote calls (next, item, vote, undo: one indexed read or one small durable write,
        ~1 ms) run inline: handing them to the thread pool cost more than the work (20 annotators:
        2.7 ms CPU per vote and a 116 ms round-trip p99 through the pool, 1.0 ms and 47 ms inline).
        Session creation, statistics and listings stay in the pool so a slow one never stalls votes.
        ``status`` may be a function of the result (a join that recovers a token is 200, not 201).
        """
        t0 = time.perf_counter()
        try:
            result = fn() if inline else await run_in_threadpool(fn)
            response = JSONResponse(result, status_code=status(result) if callable(status) else status)
        except WorkbenchError as err:
            response = _error(err)
        response.headers["server-timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.2f}"
        return response

    def authed(self, request: Request, session: str, annotator: str) -> LabelingStore:
        """The store, once the login may act as ``annotator`` here and the token is theirs.

        A wrong token counts toward the client's back-off (``LoginThrottle``), so tokens
        cannot be guessed at speed.
        """
        self.as_self(request, annotator)
        labeling = self.labeling_for()
        if not self.is_owner(request):  # the owner may open every session: no read needed on the per-vote path
            self.session_for(request, labeling, session)
        throttle, client = request.scope.get(GUARD_KEY), client_of(request.scope)
        try:
            labeling.authenticate(session, annotator, request.headers.get(TOKEN_HEADER))
        except Forbidden:
            if throttle is not None:
                throttle.failed(client, "token")
            raise
        if throttle is not None:
            throttle.succeeded(client, "token")
        return labeling


def _refusing(handler: Callable[..., Awaitable[JSONResponse]]) -> Callable[..., Awaitable[JSONResponse]]:
    """A route whose checks before ``call`` (owner only, the body) answer as JSON errors too."""
    @functools.wraps(handler)
    async def route(*args: Any, **kwargs: Any) -> JSONResponse:
        try:
            return await handler(*args, **kwargs)
        except WorkbenchError as err:
            return _error(err)
    return route


def _next_view(labeling: LabelingStore, session: str, annotator: str) -> dict[str, Any]:
    """The next item; ``waiting`` when pairs are left but all are being judged by others now."""
    item = labeling.next_item(session, annotator)
    left = labeling.progress(session, annotator).remaining if item is None else 1
    return {"done": left == 0, "waiting": item is None and left > 0, "item": item.to_dict() if item else None}


def _session_routes(api: _Api, router: APIRouter) -> None:
    """Sessions: list, create, read, the owner's statistics, close/reopen."""

    @router.get("/me")
    async def me(request: Request) -> JSONResponse:
        """Who this request is logged in as (None without logins) and their role: the page locks the name to it."""
        user = request_user(request)
        return JSONResponse({"user": user, "role": role_of(api.settings, user)})

    @router.get("/sessions")
    async def list_sessions(request: Request) -> JSONResponse:
        def run() -> dict[str, Any]:
            owner, user = api.is_owner(request), request_user(request)
            return {"sessions": [s.to_dict(gold=owner) for s in api.labeling_for().list_sessions() if owner or s.assigned_to(user)]}
        return await api.call(run)

    @router.post("/sessions")
    @_refusing
    async def create_session(request: Request) -> JSONResponse:
        api.owner_only(request, "create labeling sessions")
        data = await api.body(request, NewSession)
        return await api.call(lambda: api.labeling_for().create_session(data.name, data.dataset, data.settings).to_dict(), 201)

    @router.get("/sessions/{session}")
    async def get_session(session: str, request: Request) -> JSONResponse:
        def run() -> dict[str, Any]:
            labeling = api.labeling_for()
            info = api.session_for(request, labeling, session)
            if not api.is_owner(request):  # an annotator: no gold answers, no tally of others' votes
                return info.to_dict(gold=False)
            return {**info.to_dict(), "progress": labeling.session_progress(session)}
        return await api.call(run)

    @router.get("/sessions/{session}/stats")
    @_refusing
    async def get_stats(session: str, request: Request) -> JSONResponse:
        """The owner's view of whether labeling can stop and the verdict so far (annotators stay blind to it)."""
        api.owner_only(request, "see a session's verdict")
        from workbench.labeling.verdict import session_stats  # scipy and the statistics: only when asked

        def run() -> dict[str, Any]:
            labeling = api.labeling_for()
            api.session_for(request, labeling, session)
            return session_stats(labeling, session)
        return await api.call(run)

    @router.post("/sessions/{session}/status")
    @_refusing
    async def set_status(session: str, request: Request) -> JSONResponse:
        api.owner_only(request, "close or reopen labeling sessions")
        data = await api.body(request, NewStatus)
        return await api.call(lambda: api.labeling_for().set_status(session, data.status).to_dict())


def _annotator_routes(api: _Api, router: APIRouter) -> None:
    """One annotator's queue: join, next item, an item, history, progress, vote, undo."""

    @router.post(ANNOTATORS)
    @_refusing
    async def join(session: str, request: Request) -> JSONResponse:
        data = await api.body(request, Join)

        def run() -> dict[str, Any]:
            labeling = api.labeling_for()
            api.as_self(request, data.name)  # so only that annotator's login, or the owner, gets past here
            api.session_for(request, labeling, session)
            resumed = data.name.strip() in labeling.annotators(session)
            if resumed and not data.recover:
                raise Conflict(f"'{data.name[:NAME_SHOWN]}' has already joined session '{session}'.",
                               hint="Use the token you got then, join under another name, or (logged in as that annotator, "
                                    "or as the owner) join again with \"recover\": true to get the token back.")
            return {"session": session, "annotator": data.name.strip(), "token": labeling.join(session, data.name),
                    "resumed": resumed}
        return await api.call(run, lambda result: 200 if result["resumed"] else 201)

    @router.get(ANNOTATORS + "/{annotator}/next")
    async def next_item(session: str, annotator: str, request: Request) -> JSONResponse:
        return await api.call(lambda: _next_view(api.authed(request, session, annotator), session, annotator), inline=True)

    @router.get(ANNOTATORS + "/{annotator}/items/{pair_id}")
    async def item(session: str, annotator: str, pair_id: str, request: Request) -> JSONResponse:
        return await api.call(lambda: api.authed(request, session, annotator).item(session, annotator, pair_id).to_dict(),
                              inline=True)

    @router.get(ANNOTATORS + "/{annotator}/history")
    async def history(session: str, annotator: str, request: Request) -> JSONResponse:
        return await api.call(lambda: {"history": api.authed(request, session, annotator).history(session, annotator)})

    @router.get(ANNOTATORS + "/{annotator}/progress")
    async def progress(session: str, annotator: str, request: Request) -> JSONResponse:
        def run() -> dict[str, Any]:
            p = api.authed(request, session, annotator).progress(session, annotator)
            return {**asdict(p), "remaining": p.remaining}
        return await api.call(run)

    @router.post(ANNOTATORS + "/{annotator}/votes")
    @_refusing
    async def vote(session: str, annotator: str, request: Request) -> JSONResponse:
        data = await api.body(request, Vote)

        def run() -> dict[str, Any]:
            labeling = api.authed(request, session, annotator)
            ack = labeling.vote_choice(
                session, annotator, data.pair_id, data.choice, data.displayed_order, aspects=data.aspects,
                strength=data.strength, rationale=data.rationale or data.reason, started_at=data.started_at,
                request_id=data.request_id, edit=data.edit,
            )
            return {"ack": asdict(ack), "next": _next_view(labeling, session, annotator)}
        return await api.call(run, inline=True)

    @router.post(ANNOTATORS + "/{annotator}/undo")
    @_refusing
    async def undo(session: str, annotator: str, request: Request) -> JSONResponse:
        data = await api.body(request, Undo)

        def run() -> dict[str, Any]:
            labeling = api.authed(request, session, annotator)
            ack = labeling.undo(session, annotator, data.event_id, request_id=data.request_id)
            return {"ack": asdict(ack), "next": _next_view(labeling, session, annotator)}
        return await api.call(run, inline=True)


def build_router(labeling_for: Callable[[], LabelingStore], settings: Settings) -> APIRouter:
    """The API routes; ``labeling_for()`` gives the process's LabelingStore (opened lazily).

    ``settings`` says who is an annotator (``role_of``) and how deep a body may nest.
    """
    api = _Api(labeling_for, settings)
    router = APIRouter(prefix=PREFIX, tags=[FOR_ANNOTATORS])  # every route checks token, role and assignment itself
    _session_routes(api, router)
    _annotator_routes(api, router)
    return router
