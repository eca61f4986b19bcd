"""Bounds on every HTTP request, checked before any route sees it: body size and login back-off.

``RequestGuard`` sits outermost in the ASGI stack (before the login check), so an oversized
body is refused from its ``Content-Length`` before a byte of it is parsed, and a client that
keeps sending wrong passwords or annotator tokens is answered 429 without any check running.
``LoginThrottle`` counts failures per client address; the Basic-auth middleware and the
labeling API's token check both report to it (through ``scope[GUARD_KEY]``).
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
# Gradio's file upload streams to disk under its own ``max_file_size``; a dataset may be GBs.
UNBOUNDED_PREFIXES = ("/gradio_api/upload",)
MAX_CLIENTS = 10_000  # throttle entries kept; the oldest are forgotten first


class LoginThrottle:
    """Per-client back-off: after ``allowed`` failures, lock out for 1 s, 2 s, 4 s … up to ``max_lockout_s``.

    Logins and annotator tokens are counted apart (``kind``), so a valid login does not wipe
    the count of wrong tokens sent with it; a success resets only its own kind. Requests from
    a locked-out client are refused without checking anything, so guessing is slowed even
    for a caller who also holds a right password.
    """

    def __init__(self, allowed: int = 10, max_lockout_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed = allowed
        self.max_lockout_s = max_lockout_s
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _lockout(self, count: int) -> float:
        return 0.0 if count < self.allowed else min(2.0 ** (count - self.allowed), self.max_lockout_s)

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: not locked out)."""
        with self._lock:
            streaks = [self._failures.get((client, kind), (0, 0.0)) for kind in ("login", "token")]
        return max(max(0.0, last + self._lockout(count) - self.clock()) for count, last in streaks)

    def failed(self, client: str, kind: str = "login") -> None:
        with self._lock:
            count, last = self._failures.pop((client, kind), (0, 0.0))
            if count and self.clock() - last > 2 * self.max_lockout_s:
                count = 0  # an old streak is forgiven
            self._failures[(client, kind)] = (count + 1, self.clock())
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def succeeded(self, client: str, kind: str = "login") -> None:
        if (client, kind) in self._failures:  # the common case, a clean client, takes no lock
            with self._lock:
                self._failures.pop((client, kind), None)


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
    """Refuse locked-out clients (429) and bodies over ``max_body`` bytes (413) before anything else runs."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], throttle: LoginThrottle, max_body: int) -> None:
        self.app = app
        self.throttle = throttle
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[GUARD_KEY] = self.throttle
        wait = self.throttle.retry_after(client_of(scope))
        if wait > 0:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _plain(send, 429, f"Too many failed logins or tokens from your address; try again in {wait:.0f} s.",
                         [(b"retry-after", str(max(1, round(wait))).encode())])
            return
        if scope["type"] == "http" and not scope.get("path", "").startswith(UNBOUNDED_PREFIXES):
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            too_big = f"The request body is larger than {self.max_body:,} bytes."
            if length is not None:
                if not length.isdigit() or int(length) > self.max_body:
                    await _plain(send, 413, too_big)
                    return
            elif b"chunked" in headers.get(b"transfer-encoding", b""):
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
