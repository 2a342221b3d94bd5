"""Everything a node writes to Redis, from one task, so that its order holds.

Each local session has an :class:`Outbox`. The session's relay puts its redacted
outputs there and never waits: the outbox is bounded, and when Redis is too slow
or down the waiting messages are dropped (counted) and the next one written says
so (``after_loss``), so remote listeners end with ``relay_unavailable`` instead
of hearing a gap. One :class:`Writer` task empties every outbox into its
session's stream (``XADD MAXLEN ~``), registers the session (a signed entry with
a TTL), refreshes every entry, stream and admission claim each heartbeat (which
also re-creates them after Redis lost its data) and removes what ended: the end
marker, then the entry — a reader never sees the entry gone before the end. One
pipeline per round trip, no MULTI: the order of one connection's commands is
all the readers need (a snapshot taken between the ``session.begin`` key and its
XADD skips the duplicate by its seq). A failed round is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.session import AudioOut, Event
from .codec import KIND_END, EntryCodec, RelayCodec, RelayMessage, SessionEntry
from .link import REDIS_ERRORS, Backoff, RedisLink

log = logging.getLogger("streamserver.cluster")

OUTBOX_MESSAGES = 256  # ~5 s of 20 ms audio waiting for Redis; beyond it, dropped
BATCH_MESSAGES = 512  # relay messages per round trip, over all sessions
END_GRACE_MS = 30_000  # a stream outlives its session this long: lagging readers get the end

# Admission claims (cluster-wide max_sessions_per_key): one sorted set per key, a
# member per running session, scored with its expiry (Redis's clock). Expired
# members (a node that died) are dropped before counting; limit 0 adds
# unconditionally (refresh, or a session admitted while Redis was away).
CLAIM_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""


@dataclass(eq=False)
class Outbox:
    """One local session's outputs on their way to its stream (a relay's Forward)."""

    writer: Writer
    session_id: str
    owner: str
    pending: deque[RelayMessage] = field(default_factory=deque)
    seq: int = 0
    lost: bool = False  # messages were dropped since the last one written
    begin: RelayMessage | None = None  # session.begin, re-written every heartbeat
    registered: bool = False  # the entry is in Redis (as far as we know)
    expiring: bool = False  # the stream has its TTL (set with its first message)
    ended_at: float | None = None  # monotonic

    def put(self, out: AudioOut | Event) -> None:
        msg = RelayMessage.of(out, self.seq)
        self.seq += 1
        if isinstance(out, Event) and out.payload.get("type") == "session.begin":
            self.begin = msg
        if len(self.pending) >= OUTBOX_MESSAGES:
            # Redis is not keeping up: drop the backlog, never hold the session.
            self.writer.metrics_dropped(len(self.pending))
            self.pending.clear()
            self.lost = True
        self.pending.append(msg)
        self.writer.wake()

    def end(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()
            self._append_end()
            self.writer.wake()

    def _append_end(self) -> None:
        self.pending.append(RelayMessage(KIND_END, self.seq))
        self.seq += 1

    def take(self, limit: int) -> list[RelayMessage]:
        taken = [self.pending.popleft() for _ in range(min(limit, len(self.pending)))]
        if taken and self.lost:
            first = taken[0]
            taken[0] = RelayMessage(first.kind, first.seq, first.payload, after_loss=True)
            self.lost = False
        return taken

    def write_failed(self, taken: list[RelayMessage]) -> None:
        self.writer.metrics_dropped(sum(m.kind != KIND_END for m in taken))
        self.lost = True
        self.registered = self.expiring = False
        if self.ended_at is not None and not any(m.kind == KIND_END for m in self.pending):
            self._append_end()  # the end must get through, whatever else was lost


class Writer:
    """The node's one writer task (:meth:`run`); outboxes wake it."""

    def __init__(self, link: RedisLink, relay_codec: RelayCodec, entry_codec: EntryCodec,
                 node_id: str, url: str, ttl_s: float, heartbeat_s: float, maxlen: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.link = link
        self.relay_codec = relay_codec
        self.entry_codec = entry_codec
        self.node_id = node_id
        self.url = url
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.maxlen = maxlen
        self.clock = clock
        self.boxes: dict[str, Outbox] = {}
        self.claims: dict[str, str] = {}  # session id -> owner: this node's admitted sessions
        self.releases: set[tuple[str, str]] = set()  # (owner, session id) to remove
        self.claim_script = link.redis.register_script(CLAIM_LUA)
        self._wake = asyncio.Event()
        self._next_heartbeat = 0.0

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    def metrics_dropped(self, n: int) -> None:
        if n:
            self.link.metrics.dropped.inc(n)

    def open(self, session_id: str, owner: str) -> Outbox:
        box = self.boxes[session_id] = Outbox(self, session_id, owner)
        self.wake()
        return box

    def release(self, session_id: str) -> None:
        owner = self.claims.pop(session_id, None)
        if owner is not None:
            self.releases.add((owner, session_id))
            self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _has_work(self) -> bool:
        return bool(self.releases) or any(b.pending or not b.registered
                                          for b in self.boxes.values())

    async def run(self) -> None:
        """Run until cancelled; Redis errors are retried, never raised."""
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        while True:
            if not self._has_work():
                wait = max(0.0, self._next_heartbeat - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                if not await self._round(loop.time() >= self._next_heartbeat):
                    continue  # nothing was sent: nothing learnt about Redis
            except REDIS_ERRORS as exc:
                if self.link.up:
                    log.warning("redis unavailable: %s", type(exc).__name__)
                self.link.mark(False)
                await asyncio.sleep(backoff.next())
                continue
            except Exception:  # a bug: keep the registry alive, say so
                log.exception("cluster writer round failed")
                await asyncio.sleep(backoff.next())
                continue
            if not self.link.up:
                log.info("redis available")
            self.link.mark(True)
            backoff.reset()

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until every ended session's end and every
        release is written (a session still running is not waited for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
                self.releases or any(b.ended_at is not None for b in self.boxes.values())):
            await asyncio.sleep(0.02)

    async def _round(self, heartbeat: bool) -> bool:
        """One pipeline of everything due; False if there was nothing to send."""
        link, loop = self.link, asyncio.get_running_loop()
        now_mono = time.monotonic()
        for sid, box in list(self.boxes.items()):  # its entry has expired by now anyway
            if box.ended_at is not None and now_mono - box.ended_at > self.ttl_s:
                self.metrics_dropped(sum(m.kind != KIND_END for m in box.pending))
                del self.boxes[sid]
        pipe = link.redis.pipeline(transaction=False)
        expires = self.clock() + self.ttl_s
        ttl_ms, budget = self.ttl_ms, BATCH_MESSAGES
        taken: list[tuple[Outbox, list[RelayMessage]]] = []
        for sid, box in self.boxes.items():
            if budget <= 0 and not heartbeat:
                break
            stream = link.stream_key(sid)
            refresh = heartbeat or not box.registered  # (again, after Redis lost it)
            if box.ended_at is None and refresh:
                entry = SessionEntry(sid, self.node_id, box.owner, expires, self.url)
                pipe.set(link.entry_key(sid), self.entry_codec.encode(entry), px=ttl_ms)
            msgs = box.take(budget)
            budget -= len(msgs)
            if box.begin is not None and (refresh or any(m.seq == box.begin.seq
                                                         for m in msgs)):
                # Before its XADD: a late listener finds it in the key, or in the
                # stream after the last entry it saw (never neither).
                pipe.set(link.begin_key(sid), self.relay_codec.encode(sid, box.begin),
                         px=ttl_ms)
            for msg in msgs:
                pipe.xadd(stream, {"m": self.relay_codec.encode(sid, msg)},
                          maxlen=self.maxlen, approximate=True)
            if heartbeat or (msgs and not box.expiring):
                pipe.pexpire(stream, ttl_ms)  # a node that dies leaves no stream behind
            if box.ended_at is not None and not box.pending:
                pipe.delete(link.entry_key(sid), link.begin_key(sid))
                pipe.pexpire(stream, END_GRACE_MS)
            taken.append((box, msgs))
        releases = list(self.releases)
        for owner, sid in releases:
            pipe.zrem(link.claims_key(owner), sid)
        if heartbeat:
            for sid, owner in self.claims.items():
                await self.claim_script(keys=[link.claims_key(owner)],
                                        args=[sid, 0, ttl_ms], client=pipe)
            pipe.ping()
        if not len(pipe):
            return False
        try:
            results = await pipe.execute(raise_on_error=False)
        except REDIS_ERRORS:
            for box, msgs in taken:
                box.write_failed(msgs)
            raise
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:  # e.g. a key of the wrong type planted in our namespace
            link.metrics.redis_errors.inc(len(errors))
            log.warning("redis rejected %d command(s): %s", len(errors),
                        type(errors[0]).__name__)
        for box, msgs in taken:
            link.metrics.published.inc(sum(m.kind != KIND_END for m in msgs))
            box.registered = True
            box.expiring = box.expiring or bool(msgs)
            if box.ended_at is not None and not box.pending:
                self.boxes.pop(box.session_id, None)
        self.releases.difference_update(releases)
        if heartbeat:
            self._next_heartbeat = loop.time() + self.heartbeat_s
        return True
