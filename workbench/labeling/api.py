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

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
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
VOTE_FIELDS = {"pair_id", "choice", "strength", "aspects", "rationale", "reason", "displayed_order", "started_at",
               "request_id", "edit"}


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


async def _body(request: Request, allowed: set[str], max_depth: int) -> dict[str, Any]:
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
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise Invalid(f"Unknown field(s): {', '.join(unknown)}.", hint=f"Allowed fields: {', '.join(sorted(allowed))}.")
    return data


def _typed(data: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
    if key not in data or data[key] is None:
        if required:
            raise Invalid(f"Field '{key}' is required.", hint="See docs/labeling.md for the vote payload.")
        return default
    value = data[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise Invalid(f"Field '{key}' must not be true/false.", hint="See docs/labeling.md for the vote payload.")
    if not isinstance(value, types):
        raise Invalid(f"Field '{key}' has the wrong type ({type(value).__name__}).", hint="See docs/labeling.md for the vote payload.")
    return value


def build_router(labeling_for: Callable[[], LabelingStore], settings: Settings) -> APIRouter:
    """The API routes; ``labeling_for()`` gives the process's LabelingStore (opened lazily).

    ``settings`` says who is an annotator (``role_of``) and how deep a body may nest.
    """
    router = APIRouter(prefix=PREFIX, tags=[FOR_ANNOTATORS])  # every route checks token, role and assignment itself
    depth = settings.max_json_depth

    def is_owner(request: Request) -> bool:
        return role_of(settings, request_user(request)) == OWNER

    def as_self(request: Request, annotator: str) -> None:
        """Refuse an annotator login acting for someone else."""
        user = request_user(request)
        if not is_owner(request) and annotator.strip() != user:
            raise Forbidden(f"You are logged in as '{user}' and cannot act as annotator '{annotator[:NAME_SHOWN]}'.",
                            hint=f"Use your own name, '{user}', in the URL and when joining.")

    def session_for(request: Request, labeling: LabelingStore, session: str) -> SessionInfo:
        info = labeling.session(session)
        require_assigned(settings, request_user(request), info)
        return info

    async def call(fn: Callable[[], Any], status: int | Callable[[Any], int] = 200, *, inline: bool = False) -> JSONResponse:
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

    async def parsed(request: Request, allowed: set[str]) -> dict[str, Any] | JSONResponse:
        try:
            return await _body(request, allowed, depth)
        except WorkbenchError as err:
            return _error(err)

    def authed(request: Request, session: str, annotator: str) -> LabelingStore:
        """The store, once the login may act as ``annotator`` here and the token is theirs.

        A wrong token counts toward the client's back-off (``LoginThrottle``), so tokens
        cannot be guessed at speed.
        """
        as_self(request, annotator)
        labeling = labeling_for()
        if not is_owner(request):  # the owner may open every session: no read needed on the per-vote path
            session_for(request, labeling, session)
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

    def next_view(labeling: LabelingStore, session: str, annotator: str) -> dict[str, Any]:
        """The next item; ``waiting`` when pairs are left but all are being judged by others now."""
        item = labeling.next_item(session, annotator)
        left = labeling.progress(session, annotator).remaining if item is None else 1
        return {"done": left == 0, "waiting": item is None and left > 0, "item": item.to_dict() if item else None}

    @router.get("/me")
    async def me(request: Request) -> JSONResponse:
        """Who this request is logged in as (None without logins) and their role: the page locks the name to it."""
        user = request_user(request)
        return JSONResponse({"user": user, "role": role_of(settings, user)})

    @router.get("/sessions")
    async def list_sessions(request: Request) -> JSONResponse:
        def run() -> dict[str, Any]:
            owner, user = is_owner(request), request_user(request)
            return {"sessions": [s.to_dict(gold=owner) for s in labeling_for().list_sessions() if owner or s.assigned_to(user)]}
        return await call(run)

    @router.post("/sessions")
    async def create_session(request: Request) -> JSONResponse:
        try:
            require_owner(settings, request_user(request), "create labeling sessions")
        except WorkbenchError as err:
            return _error(err)
        data = await parsed(request, {"name", "dataset", "settings"})
        if isinstance(data, JSONResponse):
            return data
        return await call(lambda: labeling_for().create_session(
            _typed(data, "name", str, required=True), _typed(data, "dataset", str, required=True),
            _typed(data, "settings", dict, {})).to_dict(), 201)

    @router.get("/sessions/{session}")
    async def get_session(session: str, request: Request) -> JSONResponse:
        def run() -> dict[str, Any]:
            labeling = labeling_for()
            info = session_for(request, labeling, session)
            if not is_owner(request):  # an annotator: no gold answers, no tally of others' votes
                return info.to_dict(gold=False)
            return {**info.to_dict(), "progress": labeling.session_progress(session)}
        return await call(run)

    @router.get("/sessions/{session}/stats")
    async def get_stats(session: str, request: Request) -> JSONResponse:
        """The owner's view of whether labeling can stop and the verdict so far (annotators stay blind to it)."""
        try:
            require_owner(settings, request_user(request), "see a session's verdict")
        except WorkbenchError as err:
            return _error(err)
        from workbench.labeling.verdict import session_stats  # scipy and the statistics: only when asked

        def run() -> dict[str, Any]:
            labeling = labeling_for()
            session_for(request, labeling, session)
            return session_stats(labeling, session)
        return await call(run)

    @router.post("/sessions/{session}/status")
    async def set_status(session: str, request: Request) -> JSONResponse:
        try:
            require_owner(settings, request_user(request), "close or reopen labeling sessions")
        except WorkbenchError as err:
            return _error(err)
        data = await parsed(request, {"status"})
        if isinstance(data, JSONResponse):
            return data
        return await call(lambda: labeling_for().set_status(session, _typed(data, "status", str, required=True)).to_dict())

    @router.post("/sessions/{session}/annotators")
    async def join(session: str, request: Request) -> JSONResponse:
        data = await parsed(request, {"name", "recover"})
        if isinstance(data, JSONResponse):
            return data

        def run() -> dict[str, Any]:
            labeling = labeling_for()
            name = _typed(data, "name", str, required=True)
            as_self(request, name)  # so only that annotator's login, or the owner, gets past here
            session_for(request, labeling, session)
            resumed = name.strip() in labeling.annotators(session)
            if resumed and not _typed(data, "recover", bool, False):
                raise Conflict(f"'{name[:NAME_SHOWN]}' has already joined session '{session}'.",
                               hint="Use the token you got then, join under another name, or (logged in as that annotator, "
                                    "or as the owner) join again with \"recover\": true to get the token back.")
            return {"session": session, "annotator": name.strip(), "token": labeling.join(session, name), "resumed": resumed}
        return await call(run, lambda result: 200 if result["resumed"] else 201)

    @router.get("/sessions/{session}/annotators/{annotator}/next")
    async def next_item(session: str, annotator: str, request: Request) -> JSONResponse:
        return await call(lambda: next_view(authed(request, session, annotator), session, annotator), inline=True)

    @router.get("/sessions/{session}/annotators/{annotator}/items/{pair_id}")
    async def item(session: str, annotator: str, pair_id: str, request: Request) -> JSONResponse:
        return await call(lambda: authed(request, session, annotator).item(session, annotator, pair_id).to_dict(), inline=True)

    @router.get("/sessions/{session}/annotators/{annotator}/history")
    async def history(session: str, annotator: str, request: Request) -> JSONResponse:
        return await call(lambda: {"history": authed(request, session, annotator).history(session, annotator)})

    @router.get("/sessions/{session}/annotators/{annotator}/progress")
    async def progress(session: str, annotator: str, request: Request) -> JSONResponse:
        def run() -> dict[str, Any]:
            p = authed(request, session, annotator).progress(session, annotator)
            return {**asdict(p), "remaining": p.remaining}
        return await call(run)

    @router.post("/sessions/{session}/annotators/{annotator}/votes")
    async def vote(session: str, annotator: str, request: Request) -> JSONResponse:
        data = await parsed(request, VOTE_FIELDS)
        if isinstance(data, JSONResponse):
            return data

        def run() -> dict[str, Any]:
            labeling = authed(request, session, annotator)
            ack = labeling.vote_choice(
                session, annotator, _typed(data, "pair_id", str, required=True), _typed(data, "choice", str, required=True),
                _typed(data, "displayed_order", str, required=True), aspects=_typed(data, "aspects", dict, {}),
                strength=_typed(data, "strength", int),
                rationale=_typed(data, "rationale", str, "") or _typed(data, "reason", str, ""),
                started_at=_typed(data, "started_at", (int, float)), request_id=_typed(data, "request_id", str),
                edit=bool(_typed(data, "edit", bool, False)),
            )
            return {"ack": asdict(ack), "next": next_view(labeling, session, annotator)}
        return await call(run, inline=True)

    @router.post("/sessions/{session}/annotators/{annotator}/undo")
    async def undo(session: str, annotator: str, request: Request) -> JSONResponse:
        data = await parsed(request, {"event_id", "request_id"})
        if isinstance(data, JSONResponse):
            return data

        def run() -> dict[str, Any]:
            labeling = authed(request, session, annotator)
            ack = labeling.undo(session, annotator, _typed(data, "event_id", int), request_id=_typed(data, "request_id", str))
            return {"ack": asdict(ack), "next": next_view(labeling, session, annotator)}
        return await call(run, inline=True)

    return router
