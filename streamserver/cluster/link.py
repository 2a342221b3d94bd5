"""A node's connections to Redis, the key names, its view of Redis's health, and
the cluster metrics.

Two clients: one with short timeouts for everything that must not hold anyone up
(writes, heartbeats, admission), one for the blocking reads of remote listeners
(``XREAD BLOCK`` holds its connection for the block). Neither retries by itself:
the writer retries with :class:`Backoff`, a reader reports the failure to its
listeners, and admission fails open — a node without Redis serves as one machine.
"""

from __future__ import annotations

import contextlib
import os
import socket

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# Anything a Redis call can raise when Redis is down, slow or gone mid-call.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

WRITE_TIMEOUT_S = 2.0  # a write or heartbeat round trip; over it Redis counts as down
CONNECT_TIMEOUT_S = 1.0
BLOCK_S = 1.0  # one XREAD BLOCK of a remote listener's feed


class ClusterMetrics:
    """``/metrics`` of the cluster parts (registered only when Redis is configured)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.redis_up = Gauge(
            "streamserver_redis_up", "1 while the last Redis round trip succeeded", registry=r)
        self.redis_errors = Counter(
            "streamserver_redis_errors", "Redis calls that failed (down, timeout)", registry=r)
        self.published = Counter(
            "streamserver_relay_messages_published",
            "Redacted outputs written to the cluster relay", registry=r)
        self.dropped = Counter(
            "streamserver_relay_messages_dropped",
            "Outputs not relayed: the session's outbox was full or Redis failed", registry=r)
        self.rejected = Counter(
            "streamserver_relay_messages_rejected",
            "Relay messages or registry entries whose MAC did not verify, or replayed",
            registry=r)
        self.feeds = Gauge(
            "streamserver_relay_remote_feeds",
            "Sessions of other nodes this node reads for its listeners", registry=r)


class Backoff:
    """Delays between retries: doubling from ``initial`` up to ``maximum``."""

    def __init__(self, initial: float = 0.1, maximum: float = 1.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def default_node_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{os.urandom(2).hex()}"


class RedisLink:
    """The clients, the key names under ``prefix``, and whether Redis answers."""

    def __init__(self, url: str, prefix: str, metrics: ClusterMetrics) -> None:
        no_retry = Retry(NoBackoff(), 0)
        self.redis = Redis.from_url(url, socket_timeout=WRITE_TIMEOUT_S,
                                    socket_connect_timeout=CONNECT_TIMEOUT_S, retry=no_retry)
        self.blocking = Redis.from_url(url, socket_timeout=BLOCK_S + WRITE_TIMEOUT_S,
                                       socket_connect_timeout=CONNECT_TIMEOUT_S, retry=no_retry)
        self.prefix = prefix
        self.metrics = metrics
        self.up = False
        metrics.redis_up.set(0)

    def mark(self, ok: bool) -> None:
        if not ok:
            self.metrics.redis_errors.inc()
        if ok != self.up:
            self.up = ok
            self.metrics.redis_up.set(1 if ok else 0)

    def entry_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def begin_key(self, session_id: str) -> str:
        return f"{self.prefix}begin:{session_id}"

    def stream_key(self, session_id: str) -> str:
        return f"{self.prefix}relay:{session_id}"

    def claims_key(self, owner: str) -> str:
        return f"{self.prefix}claims:{owner}"

    async def close(self) -> None:
        for client in (self.redis, self.blocking):
            with contextlib.suppress(*REDIS_ERRORS):
                await client.aclose()
