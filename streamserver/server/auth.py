"""Who is calling: API keys (hashed on arrival, compared in constant time) and the
short-lived, single-use tokens browsers use instead of a key in the URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable

from starlette.requests import HTTPConnection

from ..config import ServerConfig, hash_api_key

# The owner of artefacts made when the server has no API keys (anyone may call).
ANONYMOUS = "anonymous"
TOKEN_PREFIX = "st1."
TOKEN_TTL_S = 60
TOKEN_MAX_TTL_S = 300


class TokenIssuer:
    """Short-lived tokens for one key: ``POST /v1/tokens`` → ``?token=st1.…``.

    A token names its owner (the key's hash, never the key), expires after its TTL
    and is good for one connection; it is MACed with a secret made at start, so a
    restart invalidates all (they live a minute). Used nonces are kept until their
    token expires (bounded by what valid keys ask for in one TTL).
    """

    def __init__(self, secret: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret or os.urandom(32)
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry

    def issue(self, owner: str, ttl_s: float = TOKEN_TTL_S) -> str:
        expires = int(self._clock() + max(1.0, min(ttl_s, TOKEN_MAX_TTL_S)))
        body = f"{owner}.{expires}.{secrets.token_urlsafe(12)}".encode()
        return (TOKEN_PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=")
                + "." + self._mac(body))

    def redeem(self, token: str) -> str | None:
        """The token's owner, once; None if forged, expired or used already."""
        now = self._clock()
        for nonce in [n for n, exp in self._used.items() if exp < now]:
            del self._used[nonce]
        try:
            encoded, mac = token[len(TOKEN_PREFIX):].rsplit(".", 1)
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            owner, expires, nonce = body.decode().split(".")
            expiry = int(expires)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode("utf-8", "replace")):
            return None
        if expiry < now or nonce in self._used:
            return None
        self._used[nonce] = expiry
        return owner

    def _mac(self, body: bytes) -> str:
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()


def caller(cfg: ServerConfig, conn: HTTPConnection,
           tokens: TokenIssuer | None = None) -> str | None:
    """The caller's identity — the SHA-256 of its key — or None if refused.

    The key comes from ``Authorization: Bearer KEY``; browsers, which cannot set
    that header on a WebSocket, send ``?token=`` with a token from ``POST
    /v1/tokens`` (a long-lived key there is refused unless ``allow_key_in_query``:
    URLs end up in proxy logs and browser history). With no keys configured
    everyone is :data:`ANONYMOUS`.
    """
    if not cfg.api_key_hashes:
        return ANONYMOUS
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        offered = header[7:]
    else:
        offered = conn.query_params.get("token", "")
        if offered.startswith(TOKEN_PREFIX):
            owner = tokens.redeem(offered) if tokens is not None else None
            return owner if owner in cfg.api_key_hashes else None
        if not cfg.allow_key_in_query:
            return None
    return key_owner(cfg, offered)


def key_owner(cfg: ServerConfig, offered: str) -> str | None:
    """The hash of ``offered`` if it is an accepted key (constant time, no early exit)."""
    digest = hash_api_key(offered)
    found: str | None = None
    for accepted in cfg.api_key_hashes:
        if hmac.compare_digest(digest.encode(), accepted.encode()):
            found = accepted
    return found


def metrics_allowed(cfg: ServerConfig, conn: HTTPConnection) -> bool:
    """``/metrics`` (and the counts in ``/readyz``): open unless the operator set a
    metrics token, then only with ``Authorization: Bearer <metrics token>``."""
    if not cfg.metrics_token:
        return True
    header = conn.headers.get("authorization", "")
    offered = header[7:] if header.lower().startswith("bearer ") else ""
    return hmac.compare_digest(hashlib.sha256(offered.encode()).digest(),
                               hashlib.sha256(cfg.metrics_token.encode()).digest())
