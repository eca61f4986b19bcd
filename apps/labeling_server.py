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
import sys
from pathlib import Path

import uvicorn

import plugins.labeling
from workbench.app.server import bind_socket, create_app
from workbench.context import AppContext
from workbench.errors import WorkbenchError
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
    args = parser.parse_args(argv)
    try:
        kwargs = {"host": args.host, "port": args.port, "auth": parse_auth(args.auth) if args.auth else None,
                  "database_url": database_url}
        if args.users:
            kwargs["users"] = load_users(args.users)
        settings = Settings(home=args.home, **kwargs) if args.home else Settings(**kwargs)
        settings.check_bind()
        sock = bind_socket(settings.host, settings.port)
        app = create_app(labeling_context(settings), ui=not args.api_only)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    url = f"http://{settings.host}:{settings.port}"
    print(f"Labeling server on {url}/ (fast keyboard page: {url}{PAGE_PREFIX}/<session>, API under {PREFIX})", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
