"""A WebRTC peer as a leg of the redacting bridge: a real server, real models, an
aiortc caller and a protocol v1 agent (docs/webrtc.md "As a bridge leg").

The caller's SSN reaches the agent masked (Opus is lossy: masking is compared by
energy, not samples); the agent's voice reaches the caller's inbound track; the
caller's data channel carries the call's events with roles; a third leg is
refused with 409 ``bridge_full`` and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from streamserver import audio as audio_mod
from streamserver.evaluation import FRAME_S, Span, score_clip
from tests.conftest import FIXTURES, fixture_manifest, start_server, stop_server
from tests.e2e.test_bridge import Leg
from tests.e2e.test_webrtc import (
    RATE,
    Client,
    WavTrack,
    _energy_proxy,
    _http,
    _measure_delay,
    _sessions,
    _wait_sessions,
)

pytestmark = pytest.mark.e2e

BRIDGE = "webrtc-call-1"
DELAY_MS = 2000  # the bridge's (the agent joins first and sets none: the default)
CALLER_CLIP = "dev_014.wav"  # "Sure, my social security number is 362-14-2154."
AGENT_CLIP = "dev_001.wav"  # the agent's words pass untouched (entities=none)


def _clip(name: str, rate: int) -> np.ndarray:
    x, native = audio_mod.read_wav(FIXTURES / name)
    mono = x[:, 0].astype(np.float32) / 32768
    return audio_mod.to_int16(audio_mod.resample(mono, native, rate))


def _to_48k(pcm16k: np.ndarray) -> np.ndarray:
    return audio_mod.to_int16(audio_mod.resample(pcm16k.astype(np.float32) / 32768, 16000,
                                                 RATE))


async def _offer(pc: RTCPeerConnection, server, config: dict[str, Any]
                 ) -> tuple[int, dict[str, Any]]:
    await pc.setLocalDescription(await pc.createOffer())
    body = {"sdp": pc.localDescription.sdp, "type": "offer", "config": config}
    return await asyncio.to_thread(_http, server.http + "/v1/webrtc/offer", body)


async def _get_bridge(server, bridge_id: str) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(_http, f"{server.http}/v1/bridges/{bridge_id}")


class Call:
    def __init__(self) -> None:
        self.caller: Client
        self.agent: Leg
        self.answer: dict[str, Any] = {}
        self.sessions_during = 0
        self.third: tuple[int, dict[str, Any]] = (0, {})
        self.after_refusal = 0
        self.legs_after_refusal: list[str] = []
        self.sessions_after = -1


@pytest.fixture(scope="module")
def call(server) -> Call:
    caller_in = _clip(CALLER_CLIP, RATE)
    # The caller keeps its line open until everything said has come back (D + 1.5 s).
    caller_sent = np.concatenate([caller_in, np.zeros((DELAY_MS + 1500) * RATE // 1000,
                                                      dtype=np.int16)])
    agent_in = _clip(AGENT_CLIP, 16000)
    result = Call()

    async def go() -> None:
        result.agent = agent = Leg(server.url, "agent", BRIDGE, entities="none")
        agent_task = asyncio.create_task(agent.run(agent_in, asyncio.Event(), hang_up=False))
        await asyncio.sleep(0.5)  # the agent waits for the caller
        track = WavTrack(caller_sent)
        result.caller = caller = Client(track)  # aiortc objects belong to the running loop
        status, answer = await _offer(caller.pc, server, {"bridge": BRIDGE, "role": "caller"})
        assert status == 200, answer
        result.answer = answer
        caller.session_id = answer["session_id"]
        await caller.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

        async def begun() -> None:
            while not any(e["type"] == "session.begin" for e in caller.events):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(begun(), 30)
        result.sessions_during = await _sessions(server)
        # A third leg (a taken role) is refused; the call goes on, nothing left behind.
        third = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        third.addTransceiver("audio", direction="sendrecv")
        third.createDataChannel("events")
        try:
            result.third = await _offer(third, server, {"bridge": BRIDGE, "role": "agent"})
        finally:
            await third.close()
        result.after_refusal = await _sessions(server)
        result.legs_after_refusal = (await _get_bridge(server, BRIDGE))[1].get("legs", [])

        await asyncio.wait_for(track.done.wait(), timeout=60)
        caller.channel.send(json.dumps({"type": "close"}))  # ends the call's input
        await asyncio.wait_for(caller.ended.wait(), timeout=30)
        await asyncio.sleep(0.3)  # the last frames after session.end
        await asyncio.wait_for(agent_task, timeout=30)
        await caller.close()
        result.sessions_after = await _wait_sessions(server, 0, timeout=15)

    asyncio.run(go())
    return result


def test_the_answer_names_the_leg_and_the_call_ends_cleanly(call: Call) -> None:
    assert call.answer["type"] == "answer" and call.answer["session_id"]
    assert (call.answer["bridge"], call.answer["role"]) == (BRIDGE, "caller")
    assert call.sessions_during == 2  # one slot per leg
    assert call.sessions_after == 0, "the legs did not free their slots"
    assert call.agent.close_code == 1000


def test_a_third_leg_is_refused_with_409_and_leaves_nothing(call: Call) -> None:
    status, body = call.third
    assert (status, body["type"], body["code"]) == (409, "error", "bridge_full"), body
    assert call.after_refusal == 2
    assert call.legs_after_refusal == ["agent", "caller"]


def test_the_data_channel_carries_the_call_with_roles(call: Call) -> None:
    events = call.caller.events
    types = [e["type"] for e in events]
    assert events[0] == {"type": "bridge.joined", "bridge": BRIDGE, "role": "caller",
                         "waiting": False}
    assert "session.begin" in types and types[-1] == "session.end"
    begin = next(e for e in events if e["type"] == "session.begin")
    assert begin["config"]["channel_roles"] == ["agent", "caller"]
    assert begin["config"]["channel_entities"][0] == []  # the agent: entities=none
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert {e["role"] for e in finals} == {"agent", "caller"}
    caller_text = " ".join(e["text"] for e in finals if e["role"] == "caller")
    assert "#" in caller_text
    assert "2154" not in caller_text.replace(" ", "").replace("-", "")
    assert "US_SSN" in {e["entity"] for e in events if e["type"] == "redaction"}
    # The agent's leg saw the same conversation.
    assert [e for e in call.agent.events if e["type"] == "transcript.final"] == finals


def test_the_agent_hears_the_caller_with_the_ssn_masked(call: Call) -> None:
    speech = _clip(CALLER_CLIP, RATE)
    heard = _to_48k(call.agent.received())  # the caller's channel, redacted, 16 kHz
    spans = [Span(p["entity"], p["start_s"], p["end_s"])
             for p in fixture_manifest()[CALLER_CLIP]["pii"]]
    lag = _measure_delay(speech, heard, spans, max_lag=heard.size - speech.size)
    aligned = heard[lag : lag + speech.size]
    assert aligned.size == speech.size, "the agent heard less than the caller said"
    n = int(RATE * FRAME_S)
    usable = speech.size // n * n
    score = score_clip(speech[:usable], _energy_proxy(speech, aligned), RATE, spans)
    audible = dict(score.entities)
    assert audible["US_SSN"] <= 0.10, audible
    # Opus is lossy, but the speech away from the SSN comes through.
    assert score.away_speech and score.away_masked / score.away_speech < 0.2, score
    print(f"agent heard the caller {1000 * lag / RATE:.0f} ms into its stream; "
          f"entities {score.entities}, over-redaction {score.away_masked}/{score.away_speech}")


def test_the_caller_hears_the_agent_on_its_inbound_track(call: Call) -> None:
    spoken = _to_48k(_clip(AGENT_CLIP, 16000))
    heard = call.caller.received()
    assert heard.size > spoken.size
    lag = _measure_delay(spoken, heard, [], max_lag=heard.size - spoken.size)
    aligned = heard[lag : lag + spoken.size]
    assert aligned.size == spoken.size, "the caller heard less than the agent said"
    n = int(RATE * FRAME_S)
    usable = spoken.size // n * n
    # No span: every frame where the agent spoke should carry its energy.
    score = score_clip(spoken[:usable], _energy_proxy(spoken, aligned), RATE, [])
    assert score.away_speech and score.away_masked / score.away_speech < 0.2, score
    voiced = np.abs(spoken[:usable].reshape(-1, n)).max(axis=1) > 1000
    level = np.sqrt(np.mean(aligned[:usable].reshape(-1, n).astype(np.float64) ** 2, axis=1))
    assert voiced.any() and np.median(level[voiced]) > 300
    print(f"caller heard the agent {1000 * lag / RATE:.0f} ms into its track; "
          f"lost {score.away_masked}/{score.away_speech} speech frames")


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"bridge": "w2"}, "bad_config"),  # no role
        ({"bridge": "w2", "role": "host"}, "bad_config"),
        ({"bridge": "w2", "role": "caller", "pace": "asap"}, "bad_config"),
        ({"bridge": "w2", "role": "caller", "sample_rate": 16000}, "bad_config"),
        ({"bridge": "", "role": "caller"}, "bad_config"),
    ],
)
def test_bad_bridge_settings_are_refused_and_leave_nothing(server, config: dict[str, Any],
                                                           code: str) -> None:
    status, body = _http(server.http + "/v1/webrtc/offer",
                         {"type": "offer", "sdp": "v=0\r\n", "config": config})
    assert (status, body["type"], body["code"]) == (400, "error", code), body
    assert asyncio.run(_sessions(server)) == 0
    assert _http(f"{server.http}/v1/bridges/w2")[0] == 404


def test_server_shutdown_ends_a_waiting_webrtc_leg(tmp_path: Path) -> None:
    """SIGTERM with a WebRTC leg waiting for the other: the leg ends, the peer
    connection is closed by the server, the server exits."""
    srv = start_server(tmp_path)
    try:
        async def go() -> tuple[list[dict[str, Any]], str]:
            client = Client(WavTrack(np.zeros(30 * RATE, dtype=np.int16)))
            status, answer = await _offer(client.pc, srv, {"bridge": "alone", "role": "agent"})
            assert status == 200, answer
            await client.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"],
                                                                       "answer"))
            deadline = time.monotonic() + 15
            while not client.events and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(stop_server, srv)
            while (client.pc.connectionState not in ("closed", "failed")
                   and time.monotonic() < deadline + 15):
                await asyncio.sleep(0.05)
            state = client.pc.connectionState
            await client.close()
            return client.events, state

        events, state = asyncio.run(go())
    finally:
        stop_server(srv)
    assert events and events[0] == {"type": "bridge.joined", "bridge": "alone",
                                    "role": "agent", "waiting": True}
    assert state in ("closed", "failed")
    assert srv.proc.returncode is not None
    assert "webrtc bridge leg ended" in srv.log_text()
