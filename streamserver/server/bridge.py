"""The redacting bridge: two call legs joined into one conversation.

What leg A says reaches leg B delayed by D with A's PII masked by A's policy,
and the other way round. Legs join by a bridge id and a role (``agent`` or
``caller``) over any transport — protocol v1, Twilio Media Streams, AudioSocket
— each in its own audio format. The bridge is *one* session of the core: two
channels (agent, caller) with ``channel_roles`` and per-channel policies
(``channel_entities``), so the agent's question arms the caller's answer, the
transcript says who spoke, the recording has two channels and listeners get both.

Lifecycle: the first leg creates the bridge and waits (its audio is dropped:
nobody can hear it yet, and nothing unredacted goes anywhere); the session
starts when the second leg joins; a leg that never arrives ends the first with
``bridge_timeout``; a leg that hangs up ends the bridge, and the other leg gets
the rest of what was said (up to D) before a clean close. A third leg, or a
second leg in a taken role, is refused with ``bridge_full``.

Settings shared by the call (delay, audio/text substitution, recording, ...)
come from the first leg; a second leg that names one of them with another
value is refused. ``entities`` is each leg's own: what is masked in *its*
speech before the other leg hears it (``none``: passed through untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, Protocol

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import audio as audio_mod
from ..config import SessionConfig
from ..core.bridge import LegAligner
from ..core.session import AudioOut, Event
from ..core.types import ANALYSIS_RATE
from ..protocol import CLOSE_TIMEOUT, BadAudio, BadConfig, ProtocolError
from .auth import caller
from .host import SessionHost
from .state import ServerState

log = logging.getLogger("streamserver.bridge")

ROLES = ("agent", "caller")  # channel 0, channel 1 of the bridge session
BRIDGE_RATE = ANALYSIS_RATE  # the bridge session's own format: 16 kHz, 2 channels
MAX_SKEW_MS = 60  # a leg that falls further behind gets silence inserted
MAX_BRIDGE_ID = 64
# Per-leg settings; every other setting is the call's and comes from the first leg.
_LEG_SETTINGS = {"entities", "encoding", "sample_rate", "channels", "pace"}
_TRANSPORT_KEYS = {"bridge", "role", "token"}


class BridgeFull(ProtocolError):
    code = "bridge_full"
    close_code = 4409


class BridgeTimeout(ProtocolError):
    code = "bridge_timeout"
    close_code = CLOSE_TIMEOUT


class LegSink(Protocol):
    """A transport's side of a leg: what it does with the bridge's output."""

    async def play(self, data: bytes) -> None:
        """The other leg's redacted audio, in this leg's own encoding and rate."""

    async def event(self, payload: dict[str, Any]) -> None:
        """A protocol v1 event of the call (legs that cannot carry events drop it)."""

    async def end(self, error: ProtocolError | None) -> None:
        """The bridge is over for this leg: close cleanly (None) or with the error."""


def bridge_request(params: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(bridge id, role)`` from a leg's settings, or None when it is no bridge leg."""
    if "bridge" not in params:
        return None
    bridge_id = str(params.get("bridge") or "").strip()
    if not bridge_id or len(bridge_id) > MAX_BRIDGE_ID or not bridge_id.isprintable():
        raise BadConfig(f"bridge must be an id of 1..{MAX_BRIDGE_ID} printable characters")
    role = str(params.get("role") or "").strip().lower()
    if role not in ROLES:
        raise BadConfig("a bridge leg needs role=agent or role=caller")
    return bridge_id, role


def leg_entities(params: Mapping[str, Any]) -> tuple[str, ...] | None:
    """A leg's ``entities``: None when not given, () for ``none`` (passed untouched)."""
    raw = params.get("entities")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip().lower() in ("none", ""):
        return ()
    try:
        return SessionConfig.from_params({"entities": raw}).entities
    except ValueError as exc:  # ConfigError: names the valid entities
        raise BadConfig(str(exc)) from None


class BridgeLeg:
    """One joined leg: input conversion in, output conversion out."""

    def __init__(self, bridge: Bridge, role: str, fmt: audio_mod.AudioFormat,
                 sink: LegSink, entities: tuple[str, ...]) -> None:
        self.bridge = bridge
        self.role = role
        self.channel = ROLES.index(role)
        self.fmt = fmt
        self.sink = sink
        self.entities = entities
        self.gone = False  # nothing more can be sent to it
        self.ended_input = False
        self.done: asyncio.Future[ProtocolError | None] = (
            asyncio.get_running_loop().create_future())
        self._in = audio_mod.StreamingResampler(fmt.sample_rate, BRIDGE_RATE)
        self._out = audio_mod.StreamingResampler(BRIDGE_RATE, fmt.sample_rate)

    def push(self, data: bytes) -> None:
        """Audio from this leg, in its own encoding (raises BadAudio, or the
        bridge's failure)."""
        try:
            frames = audio_mod.decode(data, self.fmt)
        except audio_mod.AudioFormatError as exc:
            raise BadAudio(str(exc)) from None
        if self.ended_input or self.done.done():
            return
        mono = audio_mod.to_int16(self._in.push(audio_mod.to_mono_float(frames)))
        self.bridge.push(self, mono, time.monotonic())

    def end_input(self) -> None:
        """This leg said it is done (protocol v1 ``close``): the call ends, and the
        leg still gets the rest of the other's audio and events until it has."""
        if not self.ended_input and not self.done.done():
            self.ended_input = True
            self.bridge.leg_left(self)

    def hangup(self) -> None:
        """The transport's peer is gone (disconnect, Twilio ``stop``, AudioSocket
        hang-up): the call ends and nothing more is sent to this leg."""
        self.gone = True
        self.end_input()

    async def play(self, samples: np.ndarray) -> None:
        if self.gone:
            return
        out = audio_mod.to_int16(self._out.push(samples.astype(np.float32) / 32768))
        if out.size:
            await self.sink.play(audio_mod.encode(out[:, None], self.fmt))

    def finish(self, error: ProtocolError | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


class Bridge:
    def __init__(self, state: ServerState, key: tuple[str, str], base: Mapping[str, Any],
                 base_url: str) -> None:
        self.state = state
        self.key = key
        self.owner, self.bridge_id = key
        self.base = dict(base)  # the first leg's settings: the call's
        self.base_url = base_url
        self.legs: dict[str, BridgeLeg] = {}
        self.host: SessionHost | None = None
        self.aligner = LegAligner(2, MAX_SKEW_MS * BRIDGE_RATE // 1000)
        self.dropped_ms = 0.0  # audio before the other leg joined (nobody to hear it)
        self._ending = False
        self._timeout: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # -- joining ------------------------------------------------------------------
    def add(self, role: str, leg: BridgeLeg) -> None:
        if self._ending:
            raise BridgeFull("this bridge has ended; use a new bridge id")
        if len(self.legs) >= len(ROLES):
            raise BridgeFull("this bridge already has both legs")
        if role in self.legs:
            raise BridgeFull(f"the {role} leg of this bridge has already joined")
        self.legs[role] = leg
        if len(self.legs) == 1:
            self._timeout = asyncio.create_task(self._join_deadline())
        else:
            self._start()

    def _config(self) -> SessionConfig:
        assert self.host is not None
        shared = {k: v for k, v in self.base.items()
                  if k not in _LEG_SETTINGS and k not in _TRANSPORT_KEYS}
        per_channel = tuple(self.legs[r].entities for r in ROLES)
        union = tuple(dict.fromkeys(e for per in per_channel for e in per))
        scfg = self.host.config(shared)
        return replace(scfg, encoding="pcm_s16le", sample_rate=BRIDGE_RATE, channels=2,
                       channel_roles=ROLES, pace="realtime",
                       entities=union or scfg.entities, channel_entities=per_channel)

    def _start(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
        self.host = SessionHost(self.state, self.owner, "bridge")
        scfg = self._config()
        scfg.validate()
        self.host.start(scfg, self.base_url, self._deliver)
        for leg in self.legs.values():
            self.aligner.join(leg.channel)
        log.info("bridge started", extra={"session": self.host.session_id,
                                          "dropped_ms": round(self.dropped_ms)})
        self._closer = asyncio.create_task(self._watch())

    async def _join_deadline(self) -> None:
        timeout = self.state.cfg.bridge_join_timeout_s
        await asyncio.sleep(timeout)
        if self.host is None:
            self._finish_all(BridgeTimeout(f"the other leg did not join within {timeout:g} s"))

    # -- audio --------------------------------------------------------------------
    def push(self, leg: BridgeLeg, mono16k: np.ndarray, arrived: float) -> None:
        if self._ending:  # a leg hung up: the call's input is closed
            return
        if self.host is None or self.host.runner is None:
            self.dropped_ms += 1000 * mono16k.size / BRIDGE_RATE
            return
        frames = self.aligner.push(leg.channel, mono16k, arrived)
        self._feed(frames)

    def _feed(self, frames: np.ndarray) -> None:
        assert self.host is not None
        if frames.shape[0] and self.host.runner is not None:
            # pcm_s16le, interleaved (agent, caller); as old as its oldest sample
            self.host.push_audio(frames.tobytes(), self.aligner.arrived)

    async def _deliver(self, out: AudioOut | Event) -> None:
        if isinstance(out, Event):
            for leg in list(self.legs.values()):
                if not leg.gone:
                    with contextlib.suppress(Exception):
                        await leg.sink.event(out.payload)
            return
        stereo = np.frombuffer(out.data, dtype="<i2").reshape(-1, 2)
        for speaker in ROLES:  # each voice goes to the other leg
            listener = self.legs.get(ROLES[1 - ROLES.index(speaker)])
            if listener is not None:
                await listener.play(stereo[:, ROLES.index(speaker)])

    # -- ending -------------------------------------------------------------------
    def leg_left(self, leg: BridgeLeg) -> None:
        if self.host is None or self.host.runner is None:  # never started
            self._finish_all(None)
            return
        if not self._ending:
            self._ending = True
            with contextlib.suppress(ProtocolError):
                self._feed(self.aligner.leave(leg.channel))
            self.host.runner.finish()  # the rest (up to D) still reaches the other leg
        if leg.gone:
            leg.finish(None)

    async def _watch(self) -> None:
        """The bridge session ended (input finished, or failed): end every leg."""
        assert self.host is not None and self.host.run_task is not None
        error: ProtocolError | None = None
        try:
            await self.host.run_task
        except ProtocolError as exc:
            error = exc
        except Exception:
            log.exception("bridge session failed", extra={"session": self.host.session_id})
            error = ProtocolError("internal error", "internal_error", 1011)
        if error is not None:
            self.host.error_code = error.code
        await self.host.stop()
        self._finish_all(error)

    def _finish_all(self, error: ProtocolError | None) -> None:
        self._ending = True
        if self._timeout is not None:
            self._timeout.cancel()
        if self.state.bridges.get(self.key) is self:  # not a new bridge of the same id
            del self.state.bridges[self.key]
        for leg in self.legs.values():
            leg.finish(error)


def join(state: ServerState, owner: str, request: tuple[str, str],
         params: Mapping[str, Any], fmt: audio_mod.AudioFormat, sink: LegSink,
         base_url: str) -> BridgeLeg:
    """Join (or open) the caller's bridge ``request = (id, role)``; ids are per key.

    ``params``: the leg's settings (validated here; BadConfig names the rule).
    ``fmt``: the leg's audio, mono. Raises BridgeFull for a third leg or a taken role.
    """
    bridge_id, role = request
    if fmt.channels != 1:
        raise BadConfig("a bridge leg is mono (channels=1)")
    if str(params.get("pace", "realtime")).lower() != "realtime":
        raise BadConfig("bridges run in real time (pace=realtime)")
    if "channel_roles" in params or "channel_entities" in params:
        raise BadConfig("a bridge's channels are its legs: give each leg role=agent|caller")
    entities = leg_entities(params)
    clean = {k: v for k, v in params.items() if k not in _TRANSPORT_KEYS and k != "entities"}
    try:
        SessionConfig.from_params(clean)  # every other setting valid on its own
    except ValueError as exc:
        raise BadConfig(str(exc)) from None
    key = (owner, bridge_id)
    bridge = state.bridges.get(key)
    if bridge is None:
        bridge = Bridge(state, key, params, base_url)
        state.bridges[key] = bridge
    else:
        _check_shared(bridge.base, params)
    leg = BridgeLeg(bridge, role,
                    fmt, sink, SessionConfig().entities if entities is None else entities)
    try:
        bridge.add(role, leg)
    except ProtocolError:
        if not bridge.legs:
            state.bridges.pop(key, None)
        raise
    return leg


_SHARED = {f.name for f in fields(SessionConfig)} - _LEG_SETTINGS


def _check_shared(base: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """A second leg may repeat the call's settings, not change them."""
    for name in sorted(_SHARED & set(params)):
        try:
            mine = SessionConfig.from_params({name: params[name]})
            theirs = SessionConfig.from_params({name: base[name]} if name in base else {})
        except ValueError as exc:
            raise BadConfig(str(exc)) from None
        if getattr(mine, name) != getattr(theirs, name):
            raise BadConfig(f"{name} is the bridge's setting, set by the first leg; "
                            "leave it out or send the same value")


async def get_bridge(request: Request) -> JSONResponse:
    """``GET /v1/bridges/{id}``: an open bridge of the caller's key — its legs and the
    session id that listeners join (``/v1/sessions/{session_id}/listen``). Legs on
    Twilio or AudioSocket see no events; this is how their owner finds the call."""
    state: ServerState = request.app.state.streamserver
    owner = caller(state.cfg, request, state.tokens)
    headers = {"Cache-Control": "no-store"}
    if owner is None:
        return JSONResponse({"type": "error", "code": "unauthorized",
                             "message": "missing or invalid API key"}, 401, headers)
    found = state.bridges.get((owner, request.path_params["bridge_id"]))
    if found is None:  # another key's bridge is as unknown as none
        return JSONResponse({"type": "error", "code": "not_found",
                             "message": "no such open bridge (unknown, ended, or not yours)"},
                            404, headers)
    bridge: Bridge = found
    body: dict[str, Any] = {"bridge": bridge.bridge_id, "legs": sorted(bridge.legs),
                            "started": bridge.host is not None}
    if bridge.host is not None:
        base = (state.cfg.public_url or f"{request.url.scheme}://{request.url.netloc}")
        ws = base.rstrip("/").replace("https://", "wss://").replace("http://", "ws://")
        body["session_id"] = bridge.host.session_id
        body["listen_url"] = f"{ws}/v1/sessions/{bridge.host.session_id}/listen"
    return JSONResponse(body, headers=headers)


BRIDGE_ROUTES = [Route("/v1/bridges/{bridge_id}", get_bridge, methods=["GET"])]
