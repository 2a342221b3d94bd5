"""Per-session async driver: worker pool, deadlines, bounded queues.

:class:`SessionRunner` owns one :class:`~streamserver.core.session.Session` and
runs, on the event loop, three small tasks around it:

* the *worker* takes due jobs from the session and runs them in the shared
  bounded :class:`ModelPool` (model calls never run on the loop);
* the *clock* releases audio every tick (``pace=realtime``: wall-clock
  arrival + D; ``pace=asap``: after every decision);
* the *sender* moves outputs to the transport through a bounded queue; a
  client that stops reading fills it and is closed, the server never buffers
  without bound.

The transport (WebSocket today) only moves bytes: it calls :meth:`push_audio`,
:meth:`finish` and awaits :meth:`run`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .config import AsrConfig, ServerConfig
from .core.asr import AsrJob
from .core.session import AudioOut, Event, Job, Session
from .engines.bundle import Engines
from .metrics import Metrics
from .protocol import ProtocolError, TooFast

log = logging.getLogger(__name__)

MAX_TICK_S = 0.02  # realtime: longest sleep of the release clock
# Model threads run at this niceness: the event loop, which releases audio on
# time, then wins the cores whenever both want them (model work can wait a few
# milliseconds; a late release is jitter every client hears).
MODEL_THREAD_NICENESS = 10
# How often a thread holding the GIL (spaCy, feature extraction) hands it over,
# so the loop waits at most about this long for it (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.001


def lower_thread_priority(niceness: int = MODEL_THREAD_NICENESS) -> None:
    """Lower the calling thread's CPU priority (Linux per-thread nice; else no-op).

    Threads created afterwards by this thread (the model runtimes' own pools)
    inherit it. Lowering never needs privileges; raising it back would.
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except OSError:  # e.g. a sandbox without setpriority: only latency suffers
        log.warning("cannot lower model thread priority")


def name_native_thread(name: str) -> None:
    """Give the calling OS thread a name (Linux: ``/proc/<pid>/task/<tid>/comm``,
    15 bytes). Threads it creates afterwards (the model runtimes' pools) inherit
    it, so ``benchmarks/capacity.py`` can split the process's CPU time by part."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # only profiling loses: never fatal
        pass


def _model_thread() -> None:
    lower_thread_priority()
    name_native_thread("ss-asr-call")


def _detect_thread() -> None:
    lower_thread_priority()
    name_native_thread("ss-detect")


def load_engines(asr_cfg: AsrConfig, workers: int) -> Engines:
    """Load the models from a low-priority thread (see :func:`lower_thread_priority`).

    CTranslate2 and onnxruntime start their worker threads while loading; made
    from this thread, they inherit its priority. Blocks until loaded.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        lower_thread_priority()
        # CTranslate2 starts its worker threads here: they are named after this one.
        name_native_thread("ss-asr")
        try:
            box["engines"] = Engines.load(asr_cfg, workers)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="model-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["engines"]  # type: ignore[no-any-return]


class LoadGauge:
    """How close the running sessions come to missing their deadlines, measured.

    Every real-time session reports, as it releases audio, its *pressure*: the
    audio it has received but not yet decided, as a share of its delay D. At 1.0
    a sample reaches its release time undecided and is masked (fail closed). A
    session's own cadence keeps pressure near half even on an idle machine (audio
    waits for the next Whisper pass); past capacity it climbs towards 1.0.

    New sessions are admitted while the highest pressure of the last
    ``window_s`` stays under ``refuse_at``; and after an admission, until
    ``settle_s`` has passed, only while it stays under ``settle_at`` (a newcomer's
    cost shows only once it talks, so a burst of calls must not all get in on
    one good reading). Pure: the caller passes the time.
    """

    _BUCKET_S = 0.1  # one maximum per bucket keeps the window's memory fixed

    def __init__(self, window_s: float = 5.0, refuse_at: float = 0.6,
                 settle_s: float = 8.0, settle_at: float = 0.45) -> None:
        self.window_s = window_s
        self.refuse_at = refuse_at
        self.settle_s = settle_s
        self.settle_at = settle_at
        self._peaks: deque[tuple[int, float]] = deque()  # (bucket, max pressure)
        self._last_admitted = -1e18

    def observe(self, now: float, pressure: float) -> None:
        bucket = int(now / self._BUCKET_S)
        if self._peaks and self._peaks[-1][0] == bucket:
            if pressure > self._peaks[-1][1]:
                self._peaks[-1] = (bucket, pressure)
        else:
            self._peaks.append((bucket, pressure))
        self._forget(now)

    def pressure(self, now: float) -> float:
        """The highest pressure reported within the window (0.0: none reported)."""
        self._forget(now)
        return max((p for _, p in self._peaks), default=0.0)

    def room(self, now: float) -> bool:
        """Whether a new session may start now (always, with ``refuse_at`` 0: off)."""
        if self.refuse_at <= 0:
            return True
        pressure = self.pressure(now)
        if now - self._last_admitted < self.settle_s:
            return pressure < self.settle_at
        return pressure < self.refuse_at

    def admitted(self, now: float) -> None:
        self._last_admitted = now

    def _forget(self, now: float) -> None:
        oldest = int((now - self.window_s) / self._BUCKET_S)
        while self._peaks and self._peaks[0][0] < oldest:
            self._peaks.popleft()


# LoadGauge pressure at which the pool counts as loaded: an idle machine keeps
# sessions at 0.3-0.6, deadlines are missed at 1.0. Admission refuses from 0.6;
# with admission off (or sessions arriving in a burst) this still trims first.
LOADED_PRESSURE = 0.75

EVENT_BYTES = 256  # what an event counts for in the send buffer (most are smaller)


class SendQueueFull(ProtocolError):
    code = "slow_consumer"
    close_code = 1008


# A session that can take a Whisper pass now, if asked: returns the pass and the
# future its result goes to, or None (nothing new enough, or busy).
PassSource = Callable[[], "tuple[AsrJob, asyncio.Future[Any]] | None"]


class ModelPool:
    """Bounded worker pool shared by every session of the process.

    ASR jobs are batched. When a worker frees up it takes the jobs that are
    waiting and then *pulls* an early pass from every idle session that has
    ``min_step_ms`` of new audio (:meth:`add_pass_source`), so one model call
    serves many sessions at once: per buffer, a batch of eight cost about half
    of a call alone (the decoder, greedy and token by token, gains most).
    Each session has at most one job in flight, so the waiting list is bounded
    by the number of sessions.
    """

    def __init__(self, engines: Engines, workers: int, max_batch: int = 8,
                 metrics: Metrics | None = None, max_pressure: float = 0.6) -> None:
        self.engines = engines
        self.metrics = metrics
        self.workers = workers
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="model", initializer=_model_thread
        )
        # Detection (a few ms of spaCy) gets its own thread: queued behind a Whisper
        # batch it would wait ~150 ms, delaying every decision and final word.
        self._detect_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="detect", initializer=_detect_thread
        )
        self._asr_waiting: list[tuple[AsrJob, asyncio.Future[Any]]] = []
        self._asr_batches = 0
        self._sources: dict[int, PassSource] = {}  # idle sessions' early passes
        self._next_source = 0  # pulling starts here, round robin
        self.pulled_passes = 0
        self._loaded, self._loaded_at = False, -1.0
        self.busy = 0
        self.batch_sizes: list[int] = []  # recent batch sizes, for metrics/benchmarks
        # Admission from measured headroom (server/state.py); 0: never refuses.
        self.load = LoadGauge(refuse_at=max_pressure, settle_at=max_pressure - 0.15)
        if metrics is not None:
            metrics.load_pressure.set_function(lambda: self.load.pressure(time.monotonic()))
        if metrics is not None:  # the per-stage profile (docs/benchmarks.md)
            engines.asr.on_stage = metrics.observe_stage
            engines.detector.on_stage = metrics.observe_stage

    async def run(self, job: Job) -> Any:
        loop = asyncio.get_running_loop()
        if isinstance(job, AsrJob):
            fut: asyncio.Future[Any] = loop.create_future()
            self._asr_waiting.append((job, fut))
            self._start_batches(loop)
            return await fut
        self.busy += 1
        t0 = time.perf_counter()
        try:
            return await loop.run_in_executor(self._detect_executor, self.engines.run_job, job)
        finally:
            self.busy -= 1
            seconds = time.perf_counter() - t0
            log.debug("detect job", extra={"run_ms": round(1000 * seconds, 1)})
            if self.metrics is not None:
                self.metrics.observe_stage("pii", seconds)

    @property
    def loaded(self) -> bool:
        """Sessions come near their deadlines (LoadGauge pressure, read at most every
        0.1 s): long Whisper buffers are then trimmed (``AsrConfig.trim_buffer_ms``)."""
        now = time.monotonic()
        if now - self._loaded_at >= 0.1:
            self._loaded_at = now
            self._loaded = self.load.pressure(now) >= LOADED_PRESSURE
        return self._loaded

    @property
    def _asr_slots(self) -> int:
        return self.workers

    @property
    def asr_waiting(self) -> int:
        return len(self._asr_waiting)

    @property
    def has_room(self) -> bool:
        """An early ASR pass may start now: nothing waits and no batch runs (beside a
        running batch, early passes wait to ride along with the next due one).

        Not gated on load: holding early passes back under load (only below 0.6
        LoadGauge pressure) made it worse, 8 dense sessions 3.4 % -> 22 %
        deadline-masked: fewer passes over longer buffers decide later."""
        return not self._asr_waiting and self._asr_batches == 0

    def add_pass_source(self, key: int, source: PassSource) -> None:
        """Register a session that a freed worker may ask for an early pass."""
        self._sources[key] = source

    def remove_pass_source(self, key: int) -> None:
        self._sources.pop(key, None)

    def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._asr_batches < self._asr_slots:
            batch = [(j, f) for j, f in self._asr_waiting[: self.max_batch] if not f.done()]
            del self._asr_waiting[: self.max_batch]
            # Early passes ride along with a due one, or start one on an idle pool:
            # a lone early pass beside a running batch would only split cohorts.
            if len(batch) < self.max_batch and (batch or self._asr_batches == 0):
                batch += self._pull_passes(self.max_batch - len(batch))
            if not batch:
                if self._asr_waiting:
                    continue  # only cancelled jobs were first in line
                return
            self._asr_batches += 1
            loop.create_task(self._run_batch(batch))

    def _pull_passes(self, room: int) -> list[tuple[AsrJob, asyncio.Future[Any]]]:
        """Early passes from idle sessions, round robin so none waits behind the rest."""
        sources = list(self._sources.values())
        pulled: list[tuple[AsrJob, asyncio.Future[Any]]] = []
        n, first = len(sources), self._next_source
        for k in range(n):
            if len(pulled) >= room:
                break
            item = sources[(first + k) % n]()
            if item is not None:
                pulled.append(item)
                self._next_source = (first + k + 1) % n
        self.pulled_passes += len(pulled)
        return pulled

    async def _run_batch(self, batch: list[tuple[AsrJob, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        items = [(job.audio, job.prompt) for job, _ in batch]
        self.busy += 1
        self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self._executor, self.engines.asr.transcribe_batch, items
            )
            seconds = time.perf_counter() - t0
            log.debug("asr batch", extra={
                "batch": len(batch), "audio_s": round(sum(a.size for a, _ in items) / 16000, 2),
                "run_ms": round(1000 * seconds, 1),
            })
            if self.metrics is not None:
                self.metrics.observe_stage("asr", seconds)
                self.metrics.asr_batch_size.observe(len(batch))
        except Exception as exc:  # every session in the batch fails closed
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for (_, fut), words in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(words)
        finally:
            self.busy -= 1
            self._asr_batches -= 1
            self._start_batches(loop)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._detect_executor.shutdown(wait=False, cancel_futures=True)


class SessionRunner:
    """Drives one session; see the module docstring. Create, then ``await run()``."""

    def __init__(
        self,
        session: Session,
        pool: ModelPool,
        server_cfg: ServerConfig,
        send: Callable[[AudioOut | Event], Awaitable[None]],
    ) -> None:
        self.session = session
        self.pool = pool
        self.cfg = server_cfg
        self._send = send
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # asap backpressure: set while input may be read
        self._room.set()
        # The send buffer: outputs waiting for the client, bounded in messages (hard
        # cap) and in bytes (high/low water; see ServerConfig.send_high_water_bytes).
        self._outq: asyncio.Queue[AudioOut | Event | None] = asyncio.Queue(
            maxsize=server_cfg.send_queue_messages
        )
        self._queued_bytes = 0
        self._send_paused = False  # asap: input paused until the buffer drains
        self._models_failed = False  # a model call timed out: no more calls
        # The worker waits for new input; a freed model worker may then pull a pass.
        self._idle = False
        self._pulled: tuple[AsrJob, asyncio.Future[Any]] | None = None
        self._finished = asyncio.Event()
        self._started = time.monotonic()
        self._failure: BaseException | None = None
        self.realtime = session.cfg.pace == "realtime"
        self._max_pending = int(server_cfg.max_pending_audio_s * 16000)
        metrics = pool.metrics
        if metrics is not None:
            session.time_vad(lambda seconds: metrics.observe_stage("vad", seconds))

    # -- input from the transport -----------------------------------------------
    def push_audio(self, data: bytes, arrived: float | None = None) -> None:
        """Accept audio (raises ProtocolError on bad frames or a too-fast client).

        ``arrived``: when it reached the server (monotonic), if earlier than now —
        a bridge's frame waits a moment for the other leg; release is arrival + D."""
        now = time.monotonic() if arrived is None else arrived
        t0 = time.perf_counter()
        self.session.push_audio(data, now)  # decode, resample, VAD, keypad tones
        if self.pool.metrics is not None:
            self.pool.metrics.observe_stage("analysis", time.perf_counter() - t0)
        if self.realtime:
            # In real time, held audio stays near D; more means the client sends
            # faster than real time (or we stalled): refuse rather than grow.
            limit = self.session.cfg.delay_ms * 16 + self._max_pending
            if self.session.held_analysis_samples > limit:
                raise TooFast("audio arrives faster than real time; use pace=asap for files")
        elif self._asap_backlog_full() or self._send_paused:
            self._room.clear()
        self._wake.set()
        self._pump()

    def _asap_backlog_full(self) -> bool:
        """asap: more input accepted than decided, by over the pending bound."""
        s = self.session
        return s.pushed_analysis_samples - s.decided_until > self._max_pending

    async def wait_for_room(self) -> None:
        """asap pace: returns when the session can take more input."""
        await self._room.wait()

    def flush(self) -> None:
        self.session.flush()
        self._wake.set()

    def finish(self) -> None:
        """End of input: drain the delay line, then ``run()`` returns."""
        self.session.finish()
        self._room.set()
        self._wake.set()
        self._pump()  # nothing may be left to run: release the tail now

    def fail(self, exc: ProtocolError) -> None:
        """Report a client error on this session (then the transport closes it)."""
        self.session.error_event(exc.code, exc.message)
        self._pump()

    # -- tasks -------------------------------------------------------------------
    async def run(self) -> None:
        """Run until every accepted sample is released and ``session.end`` sent."""
        tasks = [asyncio.create_task(self._worker()), asyncio.create_task(self._sender())]
        if self.realtime:
            tasks.append(asyncio.create_task(self._clock()))
        # session.begin goes out now, in either pace: an asap client may wait for
        # it before sending audio (nothing else can be released yet).
        self._pump()
        self.pool.add_pass_source(id(self), self._pull_pass)
        try:
            await self._finished.wait()
            if self._failure is None:  # drain what is queued, then stop
                await self._outq.put(None)
                await tasks[1]
            # On a failure the sender may be stuck on a client that reads nothing:
            # it is cancelled, not waited for.
        finally:
            self.pool.remove_pass_source(id(self))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    def _pull_pass(self) -> tuple[AsrJob, asyncio.Future[Any]] | None:
        """A pass for a model worker that is free now (see ModelPool), or None."""
        if not self._idle or self._models_failed:
            return None
        job = self.session.next_job(eager=True, loaded=self.pool.loaded)
        if job is None:
            return None
        assert isinstance(job, AsrJob)  # a session's first job is always a pass
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pulled = (job, fut)
        self._idle = False
        self._wake.set()
        return self._pulled

    async def _worker(self) -> None:
        try:
            while True:
                job: Job | None
                pulled: asyncio.Future[Any] | None = None
                if self._pulled is not None:
                    (job, pulled), self._pulled = self._pulled, None
                else:
                    job = self.session.next_job(eager=self.pool.has_room,
                                                loaded=self.pool.loaded)
                if job is None:
                    if self._check_done():
                        return
                    self._wake.clear()
                    self._idle = True
                    await self._wake.wait()
                    self._idle = False
                    continue
                while job is not None:
                    if self._models_failed:  # fail closed at once: its audio is masked
                        self.session.fail_job(job)
                        job = None
                        break
                    try:
                        # Not wait_for: on 3.11 it can swallow a cancellation that
                        # races with the result, and the session would never end.
                        async with asyncio.timeout(self.cfg.model_timeout_s):
                            if pulled is not None:  # already in a batch
                                result = await pulled
                                pulled = None
                            else:
                                result = await self.pool.run(job)
                    except TimeoutError:
                        # A hung model thread cannot be stopped; stop sending this
                        # session's work to it, mask, say so, and carry on releasing.
                        log.error("model call timed out",
                                  extra={"session": self.session.session_id})
                        self._models_failed = True
                        self.session.fail_job(job)
                        self.session.error_event(
                            "model_timeout", "a model call timed out; the rest of the "
                            "session's speech is masked")
                        job = None
                    except Exception:
                        log.exception("model call failed",
                                      extra={"session": self.session.session_id})
                        self.session.fail_job(job)
                        self.session.error_event("model_error", "a model call failed; audio masked")
                        job = None
                    else:
                        t0 = time.perf_counter()
                        job = self.session.complete_job(job, result)
                        if self.pool.metrics is not None:
                            self.pool.metrics.observe_stage("core", time.perf_counter() - t0)
                self._pump()
        except Exception as exc:
            self._failure = exc
            self._finished.set()

    async def _clock(self) -> None:
        # Sleep until the next block is due (not a fixed tick): release jitter is
        # then the event loop's latency, not the tick's granularity.
        while True:
            due = self.session.next_due()
            now = time.monotonic()
            wait = MAX_TICK_S if due is None else min(MAX_TICK_S, max(0.0, due - now))
            await asyncio.sleep(wait)
            self._pump()
            if self._check_done():
                return

    def _pump(self) -> None:
        """Release what is due and queue the outputs for the sender."""
        now = time.monotonic()
        self.session.release(now if self.realtime else None)
        s = self.session
        delay = s.cfg.delay_ms * 16  # analysis samples
        # How near this session is to its deadline (admission); not in
        # its first 2 D, when nothing can be decided before the first pass anyway.
        if self.realtime and s.pushed_analysis_samples > 2 * delay:
            undecided = s.pushed_analysis_samples - s.decided_until
            self.pool.load.observe(now, undecided / max(1, delay))
        if not self.realtime and not self._asap_backlog_full() and not self._send_paused:
            self._room.set()
        if self._queue_outputs():
            self._check_done()

    def _queue_outputs(self) -> bool:
        """Move the session's outputs to the send buffer; False when the client has
        fallen too far behind (realtime: over the high water; any pace: hard cap)."""
        for out in self.session.take_outputs():
            try:
                self._outq.put_nowait(out)
            except asyncio.QueueFull:
                return self._slow_consumer()
            self._queued_bytes += _size(out)
        if self._over_high_water():
            if self.realtime:  # the release clock cannot wait for the client
                return self._slow_consumer()
            self._send_paused = True  # asap: read no more input until it drains
            self._room.clear()
        return True

    def _slow_consumer(self) -> bool:
        self._failure = SendQueueFull("client is not reading its output")
        self._finished.set()
        return False

    def _over_high_water(self) -> bool:
        return (self._queued_bytes > self.cfg.send_high_water_bytes
                or self._outq.qsize() > self._outq.maxsize * 3 // 4)

    def _under_low_water(self) -> bool:
        return (self._queued_bytes < self.cfg.send_low_water_bytes
                and self._outq.qsize() < self._outq.maxsize // 4)

    def _check_done(self) -> bool:
        s = self.session
        if s.done:
            if not self._finished.is_set():
                s.close()
                self._queue_outputs()
                self._finished.set()
            return True
        return False

    async def _sender(self) -> None:
        while True:
            out = await self._outq.get()
            if out is None:
                return
            self._queued_bytes -= _size(out)
            if self._send_paused and self._under_low_water():
                self._send_paused = False
                if not self._asap_backlog_full():
                    self._room.set()
            await self._send(out)


def _size(out: AudioOut | Event) -> int:
    """Bytes an output takes in the send buffer (events: a typical JSON size)."""
    return len(out.data) if isinstance(out, AudioOut) else EVENT_BYTES
