"""One clip through every way in gives the same masks (a real server, real models).

The same name-and-phone clip goes through protocol v1, Twilio Media Streams,
Asterisk AudioSocket and the Deepgram-compatible ``/v1/listen``, each in its own
wire encoding, at ``pace=asap`` (deterministic: the deadline is in audio time, so
wall-clock load cannot change a mask). Like is compared with like: the mu-law
transports (Twilio, ``/v1/listen``) against protocol v1 with
``encoding=mulaw&sample_rate=8000`` fed the same bytes, and AudioSocket against
protocol v1 with ``pcm_s16le`` at 8000 Hz fed the same samples. The masked
transcript, the word lists, the redaction events and the masked regions of the
output audio must agree (times within one 20 ms frame).

Twilio and AudioSocket send nothing back without a bridge, and ``/v1/listen``
sends no audio: their output comes from a listener on
``/v1/sessions/{id}/listen``. An asap session publishes its ``session.begin``
with its first audio (it has no release clock before that), so the listener
joins after the first 20 ms frame: nothing but ``session.begin`` (which a late
listener is given first) can have come out by then — two seconds of audio must
be decided before the first sample is released — and the checks below see the
whole output audio, sample for sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from tests.conftest import FIXTURES, RunningServer, _free_port, start_server, stop_server
from tests.e2e.test_audiosocket import frame, http, join_listener, uuid_frame
from tests.e2e.test_stream import PII_DIGITS

pytestmark = pytest.mark.e2e

CLIP = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."
RATE = 8000
FRAME_S = 0.02  # one 20 ms frame: how far two transports' times may differ
NEAR = FRAME_S + 1e-6  # times are rounded to 3 decimals: 3.64 - 3.62 > 0.02
FRAME_SAMPLES = int(RATE * FRAME_S)
MULAW = audio_mod.AudioFormat("mulaw", RATE, 1)
PCM = audio_mod.AudioFormat("pcm_s16le", RATE, 1)
# The session settings every transport gets (in its own way of saying them).
SETTINGS = {"pace": "asap", "delay_ms": "2000", "entities": "default"}
# Differing samples closer than this are one masked region (a beep crosses the
# input's value now and then, a fade starts where the input is silent).
MASK_GAP_SAMPLES = RATE // 100


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = _free_port()
    srv = start_server(tmp_path_factory.mktemp("agree"), "--audiosocket-port", str(port))
    yield srv, port
    stop_server(srv)


# Far less input held than a replay is long: the asap flow control (stop reading
# while the session has no room) is in play. Above D plus the detector's right
# context, or a session would wait for input it has no room for.
MAX_PENDING_AUDIO_S = "4"


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[tuple[RunningServer, int]]:
    port = _free_port()
    srv = start_server(tmp_path_factory.mktemp("agree-tight"), "--audiosocket-port", str(port),
                       env={"STREAMSERVER_MAX_PENDING_AUDIO_S": MAX_PENDING_AUDIO_S})
    yield srv, port
    stop_server(srv)


def clip_8k() -> np.ndarray:
    """The clip as a phone line carries it: 8 kHz 16-bit mono."""
    samples, rate = audio_mod.read_wav(FIXTURES / CLIP)
    return audio_mod.to_int16(audio_mod.resample(audio_mod.to_mono_float(samples), rate, RATE))


@dataclass
class Run:
    """What one transport produced: protocol v1 events and the redacted audio
    (the session's own encoding), decoded to 8 kHz samples."""

    name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    fmt: audio_mod.AudioFormat = PCM
    extra: list[dict[str, Any]] = field(default_factory=list)  # the transport's own messages

    def samples(self) -> np.ndarray:
        return audio_mod.decode(bytes(self.audio), self.fmt)[:, 0]

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "transcript.final"]

    def redactions(self) -> list[tuple[str, float, float]]:
        return sorted((e["entity"], e["start"], e["end"]) for e in self.events
                      if e["type"] == "redaction")


async def _collect(ws: Any, run: Run) -> None:
    async for msg in ws:
        if isinstance(msg, bytes):
            run.audio.extend(msg)
        else:
            run.events.append(json.loads(msg))


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _listen_url(server: RunningServer, session_id: str) -> str:
    return server.url.replace("/v1/stream", f"/v1/sessions/{session_id}/listen")


# -- the ways in ---------------------------------------------------------------------
async def via_v1(server: RunningServer, data: bytes, fmt: audio_mod.AudioFormat) -> Run:
    """Protocol v1: 20 ms binary frames, then ``close``; its own socket's output."""
    run = Run(f"v1 {fmt.encoding}", fmt=fmt)
    query = "&".join(f"{k}={v}" for k, v in {
        "encoding": fmt.encoding, "sample_rate": RATE, **SETTINGS}.items())
    frame_bytes = FRAME_SAMPLES * (2 if fmt.encoding == "pcm_s16le" else 1)
    async with websockets.connect(f"{server.url}?{query}", max_size=1 << 24) as ws:
        reader = asyncio.create_task(_collect(ws, run))
        for chunk in _chunks(data, frame_bytes):
            await ws.send(chunk)
        await ws.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(reader, 120)
        assert ws.close_code == 1000
    return run


async def via_twilio(server: RunningServer, mulaw: bytes) -> Run:
    """Twilio Media Streams: ``start`` with the settings as customParameters, 20 ms
    ``media`` messages, ``stop``; the output from a listener on the streamSid."""
    from tests.e2e.test_twilio import _media, _start, _twilio_url

    sid = "MZagree" + uuid.uuid4().hex[:12]
    run = Run("twilio", fmt=MULAW)
    async with websockets.connect(_twilio_url(server)) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(_start(sid, ["inbound"], dict(SETTINGS)))
        chunks = _chunks(mulaw, FRAME_SAMPLES)
        await ws.send(_media(sid, "inbound", 0, chunks[0]))
        listener, begin = await join_listener(_listen_url(server, sid))
        run.events.append(begin)
        heard = asyncio.create_task(_collect(listener, run))
        sent_back: list[Any] = []

        async def read_back() -> None:
            async for msg in ws:
                sent_back.append(msg)

        back = asyncio.create_task(read_back())
        for k, chunk in enumerate(chunks[1:], 1):
            await ws.send(_media(sid, "inbound", k, chunk))
        await ws.send(json.dumps({"event": "stop", "streamSid": sid, "sequenceNumber": "0",
                                  "stop": {"accountSid": "AC0", "callSid": "CA0"}}))
        await asyncio.wait_for(back, 120)
        assert ws.close_code == 1000 and sent_back == []  # no bridge: nothing goes back
        await asyncio.wait_for(heard, 60)
    return run


async def via_deepgram(server: RunningServer, mulaw: bytes) -> Run:
    """``/v1/listen``: the settings in the query, 20 ms binary frames, CloseStream;
    Deepgram's messages from its socket, the events and audio from a listener on
    the request id."""
    run = Run("v1/listen", fmt=MULAW)
    query = "&".join(f"{k}={v}" for k, v in {
        "encoding": "mulaw", "sample_rate": RATE, **SETTINGS}.items())
    url = server.url.replace("/v1/stream", "/v1/listen")
    async with websockets.connect(f"{url}?{query}", max_size=1 << 24) as ws:
        request_id = ws.response.headers["dg-request-id"]
        chunks = _chunks(mulaw, FRAME_SAMPLES)
        await ws.send(chunks[0])
        listener, begin = await join_listener(_listen_url(server, request_id))
        run.events.append(begin)
        heard = asyncio.create_task(_collect(listener, run))

        async def read_results() -> None:
            async for msg in ws:
                run.extra.append(json.loads(msg))

        results = asyncio.create_task(read_results())
        for chunk in chunks[1:]:
            await ws.send(chunk)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(results, 120)
        assert ws.close_code == 1000
        await asyncio.wait_for(heard, 60)
    return run


async def via_audiosocket(server: RunningServer, port: int, pcm: bytes) -> Run:
    """AudioSocket: the settings PUT as the call's policy, the UUID, 20 ms audio
    frames (written as fast as the server reads them), a hang-up; the output from
    a listener on the UUID's hex."""
    call = uuid.uuid4()
    status, body = http(server, "PUT", f"/v1/audiosocket/{call}", dict(SETTINGS))
    assert status == 200, body
    run = Run("audiosocket", fmt=PCM)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks = _chunks(pcm, 2 * FRAME_SAMPLES)
    writer.write(uuid_frame(call) + frame(0x10, chunks[0]))
    await writer.drain()
    listener, begin = await join_listener(body["listen_url"])
    run.events.append(begin)
    heard = asyncio.create_task(_collect(listener, run))
    for chunk in chunks[1:]:
        writer.write(frame(0x10, chunk))
        await writer.drain()  # the server stops reading while the session is full
    writer.write(frame(0x00))
    await writer.drain()
    back = await asyncio.wait_for(reader.read(), 120)  # until the server closes
    writer.close()
    assert back == b""  # no bridge: Asterisk is sent nothing
    await asyncio.wait_for(heard, 60)
    return run


# -- comparing ---------------------------------------------------------------------------
def masked_regions(inp: np.ndarray, out: np.ndarray) -> list[tuple[int, int]]:
    """Sample ranges where the output differs from the input (the masks)."""
    assert out.size == inp.size, (out.size, inp.size)  # every sample once, aligned
    idx = np.flatnonzero(out != inp)
    regions: list[tuple[int, int]] = []
    for i in idx.tolist():
        if regions and i - regions[-1][1] <= MASK_GAP_SAMPLES:
            regions[-1] = (regions[-1][0], i + 1)
        else:
            regions.append((i, i + 1))
    return regions


def _words(final: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(w["text"], w["redacted"], w.get("entity"), w["start"], w["end"])
            for w in final["words"]]


def assert_same(ref: Run, other: Run, inp: np.ndarray) -> None:
    """``other`` gave what ``ref`` gave: text exactly, times within one frame."""
    where = f"{other.name} vs {ref.name}"
    for run in (ref, other):
        types = [e["type"] for e in run.events]
        assert types[0] == "session.begin" and types[-1] == "session.end", (run.name, types)
        assert "error" not in types, (run.name, run.events)
        assert run.events[0]["config"]["pace"] == "asap", run.name
    ref_cfg = {k: v for k, v in ref.events[0]["config"].items() if k != "record"}
    other_cfg = {k: v for k, v in other.events[0]["config"].items() if k != "record"}
    assert other_cfg == ref_cfg, where

    ref_finals, finals = ref.finals(), other.finals()
    assert [f["text"] for f in finals] == [f["text"] for f in ref_finals], where
    assert len(finals) == len(ref_finals), where
    for mine, theirs in zip(finals, ref_finals, strict=True):
        a, b = _words(mine), _words(theirs)
        assert [w[:3] for w in a] == [w[:3] for w in b], where
        for wa, wb in zip(a, b, strict=True):
            assert abs(wa[3] - wb[3]) <= NEAR and abs(wa[4] - wb[4]) <= NEAR, \
                (where, wa, wb)

    ref_red, red = ref.redactions(), other.redactions()
    assert [r[0] for r in red] == [r[0] for r in ref_red], (where, red, ref_red)
    for ra, rb in zip(red, ref_red, strict=True):
        assert abs(ra[1] - rb[1]) <= NEAR and abs(ra[2] - rb[2]) <= NEAR, (where, ra, rb)

    ref_masks = masked_regions(inp, ref.samples())
    masks = masked_regions(inp, other.samples())
    assert len(masks) == len(ref_masks), (where, masks, ref_masks)
    for ma, mb in zip(masks, ref_masks, strict=True):
        assert abs(ma[0] - mb[0]) <= FRAME_SAMPLES and abs(ma[1] - mb[1]) <= FRAME_SAMPLES, \
            (where, ma, mb)


def assert_redacted(run: Run, inp: np.ndarray) -> None:
    """The reference itself did its job: PII masked in text and audio."""
    texts = [f["text"] for f in run.finals()] + [w["text"] for f in run.finals()
                                                  for w in f["words"]]
    digits = PII_DIGITS[CLIP]
    assert not any(digits in t.replace(" ", "").replace("-", "") for t in texts), texts
    assert {"PERSON", "PHONE_NUMBER"} <= {r[0] for r in run.redactions()}, run.redactions()
    assert masked_regions(inp, run.samples()), "no audio was masked"


# -- the tests ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mulaw_runs(servers: tuple[RunningServer, int]) -> tuple[np.ndarray, dict[str, Run]]:
    server, _ = servers
    mulaw = audio_mod.encode(clip_8k()[:, None], MULAW)
    inp = audio_mod.decode(mulaw, MULAW)[:, 0]  # what every mu-law transport was given

    async def go() -> dict[str, Run]:
        # One after another: asap does not depend on load, but a failure is then
        # about the transport, not the machine.
        return {"v1": await via_v1(server, mulaw, MULAW),
                "twilio": await via_twilio(server, mulaw),
                "listen": await via_deepgram(server, mulaw)}

    return inp, asyncio.run(go())


@pytest.fixture(scope="module")
def pcm_runs(servers: tuple[RunningServer, int]) -> tuple[np.ndarray, dict[str, Run]]:
    server, port = servers
    inp = clip_8k()
    pcm = inp.astype("<i2").tobytes()

    async def go() -> dict[str, Run]:
        return {"v1": await via_v1(server, pcm, PCM),
                "audiosocket": await via_audiosocket(server, port, pcm)}

    return inp, asyncio.run(go())


def test_mulaw_reference_is_redacted(mulaw_runs) -> None:
    inp, runs = mulaw_runs
    assert_redacted(runs["v1"], inp)


def test_twilio_gives_what_protocol_v1_gives(mulaw_runs) -> None:
    inp, runs = mulaw_runs
    assert_same(runs["v1"], runs["twilio"], inp)


def test_deepgram_listen_gives_what_protocol_v1_gives(mulaw_runs) -> None:
    inp, runs = mulaw_runs
    assert_same(runs["v1"], runs["listen"], inp)
    # Deepgram's own messages carry the same masked transcript.
    results = [m for m in runs["listen"].extra if m.get("type") == "Results" and m["is_final"]]
    texts = [r["channel"]["alternatives"][0]["transcript"] for r in results]
    assert [t for t in texts if t] == [f["text"] for f in runs["v1"].finals()]


def test_audiosocket_gives_what_protocol_v1_gives(pcm_runs) -> None:
    inp, runs = pcm_runs
    assert_redacted(runs["v1"], inp)
    assert_same(runs["v1"], runs["audiosocket"], inp)


def test_asap_bridge_legs_are_refused(servers) -> None:
    """asap is for replays and tests; a bridge (a live call) stays realtime-only."""
    from tests.e2e.test_twilio import _start, _twilio_url

    server, _ = servers
    status, body = http(server, "PUT", f"/v1/audiosocket/{uuid.uuid4()}",
                        {"bridge": "b-asap", "role": "agent", "pace": "asap"})
    assert (status, body["code"]) == (400, "bad_config")

    async def twilio_leg() -> tuple[int | None, str | None]:
        async with websockets.connect(_twilio_url(server)) as ws:
            await ws.send(_start("MZasapleg", ["inbound"],
                                 {"bridge": "b-asap", "role": "caller", "pace": "asap"}))
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in ws:
                    pass
            return ws.close_code, ws.close_reason

    assert asyncio.run(twilio_leg()) == (4400, "bad_config")


def test_asap_replays_longer_than_the_pending_bound_are_read_as_room_allows(
        tight_server) -> None:
    """A replay four times the server's pending bound through Twilio and AudioSocket
    at asap: the server stops reading while the session has no room (TCP holds the
    sender) instead of refusing or buffering; every sample comes out once, masked.
    (Masks are compared above, where the whole clip fits in the bound: with input
    held back, an asap session's ASR steps can depend on when audio arrives.)"""
    server, port = tight_server
    inp = np.tile(clip_8k(), 2)
    mulaw = audio_mod.encode(inp[:, None], MULAW)

    async def go() -> tuple[Run, Run]:
        return (await via_twilio(server, mulaw),
                await via_audiosocket(server, port, inp.astype("<i2").tobytes()))

    twilio, audiosocket = asyncio.run(go())
    for run, given in ((twilio, audio_mod.decode(mulaw, MULAW)[:, 0]), (audiosocket, inp)):
        types = [e["type"] for e in run.events]
        assert types[-1] == "session.end" and "error" not in types, (run.name, types)
        stats = run.events[-1]["stats"]
        assert stats["audio_in_ms"] == pytest.approx(1000 * inp.size / RATE, abs=0.1)
        assert len(masked_regions(given, run.samples())) >= 2, run.name  # every sample once
        assert {"PERSON", "PHONE_NUMBER"} <= {r[0] for r in run.redactions()}, run.name
