"""``python -m apps.labeling_server``: a server for annotators only — the Labeling tab, the vote API and the fast keyboard page.

Use it to hand out labeling without exposing the model, steering or fine-tuning tabs. It
shares the workbench home (and so the sessions and votes) with ``workbench serve``; both
can run at once because the store is SQLite in WAL mode. Like the main app it refuses a
non-loopback address unless a login is set (``--auth`` or ``WORKBENCH_AUTH`` for the owner,
``--users FILE`` or ``WORKBENCH_USERS`` for named annotators, one ``name:password`` a line).
An annotator who logs in labels under their login name only.

``--api-only`` skips the Gradio UI (for scripted annotators, load tests and judges, and to
start in seconds); the fast keyboard page, ``/label/<session>``, is served either way. The
app is the main one (``create_app``: the same routes, roles, limits and login checks) over a
plugin host that holds only the labeling plugin.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

import plugins.labeling
from workbench.app.server import bind_socket, create_app
from workbench.context import AppContext
from workbench.errors import ConfigError, WorkbenchError
from workbench.labeling.api import PREFIX
from workbench.labeling.page import PAGE_PREFIX
from workbench.plugins import PluginHost
from workbench.settings import Settings, load_users, parse_auth


def labeling_context(settings: Settings) -> AppContext:
    """A context whose plugin host holds only the labeling plugin (no model, steering or training tabs)."""
    host = PluginHost(load=False)
    host.register(plugins.labeling, "labeling")
    return AppContext(settings, plugins=host)


def main(argv: list[str] | None = None, *, database_url: str | None = None) -> int:
    """Serve labeling; ``database_url`` (from ``workbench label serve``) is passed here rather than in
    ``argv`` so a password never travels as a command-line argument."""
    parser = argparse.ArgumentParser(prog="python -m apps.labeling_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; non-loopback needs --auth")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--auth", default=None, help="user:password required for every request (or WORKBENCH_AUTH)")
    parser.add_argument("--users", type=Path, default=None,
                        help="file of name:password lines, one login per annotator (or WORKBENCH_USERS)")
    parser.add_argument("--home", type=Path, default=None, help="workbench home (default: $WORKBENCH_HOME)")
    parser.add_argument("--api-only", action="store_true", help="serve the vote API and the fast page (/label/<session>) without the Gradio UI")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes sharing the port (with --api-only; leases, votes and tokens are in the store)")
    args = parser.parse_args(argv)
    try:
        kwargs = {"host": args.host, "port": args.port, "auth": parse_auth(args.auth) if args.auth else None,
                  "database_url": database_url}
        if args.users:
            kwargs["users"] = load_users(args.users)
        settings = Settings(home=args.home, **kwargs) if args.home else Settings(**kwargs)
        settings.check_bind()
        check_workers(args.workers, args.api_only)
        sock = bind_socket(settings.host, settings.port)
        app = create_app(labeling_context(settings), ui=not args.api_only) if args.workers == 1 else None
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    url = f"http://{settings.host}:{settings.port}"
    workers = f", {args.workers} worker processes" if args.workers > 1 else ""
    print(f"Labeling server on {url}/ (fast keyboard page: {url}{PAGE_PREFIX}/<session>, API under {PREFIX}{workers})", flush=True)
    if app is None:
        serve_workers(settings, args.users, args.workers, sock)
    else:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
    return 0


def check_workers(workers: int, api_only: bool) -> None:
    """Several workers only for the API and the fast page: the Gradio UI keeps each browser's
    queued events in one process's memory, so its requests must all reach that process."""
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, got {workers}.", hint="Use e.g. --workers 4.")
    if workers > 1 and not api_only:
        raise ConfigError("--workers above 1 needs --api-only: the Gradio UI's event queue lives in one process.",
                          hint="Serve annotators the fast page /label/<session> with --api-only --workers N, "
                               "and the Labeling tab from a single-process `workbench serve`.")


def serve_workers(settings: Settings, users: Path | None, workers: int, sock: socket.socket) -> None:
    """``workers`` uvicorn processes accepting on ``sock``, each building its own app
    (``worker_app``) from the settings handed down in the environment."""
    os.environ["WORKBENCH_HOME"] = str(settings.home)
    if settings.auth:
        os.environ["WORKBENCH_AUTH"] = ":".join(settings.auth)
    if users:
        os.environ["WORKBENCH_USERS"] = str(users)
    if settings.database_url:
        os.environ["WORKBENCH_DATABASE_URL"] = settings.database_url
    config = uvicorn.Config("apps.labeling_server:worker_app", factory=True, workers=workers, log_level="warning",
                            timeout_graceful_shutdown=3)
    Multiprocess(config, sockets=[sock]).run()


def worker_app() -> Any:
    """The API-only app in one worker process (uvicorn imports this by name in each)."""
    return create_app(labeling_context(Settings()), ui=False)


if __name__ == "__main__":
    sys.exit(main())
