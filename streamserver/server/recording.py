"""Session artefacts: the redacted audio and final transcript, kept encrypted for a while.

Off by default; a session asks with ``record=true`` (or the server records every
session). What is recorded is what the client receives — the redacted output —
never the input. The audio goes to the store in 1 MiB parts while the session
runs, so memory stays bounded however long the call; the transcript (redacted
``transcript.final`` and ``redaction`` events) and a metadata record follow when
it ends, and every artefact's expiry is then set to end + retention.

All store writes of one session go through one writer task, in order; the live
path only appends to a buffer and never waits on the disk. If the disk falls
behind by more than :data:`MAX_QUEUED_PARTS`, the recording is abandoned (its
parts deleted, status ``failed``) rather than slowing the call or growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import shutil
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, ServerConfig, SessionConfig
from ..core.session import AudioOut, Event
from ..metrics import Metrics
from ..protocol import StorageQuota, StorageUnavailable
from ..storage import (
    KIND_METADATA,
    KIND_TRANSCRIPT,
    ArtefactStore,
    FileBlobs,
    KeyRing,
    KeyRingError,
    LocalStore,
    S3Blobs,
    S3Store,
    SplitStore,
    StoreError,
    sweep_forever,
)
from ..storage.crypto import ENV_VAR as KEYS_ENV
from ..storage.metadata import EVENT_READY, Notice
from ..storage.split import TOMBSTONE_S
from ..webhooks import (
    DeliveryResult,
    DestinationPolicy,
    Outcome,
    WebhookDestinationError,
    WebhookSender,
)

log = logging.getLogger("streamserver.recording")

WEBHOOK_SECRET_ENV = "STREAMSERVER_WEBHOOK_SECRET"

AUDIO_PART_BYTES = 1 << 20
MAX_QUEUED_PARTS = 8  # 8 MiB of redacted audio waiting for the disk, at most
MAX_AUDIO_PARTS = 100_000  # kind names hold 5 digits: 100 GB per session
# How often the metadata store is probed (a database down refuses recorded
# sessions: storage_unavailable) and this node's live recordings renewed there.
HEALTH_INTERVAL_S = 5.0
# A recording not renewed for this long reads "interrupted" on every node.
LIVE_LEASE_S = 30.0
SETTLE_GRACE_S = 5.0  # on close: for the last notices' outcomes to reach the store

# Metadata "status": recording (live, in this process) -> ready | failed.
# A record left "recording" by a process that died is reported "interrupted".
STATUS_RECORDING = "recording"
STATUS_READY = "ready"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"

_WAV_FORMAT = {"pcm_s16le": (1, 16), "alaw": (6, 8), "mulaw": (7, 8)}


def audio_part_kind(index: int) -> str:
    return f"audio_{index:05d}"


def wav_header(encoding: str, sample_rate: int, channels: int, data_bytes: int) -> bytes:
    """A RIFF/WAVE header for ``data_bytes`` of audio in a protocol v1 encoding.

    PCM gets the 16-byte ``fmt`` chunk; A-law and mu-law (WAVE_FORMAT_ALAW/MULAW)
    the 18-byte one plus a ``fact`` chunk, as the WAVE spec asks of non-PCM data.
    An odd data size needs one pad byte after the data (the caller appends it).
    """
    tag, bits = _WAV_FORMAT[encoding]
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block, block, bits)
    chunks = b""
    if tag != 1:
        fmt += struct.pack("<H", 0)
        chunks = b"fact" + struct.pack("<II", 4, data_bytes // block)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + chunks
    riff_size = len(body) + 8 + data_bytes + (data_bytes & 1)
    return b"RIFF" + struct.pack("<I", riff_size) + body + b"data" + struct.pack("<I", data_bytes)


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """What a session asked for, checked against what the server allows."""

    retention_s: int
    webhook_url: str


def plan_recording(scfg: SessionConfig, cfg: ServerConfig, store_ready: bool,
                   webhooks_ready: bool) -> RecordingPlan | None:
    """None when the session is not recorded; raises ConfigError (safe to show)."""
    record = cfg.record_sessions if scfg.record is None else scfg.record
    if not record:
        if scfg.webhook_url or scfg.retention_s:
            raise ConfigError("webhook_url and retention_s need record=true")
        return None
    if not store_ready:
        raise ConfigError("recording is not enabled on this server (no data keys configured)")
    if scfg.retention_s > cfg.retention_s:
        raise ConfigError(f"retention_s may not exceed the server's {cfg.retention_s} s")
    if scfg.webhook_url and not webhooks_ready:
        raise ConfigError("webhook_url needs the server's webhook secret to be configured")
    if scfg.webhook_url:
        try:  # an address or localhost is refused now; names on every delivery
            DestinationPolicy(cfg.webhook_allowed_hosts).check_literal(scfg.webhook_url)
        except WebhookDestinationError as exc:
            raise ConfigError(str(exc)) from None
    return RecordingPlan(scfg.retention_s or cfg.retention_s, scfg.webhook_url)


class Recorder:
    """Records one session's redacted output. Use from the session's event loop.

    :meth:`feed` is called with every output (cheap, never waits); then exactly
    one of :meth:`finish` (the session ended) or :meth:`cancel` (deleted while live).
    """

    def __init__(self, store: ArtefactStore, session_id: str, owner: str,
                 scfg: SessionConfig, plan: RecordingPlan,
                 clock: Callable[[], float] = time.time, max_bytes: int = 0,
                 room: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.max_bytes = max_bytes  # this session's audio (0: no cap)
        self.room = room  # False once a quota or the disk floor is reached
        self.session_id = session_id
        self.owner = owner
        self.scfg = scfg
        self.plan = plan
        self._clock = clock
        self.created = clock()
        self.status = STATUS_RECORDING
        self.audio_bytes = 0
        self.parts = 0
        self._buffer = bytearray()
        self._segments: list[dict[str, Any]] = []
        self._redactions: list[dict[str, Any]] = []
        self._ops: deque[Callable[[], Any] | None] = deque()
        self._parts_queued = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._done = False
        self._cancelled = False
        self.metadata: dict[str, Any] = {}

    # -- live path -------------------------------------------------------------------
    def start(self) -> None:
        """Write the ``recording`` record first, so the session is visible at once
        (through any node sharing the metadata store: live until renewed)."""
        self._writer = asyncio.create_task(self._write_all(), name=f"recorder-{self.session_id}")
        put_record = self._put_metadata_op(self._metadata(STATUS_RECORDING))

        def first() -> None:
            put_record()
            if isinstance(self.store, SplitStore):
                self.store.keep_live([self.session_id], LIVE_LEASE_S)

        self._enqueue(first)

    def feed(self, out: AudioOut | Event) -> None:
        if self._done or self.status == STATUS_FAILED:
            return
        if isinstance(out, AudioOut):
            self._buffer += out.data
            self.audio_bytes += len(out.data)
            while len(self._buffer) >= AUDIO_PART_BYTES:
                self._queue_part(bytes(self._buffer[:AUDIO_PART_BYTES]))
                del self._buffer[:AUDIO_PART_BYTES]
            return
        kind = out.payload.get("type")
        if kind == "transcript.final":
            self._segments.append(out.payload)
        elif kind == "redaction":
            self._redactions.append(out.payload)

    def _queue_part(self, data: bytes) -> None:
        if self._parts_queued >= MAX_QUEUED_PARTS or self.parts >= MAX_AUDIO_PARTS:
            self._fail("storage too slow" if self.parts < MAX_AUDIO_PARTS else "too long")
            return
        if (self.max_bytes and self.audio_bytes > self.max_bytes) or not self.room():
            self._fail("storage_quota")  # the session goes on; its recording stops
            return
        kind = audio_part_kind(self.parts)
        self.parts += 1
        self._parts_queued += 1
        expires = self.created + self.plan.retention_s

        def put() -> None:
            try:
                self.store.put(self.session_id, kind, data, expires, self.owner)
            finally:
                self._parts_queued -= 1

        self._enqueue(put)

    def _fail(self, reason: str) -> None:
        log.warning("recording failed", extra={"session": self.session_id, "code": reason})
        self.status = STATUS_FAILED
        self._buffer.clear()
        self._segments.clear()
        self._redactions.clear()

    # -- end -------------------------------------------------------------------------
    async def finish(self, stats: dict[str, Any], complete: bool,
                     error_code: str | None = None) -> dict[str, Any]:
        """Store the rest and the metadata; returns the metadata (status ready/failed)."""
        if self._done:
            return self.metadata
        self._done = True
        ended = self._clock()
        if self.status != STATUS_FAILED and self._buffer:
            self._queue_part(bytes(self._buffer))
            self._buffer.clear()
        if self.status != STATUS_FAILED:
            transcript = {"session_id": self.session_id, "segments": self._segments,
                          "redactions": self._redactions}
            body = json.dumps(transcript, separators=(",", ":")).encode()
            self._enqueue(lambda: self.store.put(self.session_id, KIND_TRANSCRIPT, body,
                                                 ended + self.plan.retention_s, self.owner))
        meta_final = {"ended": ended, "complete": complete, "error_code": error_code,
                      "stats": stats}
        expires = ended + self.plan.retention_s

        def seal_up() -> None:
            if self._cancelled:
                return
            if self.status == STATUS_FAILED:  # keep only the record that says so
                self.store.delete(self.session_id)
            meta = self._metadata(self.status if self.status == STATUS_FAILED else STATUS_READY)
            meta.update(meta_final, expires=expires)
            self.store.put(self.session_id, KIND_METADATA, json.dumps(meta).encode(),
                           expires, self.owner)
            self.store.set_expiry(self.session_id, expires)
            self.metadata = meta

        self._enqueue(seal_up)
        await self._close_writer()
        if not self.metadata and not self._cancelled:  # the store failed: say so if it can
            self.status = STATUS_FAILED
            with contextlib.suppress(Exception):
                await asyncio.to_thread(seal_up)
        log.info("recording stored" if self.status != STATUS_FAILED else "recording abandoned",
                 extra={"session": self.session_id,
                        "stats": {"audio_bytes": self.audio_bytes, "parts": self.parts,
                                  "segments": len(self._segments)}})
        return self.metadata

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def cancel(self) -> None:
        """Stop writing at once (the session is being deleted); in-flight writes finish."""
        self._done = self._cancelled = True
        self.status = STATUS_FAILED
        self._ops.clear()
        self._buffer.clear()
        self._segments.clear()
        await self._close_writer()

    # -- the writer ------------------------------------------------------------------
    def _enqueue(self, op: Callable[[], Any] | None) -> None:
        self._ops.append(op)
        self._wake.set()

    async def _close_writer(self) -> None:
        self._enqueue(None)
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        while True:
            while not self._ops:
                self._wake.clear()
                await self._wake.wait()
            op = self._ops.popleft()
            if op is None:
                return
            try:
                await asyncio.to_thread(op)
            except (StoreError, OSError) as exc:
                if self.status != STATUS_FAILED:
                    self._fail(type(exc).__name__)
            except Exception:
                log.exception("recording write failed", extra={"session": self.session_id})
                if self.status != STATUS_FAILED:
                    self._fail("internal_error")

    def _put_metadata_op(self, meta: dict[str, Any]) -> Callable[[], None]:
        body = json.dumps(meta).encode()
        expires = self.created + self.plan.retention_s
        return lambda: self.store.put(self.session_id, KIND_METADATA, body, expires, self.owner)

    def _metadata(self, status: str) -> dict[str, Any]:
        s = self.scfg
        return {
            "session_id": self.session_id, "status": status, "created": self.created,
            "expires": self.created + self.plan.retention_s, "retention_s": self.plan.retention_s,
            "audio": {"encoding": s.encoding, "sample_rate": s.sample_rate,
                      "channels": s.channels, "bytes": self.audio_bytes, "parts": self.parts},
            "policy": {"entities": list(s.entities), "delay_ms": s.delay_ms,
                       "audio_redaction": s.audio_redaction},
            "webhook": bool(self.plan.webhook_url),
        }


class Archive:
    """The server's artefact side: the store, the live recorders, the webhook sender."""

    def __init__(self, cfg: ServerConfig, store: ArtefactStore | None,
                 sender: WebhookSender | None) -> None:
        self.cfg = cfg
        self.store = store
        self.sender = sender
        self.recorders: dict[str, Recorder] = {}
        self.metrics: Metrics | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._usage: dict[str, int] = {}  # bytes stored per owner, as of the last sweep
        self._disk_free: int | None = None
        # Stores with metadata rows keep webhook notices (once per event, across
        # nodes) and live recordings; S3Store (one node) sends webhooks directly.
        self.notices = store if isinstance(store, SplitStore) else None
        self.storage_ok = True  # the metadata store answered its last probe
        self._tender: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """In the running loop: the webhook workers and the sweeper (which purges at
        once what expired while the server was down, then every interval)."""
        self._loop = asyncio.get_running_loop()
        if self.sender is not None:
            self.sender.start()
        if self.store is not None:
            self._sweeper = asyncio.create_task(
                sweep_forever(self, self.cfg.sweep_interval_s,
                              after=self._measure_usage), name="sweeper")
        if self.notices is not None:
            self._tender = asyncio.create_task(self._tend_forever(), name="storage-health")

    def plan(self, scfg: SessionConfig, owner: str | None = None) -> RecordingPlan | None:
        """What is recorded; ConfigError for a bad ask, StorageQuota when ``owner``
        (or the store) is past a quota, StorageUnavailable while its database is down."""
        plan = plan_recording(scfg, self.cfg, self.store is not None, self.sender is not None)
        if plan is not None and not self.storage_ok:
            # Refused up front, not accepted and then failed: the client can retry
            # elsewhere or go on without recording, knowing which it chose.
            raise StorageUnavailable("recording storage is unavailable; try later, "
                                     "or record=false")
        if plan is not None and owner is not None and not self.room(owner):
            raise StorageQuota("recording storage is full for this key or this server; "
                               "try later, or record=false")
        return plan

    def describe(self) -> dict[str, Any]:
        """The store's backends and health, for /readyz (no credentials)."""
        body: dict[str, Any] = {"recording": self.store is not None, "ok": self.storage_ok}
        describe = getattr(self.store, "describe", None)
        if describe is not None:
            body.update(describe())
        return body

    # -- sweeping, health, webhook notices ------------------------------------------
    def purge_expired(self, now: float) -> int:
        """One round of the sweeper (in its thread): purge, and hand the webhook
        notices this node now holds to the sender."""
        assert self.store is not None
        if self.notices is None:
            return self.store.purge_expired(now)
        purged, notices = self.notices.sweep(now, claim_notices=self.sender is not None)
        if notices and self._loop is not None:
            self._loop.call_soon_threadsafe(self._send_notices, notices)
        return purged

    def _send_notices(self, notices: list[Notice]) -> None:
        """Queue each notice's webhook under its event id; its outcome goes back to
        the store (given back, not settled, if it cannot be queued now)."""
        assert self.notices is not None
        for notice in notices:
            if self.sender is None:
                self._settle(notice.event_id, None)
                continue
            try:
                url, owner = self.notices.open_notice(notice)
                queued = self.sender.submit(
                    url, self._webhook_payload(notice), tenant=owner,
                    delivery_id=notice.event_id,
                    on_result=functools.partial(self._delivered, notice.event_id))
            except Exception as exc:  # a key rotated away, a URL no longer valid
                log.warning("webhook notice dropped: %s", type(exc).__name__,
                            extra={"session": notice.session_id})
                self._settle(notice.event_id, Outcome.REJECTED.value)
                continue
            if not queued:
                self._settle(notice.event_id, None)

    def _webhook_payload(self, notice: Notice) -> dict[str, Any]:
        payload = {"status": notice.event, "session_id": notice.session_id}
        if notice.event == EVENT_READY:
            # The link from public_url only: never from a client's Host header.
            payload["redacted_audio_url"] = audio_url(self.cfg.public_url, notice.session_id)
        return payload

    def _delivered(self, event_id: str, result: DeliveryResult) -> None:
        # Abandoned (shutdown): back to the store, for this or another node to send.
        self._settle(event_id, None if result.outcome is Outcome.ABANDONED
                     else result.outcome.value)

    def _settle(self, event_id: str, outcome: str | None) -> None:
        assert self.notices is not None
        task = asyncio.ensure_future(asyncio.to_thread(self.notices.settle, event_id, outcome))
        self._settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Unsettled, its lease runs out and it is sent again (same delivery id).
            log.warning("webhook notice not settled: %s", type(exc).__name__)

    async def _tend_forever(self) -> None:
        while True:
            await self.tend()
            await asyncio.sleep(HEALTH_INTERVAL_S)

    async def tend(self) -> None:
        """Probe the metadata store, renew this node's live recordings there, and
        stop those whose session was deleted through another node."""
        assert self.notices is not None
        try:
            await asyncio.to_thread(self.notices.check)
            deleted = await asyncio.to_thread(self.notices.keep_live, list(self.recorders),
                                              LIVE_LEASE_S)
        except Exception as exc:
            if self.storage_ok:
                log.warning("recording storage unavailable (%s): recorded sessions are "
                            "refused until it answers", type(exc).__name__)
            self.storage_ok = False
            return
        if not self.storage_ok:
            log.info("recording storage available again")
        self.storage_ok = True
        for session_id in deleted:
            recorder = self.recorders.pop(session_id, None)
            if recorder is not None:
                log.info("recording stopped: deleted through another node",
                         extra={"session": session_id})
                await recorder.cancel()

    def _measure_usage(self) -> None:
        """After each sweep (in its thread): bytes per owner and the disk's free space."""
        usage = getattr(self.store, "usage", None)
        if usage is not None and (self.cfg.recording_quota_bytes_per_key
                                  or self.cfg.recording_quota_bytes):
            self._usage = usage(time.time())
        directory = getattr(self.store, "directory", None)
        if directory is not None and self.cfg.min_free_disk_bytes:
            self._disk_free = shutil.disk_usage(directory).free

    def room(self, owner: str | None = None) -> bool:
        """Whether more may be recorded: by anyone (the disk floor, the server's
        quota), and with ``owner`` also by that key (checked when a recording starts,
        so a key may pass its quota by one session). Stored bytes as of the last
        sweep plus what live recordings wrote since."""
        cfg = self.cfg
        live = sum(r.audio_bytes for r in self.recorders.values())
        if self._disk_free is not None and self._disk_free - live < cfg.min_free_disk_bytes:
            return False
        if cfg.recording_quota_bytes and (
                sum(self._usage.values()) + live >= cfg.recording_quota_bytes):
            return False
        if owner is None or not cfg.recording_quota_bytes_per_key:
            return True
        mine = sum(r.audio_bytes for r in self.recorders.values() if r.owner == owner)
        return self._usage.get(owner, 0) + mine < cfg.recording_quota_bytes_per_key

    def open(self, session_id: str, owner: str, scfg: SessionConfig, plan: RecordingPlan,
             base_url: str) -> SessionRecording:
        """Start recording a session; ``base_url`` is where its client reached us."""
        assert self.store is not None
        recorder = Recorder(self.store, session_id, owner, scfg, plan,
                            max_bytes=self.cfg.max_recording_bytes_per_session,
                            room=self.room)  # a key may pass its quota by one session
        self.recorders[session_id] = recorder
        recorder.start()
        return SessionRecording(self, recorder, self.cfg.public_url or base_url)

    async def _finish(self, recorder: Recorder, stats: dict[str, Any], complete: bool,
                      error_code: str | None, base_url: str) -> dict[str, Any] | None:
        """End a recording and announce it; returns the ``recording`` event for the
        client, or None if the session was deleted while it ran."""
        if self.recorders.get(recorder.session_id) is not recorder:
            return None
        try:
            meta = await recorder.finish(stats, complete, error_code)
        finally:
            self.recorders.pop(recorder.session_id, None)
        if recorder.cancelled:  # deleted while it was being stored
            return None
        event: dict[str, Any] = {"type": "recording", "session_id": recorder.session_id,
                                 "status": meta.get("status", STATUS_FAILED)}
        if self.metrics is not None:
            self.metrics.recordings.labels(event["status"]).inc()
        if event["status"] == STATUS_READY:
            url = audio_url(base_url, recorder.session_id)
            event.update(redacted_audio_url=url, expires=meta["expires"])
            if recorder.plan.webhook_url and self.sender is not None:
                await self._announce_ready(recorder)
        return event

    async def _announce_ready(self, recorder: Recorder) -> None:
        sid = recorder.session_id
        if self.notices is not None:
            try:  # a row first: once per event, and sent again if this node dies
                notice = await asyncio.to_thread(self.notices.announce, sid, EVENT_READY,
                                                 recorder.plan.webhook_url)
            except StoreError as exc:
                log.warning("webhook notice not recorded (%s): sent without one",
                            type(exc).__name__, extra={"session": sid})
            else:
                if notice is not None:
                    self._send_notices([notice])
                return
        assert self.sender is not None
        self.sender.submit(recorder.plan.webhook_url, self._webhook_payload(
            Notice("", sid, EVENT_READY, b"", b"")), tenant=recorder.owner)

    async def delete(self, session_id: str) -> bool:
        assert self.store is not None
        recorder = self.recorders.pop(session_id, None)
        if recorder is not None:
            await recorder.cancel()
        if self.notices is not None:  # refuses writes of a recording on another node
            return await asyncio.to_thread(self.notices.delete, session_id, True)
        return await asyncio.to_thread(self.store.delete, session_id)

    async def metadata(self, session_id: str, owner: str) -> dict[str, Any] | None:
        """The session's metadata if it exists, is not expired and belongs to ``owner``."""
        assert self.store is not None
        record = await asyncio.to_thread(self.store.record, session_id)
        if record is None or record.status != "active" or not _same(record.owner, owner):
            return None
        blob = await asyncio.to_thread(self.store.get, session_id, KIND_METADATA)
        if blob is None:
            return None
        meta: dict[str, Any] = json.loads(blob)
        if (meta["status"] == STATUS_RECORDING and session_id not in self.recorders
                and record.live_until <= time.time()):  # not renewed by any node
            meta["status"] = STATUS_INTERRUPTED
        return meta

    async def audio(self, session_id: str, meta: dict[str, Any]) -> AsyncIterator[bytes]:
        """The WAV file: header, then the parts one at a time (bounded memory)."""
        assert self.store is not None
        fmt = meta["audio"]
        size = fmt["bytes"]
        yield wav_header(fmt["encoding"], fmt["sample_rate"], fmt["channels"], size)
        for index in range(fmt["parts"]):
            part = await asyncio.to_thread(self.store.get, session_id, audio_part_kind(index))
            if part is None:  # deleted or expired mid-download: stop short
                return
            yield part
        if size & 1:
            yield b"\0"

    async def transcript(self, session_id: str) -> bytes | None:
        assert self.store is not None
        return await asyncio.to_thread(self.store.get, session_id, KIND_TRANSCRIPT)

    async def close(self) -> None:
        """After the sessions ended: last webhooks get their grace, then the store closes."""
        for task in (self._sweeper, self._tender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.sender is not None:
            await self.sender.close()
        if self._settling:  # outcomes of the last deliveries (abandoned: given back)
            await asyncio.wait(set(self._settling), timeout=SETTLE_GRACE_S)
        close = getattr(self.store, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


class SessionRecording:
    """A transport's handle on its session's recording (WebSocket and WebRTC alike)."""

    def __init__(self, archive: Archive, recorder: Recorder, base_url: str) -> None:
        self.archive = archive
        self.recorder = recorder
        self.base_url = base_url
        self._ended = False

    async def output(self, out: AudioOut | Event) -> dict[str, Any] | None:
        """Record one output. At ``session.end`` the rest is stored first and the
        ``recording`` event to send before it is returned (None if deleted)."""
        if isinstance(out, Event) and out.payload.get("type") == "session.end":
            return await self.end(out.payload.get("stats") or {}, complete=True)
        self.recorder.feed(out)
        return None

    async def end(self, stats: dict[str, Any], complete: bool,
                  error_code: str | None = None) -> dict[str, Any] | None:
        """Store what was recorded; once (later calls do nothing)."""
        if self._ended:
            return None
        self._ended = True
        return await self.archive._finish(self.recorder, stats, complete, error_code,
                                          self.base_url)


def audio_url(base: str, session_id: str) -> str:
    return f"{base.rstrip('/')}/v1/sessions/{session_id}/redacted-audio"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def open_archive(cfg: ServerConfig, environ: Mapping[str, str] | None = None) -> Archive:
    """The store and webhook sender the config asks for (blocking: run in a thread).

    Recording needs data keys: without them the server runs with no store and a
    session asking for ``record=true`` is refused. Raises ConfigError.
    """
    env = os.environ if environ is None else environ
    keyring: KeyRing | None = None
    try:
        if cfg.data_key_file:
            keyring = KeyRing.from_file(cfg.data_key_file)
        elif env.get(KEYS_ENV, "").strip():
            keyring = KeyRing.from_env(env)
    except KeyRingError as exc:
        raise ConfigError(str(exc)) from None
    if keyring is None:
        if cfg.record_sessions:
            raise ConfigError(f"record_sessions needs data keys ({KEYS_ENV} or data_key_file)")
        if cfg.database_url:
            raise ConfigError(f"database_url holds recording metadata: recording needs data "
                              f"keys ({KEYS_ENV} or data_key_file)")
        return Archive(cfg, None, None)
    store = _open_store(cfg, keyring)
    secrets = webhook_secrets(cfg, env)
    if secrets and not cfg.public_url:
        raise ConfigError("webhooks need public_url (--public-url): the link a webhook "
                          "carries must not come from a client's Host header")
    policy = DestinationPolicy(cfg.webhook_allowed_hosts)
    sender = WebhookSender(secrets, policy=policy) if secrets else None
    archive = Archive(cfg, store, sender)
    if archive.notices is not None:
        try:  # reach the database (and migrate it) now; if it is down, start anyway
            archive.notices.check()
        except StoreError as exc:
            archive.storage_ok = False  # probed again every HEALTH_INTERVAL_S
            log.warning("recording storage unavailable at start; recorded sessions are "
                        "refused until it answers: %s", exc)
    describe = archive.describe()
    log.info("artefact store open", extra={"stats": {
        "key_ids": len(keyring.key_ids), "retention_s": cfg.retention_s,
        "metadata": describe.get("metadata", {}).get("backend", "s3"),
        "blobs": describe.get("blobs", "s3"), "ok": archive.storage_ok}})
    return archive


def _open_store(cfg: ServerConfig, keyring: KeyRing) -> ArtefactStore:
    if cfg.database_url:
        return _open_shared_store(cfg, keyring)
    if not cfg.storage_url:
        try:
            return LocalStore(cfg.data_dir, keyring)
        except StoreError as exc:
            raise ConfigError(f"data_dir: {exc}") from None
    bucket, client, prefix = _s3(cfg)
    return S3Store(bucket, client, keyring, prefix=prefix)


def _open_shared_store(cfg: ServerConfig, keyring: KeyRing) -> SplitStore:
    """Metadata in PostgreSQL; blobs in the bucket (a cluster) or under data_dir."""
    try:
        from ..storage.postgres import PostgresMetadata
    except ImportError:
        raise ConfigError("a database_url needs psycopg and psycopg-pool (pip install "
                          "'streamserver[cluster]')") from None
    if cfg.storage_url:
        bucket, client, prefix = _s3(cfg)
        blobs: FileBlobs | S3Blobs = S3Blobs(bucket, client, prefix)
    else:
        try:
            blobs = FileBlobs(Path(cfg.data_dir) / "blobs")
            os.chmod(cfg.data_dir, 0o700)
        except (StoreError, OSError) as exc:
            raise ConfigError(f"data_dir: cannot use it ({type(exc).__name__})") from None
    meta = PostgresMetadata(cfg.database_url, cfg.database_pool_size, cfg.database_timeout_s)
    # A deleted session's id refuses writes for longer than a recording can run.
    return SplitStore(meta, blobs, keyring,
                      tombstone_s=max(TOMBSTONE_S, cfg.max_session_s + 3600))


def _s3(cfg: ServerConfig) -> tuple[str, Any, str]:
    """(bucket, boto3 client, key prefix) of an s3:// storage_url."""
    try:
        import boto3
    except ImportError:
        raise ConfigError("an s3:// storage_url needs boto3 (pip install "
                          "'streamserver[s3]')") from None
    bucket, _, prefix = cfg.storage_url[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    # Endpoint, region and credentials come from the usual AWS_* variables
    # (AWS_ENDPOINT_URL for MinIO, Ceph, moto...).
    return bucket, boto3.client("s3"), f"{prefix}/" if prefix else ""


def webhook_secrets(cfg: ServerConfig, env: Mapping[str, str]) -> tuple[bytes, ...]:
    """The webhook secrets, current first (a file: one per line; the environment:
    comma separated). More than one during a rotation: every delivery is signed with
    each, so receivers can switch at their own pace."""
    if cfg.webhook_secret_file:
        try:
            raw = Path(cfg.webhook_secret_file).read_bytes()
        except OSError:
            raise ConfigError("cannot read the webhook secret file") from None
    else:
        raw = env.get(WEBHOOK_SECRET_ENV, "").encode()
    return tuple(s.strip() for s in raw.replace(b",", b"\n").splitlines() if s.strip())
