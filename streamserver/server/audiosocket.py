"""Asterisk AudioSocket: a call's audio over plain TCP (docs/audiosocket.md).

A dialplan ``AudioSocket(${UUID},host:port)`` connects to us and sends the call's
audio; whatever we send back as audio frames is played to that channel. Every
message is a 3-byte header — kind (1 byte), payload length (2 bytes, big
endian) — and the payload:

========  ================================================================
``0x00``  hang-up (no payload); closing the socket means the same
``0x01``  the call's UUID, 16 bytes binary; always the first message
``0x03``  a keypad digit, 1 ASCII byte (newer Asterisk)
``0x10``  audio: signed linear 16-bit little-endian, 8 kHz mono (20 ms = 320 bytes)
``0xff``  error; the payload is an optional application-specific code
========  ================================================================

Three layers, outside in:

* :class:`AudioSocketParser` / :func:`encode_frame` — the wire format, sans I/O:
  bytes in, frames out, typed :class:`AudioSocketError` for anything else.
* :class:`PolicyStore` and ``PUT/DELETE /v1/audiosocket/{uuid}`` — a TCP socket
  cannot present an API key, so the application that routes the call registers
  its session settings first, with its key; the call with that UUID consumes them.
* :class:`AudioSocketServer` / :class:`AudioSocketCall` — the asyncio listener
  and one call through :class:`~.host.SessionHost`, like every other transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..audio import AudioFormat
from ..config import ConfigError, SessionConfig
from ..core.session import AudioOut, Event
from ..protocol import (
    CLOSE_INVALID_DATA,
    CLOSE_TOO_BIG,
    BadConfig,
    ConfigTimeout,
    IdleTimeout,
    ProtocolError,
    SessionTooLong,
    Unauthorized,
)
from . import bridge as bridge_mod
from .auth import ANONYMOUS, caller
from .host import SessionHost

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .state import ServerState

log = logging.getLogger("streamserver.server")

# -- the wire format (no I/O) -----------------------------------------------------

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
KINDS = frozenset({KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR})

HEADER = struct.Struct(">BH")  # kind, payload length (big endian)
# Asterisk sends 20 ms (320 bytes); a payload this large is nobody's audio frame.
MAX_PAYLOAD = 16 << 10
MAX_ERROR_PAYLOAD = 64  # Asterisk's own error codes are one byte
SAMPLE_RATE = 8000
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit mono: what we send back, too

# What every AudioSocket session is: the protocol fixes it, a policy cannot change it.
FIXED_SETTINGS: dict[str, Any] = {"encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE,
                                  "channels": 1}
# A live call is realtime (the default); a policy may ask for ``pace=asap`` to replay
# a recorded call or in tests (not for a bridge leg): the socket is then read no
# faster than the session decides, and TCP flow control holds the sender.

# The one-byte payload of the 0xff frame we send before closing a call. Asterisk's
# own codes (0x01 hang-up, 0x02 frame forwarding, 0x04 memory) describe *its*
# failures; ours, application-specific as the protocol allows, start at 0x10.
ERROR_BYTES: dict[str, int] = {
    "bad_frame": 0x10,  # malformed AudioSocket input (unknown kind, bad length, order)
    "bad_audio": 0x11,
    "unauthorized": 0x12,  # the server has keys and no policy names this UUID
    "server_busy": 0x13,
    "key_busy": 0x13,
    "session_in_use": 0x14,  # a call with this UUID is running already
    "bad_config": 0x15,
    "config_timeout": 0x16,  # no UUID in time
    "idle_timeout": 0x16,
    "too_fast": 0x18,
    "storage_quota": 0x19,
    "storage_unavailable": 0x1A,  # recording asked for, its database unreachable
    "internal_error": 0x20,
}
ERROR_OTHER = 0x1F  # any other code


class AudioSocketError(ProtocolError):
    """Malformed AudioSocket input: the call ends (0xff, close), nothing else does."""

    code = "bad_frame"
    close_code = CLOSE_INVALID_DATA


class UnknownKind(AudioSocketError):
    pass


class BadLength(AudioSocketError):
    """A length the kind cannot have (a lying or oversized header)."""

    close_code = CLOSE_TOO_BIG


class BadUuid(AudioSocketError):
    pass


class UuidRequired(AudioSocketError):
    """Anything but the UUID (or a hang-up) first."""


class UuidRepeated(AudioSocketError):
    pass


class Truncated(AudioSocketError):
    """The connection closed in the middle of a frame."""


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes = b""

    @property
    def call_id(self) -> uuid.UUID:
        """The UUID of a ``KIND_UUID`` frame."""
        return uuid.UUID(bytes=self.payload)


class AudioSocketParser:
    """Bytes from Asterisk in, whole frames out; no I/O.

    Call :meth:`feed` with whatever the socket gave (any split), and :meth:`eof`
    when it closed. Raises an :class:`AudioSocketError` subclass on input the
    protocol does not allow — decided from the header alone, so a lying length
    is refused before its payload is waited for. After an error, or after a
    hang-up frame, the parser takes no more input (``done``). The buffer holds at
    most one frame (3 + :data:`MAX_PAYLOAD` bytes).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need: int | None = None  # payload length of the frame being read
        self._kind = 0
        self.uuid_seen = False
        self.done = False
        self._failed: AudioSocketError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        if self.done:
            return []  # after a hang-up: nothing more is read
        self._buf += data
        frames: list[Frame] = []
        try:
            while not self.done:
                if self._need is None:
                    if len(self._buf) < HEADER.size:
                        break
                    kind, length = HEADER.unpack_from(self._buf)
                    self._check_header(kind, length)
                    del self._buf[:HEADER.size]
                    self._kind, self._need = kind, length
                if len(self._buf) < self._need:
                    break
                payload = bytes(self._buf[:self._need])
                del self._buf[:self._need]
                self._need = None
                frames.append(Frame(self._kind, payload))
                if self._kind == KIND_HANGUP:
                    self.done = True
        except AudioSocketError as exc:
            self._failed = exc
            self._buf.clear()
            raise
        return frames

    def eof(self) -> None:
        """The peer closed: fine between frames, :class:`Truncated` inside one."""
        if self._failed is None and not self.done and (self._buf or self._need is not None):
            self._buf.clear()
            self._failed = Truncated("the connection closed inside a frame")
            raise self._failed
        self.done = True

    def _check_header(self, kind: int, length: int) -> None:
        # Messages name no value, only kinds and lengths (they end up in logs).
        if kind not in KINDS:
            raise UnknownKind(f"unknown AudioSocket message kind 0x{kind:02x}")
        if length > MAX_PAYLOAD:
            raise BadLength(f"payload length {length} is over {MAX_PAYLOAD} bytes")
        if kind == KIND_UUID:
            if self.uuid_seen:
                raise UuidRepeated("a second UUID message")
            if length != 16:
                raise BadUuid(f"a UUID payload is 16 bytes, not {length}")
            self.uuid_seen = True
            return
        if kind == KIND_HANGUP:
            if length:
                raise BadLength("a hang-up has no payload")
            return
        if not self.uuid_seen:
            raise UuidRequired("the UUID message must come first")
        if kind == KIND_AUDIO and length % 2:
            raise BadLength("audio payloads are whole 16-bit samples (an even length)")
        if kind == KIND_DTMF and length != 1:
            raise BadLength("a keypad digit is one byte")
        if kind == KIND_ERROR and length > MAX_ERROR_PAYLOAD:
            raise BadLength(f"an error payload is at most {MAX_ERROR_PAYLOAD} bytes")


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    if kind not in KINDS or len(payload) > 0xFFFF:
        raise ValueError("not an AudioSocket frame")
    return HEADER.pack(kind, len(payload)) + payload


def audio_frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """8 kHz 16-bit mono PCM as 0x10 frames of ``frame_bytes`` (the last may be
    shorter; an odd trailing byte is dropped, it is no sample)."""
    pcm = pcm[:len(pcm) & ~1]
    return [encode_frame(KIND_AUDIO, pcm[i:i + frame_bytes])
            for i in range(0, len(pcm), frame_bytes)]


def error_frame(code: str) -> bytes:
    """The 0xff frame for one of our error codes (:data:`ERROR_BYTES`)."""
    return encode_frame(KIND_ERROR, bytes([ERROR_BYTES.get(code, ERROR_OTHER)]))


HANGUP_FRAME = encode_frame(KIND_HANGUP)


# -- per-call policies: PUT/DELETE /v1/audiosocket/{uuid} ------------------------

POLICY_TTL_S = 600.0  # a policy not used by a call within this is forgotten
POLICIES_PER_KEY = 256  # registered, not yet used, per API key
MAX_POLICY_BYTES = 16 << 10


class NoPolicy(ProtocolError):
    code = "unauthorized"


class SessionInUse(ProtocolError):
    code = "session_in_use"


class PolicyConflict(ProtocolError):
    code = "conflict"


class TooManyPolicies(ProtocolError):
    code = "too_many_policies"


@dataclass(frozen=True)
class CallPolicy:
    """What one call's session runs with, and whose it is (an API key's hash)."""

    owner: str
    params: dict[str, Any]  # session settings, validated at registration
    expires: float  # monotonic
    bridge: str | None = None
    role: str | None = None


class PolicyStore:
    """Registered call policies, by call id (the UUID's hex), in memory.

    Bounded: each expires after ``ttl_s`` and a key holds at most ``per_key``
    unused ones. A policy is bound to the key that registered it: another key
    cannot replace, delete or learn its settings. :meth:`take` consumes it.
    """

    def __init__(self, ttl_s: float = POLICY_TTL_S, per_key: int = POLICIES_PER_KEY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.per_key = per_key
        self._clock = clock
        self._policies: dict[str, CallPolicy] = {}

    def put(self, call_id: str, owner: str, params: dict[str, Any],
            bridge: str | None = None, role: str | None = None) -> CallPolicy:
        """Register (or, by the same key, replace) the policy for ``call_id``.
        PolicyConflict if another key holds it; TooManyPolicies over the bound."""
        self._expire()
        held = self._policies.get(call_id)
        if held is not None and held.owner != owner:
            raise PolicyConflict("this UUID is registered by another key; use a new UUID "
                                 "for every call")
        if held is None and sum(p.owner == owner for p in self._policies.values()) >= self.per_key:
            raise TooManyPolicies(f"at most {self.per_key} unused AudioSocket policies per "
                                  f"key (each expires after {self.ttl_s:g} s)")
        policy = CallPolicy(owner, params, self._clock() + self.ttl_s, bridge, role)
        self._policies[call_id] = policy
        return policy

    def take(self, call_id: str) -> CallPolicy | None:
        """The policy for this call, once; None if there is none (or it expired)."""
        self._expire()
        return self._policies.pop(call_id, None)

    def delete(self, call_id: str, owner: str) -> bool:
        self._expire()
        held = self._policies.get(call_id)
        if held is None or held.owner != owner:
            return False  # another key's looks like none at all
        del self._policies[call_id]
        return True

    def __len__(self) -> int:
        return len(self._policies)

    def _expire(self) -> None:
        now = self._clock()
        for call_id in [c for c, p in self._policies.items() if p.expires <= now]:
            del self._policies[call_id]


def policies(app: Starlette) -> PolicyStore:
    """The app's policy store (made on first use)."""
    store: PolicyStore | None = getattr(app.state, "audiosocket_policies", None)
    if store is None:
        store = app.state.audiosocket_policies = PolicyStore()
    return store


def call_id_from_path(raw: str) -> str:
    """The call id (32 lower-case hex) of a UUID in any form ``uuid.UUID`` reads."""
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        raise ProtocolError("the path must end in the call's UUID "
                            "(as in the dialplan's AudioSocket(uuid,...))", "bad_request") from None


def policy_settings(body: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """The session settings, ``bridge`` and ``role`` of a PUT body; BadConfig names
    what is wrong. The audio format is the protocol's: asking for another is an
    error, not silently overridden. ``pace`` is realtime unless the policy asks for
    asap (replays, tests); a bridge leg is realtime only."""
    settings = {k: v for k, v in body.items() if k not in ("bridge", "role")}
    request = bridge_mod.bridge_request(body) if "bridge" in body else None
    if request is None and "role" in body:
        raise BadConfig("role names this leg in a bridge; it needs bridge")
    checked = dict(settings)
    if request is not None:  # a leg's entities may be "none": checked on their own
        try:
            bridge_mod.leg_entities(checked)
        except ConfigError as exc:  # an unknown entity name: the client's mistake
            raise BadConfig(str(exc)) from None
        checked.pop("entities", None)
    try:
        given = SessionConfig.from_params(checked)
    except ConfigError as exc:
        raise BadConfig(str(exc)) from None
    for name, value in FIXED_SETTINGS.items():
        if name in settings and getattr(given, name) != value:
            raise BadConfig(f"{name} is fixed to {value} on AudioSocket")
    if request is None:
        return settings, None, None
    if given.pace != "realtime":
        raise BadConfig("bridges run in real time (pace=realtime)")
    return settings, request[0], request[1]


_HTTP_STATUS = {"unauthorized": 401, "not_found": 404, "conflict": 409,
                "too_many_policies": 429, "unsupported_media_type": 415,
                "message_too_big": 413, "storage_unavailable": 503}
_NO_STORE = {"Cache-Control": "no-store"}


def _error(exc: ProtocolError) -> JSONResponse:
    return JSONResponse(exc.event(), status_code=_HTTP_STATUS.get(exc.code, 400),
                        headers=_NO_STORE)


async def _read_json(request: Request) -> Mapping[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ProtocolError("the body must be application/json", "unsupported_media_type")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_POLICY_BYTES:
            raise ProtocolError("the policy body is too large", "message_too_big")
    try:
        obj = json.loads(bytes(body) or b"{}")
    except ValueError:
        raise ProtocolError("the body must be a JSON object", "invalid_json") from None
    if not isinstance(obj, dict):
        raise ProtocolError("the body must be a JSON object", "invalid_json")
    return obj


async def put_policy(request: Request) -> Response:
    """``PUT /v1/audiosocket/{uuid}``: the session settings for the call with this
    UUID (JSON, protocol v1 names), checked now, used once, within the TTL."""
    state: ServerState = request.app.state.streamserver
    try:
        owner = caller(state.cfg, request, state.tokens)
        if owner is None:
            raise Unauthorized("missing or invalid API key")
        call_id = call_id_from_path(request.path_params["uuid"])
        settings, bridge, role = policy_settings(await _read_json(request))
        # Everything the call would check, now: the operator's floor, the allowed
        # encodings, whether recording is possible for this key.
        checked = {k: v for k, v in settings.items() if bridge is None or k != "entities"}
        scfg = SessionHost(state, owner, "audiosocket").config({**checked, **FIXED_SETTINGS})
        if state.archive is not None:
            try:
                state.archive.plan(scfg, owner)
            except ConfigError as exc:
                raise BadConfig(str(exc)) from None
        store = policies(request.app)
        store.put(call_id, owner, settings, bridge, role)
    except ProtocolError as exc:
        return _error(exc)
    base = (state.cfg.public_url or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")
    listen = base.replace("https://", "wss://").replace("http://", "ws://")
    if bridge is not None:  # the call's session is the bridge's (its legs' events say it)
        return JSONResponse({"uuid": str(uuid.UUID(call_id)), "bridge": bridge, "role": role,
                             "expires_in": int(store.ttl_s)}, headers=_NO_STORE)
    return JSONResponse({"uuid": str(uuid.UUID(call_id)), "session_id": call_id,
                         "expires_in": int(store.ttl_s),
                         "listen_url": f"{listen}/v1/sessions/{call_id}/listen"},
                        headers=_NO_STORE)


async def delete_policy(request: Request) -> Response:
    """``DELETE /v1/audiosocket/{uuid}``: forget an unused policy (204; 404 if none)."""
    state: ServerState = request.app.state.streamserver
    try:
        owner = caller(state.cfg, request, state.tokens)
        if owner is None:
            raise Unauthorized("missing or invalid API key")
        call_id = call_id_from_path(request.path_params["uuid"])
        if not policies(request.app).delete(call_id, owner):
            raise ProtocolError("no policy for this UUID (unknown, used, expired or not "
                                "yours)", "not_found")
    except ProtocolError as exc:
        return _error(exc)
    return Response(status_code=204, headers=_NO_STORE)


AUDIOSOCKET_ROUTES = [
    Route("/v1/audiosocket/{uuid}", put_policy, methods=["PUT"]),
    Route("/v1/audiosocket/{uuid}", delete_policy, methods=["DELETE"]),
]


# -- the TCP transport -------------------------------------------------------------

READ_BYTES = 4096
CLOSE_TIMEOUT_S = 2.0  # writing our last frame to a peer that reads nothing


class AudioSocketCall:
    """One AudioSocket connection: the UUID picks the policy, audio feeds the session.

    The session id is the call UUID's hex, so a listener finds the call at
    ``/v1/sessions/{uuid hex}/listen``; a second connection with the UUID of a
    running call is refused. Without a bridge nothing goes back to Asterisk: the
    redacted output goes to listeners and the recording only. A typed error ends
    this call alone: a 0xff frame with its code (:data:`ERROR_BYTES`), then close.
    """

    def __init__(self, state: ServerState, store: PolicyStore,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 base_url: str) -> None:
        self.state = state
        self.store = store
        self.reader = reader
        self.writer = writer
        self.base_url = base_url
        self.parser = AudioSocketParser()
        self.host: SessionHost | None = None
        self.session_id = "-"  # for logs until the UUID arrives
        self.expires_at = time.monotonic() + state.cfg.max_session_s
        self.policy: CallPolicy | None = None
        self.leg: bridge_mod.BridgeLeg | None = None  # this call is a leg of a bridge

    async def run(self) -> None:
        """Serve the call to its end; never raises but CancelledError."""
        try:
            await self._serve()
        except ProtocolError as exc:
            await self._close_with_error(exc)
        except (ConnectionError, OSError):
            log.info("audiosocket connection lost", extra={"session": self.session_id})
        except Exception:
            log.exception("audiosocket call failed", extra={"session": self.session_id})
            await self._close_with_error(ProtocolError("internal error", "internal_error"))
        finally:
            if self.leg is not None:
                self.leg.hangup()
            if self.host is not None:
                await self.host.stop()
            await self._linger()
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT_S)

    async def _linger(self) -> None:
        """Close gently: send FIN, then read (and drop) what Asterisk still sends
        until it closes too, for up to CLOSE_TIMEOUT_S. Closing with its audio
        frames unread would make the kernel answer with a reset, and a reset can
        destroy our last frames (the hang-up, the tail of the audio) before
        Asterisk reads them."""
        with contextlib.suppress(Exception):
            if self.writer.is_closing() or not self.writer.can_write_eof():
                return
            self.writer.write_eof()

            async def until_eof() -> None:
                while await self.reader.read(65536):
                    pass

            await asyncio.wait_for(until_eof(), CLOSE_TIMEOUT_S)

    async def _serve(self) -> None:
        cfg = self.state.cfg
        uuid_by = time.monotonic() + cfg.configure_timeout_s  # however it trickles in
        frames: list[Frame] | None = []
        while frames is not None and not frames:  # until the UUID (or the end)
            frames = await self._read_frames(uuid_by)
        if frames is None or frames[0].kind != KIND_UUID:
            return  # hung up (or the server drains) before the call began
        await self._begin(frames[0].call_id.hex)
        host = self.host
        assert host is not None
        if self.leg is None:
            assert host.runner is not None and host.run_task is not None
        ended = self._handle(frames[1:])
        while not ended and not host.too_long:
            if host.runner is not None and not host.runner.realtime:
                await self._wait_room()
            to_limit = self.expires_at - time.monotonic()
            if to_limit <= 0:
                host.too_long = True
                break
            # Which limit ends the wait is decided now: uvloop's millisecond timers
            # can wake a hair before the deadline they were set for.
            got = await self._read_frames(
                time.monotonic() + min(cfg.idle_timeout_s, to_limit), idle=True,
                at_limit=to_limit <= cfg.idle_timeout_s)
            if got is None:
                break
            ended = self._handle(got)
        if self.leg is not None:
            await self._end_leg()
            return
        await self._end()

    async def _begin(self, call_id: str) -> None:
        """The UUID arrived: find the policy, admit and start the session."""
        self.session_id = call_id
        if call_id in self.state.active:  # refused before a policy is touched
            raise SessionInUse("a call with this UUID is running")
        policy = self.store.take(call_id)
        if policy is None and self.state.cfg.api_key_hashes:
            # A socket cannot present a key: only a policy registered with one
            # (PUT /v1/audiosocket/{uuid}) says whose call this is.
            raise NoPolicy("no policy registered for this call's UUID")
        owner = policy.owner if policy is not None else ANONYMOUS
        params = policy.params if policy is not None else {}
        self.policy = policy
        self.host = SessionHost(self.state, owner, "audiosocket", session_id=call_id)
        await self.host.admit()
        if policy is not None and policy.bridge is not None and policy.role is not None:
            # One leg of a bridge: the slot is this call's, the session the bridge's.
            self.leg = bridge_mod.join(
                self.state, owner, (policy.bridge, policy.role), {**params, **FIXED_SETTINGS},
                AudioFormat("pcm_s16le", SAMPLE_RATE, 1), _AudioSocketLeg(self), self.base_url)
            return
        scfg = self.host.config({**params, **FIXED_SETTINGS})
        self.host.start(scfg, self.base_url, self._deliver)

    def _handle(self, frames: list[Frame]) -> bool:
        """Act on frames after the UUID; True once the input ended (hang-up, error)."""
        for frame in frames:
            if frame.kind == KIND_AUDIO:
                self._on_audio(frame.payload)
            elif frame.kind in (KIND_HANGUP, KIND_ERROR):
                if frame.kind == KIND_ERROR:  # Asterisk's own failure: the call is over
                    log.info("audiosocket peer error", extra={
                        "session": self.session_id, "code": frame.payload[:1].hex()})
                return True
            # KIND_DTMF: an out-of-band keypad digit is dropped, never logged or sent
            # on (it may be a card number); tones in the audio itself are masked
            # by the session's keypad detector (entity DTMF).
            if self.host is not None and self.host.too_long:
                return False
        return False

    def _on_audio(self, pcm8k: bytes) -> None:
        """One audio payload (8 kHz 16-bit mono) into this call's session.
        A bridge routes it to its own redaction lane instead."""
        if self.leg is not None:  # payloads are capped by the parser (MAX_PAYLOAD)
            self.leg.push(pcm8k)
            return
        assert self.host is not None
        self.host.push_audio(pcm8k)

    async def _play(self, pcm8k: bytes) -> None:
        """Play redacted 8 kHz 16-bit mono to this channel, as 0x10 frames of 320
        bytes (the bridge calls it with the other leg's output)."""
        for frame in audio_frames(pcm8k):
            self.writer.write(frame)
        await self.writer.drain()

    async def _deliver(self, out: AudioOut | Event) -> None:
        # The recording and the listeners have it already (SessionHost). Asterisk
        # gets nothing: playing the channel's own redacted voice back to it would
        # be an echo. It needs no frames from us to keep the call up.
        return

    async def _read_frames(self, deadline: float, idle: bool = False,
                           at_limit: bool = False) -> list[Frame] | None:
        """The next frames from Asterisk; None once the input ended (EOF, or the
        server drains) or, with ``at_limit``, at ``deadline`` (max_session_s);
        raises IdleTimeout / ConfigTimeout past ``deadline`` otherwise."""
        draining = self.state.drain_signal()
        if draining.done() or (self.leg is not None and self.leg.done.done()):
            return None
        read = asyncio.ensure_future(self.reader.read(READ_BYTES))
        waiters: set[asyncio.Future[Any]] = {read, draining}
        if self.leg is not None:  # the other leg hung up: this call ends too
            waiters.add(self.leg.done)
        try:
            await asyncio.wait(waiters, timeout=max(0.0, deadline - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            read.cancel()  # no-op once it has data
        if read.done() and not read.cancelled():
            data = read.result()
            if not data:
                self.parser.eof()
                return None
            return self.parser.feed(data)
        if draining.done() or (self.leg is not None and self.leg.done.done()):
            return None
        if idle:
            if at_limit:
                self._too_long()
                return None
            raise IdleTimeout("no AudioSocket message within the idle timeout")
        raise ConfigTimeout("no UUID message in time")

    async def _wait_room(self) -> None:
        """asap: read no more until the session can take more input (the socket's
        buffers fill and TCP flow control holds Asterisk, or a replaying client)."""
        host = self.host
        assert host is not None and host.runner is not None and host.run_task is not None
        room = asyncio.ensure_future(host.runner.wait_for_room())
        try:
            await asyncio.wait({room, host.run_task, self.state.drain_signal()},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            room.cancel()
        if host.run_task.done():
            host.run_task.result()  # re-raise a runner failure

    def _too_long(self) -> None:
        if self.host is not None:
            self.host.too_long = True

    async def _end(self) -> None:
        """Input over (hang-up, EOF, drain, max_session_s): release every accepted
        sample to the listeners and the recording, then close. Draining, the
        wait is bounded by the drain deadline."""
        host = self.host
        assert host is not None and host.runner is not None and host.run_task is not None
        if host.too_long:
            exc = SessionTooLong(f"the session reached the server's limit of "
                                 f"{self.state.cfg.max_session_s:g} s; input closed")
            host.error_code = exc.code
            host.runner.fail(exc)
        host.runner.finish()
        draining = self.state.drain_signal().done()
        if draining:
            left = self.state.drain_deadline - time.monotonic()
            await asyncio.wait({host.run_task}, timeout=max(0.0, left))
            if not host.run_task.done():
                log.warning("drain deadline passed", extra={"session": self.session_id})
                await host.stop()
        else:
            await host.run_task
        if host.run_task is not None and host.run_task.done() and not host.run_task.cancelled():
            host.run_task.result()  # re-raise a runner failure
        if draining or host.too_long:  # we end the call, not Asterisk: say so
            with contextlib.suppress(Exception):
                self.writer.write(HANGUP_FRAME)
                await asyncio.wait_for(self.writer.drain(), CLOSE_TIMEOUT_S)
        log.info("audiosocket call ended", extra={"session": self.session_id})

    async def _end_leg(self) -> None:
        """A bridge leg's end: Asterisk hung up (the bridge ends; nothing more can be
        played), or the bridge ended (the other leg hung up or the server drains):
        this channel then hears the rest and gets a hang-up frame (an error frame
        when the bridge failed)."""
        leg = self.leg
        assert leg is not None
        if not leg.done.done():  # our side: Asterisk's hang-up, EOF, drain, too long
            asterisk_gone = not self.state.drain_signal().done() and not (
                self.host is not None and self.host.too_long)
            if asterisk_gone:
                leg.hangup()
                return
            leg.end_input()
            left = (max(0.0, self.state.drain_deadline - time.monotonic())
                    if self.state.shutting_down else None)
            await asyncio.wait({leg.done}, timeout=left)
        error = leg.done.result() if leg.done.done() else None
        if error is not None:
            raise error
        with contextlib.suppress(Exception):
            self.writer.write(HANGUP_FRAME)
            await asyncio.wait_for(self.writer.drain(), CLOSE_TIMEOUT_S)
        log.info("audiosocket bridge leg ended", extra={"session": self.session_id})

    async def _close_with_error(self, exc: ProtocolError) -> None:
        log.info("audiosocket error", extra={"session": self.session_id, "code": exc.code})
        if self.host is not None:
            self.host.refused(exc.code)
            await self.host.stop()
        else:
            self.state.metrics.session_errors.labels(exc.code).inc()
        with contextlib.suppress(Exception):
            self.writer.write(error_frame(exc.code))
            await asyncio.wait_for(self.writer.drain(), CLOSE_TIMEOUT_S)


class _AudioSocketLeg:
    """An AudioSocket call as a bridge leg's output: what we write, Asterisk plays."""

    def __init__(self, call: AudioSocketCall) -> None:
        self.call = call

    async def play(self, data: bytes) -> None:
        # At once, as released (Asterisk takes frames of any whole number of
        # samples): holding a short block back would add up to 20 ms to t + D.
        await self.call._play(data)

    async def event(self, payload: dict[str, Any]) -> None:
        pass  # AudioSocket carries audio only: listeners and webhooks get events

    async def end(self, error: ProtocolError | None) -> None:
        pass  # the call sees the leg done and hangs up (_end_leg)


# More connections than this (sessions plus calls still before their UUID) are
# refused at once: an open socket that never sends a UUID holds no session slot.
CONNECTIONS_PER_SESSION = 2


class AudioSocketServer:
    """The TCP listener: one :class:`AudioSocketCall` task per connection.

    ``start`` binds; ``close`` stops accepting, then cancels the calls still
    running (call it after :func:`~.app.drain_sessions`, which lets them end
    cleanly) and waits for them, at most ``grace_s``.
    """

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.state: ServerState = app.state.streamserver
        self.store = policies(app)
        self.host = host
        self.port = port
        self.calls: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        cfg = self.state.cfg
        scheme = "https" if cfg.tls_certfile else "http"
        name = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.base_url = cfg.public_url or f"{scheme}://{name}:{cfg.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  limit=MAX_PAYLOAD + HEADER.size)
        log.info("audiosocket listening", extra={"port": self.port})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self.calls) >= CONNECTIONS_PER_SESSION * self.state.cfg.max_sessions:
            with contextlib.suppress(Exception):
                writer.write(error_frame("server_busy"))
                await asyncio.wait_for(writer.drain(), CLOSE_TIMEOUT_S)
            writer.close()
            return
        self.calls.add(task)
        try:
            await AudioSocketCall(self.state, self.store, reader, writer, self.base_url).run()
        finally:
            self.calls.discard(task)

    async def close(self, grace_s: float) -> None:
        if self._server is not None:
            self._server.close()
        left = set(self.calls)
        if left:
            _, pending = await asyncio.wait(left, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S)
