"""Prometheus metrics (``GET /metrics``): counts, seconds and timings, never content.

One :class:`Metrics` per server process, on its own registry (tests can run
several servers in one process without their metrics mixing). Labels are closed
sets (entity names, error codes, stage names, transports), so cardinality stays
bounded whatever clients send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import memory

# Seconds: a VAD window is ~0.1 ms, a detection ~5-20 ms, a Whisper batch 50-500 ms.
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    """The server's metrics; call sites pass numbers, never text."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.sessions_started = Counter(
            "streamserver_sessions_started", "Sessions started", ["transport"], registry=r)
        self.sessions_ended = Counter(
            "streamserver_sessions_ended", "Sessions ended", ["transport"], registry=r)
        self.session_errors = Counter(
            "streamserver_session_errors", "Sessions ended by an error, by code", ["code"],
            registry=r)
        self.sessions_active = Gauge(
            "streamserver_sessions_active", "Sessions running now", registry=r)
        self.audio_in = Counter(
            "streamserver_audio_in_seconds", "Audio received", registry=r)
        self.audio_out = Counter(
            "streamserver_audio_out_seconds", "Audio released", registry=r)
        self.speech = Counter(
            "streamserver_speech_seconds", "Speech (VAD) released", registry=r)
        self.masked = Counter(
            "streamserver_masked_seconds", "Audio masked (beep or silence)", registry=r)
        self.deadline_masked = Counter(
            "streamserver_deadline_masked_seconds",
            "Speech masked because its decision missed the release deadline", registry=r)
        self.deadline_held_digits = Counter(
            "streamserver_deadline_held_digits_seconds",
            "Of that, digits still being said (heard, not yet committed): held on purpose",
            registry=r)
        self.unexplained_speech = Counter(
            "streamserver_unexplained_speech_seconds",
            "Speech the VAD heard and no recognised word covers", registry=r)
        self.unexplained_masked = Counter(
            "streamserver_unexplained_masked_seconds",
            "Such speech masked (in an armed answer, or with mask_unexplained)", registry=r)
        self.requests_heard = Counter(
            "streamserver_requests_heard",
            "Questions for a value that armed the next answer (dialogue state)", registry=r)
        self.redactions = Counter(
            "streamserver_redactions", "Redacted spans, by entity", ["entity"], registry=r)
        self.stage_seconds = Histogram(
            "streamserver_stage_seconds", "Time per call of a pipeline stage",
            ["stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.asr_batch_size = Histogram(
            "streamserver_asr_batch_size", "Sessions' buffers per Whisper call",
            buckets=(1, 2, 3, 4, 6, 8), registry=r)
        # How late the event loop wakes a 10 ms timer: the floor of release jitter
        # (every session's audio leaves from this loop).
        self.loop_lag = Histogram(
            "streamserver_event_loop_lag_seconds", "Event loop wake-up lateness",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), registry=r)
        self.asr_queue = Gauge(
            "streamserver_asr_queue_depth", "Whisper jobs waiting for a worker", registry=r)
        self.load_pressure = Gauge(
            "streamserver_load_pressure",
            "Highest undecided audio / delay of the running sessions, last 5 s "
            "(1.0: deadlines missed; admission refuses newcomers above 0.6)", registry=r)
        self.admissions_refused = Counter(
            "streamserver_admissions_refused",
            "New sessions refused for lack of measured headroom (server_busy)", registry=r)
        self.listeners = Gauge(
            "streamserver_listeners", "Fan-out listeners connected", registry=r)
        self.recordings = Counter(
            "streamserver_recordings", "Recorded sessions stored, by status (ready, failed)",
            ["status"], registry=r)
        self.memory_trims = Counter(
            "streamserver_memory_trims", "Freed heap handed back to the OS (malloc_trim)",
            registry=r)
        self.memory_trimmed = Counter(
            "streamserver_memory_trimmed_bytes", "RSS released by those trims", registry=r)
        # process_resident_memory_bytes, CPU seconds, open fds, threads (Linux /proc).
        ProcessCollector(registry=r)
        r.register(_HeapCollector())

    def track_active(self, count: Callable[[], int]) -> None:
        self.sessions_active.set_function(lambda: float(count()))

    def track_asr_queue(self, depth: Callable[[], int]) -> None:
        self.asr_queue.set_function(lambda: float(depth()))

    def memory_trimmed_now(self, released_bytes: int, seconds: float) -> None:
        self.memory_trims.inc()
        self.memory_trimmed.inc(released_bytes)
        self.observe_stage("memory_trim", seconds)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    async def watch_loop_lag(self, period_s: float = 0.01) -> None:
        """Run forever: observe how late each ``period_s`` sleep wakes up."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period_s
            await asyncio.sleep(period_s)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    def session_ended(self, transport: str, stats: Mapping[str, float | int],
                      error_code: str | None = None) -> None:
        self.sessions_ended.labels(transport).inc()
        if error_code:
            self.session_errors.labels(error_code).inc()
        self.audio_in.inc(float(stats.get("audio_in_ms", 0)) / 1000)
        self.audio_out.inc(float(stats.get("audio_out_ms", 0)) / 1000)
        self.speech.inc(float(stats.get("speech_ms", 0)) / 1000)
        self.masked.inc(float(stats.get("masked_ms", 0)) / 1000)
        self.deadline_masked.inc(float(stats.get("deadline_masked_ms", 0)) / 1000)
        self.deadline_held_digits.inc(float(stats.get("deadline_held_digits_ms", 0)) / 1000)
        self.unexplained_speech.inc(float(stats.get("unexplained_speech_ms", 0)) / 1000)
        self.unexplained_masked.inc(float(stats.get("unexplained_masked_ms", 0)) / 1000)
        self.requests_heard.inc(float(stats.get("requests_heard", 0)))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _HeapCollector(Collector):
    """``streamserver_heap_bytes{kind}`` from glibc's mallinfo2, read at scrape time.

    With RSS beside it, an operator can tell a leak (``in_use`` rising) from
    fragmentation (``free`` rising) from memory outside malloc (neither).
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = memory.heap_stats()
        if not stats:
            return
        family = GaugeMetricFamily(
            "streamserver_heap_bytes", "malloc heap by kind (in_use, free, mmapped)",
            labels=["kind"])
        for kind, value in stats.items():
            family.add_metric([kind], float(value))
        yield family
