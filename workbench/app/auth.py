"""HTTP Basic auth for every route of the one server (Gradio, Panel, API, websockets).

It sits in front of the whole ASGI app, so no route can be forgotten; credentials are
compared in constant time so a timing side channel does not leak the password.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

REALM = "Preference Workbench"


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


class BasicAuthMiddleware:
    """Answer 401 (HTTP) or close the socket (websocket) unless the request has the credentials."""

    def __init__(self, app: ASGIApp, credentials: tuple[str, str]) -> None:
        self.app = app
        self.user, self.password = credentials

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if credentials_match(header, self.user, self.password):
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
