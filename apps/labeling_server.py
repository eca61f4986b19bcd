"""``python -m apps.labeling_server``: a server for annotators only — the Labeling tab and the vote API.

Use it to hand out labeling without exposing the model, steering or fine-tuning tabs. It
shares the workbench home (and so the sessions and votes) with ``workbench serve``; both
can run at once because the store is SQLite in WAL mode. Like the main app it refuses a
non-loopback address unless a login is set (``--auth`` or ``WORKBENCH_AUTH`` for the owner,
``--users FILE`` or ``WORKBENCH_USERS`` for named annotators, one ``name:password`` a line).
An annotator who logs in labels under their login name only.

``--api-only`` skips the browser UI (for scripted annotators, load tests and judges).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import WorkbenchError


def create_labeling_app(ctx, *, api_only: bool = False):  # noqa: ANN001, ANN201 - FastAPI types stay lazy
    """The FastAPI app: /api/health, /api/labeling/..., and (unless api_only) the Labeling tab at /."""
    from fastapi import FastAPI

    from workbench import __version__
    from workbench.app.auth import BasicAuthMiddleware, gradio_user
    from workbench.labeling.api import build_router
    from workbench.labeling.state import labeling_store

    app = FastAPI(title="Preference Workbench labeling", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/health")
    def api_health() -> dict:
        return {"status": "ok", "version": __version__, "sessions": [s.name for s in labeling_store(ctx).list_sessions()]}

    app.include_router(build_router(lambda: labeling_store(ctx), annotator_logins=ctx.settings.users))
    logins = ctx.settings.logins
    if not api_only:
        import gradio as gr

        from plugins.labeling.tab import build_labeling_tab
        from workbench.app.shell import THEME_CSS, theme

        with gr.Blocks(title="Preference Workbench · Labeling", analytics_enabled=False) as blocks:
            build_labeling_tab(ctx)
        gr.mount_gradio_app(app, blocks, path="/", theme=theme(), css=THEME_CSS,
                            footer_links=["api"], show_error=True, auth_dependency=gradio_user if logins else None)
    if logins:
        app.add_middleware(BasicAuthMiddleware, credentials=logins)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.labeling_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; non-loopback needs --auth")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--auth", default=None, help="user:password required for every request (or WORKBENCH_AUTH)")
    parser.add_argument("--users", type=Path, default=None,
                        help="file of name:password lines, one login per annotator (or WORKBENCH_USERS)")
    parser.add_argument("--home", type=Path, default=None, help="workbench home (default: $WORKBENCH_HOME)")
    parser.add_argument("--api-only", action="store_true", help="serve the vote API without the browser UI")
    args = parser.parse_args(argv)
    try:
        import uvicorn

        from workbench.app.server import bind_socket
        from workbench.context import AppContext
        from workbench.settings import Settings, load_users, parse_auth

        kwargs = {"host": args.host, "port": args.port, "auth": parse_auth(args.auth) if args.auth else None}
        if args.users:
            kwargs["users"] = load_users(args.users)
        settings = Settings(home=args.home, **kwargs) if args.home else Settings(**kwargs)
        settings.check_bind()
        ctx = AppContext(settings)
        sock = bind_socket(settings.host, settings.port)
        app = create_labeling_app(ctx, api_only=args.api_only)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Labeling server on http://{settings.host}:{settings.port}/ (API under /api/labeling)", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
