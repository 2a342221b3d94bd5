"""End to end: SIGTERM mid-stream drains the delay line, then closes 1001."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.evaluation import Span, score_clip
from tests.conftest import FIXTURES, RunningServer, fixture_manifest, start_server, stop_server

pytestmark = pytest.mark.e2e

CLIP = "dev_008.wav"  # "My name is Linda Smith ..." (the name ends at 2.2 s)
SIGNAL_AFTER_S = 3.2  # of audio sent
FRAME_MS = 20


@dataclass
class Stream:
    sent: int = 0  # bytes sent before the signal (the client stops sending then)
    signalled_at: float = 0.0
    out: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    signalled: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream_until_sigterm(srv: RunningServer, st: Stream, data: bytes, rate: int,
                                delay_ms: int) -> None:
    """Send 20 ms frames in real time; SIGTERM the server after SIGNAL_AFTER_S."""
    frame = rate * FRAME_MS // 1000 * 2
    url = f"{srv.url}?encoding=pcm_s16le&sample_rate={rate}&pace=realtime&delay_ms={delay_ms}"
    async with websockets.connect(url) as ws:

        async def sender() -> None:
            t0 = time.monotonic()
            for i in range(0, len(data), frame):
                if i >= SIGNAL_AFTER_S * rate * 2:
                    st.signalled_at = time.monotonic()
                    srv.proc.send_signal(signal.SIGTERM)
                    st.signalled.set()
                    return
                await ws.send(data[i : i + frame])
                st.sent += len(data[i : i + frame])
                due = t0 + (i + frame) / (rate * 2)
                await asyncio.sleep(max(0.0, due - time.monotonic()))

        send_task = asyncio.create_task(sender())
        async for msg in ws:  # ends without error on 1000/1001
            if isinstance(msg, bytes):
                st.out.append(msg)
            else:
                st.events.append(json.loads(msg))
        await send_task
        st.close_code = ws.close_code


def _readyz_status(srv: RunningServer) -> int | None:
    """/readyz's status, or None once nothing listens."""
    try:
        with urllib.request.urlopen(srv.http + "/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


async def _new_session_while_draining(srv: RunningServer) -> tuple[str | None, int | None]:
    """Once the server stopped being ready: a new session's (error code, close code)."""
    while (status := await asyncio.to_thread(_readyz_status, srv)) == 200:
        await asyncio.sleep(0.01)
    if status is None:
        return None, None  # already stopped listening: refused by the OS
    try:
        async with websockets.connect(srv.url + "?encoding=pcm_s16le&sample_rate=16000") as ws:
            try:
                first = json.loads(await ws.recv())
            except websockets.ConnectionClosedError:
                first = {}
            with_code = first.get("code")
            await ws.wait_closed()
            return with_code, ws.close_code
    except OSError:
        return None, None


def test_sigterm_drains_every_accepted_sample_then_closes_1001(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--shutdown-grace", "15")
    try:
        samples, rate = audio_mod.read_wav(FIXTURES / CLIP)
        fmt = audio_mod.AudioFormat("pcm_s16le", rate, 1)
        data = audio_mod.encode(samples, fmt)

        async def scenario() -> tuple[Stream, tuple[str | None, int | None]]:
            st = Stream()
            stream = asyncio.create_task(_stream_until_sigterm(srv, st, data, rate, 2000))
            signalled = asyncio.create_task(st.signalled.wait())
            await asyncio.wait({stream, signalled}, return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            refused = await _new_session_while_draining(srv)
            await stream
            return st, refused

        st, (code, close) = asyncio.run(scenario())
        returncode = srv.proc.wait(timeout=30)
        exited_after = time.monotonic() - st.signalled_at
    finally:
        stop_server(srv)

    out = b"".join(st.out)
    end = st.events[-1]
    assert end["type"] == "session.end" and st.close_code == 1001
    stats = end["stats"]
    # Everything the server accepted came back, and it accepted what was sent
    # (frames still in flight when the signal landed may be refused: at most 100 ms).
    assert stats["audio_out_ms"] == stats["audio_in_ms"]
    assert len(out) == pytest.approx(stats["audio_in_ms"] * rate / 1000 * 2, abs=4)
    assert st.sent - rate // 10 * 2 <= len(out) <= st.sent
    # ... redacted: the name (1.4-2.2 s) was in the accepted audio.
    got = audio_mod.decode(out, fmt)[:, 0]
    ref = samples[: got.shape[0], 0]
    person = [Span(p["entity"], p["start_s"], p["end_s"])
              for p in fixture_manifest()[CLIP]["pii"] if p["entity"] == "PERSON"]
    for entity, audible in score_clip(ref, got, rate, person).entities:
        assert audible < 0.25, f"{entity} {audible:.0%} audible"
    # A session opened while draining is refused (or nothing listens any more).
    assert (code, close) in (("server_busy", 1013), (None, None))
    assert returncode == 0 and exited_after < 15


def test_sessions_still_draining_at_the_deadline_close_1001_without_end(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--shutdown-grace", "0")
    try:
        samples, rate = audio_mod.read_wav(FIXTURES / CLIP)
        data = audio_mod.encode(samples, audio_mod.AudioFormat("pcm_s16le", rate, 1))
        st = Stream()
        asyncio.run(_stream_until_sigterm(srv, st, data, rate, 2000))
        returncode = srv.proc.wait(timeout=30)
    finally:
        stop_server(srv)
    # No session.end: the client knows not all of its audio came back.
    assert st.close_code == 1001
    assert "session.end" not in [e["type"] for e in st.events]
    assert len(b"".join(st.out)) < st.sent
    assert returncode == 0
