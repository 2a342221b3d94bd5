"""A model call that raises or hangs fails its session closed, not the process.

Real models and the real session runner and pool; only the Whisper engine is
wrapped, to inject the fault (what fakes are for).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import numpy as np
import pytest

from streamserver import audio as audio_mod
from streamserver.config import ServerConfig, SessionConfig
from streamserver.core.session import AudioOut, Event
from streamserver.evaluation import masked_speech_share
from streamserver.runtime import ModelPool, SessionRunner
from tests.conftest import FIXTURES

CLIP = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."


class FaultyWhisper:
    """The real engine, but calls fail on demand: ``mode`` is ok, raise or hang."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.mode = "ok"
        self.release = threading.Event()
        self.hung = threading.Event()

    def transcribe_batch(self, items: list[tuple[np.ndarray, str]]) -> list[Any]:
        if self.mode == "raise":
            raise RuntimeError("injected model failure")
        if self.mode == "hang":
            self.mode = "ok"  # only this call hangs
            self.hung.set()
            self.release.wait(60)
        return self.real.transcribe_batch(items)


class Engines:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.asr = FaultyWhisper(real.asr)

    def run_job(self, job: Any) -> Any:
        return self.real.run_job(job)

    def new_session(self, cfg: SessionConfig, session_id: str = "") -> Any:
        return self.real.new_session(cfg, session_id)


async def run_session(engines: Engines, pool: ModelPool, cfg: ServerConfig,
                      samples: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
    scfg = SessionConfig.from_params({"encoding": "pcm_s16le", "sample_rate": 16000,
                                      "pace": "asap", "audio_redaction": "silence"})
    out: list[bytes] = []
    events: list[dict[str, Any]] = []

    async def send(o: AudioOut | Event) -> None:
        if isinstance(o, AudioOut):
            out.append(o.data)
        else:
            events.append(o.payload)

    runner = SessionRunner(engines.new_session(scfg, "s"), pool, cfg, send)
    task = asyncio.create_task(runner.run())
    for i in range(0, samples.shape[0], 320):
        await runner.wait_for_room()
        runner.push_audio(samples[i:i + 320].tobytes())
        await asyncio.sleep(0)
    runner.finish()
    await asyncio.wait_for(task, 60)
    return np.frombuffer(b"".join(out), np.int16), events


@pytest.fixture
def faulty(engines: Any) -> Engines:
    return Engines(engines)


def clip() -> np.ndarray:
    samples, _ = audio_mod.read_wav(FIXTURES / CLIP)
    return samples


def test_model_that_raises_fails_the_session_closed_and_the_pool_goes_on(
        faulty: Engines) -> None:
    samples = clip()
    cfg = ServerConfig()

    async def go() -> tuple[Any, Any]:
        pool = ModelPool(faulty, 2)  # type: ignore[arg-type]
        try:
            faulty.asr.mode = "raise"
            failed = await run_session(faulty, pool, cfg, samples)
            faulty.asr.mode = "ok"
            healthy = await run_session(faulty, pool, cfg, samples)
        finally:
            pool.shutdown()
        return failed, healthy

    (out, events), (out_ok, events_ok) = asyncio.run(go())
    assert out.size == samples.shape[0]  # every sample released
    masked, speech = masked_speech_share(samples[:, 0], out, 16000)
    assert masked / speech > 0.9  # speech nobody transcribed is masked
    codes = {e.get("code") for e in events if e["type"] == "error"}
    assert codes == {"model_error"} and events[-1]["type"] == "session.end"
    assert not [e for e in events if e["type"] == "transcript.final"]
    # The same pool then serves a session normally.
    finals = " ".join(e["text"] for e in events_ok if e["type"] == "transcript.final")
    assert "name" in finals.lower() and "smith" not in finals.lower()
    assert not [e for e in events_ok if e["type"] == "error"]
    assert out_ok.size == samples.shape[0]


def test_model_that_hangs_times_out_and_other_sessions_go_on(faulty: Engines) -> None:
    samples = clip()
    cfg = ServerConfig(model_timeout_s=2.0)

    async def go() -> tuple[Any, Any]:
        pool = ModelPool(faulty, 2)  # type: ignore[arg-type]
        try:
            faulty.asr.mode = "hang"
            stuck = asyncio.create_task(run_session(faulty, pool, cfg, samples))
            await asyncio.to_thread(faulty.asr.hung.wait, 30)
            # One worker is stuck for good; the other serves a new session.
            other = await run_session(faulty, pool, cfg, samples)
            return await stuck, other
        finally:
            faulty.asr.release.set()
            pool.shutdown()

    (out, events), (out_ok, events_ok) = asyncio.run(go())
    assert out.size == samples.shape[0]
    masked, speech = masked_speech_share(samples[:, 0], out, 16000)
    assert masked / speech > 0.9
    errors = [e for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["model_timeout"]  # once, then fail closed
    assert events[-1]["type"] == "session.end"
    assert events[-1]["stats"]["failed_jobs"] >= 1
    finals = " ".join(e["text"] for e in events_ok if e["type"] == "transcript.final")
    assert "name" in finals.lower() and out_ok.size == samples.shape[0]


# --- a client that does not read: the send buffer's high and low water ----------

def _scfg(pace: str) -> SessionConfig:
    return SessionConfig.from_params({"encoding": "pcm_s16le", "sample_rate": 16000,
                                      "pace": pace, "delay_ms": 500})


def test_realtime_client_that_stops_reading_is_cut_off_at_the_high_water(engines: Any) -> None:
    """The transport's send never returns (the client reads nothing): the runner
    holds at most the high water, then fails the session with slow_consumer."""
    from streamserver.runtime import SendQueueFull

    cfg = ServerConfig(send_high_water_bytes=64 << 10, send_low_water_bytes=16 << 10)
    samples = np.tile(clip(), 2)

    async def go() -> tuple[BaseException | None, float, int]:
        pool = ModelPool(engines, 2)
        never = asyncio.Event()

        async def send(o: AudioOut | Event) -> None:
            await never.wait()  # the socket is full for good

        runner = SessionRunner(engines.new_session(_scfg("realtime"), "s"), pool, cfg, send)
        task = asyncio.create_task(runner.run())
        t0 = asyncio.get_running_loop().time()
        peak = 0
        try:
            for i in range(0, samples.shape[0], 320):
                if task.done():
                    break
                runner.push_audio(samples[i:i + 320].tobytes())
                peak = max(peak, runner._queued_bytes)
                await asyncio.sleep(max(0.0, t0 + (i + 320) / 16000
                                        - asyncio.get_running_loop().time()))
            await asyncio.wait({task}, timeout=5)
            error = task.exception() if task.done() else None
            return error, (i + 320) / 16000, peak
        finally:
            task.cancel()
            pool.shutdown()

    error, at_s, peak = asyncio.run(go())
    assert isinstance(error, SendQueueFull) and error.code == "slow_consumer"
    # 64 KiB is ~2 s of 16 kHz audio: cut off ~D + 2 s in, not at the end of input.
    assert at_s < 5.0
    assert peak <= (64 << 10) + 6400  # the high water, plus at most one 200 ms block


def test_asap_client_that_reads_slowly_pauses_input_and_loses_nothing(engines: Any) -> None:
    """asap: over the high water the runner stops taking input (the server stops
    reading the socket) until the buffer is under the low water; every sample
    still comes back and the session is not cut off."""
    cfg = ServerConfig(send_high_water_bytes=32 << 10, send_low_water_bytes=8 << 10)
    samples = clip()

    async def go() -> tuple[int, int, int, bool]:
        pool = ModelPool(engines, 2)
        got: list[bytes] = []
        saw_pause = asyncio.Event()

        async def send(o: AudioOut | Event) -> None:
            # The client is away until the runner has stopped taking input (or 20 s).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(saw_pause.wait(), 20)
            if isinstance(o, AudioOut):
                got.append(o.data)

        runner = SessionRunner(engines.new_session(_scfg("asap"), "s"), pool, cfg, send)
        task = asyncio.create_task(runner.run())
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while not task.done():
                peak = max(peak, runner._queued_bytes)
                if runner._send_paused and not runner._room.is_set():
                    saw_pause.set()
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            for i in range(0, samples.shape[0], 320):
                await runner.wait_for_room()
                runner.push_audio(samples[i:i + 320].tobytes())
            runner.finish()
            await asyncio.wait_for(task, 60)
        finally:
            await watcher
            pool.shutdown()
        return len(b"".join(got)), peak, samples.shape[0] * 2, saw_pause.is_set()

    received, peak, sent, paused = asyncio.run(go())
    assert received == sent
    assert paused  # input was held back while the client was away
    # Bounded: the high water, plus what was already accepted (at most
    # max_pending_audio_s of input) being decided and released after the pause.
    assert peak <= (32 << 10) + int(cfg.max_pending_audio_s * 16000 * 2)
