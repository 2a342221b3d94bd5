"""REST API over a session's stored artefacts (docs/api.md; OpenAPI at /openapi.json).

``GET /v1/sessions/{id}``, ``GET .../redacted-audio``, ``GET .../transcript`` and
``DELETE /v1/sessions/{id}``, with the same API keys as the stream. A session's
artefacts are visible only to the key that created it: any other key — like an
unknown, expired or deleted id — gets 404, so ids cannot be probed.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..storage import StoreError
from .auth import ANONYMOUS, TOKEN_MAX_TTL_S, TOKEN_TTL_S, caller, key_owner
from .openapi import OPENAPI
from .recording import (
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_READY,
    STATUS_RECORDING,
    Archive,
    audio_url,
    wav_header,
)

if TYPE_CHECKING:
    from .state import ServerState

_SESSION_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: anything else cannot exist
_NO_STORE = {"Cache-Control": "no-store"}
_WAIT = {STATUS_RECORDING: 202}  # "processing": try again
_GONE = {STATUS_FAILED: 409, STATUS_INTERRUPTED: 409}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "code": code, "message": message},
                        status_code=status, headers=_NO_STORE)


_NOT_FOUND = ("not_found", "no such session (unknown, expired, deleted, or not yours)")
# The metadata store (e.g. its PostgreSQL) does not answer: try again later.
_UNAVAILABLE = ("storage_unavailable", "recording storage is unavailable; try later")


async def _find(request: Request, ready: bool = False,
                ) -> tuple[Archive, str, dict[str, Any]] | JSONResponse:
    """The archive, the session id and its metadata — or the response to give instead
    (an error; with ``ready``, also "processing" or "failed" when not ready)."""
    state: ServerState = request.app.state.streamserver
    owner = caller(state.cfg, request, state.tokens)
    if owner is None:
        return _error(401, "unauthorized", "missing or invalid API key")
    archive = state.archive
    session_id = request.path_params["session_id"]
    if archive is None or archive.store is None or not _SESSION_ID.fullmatch(session_id):
        return _error(404, *_NOT_FOUND)
    try:
        meta = await archive.metadata(session_id, owner)
    except StoreError:
        return _error(503, *_UNAVAILABLE)
    if meta is None:
        return _error(404, *_NOT_FOUND)
    if ready and (wait := _not_ready(meta)) is not None:
        return wait
    return archive, session_id, meta


def _base_url(request: Request) -> str:
    state: ServerState = request.app.state.streamserver
    return state.cfg.public_url or f"{request.url.scheme}://{request.url.netloc}"


async def get_session(request: Request) -> Response:
    found = await _find(request)
    if isinstance(found, Response):
        return found
    _, session_id, meta = found
    base = _base_url(request).rstrip("/")
    body = {
        "session_id": session_id, "status": meta["status"],
        "created": meta["created"], "ended": meta.get("ended"), "expires": meta["expires"],
        "retention_s": meta["retention_s"], "complete": meta.get("complete"),
        "error_code": meta.get("error_code"), "audio": meta["audio"],
        "policy": meta["policy"], "stats": meta.get("stats"),
    }
    if meta["status"] == STATUS_READY:
        body["redacted_audio_url"] = audio_url(base, session_id)
        body["transcript_url"] = f"{base}/v1/sessions/{session_id}/transcript"
    return JSONResponse(body, headers=_NO_STORE)


def _not_ready(meta: dict[str, Any]) -> JSONResponse | None:
    status = meta["status"]
    if status in _WAIT:
        return JSONResponse({"status": "processing"}, status_code=_WAIT[status],
                            headers=_NO_STORE)
    if status in _GONE:
        return JSONResponse({"status": status}, status_code=_GONE[status], headers=_NO_STORE)
    return None


async def get_audio(request: Request) -> Response:
    found = await _find(request, ready=True)
    if isinstance(found, Response):
        return found
    archive, session_id, meta = found
    fmt = meta["audio"]
    size = fmt["bytes"]
    header_len = len(wav_header(fmt["encoding"], fmt["sample_rate"], fmt["channels"], size))
    return StreamingResponse(
        archive.audio(session_id, meta), media_type="audio/wav",
        headers={**_NO_STORE, "Content-Length": str(header_len + size + (size & 1)),
                 "Content-Disposition": f'attachment; filename="{session_id}.wav"'})


async def get_transcript(request: Request) -> Response:
    found = await _find(request, ready=True)
    if isinstance(found, Response):
        return found
    archive, session_id, _ = found
    try:
        body = await archive.transcript(session_id)
    except StoreError:
        return _error(503, *_UNAVAILABLE)
    if body is None:
        return _error(404, *_NOT_FOUND)
    return Response(body, media_type="application/json", headers=_NO_STORE)


async def delete_session(request: Request) -> Response:
    found = await _find(request)
    if isinstance(found, Response):
        return found
    archive, session_id, _ = found
    try:
        await archive.delete(session_id)
    except StoreError:  # nothing was deleted (one transaction): the client may retry
        return _error(503, *_UNAVAILABLE)
    return Response(status_code=204, headers=_NO_STORE)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(OPENAPI)


async def issue_token(request: Request) -> JSONResponse:
    """``POST /v1/tokens``: a short-lived, single-use token for the caller's key."""
    state: ServerState = request.app.state.streamserver
    header = request.headers.get("authorization", "")
    if state.cfg.api_key_hashes:
        owner = key_owner(state.cfg, header[7:]) if header.lower().startswith("bearer ") else None
        if owner is None:
            return _error(401, "unauthorized", "Authorization: Bearer KEY is required")
    else:
        owner = ANONYMOUS
    raw = await request.body()
    ttl: Any = TOKEN_TTL_S
    if raw.strip():
        try:
            ttl = json.loads(raw[:1024]).get("ttl_s", TOKEN_TTL_S)
        except (ValueError, AttributeError):
            return _error(400, "bad_request", "the body must be a JSON object")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= TOKEN_MAX_TTL_S:
        return _error(400, "bad_request", f"ttl_s must be within 1..{TOKEN_MAX_TTL_S}")
    return JSONResponse({"token": state.tokens.issue(owner, ttl), "expires_in": int(ttl)},
                        headers=_NO_STORE)


SESSION_ROUTES = [
    Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/v1/sessions/{session_id}/redacted-audio", get_audio, methods=["GET"]),
    Route("/v1/sessions/{session_id}/transcript", get_transcript, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/v1/tokens", issue_token, methods=["POST"]),
]
