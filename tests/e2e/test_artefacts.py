"""Recorded sessions end to end: a real server with a data dir, keys and webhooks.

The promise (docs/privacy.md): raw audio is never stored; what is kept is
redacted, encrypted, short-lived, readable only by its owner and deletable at once.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from streamserver import audio as audio_mod
from streamserver.cli import stream_file
from streamserver.config import hash_api_key
from streamserver.storage import KeyRing
from streamserver.webhooks import SIGNATURE_HEADER, tenant_secret, verify
from tests.conftest import FIXTURES, RunningServer, session_token, start_server, stop_server
from tests.e2e.test_stream import PII_DIGITS, assert_masked

pytestmark = pytest.mark.e2e

ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"
SECRET = "whsec-test-secret-for-signing"


@dataclass
class Recording:
    server: RunningServer
    data_dir: Path
    tmp_dir: Path
    cwd: Path


def _env(root: Path, keys: str) -> dict[str, str]:
    return {
        "STREAMSERVER_DATA_KEYS": keys,
        "STREAMSERVER_DATA_DIR": str(root / "data"),
        "STREAMSERVER_WEBHOOK_SECRET": SECRET,
        # The test receivers listen on loopback, which webhooks may not reach by default.
        "STREAMSERVER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "STREAMSERVER_PUBLIC_URL": "http://127.0.0.1:{port}",  # webhook links need it
        "STREAMSERVER_API_KEYS": f"{ALICE},{BOB}",
        "STREAMSERVER_SWEEP_INTERVAL_S": "0.5",
        "TMPDIR": str(root / "tmp"),
    }


@pytest.fixture(scope="module")
def keys() -> str:
    return f"k1:{KeyRing.generate_key()}"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory, keys: str) -> Iterator[Recording]:
    root = tmp_path_factory.mktemp("recording")
    (root / "tmp").mkdir()
    srv = start_server(root, env=_env(root, keys))
    yield Recording(srv, root / "data", root / "tmp", root)
    stop_server(srv)


def http(method: str, url: str, key: str | None = ALICE) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


def record_clip(srv: RunningServer, name: str, key: str = ALICE,
                **params: Any) -> tuple[np.ndarray, list[dict[str, Any]]]:
    out, _, events = asyncio.run(stream_file(
        FIXTURES / name, srv.url, {"encoding": "pcm_s16le", "record": "true", **params},
        pace="asap", api_key=key))
    return out, events


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def test_recorded_session_can_be_fetched_only_by_its_owner_then_deleted(
        rec: Recording) -> None:
    srv = rec.server
    name = "dev_014.wav"
    out, events = record_clip(srv, name)
    sid = events[0]["session_id"]
    assert events[0]["config"]["record"] is True
    assert events[0]["config"]["retention_s"] == 24 * 3600
    # The recording is stored before session.end, and announced just before it.
    assert [e["type"] for e in events[-2:]] == ["recording", "session.end"]
    announced = events[-2]
    assert announced["status"] == "ready"
    assert announced["redacted_audio_url"] == f"{srv.http}/v1/sessions/{sid}/redacted-audio"

    status, body, _ = http("GET", f"{srv.http}/v1/sessions/{sid}")
    assert status == 200
    info = json.loads(body)
    assert info["status"] == "ready" and info["complete"] is True
    assert info["audio"]["encoding"] == "pcm_s16le" and info["audio"]["sample_rate"] == 16000
    assert info["stats"]["audio_out_ms"] == events[-1]["stats"]["audio_out_ms"]
    assert info["expires"] - info["ended"] == pytest.approx(24 * 3600)

    # Another key, no key, a malformed id: nothing to see.
    assert http("GET", f"{srv.http}/v1/sessions/{sid}", key=BOB)[0] == 404
    assert http("GET", f"{srv.http}/v1/sessions/{sid}/redacted-audio", key=BOB)[0] == 404
    assert http("DELETE", f"{srv.http}/v1/sessions/{sid}", key=BOB)[0] == 404
    assert http("GET", f"{srv.http}/v1/sessions/{sid}", key=None)[0] == 401
    assert http("GET", f"{srv.http}/v1/sessions/not-a-session-id")[0] == 404

    # The file is exactly what the client heard: redacted, in the client's format.
    status, wav_bytes, headers = http("GET", announced["redacted_audio_url"])
    assert status == 200 and headers["content-type"] == "audio/wav"
    assert headers["cache-control"] == "no-store"
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        stored = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 1)
    np.testing.assert_array_equal(stored, out)
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    assert_masked(name, inp[:, 0], stored[:, 0], rate)

    status, body, _ = http("GET", f"{srv.http}/v1/sessions/{sid}/transcript")
    transcript = json.loads(body)
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert status == 200 and transcript["segments"] == finals and finals
    assert transcript["redactions"] == [e for e in events if e["type"] == "redaction"]
    assert PII_DIGITS[name] not in body.decode()

    assert http("DELETE", f"{srv.http}/v1/sessions/{sid}")[0] == 204
    for path in ("", "/redacted-audio", "/transcript"):
        assert http("GET", f"{srv.http}/v1/sessions/{sid}{path}")[0] == 404
    assert http("DELETE", f"{srv.http}/v1/sessions/{sid}")[0] == 404
    # Nothing of the session is left on disk: no blob, and its id in no file
    # (rows are zeroed on delete and the write-ahead log is emptied).
    needle = sid.encode()
    assert not [p for p in files_under(rec.data_dir) if needle in p.read_bytes()]


def test_session_is_processing_while_it_runs_and_deletable_live(rec: Recording) -> None:
    srv = rec.server
    inp, rate = audio_mod.read_wav(FIXTURES / "dev_001.wav")

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        import websockets

        url = f"{srv.url}?encoding=pcm_s16le&sample_rate={rate}&record=true&pace=realtime"
        codes = []
        events = []
        async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {ALICE}"}) as ws:
            events.append(json.loads(await ws.recv()))
            sid = events[0]["session_id"]
            frame = rate // 50
            for i in range(0, rate, frame):  # one second of audio
                await ws.send(inp[i:i + frame].tobytes())
                await asyncio.sleep(0.02)
            for path in ("", "/redacted-audio", "/transcript"):
                status, body, _ = await asyncio.to_thread(
                    http, "GET", f"{srv.http}/v1/sessions/{sid}{path}")
                codes.append(status)
                if path:
                    assert json.loads(body) == {"status": "processing"}
                else:
                    assert json.loads(body)["status"] == "recording"
            # Deleting a live session stops its recording; the call itself goes on.
            codes.append((await asyncio.to_thread(
                http, "DELETE", f"{srv.http}/v1/sessions/{sid}"))[0])
            for i in range(rate, inp.shape[0], frame):
                await ws.send(inp[i:i + frame].tobytes())
            await ws.send(json.dumps({"type": "close"}))
            async for msg in ws:
                if isinstance(msg, str):
                    events.append(json.loads(msg))
            codes.append((await asyncio.to_thread(
                http, "GET", f"{srv.http}/v1/sessions/{sid}"))[0])
        return codes, events

    codes, events = asyncio.run(scenario())
    assert codes == [200, 202, 202, 204, 404]
    assert events[-1]["type"] == "session.end"
    assert "recording" not in [e["type"] for e in events]  # deleted: nothing announced
    sid = events[0]["session_id"]
    assert not [p for p in files_under(rec.data_dir) if sid.encode() in p.read_bytes()]


def test_recording_refusals_are_typed(rec: Recording, server: RunningServer) -> None:
    from tests.e2e.test_stream import _raw_session

    q = "?encoding=pcm_s16le&sample_rate=16000&pace=asap"
    mine = rec.server.url + q + "&token={}"  # a fresh one-use token for each case
    cases = [
        (server.url + q + "&record=true", "no data keys"),  # the plain server: no keys
        (mine + "&record=true&retention_s=90000", "may not exceed"),
        (mine + "&webhook_url=http://127.0.0.1:9/x", "record=true"),
        (mine + "&record=true&webhook_url=ftp://h/x", "http"),
        # Decoded to a non-ASCII URL: once it killed a webhook worker; now refused.
        (mine + "&record=true&webhook_url=http://127.0.0.1:9/%E2%82%AC", "ASCII"),
    ]
    cases = [(u.format(session_token(rec.server.url, ALICE)) if "{}" in u else u, w)
             for u, w in cases]
    for url, words in cases:
        _, events, close = asyncio.run(_raw_session(url, []))
        assert events[-1]["code"] == "bad_config" and close == 4400
        assert words in events[-1]["message"]


def test_recording_expires_and_is_swept(rec: Recording) -> None:
    srv = rec.server
    before = {p.name for p in files_under(rec.data_dir / "blobs")}
    _, events = record_clip(srv, "dev_009.wav", retention_s=2)
    sid = events[0]["session_id"]
    assert events[0]["config"]["retention_s"] == 2
    assert http("GET", f"{srv.http}/v1/sessions/{sid}")[0] == 200
    assert {p.name for p in files_under(rec.data_dir / "blobs")} - before
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = {p.name for p in files_under(rec.data_dir / "blobs")} - before
        if not left:
            break
        time.sleep(0.25)
    assert not left, "the sweeper left expired artefacts"
    assert http("GET", f"{srv.http}/v1/sessions/{sid}")[0] == 404
    assert not [p for p in files_under(rec.data_dir) if sid.encode() in p.read_bytes()]


def test_expired_artefacts_are_purged_across_a_restart(tmp_path: Path, keys: str) -> None:
    (tmp_path / "tmp").mkdir()
    env = {**_env(tmp_path, keys), "STREAMSERVER_SWEEP_INTERVAL_S": "3600"}
    srv = start_server(tmp_path, env=env)
    try:
        _, events = record_clip(srv, "dev_009.wav", retention_s=2)
        _, kept = record_clip(srv, "dev_009.wav")
    finally:
        stop_server(srv)
    sid, kept_sid = events[0]["session_id"], kept[0]["session_id"]
    blobs = tmp_path / "data" / "blobs"
    assert len(files_under(blobs)) >= 6  # audio, transcript, metadata for each
    time.sleep(2.5)  # expired while the server was down
    srv = start_server(tmp_path, env=env)
    try:
        assert http("GET", f"{srv.http}/v1/sessions/{sid}")[0] == 404
        assert not [p for p in files_under(tmp_path / "data") if sid.encode() in p.read_bytes()]
        # The other session survives the restart, readable with the same keys.
        status, body, _ = http("GET", f"{srv.http}/v1/sessions/{kept_sid}")
        assert status == 200 and json.loads(body)["status"] == "ready"
        assert http("GET", f"{srv.http}/v1/sessions/{kept_sid}/redacted-audio")[0] == 200
    finally:
        stop_server(srv)


class _Receiver(BaseHTTPRequestHandler):
    fail_first = 0
    received: ClassVar[list[tuple[bytes, dict[str, str], float]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, dict(self.headers), time.time()))
        failing = len(type(self).received) <= type(self).fail_first
        self.send_response(503 if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_is_signed_and_retried_until_the_receiver_accepts(rec: Recording) -> None:
    _Receiver.fail_first = 2
    _Receiver.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/redact?tenant=T1"
        _, events = record_clip(rec.server, "dev_009.wav", webhook_url=url)
        sid = events[0]["session_id"]
        assert events[0]["config"]["webhook"] is True
        assert url not in json.dumps(events)  # never echoed: its query may hold a token
        deadline = time.monotonic() + 20
        while len(_Receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        receiver.shutdown()
    assert len(_Receiver.received) == 3  # two 503s, then accepted; no more after that
    bodies = {body for body, _, _ in _Receiver.received}
    assert len(bodies) == 1
    payload = json.loads(bodies.pop())
    assert payload == {"status": "redacted_audio_ready", "session_id": sid,
                       "redacted_audio_url": f"{rec.server.http}/v1/sessions/{sid}/redacted-audio"}
    deliveries = {h["Streamserver-Delivery"] for _, h, _ in _Receiver.received}
    assert len(deliveries) == 1  # one delivery id across retries: receivers can dedupe
    times = [t for _, _, t in _Receiver.received]
    assert times[1] - times[0] >= 0.5 and times[2] - times[1] >= 1.0  # backing off
    # Signed with Alice's own secret: Bob's receiver (or one using the server's
    # secret itself) would not accept a replay of it.
    alice = tenant_secret(SECRET.encode(), hash_api_key(ALICE))
    for body, headers, t in _Receiver.received:
        assert verify(alice, body, headers[SIGNATURE_HEADER], now=t)
        assert not verify(tenant_secret(SECRET.encode(), hash_api_key(BOB)), body,
                          headers[SIGNATURE_HEADER], now=t)
        assert not verify(SECRET.encode(), body, headers[SIGNATURE_HEADER], now=t)
        assert not verify(alice, body, headers[SIGNATURE_HEADER], now=t + 3600)
    # The link works, for the owner.
    assert http("GET", payload["redacted_audio_url"])[0] == 200
    metrics = http("GET", f"{rec.server.http}/metrics", key=None)[1].decode()
    assert 'streamserver_recordings_total{status="ready"}' in metrics


def test_openapi_describes_the_routes(rec: Recording) -> None:
    status, body, _ = http("GET", f"{rec.server.http}/openapi.json", key=None)
    spec = json.loads(body)
    assert status == 200 and spec["openapi"].startswith("3.")
    from starlette.routing import Route

    from streamserver.config import ServerConfig
    from streamserver.server.app import create_app

    app = create_app(ServerConfig(), engines=object())  # type: ignore[arg-type]  # not started
    routed = {r.path for r in app.routes if isinstance(r, Route)}
    documented = set(spec["paths"])
    api = {p for p in routed if p.startswith("/v1/") or p in ("/healthz", "/readyz", "/metrics")}
    assert documented == api


def test_server_writes_no_plaintext_key_material(rec: Recording, keys: str) -> None:
    secret = keys.split(":", 1)[1].encode()
    for path in files_under(rec.data_dir, rec.tmp_dir, rec.cwd):
        data = path.read_bytes()
        assert secret not in data and SECRET.encode() not in data
        assert ALICE.encode() not in data and BOB.encode() not in data
    assert os.stat(rec.data_dir).st_mode & 0o077 == 0


def _beep_share(x: np.ndarray, rate: int) -> float:
    """Share of the energy within 950-1050 Hz (the redaction beep is 1 kHz)."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spectrum[(freqs > 950) & (freqs < 1050)].sum() / max(spectrum.sum(), 1e-9))


def test_webrtc_session_is_recorded_too(rec: Recording) -> None:
    from aiortc import RTCSessionDescription

    from tests.e2e.test_webrtc import NAME, RATE, Client, WavTrack, _input_48k

    speech = _input_48k()
    track = WavTrack(np.concatenate([speech, np.zeros(RATE * 2, dtype=np.int16)]))

    async def go() -> Client:
        client = Client(track)
        await client.pc.setLocalDescription(await client.pc.createOffer())
        body = json.dumps({"sdp": client.pc.localDescription.sdp, "type": "offer",
                           "config": {"delay_ms": 1000, "record": True}}).encode()
        req = urllib.request.Request(f"{rec.server.http}/v1/webrtc/offer", data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {ALICE}"})
        answer = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(req).read()))
        await client.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(track.done.wait(), timeout=60)
        client.channel.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(client.ended.wait(), timeout=30)
        await client.close()
        return client

    client = asyncio.run(go())
    types = [e["type"] for e in client.events]
    assert types[-2:] == ["recording", "session.end"]
    sid = client.events[0]["session_id"]
    assert client.events[-2]["status"] == "ready"
    status, wav_bytes, _ = http("GET", f"{rec.server.http}/v1/sessions/{sid}/redacted-audio")
    assert status == 200
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert (w.getframerate(), w.getnchannels()) == (RATE, 1)
        stored = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert stored.size / RATE * 1000 == pytest.approx(
        client.events[-1]["stats"]["audio_out_ms"], abs=1)
    # The stored audio is the session's redacted output: the name and the number
    # are beeped (the middle of each span, whatever the RTP start offset).
    for pii in json.loads((FIXTURES / "pii_dev_manifest.json").read_text()):
        if pii["file"] != NAME:
            continue
        for span in pii["pii"]:
            middle = stored[int((span["start_s"] + 0.25) * RATE):int((span["end_s"] - 0.25) * RATE)]
            assert _beep_share(middle, RATE) > 0.8, span["entity"]
    assert _beep_share(stored[:int(0.8 * RATE)], RATE) < 0.2  # "My name is" is not


def test_s3_compatible_store_behind_the_same_api(tmp_path: Path, keys: str) -> None:
    """The server on an S3 API (moto in server mode): sealed objects, gone on delete."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.conftest import _free_port

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket="calls")
    (tmp_path / "tmp").mkdir()
    env = {**_env(tmp_path, keys), **aws, "STREAMSERVER_STORAGE_URL": "s3://calls/redacted"}
    srv = start_server(tmp_path, env=env)
    try:
        out, events = record_clip(srv, "dev_008.wav")
        sid = events[0]["session_id"]
        objects = s3.list_objects_v2(Bucket="calls")["Contents"]
        keys_ = {o["Key"] for o in objects}
        assert {f"redacted/{sid}/record", f"redacted/{sid}/audio_00000",
                f"redacted/{sid}/transcript_json"} <= keys_
        for key in keys_:  # sealed: no transcript text, no PCM
            blob = s3.get_object(Bucket="calls", Key=key)["Body"].read()
            assert b"#####" not in blob and out[8000:8400].tobytes() not in blob
        status, wav_bytes, _ = http("GET", f"{srv.http}/v1/sessions/{sid}/redacted-audio")
        with wave.open(io.BytesIO(wav_bytes)) as w:
            stored = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 1)
        assert status == 200
        np.testing.assert_array_equal(stored, out)
        assert http("DELETE", f"{srv.http}/v1/sessions/{sid}")[0] == 204
        assert s3.list_objects_v2(Bucket="calls").get("KeyCount", 0) == 0
        assert http("GET", f"{srv.http}/v1/sessions/{sid}")[0] == 404
        assert not (tmp_path / "data").exists()  # nothing went to the local disk
    finally:
        stop_server(srv)
        moto.stop()


def test_a_recorded_bridge_is_one_two_channel_recording_of_its_owner(rec: Recording) -> None:
    """Two legs joined through the Python client, recorded: one WAV, two channels
    (agent, caller), the caller's SSN masked in its channel; bridge ids belong to
    their key (Bob's leg with Alice's id opens a bridge of his own)."""
    from streamserver.client import connect

    caller_in, rate = audio_mod.read_wav(FIXTURES / "dev_014.wav")
    caller_in = caller_in[:, 0]
    agent_in = np.zeros(caller_in.size, np.int16)
    frame = rate // 50

    async def leg(role: str, pcm: np.ndarray, key: str, **policy: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with connect(rec.server.url, key, sample_rate=rate, bridge="rec-1", role=role,
                           keep_audio=False, **policy) as s:
            async def send() -> None:
                await s.started()  # both legs joined: the call runs
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                for i in range(0, pcm.size, frame):
                    await s.send(pcm[i : i + frame])
                    await asyncio.sleep(max(0.0, t0 + (i + frame) / rate - loop.time()))
                if role == "caller":
                    await s.close_input()

            sender = asyncio.create_task(send())
            async for event in s.events():
                events.append(event)
            await sender
        return events

    async def bobs_leg() -> dict[str, Any]:
        async with connect(rec.server.url, BOB, sample_rate=rate, bridge="rec-1",
                           role="agent") as s:
            async for event in s.events():
                return event  # his own bridge: waiting for a caller of his
        raise AssertionError("no event")

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        caller = asyncio.create_task(leg("caller", caller_in, ALICE, record="true"))
        await asyncio.sleep(0.3)
        assert (await bobs_leg())["waiting"] is True
        agent = await leg("agent", agent_in, ALICE, entities="none")
        return await caller, agent

    caller_events, agent_events = asyncio.run(go())
    begin = next(e for e in caller_events if e["type"] == "session.begin")
    assert begin["config"]["record"] is True and begin["config"]["channels"] == 2
    session_id = begin["session_id"]
    assert agent_events[-1]["type"] == "session.end"
    url = f"{rec.server.http}/v1/sessions/{session_id}"
    for _ in range(100):
        status, body, _ = http("GET", url)
        if json.loads(body).get("status") == "ready":
            break
        time.sleep(0.1)
    meta = json.loads(body)
    assert status == 200 and meta["audio"]["channels"] == 2
    assert http("GET", url, key=BOB)[0] == 404  # Alice's call only
    status, wav, _ = http("GET", url + "/redacted-audio")
    assert status == 200
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 16000
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    caller_out = stereo[:, 1]  # channel 1 is the caller
    assert caller_out.size >= caller_in.size
    assert_masked("dev_014.wav", caller_in, caller_out[: caller_in.size], rate)
