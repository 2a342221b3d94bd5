"""What nodes write to Redis, as bytes, each MACed with the cluster secret (no I/O).

Two records cross the cluster: a **relay message** (one redacted output of a
session: audio, an event, or the end) and a **registry entry** (which node runs a
session, for whom, until when). A node acts on neither unless its MAC verifies
under a key derived from the shared cluster secret, so whoever can write to Redis
but lacks the secret cannot make a node relay anything, or list a session that a
real node did not register. The session id is inside every MAC: a genuine
message copied into another session's stream is rejected too.

Relay message bytes::

    version u8 | kind u8 | flags u8 | seq u64 | payload | mac (32 bytes)

``seq`` counts one session's messages from 0, so a reader sees what it missed
(trimmed while it lagged, or dropped by the publisher: ``FLAG_AFTER_LOSS``) and
what is replayed (a seq it has had). An audio payload is ``start u64 | pcm``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from ..core.session import AudioOut, Event

VERSION = 1
MAC_BYTES = 32
MIN_SECRET_BYTES = 16

KIND_AUDIO = 1
KIND_EVENT = 2
KIND_END = 3  # the session ended (clean or not); nothing follows
KINDS = (KIND_AUDIO, KIND_EVENT, KIND_END)

FLAG_AFTER_LOSS = 1  # the publisher dropped messages just before this one

_HEADER = struct.Struct(">BBBQ")
_START = struct.Struct(">Q")


class Forged(ValueError):
    """A record whose MAC does not verify, or that does not parse: ignore it."""


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one use of the cluster secret (relay, registry, tokens): a MAC made
    for one purpose is never valid for another."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the cluster secret must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(secret, b"streamserver/" + purpose.encode(), hashlib.sha256).digest()


def _mac(key: bytes, session_id: str, body: bytes) -> bytes:
    sid = session_id.encode()
    return hmac.new(key, _START.pack(len(sid)) + sid + body, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class RelayMessage:
    kind: int
    seq: int
    payload: bytes = b""
    after_loss: bool = False

    @classmethod
    def of(cls, out: AudioOut | Event, seq: int) -> RelayMessage:
        """The message for one of a session's outputs (redacted: what the relay sees)."""
        if isinstance(out, AudioOut):
            return cls(KIND_AUDIO, seq, _START.pack(max(0, out.start)) + out.data)
        return cls(KIND_EVENT, seq, orjson.dumps(out.payload))

    def output(self) -> AudioOut | Event | None:
        """The output this message carries; None for the end. Forged if an event is
        not a JSON object (a verified message never is: a node wrote it)."""
        if self.kind == KIND_AUDIO:
            (start,) = _START.unpack_from(self.payload)
            return AudioOut(self.payload[_START.size:], start)
        if self.kind == KIND_EVENT:
            try:
                payload = orjson.loads(self.payload)
            except orjson.JSONDecodeError:
                raise Forged("event is not JSON") from None
            if not isinstance(payload, dict):
                raise Forged("event is not a JSON object")
            return Event(payload)
        return None


class RelayCodec:
    """Signs and checks relay messages with the relay key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, session_id: str, msg: RelayMessage) -> bytes:
        body = _HEADER.pack(VERSION, msg.kind, FLAG_AFTER_LOSS if msg.after_loss else 0,
                            msg.seq) + msg.payload
        return body + _mac(self._key, session_id, body)

    def decode(self, session_id: str, data: bytes) -> RelayMessage:
        """The message, or Forged (bad MAC, another session's, unknown version/kind)."""
        if len(data) < _HEADER.size + MAC_BYTES:
            raise Forged("short relay message")
        body, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
        if not hmac.compare_digest(mac, _mac(self._key, session_id, body)):
            raise Forged("relay message MAC does not verify")
        version, kind, flags, seq = _HEADER.unpack_from(body)
        payload = body[_HEADER.size:]
        if version != VERSION or kind not in KINDS:
            raise Forged("unknown relay message version or kind")
        if kind == KIND_AUDIO and len(payload) < _START.size:
            raise Forged("audio message without its start")
        return RelayMessage(kind, seq, payload, bool(flags & FLAG_AFTER_LOSS))


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """A running session in the registry: where it runs and whose it is.

    ``owner`` is the SHA-256 of the API key that started it (never the key);
    ``expires`` (Unix seconds) is signed, so an old entry written back into Redis
    is stale even if its MAC verifies.
    """

    session_id: str
    node: str
    owner: str
    expires: float
    url: str = ""  # the node's public URL, if it has one (operators, debugging)


class EntryCodec:
    """Signs and checks registry entries with the registry key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, entry: SessionEntry) -> bytes:
        body = orjson.dumps({"v": VERSION, "node": entry.node, "owner": entry.owner,
                             "expires": round(entry.expires, 3), "url": entry.url})
        return _mac(self._key, entry.session_id, body) + body

    def decode(self, session_id: str, data: bytes, now: float,
               skew_s: float = 5.0) -> SessionEntry:
        """The entry stored under ``session_id``; Forged if its MAC does not verify,
        it does not parse, or it expired more than ``skew_s`` ago (clock skew
        between nodes)."""
        mac, body = data[:MAC_BYTES], data[MAC_BYTES:]
        if len(mac) < MAC_BYTES or not hmac.compare_digest(
                mac, _mac(self._key, session_id, body)):
            raise Forged("registry entry MAC does not verify")
        try:
            raw: Any = orjson.loads(body)
            entry = SessionEntry(session_id, str(raw["node"]), str(raw["owner"]),
                                 float(raw["expires"]), str(raw.get("url", "")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise Forged("registry entry does not parse") from None
        if raw.get("v") != VERSION:
            raise Forged("unknown registry entry version")
        if entry.expires < now - skew_s:
            raise Forged("registry entry is stale")
        return entry
