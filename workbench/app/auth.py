"""HTTP Basic auth for every route of the one server (Gradio, Panel, API, websockets).

It sits in front of the whole ASGI app, so no route can be forgotten; credentials are
compared in constant time so a timing side channel does not leak the password.

Several logins can be accepted (the owner's ``--auth`` and named annotators from a users
file). The middleware records who logged in under ``scope["workbench.user"]``; the Gradio
app reads it back as ``gr.Request.username`` (``gradio_user``) and the labeling API uses it
so an annotator can only vote as, and read the votes of, themselves.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any

from workbench.app.limits import GUARD_KEY, client_of, too_many
from workbench.errors import PermissionDenied

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

REALM = "Preference Workbench"
USER_KEY = "workbench.user"
# Paths no annotator login may open (HTTP and websockets), with what they are in the refusal.
OWNER_ONLY_PREFIXES = {
    "/panel": "the Panel views are for the workbench owner",
    "/gradio_api/upload": "uploading files is for the workbench owner (annotators cannot import datasets)",
}

# The two roles, defined here and nowhere else. The owner is the ``--auth`` login, or whoever
# uses a server that has no logins (loopback only); an annotator is a login from the users
# file and may only label in sessions, as themselves, and see their own progress.
OWNER = "owner"
ANNOTATOR = "annotator"


def role_of(settings: Any, user: str | None) -> str:
    """The role of login ``user`` (None: no login, which only a loopback server without auth allows)."""
    return ANNOTATOR if user is not None and user in settings.users else OWNER


def require_owner(settings: Any, user: str | None, action: str) -> None:
    """Refuse ``action`` (in the user's words, e.g. "import a dataset") unless ``user`` is the owner."""
    if role_of(settings, user) != OWNER:
        raise PermissionDenied(f"You are logged in as annotator '{user}'; only the workbench owner can {action}.",
                               hint="Annotators can label in the sessions they are assigned to; ask the owner for the rest.")


def require_assigned(settings: Any, user: str | None, session: Any) -> None:
    """Refuse an annotator labeling in (or reading) a session they are not assigned to.

    Assigned means: the session's settings list the annotator, or the list is empty and the
    session is open. The owner may open every session.
    """
    if role_of(settings, user) == OWNER or session.assigned_to(user):
        return
    raise PermissionDenied(f"You are logged in as annotator '{user}', who is not assigned to labeling session '{session.name}'.",
                           hint="Label in one of your own sessions, or ask the owner to add you to this one.")


def credentials_match(header: bytes | None, user: str, password: str) -> bool:
    """True when an ``Authorization: Basic ...`` header carries exactly ``user:password``."""
    if not header or not header[:6].lower() == b"basic ":
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, sep, given_password = given.partition(b":")
    # Compare both parts every time (no short-circuit) so timing says nothing about which failed.
    user_ok = hmac.compare_digest(given_user, user.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password, password.encode("utf-8"))
    return bool(sep) & user_ok & password_ok


def claimed_login(header: bytes | None) -> str | None:
    """The login name an ``Authorization: Basic ...`` header claims (its password not checked), else None."""
    if not header or not header[:6].lower() == b"basic ":
        return None
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return given.partition(b":")[0].decode("utf-8", "replace")


def login_of(header: bytes | None, logins: Mapping[str, str]) -> str | None:
    """The login name whose credentials the ``Authorization`` header carries, else None."""
    name = claimed_login(header)
    if name is None:
        return None
    # An unknown name is still checked against a dummy so the timing does not tell which names exist.
    user, password = (name, logins[name]) if name in logins else ("\0", "\0")
    return name if credentials_match(header, user, password) and name in logins else None


def request_user(request: Any) -> str | None:
    """Who logged in for this Starlette/FastAPI request (None when the server has no logins)."""
    return request.scope.get(USER_KEY)


def login_name(request: Any) -> str | None:
    """The logged-in user of a Gradio event's ``gr.Request`` (None when the server has no logins)."""
    return (getattr(request, "username", None) or None) if request is not None else None


def gradio_user(request: Any) -> str | None:
    """``auth_dependency`` for Gradio: the login recorded by the middleware becomes ``request.username``."""
    return request_user(request)


async def _refuse(scope: Scope, send: Callable[[Any], Awaitable[None]], status: int, body: bytes) -> None:
    """Answer ``status`` with a plain-text ``body`` (or close a websocket before accepting it)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BasicAuthMiddleware:
    """Answer 401 (HTTP) or close the socket (websocket) unless the request has valid credentials.

    ``credentials`` is one ``(user, password)`` or a mapping of several logins. Logins named in
    ``annotators`` are refused (403) under ``OWNER_ONLY_PREFIXES``: the Panel views are owner tools,
    and only the owner may import, so only the owner may upload.
    """

    def __init__(self, app: ASGIApp, credentials: tuple[str, str] | Mapping[str, str], annotators: Collection[str] = ()) -> None:
        self.app = app
        self.logins = dict(credentials) if isinstance(credentials, Mapping) else {credentials[0]: credentials[1]}
        self.annotators = frozenset(annotators)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        throttle, client, claimed = scope.get(GUARD_KEY), client_of(scope), claimed_login(header)
        # Streaks are kept for real logins only, so a spray of made-up names cannot push them out.
        claimed = claimed if claimed in self.logins else None
        if throttle is not None and claimed is not None:
            # A locked account is refused before its password is checked: guessing it is slowed
            # wherever the guesses come from, and the other logins on that address go on.
            wait = throttle.retry_after(client, claimed)
            if wait > 0:
                await too_many(scope, send, wait, f"login '{claimed}'")
                return
        user = login_of(header, self.logins)
        if throttle is not None and header is not None:  # a first request without credentials is the browser asking
            (throttle.succeeded if user is not None else throttle.failed)(client, "login", claimed)
        if user is not None and user in self.annotators:
            path = scope.get("path", "")
            what = next((what for prefix, what in OWNER_ONLY_PREFIXES.items() if path.startswith(prefix)), None)
            if what is not None:
                await _refuse(scope, send, 403, f"Logged in as annotator '{user}': {what}.\n".encode())
                return
        if user is not None:
            scope[USER_KEY] = user
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the client sees HTTP 403
            return
        body = b"Login required: this Preference Workbench server is protected by a user name and password.\n"
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        })
        await send({"type": "http.response.body", "body": body})
