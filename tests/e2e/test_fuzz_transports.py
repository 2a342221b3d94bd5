"""Fuzzing the other ways in against a real server process: Twilio Media Streams,
Asterisk AudioSocket and the joining of bridges (protocol v1 legs).

As in test_fuzz.py: Hypothesis draws scripts, a small model of the docs says how
each must end (:func:`predict_twilio`, :func:`predict_audiosocket`,
:func:`predict_joins`), every case is checked against it, and after every example
the process is alive, ``/healthz`` answers and no session is left running.

* Twilio (docs/twilio.md): malformed JSON, unknown events, payloads that are not
  base64 or of the wrong size, ``media`` before ``start``, tracks not started, a
  second ``start``, binary frames. A bad stream closes with the documented close
  code and the error code as the reason; nothing is ever sent back to a plain
  stream or a fork, a bridge leg gets only ``media`` and ``mark``.
* AudioSocket (docs/audiosocket.md): random bytes after a valid, an invalid or
  no UUID frame. Every call ends with one 0xff frame (``bad_frame``) or cleanly.
* Bridges (docs/bridge.md): joins with one bridge id in random order, roles and
  settings. A third leg or a taken role gets ``bridge_full`` (4409), a setting of
  the call changed ``bad_config``; the joined legs carry on and end cleanly.

Loopback only; no timing assertions (timeouts only bound a hung case).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamserver.config import ConfigError, ServerConfig, SessionConfig
from streamserver.server.recording import plan_recording
from tests.conftest import ROOT, RunningServer, _free_port, start_server
from tests.e2e.test_audiosocket import http
from tests.e2e.test_fuzz import (
    CASE_TIMEOUT_S,
    FUZZ_ENV,
    FuzzServers,
    assert_server_healthy,
    json_values,
)

pytestmark = pytest.mark.e2e

# Examples per test: the three together stay well under two minutes on 2 cores.
TWILIO_EXAMPLES = 300
AUDIOSOCKET_EXAMPLES = 300
BRIDGE_EXAMPLES = 100


def documented_twilio_close_codes() -> dict[str, int]:
    """The reason -> close code table of docs/twilio.md's Errors, the spec under test."""
    text = (ROOT / "docs" / "twilio.md").read_text()
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    table: dict[str, int] = {}
    for row in re.finditer(r"^\|([^|]*)\|([^|]*)\|", section, re.M):
        codes = re.findall(r"`(\w+)`", row[1])
        closes = [int(c) for c in re.findall(r"\b\d{4}\b", row[2])]
        if codes and len(closes) == 1:  # `a`, `b` | 1013
            table.update(dict.fromkeys(codes, closes[0]))
        elif codes and len(closes) == len(codes):  # `a`, `b` | 4409, 4408
            table.update(zip(codes, closes, strict=True))
    return table


TWILIO_CLOSE = documented_twilio_close_codes()
BRIDGE_FULL_CLOSE = 4409  # docs/protocol.md: bridge_full


class TransportServers(FuzzServers):
    """test_fuzz's fuzz target (restarted when dead or hung) with AudioSocket on."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.audiosocket_port = _free_port()
        super().__init__(tmp)

    def _start(self) -> RunningServer:
        self.audiosocket_port = _free_port()
        return start_server(self.tmp.mktemp("fuzz-transports"), "--max-sessions", "64",
                            "--audiosocket-port", str(self.audiosocket_port), env=FUZZ_ENV)


@pytest.fixture(scope="module")
def fuzz_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransportServers]:
    servers = TransportServers(tmp_path_factory)
    yield servers
    servers.stop()


def session_config(params: dict[str, Any]) -> SessionConfig | None:
    """The config a session with these settings runs with on the fuzz server (no
    store, so no recording); None: ``bad_config``."""
    try:
        cfg = ServerConfig().apply_floor(SessionConfig.from_params(params))
        plan_recording(cfg, ServerConfig(), store_ready=False, webhooks_ready=False)
    except ConfigError:
        return None
    return cfg


@dataclass(frozen=True)
class Expect:
    """How a case must end. ``upto``: messages sent (the rest would not be read)."""

    kind: str  # "error" | "end" (the peer's stop / hang-up) | "open" (the client leaves)
    upto: int
    code: str | None = None


# == Twilio Media Streams ==============================================================
TRACKS = ("inbound", "outbound")
MAX_PAYLOAD = 8000


@dataclass(frozen=True)
class Frame:
    """One WebSocket message: JSON text (``obj``), raw text, or binary."""

    obj: Any = None
    text: str | None = None
    data: bytes | None = None

    def wire(self) -> str | bytes:
        if self.data is not None:
            return self.data
        return self.text if self.text is not None else json.dumps(self.obj)

    def __repr__(self) -> str:
        shown = repr(self.wire())
        return f"Frame({shown[:120]}{'...' if len(shown) > 120 else ''})"


@dataclass(frozen=True)
class TwilioCase:
    frames: tuple[Frame, ...]
    bridge: bool = False  # a protocol v1 agent leg waits in bridge BRIDGE_ID first


def _bridge_request(params: dict[str, Any]) -> tuple[str, str] | str | None:
    """docs/bridge.md: (id, role), None (no bridge), or "bad_config"."""
    if "bridge" not in params:
        return None
    bridge_id = str(params.get("bridge") or "").strip()
    role = str(params.get("role") or "").strip().lower()
    if not bridge_id or len(bridge_id) > 64 or not bridge_id.isprintable():
        return "bad_config"
    return (bridge_id, role) if role in ("agent", "caller") else "bad_config"


def _start_outcome(obj: dict[str, Any], agent_bridge: str | None
                   ) -> str | tuple[tuple[str, ...], bool]:
    """A ``start`` message: an error code, or (tracks, is a bridge leg)."""
    start = obj.get("start")
    if not isinstance(start, dict):
        return "bad_message"
    sid = start.get("streamSid") or obj.get("streamSid")
    if not isinstance(sid, str) or not sid or len(sid) > 64:
        return "bad_message"
    fmt = start.get("mediaFormat") or {}
    if not isinstance(fmt, dict) or (str(fmt.get("encoding", "")).lower() != "audio/x-mulaw"
                                     or str(fmt.get("sampleRate")) != "8000"
                                     or str(fmt.get("channels", 1)) != "1"):
        return "bad_config"
    tracks = start.get("tracks") or ["inbound"]
    if (not isinstance(tracks, list) or any(t not in TRACKS for t in tracks)
            or len(set(tracks)) != len(tracks)):
        return "bad_config"
    params = start.get("customParameters") or {}
    if not isinstance(params, dict) or not all(
            isinstance(v, str | int | float | bool) for v in params.values()):
        return "bad_config"
    started = tuple(t for t in TRACKS if t in tracks)
    settings = {k: v for k, v in params.items() if k not in ("token", "api_key")}
    request = _bridge_request(settings)
    if request == "bad_config":
        return "bad_config"
    if request is not None:
        if started != ("inbound",) or str(settings.get("pace", "realtime")).lower() != "realtime":
            return "bad_config"
        if "channel_roles" in settings or "channel_entities" in settings:
            return "bad_config"
        # A leg's entities may be "none"; the rest must be valid settings on their own.
        leg = {k: v for k, v in settings.items() if k not in ("bridge", "role", "entities")}
        try:
            SessionConfig.from_params({**leg, "encoding": "mulaw", "sample_rate": 8000})
        except ConfigError:
            return "bad_config"
        # The agent leg joined first with delay_ms=300: the call's setting.
        if "delay_ms" in leg and SessionConfig.from_params({"delay_ms": leg["delay_ms"]}) \
                .delay_ms != 300:
            return "bad_config"
        if request != (agent_bridge, "caller"):
            # Another bridge id: a lonely leg of its own (the case ends it). The
            # agent's bridge in the agent's role: taken.
            return "bridge_full" if request == (agent_bridge, "agent") else (started, True)
        return started, True
    if len(started) == 2:
        roles = settings.pop("channel_roles", "caller,agent")
        cfg = session_config({**settings, "encoding": "pcm_s16le", "sample_rate": 8000,
                              "channels": 2, "channel_roles": roles})
    else:
        cfg = session_config({**settings, "encoding": "mulaw", "sample_rate": 8000,
                              "channels": 1})
    return "bad_config" if cfg is None else (started, False)


def predict_twilio(case: TwilioCase, agent_bridge: str | None = None) -> Expect:
    """docs/twilio.md as a function."""
    tracks: tuple[str, ...] | None = None  # None: not started
    for i, frame in enumerate(case.frames):
        n = i + 1
        if frame.data is not None:
            return Expect("error", n, "bad_message")
        try:
            obj = orjson.loads(frame.wire())
        except orjson.JSONDecodeError:
            return Expect("error", n, "bad_message")
        if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
            return Expect("error", n, "bad_message")
        event = obj["event"]
        if event in ("connected", "mark"):
            continue
        if event == "stop":
            return Expect("end", n)
        if event == "start":
            if tracks is not None:
                return Expect("error", n, "bad_message")
            outcome = _start_outcome(obj, agent_bridge)
            if isinstance(outcome, str):
                return Expect("error", n, outcome)
            tracks = outcome[0]
        elif event == "dtmf":
            if tracks is None:
                return Expect("error", n, "config_required")
        elif event == "media":
            if tracks is None:
                return Expect("error", n, "config_required")
            media = obj.get("media")
            if not isinstance(media, dict):
                return Expect("error", n, "bad_message")
            if media.get("track", "inbound") not in tracks:
                return Expect("error", n, "bad_message")
            payload = media.get("payload")
            if not isinstance(payload, str) or len(payload) > 2 * MAX_PAYLOAD:
                return Expect("error", n, "bad_audio")
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return Expect("error", n, "bad_audio")
            if not data or len(data) > MAX_PAYLOAD:
                return Expect("error", n, "bad_audio")
        else:
            return Expect("error", n, "bad_message")
    return Expect("open", len(case.frames))


# -- strategies ----------------------------------------------------------------------
SID = "MZfuzz"
GOOD_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


def start_msg(tracks: Any = ("inbound",), params: Any = None, fmt: Any = None,
              sid: Any = SID) -> dict[str, Any]:
    start: dict[str, Any] = {"streamSid": sid, "accountSid": "AC0", "callSid": "CA0",
                             "tracks": list(tracks) if isinstance(tracks, tuple) else tracks,
                             "mediaFormat": GOOD_FORMAT if fmt is None else fmt}
    if params is not None:
        start["customParameters"] = params
    return {"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": start}


def media_msg(payload: Any, track: Any = "inbound") -> dict[str, Any]:
    media: dict[str, Any] = {"chunk": "1", "timestamp": "0", "payload": payload}
    if track is not None:
        media["track"] = track
    return {"event": "media", "sequenceNumber": "2", "streamSid": SID, "media": media}


def b64(n: int, fill: str = "speech") -> str:
    rng = np.random.default_rng(n)
    raw = (bytes(n) if fill == "zeros" else rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    return base64.b64encode(raw).decode()


payloads = st.one_of(
    st.builds(b64, st.sampled_from([1, 159, 160, 320, 1600]) | st.integers(1, 800),
              st.sampled_from(["zeros", "noise"])),
    st.sampled_from([
        "",  # 0 bytes
        b64(MAX_PAYLOAD + 1), b64(12000),  # over 1 s, the base64 within the length bound
        b64(13000),  # its base64 over the bound
        "%%%notbase64%%%", "AAA", "AAAA====", "AA AA", "Zm9v\n", "ÿÿÿÿ",
    ]),
    json_values.filter(lambda v: not isinstance(v, str)),  # a number, a list, null ...
    st.text(max_size=12),
)
tracks_in_media = st.sampled_from(["inbound", "inbound", "outbound", None, "both", 1, ""])
good_params = st.fixed_dictionaries({}, optional={
    "pace": st.sampled_from(["asap", "asap", "realtime"]),
    "delay_ms": st.sampled_from(["300", 300, "2000"]),
    "entities": st.sampled_from(["default", "PERSON,PHONE_NUMBER", "all"]),
    "audio_redaction": st.sampled_from(["beep", "silence"]),
    "token": st.just("ignored-without-keys"),
})
bad_params = st.sampled_from([
    {"delay_ms": "5"}, {"colour": "red"}, {"pace": "fast"}, {"entities": "nope"},
    {"record": "true"}, {"nested": {"a": 1}}, {"list": [1]}, {"channels": "2"},
    {"encoding": "pcm_s16le"}, {"channel_roles": "agent,caller"}, {"on_deadline": "pass"},
    {"bridge": ""}, {"bridge": "x" * 65}, {"bridge": "b", "role": "boss"},
])
formats = st.sampled_from([
    None, None, None, {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1},
    {"encoding": "AUDIO/X-MULAW", "sampleRate": "8000"}, {"encoding": "audio/x-mulaw",
                                                          "sampleRate": 8000.0},
    {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2}, "mulaw", [],
])
track_sets = st.sampled_from([("inbound",), ("inbound",), ("inbound", "outbound"),
                              ("outbound",), [], ["inbound", "inbound"], ["both"], "inbound"])
starts = st.one_of(
    st.builds(start_msg, track_sets, st.one_of(good_params, st.builds(
        lambda g, b: {**g, **b}, good_params, bad_params)), formats),
    st.sampled_from([
        {"event": "start"}, {"event": "start", "start": None},
        {"event": "start", "start": {"mediaFormat": GOOD_FORMAT}},  # no streamSid
        {"event": "start", "start": {"streamSid": "x" * 65, "mediaFormat": GOOD_FORMAT}},
        {"event": "start", "start": {"streamSid": 7}},
    ]),
).map(lambda o: Frame(obj=o))
medias = st.builds(media_msg, payloads, tracks_in_media).map(lambda o: Frame(obj=o)) | \
    st.sampled_from([{"event": "media"}, {"event": "media", "media": "AAAA"},
                     {"event": "media", "media": [1]}]).map(lambda o: Frame(obj=o))
others = st.sampled_from([
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {"event": "dtmf", "streamSid": SID, "dtmf": {"track": "inbound_track", "digit": "5"}},
    {"event": "mark", "streamSid": SID, "mark": {"name": "1"}},
    {"event": "clear"}, {"event": "Media"}, {"event": ""}, {"event": 1}, {"event": None},
    {"no": "event"}, {"event": "stopp"},
]).map(lambda o: Frame(obj=o))
junk = st.one_of(
    st.sampled_from(["not json", "{", "[]", "null", '"media"', "", '{"event": "media"',
                     '{"event": "stop"} x']).map(lambda t: Frame(text=t)),
    st.text(max_size=40).map(lambda t: Frame(text=t)),
    json_values.map(lambda v: Frame(text=json.dumps(v))),
    st.binary(max_size=40).map(lambda b: Frame(data=b)),
)
STOP = Frame(obj={"event": "stop", "streamSid": SID, "stop": {"callSid": "CA0"}})
twilio_frames = st.one_of(medias, medias, others, starts, junk)


@st.composite
def twilio_cases(draw: st.DrawFn) -> TwilioCase:
    """Mostly a good start first (so what follows is reached), then anything."""
    script: list[Frame] = []
    if draw(st.booleans()):
        script.append(Frame(obj={"event": "connected", "protocol": "Call", "version": "1.0"}))
    kind = draw(st.sampled_from(["start", "start", "bridge", "random"]))
    if kind == "start":
        script.append(Frame(obj=start_msg(draw(st.sampled_from([("inbound",), ("inbound",),
                                                                 ("inbound", "outbound")])),
                                          draw(good_params))))
    elif kind == "bridge":
        params = {"bridge": "__bridge__", "role": "caller", "delay_ms": "300"}
        params.update(draw(st.sampled_from([
            {}, {}, {}, {"entities": "none"}, {"role": "agent"}, {"pace": "asap"},
            {"delay_ms": "900"}, {"channel_roles": "agent,caller"}, {"role": "Caller "}])))
        script.append(Frame(obj=start_msg(draw(st.sampled_from([("inbound",), ("inbound",),
                                                                 ("inbound", "outbound")])),
                                          params)))
    script += draw(st.lists(twilio_frames, max_size=5))
    if draw(st.booleans()):
        script.append(STOP)
    return TwilioCase(tuple(script), bridge=kind == "bridge")


# -- running a case ------------------------------------------------------------------
@dataclass
class TwilioResult:
    sent_back: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    timed_out: bool = False
    agent_close: int | None = None
    agent_events: list[dict[str, Any]] = field(default_factory=list)


def _with_bridge_id(frame: Frame, bridge_id: str) -> Frame:
    if frame.obj is None:
        return frame
    return Frame(obj=json.loads(json.dumps(frame.obj).replace("__bridge__", bridge_id)))


async def run_twilio_case(server: RunningServer, case: TwilioCase) -> tuple[Expect, TwilioResult]:
    result = TwilioResult()
    bridge_id = "fz-" + uuid.uuid4().hex[:12]
    frames = tuple(_with_bridge_id(f, bridge_id) for f in case.frames)
    sid = "MZ" + uuid.uuid4().hex  # streamSids are the session ids: one per case
    frames = tuple(Frame(obj=json.loads(json.dumps(f.obj).replace(f'"{SID}"', f'"{sid}"')))
                   if f.obj is not None else f for f in frames)
    expect = predict_twilio(TwilioCase(frames, case.bridge), bridge_id if case.bridge else None)
    agent = None
    if case.bridge:  # the other leg: protocol v1, waiting in the bridge
        agent = await websockets.connect(
            server.url + "?" + urlencode({"encoding": "pcm_s16le", "sample_rate": 8000,
                                          "bridge": bridge_id, "role": "agent",
                                          "entities": "none", "delay_ms": 300}),
            open_timeout=CASE_TIMEOUT_S)
        joined = json.loads(await agent.recv())
        assert joined["type"] == "bridge.joined" and joined["waiting"] is True, joined
        agent_reader = asyncio.create_task(_read_events(agent, result.agent_events))
    ws = await websockets.connect(server.url.replace("/v1/stream", "/v1/twilio"),
                                  max_size=None, open_timeout=CASE_TIMEOUT_S, close_timeout=5)

    async def reader() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for msg in ws:
                result.sent_back.append(msg)

    reading = asyncio.create_task(reader())
    try:
        for n, frame in enumerate(frames[: expect.upto], 1):
            if expect.kind != "error" and case.bridge and n == expect.upto:
                # A moment past D (300 ms) before the end: the agent's side of the
                # call (the silence the bridge fills in for it) comes back as media.
                await asyncio.sleep(0.5)
            await ws.send(frame.wire())
        if expect.kind == "open":
            await ws.close()
    except websockets.ConnectionClosed:
        pass  # the server ended it early; the checks say whether it should have
    try:
        await asyncio.wait_for(reading, CASE_TIMEOUT_S)
    except TimeoutError:
        result.timed_out = True
        ws.transport.abort()
    result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""
    if agent is not None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await agent.send(json.dumps({"type": "close"}))  # ends a bridge never started
        try:
            await asyncio.wait_for(agent_reader, CASE_TIMEOUT_S)
        except TimeoutError:
            result.timed_out = True
            agent.transport.abort()
        result.agent_close = agent.close_code
    return expect, result


async def _read_events(ws: Any, out: list[dict[str, Any]]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for msg in ws:
            if isinstance(msg, str):
                out.append(json.loads(msg))


def check_twilio(case: TwilioCase, expect: Expect, result: TwilioResult) -> None:
    where = (f"{case!r} expected {expect!r}, got close {result.close_code} "
             f"{result.close_reason!r}, {len(result.sent_back)} message(s) back")
    assert not result.timed_out, "a stream or the agent leg did not end: " + where
    if case.bridge:
        assert all(isinstance(m, str) and json.loads(m)["event"] in ("media", "mark")
                   for m in result.sent_back), where
        assert result.agent_close == 1000, where  # the other leg ends cleanly
        assert not [e for e in result.agent_events if e["type"] == "error"], where
    else:
        assert result.sent_back == [], "sent back to a stream that is no bridge leg: " + where
    if expect.kind == "error":
        assert (result.close_code, result.close_reason) == (
            TWILIO_CLOSE[expect.code or ""], expect.code), where
    else:
        assert result.close_code == 1000 and result.close_reason == "", where


TWILIO_PINNED = [
    TwilioCase((Frame(text="not json"),)),
    TwilioCase((Frame(data=b"\x00\x01"),)),
    TwilioCase((Frame(obj={"event": "surprise"}),)),
    TwilioCase((Frame(obj=media_msg(b64(160))),)),  # media before start
    TwilioCase((Frame(obj=start_msg()), Frame(obj=media_msg("")))),  # 0 bytes
    TwilioCase((Frame(obj=start_msg()), Frame(obj=media_msg(b64(MAX_PAYLOAD + 1))))),
    TwilioCase((Frame(obj=start_msg()), Frame(obj=media_msg("%%%"))),),
    TwilioCase((Frame(obj=start_msg()), Frame(obj=media_msg(b64(160), "outbound")))),
    TwilioCase((Frame(obj=start_msg()), Frame(obj=start_msg()))),  # a second start
    TwilioCase((Frame(obj=start_msg(params={"pace": "asap"})), Frame(obj=media_msg(b64(1600))),
                STOP)),
    TwilioCase((Frame(obj=start_msg(params={"delay_ms": "5"})),)),
    TwilioCase((Frame(obj=start_msg(params={"bridge": "__bridge__", "role": "caller",
                                            "delay_ms": "300"})),
                Frame(obj=media_msg(b64(1600))), STOP), bridge=True),
    TwilioCase((Frame(obj=start_msg(params={"bridge": "__bridge__", "role": "agent"})),),
               bridge=True),  # the agent's role is taken
]


def test_twilio_bad_streams_close_as_documented(fuzz_servers: TransportServers,
                                                record_property: Any) -> None:
    marks = log_marks(fuzz_servers)
    assert {"bad_message", "bad_audio", "config_required", "bad_config"} <= set(TWILIO_CLOSE)
    outcomes: dict[str, int] = {}

    @settings(max_examples=TWILIO_EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(twilio_cases(), min_size=1, max_size=3))
    @example(TWILIO_PINNED)
    def one_example(batch: list[TwilioCase]) -> None:
        outcomes["examples"] = outcomes.get("examples", 0) + 1
        server = fuzz_servers.healthy()

        async def all_cases() -> list[tuple[Expect, TwilioResult]]:
            return await asyncio.gather(*(run_twilio_case(server, c) for c in batch))

        for case, (expect, result) in zip(batch, asyncio.run(all_cases()), strict=True):
            key = expect.code or expect.kind
            outcomes[key] = outcomes.get(key, 0) + 1
            if case.bridge:
                outcomes["bridge media back"] = (outcomes.get("bridge media back", 0)
                                                 + len(result.sent_back))
            check_twilio(case, expect, result)
        assert_server_healthy(server)

    one_example()
    print(f"\ntwilio fuzz outcomes {dict(sorted(outcomes.items()))}")
    record_property("twilio_outcomes", json.dumps(outcomes))
    assert len(fuzz_servers.started) == 1, "the server had to be restarted"
    assert fuzz_failures(fuzz_servers, marks) == []


# == AudioSocket =======================================================================
KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
AS_KINDS = {KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR}
AS_MAX_PAYLOAD = 16 << 10
BAD_FRAME_REPLY = b"\xff\x00\x01\x10"  # one 0xff frame: bad_frame (docs/audiosocket.md)
MAX_CALL_BYTES = 4000  # one write, read by the server at once (its reads are 4096)


def as_frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


def predict_audiosocket(stream: bytes) -> str:
    """docs/audiosocket.md as a function: "clean" or "error" (``bad_frame``), for a
    call whose bytes arrive at once, followed by the end of the stream."""
    i, uuid_seen, peer_error = 0, False, False
    while True:
        if len(stream) - i < 3:
            # EOF inside a header; after a peer error the server reads no further.
            return "error" if i < len(stream) and not peer_error else "clean"
        kind, length = struct.unpack_from(">BH", stream, i)
        if kind not in AS_KINDS or length > AS_MAX_PAYLOAD:
            return "error"
        if kind == KIND_UUID:
            if uuid_seen or length != 16:
                return "error"
            uuid_seen = True
        elif kind == KIND_HANGUP:
            if length:
                return "error"
        elif not uuid_seen:
            return "error"  # anything but the UUID (or a hang-up) first
        elif ((kind == KIND_AUDIO and length % 2) or (kind == KIND_DTMF and length != 1)
              or (kind == KIND_ERROR and length > 64)):
            return "error"
        if len(stream) - i - 3 < length:
            return "clean" if peer_error else "error"  # EOF inside the payload
        i += 3 + length
        if kind == KIND_HANGUP:
            return "clean"  # nothing after a hang-up is read
        # A peer error frame (0xff) ends the call as a hang-up does, but the rest
        # of the same read is parsed first: a bad header in it is still an error.
        peer_error |= kind == KIND_ERROR


# A UUID frame in the body (a second one, or the first after none): a fresh UUID
# each run, so concurrent calls never share a session id.
ANOTHER_UUID = "another uuid"


@dataclass(frozen=True)
class Call:
    """A UUID prefix (valid with or without a registered policy, invalid, or none),
    then the body; the client then closes its side (EOF)."""

    prefix: str  # "policy" | "asap" | "anonymous" | "short" | "long" | "none"
    body: tuple[bytes | str, ...]

    def wire(self, call: uuid.UUID) -> bytes:
        head = {"short": as_frame(KIND_UUID, call.bytes[:15]),
                "long": as_frame(KIND_UUID, call.bytes + b"\x00"),
                "none": b""}.get(self.prefix, as_frame(KIND_UUID, call.bytes))
        body = b"".join(as_frame(KIND_UUID, uuid.uuid4().bytes) if p == ANOTHER_UUID
                        else p for p in self.body if isinstance(p, bytes) or p == ANOTHER_UUID)
        return (head + body)[:MAX_CALL_BYTES]


good_frames = st.one_of(
    st.integers(0, 320).map(lambda n: as_frame(KIND_AUDIO, bytes(2 * n))),
    st.binary(min_size=2, max_size=320).map(
        lambda b: as_frame(KIND_AUDIO, b[: len(b) & ~1])),
    st.sampled_from([as_frame(KIND_DTMF, b"5"), as_frame(KIND_ERROR, b"\x01"),
                     as_frame(KIND_ERROR), as_frame(KIND_HANGUP)]),
)
bad_frames = st.sampled_from([
    as_frame(KIND_AUDIO, bytes(3)), as_frame(0x42, b"x"), as_frame(0x02),
    as_frame(KIND_DTMF, b"12"), as_frame(KIND_HANGUP, b"x"), as_frame(KIND_ERROR, bytes(65)),
    b"\x10\xff\xff" + bytes(16), b"\x10\x01\x40" + bytes(10), b"\x10", b"\x10\x00",
])
bodies = st.lists(st.one_of(good_frames, good_frames, bad_frames, st.binary(max_size=24),
                            st.just(ANOTHER_UUID)), max_size=6).map(tuple)
calls = st.builds(Call, st.sampled_from(["policy", "policy", "asap", "anonymous", "short",
                                         "long", "none"]), bodies)


async def run_call(server: RunningServer, port: int, call: Call) -> tuple[str, bytes]:
    call_id = uuid.uuid4()
    if call.prefix in ("policy", "asap"):
        policy: dict[str, Any] = {"delay_ms": 300}
        if call.prefix == "asap":
            policy["pace"] = "asap"
        status, body = await asyncio.to_thread(http, server, "PUT",
                                               f"/v1/audiosocket/{call_id}", policy)
        assert status == 200, body
    wire = call.wire(call_id)
    expect = predict_audiosocket(wire)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(wire)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            writer.write_eof()
        try:
            got = await asyncio.wait_for(reader.read(), CASE_TIMEOUT_S)  # until it closes
        except ConnectionError:
            got = b"<reset>"
        except TimeoutError:
            got = b"<hung>"
    finally:
        writer.close()
    return expect, got


def test_audiosocket_random_bytes_end_each_call_cleanly_or_with_0xff(
        fuzz_servers: TransportServers) -> None:
    marks = log_marks(fuzz_servers)
    outcomes: dict[str, int] = {}
    examples: list[int] = []
    pinned = [Call("policy", ()), Call("none", (as_frame(KIND_AUDIO, bytes(320)),)),
              Call("short", ()), Call("asap", (as_frame(KIND_AUDIO, bytes(640)), b"\x10\x01")),
              Call("policy", (as_frame(KIND_ERROR, b"\x01"), as_frame(KIND_AUDIO, bytes(3)))),
              Call("policy", (as_frame(KIND_ERROR, b"\x01"), b"\x10\x01\x40\x00")),
              Call("none", (ANOTHER_UUID, as_frame(KIND_AUDIO, bytes(320)), ANOTHER_UUID))]

    @settings(max_examples=AUDIOSOCKET_EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(calls, min_size=1, max_size=4))
    @example(pinned)
    def one_example(batch: list[Call]) -> None:
        examples.append(len(batch))
        server = fuzz_servers.healthy()
        port = fuzz_servers.audiosocket_port

        async def all_calls() -> list[tuple[str, bytes]]:
            return await asyncio.gather(*(run_call(server, port, c) for c in batch))

        for call, (expect, got) in zip(batch, asyncio.run(all_calls()), strict=True):
            outcomes[expect] = outcomes.get(expect, 0) + 1
            want = BAD_FRAME_REPLY if expect == "error" else b""
            assert got == want, f"{call!r}: expected {expect} ({want!r}), got {got!r}"
        assert_server_healthy(server)

    one_example()
    print(f"\naudiosocket fuzz: {sum(examples)} calls in {len(examples)} examples, "
          f"outcomes {dict(sorted(outcomes.items()))}")
    assert set(outcomes) == {"clean", "error"}
    assert len(fuzz_servers.started) == 1, "the server had to be restarted"
    assert fuzz_failures(fuzz_servers, marks) == []


# == Bridges: joins on protocol v1 =====================================================
BASE_LEG = {"encoding": "pcm_s16le", "sample_rate": "16000", "delay_ms": "300"}
# A leg's own settings (format, entities) may differ; the call's may not.
VARIANTS: dict[str, dict[str, str]] = {
    "same": {},
    "mulaw": {"encoding": "mulaw", "sample_rate": "8000"},
    "none": {"entities": "none"},
    "delay": {"delay_ms": "900"},  # the call's setting, changed
    "silence": {"audio_redaction": "silence"},  # the call's setting, changed
    "asap": {"pace": "asap"},
    "roles": {"channel_roles": "agent,caller"},
    "stereo": {"channels": "2"},
    "noformat": {"encoding": ""},  # dropped below: no encoding in the URL
}


@dataclass(frozen=True)
class Join:
    role: str | None  # None: no role parameter
    variant: str

    def query(self, bridge_id: str) -> dict[str, str]:
        q = {**BASE_LEG, **VARIANTS[self.variant], "bridge": bridge_id}
        if self.variant == "noformat":
            del q["encoding"]
        if self.role is not None:
            q["role"] = self.role
        return q


SHARED = ("delay_ms", "audio_redaction")  # the call's settings that VARIANTS touch


def _changes_the_call(q: dict[str, str], first: dict[str, str]) -> bool:
    """A later leg may repeat the call's settings (the first leg's), not change
    them; a setting it leaves out is not compared."""
    def value(name: str, params: dict[str, str]) -> Any:
        return getattr(SessionConfig.from_params(
            {name: params[name]} if name in params else {}), name)

    return any(value(n, q) != value(n, first) for n in SHARED if n in q)


def predict_joins(joins: list[Join]) -> list[str]:
    """docs/bridge.md: each join's outcome, "joined", "bad_config" or "bridge_full"."""
    out: list[str] = []
    legs: list[str] = []
    first: dict[str, str] | None = None
    for j in joins:
        q = j.query("b")
        refused = (j.role not in ("agent", "caller")
                   or j.variant in ("noformat", "stereo", "asap", "roles"))
        if refused or (first is not None and _changes_the_call(q, first)):
            out.append("bad_config")
        elif len(legs) == 2 or j.role in legs:
            out.append("bridge_full")
        else:
            first = first or q
            legs.append(str(j.role))
            out.append("joined")
    return out


joins = st.builds(Join, st.sampled_from(["agent", "caller", "agent", "caller", None, "boss"]),
                  st.sampled_from(["same", "same", "same", "mulaw", "none", *VARIANTS]))


async def run_joins(server: RunningServer, seq: list[Join]) -> None:
    bridge_id = "fzb-" + uuid.uuid4().hex[:12]
    expected = predict_joins(seq)
    where = f"{seq!r} expected {expected}"
    live: list[tuple[Any, list[dict[str, Any]], asyncio.Task[None]]] = []
    try:
        for n, (j, outcome) in enumerate(zip(seq, expected, strict=True)):
            ws = await websockets.connect(server.url + "?" + urlencode(j.query(bridge_id)),
                                          open_timeout=CASE_TIMEOUT_S, max_size=None)
            first = json.loads(await asyncio.wait_for(ws.recv(), CASE_TIMEOUT_S))
            if outcome == "joined":
                assert first == {"type": "bridge.joined", "bridge": bridge_id, "role": j.role,
                                 "waiting": not live}, (n, first, where)
                events: list[dict[str, Any]] = [first]
                live.append((ws, events, asyncio.create_task(_read_all(ws, events))))
                continue
            assert first["type"] == "error" and first["code"] == outcome, (n, first, where)
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), CASE_TIMEOUT_S)
            assert ws.close_code == (BRIDGE_FULL_CLOSE if outcome == "bridge_full" else 4400), \
                (n, ws.close_code, where)
        # The joined legs were not touched by the refused ones: the call goes on
        # and ends cleanly when the first leg says close.
        if live:
            first_ws = live[0][0]
            await first_ws.send(bytes(640))
            await first_ws.send(json.dumps({"type": "close"}))
        for ws, events, task in live:
            await asyncio.wait_for(task, CASE_TIMEOUT_S)
            types = [e["type"] for e in events]
            assert "error" not in types, (types, where)
            if len(live) == 2:
                assert "session.begin" in types and types[-1] == "session.end", (types, where)
            else:
                assert types == ["bridge.joined"], (types, where)  # never started
            assert ws.close_code == 1000, (ws.close_code, where)
    finally:
        for ws, _, task in live:
            task.cancel()
            ws.transport.abort()


async def _read_all(ws: Any, out: list[dict[str, Any]]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for msg in ws:
            if isinstance(msg, str):
                out.append(json.loads(msg))


def test_bridge_joins_third_leg_is_full_and_joined_legs_carry_on(
        fuzz_servers: TransportServers) -> None:
    marks = log_marks(fuzz_servers)
    outcomes: dict[str, int] = {}

    @settings(max_examples=BRIDGE_EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(joins, min_size=1, max_size=5))
    @example([Join("agent", "same"), Join("caller", "mulaw"), Join("agent", "same")])
    @example([Join("caller", "same"), Join("caller", "same"), Join("agent", "delay"),
              Join("agent", "none"), Join("caller", "none")])
    def one_example(seq: list[Join]) -> None:
        outcomes["examples"] = outcomes.get("examples", 0) + 1
        for outcome in predict_joins(seq):
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        server = fuzz_servers.healthy()
        asyncio.run(run_joins(server, seq))
        assert_server_healthy(server)

    one_example()
    print(f"\nbridge join outcomes {dict(sorted(outcomes.items()))}")
    assert {"joined", "bad_config", "bridge_full"} <= set(outcomes)
    assert len(fuzz_servers.started) == 1, "the server had to be restarted"
    assert fuzz_failures(fuzz_servers, marks) == []


def test_bridge_leg_with_unknown_entities_is_bad_config(fuzz_servers: TransportServers) -> None:
    server = fuzz_servers.healthy()
    url = server.url + "?" + urlencode({**BASE_LEG, "bridge": "fzb-ent", "role": "agent",
                                        "entities": "nope"})

    async def go() -> tuple[dict[str, Any], int | None]:
        async with websockets.connect(url) as ws:
            first = json.loads(await ws.recv())
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.recv()
            return first, ws.close_code

    first, close = asyncio.run(go())
    assert (first["type"], first["code"], close) == ("error", "bad_config", 4400)


# -- shared ----------------------------------------------------------------------------
# Error-level lines a fuzz case may cause on purpose (none so far).
EXPECTED_ERROR_LOGS: set[str] = set()


def log_marks(servers: TransportServers) -> dict[str, int]:
    """Where each server's log stands now: a test checks only what it caused."""
    return {str(srv.log_path): len(srv.log_text()) for srv in servers.started}


def fuzz_failures(servers: TransportServers, since: dict[str, int]) -> list[str]:
    """Error-level log lines since ``since``, on every server started: crashed
    sessions, internal errors, failed model calls."""
    bad = []
    for srv in servers.started:
        text = srv.log_text()[since.get(str(srv.log_path), 0):]
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("msg") not in EXPECTED_ERROR_LOGS and (
                    entry.get("level") in ("error", "critical")
                    or entry.get("code") == "internal_error"):
                bad.append(line[:500])
    return bad
