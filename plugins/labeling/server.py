"""A server for annotators only: the Labeling tab, the vote API and the fast keyboard page.

It hands out labeling without exposing the model, steering or fine-tuning tabs, and shares
the workbench home (sessions, votes, pair reservations) with ``workbench serve``. The app
is the main one (``create_app``: the same routes, roles, limits and login checks) over a
plugin host that holds only this plugin. ``workbench label serve`` and
``python -m apps.labeling_server`` both call ``serve``.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

import plugins.labeling
from workbench.app.server import bind_socket, create_app
from workbench.context import AppContext
from workbench.errors import ConfigError
from workbench.labeling.api import PREFIX
from workbench.labeling.page import PAGE_PREFIX
from workbench.plugins import PluginHost
from workbench.settings import Settings, load_users


def labeling_context(settings: Settings) -> AppContext:
    """A context whose plugin host holds only the labeling plugin (no model, steering or training tabs)."""
    host = PluginHost(load=False)
    host.register(plugins.labeling, "labeling")
    return AppContext(settings, plugins=host)


def serve(*, host: str, port: int, auth: tuple[str, str] | None, users: Path | None, home: Path | None, api_only: bool,
          workers: int, database_url: str | None) -> None:
    """Check everything (bind address against logins, workers, the home), then serve until stopped.

    A ``WorkbenchError`` is raised before anything listens, so the caller can print it and exit non-zero."""
    kwargs: dict[str, Any] = {"host": host, "port": port, "auth": auth, "database_url": database_url}
    if users:
        kwargs["users"] = load_users(users)
    settings = Settings(home=home, **kwargs) if home else Settings(**kwargs)
    settings.check_bind()
    check_workers(workers, api_only)
    sock = bind_socket(settings.host, settings.port)
    app = create_app(labeling_context(settings), ui=not api_only) if workers == 1 else None
    url = f"http://{settings.host}:{settings.port}"
    many = f", {workers} worker processes" if workers > 1 else ""
    print(f"Labeling server on {url}/ (fast keyboard page: {url}{PAGE_PREFIX}/<session>, API under {PREFIX}{many})", flush=True)
    if app is None:
        serve_workers(settings, users, workers, sock)
    else:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])


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
    config = uvicorn.Config(f"{__name__}:worker_app", factory=True, workers=workers, log_level="warning",
                            timeout_graceful_shutdown=3)
    Multiprocess(config, sockets=[sock]).run()


def worker_app() -> Any:
    """The API-only app in one worker process (uvicorn imports this by name in each)."""
    return create_app(labeling_context(Settings()), ui=False)
