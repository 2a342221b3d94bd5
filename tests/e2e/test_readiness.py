"""End to end: /readyz is what a load balancer routes by.

503 whenever a new session would be refused (full, draining, starting), so a
Kubernetes readiness probe sends new calls to other nodes; and it names the device
and compute type CTranslate2 actually runs (--device / --compute-type).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from streamserver.audio import read_wav
from streamserver.client import stream_file
from tests.conftest import FIXTURES, readyz, start_server, stop_server

pytestmark = pytest.mark.e2e


def test_readyz_is_503_while_full_and_names_the_device(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--max-sessions", "1", "--device", "auto",
                       "--compute-type", "int8")
    try:
        status, body = readyz(srv.http)
        # auto on this machine (no CUDA device) is cpu; CTranslate2 runs "int8" on
        # CPU as int8 weights with float32 activations.
        assert status == 200 and body["ready"] is True
        assert body["asr"] == {"device": "cpu", "compute_type": "int8_float32"}
        assert (body["sessions"], body["max_sessions"]) == (0, 1)
        assert body["event_loop"] == "uvloop"  # event_loop=auto, uvloop a dependency

        async def hold_the_only_slot() -> tuple[int, dict[str, Any], str | None]:
            url = f"{srv.url}?encoding=pcm_s16le&sample_rate=16000&pace=realtime"
            async with websockets.connect(url) as ws:
                assert json.loads(await ws.recv())["type"] == "session.begin"
                full = await asyncio.to_thread(readyz, srv.http)
                # What the 503 stands for: a second session is refused "try later".
                async with websockets.connect(url) as second:
                    refused = json.loads(await second.recv())
                await ws.send(json.dumps({"type": "close"}))
                async for _ in ws:
                    pass
                return full[0], full[1], refused.get("code")

        status, body, refused = asyncio.run(hold_the_only_slot())
        assert (status, body["ready"], body["reason"], body["sessions"]) == (
            503, False, "full", 1)
        assert refused == "server_busy"
        deadline = time.monotonic() + 10
        while readyz(srv.http)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, body = readyz(srv.http)
        assert (status, body["ready"], body["sessions"]) == (200, True, 0)  # room again
        assert "reason" not in body
    finally:
        stop_server(srv)


@pytest.mark.parametrize(("args", "message"), [
    (["--compute-type", "float16"], "compute_type float16 needs device cuda"),
    (["--device", "cpu", "--compute-type", "int8_float16"], "needs device cuda"),
])
def test_impossible_device_settings_stop_serve_before_it_binds(
        tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "streamserver.cli", "serve", "--port", "1",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_cuda_without_a_cuda_device_stops_serve_before_it_binds(tmp_path: Path) -> None:
    import ctranslate2

    assert ctranslate2.get_cuda_device_count() == 0, "this test is for a machine without CUDA"
    done = subprocess.run([sys.executable, "-m", "streamserver.cli", "serve", "--port", "1",
                           "--device", "cuda"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "sees no CUDA device" in done.stderr, done.stderr


def test_the_standard_event_loop_still_serves_a_session(tmp_path: Path) -> None:
    """STREAMSERVER_EVENT_LOOP=asyncio, the fallback should uvloop ever misbehave:
    a real session on it comes back whole, with its transcript."""
    srv = start_server(tmp_path, env={"STREAMSERVER_EVENT_LOOP": "asyncio"})
    try:
        assert readyz(srv.http)[1]["event_loop"] == "asyncio"
        clip = FIXTURES / "dev_014.wav"  # "... my SSN is ..."
        out, _, events = asyncio.run(stream_file(clip, srv.url, {"encoding": "pcm_s16le"},
                                                 pace="asap"))
        assert out.shape == read_wav(clip)[0].shape  # every sample back
        kinds = [e["type"] for e in events]
        assert kinds[0] == "session.begin" and kinds[-1] == "session.end"
        assert "error" not in kinds
        finals = [e for e in events if e["type"] == "transcript.final"]
        assert sum(len(e["words"]) for e in finals) >= 5
        assert any(w["redacted"] for e in finals for w in e["words"])  # the SSN
    finally:
        stop_server(srv)
