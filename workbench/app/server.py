"""One server for the whole browser app: Gradio tabs at ``/``, Panel views at ``/panel/<slug>``.

Both UIs share one process, so they share the loaded model and the store through the
application context. With logins configured (``settings.auth`` and/or named annotators in
``settings.users``), a single middleware guards every route and tells Gradio who logged in;
in front of it, ``RequestGuard`` bounds request bodies and backs off clients that keep failing
to log in. The standalone labeling server is this same app over a host holding only the
labeling plugin.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import asdict
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, WebSocketException
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import HTTPConnection

from workbench import __version__
from workbench.app.auth import OWNER, BasicAuthMiddleware, gradio_user, request_user, role_of
from workbench.app.limits import LoginThrottle, RequestGuard
from workbench.app.panel_views import collect_panel_views, mount_panel_views
from workbench.context import AppContext
from workbench.errors import ConfigError
from workbench.plugin_types import FOR_ANNOTATORS

log = logging.getLogger(__name__)

def health(ctx: AppContext) -> dict[str, Any]:
    """What runs in this process: version, loaded models, plugins and their status."""
    models = [
        {"name": name, "format": lm.format, "device": str(lm.device), "dtype": str(lm.dtype).removeprefix("torch."), "layers": lm.n_layers}
        for name, lm in ctx.models.items()
    ]
    return {
        "status": "ok",
        "version": __version__,
        "active_model": ctx.active_model_name,
        "models": models,
        "plugins": [asdict(info) for info in ctx.plugins.infos],
    }


def include_plugin_router(app: FastAPI, router: APIRouter, settings: Any) -> None:
    """Mount a plugin's router with every route owner-only unless it is tagged ``FOR_ANNOTATORS``.

    Plugins are not trusted to check roles: a route a plugin forgets to guard must not be
    open to every annotator login. Routes FastAPI cannot guard (plain Starlette routes and
    mounts) are left out with a warning.
    """

    def owner_only(conn: HTTPConnection) -> None:
        if FOR_ANNOTATORS in getattr(conn.scope.get("route"), "tags", ()):
            return
        user = request_user(conn)
        if role_of(settings, user) != OWNER:
            message = f"Logged in as annotator '{user}': {conn.url.path} is for the workbench owner."
            if conn.scope["type"] == "websocket":
                raise WebSocketException(code=1008, reason=message)
            raise HTTPException(status_code=403, detail=message)

    unguarded = [r for r in router.routes if not isinstance(r, APIRoute | APIWebSocketRoute)]
    for route in unguarded:
        log.warning("Plugin route %s left out: only FastAPI routes can be guarded by role", getattr(route, "path", route))
        router.routes.remove(route)
    app.include_router(router, dependencies=[Depends(owner_only)])


def create_app(ctx: AppContext, *, ui: bool = True) -> FastAPI:
    """The ASGI app: /api/health, the plugins' API routes, and (``ui``) the Panel views under
    /panel/ and Gradio at / (mounted last). ``ui=False`` serves the APIs only."""
    app = FastAPI(title="Preference Workbench", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/health")
    def api_health() -> dict[str, Any]:
        return health(ctx)

    for contribution in ctx.plugins.collect("api_routes", APIRouter, context=ctx):
        include_plugin_router(app, contribution.item, ctx.settings)
    logins = ctx.settings.logins
    if ui:
        # Gradio and Panel are imported only for a UI: an API-only server starts in seconds.
        import gradio as gr  # gradio: only in create_app()

        from workbench.app.shell import THEME_CSS, build_blocks, theme  # gradio: only in create_app()

        views = collect_panel_views(ctx)
        if views:
            mount_panel_views(app, ctx, views)
        blocks = build_blocks(ctx, views)
        gr.mount_gradio_app(
            app, blocks, path="/", theme=theme(), css=THEME_CSS,
            footer_links=["api", "settings"], run_history=False, show_error=True,
            auth_dependency=gradio_user if logins else None, max_file_size=ctx.settings.max_upload_bytes,
        )
    if logins:
        app.add_middleware(BasicAuthMiddleware, credentials=logins, annotators=ctx.settings.users)
    settings = ctx.settings
    throttle = LoginThrottle(settings.login_failures_allowed, settings.login_lockout_max_s,
                             address_allowed=settings.login_failures_per_address)
    app.add_middleware(RequestGuard, throttle=throttle, max_body=settings.max_body_bytes,  # outermost: runs first
                       max_upload=settings.max_upload_bytes)
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """Claim the port before the slow app build, so a busy port fails fast with a clear message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio turns on TCP_NODELAY only for sockets that say they are
    # TCP, and accepted sockets inherit it. Without it, a response written as headers then body
    # waits ~40 ms for the client's delayed ACK (Nagle) on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Choose another port with --port, or stop the program that uses this one.",
        ) from exc
    return sock


def serve(ctx: AppContext) -> None:
    """Run the app with uvicorn on settings.host:settings.port until interrupted."""
    settings = ctx.settings
    settings.check_bind()
    sock = bind_socket(settings.host, settings.port)
    app = create_app(ctx)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}/"
    print(f"Preference Workbench {__version__} on {url}  (Panel views under {url}panel/, health at {url}api/health, "
          f"fast labeling page at {url}label)", flush=True)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[sock])
