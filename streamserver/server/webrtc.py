"""WebRTC transport: one peer connection is one session (docs/webrtc.md).

``POST /v1/webrtc/offer`` takes an SDP offer and the session settings of
protocol v1, answers once ICE gathering is complete (aiortc does not trickle),
and from then on:

* the client's audio track (Opus, decoded by aiortc) is downmixed to mono
  ``pcm_s16le`` at 48 kHz and fed to a :class:`~streamserver.runtime.SessionRunner`
  (``pace=realtime``), with holes in the RTP timeline filled with silence;
* the redacted audio goes back on :class:`RedactedAudioTrack`: 20 ms frames with
  ``pts`` counting samples at 48 kHz, starting with ``delay_ms`` of silence at the
  moment the first input frame arrived, so output position *t* + D carries input
  sample *t*;
* the JSON events of protocol v1 go out on the data channel the client opened
  with the label ``events``; ``close``, ``flush`` and ``keepalive`` come in on it.

Teardown (client ``close``, track ended, connection closed or failed, idle input,
server shutdown): ``runner.finish()``, the tail is released and sent, then the
peer connection is closed and the session leaves the server's session count.

With ``bridge`` and ``role`` in the offer's ``config`` the peer is a leg of a
redacting bridge instead of a session of its own: server/webrtc_leg.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import av
import numpy as np
import orjson
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..config import ConfigError, SessionConfig
from ..core.session import AudioOut, Event
from ..protocol import (
    CLOSE_TIMEOUT,
    BadConfig,
    IdleTimeout,
    ProtocolError,
    SessionTooLong,
    TooManySessions,
    Unauthorized,
    dumps,
    parse_client_text,
)
from ..runtime import SendQueueFull, SessionRunner
from .auth import ANONYMOUS, caller
from .fanout import Relay, SlowListener
from .recording import RecordingPlan, SessionRecording

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .state import ServerState

log = logging.getLogger("streamserver.webrtc")

OFFER_PATH = "/v1/webrtc/offer"
EVENTS_LABEL = "events"
RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FRAME_S = FRAME_SAMPLES / RATE
FRAME_BYTES = 2 * FRAME_SAMPLES  # mono s16le
TIME_BASE = fractions.Fraction(1, RATE)
# The session format is fixed by the transport (Opus in, Opus out).
FIXED_SETTINGS: dict[str, Any] = {
    "encoding": "pcm_s16le", "sample_rate": RATE, "channels": 1, "pace": "realtime",
}
MAX_OFFER_BYTES = 256 * 1024
MAX_OFFER_CANDIDATES = 16  # a browser offers a handful; thousands would make us a scanner
MAX_LISTENER_BUFFER_S = 5.0  # audio held for a listener's track beyond this: cut off
MAX_PENDING_EVENTS = 256  # events held until the client's channel opens
MAX_CHANNEL_BUFFERED = 4 << 20  # bytes queued on the data channel: over it, slow_consumer
MAX_GAP_FILL_S = 1.0  # an RTP timestamp jump up to this is lost input: filled with silence
MAX_AHEAD_S = 0.5  # output buffered beyond this: the input clock runs fast, catch up
MAX_LATE_S = 0.1  # output later than this (a stall): restart the schedule from now
DRAIN_EXTRA_S = 5.0  # finish(): allowed beyond D for the last decisions
CLOSE_FLUSH_S = 1.0  # wait for the data channel to hand its last messages to SCTP

_HTTP_STATUS = {"unauthorized": 401, "server_busy": 503, "key_busy": 429, "internal_error": 500,
                "unknown_session": 404, "too_many_listeners": 503, "too_many_offers": 429,
                "storage_quota": 507, "storage_unavailable": 503, "bridge_full": 409,
                "relay_unavailable": 503}


def _error_response(exc: ProtocolError) -> JSONResponse:
    return JSONResponse(exc.event(), status_code=_HTTP_STATUS.get(exc.code, 400))


def session_config(raw: object) -> SessionConfig:
    """Protocol v1 settings from the offer's ``config``; the audio format is fixed."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise BadConfig("config must be a JSON object of session settings")
    try:
        given = SessionConfig.from_params(raw)
    except ConfigError as exc:
        raise BadConfig(str(exc)) from None
    for name, value in FIXED_SETTINGS.items():
        if name in raw and getattr(given, name) != value:
            raise BadConfig(f"{name} is fixed to {value} over WebRTC")
    return SessionConfig.from_params(FIXED_SETTINGS, base=given)


def frame_to_mono(frame: av.AudioFrame, resampler: list[Any] | None = None) -> np.ndarray:
    """An audio frame as int16 mono samples at 48 kHz (channels averaged)."""
    fmt = frame.format.name
    if frame.sample_rate != RATE or fmt not in ("s16", "s16p", "flt", "fltp"):
        box = resampler if resampler is not None else []
        if not box:
            box.append(av.AudioResampler(format="s16", layout=frame.layout.name, rate=RATE))
        out = [f for f in box[0].resample(frame)]
        if not out:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([frame_to_mono(f) for f in out])
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        x = arr.reshape(channels, -1).astype(np.float64).mean(axis=0)
    else:
        x = arr.reshape(-1, channels).astype(np.float64).mean(axis=1)
    if fmt in ("flt", "fltp"):
        x = x * 32768.0
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class InboundAudio:
    """A peer's inbound frames as 48 kHz mono int16, in position: a gap in the RTP
    timestamps (lost packets, up to :data:`MAX_GAP_FILL_S`) becomes silence."""

    def __init__(self) -> None:
        self._expected: int | None = None  # next pts, in samples at 48 kHz
        self._resampler: list[Any] = []

    def pcm(self, frame: av.AudioFrame) -> np.ndarray:
        pcm = frame_to_mono(frame, self._resampler)
        pts = _pts_samples(frame)
        if self._expected is not None and pts is not None:
            gap = pts - self._expected
            if 0 < gap <= MAX_GAP_FILL_S * RATE:  # lost packets: keep positions
                pcm = np.concatenate([np.zeros(gap, dtype=np.int16), pcm])
        if pts is not None:
            self._expected = pts + frame.samples * RATE // (frame.sample_rate or RATE)
        return pcm


class RedactedAudioTrack(MediaStreamTrack):
    """The session's output as an outbound track: 20 ms frames, 48 kHz s16.

    Output position 0 is the arrival of the first input frame; the first
    ``delay_ms`` are silence, then the runner's released bytes in order, so
    input sample *t* is output sample *t* + D. Frames are paced by the wall
    clock from that moment; a frame whose audio has not been released yet
    waits for it (nothing is skipped or duplicated: every input sample comes
    back once, at its position).
    """

    kind = "audio"

    def __init__(self, delay_ms: int) -> None:
        super().__init__()
        self._lead_bytes = 2 * (delay_ms * RATE // 1000)
        self._buf = bytearray()
        self._t0: float | None = None
        self._sent = 0
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        self._eof = False
        self.drained = asyncio.Event()  # after end_of_audio(): every byte was sent

    @property
    def started(self) -> bool:
        return self._t0 is not None

    @property
    def buffered_s(self) -> float:
        return len(self._buf) / 2 / RATE

    def start(self, t0: float) -> None:
        """The first input frame arrived at ``t0`` (monotonic): output position 0."""
        if self._t0 is None:
            self._t0 = t0
            self._buf[:0] = bytes(self._lead_bytes)
            self._started.set()

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._ready.set()

    def end_of_audio(self) -> None:
        self._eof = True
        if self._t0 is None or not self._buf:
            self.drained.set()
        self._ready.set()

    def stop(self) -> None:
        super().stop()
        self._started.set()
        self._ready.set()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._started.wait()
        while len(self._buf) < FRAME_BYTES and not self._eof and self.readyState == "live":
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live" or self._t0 is None:
            raise MediaStreamError
        chunk = bytes(self._buf[:FRAME_BYTES])
        del self._buf[:FRAME_BYTES]
        if len(chunk) < FRAME_BYTES:  # the end of the stream (or after it): silence
            chunk += bytes(FRAME_BYTES - len(chunk))
        if self._eof and not self._buf:
            self.drained.set()
        due = self._t0 + self._sent * FRAME_S
        now = time.monotonic()
        if now < due:
            if not self._eof and self.buffered_s > MAX_AHEAD_S:
                self._t0 -= FRAME_S  # the client's clock is faster than ours
            else:
                await asyncio.sleep(due - now)
        elif now - due > MAX_LATE_S:
            self._t0 += now - due  # input stalled: pace from here on
        # Both channels carry the mono result: aiortc's Opus encoder is stereo, and its
        # mono upmix would lower the level by 3 dB.
        mono = np.frombuffer(chunk, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self._sent * FRAME_SAMPLES
        frame.time_base = TIME_BASE
        self._sent += 1
        return frame


class PeerSession(Protocol):
    """What server shutdown needs of a registered peer: a session, or a bridge leg
    (server/webrtc_leg.py)."""

    done: asyncio.Task[None] | None  # ends once the peer is closed and its slot free

    def end(self, reason: ProtocolError | None = None) -> None:
        """Ask it to end: ``None`` finishes cleanly, an error fails it."""


async def answer_offer(pc: RTCPeerConnection, sdp: str, track: MediaStreamTrack) -> str:
    """Apply the offer (exactly one audio transceiver), attach ``track`` as the
    outbound audio, gather, return the answer's SDP; bad_offer otherwise."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    except Exception:
        log.debug("unusable offer", exc_info=True)
        raise ProtocolError("the SDP offer could not be applied", "bad_offer") from None
    kinds = [t.kind for t in pc.getTransceivers()]
    if kinds != ["audio"]:
        raise ProtocolError("the offer must have exactly one audio track and no video",
                            "bad_offer")
    pc.addTrack(track)
    await pc.setLocalDescription(await pc.createAnswer())  # gathers every candidate
    return str(pc.localDescription.sdp)


class EventChannel:
    """The client's ``events`` data channel: JSON text out, held (up to
    :data:`MAX_PENDING_EVENTS`, oldest dropped) until it opens."""

    def __init__(self) -> None:
        self.channel: RTCDataChannel | None = None
        self._pending: deque[str] = deque(maxlen=MAX_PENDING_EVENTS)

    def attach(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("open", self._flush)
        if channel.readyState == "open":
            self._flush()

    def send(self, payload: dict[str, Any]) -> None:
        """Raises SendQueueFull when the client does not take its events."""
        text = dumps(payload)
        channel = self.channel
        if channel is None or channel.readyState != "open":
            self._pending.append(text)
            return
        if channel.bufferedAmount > MAX_CHANNEL_BUFFERED:
            raise SendQueueFull("client is not reading its events")
        channel.send(text)

    def hold(self, payload: dict[str, Any]) -> None:
        """Queue (oldest dropped past the bound) and send what the channel takes."""
        self._pending.append(dumps(payload))
        self._flush()

    def _flush(self) -> None:
        channel = self.channel
        while channel is not None and channel.readyState == "open" and self._pending:
            channel.send(self._pending.popleft())

    async def flushed(self) -> None:
        """Wait (briefly) until queued events have left the data channel."""
        deadline = time.monotonic() + CLOSE_FLUSH_S
        channel = self.channel
        while (channel is not None and channel.readyState == "open"
               and channel.bufferedAmount > 0 and time.monotonic() < deadline):
            await asyncio.sleep(0.01)


class WebRtcSession:
    """One peer connection driving one :class:`SessionRunner`."""

    def __init__(self, state: ServerState, scfg: SessionConfig,
                 registry: dict[str, PeerSession], owner: str = ANONYMOUS,
                 plan: RecordingPlan | None = None, base_url: str = "",
                 session_id: str = "") -> None:
        assert state.engines is not None and state.pool is not None
        self.state = state
        if plan is not None:  # session.begin echoes it as resolved
            scfg = replace(scfg, record=True, retention_s=plan.retention_s)
        self.scfg = scfg
        self.owner = owner
        self.plan = plan
        self.base_url = base_url
        self.recording: SessionRecording | None = None
        self.registry = registry
        self.session_id = session_id or uuid.uuid4().hex
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates
        self.out_track = RedactedAudioTrack(scfg.delay_ms)
        self.events = EventChannel()
        self._remote: MediaStreamTrack | None = None
        self._input_open = True
        self._end: asyncio.Future[ProtocolError | None] = (
            asyncio.get_running_loop().create_future()
        )
        session = state.engines.new_session(scfg, self.session_id)
        self.relay = state.relays.open(self.session_id, self.owner)  # fan-out to listeners
        self.runner = SessionRunner(session, state.pool, state.cfg, self._send)
        self._tasks: list[asyncio.Task[Any]] = []
        self.done: asyncio.Task[None] | None = None
        self.error_code: str | None = None

    # -- set-up ---------------------------------------------------------------------
    async def negotiate(self, sdp: str) -> str:
        """Apply the offer, attach the output track, gather, return the answer's SDP."""
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        return await answer_offer(pc, sdp, self.out_track)

    def start(self) -> None:
        self.registry[self.session_id] = self
        if self.plan is not None and self.state.archive is not None:
            self.recording = self.state.archive.open(
                self.session_id, self.owner, self.scfg, self.plan, self.base_url)
        run = asyncio.create_task(self.runner.run())
        self._tasks.append(run)
        if self._remote is not None:
            self._tasks.append(asyncio.create_task(self._read_audio(self._remote)))
        else:  # cannot happen with an audio m-line, but never hang
            self.end(ProtocolError("the offer has no audio track", "bad_offer"))
        self.done = asyncio.create_task(self._supervise(run))
        self._tasks.append(asyncio.create_task(self._connect_deadline()))
        self.state.metrics.sessions_started.labels("webrtc").inc()
        log.info("session started", extra={"session": self.session_id, "transport": "webrtc",
                                           "delay_ms": self.scfg.delay_ms})

    async def _connect_deadline(self) -> None:
        """A peer that never connects (no usable candidate, no end-of-candidates)
        neither fails nor ends by itself: it would hold a slot for max_session_s."""
        timeout = self.state.cfg.webrtc_connect_timeout_s
        await asyncio.sleep(timeout)
        if self.pc.connectionState != "connected":
            self.end(ProtocolError(f"the peer did not connect within {timeout:g} s",
                                   "connect_timeout", CLOSE_TIMEOUT))

    def end(self, reason: ProtocolError | None = None) -> None:
        """Ask the session to end: ``None`` finishes cleanly, an error fails it."""
        if not self._end.done():
            self._end.set_result(reason)

    async def abort(self) -> None:
        """Negotiation failed: nothing was started yet."""
        self.out_track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self.state.leave(self.session_id)
        self.state.relays.close(self.session_id)

    # -- peer-connection callbacks ----------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._remote is None:
            self._remote = track

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_LABEL or self.events.channel is not None:
            return
        channel.on("message", self._on_message)
        self.events.attach(channel)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.debug("connection state", extra={"session": self.session_id, "state": state})
        if state in ("failed", "closed"):
            self.end(None)

    def _on_message(self, message: object) -> None:
        if not isinstance(message, str):
            self.end(ProtocolError("data channel messages must be JSON text", "invalid_json"))
            return
        try:
            msg = parse_client_text(message)
        except ProtocolError as exc:
            self.end(exc)
            return
        if msg.type == "configure":
            self.end(BadConfig("over WebRTC the settings go in the offer's config"))
        elif msg.type == "flush":
            if self._input_open:
                self.runner.flush()
        elif msg.type == "close":
            self.end(None)
        # keepalive: nothing to do

    # -- media and events -------------------------------------------------------------
    async def _read_audio(self, track: MediaStreamTrack) -> None:
        idle = self.state.cfg.idle_timeout_s
        inbound = InboundAudio()
        while self._input_open:
            try:
                frame = await asyncio.wait_for(track.recv(), idle)
            except MediaStreamError:
                self.end(None)
                return
            except TimeoutError:
                self.end(IdleTimeout("no audio within the idle timeout"))
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            pcm = inbound.pcm(frame)
            if not self._input_open:
                return
            if not pcm.size:
                continue
            if not self.out_track.started:
                self.out_track.start(time.monotonic())
            try:
                self.runner.push_audio(pcm.tobytes())
            except ProtocolError as exc:
                self.end(exc)
                return

    async def _send(self, out: AudioOut | Event) -> None:
        # Stored before session.end, so a client that saw it can fetch at once.
        if self.recording is not None and (done := await self.recording.output(out)):
            await self._send(Event(done))
        self.relay.publish(out)  # redacted output only
        if isinstance(out, Event) and out.payload.get("type") == "redaction":
            self.state.metrics.redactions.labels(str(out.payload["entity"])).inc()
        if isinstance(out, AudioOut):
            self.out_track.feed(out.data)
            return
        try:
            self.events.send(out.payload)
        except SendQueueFull as exc:
            self.end(exc)

    # -- teardown -----------------------------------------------------------------------
    async def _supervise(self, run: asyncio.Task[None]) -> None:
        try:
            waiters: set[asyncio.Future[Any]] = {run, self._end}
            done, _ = await asyncio.wait(waiters, timeout=self.state.cfg.max_session_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:  # max_session_s: say so, then end as a hang-up would
                too_long = SessionTooLong(
                    f"the session reached the server's limit of "
                    f"{self.state.cfg.max_session_s:g} s; input closed")
                self.error_code = too_long.code
                self.runner.fail(too_long)
                self.end()
            # Asked to end, or the runner failed (or ended by itself: drained already).
            reason = self._end.result() if self._end.done() else _failure(run)
            if reason is None:
                reason = await self._drain(run)
            if reason is not None:
                await self._fail(run, reason)
        except asyncio.CancelledError:
            log.info("session cancelled", extra={"session": self.session_id})
            raise
        except Exception:
            log.exception("webrtc session failed", extra={"session": self.session_id})
        finally:
            await self._cleanup(run)

    async def _drain(self, run: asyncio.Task[None]) -> ProtocolError | None:
        """End of input: release everything, send it, then close. An error, if any."""
        self._input_open = False
        if not run.done():
            self.runner.finish()
            timeout = self.scfg.delay_ms / 1000 + DRAIN_EXTRA_S
            await asyncio.wait({run}, timeout=timeout)
            if not run.done():
                log.warning("drain timed out", extra={"session": self.session_id})
                return None
        failure = _failure(run)
        if failure is not None:
            return failure
        self.out_track.end_of_audio()
        if self.pc.connectionState == "connected":
            timeout = self.out_track.buffered_s + 2.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.out_track.drained.wait(), timeout)
            await self.events.flushed()
        return None

    async def _fail(self, run: asyncio.Task[None], exc: ProtocolError) -> None:
        log.info("session error", extra={"session": self.session_id, "code": exc.code})
        self.error_code = exc.code
        self._input_open = False
        await _cancel(run)
        channel = self.events.channel
        if channel is not None and channel.readyState == "open":
            with contextlib.suppress(Exception):
                channel.send(dumps(exc.event()))
            await self.events.flushed()

    async def _cleanup(self, run: asyncio.Task[None]) -> None:
        self._input_open = False
        for task in self._tasks:
            await _cancel(task)
        self.out_track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self.state.leave(self.session_id)
        self.state.relays.close(self.session_id)
        self.registry.pop(self.session_id, None)
        if self.recording is not None:  # ended early: keep what was released
            await self.recording.end(self.runner.session.stats.as_dict(), complete=False,
                                     error_code=self.error_code)
        if run.done() or run.cancelled():
            stats = self.runner.session.stats.as_dict()
            log.info("session ended", extra={"session": self.session_id,
                                             "transport": "webrtc", "stats": stats})
            self.state.metrics.session_ended("webrtc", stats, self.error_code)


def _pts_samples(frame: av.AudioFrame) -> int | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return int(frame.pts * frame.time_base * RATE)


def _failure(run: asyncio.Task[None]) -> ProtocolError | None:
    if not run.done() or run.cancelled():
        return None
    exc = run.exception()
    if exc is None:
        return None
    if isinstance(exc, ProtocolError):
        return exc
    log.error("session runner failed", exc_info=exc)
    return ProtocolError("internal error", "internal_error")


async def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


# -- HTTP ---------------------------------------------------------------------------------
def _registry(app: Starlette) -> dict[str, PeerSession]:
    reg: dict[str, PeerSession] | None = getattr(app.state, "webrtc_sessions", None)
    if reg is None:
        reg = {}
        app.state.webrtc_sessions = reg
    return reg


def use_host_addresses(addresses: tuple[str, ...]) -> None:
    """Gather ICE host candidates on these local addresses only (process-wide:
    aioice has no per-connection setting)."""
    if not addresses:
        return
    import aioice.ice

    chosen = [str(ipaddress.ip_address(a)) for a in addresses]

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


def filter_candidates(sdp: str, allow_private: bool) -> str:
    """The offer with the ICE candidates we may send STUN to: at most
    :data:`MAX_OFFER_CANDIDATES`, and — unless ``allow_private`` (a LAN or test
    deployment) — only public addresses (no loopback, private, link-local,
    multicast or reserved ones: the server must not probe the operator's
    network for a caller). mDNS names (``….local``) are private by nature.
    Raises bad_offer for too many or none left."""
    from ..webhooks import is_public_address

    lines = sdp.splitlines()
    kept, seen = [], 0
    for line in lines:
        if line.startswith("a=candidate:"):
            seen += 1
            fields = line.split()
            address = fields[4] if len(fields) > 5 else ""
            if not allow_private:
                try:
                    if not is_public_address(ipaddress.ip_address(address)):
                        continue
                except ValueError:
                    continue  # a name (mDNS) or junk
        kept.append(line)
    if seen > MAX_OFFER_CANDIDATES:
        raise ProtocolError(f"the offer lists more than {MAX_OFFER_CANDIDATES} candidates",
                            "bad_offer")
    if seen and not any(line.startswith("a=candidate:") for line in kept):
        raise ProtocolError("the offer has no candidate this server may reach (private "
                            "addresses need webrtc_private_candidates)", "bad_offer")
    return "\r\n".join(kept) + "\r\n"


async def _read_offer(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise ProtocolError("the offer body is too large", "message_too_big")
    try:
        obj = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        raise ProtocolError("the body must be a JSON object", "invalid_json") from None
    if not isinstance(obj, dict):
        raise ProtocolError("the body must be a JSON object", "invalid_json")
    if obj.get("type") != "offer" or not isinstance(obj.get("sdp"), str):
        raise ProtocolError('the body needs "sdp" and "type": "offer"', "bad_offer")
    state: ServerState = request.app.state.streamserver
    obj["sdp"] = filter_candidates(obj["sdp"], state.cfg.webrtc_private_candidates)
    return obj


async def webrtc_offer(request: Request) -> JSONResponse:
    """``POST /v1/webrtc/offer``: answer an SDP offer and start a session."""
    state: ServerState = request.app.state.streamserver
    cfg = state.cfg
    try:
        owner = caller(cfg, request, state.tokens)
        if owner is None:
            raise Unauthorized("missing or invalid API key")
        state.count_offer(owner, time.monotonic())
        body = await _read_offer(request)
        raw = body.get("config")
        if isinstance(raw, Mapping) and "bridge" in raw:
            from .webrtc_leg import answer_as_leg  # it imports this module

            return await answer_as_leg(request, state, owner, body["sdp"], raw,
                                       _registry(request.app))
        try:
            scfg = cfg.apply_floor(session_config(body.get("config")))
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None
        try:
            plan = state.archive.plan(scfg, owner) if state.archive is not None else None
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None
        if "pcm_s16le" not in cfg.allowed_encodings:  # what WebRTC audio becomes
            raise BadConfig("WebRTC needs pcm_s16le, which is not allowed on this server")
        session_id = uuid.uuid4().hex
        await state.claim(session_id, owner)
    except ProtocolError as exc:
        return _error_response(exc)
    try:
        session = WebRtcSession(state, scfg, _registry(request.app), owner, plan,
                                f"{request.url.scheme}://{request.url.netloc}", session_id)
    except BaseException:
        state.leave(session_id)
        raise
    try:
        sdp = await session.negotiate(body["sdp"])
    except ProtocolError as exc:
        await session.abort()
        return _error_response(exc)
    except Exception:
        log.exception("webrtc negotiation failed", extra={"session": session.session_id})
        await session.abort()
        return _error_response(ProtocolError("internal error", "internal_error"))
    if state.shutting_down:
        await session.abort()
        return _error_response(TooManySessions("server is shutting down; try later"))
    session.start()
    return JSONResponse({"sdp": sdp, "type": "answer", "session_id": session.session_id})


async def close_webrtc_sessions(app: Starlette, timeout_s: float = 12.0) -> None:
    """Server shutdown: finish every WebRTC session (drain, ``session.end``, close)
    and end every WebRTC bridge leg (the call's input closes; the rest is sent)."""
    reg = _registry(app)
    sessions = list(reg.values())
    if not sessions:
        return
    for s in sessions:
        s.end(None)
    tasks = [s.done for s in sessions if s.done is not None]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        await _cancel(task)


# -- listening in over WebRTC (fan-out) ---------------------------------------------------

LISTEN_PATH = "/v1/sessions/{session_id}/listen/webrtc"


class WebRtcListener:
    """A receive-only peer that hears a running session's redacted output.

    The session's released audio (whatever its encoding) is decoded, downmixed,
    resampled to 48 kHz and paced out on a :class:`RedactedAudioTrack` from the
    moment the listener joined; its events go out on the ``events`` data channel.
    It ends with the session, or when the peer goes away. Never the raw input.
    """

    def __init__(self, relay: Relay, connect_timeout_s: float = 20.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.on_closed: Callable[[], None] | None = None  # once, when it ends
        self.listener = relay.subscribe()
        self.relay = relay
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = RedactedAudioTrack(0)
        self.events = EventChannel()
        self.task: asyncio.Task[None] | None = None

    async def negotiate(self, sdp: str) -> str:
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception:
            raise ProtocolError("the SDP offer could not be applied", "bad_offer") from None
        if [t.kind for t in pc.getTransceivers()] != ["audio"]:
            raise ProtocolError("the offer must have exactly one audio transceiver",
                                "bad_offer")
        pc.addTrack(self.track)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def start(self) -> None:
        self.task = asyncio.create_task(self._pump())

    async def close(self) -> None:
        self.relay.unsubscribe(self.listener)
        self.track.stop()
        closed, self.on_closed = self.on_closed, None
        if closed is not None:
            closed()
        with contextlib.suppress(Exception):
            await self.pc.close()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label == EVENTS_LABEL and self.events.channel is None:
            self.events.attach(channel)

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and self.task is not None:
            self.task.cancel()

    def _send_event(self, payload: dict[str, Any]) -> None:
        self.events.hold(payload)

    async def _pump(self) -> None:
        from .. import audio as audio_mod

        fmt: audio_mod.AudioFormat | None = None
        resampler: audio_mod.StreamingResampler | None = None
        try:
            deadline = time.monotonic() + self.connect_timeout_s
            while (out := await self.listener.next()) is not None:
                connected = self.pc.connectionState == "connected"
                if not connected and time.monotonic() > deadline:
                    raise ProtocolError(f"the peer did not connect within "
                                        f"{self.connect_timeout_s:g} s", "connect_timeout")
                if isinstance(out, Event):
                    cfg = out.payload.get("config")
                    if out.payload.get("type") == "session.begin" and isinstance(cfg, dict):
                        fmt = audio_mod.AudioFormat(cfg["encoding"], cfg["sample_rate"],
                                                    cfg["channels"])
                        resampler = audio_mod.StreamingResampler(fmt.sample_rate, RATE)
                    self._send_event(out.payload)
                elif fmt is not None and resampler is not None and connected:
                    # Nothing is held for a peer that is not up yet, and a peer that
                    # stops taking audio is cut, not buffered for.
                    if self.track.buffered_s > MAX_LISTENER_BUFFER_S:
                        raise SlowListener("listener is not taking its audio")
                    mono = audio_mod.to_mono_float(audio_mod.decode(out.data, fmt))
                    self.track.start(time.monotonic())
                    self.track.feed(audio_mod.to_int16(resampler.push(mono)).tobytes())
            self.track.end_of_audio()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.track.drained.wait(), self.track.buffered_s + 2)
        except ProtocolError as exc:  # fell behind: cut off
            self._send_event(exc.event())
        finally:
            await asyncio.sleep(0.2)  # let the last events leave the channel
            await self.close()


async def webrtc_listen(request: Request) -> JSONResponse:
    """``POST /v1/sessions/{id}/listen/webrtc``: hear a running session over WebRTC."""
    state: ServerState = request.app.state.streamserver
    try:
        who = caller(state.cfg, request, state.tokens)
        if who is None:
            raise Unauthorized("missing or invalid API key")
        state.count_offer(who, time.monotonic())
        body = await _read_offer(request)
        relay = await state.find_relay(request.path_params["session_id"], who)
        listener = WebRtcListener(relay, state.cfg.webrtc_connect_timeout_s)
    except ProtocolError as exc:
        return _error_response(exc)
    try:
        sdp = await listener.negotiate(body["sdp"])
    except ProtocolError as exc:
        await listener.close()
        return _error_response(exc)
    except Exception:
        log.exception("webrtc listener negotiation failed")
        await listener.close()
        return _error_response(ProtocolError("internal error", "internal_error"))
    state.metrics.listeners.inc()
    listener.on_closed = state.metrics.listeners.dec
    listener.start()
    return JSONResponse({"sdp": sdp, "type": "answer"})


WEBRTC_ROUTES = [
    Route(OFFER_PATH, webrtc_offer, methods=["POST"]),
    Route(LISTEN_PATH, webrtc_listen, methods=["POST"]),
]
