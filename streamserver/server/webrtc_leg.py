"""A WebRTC peer as one leg of the redacting bridge (docs/webrtc.md, docs/bridge.md).

``POST /v1/webrtc/offer`` with ``bridge`` and ``role`` in ``config``: the peer
joins that bridge (server/bridge.py) instead of getting a session of its own.

* its audio track (Opus, decoded by aiortc) goes to the bridge as mono
  ``pcm_s16le`` at 48 kHz, holes in the RTP timeline filled with silence;
* the other leg's redacted audio comes back on a :class:`RedactedAudioTrack`
  whose clock starts when the bridge session does (``session.begin``), with
  ``delay_ms`` of silence first: what the other party said at *t* is released
  at their *t* + D and plays about then;
* the call's events (``bridge.joined``, then those of protocol v1 with roles) go
  out on the ``events`` data channel; ``close`` on it ends the call's input.

The peer holds one session slot from the offer until it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..audio import AudioFormat
from ..config import ConfigError, SessionConfig
from ..protocol import (
    CLOSE_TIMEOUT,
    BadConfig,
    IdleTimeout,
    ProtocolError,
    SessionTooLong,
    TooManySessions,
    dumps,
    parse_client_text,
)
from ..runtime import SendQueueFull
from . import bridge
from .webrtc import (
    EVENTS_LABEL,
    FIXED_SETTINGS,
    MAX_LISTENER_BUFFER_S,
    RATE,
    EventChannel,
    InboundAudio,
    PeerSession,
    RedactedAudioTrack,
    _cancel,
    _error_response,
    answer_offer,
    session_config,
)

if TYPE_CHECKING:
    from .state import ServerState

log = logging.getLogger("streamserver.webrtc")

LEG_FORMAT = AudioFormat("pcm_s16le", RATE, 1)
_BRIDGE_KEYS = ("bridge", "role")
LEAVE_WAIT_S = 30.0  # after a hang-up, the bridge lets the leg go at once; never hang


def leg_settings(raw: Mapping[str, Any],
                 state: ServerState) -> tuple[dict[str, Any], SessionConfig]:
    """The leg's settings for :func:`bridge.join` (the offer's ``config`` with the
    transport's fixed audio format), and what they say on their own. Raises
    BadConfig for what is refused before any negotiation: a bad setting, a fixed
    one changed (``pace=asap``), the operator's floor. ``entities`` (``none``
    allowed), ``role`` and the call's shared settings are checked by the join."""
    own = {k: v for k, v in raw.items() if k not in _BRIDGE_KEYS and k != "entities"}
    try:
        scfg = state.cfg.apply_floor(session_config(own))
    except ConfigError as exc:
        raise BadConfig(str(exc)) from None
    if "pcm_s16le" not in state.cfg.allowed_encodings:  # what WebRTC audio becomes
        raise BadConfig("WebRTC needs pcm_s16le, which is not allowed on this server")
    return {**raw, **FIXED_SETTINGS}, scfg


class _PeerSink:
    """The bridge's output for this peer (a :class:`bridge.LegSink`)."""

    def __init__(self, peer: WebRtcBridgeLeg) -> None:
        self.peer = peer

    async def play(self, data: bytes) -> None:
        self.peer.play(data)

    async def event(self, payload: dict[str, Any]) -> None:
        self.peer.send_event(payload)

    async def end(self, error: ProtocolError | None) -> None:
        pass  # the peer sees its leg done and closes (WebRtcBridgeLeg._supervise)


class WebRtcBridgeLeg:
    """One peer connection as one leg of a bridge.

    ``negotiate`` → ``join`` → ``start`` (no await between the last two); if
    negotiating or joining fails, ``abort`` (the slot is freed; a bridge the join
    refused is left as it was). ``end`` asks it to leave; ``done`` ends once the
    peer is closed and its slot is free.
    """

    def __init__(self, state: ServerState, owner: str, leg_id: str, delay_ms: int,
                 registry: dict[str, PeerSession]) -> None:
        self.state = state
        self.owner = owner
        self.session_id = leg_id  # the slot it holds; what the answer calls session_id
        self.registry = registry
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates
        self.out_track = RedactedAudioTrack(0)  # the lead is added when the call starts
        self.events = EventChannel()
        self.leg: bridge.BridgeLeg | None = None
        self.done: asyncio.Task[None] | None = None
        self._delay_ms = delay_ms  # the bridge's own, once session.begin says it
        self._error: ProtocolError | None = None  # why this side ended the leg
        self._remote: MediaStreamTrack | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # Audio held for a peer that does not take it (not connected yet, or stalled).
        self._max_buffer_s = (delay_ms / 1000 + state.cfg.webrtc_connect_timeout_s
                              + MAX_LISTENER_BUFFER_S)

    # -- set-up ---------------------------------------------------------------------
    async def negotiate(self, sdp: str) -> str:
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        return await answer_offer(pc, sdp, self.out_track)

    def join(self, request: tuple[str, str], params: Mapping[str, Any],
             base_url: str) -> bridge.BridgeLeg:
        """Join the owner's bridge; raises BridgeFull or BadConfig (nothing joined)."""
        self.leg = bridge.join(self.state, self.owner, request, params, LEG_FORMAT,
                               _PeerSink(self), base_url)
        self.send_event({"type": "bridge.joined", "bridge": request[0], "role": request[1],
                         "waiting": self.leg.bridge.host is None})
        return self.leg

    def start(self) -> None:
        assert self.leg is not None
        self.registry[self.session_id] = self
        if self._remote is not None:
            self._tasks.append(asyncio.create_task(self._read_audio(self._remote)))
        else:  # cannot happen with an audio m-line, but never hang
            self.end(ProtocolError("the offer has no audio track", "bad_offer"))
        self._tasks.append(asyncio.create_task(self._connect_deadline()))
        self.done = asyncio.create_task(self._supervise(self.leg))
        log.info("webrtc bridge leg", extra={"session": self.session_id,
                                             "role": self.leg.role})

    async def abort(self) -> None:
        """Negotiation or the join failed: close the peer, free the slot."""
        self._hang_up()
        self.out_track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self.state.leave(self.session_id)

    def end(self, reason: ProtocolError | None = None) -> None:
        """Leave the bridge. ``None``: the call's input ends as on a client
        ``close`` (the rest still reaches this peer, then it is closed). An error:
        a hang-up; the peer gets the error event, then is closed."""
        if reason is not None and self._error is None:
            self._error = reason
        if (leg := self._live_leg()) is None:
            return
        if reason is None:
            leg.end_input()
        else:
            leg.hangup()

    def _hang_up(self) -> None:
        """The peer is gone: nothing more is sent to it."""
        if (leg := self._live_leg()) is not None:
            leg.hangup()

    def _live_leg(self) -> bridge.BridgeLeg | None:
        """The leg while the bridge has it: once done, it is left alone (the
        bridge's id may already name a new bridge)."""
        leg = self.leg
        return leg if leg is not None and not leg.done.done() else None

    # -- the bridge's output ------------------------------------------------------------
    def _start_clock(self, delay_ms: int) -> None:
        """Output position 0 is now, then ``delay_ms`` of silence, as a session's."""
        if not self.out_track.started:
            self.out_track.start(time.monotonic())
            self.out_track.feed(bytes(2 * (delay_ms * RATE // 1000)))

    def play(self, data: bytes) -> None:
        self._start_clock(self._delay_ms)  # session.begin came first: a no-op
        if self.out_track.buffered_s > self._max_buffer_s:
            self.end(SendQueueFull("the peer is not taking its audio"))
            return
        self.out_track.feed(data)

    def send_event(self, payload: dict[str, Any]) -> None:
        if payload.get("type") == "session.begin":
            cfg = payload.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("delay_ms"), int):
                self._delay_ms = cfg["delay_ms"]
            self._start_clock(self._delay_ms)
        try:
            self.events.send(payload)
        except SendQueueFull as exc:
            self.end(exc)

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
            self._hang_up()

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
            self.end(BadConfig("a bridge leg is configured in the offer's config"))
        elif msg.type == "close":
            self.end(None)
        # flush (the bridge's output is paced by the call, not per leg), keepalive: nothing

    async def _connect_deadline(self) -> None:
        timeout = self.state.cfg.webrtc_connect_timeout_s
        await asyncio.sleep(timeout)
        if self.pc.connectionState != "connected":
            self.end(ProtocolError(f"the peer did not connect within {timeout:g} s",
                                   "connect_timeout", CLOSE_TIMEOUT))

    # -- input --------------------------------------------------------------------------
    async def _read_audio(self, track: MediaStreamTrack) -> None:
        assert self.leg is not None
        leg = self.leg
        idle = self.state.cfg.idle_timeout_s
        inbound = InboundAudio()
        while not leg.done.done() and not leg.ended_input:
            try:
                frame = await asyncio.wait_for(track.recv(), idle)
            except MediaStreamError:  # the track ended (BYE) or the peer closed
                if self.pc.connectionState == "connected":
                    self.end(None)
                else:
                    self._hang_up()
                return
            except TimeoutError:
                self.end(IdleTimeout("no audio within the idle timeout"))
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            pcm = inbound.pcm(frame)
            if not pcm.size:
                continue
            try:
                leg.push(pcm.tobytes())
            except ProtocolError as exc:
                self.end(exc)
                return

    # -- teardown -----------------------------------------------------------------------
    async def _supervise(self, leg: bridge.BridgeLeg) -> None:
        try:
            limit = self.state.cfg.max_session_s
            await asyncio.wait({leg.done}, timeout=limit)
            if not leg.done.done():
                self.end(SessionTooLong(f"the session reached the server's limit of "
                                        f"{limit:g} s; input closed"))
            await asyncio.wait({leg.done}, timeout=LEAVE_WAIT_S)
            result = leg.done.result() if leg.done.done() else None
            error = self._error or result
            if error is None:
                await self._drain()
            else:
                log.info("bridge leg error", extra={"session": self.session_id,
                                                    "code": error.code})
                channel = self.events.channel
                if channel is not None and channel.readyState == "open":
                    with contextlib.suppress(Exception):
                        channel.send(dumps(error.event()))
                    await self.events.flushed()
        except asyncio.CancelledError:
            log.info("bridge leg cancelled", extra={"session": self.session_id})
            raise
        except Exception:
            log.exception("webrtc bridge leg failed", extra={"session": self.session_id})
        finally:
            await self._cleanup(leg)

    async def _drain(self) -> None:
        """The call is over: the rest of the other party's audio plays out (briefly)."""
        self.out_track.end_of_audio()
        if self.pc.connectionState == "connected":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.out_track.drained.wait(),
                                       self.out_track.buffered_s + 2.0)
            await self.events.flushed()

    async def _cleanup(self, leg: bridge.BridgeLeg) -> None:
        if not leg.done.done():  # cancelled (shutdown deadline): the call ends too
            leg.hangup()
        for task in self._tasks:
            await _cancel(task)
        self.out_track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self.state.leave(self.session_id)
        self.registry.pop(self.session_id, None)
        log.info("webrtc bridge leg ended", extra={"session": self.session_id})


async def answer_as_leg(request: Request, state: ServerState, owner: str, sdp: str,
                        raw: Mapping[str, Any],
                        registry: dict[str, PeerSession]) -> JSONResponse:
    """The offer's answer when its ``config`` names a bridge: the peer joins it as
    ``role``. Refusals are the offer's HTTP errors (``bridge_full`` 409); a refused
    peer leaves nothing behind."""
    try:
        request_ = bridge.bridge_request(raw)
        assert request_ is not None  # "bridge" is in raw
        params, scfg = leg_settings(raw, state)
        leg_id = uuid.uuid4().hex
        await state.claim(leg_id, owner)
    except ProtocolError as exc:
        return _error_response(exc)
    try:
        peer = WebRtcBridgeLeg(state, owner, leg_id, scfg.delay_ms, registry)
    except BaseException:
        state.leave(leg_id)
        raise
    try:
        answer = await peer.negotiate(sdp)
        if state.shutting_down:
            raise TooManySessions("server is shutting down; try later")
        peer.join(request_, params, f"{request.url.scheme}://{request.url.netloc}")
    except ProtocolError as exc:
        await peer.abort()
        return _error_response(exc)
    except Exception:
        log.exception("webrtc bridge leg negotiation failed", extra={"session": leg_id})
        await peer.abort()
        return _error_response(ProtocolError("internal error", "internal_error"))
    peer.start()
    return JSONResponse({"sdp": answer, "type": "answer", "session_id": leg_id,
                         "bridge": request_[0], "role": request_[1]})
