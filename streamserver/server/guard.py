"""What a browser may do: trusted Host names, allowed Origins, JSON-only POSTs.

A keyless server on localhost or a LAN is reachable from any web page the user
opens: a cross-origin page can open a WebSocket (browsers send ``Origin`` but do
not block it), post a form, or — through DNS rebinding — make its own name
resolve to 127.0.0.1. This ASGI middleware, in front of every route, refuses:

* a ``Host`` header naming no host this server serves (DNS rebinding);
* a WebSocket, or an HTTP request other than GET/HEAD/OPTIONS, whose ``Origin``
  is neither this server's own (same host and port) nor allowed by the operator
  (``allowed_origins``); clients that send no Origin (not browsers) are unaffected;
* a POST whose body is not declared ``application/json`` (a cross-origin form or
  ``fetch`` cannot send that without a CORS preflight, which is never granted).

Refusals are typed: HTTP 400/403/415 with the protocol's JSON error, a WebSocket
is accepted, sent the ``error`` event and closed 4403 / 4400.
"""

from __future__ import annotations

import fnmatch
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import ServerConfig, is_loopback_host
from ..protocol import CLOSE_BAD_REQUEST, dumps

CLOSE_FORBIDDEN = 4403
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def _split(netloc: str) -> tuple[str, int | None]:
    """(host, port) of ``host:port`` / ``[v6]:port``, lower-case; ("", None) if junk."""
    try:
        parts = urlsplit("//" + netloc.strip().lower())
        return parts.hostname or "", parts.port
    except ValueError:
        return "", None


def _hostname(netloc: str) -> str:
    return _split(netloc)[0]


def _authority(netloc: str, scheme: str) -> str:
    """``host:port`` with the scheme's default port made explicit."""
    host, port = _split(netloc)
    return f"{host}:{port or _DEFAULT_PORTS.get(scheme, '')}"


class BrowserGuard:
    def __init__(self, app: ASGIApp, cfg: ServerConfig) -> None:
        self.app = app
        hosts = list(cfg.trusted_hosts)
        if not hosts:
            # Bound to loopback: only loopback names (a rebinding page's name is
            # not one). Bound wider: the operator names the hosts, else any.
            hosts = [*_LOOPBACK_NAMES] if is_loopback_host(cfg.host) else ["*"]
            if cfg.public_url:
                hosts.append(_hostname(urlsplit(cfg.public_url).netloc))
        self.trusted_hosts = tuple(h.lower() for h in hosts)
        origins = [o.strip().lower().rstrip("/") for o in cfg.allowed_origins]
        if cfg.public_url:
            origins.append(cfg.public_url.lower().rstrip("/"))
        self.any_origin = "*" in origins
        # (scheme, host:port) of each allowed origin, parsed once.
        self.allowed_origins = frozenset(
            (parts.scheme, _authority(parts.netloc, parts.scheme))
            for parts in map(urlsplit, origins) if parts.scheme and parts.netloc)

    def host_ok(self, host: str) -> bool:
        name = _hostname(host)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.trusted_hosts)

    def origin_ok(self, origin: str, host: str, scheme: str) -> bool:
        if self.any_origin:
            return True
        parts = urlsplit(origin.strip().lower())
        if not parts.scheme or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and junk
        theirs = _authority(parts.netloc, parts.scheme)
        # Same origin: the page came from this very host and port (the scheme may
        # differ behind a proxy that terminates TLS).
        if theirs in (_authority(host, scheme), _authority(host, parts.scheme)):
            return True
        return (parts.scheme, theirs) in self.allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        host = headers.get("host", "")
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if not self.host_ok(host):
            await _refuse(scope, receive, send, 400, CLOSE_BAD_REQUEST, "untrusted_host",
                          "the Host header names no host this server serves")
            return
        changes = kind == "websocket" or method not in ("GET", "HEAD", "OPTIONS")
        if (origin is not None and changes
                and not self.origin_ok(origin, host, scope.get("scheme", "http"))):
            await _refuse(scope, receive, send, 403, CLOSE_FORBIDDEN, "forbidden_origin",
                          "cross-origin requests are refused (the operator may allow "
                          "an origin: allowed_origins)")
            return
        if kind == "http" and method == "POST":
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                await _refuse(scope, receive, send, 415, CLOSE_BAD_REQUEST,
                              "unsupported_media_type", "POST bodies must be application/json")
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, close_code: int,
                  code: str, message: str) -> None:
    body = dumps({"type": "error", "code": code, "message": message})
    if scope["type"] == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body})
        await send({"type": "websocket.close", "code": close_code})
        return
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body.encode()})
