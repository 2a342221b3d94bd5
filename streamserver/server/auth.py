"""API keys: who is calling. Keys are hashed on arrival and compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from ..config import ServerConfig, hash_api_key

# The owner of artefacts made when the server has no API keys (anyone may call).
ANONYMOUS = "anonymous"


def caller(cfg: ServerConfig, conn: HTTPConnection) -> str | None:
    """The caller's identity — the SHA-256 of its key — or None if refused.

    The key comes from ``Authorization: Bearer KEY`` or, for browsers, ``?token=KEY``.
    With no keys configured everyone is :data:`ANONYMOUS`.
    """
    if not cfg.api_key_hashes:
        return ANONYMOUS
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        offered = header[7:]
    else:
        offered = conn.query_params.get("token", "")
    # Hash, then a constant-time compare against every accepted hash (no early exit).
    digest = hash_api_key(offered)
    found: str | None = None
    for accepted in cfg.api_key_hashes:
        if hmac.compare_digest(digest.encode(), accepted.encode()):
            found = accepted
    return found
