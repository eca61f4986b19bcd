"""The fast labeling page: one static HTML file, one script and one stylesheet on the JSON API.

Gradio's event queue adds tens to hundreds of milliseconds to every vote; this page talks to
``/api/labeling`` directly (one round trip per vote, the next pair in its answer), so a key
press shows the next prompt in about the API's round trip. It is the same API, login and
store as everything else, so roles and tokens are checked exactly as for any other client.

The files are read once when the router is built and served from memory by name (no path
from the request reaches the file system), with a Content-Security-Policy that allows only
our own script, style and API (and framing by our own pages only: the Labeling tab embeds it):
pair texts are user data and the page inserts them as text.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from workbench.plugin_types import FOR_ANNOTATORS

PAGE_PREFIX = "/label"
ASSETS_PREFIX = f"{PAGE_PREFIX}/assets"  # two path segments, so no session name (one segment) can shadow it
STATIC = Path(__file__).with_name("static")
ASSET_TYPES = {"label.js": "text/javascript; charset=utf-8", "label.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
                               " base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def page_url(session: str) -> str:
    """The fast page of ``session`` (quoted, so any session name gives a valid path)."""
    return f"{PAGE_PREFIX}/{quote(session, safe='')}"


def build_page_router() -> APIRouter:
    """``/label`` (the sessions you may open), ``/label/{session}`` (labeling) and their two assets."""
    router = APIRouter(tags=[FOR_ANNOTATORS])  # the static labeling page, for annotators
    page = (STATIC / "label.html").read_bytes()
    assets = {name: (STATIC / name).read_bytes() for name in ASSET_TYPES}

    def html() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    @router.get(PAGE_PREFIX)
    async def index() -> Response:
        return html()

    @router.get(PAGE_PREFIX + "/{session}")
    async def labeling_page(session: str) -> Response:
        return html()  # the script reads the session from the address and asks the API about it

    @router.get(ASSETS_PREFIX + "/{name}")
    async def asset(name: str) -> Response:
        if name not in assets:
            return PlainTextResponse(f"No asset named {name[:40]!r}.\n", status_code=404, headers=SECURITY_HEADERS)
        return Response(assets[name], media_type=ASSET_TYPES[name], headers=SECURITY_HEADERS)

    return router
