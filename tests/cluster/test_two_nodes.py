"""Two real server processes (the real models) sharing a real redis-server.

A session streams a PII clip through node A; WebSocket listeners on A and on B
hear the same bytes and events. What Redis holds during the call is scanned for
the raw PCM and the text of the PII. Then the failure modes: Redis killed
mid-call (the session on A completes, redacted; B's listener gets
``relay_unavailable``; after Redis is back a new listener on B works), a node
SIGKILLed (its entry expires; B's listener gets ``unknown_session``), the
per-key session limit across nodes, and a token from A used on B.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from aiortc import RTCSessionDescription

from streamserver import audio as audio_mod
from streamserver.cluster.codec import KIND_AUDIO, RelayCodec, derive_key
from tests.cluster.conftest import CLUSTER_SECRET, RedisServer
from tests.conftest import (
    FIXTURES,
    RunningServer,
    fixture_manifest,
    metric_value,
    read_all,
    received,
    scrape_metrics,
    session_token,
    start_server,
    stop_server,
)
from tests.e2e.test_webrtc import Listener as RtcListener

pytestmark = pytest.mark.e2e

KEY, OTHER_KEY = "cluster-key-0123456789", "cluster-other-0123456789"
TTL_S, HEARTBEAT_S = 3.0, 1.0
CLIP = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."


def node_env(redis_url: str, name: str) -> dict[str, str]:
    return {"STREAMSERVER_REDIS_URL": redis_url, "STREAMSERVER_CLUSTER_SECRET": CLUSTER_SECRET,
            "STREAMSERVER_NODE_ID": name, "STREAMSERVER_API_KEYS": f"{KEY},{OTHER_KEY}",
            "STREAMSERVER_CLUSTER_TTL_S": str(TTL_S),
            "STREAMSERVER_CLUSTER_HEARTBEAT_S": str(HEARTBEAT_S),
            "STREAMSERVER_MAX_SESSIONS_PER_KEY": "2", "STREAMSERVER_WORKERS": "1"}


def start_nodes(tmp: Path, redis: RedisServer, *names: str) -> list[RunningServer]:
    """Nodes started at once (their models load in parallel)."""
    for name in names:
        (tmp / name).mkdir(exist_ok=True)
    with ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(start_server, tmp / n, env=node_env(redis.url, n))
                   for n in names]
        return [f.result() for f in futures]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory,
          redis_server: RedisServer) -> Iterator[list[RunningServer]]:
    """Nodes a and b for every test, c to be SIGKILLed (started with them: the
    models load in parallel)."""
    nodes = start_nodes(tmp_path_factory.mktemp("cluster"), redis_server, "a", "b", "c")
    yield nodes
    for node in nodes:
        stop_server(node)


@pytest.fixture
def nodes(three: list[RunningServer]) -> tuple[RunningServer, RunningServer]:
    return three[0], three[1]


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def listen_url(node: RunningServer, session_id: str) -> str:
    return node.url.replace("/v1/stream", f"/v1/sessions/{session_id}/listen")


@dataclass
class Heard:
    audio: bytearray = field(default_factory=bytearray)
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    begun: asyncio.Event = field(default_factory=asyncio.Event)


async def listen(url: str, key: str = KEY, heard: Heard | None = None) -> Heard:
    """One listener until the server closes it."""
    heard = heard or Heard()
    headers = auth(key) if key else {}
    async with websockets.connect(url, additional_headers=headers) as ws:
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    heard.audio.extend(msg)
                else:
                    heard.events.append(json.loads(msg))
                    heard.begun.set()
        except websockets.ConnectionClosed:
            pass
        heard.close_code = ws.close_code
    heard.begun.set()
    return heard


def clip() -> tuple[np.ndarray, int]:
    samples, rate = audio_mod.read_wav(FIXTURES / CLIP)
    return samples, rate


def pii_windows(samples: np.ndarray, rate: int, ms: int = 50) -> list[bytes]:
    """The raw input bytes of every ``ms`` window inside the clip's PII spans."""
    raw = samples.astype("<i2").tobytes()
    width = rate * ms // 1000 * 2
    out = []
    for pii in fixture_manifest()[CLIP]["pii"]:
        first, last = int(pii["start_s"] * rate) * 2, int(pii["end_s"] * rate) * 2
        for start in range(first, last - width, width):
            window = raw[start:start + width]
            if np.abs(np.frombuffer(window, "<i2")).max() > 300:  # speech, not a pause
                out.append(window)
    return out


def pii_texts() -> list[bytes]:
    texts = {"linda", "smith", "830-555-0175", "8305550175", "555-0175", "0175"}
    return sorted(t.encode() for t in texts)


def dump_redis(redis: RedisServer) -> tuple[bytes, bytes, list[bytes], int]:
    """Everything Redis holds (keys and values, streams entry by entry); the same
    without the audio payloads (for text: audio bytes may spell anything); the
    audio payloads of the relay streams, in order; and how many records there are."""
    codec = RelayCodec(derive_key(CLUSTER_SECRET.encode(), "relay"))
    blob, text, audio = bytearray(), bytearray(), []
    records = 0
    with redis.client() as c:
        for key in c.scan_iter(count=1000):
            records += 1
            blob += key
            text += key
            kind = c.type(key)
            if kind == b"string":
                blob += c.get(key) or b""
                text += c.get(key) or b""
            elif kind == b"stream":
                sid = key.decode().rsplit(":", 1)[1]
                for _, fields in c.xrange(key):
                    records += 1
                    for name, value in fields.items():
                        blob += name + value
                    msg = codec.decode(sid, fields[b"m"])
                    if msg.kind == KIND_AUDIO:
                        audio.append(msg.payload[8:])
                    else:
                        text += msg.payload
            elif kind == b"zset":
                for member, score in c.zrange(key, 0, -1, withscores=True):
                    blob += member + str(score).encode()
                    text += member
            else:
                blob += c.dump(key) or b""
    return bytes(blob), bytes(text), audio, records


async def open_session(node: RunningServer, key: str = KEY, pace: str = "asap",
                       rate: int = 16000, delay_ms: int = 1000) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(
        f"{node.url}?encoding=pcm_s16le&sample_rate={rate}&delay_ms={delay_ms}&pace={pace}",
        additional_headers=auth(key))
    first = json.loads(await ws.recv())
    return ws, first


async def open_when_allowed(node: RunningServer, timeout: float = 5.0,
                            ) -> tuple[Any, dict[str, Any]]:
    """A session for KEY once the key is under its limit again (releases and
    expiries reach Redis within a round trip or two)."""
    deadline = time.monotonic() + timeout
    while True:
        ws, first = await open_session(node)
        if first["type"] == "session.begin" or time.monotonic() > deadline:
            return ws, first
        await ws.close()
        await asyncio.sleep(0.1)


async def finish(ws: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """Close the input; everything the client receives until the server closes."""
    await ws.send(json.dumps({"type": "close"}))
    return await received(ws)


async def send_clip(ws: Any, samples: np.ndarray, rate: int, realtime: bool,
                    start: int = 0, stop: int | None = None) -> None:
    frame = rate // 50
    stop = samples.shape[0] if stop is None else stop
    t0 = time.monotonic()
    for i in range(start, stop, frame):
        await ws.send(samples[i:i + frame].astype("<i2").tobytes())
        if realtime:
            await asyncio.sleep(max(0.0, t0 + (i - start + frame) / rate - time.monotonic()))


def registered(redis: RedisServer, session_id: str) -> bool:
    with redis.client() as c:
        return bool(c.exists(f"streamserver:session:{session_id}"))


def readyz(node: RunningServer) -> dict[str, Any]:
    """``/readyz``'s body, 200 or 503 (a loaded node may say "busy")."""
    try:
        with urllib.request.urlopen(node.http + "/readyz", timeout=5) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        return dict(json.loads(exc.read()))


def test_a_listener_on_b_hears_exactly_what_a_listener_on_a_hears(
        nodes: tuple[RunningServer, RunningServer], redis_server: RedisServer) -> None:
    a, b = nodes
    samples, rate = clip()

    async def go() -> tuple[bytes, list[dict[str, Any]], Heard, Heard]:
        ws, begin = await open_session(a, rate=rate)
        sid = begin["session_id"]
        on_a, on_b = Heard(), Heard()
        listeners = [asyncio.create_task(listen(listen_url(n, sid), heard=h))
                     for n, h in ((a, on_a), (b, on_b))]
        await asyncio.wait_for(asyncio.gather(on_a.begun.wait(), on_b.begun.wait()), 10)
        audio, events = bytearray(), [begin]
        reading = asyncio.create_task(read_all(ws, audio, events))
        await send_clip(ws, samples, rate, realtime=False)
        await ws.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(reading, 30)
        await asyncio.wait_for(asyncio.gather(*listeners), 15)
        return bytes(audio), events, on_a, on_b

    audio, events, on_a, on_b = asyncio.run(go())
    assert len(audio) == samples.shape[0] * 2  # asap: the input's length
    assert any(e["type"] == "redaction" for e in events)
    # Joined before the first audio: both hear all of it, byte for byte.
    assert bytes(on_b.audio) == bytes(on_a.audio) == audio
    assert on_b.events == on_a.events == events
    assert on_b.events[-1]["type"] == "session.end" and on_b.close_code == 1000

    # Only redacted output entered Redis. The stream is still there (30 s after
    # the end). Everything Redis holds is the audio the client received (the
    # redacted output, relayed in order) or text: no window of the raw PII audio
    # is in either, nor the PII as text.
    blob, text, relayed, records = dump_redis(redis_server)
    relayed_audio = b"".join(relayed)
    assert relayed_audio == audio
    # Beyond that text and audio: only names, headers and MACs (< 200 bytes each).
    assert len(blob) <= len(text) + len(audio) + 200 * records
    raw = samples.astype("<i2").tobytes()
    windows = pii_windows(samples, rate, ms=50)
    assert len(windows) > 20
    assert not [w for w in windows if w in relayed_audio or w in blob]
    # Positive control: unmasked speech is relayed byte for byte, so a raw
    # window would be found if it were there.
    width = len(windows[0])
    spoken = [raw[i:i + width] for i in range(0, int(1.0 * rate) * 2, width // 5)
              if np.abs(np.frombuffer(raw[i:i + width], "<i2")).max() > 300]
    assert len(spoken) > 10 and any(w in relayed_audio for w in spoken)
    short = [w[:width // 5] for w in spoken]  # 10 ms: within one stored audio block
    assert any(w in blob for w in short)
    lower = text.lower()
    assert not [t for t in pii_texts() if t in lower]
    assert b"transcript.final" in text and b"#####" in text  # masked text is there


def test_only_the_owner_listens_on_any_node_and_tokens_work_everywhere(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    a, b = nodes

    async def go() -> None:
        ws, begin = await open_session(a)
        sid = begin["session_id"]
        try:
            other = await listen(listen_url(b, sid), OTHER_KEY)
            assert other.events[0]["code"] == "unknown_session" and other.close_code == 4404
            unknown = await listen(listen_url(b, "f" * 32))
            assert unknown.events[0]["code"] == "unknown_session" and unknown.close_code == 4404
            anonymous = await listen(listen_url(b, sid), "")
            assert anonymous.events[0]["code"] == "unauthorized"
            # A token from node A, used on node B (browsers' ?token=).
            token = session_token(a.url, KEY)
            heard = Heard()
            task = asyncio.create_task(listen(f"{listen_url(b, sid)}?token={token}", "",
                                              heard))
            await asyncio.wait_for(heard.begun.wait(), 10)
            assert heard.events[0]["type"] == "session.begin"
            assert heard.events[0]["session_id"] == sid
            # One use only (on that node).
            again = await listen(f"{listen_url(b, sid)}?token={token}", "")
            assert again.events[0]["code"] == "unauthorized"
            await finish(ws)
            await asyncio.wait_for(task, 10)
            assert heard.events[-1]["type"] == "session.end"
        finally:
            await ws.close()

    asyncio.run(go())


def test_sessions_per_key_are_counted_on_all_nodes(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    a, b = nodes

    async def go() -> None:
        first, _ = await open_session(a)
        second, _ = await open_session(b)
        third, refused = await open_session(a)
        assert refused["code"] == "key_busy"
        await third.close()
        other, begin = await open_session(b, OTHER_KEY)  # another key: its own count
        assert begin["type"] == "session.begin"
        await finish(first)  # one ends: the key may start another, on any node
        fourth, begin = await open_when_allowed(b)
        assert begin["type"] == "session.begin"
        for ws in (second, other, fourth):
            await finish(ws)

    asyncio.run(go())


def test_redis_killed_mid_call_then_back(nodes: tuple[RunningServer, RunningServer],
                                         redis_server: RedisServer) -> None:
    a, b = nodes
    samples, rate = clip()
    samples = np.concatenate([samples, samples[: samples.shape[0] // 2]])  # 13 s, real time
    cut = int(2.5 * rate)

    async def go() -> dict[str, Any]:
        ws, begin = await open_session(a, pace="realtime", rate=rate, delay_ms=2000)
        sid = begin["session_id"]
        on_a, on_b = Heard(), Heard()
        listeners = [asyncio.create_task(listen(listen_url(n, sid), heard=h))
                     for n, h in ((a, on_a), (b, on_b))]
        await asyncio.wait_for(asyncio.gather(on_a.begun.wait(), on_b.begun.wait()), 10)
        sending = asyncio.create_task(send_clip(ws, samples, rate, realtime=True))
        received: dict[str, Any] = {"audio": bytearray(), "events": [begin]}
        reading = asyncio.create_task(read_all(ws, received["audio"], received["events"]))
        await asyncio.sleep(cut / rate)
        redis_server.kill()
        await asyncio.wait_for(listeners[1], 10)  # B's listener is told and closed
        received["b_events"] = on_b.events
        received["b_close"] = on_b.close_code
        received["b_audio"] = len(on_b.audio)
        # A learns of it on its own next Redis call, which may come a moment after
        # B's: wait for it (bounded), then read.
        deadline = time.monotonic() + 10
        while (readyz(a).get("cluster") or {}).get("redis") != "down" \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        received["ready_down"] = readyz(a)
        received["up_down"] = metric_value(scrape_metrics(a.http), "streamserver_redis_up")
        # While Redis is down a listener on B cannot know: try later.
        refused = await listen(listen_url(b, sid))
        received["refused"] = refused.events[0]["code"]
        await asyncio.sleep(1.0)
        redis_server.start()  # empty, as a Redis that lost its data
        deadline = time.monotonic() + 10
        while not registered(redis_server, sid):  # the next heartbeat registers it again
            assert time.monotonic() < deadline, "not registered again"
            await asyncio.sleep(0.1)
        received["back_after_s"] = time.monotonic() - (deadline - 10)
        late = Heard()
        late_task = asyncio.create_task(listen(listen_url(b, sid), heard=late))
        await sending
        await ws.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(reading, 20)
        await asyncio.wait_for(asyncio.gather(listeners[0], late_task), 10)
        received.update(on_a=on_a, late=late)
        return received

    got = asyncio.run(go())
    audio, events = bytes(got["audio"]), got["events"]
    # The session on A went on, all of it released, redacted.
    assert events[-1]["type"] == "session.end"
    assert len(audio) == samples.shape[0] * 2
    assert sum(e["type"] == "redaction" for e in events) >= 2
    redacted = {e["entity"] for e in events if e["type"] == "redaction" and e["start"] < 8}
    assert {"PERSON", "PHONE_NUMBER"} <= redacted
    # Realtime on a shared CPU: the odd 50 ms of a digit may be released before
    # it is recognised (the redaction core's limit, not the relay's); most is masked.
    windows = pii_windows(samples, rate)  # the spans of its first pass
    assert len([w for w in windows if w in audio]) <= len(windows) // 10
    # A's own listener heard everything, as on one machine.
    assert bytes(got["on_a"].audio) == audio and got["on_a"].events == events
    # B's listener: part of the audio, then the typed error, closed 1013 — never raw.
    assert got["b_events"][-1]["code"] == "relay_unavailable" and got["b_close"] == 1013
    assert 0 < got["b_audio"] < len(audio)
    assert got["refused"] == "relay_unavailable"
    # Reported, and no reason to take the node out of the load balancer.
    assert got["ready_down"]["cluster"]["redis"] == "down"
    assert got["ready_down"].get("reason") in (None, "busy")  # busy: CPU, not Redis
    assert got["up_down"] == 0
    # After Redis came back, a new listener on B followed the rest of the call.
    late: Heard = got["late"]
    assert late.events[0]["type"] == "session.begin" and late.events[-1]["type"] == "session.end"
    assert len(late.audio) > rate  # > 0.5 s of audio
    assert audio.endswith(bytes(late.audio))
    assert readyz(a)["cluster"]["redis"] == "up"


def post_json(url: str, body: dict[str, Any], key: str = KEY) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", **auth(key)})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def webrtc_listener(node: RunningServer, session_id: str) -> RtcListener:
    """A receive-only WebRTC peer listening on ``node`` (tests/e2e/test_webrtc.py)."""
    rtc = RtcListener()
    await rtc.pc.setLocalDescription(await rtc.pc.createOffer())
    status, answer = await asyncio.to_thread(
        post_json, f"{node.http}/v1/sessions/{session_id}/listen/webrtc",
        {"sdp": rtc.pc.localDescription.sdp, "type": "offer"})
    assert status == 200, answer
    await rtc.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    return rtc


def test_a_killed_node_ends_its_listeners_elsewhere(
        three: list[RunningServer], redis_server: RedisServer) -> None:
    _, b, c = three
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    samples, rate = clip()

    async def go() -> tuple[Heard, float, Heard, str, RtcListener]:
        ws, begin = await open_session(c, pace="realtime", rate=rate)
        sid = begin["session_id"]
        _second, also = await open_session(c)  # the key's second session, also on c
        assert also["type"] == "session.begin"
        heard = Heard()
        task = asyncio.create_task(listen(listen_url(b, sid), heard=heard))
        await asyncio.wait_for(heard.begun.wait(), 10)
        rtc = await webrtc_listener(b, sid)  # and one over WebRTC, also on b
        await send_clip(ws, samples, rate, realtime=True, stop=3 * rate)
        c.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.wait_for(task, TTL_S + 10)
        took = time.monotonic() - killed
        assert not registered(redis_server, sid)
        after = await listen(listen_url(b, sid))
        # The dead node's two sessions no longer count against the key.
        fresh, begin = await open_when_allowed(b)
        await finish(fresh)
        deadline = time.monotonic() + 5
        while not any(e["type"] == "error" for e in rtc.events):
            assert time.monotonic() < deadline, rtc.events
            await asyncio.sleep(0.05)
        await rtc.pc.close()
        return heard, took, after, begin["type"], rtc

    heard, took, after, fresh, rtc = asyncio.run(go())
    # Over WebRTC on b: the session's events and audio, then the same typed end.
    assert rtc.events[0]["type"] == "session.begin"
    assert rtc.events[-1]["code"] == "unknown_session"
    assert [e for e in rtc.events if e["type"] == "transcript.final"] == [
        e for e in heard.events if e["type"] == "transcript.final"]
    played = np.concatenate(rtc.frames).astype(np.float64)
    assert np.sqrt(np.mean(played**2)) > 100  # the session's audio, not silence
    assert len(heard.audio) > rate  # the WebSocket listener had > 0.5 s of it
    assert heard.events[0]["type"] == "session.begin"
    assert heard.events[-1]["code"] == "unknown_session" and heard.close_code == 4404
    assert took < TTL_S + HEARTBEAT_S + 2
    assert after.events[0]["code"] == "unknown_session"
    assert fresh == "session.begin"
