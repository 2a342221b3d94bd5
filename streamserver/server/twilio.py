"""Twilio Media Streams (``/v1/twilio``) over the same session core.

Twilio connects a call's audio to a WebSocket and speaks JSON: ``connected``,
``start`` (streamSid, callSid, tracks, ``mediaFormat`` audio/x-mulaw 8000 Hz
mono, ``customParameters``), ``media`` (track, chunk, timestamp, base64 20 ms
mu-law), ``dtmf``, ``mark`` and ``stop``. What the stream is depends on the TwiML:

* ``<Connect><Stream>`` with ``bridge``/``role`` parameters: a **leg of a bridge**
  (server/bridge.py). The other leg's redacted audio comes back as ``media`` with
  this streamSid, as it is released (t + D), each batch followed by a ``mark``.
* ``<Start><Stream track="both_tracks">``: a **fork** of the call. Inbound
  (the caller) and outbound (the agent) are two channels of one session with
  caller/agent roles; redacted output goes to listeners and the recording.
* Anything else (one inbound track, no bridge): one mono session whose output
  goes to listeners and the recording, never back to the call.

A live call is ``pace=realtime`` (the default). ``pace=asap`` is for replaying
recorded calls and tests (a fork or a plain stream, not a bridge leg): the
deadline is in audio time, and the stream is read no faster than the session
decides (TCP flow control holds the sender), as on protocol v1.

Policy comes from ``customParameters`` (any protocol v1 setting, validated as
always) and the API key from ``Authorization: Bearer`` or a ``token``
parameter (a key, or a one-use token from ``POST /v1/tokens``). Keypad presses
(``dtmf`` events) are masked like tones: a DTMF redaction, never the digit.

Twilio has no error message: a broken stream is closed with a close code and
the error code as the reason (docs/twilio.md), and logged (ids and codes only).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import audio as audio_mod
from ..core.bridge import LegAligner
from ..core.session import AudioOut, Event
from ..protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    BadAudio,
    BadConfig,
    ConfigRequired,
    ProtocolError,
    Unauthorized,
)
from . import bridge
from .app import StreamHandler
from .auth import ANONYMOUS, TOKEN_PREFIX, key_owner
from .host import SessionHost
from .state import ServerState

log = logging.getLogger("streamserver.twilio")

TRANSPORT = "twilio"
RATE = 8000
FRAME_BYTES = 160  # 20 ms of mu-law at 8 kHz: what Twilio sends and expects
MAX_PAYLOAD_BYTES = 8000  # one second in one message: far beyond what Twilio sends
TRACKS = ("inbound", "outbound")
FORK_ROLES = ("caller", "agent")  # inbound is the caller, outbound what the call hears
MAX_SKEW_MS = 100
# customParameters that are not session settings.
_NOT_SETTINGS = {"token", "api_key"}
MULAW = audio_mod.AudioFormat("mulaw", RATE, 1)
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class BadMessage(ProtocolError):
    code = "bad_message"
    close_code = CLOSE_INVALID_DATA


class TwilioHandler(StreamHandler):
    """One Media Streams WebSocket. Inherits protocol v1's receive loop (idle
    timeout, ``max_session_s``, drain) and session life (:class:`SessionHost`)."""

    def __init__(self, state: ServerState, ws: WebSocket) -> None:
        super().__init__(state, ws)
        self.host = SessionHost(state, ANONYMOUS, TRANSPORT)
        self.session_id = self.host.session_id
        self.stream_sid = ""
        self.tracks: tuple[str, ...] = ()
        self.leg: bridge.BridgeLeg | None = None
        self.fork: LegAligner | None = None
        self.marks_sent = 0
        self.marks_played = 0

    async def run(self) -> None:
        await self.ws.accept()
        try:
            await self._serve_twilio()
        except ProtocolError as exc:
            await self._close_with_error(exc)
        except WebSocketDisconnect:
            log.info("twilio stream closed", extra={"session": self.session_id})
        except Exception:
            log.exception("twilio stream failed", extra={"session": self.session_id})
            await self._close_with_error(
                ProtocolError("internal error", "internal_error", CLOSE_INTERNAL))
        finally:
            if self.leg is not None:
                self.leg.hangup()
            await self.host.stop()

    async def _close_with_error(self, exc: ProtocolError) -> None:
        log.info("twilio stream error", extra={"session": self.session_id, "code": exc.code})
        self.host.refused(exc.code)
        await self.host.stop()
        with contextlib.suppress(Exception):
            await self.ws.close(exc.close_code, exc.code)

    # -- messages -------------------------------------------------------------------
    async def _serve_twilio(self) -> None:
        while True:
            if self.leg is not None and self.leg.done.done():
                await self._leg_over(self.leg.done.result())
                return
            if self.runner is not None and not self.runner.realtime:
                await self._wait_room()  # asap: TCP flow control holds the sender
            msg = await self._receive()
            if msg is None:
                await self._end_input(shutdown=True)
                return
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            if msg.get("bytes") is not None:
                raise BadMessage("Media Streams messages are JSON text")
            obj = _parse(msg.get("text") or "")
            event = obj["event"]
            if event == "connected":
                continue
            if event == "start":
                await self._on_start(obj)
            elif event == "media":
                self._on_media(obj)
            elif event == "dtmf":
                self._on_dtmf(obj)
            elif event == "mark":
                self.marks_played += 1  # our mark came back: Twilio played that far
            elif event == "stop":
                await self._end_input(shutdown=False)
                return
            else:
                raise BadMessage("unknown event; expected connected, start, media, dtmf, "
                                 "mark or stop")

    async def _on_start(self, obj: dict[str, Any]) -> None:
        if self.stream_sid:
            raise BadMessage("a second start on one stream")
        start = obj.get("start")
        if not isinstance(start, dict):
            raise BadMessage("start needs a start object")
        sid = start.get("streamSid") or obj.get("streamSid")
        if not isinstance(sid, str) or not sid or len(sid) > 64:
            raise BadMessage("start needs a streamSid")
        fmt = start.get("mediaFormat") or {}
        if not isinstance(fmt, dict) or (
                str(fmt.get("encoding", "")).lower() != "audio/x-mulaw"
                or str(fmt.get("sampleRate")) != str(RATE)
                or str(fmt.get("channels", 1)) != "1"):
            raise BadConfig("mediaFormat must be audio/x-mulaw, 8000 Hz, 1 channel")
        tracks = start.get("tracks") or ["inbound"]
        if (not isinstance(tracks, list) or not tracks
                or any(t not in TRACKS for t in tracks) or len(set(tracks)) != len(tracks)):
            raise BadConfig("tracks must be inbound, outbound or both")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float | bool)
                for k, v in params.items()):
            raise BadConfig("customParameters must be a flat object")
        self.stream_sid = sid
        self.tracks = tuple(t for t in TRACKS if t in tracks)
        if _SID.fullmatch(sid) and sid not in self.state.active:
            # Listeners find the call by its streamSid: /v1/sessions/{streamSid}/listen.
            self.host.session_id = self.session_id = sid
        self.host.owner = self._owner(params)
        await self.host.admit()
        settings = {k: v for k, v in params.items() if k not in _NOT_SETTINGS}
        self.configure_by = self.expires_at  # configured: no configure deadline now
        scheme = "https" if self.ws.url.scheme == "wss" else "http"
        base_url = f"{scheme}://{self.ws.url.netloc}"
        if (request := bridge.bridge_request(settings)) is not None:
            if self.tracks != ("inbound",):
                raise BadConfig("a bridge leg streams the inbound track only "
                                "(<Connect><Stream>)")
            self.leg = bridge.join(self.state, self.host.owner, request,
                                   {**settings, "encoding": "mulaw", "sample_rate": RATE},
                                   MULAW, _TwilioLeg(self), base_url)
            log.info("twilio bridge leg", extra={"session": self.session_id,
                                                 "role": request[1]})
            return
        if len(self.tracks) == 2:  # a fork of the call: caller and agent, one session
            roles = settings.pop("channel_roles", ",".join(FORK_ROLES))
            scfg = self.host.config({**settings, "encoding": "pcm_s16le", "sample_rate": RATE,
                                     "channels": 2, "channel_roles": roles})
            self.fork = LegAligner(2, MAX_SKEW_MS * RATE // 1000)
            self.fork.join(0)
            self.fork.join(1)
        else:
            scfg = self.host.config({**settings, "encoding": "mulaw", "sample_rate": RATE,
                                     "channels": 1})
        self.host.start(scfg, base_url, _nowhere)

    def _owner(self, params: dict[str, Any]) -> str:
        cfg = self.state.cfg
        if not cfg.api_key_hashes:
            return ANONYMOUS
        header = self.ws.headers.get("authorization", "")
        offered = header[7:] if header.lower().startswith("bearer ") else str(
            params.get("token") or params.get("api_key") or "")
        if offered.startswith(TOKEN_PREFIX):
            owner = self.state.tokens.redeem(offered)
            owner = owner if owner in cfg.api_key_hashes else None
        else:
            owner = key_owner(cfg, offered) if offered else None
        if owner is None:
            raise Unauthorized("missing or invalid API key (Authorization header or a "
                               "token customParameter)")
        return owner

    def _on_media(self, obj: dict[str, Any]) -> None:
        if not self.stream_sid:
            raise ConfigRequired("media before start")
        media = obj.get("media")
        if not isinstance(media, dict):
            raise BadMessage("media needs a media object")
        track = media.get("track", "inbound")
        if track not in self.tracks:
            raise BadMessage("media on a track this stream did not start")
        payload = media.get("payload")
        if not isinstance(payload, str) or len(payload) > 2 * MAX_PAYLOAD_BYTES:
            raise BadAudio("media payload must be base64 mu-law, at most 1 s")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise BadAudio("media payload is not base64") from None
        if not data or len(data) > MAX_PAYLOAD_BYTES:
            raise BadAudio("media payload must be 1 byte .. 1 s of mu-law")
        if self.leg is not None:
            self.leg.push(data)
        elif self.fork is not None:
            samples = audio_mod.decode(data, MULAW)[:, 0]
            frames = self.fork.push(TRACKS.index(track), samples)
            if frames.shape[0]:
                self.host.push_audio(frames.tobytes())
        else:
            self.host.push_audio(data)

    def _on_dtmf(self, obj: dict[str, Any]) -> None:
        """A key press: its tone is masked where it is (DTMF in the policy); the
        digit itself is never kept, logged or reported."""
        if not self.stream_sid:
            raise ConfigRequired("dtmf before start")
        session = None
        if self.leg is not None and self.leg.bridge.host is not None:
            runner = self.leg.bridge.host.runner
            session = runner.session if runner is not None else None
        elif self.host.runner is not None:
            session = self.host.runner.session
        if session is not None:
            session.keypad_pressed()

    async def _end_input(self, shutdown: bool) -> None:
        """``stop`` (the call or stream ended) or the server draining."""
        if self.leg is not None:
            self.leg.hangup()  # Twilio is gone after stop: nothing more is sent
            await self.ws.close(CLOSE_GOING_AWAY if shutdown else CLOSE_NORMAL)
            return
        if self.runner is None or self.run_task is None:
            await self.ws.close(CLOSE_NORMAL)
            return
        if self.fork is not None:
            for channel in (0, 1):  # what either track still holds
                frames = self.fork.leave(channel)
                if frames.shape[0]:
                    self.host.push_audio(frames.tobytes())
        if shutdown:
            await self._end_for_shutdown()
            return
        self.runner.finish()
        await self.run_task  # every sample released to listeners and the recording
        await self.ws.close(CLOSE_NORMAL)

    async def _leg_over(self, error: ProtocolError | None) -> None:
        """The bridge ended (the other leg hung up, or it failed): close the stream,
        and Twilio goes on to the next TwiML verb."""
        if error is not None:
            with contextlib.suppress(Exception):  # drop what Twilio buffered, unplayed
                await self.ws.send_text(orjson.dumps(
                    {"event": "clear", "streamSid": self.stream_sid}).decode())
            raise error
        await self.ws.close(CLOSE_NORMAL)

    async def send_media(self, data: bytes) -> None:
        """Audio for the call to play, 20 ms a message, then a mark."""
        sid = self.stream_sid
        for i in range(0, len(data), FRAME_BYTES):
            await self.ws.send_text(orjson.dumps({
                "event": "media", "streamSid": sid,
                "media": {"payload": base64.b64encode(data[i : i + FRAME_BYTES]).decode()},
            }).decode())
        self.marks_sent += 1
        await self.ws.send_text(orjson.dumps({
            "event": "mark", "streamSid": sid, "mark": {"name": str(self.marks_sent)},
        }).decode())


class _TwilioLeg:
    """A Media Stream as a bridge leg's output: media back, no events."""

    def __init__(self, handler: TwilioHandler) -> None:
        self.handler = handler

    async def play(self, data: bytes) -> None:
        # At once, as released: holding a short block back for a whole 20 ms
        # would add up to 20 ms to every frame's t + D.
        await self.handler.send_media(data)

    async def event(self, payload: dict[str, Any]) -> None:
        pass  # Media Streams carry no transcript: listeners and webhooks do

    async def end(self, error: ProtocolError | None) -> None:
        pass  # the handler sees the leg done and closes the stream (_leg_over)


async def _nowhere(out: AudioOut | Event) -> None:
    """Fork and plain streams: output goes to listeners and the recording only."""


def _parse(text: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadMessage("messages must be JSON objects") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        raise BadMessage("messages must be JSON objects with an event")
    return obj

