"""Protocol v1: client messages, typed errors and their close codes.

Error messages never carry internals or user data: they name the rule broken.
See docs/protocol.md for the wire format with examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

PROTOCOL_VERSION = 1

# WebSocket close codes (RFC 6455 + the 4000-4999 private range).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_TIMEOUT = 4408
CLOSE_TOO_FAST = 4429


class ProtocolError(Exception):
    """A client mistake that ends its session: ``code`` for machines, text for people."""

    code = "bad_request"
    close_code = CLOSE_BAD_REQUEST

    def __init__(self, message: str, code: str | None = None, close_code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if close_code is not None:
            self.close_code = close_code

    def event(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


class BadConfig(ProtocolError):
    code = "bad_config"


class ConfigRequired(ProtocolError):
    code = "config_required"


class BadAudio(ProtocolError):
    code = "bad_audio"
    close_code = CLOSE_INVALID_DATA


class Unauthorized(ProtocolError):
    code = "unauthorized"
    close_code = CLOSE_UNAUTHORIZED


class TooManySessions(ProtocolError):
    code = "server_busy"
    close_code = CLOSE_TRY_LATER


class TooFast(ProtocolError):
    code = "too_fast"
    close_code = CLOSE_TOO_FAST


class MessageTooBig(ProtocolError):
    code = "message_too_big"
    close_code = CLOSE_TOO_BIG


class IdleTimeout(ProtocolError):
    code = "idle_timeout"
    close_code = CLOSE_TIMEOUT


class StorageQuota(ProtocolError):
    """A recorded session would go past a storage quota or the disk's free-space floor."""

    code = "storage_quota"
    close_code = CLOSE_TRY_LATER


class StorageUnavailable(ProtocolError):
    """A recorded session was asked for while the recording store (its metadata
    database) does not answer: try later, or without recording."""

    code = "storage_unavailable"
    close_code = CLOSE_TRY_LATER


class ConfigTimeout(ProtocolError):
    """The connection sent no configuration in time: it held a session slot for nothing."""

    code = "config_timeout"
    close_code = CLOSE_TIMEOUT


class SessionTooLong(ProtocolError):
    """The session reached ``max_session_s``: its input is closed and drained."""

    code = "max_duration"
    close_code = CLOSE_POLICY


CLIENT_MESSAGE_TYPES = ("configure", "flush", "close", "keepalive")


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str
    fields: dict[str, Any]


def parse_client_text(text: str,
                      types: tuple[str, ...] = CLIENT_MESSAGE_TYPES) -> ClientMessage:
    """Parse one JSON text frame whose ``type`` is one of ``types`` (protocol v1's by
    default; Deepgram's on ``/v1/listen``). Raises ProtocolError (no details echoed)."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("text frames must be JSON objects", "invalid_json") from None
    if not isinstance(obj, dict):
        raise ProtocolError("text frames must be JSON objects", "invalid_json")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in types:
        raise ProtocolError(
            "unknown message type; expected one of " + ", ".join(types),
            "unknown_message",
        )
    fields = {k: v for k, v in obj.items() if k != "type"}
    return ClientMessage(kind, fields)


def dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()
