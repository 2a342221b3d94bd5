"""Asterisk AudioSocket end to end: a real server, a TCP client speaking the protocol
byte for byte (Asterisk itself is not installable here), real models, loopback only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import struct
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.config import ConfigError, ServerConfig
from tests.conftest import (
    FIXTURES,
    RunningServer,
    _free_port,
    fixture_manifest,
    received,
    start_server,
    stop_server,
)
from tests.e2e.test_stream import PII_DIGITS, assert_masked

pytestmark = pytest.mark.e2e

KEY = "audiosocket-test-key-0123456789"
FRAME = 320  # 20 ms of 8 kHz 16-bit mono, as Asterisk sends it


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = _free_port()
    srv = start_server(tmp_path_factory.mktemp("audiosocket"), "--audiosocket-port", str(port))
    yield srv, port
    stop_server(srv)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = _free_port()
    srv = start_server(tmp_path_factory.mktemp("audiosocket-keyed"), "--audiosocket-port",
                       str(port), env={"STREAMSERVER_API_KEYS": KEY})
    yield srv, port
    stop_server(srv)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


def uuid_frame(call: uuid.UUID) -> bytes:
    return frame(0x01, call.bytes)


def pcm8k(name: str) -> np.ndarray:
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    return audio_mod.to_int16(audio_mod.resample(inp[:, 0].astype(np.float32) / 32768, rate, 8000))


def http(server: RunningServer, method: str, path: str, body: Any = None,
         key: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def join_listener(url: str, headers: dict[str, str] | None = None,
                        ) -> tuple[Any, dict[str, Any]]:
    """Listen to a session as soon as it exists (the call's UUID starts it)."""
    for _ in range(200):
        ws = await websockets.connect(url, additional_headers=headers)
        first = json.loads(await ws.recv())
        if first["type"] == "session.begin":
            return ws, first
        await ws.close()
        await asyncio.sleep(0.05)
    raise AssertionError("the call's session never appeared")


async def good_call(server: RunningServer, port: int, name: str,
                    key: str | None = None) -> tuple[bytes, bytes, list[dict[str, Any]],
                                                     dict[str, Any], np.ndarray]:
    """One call as Asterisk makes it: UUID, 20 ms audio frames in real time, hang-up.
    Returns what came back on the socket, the listener's audio and events, the
    session.begin it saw, and the input."""
    call = uuid.uuid4()
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}",
                        {"entities": "default", "delay_ms": 1500}, key)
    assert status == 200, body
    assert body["session_id"] == call.hex
    pcm = pcm8k(name)
    raw = pcm.tobytes()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(uuid_frame(call))
    await writer.drain()
    headers = {"Authorization": f"Bearer {key}"} if key else None
    listen, begin = await join_listener(body["listen_url"], headers)
    heard = asyncio.create_task(received(listen))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, i in enumerate(range(0, len(raw), FRAME)):
        writer.write(frame(0x10, raw[i:i + FRAME]))
        await writer.drain()
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))
    writer.write(frame(0x00))
    await writer.drain()
    back = await asyncio.wait_for(reader.read(), 60)  # until the server closes
    writer.close()
    audio, events = await asyncio.wait_for(heard, 60)
    return back, audio, events, begin, pcm


def test_a_call_is_redacted_for_its_listener_and_bad_calls_end_alone(open_server) -> None:
    server, port = open_server

    async def go() -> tuple[Any, list[bytes]]:
        call = asyncio.create_task(good_call(server, port, "dev_008.wav"))
        await asyncio.sleep(1.0)  # bad calls while the good one is under way
        bad = await asyncio.gather(*(bad_call(port, wire, eof) for wire, eof in BAD_CALLS))
        return await call, bad

    (back, audio, events, begin, pcm), bad = asyncio.run(go())
    assert begin["config"]["sample_rate"] == 8000 and begin["config"]["encoding"] == "pcm_s16le"
    assert begin["config"]["delay_ms"] == 1500
    assert back == b""  # no bridge: Asterisk is sent nothing, only the close
    out = np.frombuffer(audio, "<i2")
    assert out.shape[0] == pcm.shape[0]  # joined before the first frame: all of it
    assert_masked("dev_008.wav", pcm, out, 8000)
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert finals and events[-1]["type"] == "session.end"
    texts = [e["text"] for e in finals] + [w["text"] for e in finals for w in e["words"]]
    digits = PII_DIGITS["dev_008.wav"]
    assert not any(digits in t.replace(" ", "").replace("-", "") for t in texts), texts
    assert any(w["redacted"] for e in finals for w in e["words"])
    # Every bad call got one 0xff frame (one-byte code: bad_frame) and the close.
    assert bad == [b"\xff\x00\x01\x10"] * len(BAD_CALLS), bad
    assert http(server, "GET", "/readyz")[0] == 200
    log = server.log_text()
    assert "audiosocket error" in log and "Traceback" not in log


def _bad(*parts: bytes) -> bytes:
    return b"".join(parts)


_U = uuid.UUID("5a3f7c1e-0000-4000-8000-00000000abcd")
BAD_CALLS: list[tuple[bytes, bool]] = [
    (_bad(uuid_frame(uuid.uuid4()), frame(0x42, b"x")), False),  # unknown kind
    (_bad(uuid_frame(uuid.uuid4()), b"\x10\xff\xff", bytes(64)), False),  # lying length
    (_bad(uuid_frame(uuid.uuid4()), b"\x10\x01\x40", bytes(100)), True),  # closed mid-frame
    (frame(0x10, bytes(FRAME)), False),  # audio before the UUID
    (_bad(uuid_frame(uuid.uuid4()), frame(0x10, bytes(FRAME - 1))), False),  # odd length
    (frame(0x01, _U.bytes + b"\x00"), False),  # a 17-byte UUID
]


async def bad_call(port: int, wire: bytes, half_close: bool) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(wire)
    await writer.drain()
    if half_close:
        writer.write_eof()
    got = await asyncio.wait_for(reader.read(), 30)  # until the server closes
    writer.close()
    return got


def test_policy_api_validates_before_any_call(open_server) -> None:
    server, _port = open_server
    call = uuid.uuid4()
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}", {"delay_ms": 5})
    assert (status, body["code"]) == (400, "bad_config")
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}", {"sample_rate": 16000})
    assert (status, body["code"]) == (400, "bad_config")
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}", {"bridge": "call-7"})
    assert (status, body["code"]) == (400, "bad_config")  # a leg needs its role
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}",
                        {"bridge": "call-7", "role": "agent", "entities": "none"})
    assert status == 200 and body["bridge"] == "call-7" and body["role"] == "agent"
    status, body = http(server, "PUT", "/v1/audiosocket/not-a-uuid", {})
    assert status == 400
    assert http(server, "PUT", f"/v1/audiosocket/{call}", {})[0] == 200
    assert http(server, "DELETE", f"/v1/audiosocket/{call}")[0] == 204
    assert http(server, "DELETE", f"/v1/audiosocket/{call}")[0] == 404


def test_keyed_server_refuses_a_call_nobody_registered(keyed_server) -> None:
    server, port = keyed_server
    call = uuid.uuid4()
    assert http(server, "PUT", f"/v1/audiosocket/{call}", {})[0] == 401
    got = asyncio.run(bad_call(port, uuid_frame(call) + frame(0x10, bytes(FRAME)), False))
    assert got == b"\xff\x00\x01\x12"  # unauthorized: no key, no policy
    # Registered with a key, the call runs as that key's: its listener may join.
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}", {}, KEY)
    assert status == 200

    async def registered() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(uuid_frame(call))
        await writer.drain()
        listen, begin = await join_listener(body["listen_url"],
                                            {"Authorization": f"Bearer {KEY}"})
        heard = asyncio.create_task(received(listen))
        for _ in range(25):  # half a second of silence, then hang up
            writer.write(frame(0x10, bytes(FRAME)))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(frame(0x00))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()
        _, events = await asyncio.wait_for(heard, 30)
        assert events[-1]["type"] == "session.end"
        return begin

    assert asyncio.run(registered())["session_id"] == call.hex
    # Used: the same UUID again is a call nobody registered.
    got = asyncio.run(bad_call(port, uuid_frame(call), True))
    assert got == b"\xff\x00\x01\x12"


def test_audiosocket_port_is_validated() -> None:
    with pytest.raises(ConfigError):
        ServerConfig.from_env(port=9000, audiosocket_port=9000)
    with pytest.raises(ConfigError):
        ServerConfig.from_env(audiosocket_port=70000)
    assert ServerConfig.from_env(audiosocket_port=9092).audiosocket_port == 9092
    assert ServerConfig.from_env().audiosocket_port is None


def test_sigterm_drains_a_call_then_hangs_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    port = _free_port()
    server = start_server(tmp_path_factory.mktemp("audiosocket-drain"), "--audiosocket-port",
                          str(port))
    try:
        call = uuid.uuid4()
        status, body = http(server, "PUT", f"/v1/audiosocket/{call}", {"delay_ms": 2000})
        assert status == 200
        raw = pcm8k("dev_008.wav").tobytes()

        async def go() -> tuple[bytes, bytes, list[dict[str, Any]]]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(uuid_frame(call))
            await writer.drain()
            listen, _ = await join_listener(body["listen_url"])
            heard = asyncio.create_task(received(listen))
            back = asyncio.create_task(reader.read())  # until the server closes
            for n, i in enumerate(range(0, len(raw), FRAME)):
                if n == 100:  # 2 s in, the server is told to stop
                    server.proc.send_signal(signal.SIGTERM)
                if back.done():
                    break
                writer.write(frame(0x10, raw[i:i + FRAME]))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(0.02)
            got = await asyncio.wait_for(back, 30)
            writer.close()
            audio, events = await asyncio.wait_for(heard, 30)
            return got, audio, events

        got, audio, events = asyncio.run(go())
        assert got == b"\x00\x00\x00"  # we ended the call: a hang-up, then the close
        assert events[-1]["type"] == "session.end"  # every accepted sample released first
        assert len(audio) >= 100 * FRAME
        assert server.proc.wait(timeout=30) == 0
    finally:
        stop_server(server)


def _read_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Whole frames at the front of ``buf`` (consumed), as (kind, payload)."""
    out = []
    while len(buf) >= 3:
        kind, length = struct.unpack(">BH", bytes(buf[:3]))
        if len(buf) < 3 + length:
            break
        out.append((kind, bytes(buf[3 : 3 + length])))
        del buf[: 3 + length]
    return out


def test_bridge_between_a_twilio_caller_and_an_asterisk_agent(open_server) -> None:
    """One Twilio leg (the caller, mu-law) and one AudioSocket leg (the agent, slin,
    entities=none): Asterisk plays the caller with the card number and SSN masked
    (>= 95 % of their speech), Twilio gets
    the agent's voice as media; the caller's stop ends the call, and Asterisk gets
    the rest and a hang-up frame."""
    from streamserver.evaluation import Span, score_clip
    from tests.e2e.test_twilio import _phone, _start, _stream, _twilio_url

    server, port = open_server
    call = uuid.uuid4()
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}",
                        {"bridge": "pstn-1", "role": "agent", "entities": "none"})
    assert status == 200, body
    # A card number, half a second, an SSN: 8 kHz, through mu-law.
    card, ssn = _phone("dev_002.wav"), _phone("dev_014.wav")
    caller = np.concatenate([card, np.zeros(4000, np.int16), ssn])
    shift = (card.size + 4000) / 8000
    agent = (np.sin(np.arange(8000) * 0.3) * 2000).astype(np.int16)  # a second of tone
    to_asterisk: list[tuple[int, bytes]] = []
    to_twilio: list[dict[str, Any]] = []

    async def asterisk() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(uuid_frame(call))
        await writer.drain()

        async def send() -> None:  # Asterisk sends 20 ms frames all call long
            loop = asyncio.get_running_loop()
            t0, n = loop.time(), 0
            while True:
                chunk = agent[n * 160 : (n + 1) * 160]
                chunk = chunk if chunk.size == 160 else np.zeros(160, np.int16)
                writer.write(frame(0x10, chunk.tobytes()))
                await writer.drain()
                n += 1
                await asyncio.sleep(max(0.0, t0 + n * 0.02 - loop.time()))

        sender = asyncio.create_task(send())
        buf = bytearray()
        try:
            while data := await asyncio.wait_for(reader.read(65536), 60):
                buf.extend(data)
                to_asterisk.extend(_read_frames(buf))
        finally:
            sender.cancel()
            writer.close()

    async def twilio() -> None:
        await asyncio.sleep(0.5)
        async with websockets.connect(_twilio_url(server)) as ws:
            await ws.send(_start("MZpstn1", ["inbound"], {"bridge": "pstn-1", "role": "caller"}))

            async def read() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for msg in ws:
                        to_twilio.append(json.loads(msg))

            reader = asyncio.create_task(read())
            await asyncio.sleep(0.2)
            await _stream(ws, "MZpstn1", {"inbound": caller})
            await asyncio.wait_for(reader, 60)

    async def go() -> None:
        await asyncio.gather(asterisk(), twilio())

    asyncio.run(go())
    kinds = [k for k, _ in to_asterisk]
    assert kinds[-1] == 0x00 and set(kinds) <= {0x10, 0x00}  # audio, then hang-up
    sizes = [len(p) for k, p in to_asterisk if k == 0x10]
    assert max(sizes) == FRAME and all(n % 2 == 0 for n in sizes)  # whole samples
    heard = np.frombuffer(b"".join(p for k, p in to_asterisk if k == 0x10), "<i2")
    assert heard.size >= caller.size - 2 * FRAME
    manifest = fixture_manifest()
    spans = [Span(p["entity"], p["start_s"], p["end_s"]) for p in manifest["dev_002.wav"]["pii"]]
    spans += [Span(p["entity"], p["start_s"] + shift, p["end_s"] + shift)
              for p in manifest["dev_014.wav"]["pii"]]
    n = min(heard.size, caller.size)
    audible = dict(score_clip(caller[:n], heard[:n], 8000, spans).entities)
    assert audible["CREDIT_CARD"] <= 0.05 and audible["US_SSN"] <= 0.05, audible
    media = [m for m in to_twilio if m["event"] == "media"]
    assert media and {m["streamSid"] for m in media} == {"MZpstn1"}
    back = audio_mod.decode(b"".join(base64.b64decode(m["media"]["payload"])
                                     for m in media), audio_mod.AudioFormat("mulaw", 8000, 1))
    assert np.abs(back[:, 0].astype(np.int32)).max() > 1000  # the agent's tone came through
