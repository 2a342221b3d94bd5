"""Capacity and latency in ``pace=realtime`` over real WebSocket connections.

    .venv/bin/python benchmarks/capacity.py [--sessions 1,2,4,8,12,16] [--seconds 60]
    .venv/bin/python benchmarks/capacity.py --transport twilio --sessions 2,4,8 \
        --jitter-limit-ms 20 --out benchmarks/results/capacity_twilio.json

Starts the server as its own process on a loopback port, then, from this
(separate) process, opens N concurrent sessions that each stream real clips at
real-time pace in 20 ms frames (clips looped with natural pauses, about half
speech). For each N it reports, measured at the client and from the server's
``session.end`` stats:

* deadline-masked speech: share of speech masked because no decision was ready
  at its release time (fail closed);
* release jitter: actual arrival of each output frame minus (its input's send
  time + D), p50/p99;
* final-word lag: for every word of every ``transcript.final``, the event's
  arrival minus the time the word's last audio frame was sent, p50/p95;
* CPU seconds per audio second and peak RSS of the server process.

Capacity = the largest N with deadline-masked speech <= 1 % and jitter p99 <= 50 ms.
``--record`` runs the same with every session recorded (redacted audio and
transcript, AES-GCM sealed, into a temporary data dir that is removed afterwards),
to show what recording costs the live path. Writes
``benchmarks/results/capacity.json`` and ``capacity.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver import audio as audio_mod  # noqa: E402
from streamserver.core.pii import may_extend_entity  # noqa: E402

RATE = 16000
FRAME = RATE // 50  # 20 ms


def build_program(data: Path, seconds: float, seed: int) -> np.ndarray:
    """Real clips joined with pauses (~50 % speech), looped to ``seconds``."""
    clips = sorted((data / "pii_dev").glob("dev_*.wav")) + sorted((data / "real").glob("a*.wav"))
    if not clips:
        clips = sorted((ROOT / "tests" / "fixtures").glob("*.wav"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    parts: list[np.ndarray] = []
    total = 0
    i = 0
    while total < seconds * RATE:
        x, rate = audio_mod.read_wav(clips[order[i % len(clips)]])
        mono = x[:, 0]
        if rate != RATE:
            mono = audio_mod.to_int16(audio_mod.resample(mono.astype(np.float32) / 32768,
                                                        rate, RATE))
        gap = np.zeros(int(rng.uniform(0.8, 1.0) * mono.size), dtype=np.int16)
        parts += [mono, gap]
        total += mono.size + gap.size
        i += 1
    return np.concatenate(parts)[: int(seconds * RATE)]


# Clips long enough to hold a talkative caller or a mixed call's dense speech.
DENSE_MIN_CLIP_S = 10.0


def build_dense_program(data: Path, seconds: float, seed: int) -> np.ndarray:
    """The dense profile: real clips of 10 s or more (long support calls, monologues,
    IVR prompts) back to back with 0.5-2 s pauses, looped to ``seconds`` — a mono
    mix of a call or a talkative party, speech most of the time and long utterances."""
    clips = []
    for path in sorted((data / "real").glob("*.wav")):
        x, rate = audio_mod.read_wav(path)
        if x.shape[0] / rate >= DENSE_MIN_CLIP_S:
            mono = x[:, 0]
            if rate != RATE:
                mono = audio_mod.to_int16(audio_mod.resample(mono.astype(np.float32) / 32768,
                                                            rate, RATE))
            clips.append(mono)
    if not clips:  # no shared data (a fresh clone): the test fixtures, joined tight
        for path in sorted((ROOT / "tests" / "fixtures").glob("dev_*.wav")):
            clips.append(audio_mod.read_wav(path)[0][:, 0])
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * RATE:
        for k in rng.permutation(len(clips)):
            gap = np.zeros(int(rng.uniform(0.5, 2.0) * RATE), dtype=np.int16)
            parts += [clips[k], gap]
            total += clips[k].size + gap.size
    return np.concatenate(parts)[: int(seconds * RATE)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recording_env(data_dir: Path) -> dict[str, str]:
    """Every session recorded (redacted audio + transcript, sealed) into ``data_dir``."""
    key = subprocess.run([sys.executable, "-m", "streamserver.cli", "gen-data-key"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return {"STREAMSERVER_DATA_KEYS": key, "STREAMSERVER_DATA_DIR": str(data_dir),
            "STREAMSERVER_RECORD_SESSIONS": "true"}


def start_server(port: int, workers: int, max_sessions: int, log: Path,
                 log_level: str = "warning",
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # The server's own log (JSON, no transcript text) is kept beside the results.
    # Admission from measured headroom off: a benchmark runs the N sessions it names
    # (soak.py and allocator.py start their servers here too).
    env = {"STREAMSERVER_ADMISSION_MAX_PRESSURE": "0", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamserver.cli", "--log-level", log_level, "serve",
         "--port", str(port), "--workers", str(workers), "--max-sessions", str(max_sessions)],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


# Final-word lag by the path that made the word final (lag_class).
LAG_CLASSES = ("utterance_end", "redacted", "held", "plain")
# A word ending this close before a pause waits for the VAD's end of utterance.
PAUSE_NEAR_S = 1.0
PAUSE_MIN_FRAMES = 24  # about 0.5 s of digital silence: the programs' gaps


def next_pause_frame(program: np.ndarray) -> np.ndarray:
    """For each 20 ms frame, the first frame of the next pause (a run of digital
    silence >= 0.5 s, how the programs join clips) at or after it."""
    frames = (program.size + FRAME - 1) // FRAME
    padded = np.zeros(frames * FRAME, dtype=program.dtype)
    padded[: program.size] = program
    silent = ~padded.reshape(frames, FRAME).any(axis=1)
    edges = np.diff(np.concatenate(([0], silent.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    pauses = starts[ends - starts >= PAUSE_MIN_FRAMES]
    idx = np.searchsorted(pauses, np.arange(frames))
    return np.append(pauses, frames)[idx]


def lag_class(words: list[dict[str, Any]], i: int, end_frame: int,
              pause_frame: np.ndarray) -> str:
    """Which rule a final word waited on: ``utterance_end`` (it ends within 1 s
    before a pause: the VAD's end and the final pass), ``redacted``, ``held``
    (may extend an entity, or comes just before such a word: three words of right
    context) or ``plain`` (two passes' agreement only)."""
    if (pause_frame[end_frame] - end_frame) * 0.02 <= PAUSE_NEAR_S:
        return "utterance_end"
    word = words[i]
    if word["redacted"]:
        return "redacted"
    nxt = words[i + 1] if i + 1 < len(words) else None
    if may_extend_entity(word["text"]) or (
            nxt is not None and (nxt["redacted"] or may_extend_entity(nxt["text"]))):
        return "held"
    return "plain"


def lag_breakdown(lags: list[tuple[float, str]]) -> dict[str, dict[str, float | None]]:
    """Share of final words, and lag p50/p95, per lag class."""
    out: dict[str, dict[str, float | None]] = {}
    for cls in LAG_CLASSES:
        values = np.array([lag for lag, c in lags if c == cls])
        out[cls] = {
            "share": round(values.size / len(lags), 3) if lags else None,
            "p50_s": round(float(np.percentile(values, 50)), 2) if values.size else None,
            "p95_s": round(float(np.percentile(values, 95)), 2) if values.size else None,
        }
    return out


async def one_session(url: str, program: np.ndarray, delay_s: float, start_at: float,
                      on_event: Callable[[dict[str, Any]], None] | None = None
                      ) -> dict[str, Any]:
    """Stream ``program`` at real-time pace, then ``close``; ``on_event`` sees every
    JSON event as it arrives (``benchmarks/soak.py`` uses it)."""
    import websockets

    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    sent_at = np.zeros((program.size + FRAME - 1) // FRAME)
    pause_frame = next_pause_frame(program)
    jitter: list[float] = []
    lags: list[float] = []
    lag_classes: list[tuple[float, str]] = []
    stats: dict[str, Any] = {}
    errors: list[str] = []
    t0 = time.monotonic()
    async with websockets.connect(url, max_size=1 << 22) as ws:

        async def sender() -> None:
            for k in range(sent_at.size):
                await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
                sent_at[k] = time.monotonic()
                await ws.send(program[k * FRAME : (k + 1) * FRAME].tobytes())
            await ws.send(json.dumps({"type": "close"}))

        task = asyncio.create_task(sender())
        received = 0
        closing = False
        try:
            async for msg in ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    received += len(msg) // 2
                    k = (received - 1) // FRAME
                    closing = closing or task.done()
                    if not closing and sent_at[k] > 0:
                        jitter.append(now - (sent_at[k] + delay_s))
                else:
                    ev = json.loads(msg)
                    if on_event is not None:
                        on_event(ev)
                    if ev["type"] == "transcript.final" and not task.done():
                        # Every word counts, not just the event's last one.
                        for i, word in enumerate(ev["words"]):
                            end_frame = min(int(word["end"] * 50), sent_at.size - 1)
                            if sent_at[end_frame] > 0:
                                lags.append(now - sent_at[end_frame])
                                lag_classes.append((lags[-1], lag_class(
                                    ev["words"], i, end_frame, pause_frame)))
                    elif ev["type"] == "session.end":
                        stats = ev["stats"]
                    elif ev["type"] == "error":
                        errors.append(ev["code"])
            await task
        finally:
            task.cancel()  # the server closed early: do not leave the sender behind
    return {"jitter": jitter, "lags": lags, "lag_classes": lag_classes, "stats": stats,
            "errors": errors, "received": received, "sent": int(program.size)}


TWILIO_RATE = 8000
TWILIO_FRAME = 160  # 20 ms of mu-law, as Twilio sends it
MULAW = audio_mod.AudioFormat("mulaw", TWILIO_RATE, 1)


def to_phone(program: np.ndarray) -> bytes:
    """The 16 kHz program as a phone line carries it: 8 kHz mu-law bytes."""
    down = audio_mod.resample(program.astype(np.float32) / 32768, RATE, TWILIO_RATE)
    return audio_mod.encode(audio_mod.to_int16(down)[:, None], MULAW)


async def twilio_leg(url: str, sid: str, params: dict[str, str], phone: bytes,
                     start_at: float, sent_at: np.ndarray, other_sent_at: np.ndarray,
                     delay_s: float, hang_up: bool, other_done: asyncio.Event,
                     done: asyncio.Event) -> dict[str, Any]:
    """One leg of a bridge as Twilio drives it (``<Connect><Stream>``): start with the
    bridge in customParameters, 20 ms media in real time; the other leg's redacted
    audio comes back as media. Jitter: arrival of the other leg's frame k minus its
    send time + D. The caller hangs up (stop) after its program; the agent keeps
    sending silence until the bridge closes its stream, so it gets every sample."""
    import base64

    import websockets

    jitter: list[float] = []
    received = 0
    errors: list[str] = []
    async with websockets.connect(url, max_size=1 << 22) as ws:
        await ws.send(json.dumps({
            "event": "start", "streamSid": sid, "start": {
                "streamSid": sid, "callSid": "CA" + sid, "tracks": ["inbound"],
                "customParameters": params, "mediaFormat": {
                    "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))

        async def sender() -> None:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            t0 = time.monotonic()
            silence = b"\xff" * TWILIO_FRAME
            k = 0
            while k < sent_at.size or not hang_up:
                await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
                chunk = phone[k * TWILIO_FRAME : (k + 1) * TWILIO_FRAME] or silence
                if k < sent_at.size:
                    sent_at[k] = time.monotonic()
                await ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {
                    "track": "inbound", "chunk": str(k + 1), "timestamp": str(20 * k),
                    "payload": base64.b64encode(chunk).decode()}}))
                k += 1
            done.set()
            await ws.send(json.dumps({"event": "stop", "streamSid": sid}))

        task = asyncio.create_task(sender())
        try:
            async for msg in ws:
                event = json.loads(msg)
                if event.get("event") != "media":
                    continue
                now = time.monotonic()
                received += len(base64.b64decode(event["media"]["payload"]))
                k = (received - 1) // TWILIO_FRAME
                if not other_done.is_set() and k < other_sent_at.size and other_sent_at[k] > 0:
                    jitter.append(now - (other_sent_at[k] + delay_s))
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
                errors.append(exc.rcvd.reason or str(exc.rcvd.code))
        finally:
            task.cancel()
        if ws.close_code not in (None, 1000, 1001):
            errors.append(ws.close_reason or str(ws.close_code))
    return {"jitter": jitter, "received": received, "errors": errors}


async def run_twilio_level(url: str, http: str, pid: int, n: int, program: np.ndarray,
                           delay_ms: int) -> dict[str, Any]:
    """N Twilio legs = N/2 bridges, each leg streaming the program (about half speech;
    the agent's is shifted), redacted towards the other. Deadline-masked speech
    comes from the server's metrics (Twilio legs get no events)."""
    import psutil

    if n % 2:
        raise SystemExit("--transport twilio counts legs: use even session counts")
    proc = psutil.Process(pid)
    cpu0 = sum(proc.cpu_times()[:2])
    names = ("streamserver_speech_seconds", "streamserver_deadline_masked_seconds", *LOOP_LAG)
    before = scrape(http, names)
    stop = asyncio.Event()
    mem: dict[str, float] = {}
    sampler = sample_server(pid, stop, mem)
    frames = (program.size + FRAME - 1) // FRAME
    t_start = time.monotonic() + 1.0
    legs = []
    for b in range(n // 2):
        phones = [to_phone(np.roll(program, (2 * b + r) * 7919)) for r in (0, 1)]
        sent = [np.zeros(frames), np.zeros(frames)]
        done = [asyncio.Event(), asyncio.Event()]
        start_at = t_start + b / max(n // 2, 1)
        for r, role in enumerate(("caller", "agent")):
            params = {"bridge": f"cap-{n}-{b}", "role": role, "delay_ms": str(delay_ms)}
            legs.append(twilio_leg(url, f"MZ{n}x{b}x{r}", params, phones[r], start_at,
                                   sent[r], sent[1 - r], delay_ms / 1000,
                                   hang_up=role == "caller", other_done=done[1 - r],
                                   done=done[r]))
    results = await asyncio.gather(*legs)
    await asyncio.sleep(1.0)  # the last session.end reaches the metrics
    stop.set()
    await sampler
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    after = scrape(http, names)
    speech = after[names[0]] - before[names[0]]
    deadline = after[names[1]] - before[names[1]]
    jitter = np.array([j for r in results for j in r["jitter"]]) * 1000
    audio_s = n * program.size / RATE
    agents = results[1::2]
    return {
        "sessions": n,
        "bridges": n // 2,
        "deadline_masked_share": round(deadline / speech, 4) if speech else None,
        "jitter_ms_p50": round(float(np.percentile(jitter, 50)), 1) if jitter.size else None,
        "jitter_ms_p99": round(float(np.percentile(jitter, 99)), 1) if jitter.size else None,
        "jitter_ms_max": round(float(jitter.max()), 1) if jitter.size else None,
        "final_lag_s_p50": None,  # Media Streams carry no transcript
        "final_lag_s_p95": None,
        "cpu_s_per_audio_s": round(cpu / audio_s, 3),
        "peak_rss_mb": mem.get("peak_rss_mb"),
        "loop_lag_over_10ms_share": loop_lag_share(before, after),
        "loop_lag_over_20ms_share": loop_lag_share(before, after, 0.02),
        "errors": sorted({e for r in results for e in r["errors"]}),
        # The agent stays on until the bridge closes it: it hears all of the caller.
        "all_audio_back": all(r["received"] >= len(to_phone(program)) - 2 * TWILIO_FRAME
                              for r in agents),
    }


def sample_server(pid: int, stop: asyncio.Event, out: dict[str, float],
                  http: str = "") -> asyncio.Task[None]:
    """Peak RSS, and (with ``http``) the server's load pressure every 0.5 s."""
    import psutil

    proc = psutil.Process(pid)

    async def loop() -> None:
        peak = 0
        pressures: list[float] = []
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            if http:
                value = (await asyncio.to_thread(scrape, http, ("streamserver_load_pressure",))
                         ).get("streamserver_load_pressure")
                if value is not None:
                    pressures.append(value)
            await asyncio.sleep(0.5)
        out["peak_rss_mb"] = round(peak / 2**20, 1)
        if pressures:
            out["load_pressure_p50"] = round(float(np.percentile(pressures, 50)), 2)
            out["load_pressure_max"] = round(max(pressures), 2)

    return asyncio.create_task(loop())


# Where the server's time goes (docs/benchmarks.md, "Where the time goes"): the
# wall time each pipeline stage took, summed over its calls (from /metrics), and the
# CPU time of each kind of thread (named by the server, see runtime.name_native_thread).
STAGE_SUM = ("streamserver_stage_seconds_sum", "streamserver_stage_seconds_count",
             "streamserver_asr_batch_size_sum", "streamserver_asr_batch_size_count")
THREAD_GROUPS = {"ss-asr": "asr_runtime", "ss-asr-call": "asr_python",
                 "ss-detect": "detect"}


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the server's threads, by kind of thread:
    the CTranslate2 workers (``asr_runtime``), the threads that call them (feature
    extraction, ``asr_python``), detection (spaCy, presidio, our rules), and the rest
    — the event loop (decode, resampling, VAD, the session core, JSON, WebSocket)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        group = THREAD_GROUPS.get(comm, "event_loop_and_other")
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def stage_profile(before: dict[str, float], after: dict[str, float],
                  cpu_before: dict[str, float], cpu_after: dict[str, float],
                  audio_s: float) -> dict[str, Any]:
    """Per stage: wall seconds per audio second and calls; per thread kind: CPU
    seconds per audio second."""
    stages: dict[str, dict[str, float]] = {}
    for key, value in after.items():
        if not key.startswith(STAGE_SUM[0]):
            continue
        stage = key.split('stage="', 1)[1].split('"', 1)[0]
        count_key = key.replace(STAGE_SUM[0], STAGE_SUM[1])
        seconds = value - before.get(key, 0.0)
        calls = after.get(count_key, 0.0) - before.get(count_key, 0.0)
        if calls:
            stages[stage] = {"s_per_audio_s": round(seconds / audio_s, 4),
                             "ms_per_call": round(1000 * seconds / calls, 2),
                             "calls": int(calls)}
    cpu = {group: round((cpu_after.get(group, 0.0) - cpu_before.get(group, 0.0)) / audio_s, 4)
           for group in sorted(set(cpu_after) | set(cpu_before))}
    jobs, batches = (after.get(k, 0.0) - before.get(k, 0.0) for k in STAGE_SUM[2:])
    return {"stages": dict(sorted(stages.items())), "thread_cpu_s_per_audio_s": cpu,
            "asr_jobs_per_audio_s": round(jobs / audio_s, 3),
            "asr_batch_mean": round(jobs / batches, 2) if batches else None}


async def run_level(url: str, pid: int, n: int, program: np.ndarray | list[np.ndarray],
                    delay_ms: int) -> dict[str, Any]:
    """One level of N sessions. ``program``: one array (session i plays it rolled by
    i * 0.49 s, the half-silent profile's historic setting) or one per session."""
    import psutil

    proc = psutil.Process(pid)
    http = "http://" + url.split("//", 1)[1].split("/", 1)[0]
    stages0, threads0 = scrape(http, STAGE_SUM), thread_cpu_s(pid)
    cpu0 = sum(proc.cpu_times()[:2])
    stop = asyncio.Event()
    mem: dict[str, float] = {}
    sampler = sample_server(pid, stop, mem, http)
    query = f"?encoding=pcm_s16le&sample_rate={RATE}&delay_ms={delay_ms}&pace=realtime"
    t_start = time.monotonic() + 0.2
    # Stagger starts over one second so sessions do not run in lock-step.
    results = await asyncio.gather(*[
        one_session(url + query,
                    program[i % len(program)] if isinstance(program, list)
                    else np.roll(program, i * 7919), delay_ms / 1000,
                    t_start + i / max(n, 1))
        for i in range(n)
    ])
    stop.set()
    await sampler
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    audio_s = sum(r["sent"] for r in results) / RATE
    profile = stage_profile(stages0, scrape(http, STAGE_SUM), threads0, thread_cpu_s(pid),
                            audio_s)
    speech = sum(r["stats"].get("speech_ms", 0) for r in results)
    deadline = sum(r["stats"].get("deadline_masked_ms", 0) for r in results)
    held = sum(r["stats"].get("deadline_held_digits_ms", 0) for r in results)
    jitter = np.array([j for r in results for j in r["jitter"]]) * 1000
    lags = np.array([g for r in results for g in r["lags"]])
    return {
        "sessions": n,
        "deadline_masked_share": round(deadline / speech, 4) if speech else None,
        # Of it: digits still being said at their deadline, held masked on purpose
        # (use_hypothesis_evidence); the rest is speech whose pass came late.
        "deadline_held_digits_share": round(held / speech, 4) if speech else None,
        "deadline_late_share": round((deadline - held) / speech, 4) if speech else None,
        "jitter_ms_p50": round(float(np.percentile(jitter, 50)), 1) if jitter.size else None,
        "jitter_ms_p99": round(float(np.percentile(jitter, 99)), 1) if jitter.size else None,
        "jitter_ms_max": round(float(jitter.max()), 1) if jitter.size else None,
        "final_lag_s_p50": round(float(np.percentile(lags, 50)), 2) if lags.size else None,
        "final_lag_s_p95": round(float(np.percentile(lags, 95)), 2) if lags.size else None,
        "final_lag_by_class": lag_breakdown([c for r in results for c in r["lag_classes"]]),
        "cpu_s_per_audio_s": round(cpu / audio_s, 3),
        "peak_rss_mb": mem.get("peak_rss_mb"),
        "errors": sorted({e for r in results for e in r["errors"]}),
        "all_audio_back": all(r["received"] == r["sent"] for r in results),
        "speech_share": round(speech / 1000 / audio_s, 3) if audio_s else None,
        "deadline_masked_per_session": [
            round(r["stats"].get("deadline_masked_ms", 0) / r["stats"]["speech_ms"], 4)
            if r["stats"].get("speech_ms") else None for r in results],
        **{k: v for k, v in mem.items() if k.startswith("load_pressure")},
        "profile": profile,
    }


def ok(level: dict[str, Any], jitter_limit_ms: float = 50.0) -> bool:
    return (
        level["deadline_masked_share"] is not None
        and level["deadline_masked_share"] <= 0.01
        and level["jitter_ms_p99"] is not None
        and level["jitter_ms_p99"] <= jitter_limit_ms
        and not level["errors"]
        and level["all_audio_back"]
    )


def plot(levels: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [lv["sessions"] for lv in levels]
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    ax[0, 0].plot(n, [100 * (lv["deadline_masked_share"] or 0) for lv in levels], "o-")
    ax[0, 0].axhline(1, ls="--", c="grey")
    ax[0, 0].set_title("deadline-masked speech (%)")
    ax[0, 1].plot(n, [lv["jitter_ms_p50"] for lv in levels], "o-", label="p50")
    ax[0, 1].plot(n, [lv["jitter_ms_p99"] for lv in levels], "o-", label="p99")
    ax[0, 1].axhline(50, ls="--", c="grey")
    ax[0, 1].set_title("release jitter (ms)")
    ax[0, 1].legend()
    ax[1, 0].plot(n, [lv["final_lag_s_p50"] for lv in levels], "o-", label="p50")
    ax[1, 0].plot(n, [lv["final_lag_s_p95"] for lv in levels], "o-", label="p95")
    ax[1, 0].set_title("transcript.final lag (s)")
    ax[1, 0].legend()
    ax[1, 1].plot(n, [lv["cpu_s_per_audio_s"] for lv in levels], "o-", label="CPU s / audio s")
    ax2 = ax[1, 1].twinx()
    ax2.plot(n, [lv["peak_rss_mb"] for lv in levels], "s--", c="tab:red", label="peak RSS (MB)")
    ax[1, 1].set_title("CPU per audio second; peak RSS (MB, red)")
    for a in ax.flat:
        a.set_xlabel("concurrent real-time sessions")
        a.grid(alpha=0.3)
    fig.suptitle("streamserver capacity, tiny.en, 2-core CPU, pace=realtime")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# One sample line of the Prometheus exposition: name (``_total`` dropped), labels, value.
_METRIC = re.compile(r"^([a-z][a-z0-9_]*?)(?:_total)?(\{[^}]*\})?\s+([0-9.eE+-]+)$")


# Tuning variables a run may have been given; recorded in the results (never keys
# or secrets: only these names).
_TUNING_ENV = ("STREAMSERVER_ALLOCATOR", "MALLOC_CONF",
               "STREAMSERVER_MALLOC_ARENA_MAX", "STREAMSERVER_MALLOC_MMAP_THRESHOLD_BYTES",
               "STREAMSERVER_MEMORY_TRIM_INTERVAL_S", "ONEDNN_PRIMITIVE_CACHE_CAPACITY",
               "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES",
               "STREAMSERVER_EVENT_LOOP", "STREAMSERVER_ASR_MIN_STEP_MS")


def server_allocator(pid: int) -> str:
    """Which malloc the server process runs: jemalloc when its library is mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    return "jemalloc" if "libjemalloc" in maps else "glibc"


def tuning_env() -> dict[str, str]:
    """The memory-tuning environment this run's server inherits (empty = defaults)."""
    return {name: os.environ[name] for name in _TUNING_ENV if name in os.environ}


def parse_metrics(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The samples of the metrics named (without ``_total``), keyed name + labels."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m and m.group(1) in names:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def scrape(http: str, names: tuple[str, ...]) -> dict[str, float]:
    """``parse_metrics`` of the server's ``/metrics`` now; empty if it cannot be read."""
    try:
        with urllib.request.urlopen(f"{http}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return parse_metrics(text, names)


LOOP_LAG = ("streamserver_event_loop_lag_seconds_bucket",
            "streamserver_event_loop_lag_seconds_count")


def loop_lag_share(before: dict[str, float], after: dict[str, float],
                   over_s: float = 0.01) -> float | None:
    """Share of the server's 10 ms loop-lag probes that woke more than ``over_s`` late
    between two scrapes (how often the event loop itself held audio back)."""
    count = after.get(LOOP_LAG[1], 0.0) - before.get(LOOP_LAG[1], 0.0)
    key = f'{LOOP_LAG[0]}{{le="{over_s}"}}'
    within = after.get(key, 0.0) - before.get(key, 0.0)
    return round(1 - within / count, 4) if count else None


def heap_by_kind_mb(values: dict[str, float]) -> dict[str, float]:
    """``streamserver_heap_bytes{kind=...}`` samples as ``heap_<kind>_mb``."""
    return {"heap_" + key.split('kind="', 1)[1].split('"', 1)[0] + "_mb": round(v / 2**20, 1)
            for key, v in values.items()
            if key.startswith("streamserver_heap_bytes") and 'kind="' in key}


def result_header(script: str, argv: list[str] | None,
                  asr: dict[str, str] | None = None) -> dict[str, Any]:
    """What every benchmark result starts with: how it was made, when, on what
    (``asr``: the device and compute type the server's Whisper ran, server_asr)."""
    return {
        "command": f"python benchmarks/{script} " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model": "tiny.en (bundled), int8",
        **(asr or {}),
    }


def server_asr(port: int) -> dict[str, str]:
    """The device and compute type the server's Whisper runs on, from its /readyz
    (CTranslate2's own names: "int8" on CPU runs as int8_float32), and the event
    loop that runs its sessions ("uvloop" or "asyncio")."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
        body = json.loads(r.read())
    asr = body.get("asr") or {}
    return {"device": str(asr.get("device", "unknown")),
            "compute_type": str(asr.get("compute_type", "unknown")),
            "event_loop": str(body.get("event_loop", "unknown"))}


def recordings_stored(port: int) -> dict[str, float]:
    """``streamserver_recordings_total`` by status: proof the recordings were written."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {key.split('status="', 1)[1].split('"', 1)[0]: value
            for key, value in parse_metrics(text, ("streamserver_recordings",)).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sessions", default="1,2,4,8,12,16,20,24")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio per session per level")
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--server-log-level", default="warning",
                    help="debug: per-batch model timings in capacity.log")
    ap.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    ap.add_argument("--record", action="store_true",
                    help="record every session (redacted audio + transcript, encrypted, in a "
                         "temporary data dir): the cost of recording on the live path")
    ap.add_argument("--transport", choices=("websocket", "twilio"), default="websocket",
                    help="twilio: N legs of N/2 redacting bridges over Twilio Media Streams "
                         "(8 kHz mu-law both ways; a bridge counts as 2 sessions' audio)")
    ap.add_argument("--profile", choices=("half-silent", "dense"), default="half-silent",
                    help="half-silent: pii_dev + real/a* clips, each followed by 80-100 %% of "
                         "its length in silence (a single party's channel); dense: real "
                         "clips of 10 s or more with 0.5-2 s pauses (a mono mix of a call)")
    ap.add_argument("--lockstep", action="store_true",
                    help="half-silent: every session plays one program, each 0.49 s behind "
                         "the one before (the figures before 2026-12-07 evening); default: "
                         "each session its own order of the clips")
    ap.add_argument("--jitter-limit-ms", type=float, default=50.0,
                    help="release jitter p99 allowed at capacity")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "capacity.json")
    args = ap.parse_args(argv)

    if args.profile == "dense" and args.transport == "twilio":
        ap.error("--profile dense is for --transport websocket")
    # Every session its own order of the clips, so calls are not in step (all of them
    # in the same long utterance at once is not a workload anyone has). --lockstep:
    # one program, session i 0.49 s behind session i - 1, as the half-silent figures
    # before 2026-12-07 (eighth session) were measured; Twilio legs always so.
    most = max(int(x) for x in args.sessions.split(","))
    build = build_dense_program if args.profile == "dense" else build_program
    program: np.ndarray | list[np.ndarray] = (
        build_program(args.data, args.seconds, seed=1)
        if args.transport == "twilio" or (args.lockstep and args.profile == "half-silent")
        else [build(args.data, args.seconds, seed=1 + i) for i in range(most)])
    port = free_port()
    levels_n = [int(x) for x in args.sessions.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data_dir = tempfile.TemporaryDirectory(prefix="capacity-data-") if args.record else None
    server = start_server(port, args.workers, max(levels_n) + 2, args.out.with_suffix(".log"),
                          args.server_log_level,
                          # Admission off: each level runs the N sessions it names
                          # (tests/e2e/test_admission.py is where refusals are shown).
                          {"STREAMSERVER_ADMISSION_MAX_PRESSURE": "0",
                           **(recording_env(Path(data_dir.name)) if data_dir else {})})
    allocator = server_allocator(server.pid)
    asr = server_asr(port)
    url = f"ws://127.0.0.1:{port}/v1/stream"
    levels: list[dict[str, Any]] = []
    recordings: dict[str, float] = {}
    try:
        for n in levels_n:
            if args.transport == "twilio":
                level = asyncio.run(run_twilio_level(
                    url.replace("/v1/stream", "/v1/twilio"), f"http://127.0.0.1:{port}",
                    server.pid, n, program, args.delay_ms))
            else:
                level = asyncio.run(run_level(url, server.pid, n, program, args.delay_ms))
            levels.append(level)
            print(json.dumps(level), flush=True)
            if not ok(level, args.jitter_limit_ms) and not args.keep_going:
                break
        if args.record:
            recordings = recordings_stored(port)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if data_dir:
            data_dir.cleanup()
    capacity = max((lv["sessions"] for lv in levels if ok(lv, args.jitter_limit_ms)), default=0)
    result = {
        **result_header("capacity.py", argv, asr),
        "delay_ms": args.delay_ms,
        "workers": args.workers,
        "seconds_per_session": args.seconds,
        "capacity_sessions": capacity,
        "record": args.record,
        "allocator": allocator,
        "tuning_env": tuning_env(),
        **({"recordings_by_status": recordings} if args.record else {}),
        "transport": args.transport,
        "profile": args.profile,
        "sessions_in_step": isinstance(program, np.ndarray),
        "rule": f"largest N with deadline-masked speech <= 1% and release jitter p99 <= "
                f"{args.jitter_limit_ms:g} ms",
        "levels": levels,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(levels, args.out.with_suffix(".png"))
    print(json.dumps({"capacity_sessions": capacity}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
