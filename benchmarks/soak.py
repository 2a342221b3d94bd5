"""Soak: N real-time sessions for a long run at the measured capacity; RSS over time.

    .venv/bin/python benchmarks/soak.py [--sessions 8] [--minutes 30] [--delay-ms 2000]
                                        [--sample-s 5] [--out benchmarks/results/soak.json]

Starts the server once as its own process (as ``capacity.py`` does) and keeps N
session slots busy for the whole run. Each slot places back-to-back calls of a
few minutes (seeded random length, ``--call-min-s`` .. ``--call-max-s``), each a
fresh WebSocket session streaming real clips at real-time pace (``session.begin``
... ``close`` ... ``session.end``), so sessions are created and freed all run
long. A share of calls ends abruptly (``--abrupt``: the client drops the TCP
connection mid-stream, no close) and a share gets a fan-out listener on
``/v1/sessions/{id}/listen`` (``--listen``; half of those leave early): the code
paths where leaks hide.

Every ``--sample-s`` seconds it records the server's RSS, CPU %, open file
descriptors and threads, the running sessions (``/readyz``) and the cumulative
call counts. Per call it keeps ``speech_ms`` and ``deadline_masked_ms`` from
``session.end`` and every error: error events by code, abnormal close codes,
connection failures, audio not all released, a missing ``session.end``.

Reports RSS after warm-up (first ``--warmup-min``, default 10 % of the run) vs.
the end, the growth from a least-squares line over the post-warm-up samples
(MB and MB/hour), the same line over the second half of the load alone (the
steady state: memory that fills once levels off, a per-call leak does not),
peak RSS, idle RSS before and after, calls, audio hours, deadline-masked share
of speech, errors by code, server log warnings/errors, the server's own counters
afterwards, and a verdict. Writes the JSON, a PNG beside
it (RSS against time with the fitted line; sessions and cumulative calls) and
the server's log beside it (``.log``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capacity import (  # noqa: E402
    FRAME,
    RATE,
    build_program,
    free_port,
    heap_by_kind_mb,
    one_session,
    result_header,
    scrape,
    server_allocator,
    start_server,
    tuning_env,
)

MB = 2**20


@dataclass
class CallPlan:
    slot: int
    index: int
    length_s: float
    abrupt_after_s: float | None  # drop the connection after this much audio
    listen: bool
    listener_leaves_after_s: float | None  # None: the listener stays to the end
    offset: int  # start sample in the looped program
    gap_s: float  # pause before the slot's next call


@dataclass
class Soak:
    url: str  # ws://host:port
    query: str
    program: np.ndarray
    delay_s: float
    t0: float
    end: float
    calls: list[dict[str, Any]] = field(default_factory=list)
    started: int = 0
    done: int = 0
    listeners_active: int = 0
    listeners_total: int = 0
    error_count: int = 0
    server_dead: bool = False


def plan_call(rng: np.random.Generator, slot: int, index: int, args: argparse.Namespace,
              left_s: float, program_size: int) -> CallPlan:
    # Every draw happens whatever the outcome, so a seed gives the same calls.
    length = float(rng.uniform(args.call_min_s, args.call_max_s))
    abrupt = bool(rng.random() < args.abrupt)
    abrupt_frac = float(rng.uniform(0.2, 0.9))
    listen = bool(rng.random() < args.listen)
    leaves = bool(rng.random() < 0.5)
    leave_frac = float(rng.uniform(0.2, 0.8))
    offset = int(rng.integers(program_size))
    gap = float(rng.uniform(0.5, 3.0))
    length = round(min(length, left_s), 2)
    return CallPlan(slot, index, length, round(abrupt_frac * length, 2) if abrupt else None,
                    listen, round(leave_frac * length, 2) if listen and leaves else None,
                    offset, gap)


def call_audio(program: np.ndarray, plan: CallPlan) -> np.ndarray:
    n = int(plan.length_s * 50) * FRAME
    return np.roll(program, -plan.offset)[:n]


def close_code(exc: Exception) -> int:
    rcvd = getattr(exc, "rcvd", None)
    return int(rcvd.code) if rcvd is not None else 1006


async def listener(soak: Soak, session_id: str, leave_after_s: float | None,
                   rec: dict[str, Any]) -> None:
    """Join the call's fan-out, read everything; leave early when told to."""
    import websockets

    soak.listeners_active += 1
    soak.listeners_total += 1
    got = 0
    try:
        async with websockets.connect(f"{soak.url}/v1/sessions/{session_id}/listen",
                                      max_size=1 << 22) as ws:

            async def read() -> None:
                nonlocal got
                async for msg in ws:
                    if isinstance(msg, bytes):
                        got += len(msg) // 2
                    elif (ev := json.loads(msg))["type"] == "error":
                        rec["errors"].append(f"listener:{ev['code']}")

            if leave_after_s is None:
                await read()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(read(), leave_after_s)
    except websockets.ConnectionClosed as exc:
        rec["errors"].append(f"listener_close_{close_code(exc)}")
    except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
        rec["errors"].append(f"listener_connect_failed:{type(exc).__name__}")
    finally:
        soak.listeners_active -= 1
        rec["listener_samples"] = got


async def abrupt_stream(url: str, audio: np.ndarray, after_s: float,
                        on_event: Callable[[dict[str, Any]], None]) -> None:
    """Stream real-time for ``after_s`` seconds, then vanish: no close, no goodbye."""
    import websockets

    ws = await websockets.connect(url, max_size=1 << 22)

    async def reader() -> None:
        async for msg in ws:
            if isinstance(msg, str):
                on_event(json.loads(msg))

    task = asyncio.create_task(reader())
    try:
        t0 = time.monotonic()
        for k in range(min(int(after_s * 50), audio.size // FRAME)):
            await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
            if task.done():
                task.result()  # the server closed first: report how
                break
            await ws.send(audio[k * FRAME : (k + 1) * FRAME].tobytes())
    finally:
        ws.transport.abort()
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            await task


async def one_call(soak: Soak, plan: CallPlan) -> dict[str, Any]:
    import websockets

    audio = call_audio(soak.program, plan)
    rec: dict[str, Any] = {
        "slot": plan.slot, "call": plan.index,
        "start_min": round((time.monotonic() - soak.t0) / 60, 3),
        "audio_s": round(audio.size / RATE, 2),
        "kind": "abrupt" if plan.abrupt_after_s is not None else "normal",
        "listener": plan.listen, "errors": [],
    }
    listen_task: asyncio.Task[None] | None = None

    def on_event(ev: dict[str, Any]) -> None:
        nonlocal listen_task
        if ev["type"] == "session.begin" and plan.listen and listen_task is None:
            listen_task = asyncio.create_task(
                listener(soak, ev["session_id"], plan.listener_leaves_after_s, rec))
        elif ev["type"] == "error":
            rec["errors"].append(ev["code"])

    url = f"{soak.url}/v1/stream{soak.query}"
    soak.started += 1
    try:
        if plan.abrupt_after_s is not None:
            await abrupt_stream(url, audio, plan.abrupt_after_s, on_event)
            rec["audio_s"] = round(min(plan.abrupt_after_s, audio.size / RATE), 2)
        else:
            r = await one_session(url, audio, soak.delay_s, time.monotonic(), on_event)
            stats = r["stats"]
            if not stats:
                rec["errors"].append("no_session_end")
            rec["speech_ms"] = stats.get("speech_ms", 0.0)
            rec["deadline_masked_ms"] = stats.get("deadline_masked_ms", 0.0)
            rec["failed_jobs"] = stats.get("failed_jobs", 0)
            if r["received"] != r["sent"]:
                rec["errors"].append("audio_not_all_released")
            if r["jitter"]:
                rec["jitter_ms_p99"] = round(float(np.percentile(r["jitter"], 99)) * 1000, 1)
            if r["lags"]:
                rec["final_lag_s_p50"] = round(float(np.median(r["lags"])), 2)
    except websockets.ConnectionClosed as exc:
        rec["errors"].append(f"close_{close_code(exc)}")
    except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
        rec["errors"].append(f"connect_failed:{type(exc).__name__}")
    except Exception as exc:  # anything else is counted, not allowed to end the soak
        rec["errors"].append(f"client_exception:{type(exc).__name__}")
    if listen_task is not None:
        try:
            await asyncio.wait_for(listen_task, 15)
        except TimeoutError:
            rec["errors"].append("listener_not_closed")
    soak.done += 1
    soak.error_count += len(rec["errors"])
    rec["end_min"] = round((time.monotonic() - soak.t0) / 60, 3)
    soak.calls.append(rec)
    return rec


async def run_slot(soak: Soak, slot: int, args: argparse.Namespace, start_delay: float) -> None:
    rng = np.random.default_rng([args.seed, slot])
    await asyncio.sleep(start_delay)
    index = 0
    while not soak.server_dead:
        left = soak.end - time.monotonic()
        if left < 2.0:
            return
        plan = plan_call(rng, slot, index, args, left, soak.program.size)
        await one_call(soak, plan)
        index += 1
        await asyncio.sleep(plan.gap_s)


def readyz_sessions(base: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
            return int(json.loads(r.read())["sessions"])
    except (OSError, ValueError, KeyError):
        return None


def heap_mb(http: str) -> dict[str, float]:
    """The server's malloc heap by kind (``streamserver_heap_bytes``), in MB."""
    return heap_by_kind_mb(scrape(http, ("streamserver_heap_bytes",)))


def anonymous_mb(pid: int) -> float | None:
    """Anonymous resident memory (heap, arenas, stacks, runtimes' own maps), in MB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Anonymous:"):
                return round(int(line.split()[1]) * 1024 / MB, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def sample_once(proc: Any, soak: Soak, sessions: int | None,
                heap: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "t_s": round(time.monotonic() - soak.t0, 1),
        "rss_mb": round(proc.memory_info().rss / MB, 1),
        "cpu_pct": round(proc.cpu_percent(None), 1),
        "fds": proc.num_fds(),
        "threads": proc.num_threads(),
        "sessions": sessions,
        "listeners": soak.listeners_active,
        "calls_started": soak.started,
        "calls_done": soak.done,
        "errors": soak.error_count,
        "anon_mb": anonymous_mb(proc.pid),
        **(heap or {}),
    }


async def sampler(soak: Soak, server: subprocess.Popen[bytes], http: str, every_s: float,
                  out: list[dict[str, Any]], stop: asyncio.Event) -> None:
    import psutil

    proc = psutil.Process(server.pid)
    proc.cpu_percent(None)
    report_every = max(1, round(60 / every_s))
    k = 0
    while not stop.is_set():
        if server.poll() is not None:
            soak.server_dead = True
            print(json.dumps({"server_exited": server.returncode}), flush=True)
            return
        sessions = await asyncio.to_thread(readyz_sessions, http)
        heap = await asyncio.to_thread(heap_mb, http)
        try:
            s = sample_once(proc, soak, sessions, heap)
        except psutil.NoSuchProcess:
            soak.server_dead = True
            return
        out.append(s)
        if k % report_every == 0:
            print(json.dumps(s), flush=True)
        k += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, soak.t0 + k * every_s
                                                    - time.monotonic()))


async def soak_run(args: argparse.Namespace, server: subprocess.Popen[bytes], port: int,
                   program: np.ndarray) -> dict[str, Any]:
    import psutil

    http = f"http://127.0.0.1:{port}"
    proc = psutil.Process(server.pid)
    idle_before = round(proc.memory_info().rss / MB, 1)
    query = (f"?encoding=pcm_s16le&sample_rate={RATE}&delay_ms={args.delay_ms}"
             "&pace=realtime")
    t0 = time.monotonic()
    soak = Soak(f"ws://127.0.0.1:{port}", query, program, args.delay_ms / 1000, t0,
                t0 + args.minutes * 60)
    samples: list[dict[str, Any]] = []
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler(soak, server, http, args.sample_s, samples, stop))
    # Stagger the first calls over a few seconds so slots do not run in lock-step.
    stagger = min(5.0, args.minutes * 60 / 10)
    await asyncio.gather(*[run_slot(soak, i, args, i * stagger / max(args.sessions, 1))
                           for i in range(args.sessions)])
    load_end = time.monotonic() - t0
    stop.set()
    await sampling
    await asyncio.sleep(3.0)  # let the last sessions' teardown finish
    after: dict[str, Any] = {}
    if not soak.server_dead and server.poll() is None:
        after = sample_once(proc, soak, await asyncio.to_thread(readyz_sessions, http))
        after["metrics"] = await asyncio.to_thread(server_metrics, http)
    return {"soak": soak, "samples": samples, "idle_before_mb": idle_before,
            "after": after, "load_end_s": load_end}


def server_metrics(http: str) -> dict[str, float]:
    """The server's counters that must add up after the run (sessions, listeners, errors)."""
    keep = ("streamserver_sessions_started", "streamserver_sessions_ended",
            "streamserver_sessions_active", "streamserver_listeners",
            "streamserver_session_errors", "streamserver_memory_trims",
            "streamserver_memory_trimmed_bytes")
    return scrape(http, keep)


def server_log_summary(path: Path) -> dict[str, Any]:
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            level, msg = str(entry.get("level")), str(entry.get("msg"))
        except (ValueError, AttributeError):
            level, msg = "unparsed", line[:120]
        levels[level] += 1
        if level not in ("debug", "info"):
            messages[f"{level}: {msg}"] += 1
    return {"lines_by_level": dict(levels), "top_messages": dict(messages.most_common(10))}


def late_fit(samples: list[dict[str, Any]], load_end_s: float) -> dict[str, Any] | None:
    """The same line over the second half of the load only: is RSS at a steady state?

    Growth over the whole run mixes two things an operator must tell apart: memory
    that fills once (every encoder input width the runtime has seen, spaCy's string
    store, allocator arenas at their high-water mark) and memory that grows per call.
    The first levels off; the second does not, so it shows in the second half.
    """
    late = [s for s in samples if load_end_s / 2 <= s["t_s"] <= load_end_s]
    if len(late) < 3:
        return None
    t = np.array([s["t_s"] for s in late]) / 3600
    y = np.array([s["rss_mb"] for s in late])
    slope, icpt = np.polyfit(t, y, 1)
    return {"slope_mb_per_hour": round(float(slope), 3), "intercept_mb": round(float(icpt), 2),
            "from_min": round(float(t[0]) * 60, 2), "to_min": round(float(t[-1]) * 60, 2),
            "rss_min_mb": float(y.min()), "rss_max_mb": float(y.max())}


def rss_fit(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    post = [s for s in samples if s["t_s"] >= warmup_s]
    out: dict[str, Any] = {
        "warmup_min": round(warmup_s / 60, 2),
        "post_warmup_samples": len(post),
        "rss_start_mb": post[0]["rss_mb"] if post else None,
        "rss_end_mb": post[-1]["rss_mb"] if post else None,
        "rss_peak_mb": max((s["rss_mb"] for s in samples), default=None),
        "rss_growth_mb": None, "rss_growth_mb_per_hour": None, "fit": None,
    }
    if len(post) >= 3 and post[-1]["t_s"] > post[0]["t_s"]:
        t = np.array([s["t_s"] for s in post]) / 3600
        y = np.array([s["rss_mb"] for s in post])
        slope, icpt = np.polyfit(t, y, 1)
        out["rss_growth_mb_per_hour"] = round(float(slope), 2)
        out["rss_growth_mb"] = round(float(slope * (t[-1] - t[0])), 2)
        out["fit"] = {"slope_mb_per_hour": round(float(slope), 3),
                      "intercept_mb": round(float(icpt), 2),
                      "from_min": round(float(t[0]) * 60, 2),
                      "to_min": round(float(t[-1]) * 60, 2)}
    return out


def summarise(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    soak: Soak = run["soak"]
    calls = sorted(soak.calls, key=lambda c: (c["start_min"], c["slot"]))
    samples = run["samples"]
    warmup_s = (args.warmup_min if args.warmup_min is not None else args.minutes * 0.1) * 60
    rss = rss_fit(samples, warmup_s)
    normal = [c for c in calls if c["kind"] == "normal"]
    speech = sum(c.get("speech_ms", 0.0) for c in normal)
    masked = sum(c.get("deadline_masked_ms", 0.0) for c in normal)
    share = round(masked / speech, 5) if speech else None
    errors: Counter[str] = Counter(e for c in calls for e in c["errors"])
    failed_jobs = sum(c.get("failed_jobs", 0) for c in normal)
    if failed_jobs:
        errors["failed_jobs"] += failed_jobs
    if soak.server_dead:
        errors["server_exited"] += 1
    none_ready = sum(1 for s in samples if s["sessions"] is None)
    if none_ready:
        errors["readyz_unavailable"] += none_ready
    log = server_log_summary(args.out.with_suffix(".log"))
    log_errors = sum(n for lv, n in log["lines_by_level"].items()
                     if lv in ("error", "critical", "unparsed"))
    after = run["after"]
    metrics = after.get("metrics", {})
    released = bool(after) and after.get("sessions") == 0 and metrics.get(
        "streamserver_sessions_active") == 0 and metrics.get("streamserver_listeners") == 0
    jit = [c["jitter_ms_p99"] for c in normal if "jitter_ms_p99" in c]
    lag = [c["final_lag_s_p50"] for c in normal if "final_lag_s_p50" in c]
    growth = rss["rss_growth_mb_per_hour"]
    late = late_fit(samples, run["load_end_s"])
    heap = [s for s in samples if s["t_s"] >= warmup_s and s.get("heap_in_use_mb") is not None]
    heap_slope = (round(float(np.polyfit(np.array([s["t_s"] for s in heap]) / 3600,
                                         [s["heap_in_use_mb"] for s in heap], 1)[0]), 2)
                  if len(heap) >= 3 else None)
    return {
        "sessions": args.sessions,
        "minutes": args.minutes,
        "load_minutes": round(run["load_end_s"] / 60, 2),
        **rss,
        "rss_growth_late_mb_per_hour": late["slope_mb_per_hour"] if late else None,
        "late_fit": late,
        # malloc's live bytes over the same window: a leak moves this, fragmentation not.
        "heap_in_use_growth_mb_per_hour": heap_slope,
        "rss_idle_before_mb": run["idle_before_mb"],
        "rss_idle_after_mb": after.get("rss_mb"),
        "fds_first_last": [samples[0]["fds"], after.get("fds")] if samples else None,
        "threads_first_last": [samples[0]["threads"], after.get("threads")] if samples else None,
        "calls_completed": len(calls),
        "calls_normal": len(normal),
        "calls_abrupt": len(calls) - len(normal),
        "calls_with_listener": sum(1 for c in calls if c["listener"]),
        "listeners_joined": soak.listeners_total,
        "audio_hours": round(sum(c["audio_s"] for c in calls) / 3600, 3),
        "speech_hours": round(speech / 3.6e6, 3),
        "deadline_masked_ms": round(masked, 1),
        "deadline_masked_share": share,
        "per_call_jitter_ms_p99_median_max": [round(float(np.median(jit)), 1), max(jit)]
        if jit else None,
        "per_call_final_lag_s_p50_median_max": [round(float(np.median(lag)), 2), max(lag)]
        if lag else None,
        "errors": dict(errors.most_common()),
        "server_log": log,
        "after": after,
        "verdict": {
            "rss_growth_ok": None if growth is None else growth < args.max_growth_mb_h,
            "rss_steady_ok": None if late is None
            else late["slope_mb_per_hour"] < args.max_growth_mb_h,
            "deadline_masked_ok": None if share is None else share <= 0.01,
            "errors_ok": not errors and log_errors == 0,
            "state_released_ok": released,
        },
        "rule": f"RSS growth (least-squares over post-warm-up samples) < {args.max_growth_mb_h} "
                "MB/h; the same over the second half of the load (steady state) < "
                f"{args.max_growth_mb_h} MB/h; deadline-masked speech <= 1 %; no error events, "
                "abnormal closes, connection failures, lost audio or server log errors; "
                "afterwards no session or listener left on the server",
    }


def plot(summary: dict[str, Any], samples: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s["t_s"] for s in samples]) / 60
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1]})
    ax.plot(t, [s["rss_mb"] for s in samples], ".-", ms=3, lw=0.8, label="server RSS")
    if any(s.get("heap_in_use_mb") is not None for s in samples):
        # What malloc has handed out and not had back: flat here with RSS rising
        # means fragmentation, rising with it means a leak.
        ax.plot(t, [s.get("heap_in_use_mb", np.nan) for s in samples], lw=0.8,
                c="tab:purple", label="malloc heap in use")
    if summary["warmup_min"] > 0:
        ax.axvspan(0, summary["warmup_min"], color="grey", alpha=0.15, label="warm-up")
    fit = summary["fit"]
    if fit:
        ft = np.array([fit["from_min"], fit["to_min"]])
        ax.plot(ft, fit["intercept_mb"] + fit["slope_mb_per_hour"] * ft / 60, "r--",
                label=f"fit after warm-up: {fit['slope_mb_per_hour']:+.1f} MB/h")
    late = summary.get("late_fit")
    if late:
        ft = np.array([late["from_min"], late["to_min"]])
        ax.plot(ft, late["intercept_mb"] + late["slope_mb_per_hour"] * ft / 60, "g-", lw=2,
                label=f"second half (steady state): {late['slope_mb_per_hour']:+.1f} MB/h")
    ax.set_ylabel("RSS (MB)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    bx.step(t, [s["sessions"] if s["sessions"] is not None else np.nan for s in samples],
            where="post", label="running sessions (/readyz)")
    bx.step(t, [s["listeners"] for s in samples], where="post", ls="--", label="listeners")
    bx.set_ylabel("sessions")
    bx.set_xlabel("time (min)")
    bx.grid(alpha=0.3)
    cx = bx.twinx()
    cx.plot(t, [s["calls_done"] for s in samples], c="tab:green", label="calls done (cum.)")
    cx.set_ylabel("calls done (cumulative)", color="tab:green")
    cx.set_ylim(0, max([1] + [s["calls_done"] for s in samples]) * 1.05)
    bx.set_ylim(0, summary["sessions"] + 0.5)
    h1, l1 = bx.get_legend_handles_labels()
    h2, l2 = cx.get_legend_handles_labels()
    bx.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)
    growth = summary["rss_growth_mb_per_hour"]
    late_growth = summary.get("rss_growth_late_mb_per_hour")
    g = "n/a" if growth is None else f"{growth:+.1f} MB/h"
    if late_growth is not None:
        g += f" ({late_growth:+.1f} MB/h in the second half)"
    share = summary["deadline_masked_share"]
    fig.suptitle(f"streamserver soak: {summary['sessions']} sessions, {summary['minutes']:g} min, "
                 f"{summary['calls_completed']} calls; RSS growth {g}; deadline-masked "
                 f"{'n/a' if share is None else f'{100 * share:.2f} %'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sessions", type=int, default=8,
                    help="concurrent session slots (capacity measured by capacity.py: 8)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--call-min-s", type=float, default=60.0)
    ap.add_argument("--call-max-s", type=float, default=300.0)
    ap.add_argument("--abrupt", type=float, default=0.1,
                    help="share of calls whose client vanishes mid-stream")
    ap.add_argument("--listen", type=float, default=0.2,
                    help="share of calls with a fan-out listener")
    ap.add_argument("--warmup-min", type=float, default=None,
                    help="excluded from the RSS fit (default: 10 %% of --minutes)")
    ap.add_argument("--max-growth-mb-h", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--server-log-level", default="warning")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    args = ap.parse_args(argv)
    if not 0 < args.call_min_s <= args.call_max_s:
        ap.error("need 0 < --call-min-s <= --call-max-s")

    program = build_program(args.data, max(600.0, args.call_max_s + 60), seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    started = time.time()
    server = start_server(port, args.workers, args.sessions + 4, args.out.with_suffix(".log"),
                          args.server_log_level)
    allocator = server_allocator(server.pid)
    try:
        run = asyncio.run(soak_run(args, server, port, program))
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = summarise(run, args)
    result = {
        **result_header("soak.py", argv),
        "commit": git_commit(),
        "allocator": allocator,
        "tuning_env": tuning_env(),
        "delay_ms": args.delay_ms,
        "workers": args.workers,
        "calls_s": [args.call_min_s, args.call_max_s],
        "abrupt_share": args.abrupt,
        "listen_share": args.listen,
        "sample_s": args.sample_s,
        "wall_minutes": round((time.time() - started) / 60, 2),
        **summary,
        "samples": run["samples"],
        "calls": sorted(run["soak"].calls, key=lambda c: (c["start_min"], c["slot"])),
    }
    args.out.write_text(json.dumps(result, indent=1))
    plot(summary, run["samples"], args.out.with_suffix(".png"))
    keys = ("rss_start_mb", "rss_end_mb", "rss_peak_mb", "rss_growth_mb",
            "rss_growth_mb_per_hour", "rss_growth_late_mb_per_hour", "rss_idle_before_mb",
            "rss_idle_after_mb",
            "calls_completed", "audio_hours", "deadline_masked_share", "errors", "verdict")
    print(json.dumps({k: summary[k] for k in keys}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
