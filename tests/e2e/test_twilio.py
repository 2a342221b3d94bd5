"""Twilio Media Streams against a real server: a client that speaks Twilio's wire.

Messages are built from Twilio's published shapes (connected, start with
mediaFormat/tracks/customParameters, media with base64 20 ms mu-law, dtmf,
mark, stop). Each mode runs the same session core: a plain inbound stream,
a both_tracks fork (caller/agent channels), and a leg of a bridge.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.evaluation import Span, score_clip
from tests.conftest import FIXTURES, fixture_manifest

pytestmark = pytest.mark.e2e

MANIFEST = fixture_manifest()
RATE = 8000
FRAME = 160  # 20 ms of mu-law
MULAW = audio_mod.AudioFormat("mulaw", RATE, 1)


def _phone(name: str) -> np.ndarray:
    """A fixture clip as a phone line carries it: 8 kHz, through mu-law."""
    samples, rate = audio_mod.read_wav(FIXTURES / name)
    down = audio_mod.to_int16(audio_mod.resample(audio_mod.to_mono_float(samples), rate, RATE))
    return audio_mod.decode(audio_mod.encode(down[:, None], MULAW), MULAW)[:, 0]


def _spans(name: str, shift: float = 0.0) -> list[Span]:
    return [Span(p["entity"], p["start_s"] + shift, p["end_s"] + shift)
            for p in MANIFEST[name]["pii"]]


def _twilio_url(server) -> str:
    return server.url.replace("/v1/stream", "/v1/twilio")


def _start(sid: str, tracks: list[str], params: dict[str, str]) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": sid,
        "start": {"streamSid": sid, "accountSid": "AC0", "callSid": "CA" + sid[2:],
                  "tracks": tracks, "customParameters": params,
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                  "channels": 1}}})


def _media(sid: str, track: str, chunk: int, payload: bytes) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(chunk + 2), "streamSid": sid,
                       "media": {"track": track, "chunk": str(chunk + 1),
                                 "timestamp": str(20 * chunk),
                                 "payload": base64.b64encode(payload).decode()}})


async def _listen(server, session_id: str, out: list[Any]) -> None:
    url = server.url.replace("/v1/stream", f"/v1/sessions/{session_id}/listen")
    async with websockets.connect(url, max_size=1 << 24) as ws:
        async for msg in ws:
            out.append(msg if isinstance(msg, bytes) else json.loads(msg))


async def _stream(ws: Any, sid: str, tracks: dict[str, np.ndarray],
                  keys_at: int | None = None) -> None:
    """Send each track's audio as Twilio does: 20 ms media messages in real time."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n = max(t.size for t in tracks.values())
    for k, i in enumerate(range(0, n, FRAME)):
        for track, samples in tracks.items():
            frame = samples[i : i + FRAME]
            if frame.size:
                await ws.send(_media(sid, track, k, audio_mod.encode(frame[:, None], MULAW)))
        if keys_at is not None and k == keys_at:
            await ws.send(json.dumps({"event": "dtmf", "streamSid": sid, "sequenceNumber": "0",
                                      "dtmf": {"track": "inbound_track", "digit": "7"}}))
        await asyncio.sleep(max(0.0, t0 + (i + FRAME) / RATE - loop.time()))
    await ws.send(json.dumps({"event": "stop", "streamSid": sid, "sequenceNumber": "9",
                              "stop": {"accountSid": "AC0", "callSid": "CA0"}}))


def _events(out: list[Any]) -> list[dict[str, Any]]:
    return [m for m in out if isinstance(m, dict)]


def test_inbound_stream_is_redacted_for_listeners_and_never_echoed(server) -> None:
    caller = _phone("dev_014.wav")
    heard: list[Any] = []
    sent_back: list[str] = []

    async def go() -> None:
        async with websockets.connect(_twilio_url(server)) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call",
                                      "version": "1.0.0"}))
            await ws.send(_start("MZmono1", ["inbound"], {"delay_ms": "2000"}))
            await asyncio.sleep(0.3)
            listener = asyncio.create_task(_listen(server, "MZmono1", heard))
            await asyncio.sleep(0.3)
            reader = asyncio.create_task(_collect(ws, sent_back))
            await _stream(ws, "MZmono1", {"inbound": caller}, keys_at=25)
            await asyncio.wait_for(reader, 60)
            assert ws.close_code == 1000
            await asyncio.wait_for(listener, 30)

    asyncio.run(go())
    assert sent_back == []  # nothing goes back to the call without a bridge
    audio = audio_mod.decode(b"".join(m for m in heard if isinstance(m, bytes)), MULAW)[:, 0]
    events = _events(heard)
    assert events[0]["type"] == "session.begin"
    assert events[0]["config"]["encoding"] == "mulaw"
    assert events[-1]["type"] == "session.end"
    # The listener joined a moment after the first media: compare the tail.
    offset = caller.size - audio.size
    assert 0 <= offset < RATE
    score = score_clip(caller[offset:], audio, RATE, _spans("dev_014.wav", -offset / RATE))
    assert dict(score.entities)["US_SSN"] < 0.25
    finals = " ".join(e["text"] for e in events if e["type"] == "transcript.final")
    assert "2154" not in finals.replace(" ", "").replace("-", "")
    keyed = [e for e in events if e["type"] == "redaction" and e["entity"] == "DTMF"]
    assert keyed and all("7" not in json.dumps({k: v for k, v in e.items()
                                                if k not in ("start", "end", "score")})
                         for e in keyed)


async def _collect(ws: Any, out: list[str]) -> None:
    try:
        async for msg in ws:
            out.append(msg)
    except websockets.ConnectionClosed:
        pass


def test_both_tracks_fork_is_one_session_with_caller_and_agent(server) -> None:
    caller, agent = _phone("dev_014.wav"), _phone("dev_009.wav")
    n = max(caller.size, agent.size)
    caller = np.concatenate([caller, np.zeros(n - caller.size, np.int16)])
    agent = np.concatenate([agent, np.zeros(n - agent.size, np.int16)])
    heard: list[Any] = []

    async def go() -> None:
        async with websockets.connect(_twilio_url(server)) as ws:
            await ws.send(_start("MZfork1", ["inbound", "outbound"], {}))
            await asyncio.sleep(0.3)
            listener = asyncio.create_task(_listen(server, "MZfork1", heard))
            await asyncio.sleep(0.3)
            await _stream(ws, "MZfork1", {"inbound": caller, "outbound": agent})
            await asyncio.wait_for(_collect(ws, []), 60)
            await asyncio.wait_for(listener, 30)

    asyncio.run(go())
    events = _events(heard)
    begin = events[0]
    assert begin["config"]["channels"] == 2
    assert begin["config"]["channel_roles"] == ["caller", "agent"]
    stereo = np.frombuffer(b"".join(m for m in heard if isinstance(m, bytes)), "<i2")
    stereo = stereo.reshape(-1, 2)
    offset = caller.size - stereo.shape[0]
    assert 0 <= offset < RATE
    score = score_clip(caller[offset:], stereo[:, 0], RATE, _spans("dev_014.wav", -offset / RATE))
    assert dict(score.entities)["US_SSN"] < 0.25
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert {e["role"] for e in finals} == {"caller", "agent"}


def test_twilio_leg_of_a_bridge_with_a_protocol_v1_agent(server) -> None:
    """The caller on Twilio, the agent on protocol v1 (entities=none): the agent
    hears the caller's SSN masked; Twilio gets the agent's voice back as media
    with its streamSid and marks; the caller's stop ends the bridge cleanly."""
    caller = _phone("dev_014.wav")
    agent_audio = np.zeros(caller.size * 2, np.int16)  # a quiet agent, 16 kHz
    agent_audio[: 16000] = (np.sin(np.arange(16000) * 0.2) * 3000).astype(np.int16)
    agent_heard: list[bytes] = []
    agent_events: list[dict[str, Any]] = []
    twilio_got: list[dict[str, Any]] = []
    url = (f"{server.url}?encoding=pcm_s16le&sample_rate=16000&bridge=tw-1&role=agent"
           "&entities=none")

    async def agent_leg() -> int | None:
        async with websockets.connect(url, max_size=1 << 24) as ws:
            async def send() -> None:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                for i in range(0, agent_audio.size, 320):
                    await ws.send(agent_audio[i : i + 320].tobytes())
                    await asyncio.sleep(max(0.0, t0 + (i + 320) / 16000 - loop.time()))

            sender = None
            try:
                async for msg in ws:
                    if isinstance(msg, bytes):
                        agent_heard.append(msg)
                        continue
                    agent_events.append(json.loads(msg))
                    if agent_events[-1]["type"] == "session.begin":
                        sender = asyncio.create_task(send())
            finally:
                if sender is not None:
                    sender.cancel()
            return ws.close_code

    async def twilio_leg() -> int | None:
        await asyncio.sleep(0.5)
        async with websockets.connect(_twilio_url(server)) as ws:
            await ws.send(_start("MZleg1", ["inbound"], {"bridge": "tw-1", "role": "caller"}))
            reader = asyncio.create_task(_collect(ws, raw := []))
            await asyncio.sleep(0.3)
            await _stream(ws, "MZleg1", {"inbound": caller})
            await asyncio.wait_for(reader, 60)
            twilio_got.extend(json.loads(m) for m in raw)
            return ws.close_code

    async def go() -> tuple[int | None, int | None]:
        return tuple(await asyncio.gather(agent_leg(), twilio_leg()))  # type: ignore[return-value]

    agent_close, twilio_close = asyncio.run(go())
    assert twilio_close == 1000 and agent_close == 1000
    media = [m for m in twilio_got if m["event"] == "media"]
    assert media and all(m["streamSid"] == "MZleg1" for m in media)
    sizes = [len(base64.b64decode(m["media"]["payload"])) for m in media]
    assert max(sizes) == 160 and min(sizes) >= 1  # 20 ms messages, sent as released
    assert any(m["event"] == "mark" for m in twilio_got)
    # The agent heard the caller (16 kHz, from the 8 kHz leg) with the SSN masked.
    heard = np.frombuffer(b"".join(agent_heard), "<i2")
    caller16 = audio_mod.to_int16(audio_mod.resample(audio_mod.to_mono_float(caller), RATE, 16000))
    assert heard.size >= caller16.size - 160
    score = score_clip(caller16[: heard.size], heard[: caller16.size], 16000,
                       _spans("dev_014.wav"))
    assert dict(score.entities)["US_SSN"] <= 0.05
    finals = [e for e in agent_events if e["type"] == "transcript.final"]
    assert "2154" not in "".join(e["text"] for e in finals).replace(" ", "").replace("-", "")
    assert agent_events[-1]["type"] == "session.end"


@pytest.mark.parametrize("messages, code, close", [
    (["not json"], "bad_message", 1007),
    ([json.dumps({"event": "surprise"})], "bad_message", 1007),
    ([json.dumps({"event": "media", "media": {"payload": "AAAA"}})], "config_required", 4400),
    ([_start("MZbad1", ["inbound"], {}), _media("MZbad1", "inbound", 0, b"")[:-3] + '!!"}}'],
     "bad_audio", 1007),
    ([_start("MZbad2", ["inbound"], {}),
      json.dumps({"event": "media", "streamSid": "MZbad2",
                  "media": {"track": "inbound", "payload": "%%%notbase64%%%"}})],
     "bad_audio", 1007),
    ([_start("MZbad3", ["inbound"], {}),
      _media("MZbad3", "inbound", 0, b"\xff" * 9000)], "bad_audio", 1007),
    ([_start("MZbad4", ["inbound"], {}), _media("MZbad4", "outbound", 0, b"\xff" * 160)],
     "bad_message", 1007),
    ([_start("MZbad5", ["inbound"], {"delay_ms": "5"})], "bad_config", 4400),
    ([_start("MZbad6", ["inbound"], {"bridge": "b6", "role": "caller", "pace": "asap"})],
     "bad_config", 4400),  # asap replays a recording: never a live bridge leg
    ([json.dumps({"event": "start", "start": {"streamSid": "MZbad7", "mediaFormat": {
        "encoding": "audio/l16", "sampleRate": 16000, "channels": 1}}})], "bad_config", 4400),
    ([_start("MZbad8", ["inbound"], {}), _start("MZbad8", ["inbound"], {})],
     "bad_message", 1007),
    ([b"\x00\x01binary"], "bad_message", 1007),
])
def test_bad_input_closes_that_stream_with_a_reason(server, messages: list[Any], code: str,
                                                    close: int) -> None:
    async def go() -> None:
        async with websockets.connect(_twilio_url(server)) as ws:
            for m in messages:
                await ws.send(m)
            got: list[str] = []
            await asyncio.wait_for(_collect(ws, got), 30)
            assert got == []  # nothing comes back, least of all audio
            assert ws.close_code == close and ws.close_reason == code

    asyncio.run(go())
    with urllib.request.urlopen(server.http + "/readyz", timeout=5) as r:
        assert json.loads(r.read())["ready"] is True
