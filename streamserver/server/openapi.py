"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

Written by hand (Starlette does not derive one); a test checks that every path
here is routed and every routed HTTP path is here. The WebSocket protocol is in
docs/protocol.md — OpenAPI has no words for it.
"""

from __future__ import annotations

from typing import Any

from .. import __version__

_ID = {"name": "session_id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
       "description": "From the session's `session.begin` event."}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": _json(_ref("Error"), "Missing or invalid API key."),
    "404": _json(_ref("Error"), "Unknown, expired, deleted, or another key's session."),
    "503": _json(_ref("Error"), "storage_unavailable: the recording store (its metadata "
                                "database) does not answer; try again later."),
}
_NOT_READY = {
    "202": _json(_ref("Processing"), "The session is still running: try again later."),
    "409": _json(_ref("Unavailable"), "The recording failed or was interrupted."),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "streamserver", "version": __version__,
             "description": "Live PII redaction of speech. Session artefacts (redacted audio "
                            "and transcript) exist only for sessions recorded with "
                            "`record=true`; see docs/privacy.md."},
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {"get": {"summary": "Liveness", "security": [],
                             "responses": {"200": {"description": "The process is up."}}}},
        "/readyz": {"get": {"summary": "Readiness: would a new session be accepted?",
                            "security": [],
                            "responses": {"200": {"description": "Ready."},
                                          "503": {"description": "Starting, full, busy "
                                                                 "or draining (reason)."}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "Text exposition."}}}},
        "/v1/sessions/{session_id}": {
            "get": {"summary": "A recorded session: status, expiry, format, stats",
                    "parameters": [_ID],
                    "responses": {"200": _json(_ref("Session"), "The session."), **_ERRORS}},
            "delete": {"summary": "Delete every artefact and record of a session, now",
                       "description": "Also stops a running recording; the live stream "
                                      "goes on. Later requests answer 404.",
                       "parameters": [_ID],
                       "responses": {"204": {"description": "Deleted."}, **_ERRORS}},
        },
        "/v1/sessions/{session_id}/redacted-audio": {
            "get": {"summary": "The redacted audio as WAV, in the client's encoding",
                    "parameters": [_ID],
                    "responses": {"200": {"description": "RIFF/WAVE file.",
                                          "content": {"audio/wav": {}}},
                                  **_NOT_READY, **_ERRORS}},
        },
        "/v1/sessions/{session_id}/transcript": {
            "get": {"summary": "The redacted final transcript",
                    "parameters": [_ID],
                    "responses": {"200": _json(_ref("Transcript"), "Redacted segments."),
                                  **_NOT_READY, **_ERRORS}},
        },
        "/v1/tokens": {
            "post": {"summary": "A short-lived, single-use token for a browser's ?token=",
                     "description": "Authorization: Bearer KEY (the key itself never goes in "
                                    "a URL). Optional body {\"ttl_s\": 1..300}, default 60.",
                     "responses": {"200": _json({"type": "object", "properties": {
                         "token": {"type": "string"}, "expires_in": {"type": "integer"}}},
                         "The token."), "401": _ERRORS["401"]}}},
        "/v1/bridges/{bridge_id}": {
            "get": {"summary": "An open bridge of this key: legs, session id, listen URL",
                    "description": "docs/bridge.md. session_id and listen_url once both legs "
                                   "have joined.",
                    "parameters": [{"name": "bridge_id", "in": "path", "required": True,
                                    "schema": {"type": "string", "maxLength": 64}}],
                    "responses": {"200": _json({"type": "object", "properties": {
                        "bridge": {"type": "string"},
                        "legs": {"type": "array", "items": {"enum": ["agent", "caller"]}},
                        "started": {"type": "boolean"}, "session_id": {"type": "string"},
                        "listen_url": {"type": "string"}}}, "The bridge."),
                        "401": _ERRORS["401"],
                        "404": _json(_ref("Error"), "Unknown, ended, or another key's bridge.")}}},
        "/v1/audiosocket/{uuid}": {
            "put": {"summary": "The policy for the AudioSocket call with this UUID",
                    "description": "docs/audiosocket.md. JSON body: protocol v1 session "
                                   "settings, plus bridge and role for a bridge leg. Used once, "
                                   "within 10 minutes.",
                    "parameters": [{"name": "uuid", "in": "path", "required": True,
                                    "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "Stored."},
                                  "400": _json(_ref("Error"), "A bad setting (bad_config)."),
                                  "401": _ERRORS["401"],
                                  "409": _json(_ref("Error"), "Another key's UUID.")}},
            "delete": {"summary": "Remove an unused AudioSocket policy",
                       "parameters": [{"name": "uuid", "in": "path", "required": True,
                                       "schema": {"type": "string"}}],
                       "responses": {"204": {"description": "Removed."}, **_ERRORS}}},
        "/v1/webrtc/offer": {
            "post": {"summary": "Start a WebRTC session, or join a bridge as a leg "
                                "(config.bridge and config.role; docs/webrtc.md)",
                     "responses": {"200": {"description": "SDP answer and session id."},
                                   "409": _json(_ref("Error"), "bridge_full: the bridge has "
                                                "both legs, or this role.")}}},
        "/v1/sessions/{session_id}/listen/webrtc": {
            "post": {"summary": "Listen to a running session over WebRTC (docs/webrtc.md)",
                     "parameters": [_ID],
                     "responses": {"200": {"description": "SDP answer."}}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "Only when the server has API keys."}},
        "schemas": {
            "Error": {"type": "object", "required": ["type", "code", "message"],
                      "properties": {"type": {"const": "error"}, "code": {"type": "string"},
                                     "message": {"type": "string"}}},
            "Processing": {"type": "object", "properties": {"status": {"const": "processing"}}},
            "Unavailable": {"type": "object",
                            "properties": {"status": {"enum": ["failed", "interrupted"]}}},
            "Session": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "string"},
                    "status": {"enum": ["recording", "ready", "failed", "interrupted"]},
                    "created": {"type": "number", "description": "Unix seconds."},
                    "ended": {"type": ["number", "null"]},
                    "expires": {"type": "number", "description": "Unix seconds; purged then."},
                    "retention_s": {"type": "integer"},
                    "complete": {"type": ["boolean", "null"],
                                 "description": "False if the stream ended abnormally."},
                    "error_code": {"type": ["string", "null"]},
                    "audio": {"type": "object", "properties": {
                        "encoding": {"type": "string"}, "sample_rate": {"type": "integer"},
                        "channels": {"type": "integer"}, "bytes": {"type": "integer"},
                        "parts": {"type": "integer"}}},
                    "policy": {"type": "object"},
                    "stats": {"type": ["object", "null"]},
                    "redacted_audio_url": {"type": "string"},
                    "transcript_url": {"type": "string"},
                },
            },
            "Transcript": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "string"},
                    "segments": {"type": "array", "items": {"type": "object"},
                                 "description": "The `transcript.final` events (redacted)."},
                    "redactions": {"type": "array", "items": {"type": "object"},
                                   "description": "The `redaction` events."},
                },
            },
        },
    },
}
