"""End to end over WebRTC: a real server, real models, an aiortc client (docs/webrtc.md)."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
import urllib.error
import urllib.request
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from streamserver import audio as audio_mod
from streamserver.evaluation import FRAME_S as FRAME_S_SCORE
from streamserver.evaluation import Span, score_clip
from streamserver.server.webrtc import frame_to_mono
from tests.conftest import FIXTURES, fixture_manifest

pytestmark = pytest.mark.e2e

RATE = 48_000
FRAME = 960  # 20 ms
DELAY_MS = 1000
NAME = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."


class WavTrack(MediaStreamTrack):
    """Plays samples in real time as 20 ms frames, then silence (a live microphone)."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm
        self.k = 0
        self.t0: float | None = None
        self.done = asyncio.Event()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self.t0 + self.k * 0.02 - time.monotonic()))
        chunk = self.pcm[self.k * FRAME : (self.k + 1) * FRAME]
        if chunk.size < FRAME:
            self.done.set()
            chunk = np.concatenate([chunk, np.zeros(FRAME - chunk.size, dtype=np.int16)])
        # Stereo with the same samples on both channels: aiortc's encoder would upmix
        # mono at -3 dB.
        frame = av.AudioFrame.from_ndarray(np.repeat(chunk, 2).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self.k * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self.k += 1
        return frame


def _http(url: str, body: dict[str, Any] | bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def _sessions(server) -> int:
    _, body = await asyncio.to_thread(_http, server.http + "/readyz")
    return int(body["sessions"])


async def _wait_sessions(server, n: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = await _sessions(server)
        if got == n or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


class Client:
    """An aiortc peer: sends a track, records the returned audio and the events."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(track, direction="sendrecv")
        self.channel = self.pc.createDataChannel("events")
        self.events: list[dict[str, Any]] = []
        self.ended = asyncio.Event()
        self.frames: list[tuple[int, np.ndarray]] = []  # (pts, mono int16)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self._reader: asyncio.Task[None] | None = None
        self.session_id = ""

    def _on_message(self, msg: str) -> None:
        event = json.loads(msg)
        self.events.append(event)
        if event["type"] == "session.end":
            self.ended.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        with pytest.raises(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame) and frame.pts is not None
                self.frames.append((frame.pts, frame_to_mono(frame)))

    async def connect(self, server, config: dict[str, Any]) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer", "config": config}
        status, answer = await asyncio.to_thread(_http, server.http + "/v1/webrtc/offer", body)
        assert status == 200, answer
        assert answer["type"] == "answer" and answer["session_id"]
        self.session_id = answer["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

    def received(self) -> np.ndarray:
        """The returned audio, each frame at its pts (position 0 = the first frame)."""
        first = self.frames[0][0]
        end = max(p - first + f.size for p, f in self.frames)
        out = np.zeros(end, dtype=np.int16)
        for p, f in self.frames:
            out[p - first : p - first + f.size] = f
        return out

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)


def _input_48k() -> np.ndarray:
    x, rate = audio_mod.read_wav(FIXTURES / NAME)
    return audio_mod.to_int16(audio_mod.resample(x[:, 0].astype(np.float32) / 32768, rate, RATE))


def _spans() -> list[Span]:
    return [Span(p["entity"], p["start_s"], p["end_s"]) for p in fixture_manifest()[NAME]["pii"]]


def _measure_delay(inp: np.ndarray, out: np.ndarray, spans: list[Span], max_lag: int) -> int:
    """Lag (samples) of ``out`` behind ``inp``, from speech outside the masked spans."""
    clean = inp.astype(np.float64)
    for s in spans:  # masked audio (and its padding) does not resemble the input
        clean[max(0, int((s.start_s - 0.6) * RATE)) : int((s.end_s + 0.6) * RATE)] = 0
    y = out.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(clean.size + y.size)))
    corr = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(clean, n)), n)
    return int(np.argmax(corr[: max_lag + 1]))


def _energy_proxy(inp: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``inp`` scaled, per 10 ms frame, to the energy ``out`` has there (beep band excluded).

    Opus keeps the spectrum but not the waveform (96 kbit/s voip mode: plain
    speech comes back only 2-13 dB above its sample-wise error), so score_clip's
    sample difference would call plain speech masked. Its frame rule is applied
    to this proxy instead: a frame counts as masked when the output lost about
    11 dB or more of the input's energy there. The 1 kHz beep's band (900-1100 Hz)
    is left out of both, so a beep counts as masked, as silence does.
    """
    n = int(RATE * FRAME_S_SCORE)
    frames = inp.size // n
    x = inp[: frames * n].astype(np.float64).reshape(frames, n)
    y = out[: frames * n].astype(np.float64).reshape(frames, n)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    keep = (freqs < 900) | (freqs > 1100)
    ex = (np.abs(np.fft.rfft(x, axis=1)) ** 2)[:, keep].sum(axis=1)
    ey = (np.abs(np.fft.rfft(y, axis=1)) ** 2)[:, keep].sum(axis=1)
    gain = np.sqrt(ey / np.maximum(ex, 1e-9))
    return (x * gain[:, None]).reshape(-1)


def test_webrtc_session_masks_audio_and_text_at_fixed_delay(server) -> None:
    speech = _input_48k()
    sent = np.concatenate([speech, np.zeros((DELAY_MS + 1000) * RATE // 1000, dtype=np.int16)])
    track = WavTrack(sent)

    async def go() -> tuple[Client, int, int]:
        client = Client(track)  # aiortc objects belong to the running loop
        await client.connect(server, {"delay_ms": DELAY_MS, "entities": "default",
                                      "audio_redaction": "beep", "text_substitution": "hash"})
        during = await _sessions(server)
        await asyncio.wait_for(track.done.wait(), timeout=60)
        client.channel.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(client.ended.wait(), timeout=30)
        await asyncio.sleep(0.3)  # the last frames after session.end
        await client.close()
        after = await _wait_sessions(server, 0, timeout=15)
        return client, during, after

    t0 = time.monotonic()
    client, during, after = asyncio.run(go())
    assert time.monotonic() - t0 < 45
    assert during >= 1
    assert after == 0, "closing the client did not end the server session"

    events = client.events
    types = [e["type"] for e in events]
    assert types[0] == "session.begin" and types[-1] == "session.end"
    begin = events[0]
    assert begin["session_id"] == client.session_id
    cfg = begin["config"]
    assert (cfg["encoding"], cfg["sample_rate"], cfg["channels"], cfg["pace"],
            cfg["delay_ms"]) == ("pcm_s16le", RATE, 1, "realtime", DELAY_MS)
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert finals
    text = " ".join(e["text"] for e in finals)
    assert "###-###-####" in text or "####" in text
    assert "linda" not in text.lower() and "smith" not in text.lower()
    assert "0175" not in json.dumps(events) and "830" not in text
    assert any(w["redacted"] and w["entity"] == "PERSON" for e in finals for w in e["words"])
    redactions = [e for e in events if e["type"] == "redaction"]
    # The name, and the digits (labelled by what the detector heard in them).
    assert "PERSON" in {r["entity"] for r in redactions} and len(redactions) >= 2
    assert all(set(r) == {"type", "entity", "start", "end", "score", "reason"} for r in redactions)
    assert events[-1]["stats"]["audio_in_ms"] >= 1000 * speech.size / RATE

    out = client.received()
    spans = _spans()
    lead = DELAY_MS * RATE // 1000
    lag = _measure_delay(sent, out, spans, max_lag=lead + RATE // 2)
    assert abs(lag - lead) <= FRAME, f"output delay {1000 * lag / RATE:.1f} ms, want {DELAY_MS}"
    aligned = out[lag : lag + speech.size]
    assert aligned.size == speech.size, "output shorter than the input"
    usable = speech.size // int(RATE * FRAME_S_SCORE) * int(RATE * FRAME_S_SCORE)
    score = score_clip(speech[:usable], _energy_proxy(speech, aligned), RATE, spans)
    for entity, audible in score.entities:
        assert audible < 0.25, f"{entity} {audible:.0%} audible"
    # Opus is lossy, but speech away from the values must come back (not masked).
    assert score.away_masked / max(1, score.away_speech) < 0.1
    print(f"final text {text!r}, redactions {[r['entity'] for r in redactions]}")
    print(f"webrtc delay {1000 * lag / RATE:.2f} ms, entities {score.entities}, "
          f"over-redaction {score.away_masked}/{score.away_speech}")


def test_webrtc_peer_close_ends_session(server) -> None:
    """No ``close`` message: the peer connection just goes away."""
    track = WavTrack(_input_48k())

    async def go() -> tuple[int, int, list[str], int]:
        client = Client(track)
        await client.connect(server, {"delay_ms": 500})
        await asyncio.sleep(1.5)
        during = await _sessions(server)
        await client.close()
        after = await _wait_sessions(server, 0, timeout=15)
        return during, after, [e["type"] for e in client.events], len(client.frames)

    during, after, types, frames = asyncio.run(go())
    assert during == 1
    assert after == 0
    assert types and types[0] == "session.begin"
    assert frames > 0  # audio was coming back


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        ({"type": "offer"}, 400, "bad_offer"),
        ({"type": "offer", "sdp": "v=0\r\n", "config": {"delay_ms": 5}}, 400, "bad_config"),
        ({"type": "offer", "sdp": "v=0\r\n", "config": {"sample_rate": 16000}}, 400,
         "bad_config"),
        ({"type": "offer", "sdp": "v=0\r\n", "config": {"nope": 1}}, 400, "bad_config"),
        ({"type": "offer", "sdp": "garbage"}, 400, "bad_offer"),
    ],
)
def test_webrtc_offer_rejects_bad_requests(server, body: Any, status: int, code: str) -> None:
    got, answer = _http(server.http + "/v1/webrtc/offer", body)
    assert (got, answer["type"], answer["code"]) == (status, "error", code)
    assert asyncio.run(_sessions(server)) == 0


class Listener:
    """A receive-only aiortc peer listening in on a running session."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel("events")
        self.events: list[dict[str, Any]] = []
        self.frames: list[np.ndarray] = []
        self.ended = asyncio.Event()
        self.channel.on("message", self._on_message)
        self.pc.on("track", lambda track: asyncio.ensure_future(self._read(track)))

    def _on_message(self, msg: str) -> None:
        self.events.append(json.loads(msg))
        if self.events[-1]["type"] == "session.end":
            self.ended.set()

    async def _read(self, track: MediaStreamTrack) -> None:
        with pytest.raises(MediaStreamError):
            while True:
                self.frames.append(frame_to_mono(await track.recv()))

    async def connect(self, server, session_id: str) -> tuple[int, dict[str, Any]]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        url = f"{server.http}/v1/sessions/{session_id}/listen/webrtc"
        status, answer = await asyncio.to_thread(_http, url, body)
        if status == 200:
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        return status, answer


def test_webrtc_listener_hears_the_redacted_session(server) -> None:
    speech = _input_48k()
    track = WavTrack(np.concatenate([speech, np.zeros(2 * RATE, dtype=np.int16)]))

    async def go() -> tuple[Client, Listener, int]:
        client = Client(track)
        await client.connect(server, {"delay_ms": DELAY_MS})
        listener = Listener()
        status, answer = await listener.connect(server, client.session_id)
        assert status == 200, answer
        await asyncio.wait_for(track.done.wait(), timeout=60)
        client.channel.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(client.ended.wait(), timeout=30)
        await asyncio.wait_for(listener.ended.wait(), timeout=10)
        await client.close()
        await listener.pc.close()
        return client, listener, await _wait_sessions(server, 0, timeout=15)

    client, listener, after = asyncio.run(go())
    assert after == 0  # listeners never count as sessions, nor keep one alive
    heard = listener.events
    assert heard[0]["type"] == "session.begin" and heard[-1]["type"] == "session.end"
    assert heard[0]["session_id"] == client.session_id
    finals = [e["text"] for e in heard if e["type"] == "transcript.final"]
    assert finals and finals == [e["text"] for e in client.events
                                 if e["type"] == "transcript.final"]
    assert "linda" not in json.dumps(heard).lower() and "0175" not in json.dumps(heard)
    audio = np.concatenate(listener.frames).astype(np.float64)
    assert audio.size > RATE and np.sqrt(np.mean(audio**2)) > 100  # the session's audio


def test_listening_to_an_unknown_session_is_refused(server) -> None:
    async def go() -> tuple[int, dict[str, Any]]:
        listener = Listener()
        try:
            return await listener.connect(server, "nope")
        finally:
            await listener.pc.close()

    status, body = asyncio.run(go())
    assert status == 404 and body["code"] == "unknown_session"
