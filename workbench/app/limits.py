"""Bounds on every HTTP request, checked before any route sees it: body size and login back-off.

``RequestGuard`` sits outermost in the ASGI stack (before the login check), so an oversized
body is refused from its ``Content-Length`` before a byte of it is parsed, and a client that
keeps sending wrong passwords or annotator tokens is answered 429 without any check running.
``LoginThrottle`` counts wrong passwords per account and per address, wrong tokens per address;
the Basic-auth middleware (which also refuses a locked account) and the labeling API's token
check both report to it (through ``scope[GUARD_KEY]``).
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]

GUARD_KEY = "workbench.throttle"
# Gradio's file upload streams to disk: bounded by ``max_upload`` (a dataset may be GBs), not ``max_body``;
# a chunked upload is counted by Gradio itself (``max_file_size``, set from the same setting).
UPLOAD_PREFIXES = ("/gradio_api/upload",)
MAX_CLIENTS = 10_000  # throttle entries kept; the oldest are forgotten first


class LoginThrottle:
    """Back-off per account and per address: after ``allowed`` failures, lock out for 1 s, 2 s, 4 s … up to ``max_lockout_s``.

    A wrong password counts against the account it names (wherever it comes from) and against
    the address it comes from; a success clears only its own account, so another login from the
    same address cannot wipe the streak of guesses at the owner's password. A locked account is
    refused without checking the password (even a right one), while the other accounts on that
    address go on. An address is locked only after ``address_allowed`` wrong logins (guessing
    across many names). Wrong annotator tokens are counted per address apart (``kind="token"``).
    """

    def __init__(self, allowed: int = 10, max_lockout_s: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 address_allowed: int = 50) -> None:
        self.allowed = allowed
        self.address_allowed = address_allowed
        self.max_lockout_s = max_lockout_s
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _wait(self, key: tuple[str, str], allowed: int) -> float:
        count, last = self._failures.get(key, (0, 0.0))
        lockout = 0.0 if count < allowed else min(2.0 ** (count - allowed), self.max_lockout_s)
        return max(0.0, last + lockout - self.clock())

    def retry_after(self, client: str, account: str | None = None) -> float:
        """Seconds until ``client`` (and, when given, login ``account``) may try again (0: not locked out)."""
        with self._lock:
            waits = [self._wait(("login", client), self.address_allowed), self._wait(("token", client), self.allowed)]
            if account is not None:
                waits.append(self._wait(("account", account), self.allowed))
        return max(waits)

    def _count(self, key: tuple[str, str]) -> None:
        count, last = self._failures.pop(key, (0, 0.0))
        if count and self.clock() - last > 2 * self.max_lockout_s:
            count = 0  # an old streak is forgiven
        self._failures[key] = (count + 1, self.clock())

    def failed(self, client: str, kind: str = "login", account: str | None = None) -> None:
        """Count a wrong login (against ``account`` and ``client``) or a wrong token (``kind="token"``, per client)."""
        with self._lock:
            self._count((kind, client))
            if kind == "login" and account is not None:
                self._count(("account", account))
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def succeeded(self, client: str, kind: str = "login", account: str | None = None) -> None:
        """A right login clears its own account's streak; a right token clears the client's token streak."""
        key = ("account", account) if kind == "login" else (kind, client)
        if key in self._failures:  # the common case, a clean account, takes no lock
            with self._lock:
                self._failures.pop(key, None)


async def too_many(scope: Scope, send: Send, wait: float, what: str = "your address") -> None:
    """Answer 429 with ``Retry-After`` (or close a websocket before accepting it)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await _plain(send, 429, f"Too many failed logins or tokens for {what}; try again in {wait:.0f} s.",
                 [(b"retry-after", str(max(1, round(wait))).encode())])


def client_of(scope: Scope) -> str:
    """The client address of a request (the socket peer; forwarded-for headers are not trusted)."""
    client = scope.get("client")
    return client[0] if client else "?"


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": text, "hint": None}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Refuse locked-out clients (429) and bodies over ``max_body`` bytes, uploads over ``max_upload`` (413), before anything else runs."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], throttle: LoginThrottle, max_body: int,
                 max_upload: int) -> None:
        self.app = app
        self.throttle = throttle
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[GUARD_KEY] = self.throttle
        wait = self.throttle.retry_after(client_of(scope))
        if wait > 0:
            await too_many(scope, send, wait)
            return
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            upload = scope.get("path", "").startswith(UPLOAD_PREFIXES)
            limit = self.max_upload if upload else self.max_body
            too_big = (f"The upload is larger than {limit:,} bytes (Settings.max_upload_bytes); copy the file into a data "
                       f"folder and type its path instead." if upload else f"The request body is larger than {limit:,} bytes.")
            if length is not None:
                if not length.isdigit() or int(length) > limit:
                    await _plain(send, 413, too_big)
                    return
            elif not upload and b"chunked" in headers.get(b"transfer-encoding", b""):
                body, more = b"", True
                while more:  # read the chunked body up to the limit, then hand it on whole
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body:
                        await _plain(send, 413, too_big)
                        return
                sent = False

                async def replay() -> Any:
                    nonlocal sent
                    if sent:
                        return await receive()
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.app(scope, replay, send)
                return
        await self.app(scope, receive, send)
