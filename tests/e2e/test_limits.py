"""Limits against a real server with small limits.

Each limit is a named setting (README "Limits"); going over it ends or refuses
only the session concerned, with a typed error, and running sessions go on. The
send buffer is tested here with a client that never reads (past the kernel's ~4 MB
of loopback socket buffer) and, in finer detail, on the runner
(tests/runtime/test_faults.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from tests.conftest import (
    FIXTURES,
    RunningServer,
    metric_value,
    scrape_metrics,
    session_token,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.e2e

KEY_A, KEY_B = "key-a-0123456789", "key-b-0123456789"
RATE = 16000
FRAME = RATE // 50


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"STREAMSERVER_API_KEYS": f"{KEY_A},{KEY_B}",
           "STREAMSERVER_MAX_SESSIONS_PER_KEY": "1",
           "STREAMSERVER_MAX_SESSION_S": "3",
           "STREAMSERVER_ALLOWED_ENCODINGS": "pcm_s16le",
           "STREAMSERVER_IDLE_TIMEOUT_S": "2"}
    srv = start_server(tmp_path_factory.mktemp("limits"), "--max-sessions", "2", env=env)
    yield srv
    stop_server(srv)


def clip() -> np.ndarray:
    samples, rate = audio_mod.read_wav(FIXTURES / "dev_001.wav")
    assert rate == RATE
    return samples[:, 0]


class Session:
    """A raw protocol v1 client that records everything it gets."""

    def __init__(self, url: str, key: str, query: str = "pace=realtime") -> None:
        self.url = f"{url}?encoding=pcm_s16le&sample_rate={RATE}&{query}"
        self.key = key
        self.audio = bytearray()
        self.events: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.sent = 0

    async def run(self, samples: np.ndarray, realtime: bool = True, **connect: Any) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with websockets.connect(self.url, additional_headers=headers, **connect) as ws:
            reader = asyncio.create_task(self._read(ws))
            t0 = time.monotonic()
            try:
                for i in range(0, samples.size, FRAME):
                    await ws.send(samples[i:i + FRAME].tobytes())
                    self.sent += samples[i:i + FRAME].size * 2
                    if realtime:
                        await asyncio.sleep(max(0.0, t0 + (i + FRAME) / RATE - time.monotonic()))
                await ws.send(json.dumps({"type": "close"}))
            except websockets.ConnectionClosed:
                pass  # the server ended it: what the test looks at
            await reader
            self.close_code = ws.close_code

    async def _read(self, ws: Any) -> None:
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    self.audio += msg
                else:
                    self.events.append(json.loads(msg))
        except websockets.ConnectionClosed:
            pass

    def error(self) -> str | None:
        return next((e["code"] for e in self.events if e["type"] == "error"), None)


def test_sessions_per_key_and_server_capacity(limited: RunningServer) -> None:
    samples = clip()[: 5 * RATE // 2]  # under the 3 s max_session_s

    async def scenario() -> tuple[Session, Session, Session, Session]:
        a1, b1 = Session(limited.url, KEY_A), Session(limited.url, KEY_B)
        running = [asyncio.create_task(a1.run(samples))]
        await asyncio.sleep(0.5)
        a2 = Session(limited.url, KEY_A)  # key A has its one session; the server has room
        await a2.run(samples[:RATE])
        running.append(asyncio.create_task(b1.run(samples)))
        await asyncio.sleep(0.5)
        b2 = Session(limited.url, KEY_B)  # now the server is full (2)
        await b2.run(samples[:RATE])
        await asyncio.gather(*running)
        return a1, b1, a2, b2

    a1, b1, a2, b2 = asyncio.run(scenario())
    assert (a2.error(), a2.close_code) == ("key_busy", 1013)
    assert (b2.error(), b2.close_code) == ("server_busy", 1013)
    for s in (a1, b1):  # the running sessions were not disturbed
        assert s.error() is None and s.close_code == 1000
        assert len(s.audio) == s.sent == samples.size * 2
        assert s.events[-1]["type"] == "session.end"
    # Once they ended, key A may start again.
    again = Session(limited.url, KEY_A, "pace=asap")
    asyncio.run(again.run(samples[:RATE], realtime=False))
    assert again.error() is None and again.close_code == 1000


@pytest.mark.parametrize("pace", ["realtime", "asap"])
def test_max_session_duration_drains_then_closes(limited: RunningServer, pace: str) -> None:
    samples = clip()  # 8.4 s, over the 3 s limit
    s = Session(limited.url, KEY_A, f"pace={pace}&delay_ms=1000")
    asyncio.run(s.run(samples, realtime=pace == "realtime"))
    types = [e["type"] for e in s.events]
    assert s.error() == "max_duration" and s.close_code == 1008
    # The error comes first, then every accepted sample and session.end.
    assert types[-1] == "session.end" and types.index("error") < types.index("session.end")
    stats = s.events[-1]["stats"]
    assert stats["audio_out_ms"] == stats["audio_in_ms"]
    assert len(s.audio) == stats["audio_in_ms"] * RATE // 1000 * 2
    assert 3000 <= stats["audio_in_ms"] <= 4000 and len(s.audio) < samples.size * 2


def test_disallowed_encoding_is_refused(limited: RunningServer) -> None:
    async def go() -> tuple[list[dict[str, Any]], int | None]:
        url = (f"{limited.url}?encoding=mulaw&sample_rate=8000"
               f"&token={session_token(limited.url, KEY_A)}")
        events = []
        async with websockets.connect(url) as ws:
            try:
                async for msg in ws:
                    events.append(json.loads(msg))
            except websockets.ConnectionClosedError:
                pass
            return events, ws.close_code

    events, code = asyncio.run(go())
    assert events[0]["code"] == "bad_config" and code == 4400
    assert "allowed: pcm_s16le" in events[0]["message"]


def test_faster_than_real_time_is_refused_not_buffered(server: RunningServer) -> None:
    """realtime pace, but the whole clip at once: refused with too_fast once the
    held audio passes D + max_pending_audio_s (12 s), instead of growing memory.
    (The shared server: the limited one's 3 s max_session_s would come first.)"""
    samples = np.tile(clip(), 4)  # 34 s, sent as fast as the socket takes it
    s = Session(server.url, "", "pace=realtime&delay_ms=1000")
    asyncio.run(s.run(samples, realtime=False))
    assert (s.error(), s.close_code) == ("too_fast", 4429)
    # Cut off long before the end: only what was due by then came back.
    assert len(s.audio) < samples.size


def test_idle_session_is_closed(limited: RunningServer) -> None:
    async def go() -> tuple[list[dict[str, Any]], int | None, float]:
        url = (f"{limited.url}?encoding=pcm_s16le&sample_rate={RATE}"
               f"&token={session_token(limited.url, KEY_B)}")
        events = []
        t0 = time.monotonic()
        async with websockets.connect(url) as ws:
            try:
                async for msg in ws:
                    if isinstance(msg, str):
                        events.append(json.loads(msg))
            except websockets.ConnectionClosedError:
                pass
            return events, ws.close_code, time.monotonic() - t0

    events, code, after = asyncio.run(go())
    assert events[-1]["code"] == "idle_timeout" and code == 4408
    assert 1.5 < after < 10


def test_limits_are_validated_at_start(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    for env, words in [({"STREAMSERVER_ALLOWED_ENCODINGS": "opus"}, "allowed_encodings"),
                       ({"STREAMSERVER_SEND_LOW_WATER_BYTES": "99999999"}, "send_low_water"),
                       ({"STREAMSERVER_MAX_SESSION_S": "0"}, "max_session_s"),
                       ({"STREAMSERVER_MAX_SESSIONS_PER_KEY": "x"}, "must be an integer")]:
        done = subprocess.run([sys.executable, "-m", "streamserver.cli", "serve"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={**os.environ, **env})
        assert done.returncode == 2 and words in done.stderr, done.stderr


def test_webrtc_session_ends_at_max_duration(limited: RunningServer) -> None:
    import urllib.request

    from aiortc import RTCSessionDescription

    from tests.e2e.test_webrtc import Client, WavTrack, _input_48k

    track = WavTrack(np.concatenate([_input_48k(), _input_48k()]))  # ~17 s

    async def go() -> Client:
        client = Client(track)
        await client.pc.setLocalDescription(await client.pc.createOffer())
        body = json.dumps({"sdp": client.pc.localDescription.sdp, "type": "offer",
                           "config": {"delay_ms": 1000}}).encode()
        req = urllib.request.Request(
            limited.http + "/v1/webrtc/offer", data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY_B}"})
        answer = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(req).read()))
        await client.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(client.ended.wait(), timeout=30)
        await client.close()
        return client

    client = asyncio.run(go())
    types = [e["type"] for e in client.events]
    codes = [e.get("code") for e in client.events if e["type"] == "error"]
    assert codes == ["max_duration"] and types[-1] == "session.end"
    stats = client.events[-1]["stats"]
    # Wall time from the answer: the first RTP packets come a little later.
    assert 2500 <= stats["audio_in_ms"] <= 5000 and stats["audio_out_ms"] == stats["audio_in_ms"]


class StalledClient:
    """A WebSocket client that sends real-time audio and never reads a byte back.

    Raw socket, handshake and masked frames by hand: a client library reads its
    socket in the background, which is exactly what this client must not do. The
    receive buffer is shrunk so the kernel on this side cannot soak up the output.
    """

    def __init__(self, port: int, query: str) -> None:
        import base64
        import os
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /v1/stream?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # byte by byte: read nothing past the handshake
            assert chunk, "server closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:80]

    def send_binary(self, payload: bytes) -> None:
        import os

        n = len(payload)
        head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        mask = os.urandom(4)
        body = (np.frombuffer(payload, np.uint8)
                ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.sendall(head + mask + body)


def test_client_that_stops_reading_is_closed_not_buffered(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """realtime, 48 kHz stereo (192 kB/s back): a client that sends but never reads.
    Loopback TCP lets the server's socket buffer grow to ~4 MB, then the server holds
    at most its send high water (64 KiB here) and ends the session ``slow_consumer``,
    well before the WebSocket keepalive (20 s ping + 20 s timeout) would; its slot is
    freed, and a session that reads alongside it is untouched."""
    import urllib.parse

    env = {"STREAMSERVER_SEND_HIGH_WATER_BYTES": str(64 << 10),
           "STREAMSERVER_SEND_LOW_WATER_BYTES": str(16 << 10)}
    srv = start_server(tmp_path_factory.mktemp("slow"), env=env)
    port = urllib.parse.urlsplit(srv.http).port
    assert port is not None

    def metric(name: str) -> float:
        return metric_value(scrape_metrics(srv.http), name)

    slow = 'streamserver_session_errors_total{code="slow_consumer"}'

    def stall() -> float:
        client = StalledClient(port, "encoding=pcm_s16le&sample_rate=48000&channels=2"
                                     "&pace=realtime&delay_ms=1000")
        frame = bytes(960 * 2 * 2)  # 20 ms of silence: no model work, full-rate output
        t0 = time.monotonic()
        try:
            for k in range(3000):  # 60 s at most
                if k % 50 == 0 and metric(slow):
                    break
                client.send_binary(frame)
                time.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))
        except OSError:
            pass  # the server closed on us: the metric says why
        finally:
            client.sock.close()
        return time.monotonic() - t0

    async def scenario() -> tuple[float, Session]:
        reader = Session(srv.url, "", "pace=realtime&delay_ms=1000")
        good = asyncio.create_task(reader.run(clip()))
        took = await asyncio.to_thread(stall)
        await good
        return took, reader

    try:
        took, reader = asyncio.run(scenario())
        print(f"slow_consumer {took:.1f} s after the stalled client's first frame")
        assert metric(slow) == 1, f"no slow_consumer after {took:.1f} s"
        assert took < 38, f"slow_consumer only after {took:.1f} s (keepalive would close at 40)"
        deadline = time.monotonic() + 10
        while metric("streamserver_sessions_active") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric("streamserver_sessions_active") == 0  # its slot is free again
        assert reader.error() is None and reader.close_code == 1000
        assert len(reader.audio) == reader.sent == clip().size * 2
    finally:
        stop_server(srv)
