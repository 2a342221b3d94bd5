"""This node's part in a cluster (``redis_url``): what the server calls.

* :meth:`ClusterNode.open` — a local session's relay forwards its redacted
  outputs to an :class:`~.writer.Outbox` (the RelayHub's ``outbound``); the writer
  registers the session and relays them through Redis.
* :meth:`ClusterNode.claim` / :meth:`release` — ``max_sessions_per_key`` counted
  over every node (fails open when Redis is away: the local limits still hold).
* :meth:`ClusterNode.mirror` — a listener here for a session another node runs:
  a mirror relay fed from the session's stream (:mod:`.feed`), only for the
  session's owner.

Nothing here ever blocks a session: Redis failures show up as listeners' typed
errors, dropped relay messages and ``streamserver_redis_up 0``, never as a
slower or failed session. docs/deploy.md, "Redis: registry and fan-out".
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from ..config import ServerConfig
from ..core.session import Event
from ..server.fanout import RelayHub, RelayUnavailable, TooManyListeners, UnknownSession
from .codec import KIND_END, EntryCodec, Forged, RelayCodec, derive_key
from .feed import RemoteFeed
from .link import REDIS_ERRORS, WRITE_TIMEOUT_S, ClusterMetrics, RedisLink, default_node_id
from .writer import Outbox, Writer

log = logging.getLogger("streamserver.cluster")

MAX_FEEDS = 256  # remote sessions one node reads at once (a blocking connection each)
CLOSE_FLUSH_S = 2.0  # at shutdown, what is still in the outboxes gets this long
CANCEL_WAIT_S = 0.5  # at shutdown, for the cancelled feeds and writer
REGISTER_GRACE_S = 0.3  # a session id not (yet) registered is looked up once more
# uuid4 hex, a Twilio streamSid, an AudioSocket UUID: anything else cannot exist.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ClusterNode:
    """Start with :meth:`start` (in the running loop), end with :meth:`close`."""

    def __init__(self, cfg: ServerConfig, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.time) -> None:
        secret = cfg.cluster_secret.encode()
        self.metrics = ClusterMetrics(registry)
        self.link = RedisLink(cfg.redis_url, cfg.redis_prefix, self.metrics)
        self.relay_codec = RelayCodec(derive_key(secret, "relay"))
        self.entry_codec = EntryCodec(derive_key(secret, "registry"))
        self.node_id = cfg.node_id or default_node_id()
        self.ttl_s = cfg.cluster_ttl_s
        self.clock = clock
        self.writer = Writer(self.link, self.relay_codec, self.entry_codec, self.node_id,
                             cfg.public_url, cfg.cluster_ttl_s, cfg.cluster_heartbeat_s,
                             cfg.relay_stream_maxlen, clock)
        self.feeds: dict[str, asyncio.Task[None]] = {}
        self._writer_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start writing; a Redis that is down now is retried in the background."""
        self._writer_task = asyncio.create_task(self.writer.run(), name="cluster-writer")

    async def close(self) -> None:
        """Flush what sessions left (briefly), stop the feeds and the writer."""
        if self._writer_task is not None and not self._writer_task.done():
            await self.writer.flush(CLOSE_FLUSH_S)
        tasks = [*self.feeds.values(), *([self._writer_task] if self._writer_task else [])]
        for task in tasks:
            task.cancel()
        if tasks:  # a read cancelled while it connects can take a while to unwind
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        await self.link.close()

    def status(self) -> dict[str, Any]:
        return {"redis": "up" if self.link.up else "down", "node": self.node_id}

    # -- the relay hub's outbound -----------------------------------------------------
    def open(self, session_id: str, owner: str) -> Outbox:
        return self.writer.open(session_id, owner)

    # -- admission ----------------------------------------------------------------------
    async def claim(self, session_id: str, owner: str, limit: int) -> bool:
        """Count a session against ``owner``'s cluster-wide ``limit``: False if it is
        reached. Redis unreachable: True (it is counted once Redis is back)."""
        script = self.writer.claim_script
        try:
            ok = await asyncio.wait_for(
                script(keys=[self.link.claims_key(owner)],
                       args=[session_id, limit, self.writer.ttl_ms]), WRITE_TIMEOUT_S)
        except REDIS_ERRORS:
            self.link.mark(False)
            log.warning("redis unavailable: session admitted on this node's limits only",
                        extra={"session": session_id})
            ok = 1
        else:
            self.link.mark(True)
        if ok:
            self.writer.claims[session_id] = owner
        return bool(ok)

    def release(self, session_id: str) -> None:
        self.writer.release(session_id)

    # -- listeners for sessions of other nodes ------------------------------------------
    async def mirror(self, hub: RelayHub, session_id: str, caller: str) -> None:
        """Attach a mirror of ``session_id`` to ``hub`` if ``caller`` owns it.

        Raises UnknownSession (no such session, not the caller's, or its entry does
        not verify), RelayUnavailable (Redis down) or TooManyListeners. The caller
        must subscribe to the mirror (``hub.get``) before its next ``await``: a
        mirror that finds no listener stops.
        """
        if hub.has(session_id):
            return
        if not _SESSION_ID.fullmatch(session_id):
            raise UnknownSession("no running session with this id")
        if len(self.feeds) >= MAX_FEEDS:
            raise TooManyListeners("this node follows too many remote sessions; try later")
        raw_entry, raw_begin, last = await self._snapshot(session_id)
        if raw_entry is None:
            # Its client may have passed the id on before the writer registered it
            # (a round trip after session.begin): look once more.
            await asyncio.sleep(REGISTER_GRACE_S)
            raw_entry, raw_begin, last = await self._snapshot(session_id)
        owner = self._verified_owner(session_id, raw_entry)
        # Compared in constant time, an unknown id too: ids are no capability.
        if not hmac.compare_digest((owner or "\0").encode(), caller.encode()) or owner is None:
            raise UnknownSession("no running session with this id")
        if hub.has(session_id):  # another listener attached it meanwhile
            return
        start_id: bytes | str = "0-0"
        last_seq: int | None = None
        floor_seq = -1
        if last:
            start_id = last[0][0]
            try:
                last_msg = self.relay_codec.decode(session_id, last[0][1][b"m"])
            except (Forged, KeyError):
                self.metrics.rejected.inc()
            else:
                if last_msg.kind == KIND_END:  # ended; its entry is going next
                    raise UnknownSession("no running session with this id")
                last_seq = floor_seq = last_msg.seq
        relay = hub.attach(session_id, owner)
        begin_seq: int | None = None
        if raw_begin is not None:
            try:
                begin = self.relay_codec.decode(session_id, raw_begin)
                out = begin.output()
            except Forged:
                self.metrics.rejected.inc()
            else:
                if isinstance(out, Event) and out.payload.get("type") == "session.begin":
                    relay.publish(out)  # held for every listener that subscribes
                    begin_seq = begin.seq
                    floor_seq = max(floor_seq, begin.seq)

        def stopped() -> None:
            hub.detach(session_id, relay)
            if self.feeds.get(session_id) is task:
                del self.feeds[session_id]
            self.metrics.feeds.set(len(self.feeds))

        feed = RemoteFeed(self.link, self.relay_codec, self.entry_codec, session_id, relay,
                          start_id, last_seq, floor_seq, begin_seq, stopped, self.clock)
        task = asyncio.create_task(feed.run(), name=f"relay-feed-{session_id[:8]}")
        self.feeds[session_id] = task
        self.metrics.feeds.set(len(self.feeds))

    async def _snapshot(self, session_id: str) -> tuple[Any, Any, Any]:
        """The entry, the session.begin and the stream's last message, as of one
        moment (MULTI): the writer sets the begin key before the begin's XADD and
        adds the end before it deletes the entry, so they agree closely enough."""
        link = self.link
        try:
            pipe = link.redis.pipeline(transaction=True)
            pipe.get(link.entry_key(session_id))
            pipe.get(link.begin_key(session_id))
            pipe.xrevrange(link.stream_key(session_id), "+", "-", count=1)
            raw_entry, raw_begin, last = await asyncio.wait_for(pipe.execute(),
                                                                WRITE_TIMEOUT_S)
        except REDIS_ERRORS:
            link.mark(False)
            raise RelayUnavailable("the cluster relay (Redis) is unavailable; try later"
                                   ) from None
        link.mark(True)
        return raw_entry, raw_begin, last

    def _verified_owner(self, session_id: str, raw: bytes | None) -> str | None:
        if raw is None:
            return None
        try:
            return self.entry_codec.decode(session_id, raw, self.clock()).owner
        except Forged:
            self.metrics.rejected.inc()
            log.warning("registry entry rejected (MAC or expiry)",
                        extra={"session": session_id})
            return None
