"""``python -m apps.labeling_server``: a server for annotators only — the Labeling tab, the vote API and the fast keyboard page.

Use it to hand out labeling without exposing the model, steering or fine-tuning tabs. It
shares the workbench home (and so the sessions and votes) with ``workbench serve``; both
can run at once because the store is SQLite in WAL mode. Like the main app it refuses a
non-loopback address unless a login is set (``--auth`` or ``WORKBENCH_AUTH`` for the owner,
``--users FILE`` or ``WORKBENCH_USERS`` for named annotators, one ``name:password`` a line).
An annotator who logs in labels under their login name only.

``--api-only`` skips the Gradio UI (for scripted annotators, load tests and judges, and to
start in seconds); the fast keyboard page, ``/label/<session>``, is served either way. The
server itself is ``plugins.labeling.server.serve``, which ``workbench label serve`` calls too.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plugins.labeling.server import serve
from workbench.errors import WorkbenchError
from workbench.settings import parse_auth


def main(argv: list[str] | None = None) -> int:
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
        serve(host=args.host, port=args.port, auth=parse_auth(args.auth) if args.auth else None, users=args.users,
              home=args.home, api_only=args.api_only, workers=args.workers, database_url=None)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
