"""Past capacity, newcomers are refused before running sessions miss deadlines.

A real server on its defaults (two model workers on this machine's cores) takes
real-time sessions of dense speech, one more every couple of seconds, until it
refuses one. Admission comes from measured headroom (runtime.LoadGauge), not a
fixed session count: the server is started with ``--max-sessions`` far above
what it can run, so only the measurement can refuse. The sessions it took must
keep their deadlines (deadline-masked speech <= 1 %), and ``/readyz`` must say
``busy`` while it refuses.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.config import ServerConfig
from tests.conftest import FIXTURES, readyz, start_server, stop_server

pytestmark = pytest.mark.e2e

FRAME = 320  # 20 ms at 16 kHz
MAX_ATTEMPTS = 14
ARRIVAL_GAP_S = 2.0


def dense_program() -> np.ndarray:
    """The longest fixture clips back to back with 0.3 s pauses: speech nearly all
    the time, as in a mono mix of a call."""
    parts = []
    for name in ("dev_002", "dev_008", "dev_001", "dev_014", "dev_015", "dev_009"):
        x, rate = audio_mod.read_wav(FIXTURES / f"{name}.wav")
        assert rate == 16000
        parts += [x[:, 0], np.zeros(4800, dtype=np.int16)]
    return np.concatenate(parts)


async def one_session(url: str, program: np.ndarray) -> dict[str, Any]:
    """Stream ``program`` in real time; the session's end stats, or its refusal."""
    async with websockets.connect(url, max_size=1 << 22) as ws:
        first = json.loads(await ws.recv())
        if first["type"] == "error":
            return {"refused": first["code"]}
        assert first["type"] == "session.begin", first

        async def send() -> None:
            t0 = time.monotonic()
            for k in range(program.size // FRAME):
                await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
                await ws.send(program[k * FRAME:(k + 1) * FRAME].tobytes())
            await ws.send(json.dumps({"type": "close"}))

        sender = asyncio.create_task(send())
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    ev = json.loads(msg)
                    if ev["type"] == "session.end":
                        return {"stats": ev["stats"]}
                    if ev["type"] == "error":
                        return {"error": ev["code"]}
        finally:
            sender.cancel()
    return {"error": "closed without session.end"}


async def drive(url: str, http: str, program: np.ndarray) -> tuple[list[dict[str, Any]],
                                                                  list[tuple[int, Any]]]:
    """Open one session every ARRIVAL_GAP_S until one is refused; wait for the rest.
    ``/readyz`` is read every 0.25 s meanwhile: what it said, in order."""
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    ready_seen: list[tuple[int, Any]] = []

    async def poll_ready() -> None:
        while True:
            ready_seen.append(await asyncio.to_thread(readyz, http))
            await asyncio.sleep(0.25)

    poller = asyncio.create_task(poll_ready())
    try:
        for _ in range(MAX_ATTEMPTS):
            task = asyncio.create_task(one_session(url, program))
            tasks.append(task)
            await asyncio.wait({task}, timeout=ARRIVAL_GAP_S)
            if task.done() and "refused" in task.result():
                break
        results = list(await asyncio.gather(*tasks))
    finally:
        poller.cancel()
    return results, ready_seen


def test_past_capacity_newcomers_are_refused_and_running_sessions_keep_deadlines(
        tmp_path: Path) -> None:
    # The shipped admission limit (tests/conftest.py turns it off for other tests).
    limit = str(ServerConfig().admission_max_pressure)
    srv = start_server(tmp_path, "--max-sessions", "64",
                       env={"STREAMSERVER_ADMISSION_MAX_PRESSURE": limit})
    try:
        url = srv.url + "?encoding=pcm_s16le&sample_rate=16000&pace=realtime&delay_ms=2000"
        results, ready_seen = asyncio.run(drive(url, srv.http, dense_program()))
        log = srv.log_text()
    finally:
        stop_server(srv)
    refused = [r for r in results if "refused" in r]
    ran = [r["stats"] for r in results if "stats" in r]
    assert not [r for r in results if "error" in r], results
    assert refused, f"no session was refused in {MAX_ATTEMPTS} arrivals: {results}"
    assert {r["refused"] for r in refused} == {"server_busy"}
    assert len(ran) >= 1
    speech = sum(s["speech_ms"] for s in ran)
    masked = sum(s["deadline_masked_ms"] for s in ran)
    assert speech > 0
    assert masked / speech <= 0.01, (masked, speech, len(ran))
    # While it refused, /readyz told the load balancer so (and said why).
    busy = [body for status, body in ready_seen if status == 503]
    assert busy and {b["reason"] for b in busy} == {"busy"}, ready_seen[-20:]
    # The server says why in its log, with no transcript text.
    assert "measured capacity" in log or "server_busy" in log
