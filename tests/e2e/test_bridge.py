"""The redacting bridge: two real protocol v1 legs through a real server.

The caller's SSN and phone number reach the agent masked, at t + D, every
sample once; the agent (``entities=none``) reaches the caller untouched; one
conversation (roles on the transcript); typed errors for bad joins.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.evaluation import Span, score_clip
from tests.conftest import FIXTURES, fixture_manifest, start_server, stop_server

pytestmark = pytest.mark.e2e

MANIFEST = fixture_manifest()
RATE = 16000
FRAME = RATE // 50  # 20 ms


def _clip(name: str) -> np.ndarray:
    samples, rate = audio_mod.read_wav(FIXTURES / name)
    assert rate == RATE
    return samples[:, 0]


CALLER_CLIPS = ("dev_002.wav", "dev_014.wav", "dev_008.wav")  # card, SSN, name + phone


def _caller_audio() -> tuple[np.ndarray, list[Span]]:
    """The card, SSN and name-and-phone clips, half a second apart; with spans."""
    gap = np.zeros(RATE // 2, dtype=np.int16)
    parts: list[np.ndarray] = []
    spans: list[Span] = []
    shift = 0.0
    for name in CALLER_CLIPS:
        clip = _clip(name)
        spans += [Span(p["entity"], p["start_s"] + shift, p["end_s"] + shift)
                  for p in MANIFEST[name]["pii"]]
        parts += [clip, gap]
        shift += (clip.size + gap.size) / RATE
    return np.concatenate(parts[:-1]), spans


class Leg:
    def __init__(self, url: str, role: str, bridge: str, **params: str) -> None:
        query = "&".join(f"{k}={v}" for k, v in {
            "encoding": "pcm_s16le", "sample_rate": str(RATE), "bridge": bridge,
            "role": role, **params}.items())
        self.url = f"{url}?{query}"
        self.audio: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.close_code: int | None = None

    async def run(self, samples: np.ndarray, started: asyncio.Event,
                  hang_up: bool) -> None:
        async with websockets.connect(self.url, max_size=1 << 24) as ws:
            async def reader() -> None:
                async for msg in ws:
                    if isinstance(msg, bytes):
                        self.audio.append(msg)
                    else:
                        self.events.append(json.loads(msg))
                        if self.events[-1]["type"] == "session.begin":
                            started.set()

            read = asyncio.create_task(reader())
            await asyncio.wait_for(started.wait(), 60)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for i in range(0, samples.size, FRAME):
                await ws.send(samples[i : i + FRAME].tobytes())
                await asyncio.sleep(max(0.0, t0 + (i + FRAME) / RATE - loop.time()))
            if hang_up:
                await ws.send(json.dumps({"type": "close"}))
            await asyncio.wait_for(read, 60)
            self.close_code = ws.close_code

    def received(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.audio), dtype="<i2")


def _join_both(url: str, bridge: str, caller_audio: np.ndarray, agent_audio: np.ndarray,
               agent_params: dict[str, str]) -> tuple[Leg, Leg]:
    caller = Leg(url, "caller", bridge)
    agent = Leg(url, "agent", bridge, **agent_params)

    async def go() -> None:
        c_started, a_started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(caller.run(caller_audio, c_started, hang_up=True))
        await asyncio.sleep(0.5)  # the caller waits for the agent
        await asyncio.gather(task, agent.run(agent_audio, a_started, hang_up=False))

    asyncio.run(go())
    return caller, agent


@pytest.fixture(scope="module")
def call(server) -> tuple[Leg, Leg, np.ndarray, list[Span], np.ndarray]:
    caller_in, spans = _caller_audio()
    agent_in = _clip("dev_001.wav")  # the agent says a phone number: passed untouched
    agent_in = np.concatenate([agent_in, np.zeros(caller_in.size - agent_in.size, np.int16)])
    caller, agent = _join_both(server.url, "call-1", caller_in, agent_in, {"entities": "none"})
    return caller, agent, caller_in, spans, agent_in


def test_agent_hears_the_caller_with_card_ssn_and_phone_masked(call) -> None:
    caller, agent, caller_in, spans, _ = call
    heard = agent.received()
    # Every caller sample once, in order, from the start (no loss, no repeat).
    assert heard.size >= caller_in.size
    score = score_clip(caller_in, heard[: caller_in.size], RATE, spans)
    audible = dict(score.entities)
    # The card number and the SSN are masked (>= 95 % of their speech). A phone
    # number said without a cue takes longer than D, and in real time its first
    # digits can be released before the run is recognisable: the same bound as
    # protocol v1 (test_stream).
    assert audible["CREDIT_CARD"] <= 0.05, audible
    assert audible["US_SSN"] <= 0.05, audible
    assert audible["PHONE_NUMBER"] < 0.25, audible
    # Away from the PII the agent hears exactly what the caller said, sample for
    # sample (masks reach a little past their words: 0.75 s margins).
    away = np.ones(caller_in.size, dtype=bool)
    for span in spans:
        away[max(0, int((span.start_s - 0.75) * RATE)) : int((span.end_s + 0.75) * RATE)] = False
    same = heard[: caller_in.size] == caller_in
    assert same[away].mean() > 0.9
    assert agent.close_code == 1000 and caller.close_code == 1000


def test_caller_hears_the_agent_untouched_when_its_policy_is_none(call) -> None:
    caller, _, _, _, agent_in = call
    heard = caller.received()
    assert heard.size >= agent_in.size
    assert np.array_equal(heard[: agent_in.size], agent_in)


def test_one_conversation_with_roles_on_both_legs(call) -> None:
    caller, agent, _, _, _ = call
    for leg in (caller, agent):
        types = [e["type"] for e in leg.events]
        assert types[0] == "bridge.joined" and "session.begin" in types
        assert types[-1] == "session.end"
        begin = next(e for e in leg.events if e["type"] == "session.begin")
        assert begin["config"]["channel_roles"] == ["agent", "caller"]
        assert begin["config"]["channel_entities"][0] == []
    finals = [e for e in agent.events if e["type"] == "transcript.final"]
    roles = {e.get("role") for e in finals}
    assert roles == {"agent", "caller"}
    caller_text = " ".join(e["text"] for e in finals if e["role"] == "caller")
    agent_text = " ".join(e["text"] for e in finals if e["role"] == "agent")
    flat = caller_text.replace(" ", "").replace("-", "")
    assert "2154" not in flat and "0175" not in flat and "1703" not in flat
    assert "#" in caller_text
    assert "#" not in agent_text  # the agent's own words pass: entities=none
    # Both legs saw the same conversation.
    assert [e for e in caller.events if e["type"] == "transcript.final"] == finals


async def _events_until_close(ws: Any) -> list[dict[str, Any]]:
    events = []
    try:
        async for msg in ws:
            if isinstance(msg, str):
                events.append(json.loads(msg))
    except websockets.ConnectionClosed:
        pass  # closed with an error code: asserted by the caller
    return events


async def _expect_error(url: str, code: str) -> tuple[str, int | None]:
    async with websockets.connect(url) as ws:
        events = await _events_until_close(ws)
        assert events[-1]["type"] == "error" and events[-1]["code"] == code, events
        return code, ws.close_code


def _get_bridge(server, bridge_id: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.http}/v1/bridges/{bridge_id}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_joins_get_typed_errors_and_the_bridge_carries_on(server) -> None:
    base = f"{server.url}?encoding=pcm_s16le&sample_rate={RATE}"

    async def go() -> None:
        async with websockets.connect(f"{base}&bridge=b2&role=caller") as first:
            joined = json.loads(await first.recv())
            assert joined == {"type": "bridge.joined", "bridge": "b2", "role": "caller",
                              "waiting": True}
            # Same role again, a setting of the call changed, asap, no role.
            assert (await _expect_error(f"{base}&bridge=b2&role=caller", "bridge_full"))[1] \
                == 4409
            await _expect_error(f"{base}&bridge=b2&role=agent&delay_ms=900", "bad_config")
            await _expect_error(f"{base}&bridge=b2&role=agent&pace=asap", "bad_config")
            await _expect_error(f"{base}&bridge=b2", "bad_config")
            await _expect_error(f"{base}&bridge=b2&role=agent&channel_roles=agent,caller",
                                "bad_config")
            assert _get_bridge(server, "b2") == (200, {"bridge": "b2", "legs": ["caller"],
                                                    "started": False})
            assert _get_bridge(server, "nope")[0] == 404
            async with websockets.connect(f"{base}&bridge=b2&role=agent") as second:
                assert json.loads(await second.recv())["waiting"] is False
                status, info = _get_bridge(server, "b2")
                assert status == 200 and info["legs"] == ["agent", "caller"]
                # Listeners of the call find it by the bridge: both channels, roles.
                async with websockets.connect(info["listen_url"]) as listener:
                    begin = json.loads(await listener.recv())
                    assert begin["session_id"] == info["session_id"]
                    assert begin["config"]["channels"] == 2
                # A third leg is refused; the two joined legs are unaffected.
                _, close = await _expect_error(f"{base}&bridge=b2&role=agent", "bridge_full")
                assert close == 4409
                await second.send(np.zeros(FRAME, np.int16).tobytes())
                await first.send(json.dumps({"type": "close"}))
                kinds = [e["type"] for e in await _events_until_close(second)]
                assert kinds[0] == "session.begin" and kinds[-1] == "session.end"
                assert second.close_code == 1000

    asyncio.run(go())


def test_a_leg_that_never_arrives_times_out(tmp_path: Path) -> None:
    srv = start_server(tmp_path, env={"STREAMSERVER_BRIDGE_JOIN_TIMEOUT_S": "1"})
    try:
        url = f"{srv.url}?encoding=mulaw&sample_rate=8000&bridge=lonely&role=agent"

        async def go() -> None:
            async with websockets.connect(url) as ws:
                events = await _events_until_close(ws)
                assert events[0]["type"] == "bridge.joined"
                assert events[-1]["code"] == "bridge_timeout"
                assert ws.close_code == 4408

        asyncio.run(go())
    finally:
        stop_server(srv)
