"""The labeling HTTP API: join a session, fetch the next pair, vote, undo, read history.

Mounted on the main app (through the ``api_routes`` hook) and by the standalone labeling
server. Each annotator gets a secret token when joining and sends it as
``X-Annotator-Token``; a request for another annotator's queue is refused (403). Items are
served in displayed order (``left``/``right``) and votes name the displayed side, so a
client cannot mix up the randomised order.

When the server has named annotator logins (``settings.users``), a request logged in as an
annotator may only join, read and vote under that same name (the token is still required),
and may not create, close or reopen sessions; the owner login (``--auth``) may. A vote is answered only after it is committed,
and the answer carries the next item, so "vote to next pair" is one round trip.

Every refusal is JSON ``{"error", "hint"}`` with 400/403/404/409/422, and changes nothing.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from workbench.app.auth import request_user
from workbench.errors import WorkbenchError
from workbench.labeling.errors import Conflict, Forbidden, Invalid, LabelingError
from workbench.labeling.sessions import LabelingStore, to_canonical

PREFIX = "/api/labeling"
TOKEN_HEADER = "x-annotator-token"
CHOICES = ("left", "right", "tie", "both_bad", "skip")
NAME_SHOWN = 40
VOTE_FIELDS = {"pair_id", "choice", "strength", "aspects", "rationale", "reason", "displayed_order", "started_at",
               "request_id", "edit"}


def _error(err: WorkbenchError) -> JSONResponse:
    status = err.status if isinstance(err, LabelingError) else 400
    return JSONResponse({"error": err.message, "hint": err.hint}, status_code=status)


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Invalid(f"The request body is not valid JSON ({err}).", hint="Send a JSON object, e.g. {\"pair_id\": ..., \"choice\": \"left\"}.") from None
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


def build_router(labeling_for: Callable[[], LabelingStore], annotator_logins: Collection[str] = ()) -> APIRouter:
    """The API routes; ``labeling_for()`` gives the process's LabelingStore (opened lazily).

    ``annotator_logins`` are the login names that are annotators (not the owner): requests
    logged in under one of them are held to that annotator's own queue.
    """
    router = APIRouter(prefix=PREFIX)
    annotator_logins = frozenset(annotator_logins)

    def check_login(request: Request, annotator: str | None = None) -> None:
        """Refuse an annotator login acting for someone else (``annotator=None``: owner-only action)."""
        user = request_user(request)
        if user is None or user not in annotator_logins:
            return
        if annotator is None:
            raise Forbidden(f"You are logged in as annotator '{user}'; only the workbench owner can do this.",
                            hint="Ask the owner (the --auth login) to create, close or reopen sessions.")
        if annotator.strip() != user:
            raise Forbidden(f"You are logged in as '{user}' and cannot act as annotator '{annotator[:NAME_SHOWN]}'.",
                            hint=f"Use your own name, '{user}', in the URL and when joining.")

    async def call(fn: Callable[[], Any], status: int = 200, *, inline: bool = False) -> JSONResponse:
        """Run ``fn`` off the event loop, or on it when ``inline``; ``Server-Timing`` reports its time.

        The per-vote calls (next, item, vote, undo: one indexed read or one small durable write,
        ~1 ms) run inline: handing them to the thread pool cost more than the work (20 annotators:
        2.7 ms CPU per vote and a 116 ms round-trip p99 through the pool, 1.0 ms and 47 ms inline).
        Session creation, statistics and listings stay in the pool so a slow one never stalls votes.
        """
        t0 = time.perf_counter()
        try:
            response = JSONResponse(fn() if inline else await run_in_threadpool(fn), status_code=status)
        except WorkbenchError as err:
            response = _error(err)
        response.headers["server-timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.2f}"
        return response

    def authed(request: Request, session: str, annotator: str) -> LabelingStore:
        check_login(request, annotator)
        labeling = labeling_for()
        labeling.authenticate(session, annotator, request.headers.get(TOKEN_HEADER))
        return labeling

    def next_view(labeling: LabelingStore, session: str, annotator: str) -> dict[str, Any]:
        item = labeling.next_item(session, annotator)
        return {"done": item is None, "item": item.to_dict() if item else None}

    @router.get("/sessions")
    async def list_sessions() -> JSONResponse:
        return await call(lambda: {"sessions": [s.to_dict() for s in labeling_for().list_sessions()]})

    @router.post("/sessions")
    async def create_session(request: Request) -> JSONResponse:
        try:
            check_login(request)
            data = await _body(request, {"name", "dataset", "settings"})
        except WorkbenchError as err:
            return _error(err)
        return await call(lambda: labeling_for().create_session(
            _typed(data, "name", str, required=True), _typed(data, "dataset", str, required=True),
            _typed(data, "settings", dict, {})).to_dict(), 201)

    @router.get("/sessions/{session}")
    async def get_session(session: str) -> JSONResponse:
        def run() -> dict[str, Any]:
            labeling = labeling_for()
            return {**labeling.session(session).to_dict(), "progress": labeling.session_progress(session)}
        return await call(run)

    @router.post("/sessions/{session}/status")
    async def set_status(session: str, request: Request) -> JSONResponse:
        try:
            check_login(request)
            data = await _body(request, {"status"})
        except WorkbenchError as err:
            return _error(err)
        return await call(lambda: labeling_for().set_status(session, _typed(data, "status", str, required=True)).to_dict())

    @router.post("/sessions/{session}/annotators")
    async def join(session: str, request: Request) -> JSONResponse:
        try:
            data = await _body(request, {"name"})
        except WorkbenchError as err:
            return _error(err)

        def run() -> dict[str, Any]:
            labeling = labeling_for()
            name = _typed(data, "name", str, required=True)
            check_login(request, name)
            if name.strip() in labeling.annotators(session):
                raise Conflict(f"'{name}' has already joined session '{session}'.",
                               hint="Use the token you got then, or join under another name.")
            return {"session": session, "annotator": name.strip(), "token": labeling.join(session, name)}
        return await call(run, 201)

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
        try:
            data = await _body(request, VOTE_FIELDS)
        except WorkbenchError as err:
            return _error(err)

        def run() -> dict[str, Any]:
            labeling = authed(request, session, annotator)
            pair_id = _typed(data, "pair_id", str, required=True)
            choice = _typed(data, "choice", str, required=True)
            if choice not in CHOICES:
                raise Invalid(f"Unknown choice {choice[:40]!r}.", hint=f"Choices are: {', '.join(CHOICES)}.")
            order = _typed(data, "displayed_order", str, required=True)
            if order not in ("AB", "BA"):
                raise Invalid(f"displayed_order must be 'AB' or 'BA', got {order[:10]!r}.", hint="Send back the item's displayed_order.")
            aspects = _typed(data, "aspects", dict, {})
            bad = {k: v for k, v in aspects.items() if v not in ("left", "right", "tie")}
            if bad:
                raise Invalid(f"Aspect '{next(iter(bad))}' has choice {str(next(iter(bad.values())))[:20]!r}.",
                              hint="Aspect choices are left, right or tie.")
            rationale = _typed(data, "rationale", str, "") or _typed(data, "reason", str, "")
            if choice == "skip" and not rationale.strip():
                raise Invalid("A skip needs a reason.", hint="Send e.g. {\"choice\": \"skip\", \"reason\": \"not my language\"}.")
            ack = labeling.vote(
                session, annotator, pair_id, to_canonical(choice, order), strength=_typed(data, "strength", int),
                aspects={k: to_canonical(v, order) for k, v in aspects.items()}, rationale=rationale,
                displayed_order=order, started_at=_typed(data, "started_at", (int, float)),
                request_id=_typed(data, "request_id", str), edit=bool(_typed(data, "edit", bool, False)),
            )
            return {"ack": asdict(ack), "next": next_view(labeling, session, annotator)}
        return await call(run, inline=True)

    @router.post("/sessions/{session}/annotators/{annotator}/undo")
    async def undo(session: str, annotator: str, request: Request) -> JSONResponse:
        try:
            data = await _body(request, {"event_id", "request_id"})
        except WorkbenchError as err:
            return _error(err)

        def run() -> dict[str, Any]:
            labeling = authed(request, session, annotator)
            ack = labeling.undo(session, annotator, _typed(data, "event_id", int), request_id=_typed(data, "request_id", str))
            return {"ack": asdict(ack), "next": next_view(labeling, session, annotator)}
        return await call(run, inline=True)

    return router
