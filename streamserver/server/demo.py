"""The browser demo: a static page under ``/demo/`` that speaks protocol v1.

Everything is served from the package (``static/``): HTML, plain JS and CSS,
the capture AudioWorklet and a synthetic sample clip. No build step, no CDN.
``GET /`` and ``GET /demo`` redirect to ``/demo/``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads only its own files and talks only to its own host.
_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; "
    "img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


class _DemoFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response


async def _to_demo(request: Request) -> RedirectResponse:
    return RedirectResponse("/demo/", status_code=307)


def demo_routes() -> list[BaseRoute]:
    """Routes for the demo page; register them on the app next to the others."""
    return [
        Route("/", _to_demo, methods=["GET", "HEAD"]),
        Route("/demo", _to_demo, methods=["GET", "HEAD"]),
        Mount("/demo", app=_DemoFiles(directory=STATIC_DIR, html=True), name="demo"),
    ]


__all__ = ["STATIC_DIR", "demo_routes"]
