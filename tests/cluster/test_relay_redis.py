"""Two cluster nodes in one process against a real redis-server: the registry,
the relay through Redis, forged records, cluster-wide claims, and what happens
when Redis stalls, dies and comes back, or a node dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamserver.cluster.codec import (
    EntryCodec,
    RelayCodec,
    RelayMessage,
    SessionEntry,
    derive_key,
)
from streamserver.cluster.node import ClusterNode
from streamserver.cluster.writer import OUTBOX_MESSAGES
from streamserver.config import ServerConfig
from streamserver.core.session import AudioOut, Event
from streamserver.server.fanout import (
    LISTENER_QUEUE,
    Listener,
    Relay,
    RelayHub,
    RelayUnavailable,
    SlowListener,
    UnknownSession,
)
from tests.cluster.conftest import CLUSTER_SECRET, RedisServer

OWNER = "a1" * 32
OTHER = "b2" * 32
TTL_S = 1.5
HEARTBEAT_S = 0.3


class Node:
    """One node's cluster part and relay hub, as the server wires them."""

    def __init__(self, url: str, name: str, secret: str = CLUSTER_SECRET) -> None:
        cfg = ServerConfig(redis_url=url, cluster_secret=secret, node_id=name,
                           cluster_ttl_s=TTL_S, cluster_heartbeat_s=HEARTBEAT_S)
        self.registry = CollectorRegistry()
        self.cluster = ClusterNode(cfg, self.registry)
        self.hub = RelayHub()
        self.hub.outbound = self.cluster

    def metric(self, name: str) -> float:
        return self.registry.get_sample_value(name) or 0.0

    async def listen(self, session_id: str, caller: str = OWNER) -> Listener:
        """What the listen route does: local relay, else a mirror through Redis."""
        await self.cluster.mirror(self.hub, session_id, caller)
        return self.hub.get(session_id, caller).subscribe()


@asynccontextmanager
async def nodes(url: str, *names: str) -> AsyncIterator[list[Node]]:
    made = [Node(url, n) for n in names]
    for n in made:
        await n.cluster.start()
    try:
        yield made
    finally:
        for n in made:
            await n.cluster.close()


def begin(session_id: str) -> Event:
    return Event({"type": "session.begin", "session_id": session_id,
                  "config": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}})


def audio(i: int) -> AudioOut:
    return AudioOut(bytes([i % 256]) * 640, 320 * i)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def registered(redis: RedisServer, session_id: str) -> bool:
    with redis.client() as c:
        return bool(c.exists(f"streamserver:session:{session_id}"))


async def drain(listener: Listener, timeout: float = 5.0) -> list[Any]:
    """Everything until the end (None), or the error raised, as the last item."""
    got: list[Any] = []
    while True:
        try:
            out = await asyncio.wait_for(listener.next(), timeout)
        except Exception as exc:  # the listener's typed error
            got.append(exc)
            return got
        if out is None:
            return got
        got.append(out)


async def start_session(node: Node, redis: RedisServer, sid: str) -> Relay:
    relay = node.hub.open(sid, OWNER)
    relay.publish(begin(sid))
    await until(lambda: registered(redis, sid))
    return relay


def test_a_listener_on_another_node_gets_what_the_session_publishes(
        redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "1" * 32
            relay = await start_session(a, redis_db, sid)
            local = relay.subscribe()
            remote = await b.listen(sid)
            late_task = None
            for i in range(40):
                relay.publish(audio(i))
                if i == 20:
                    relay.publish(Event({"type": "transcript.final", "text": "hi ####"}))
                    await asyncio.sleep(0.1)
                    late_task = asyncio.ensure_future(drain(await b.listen(sid)))
            a.hub.close(sid)  # the session ended
            want = await drain(local)
            got = await drain(remote)
            assert got == want and len(got) == 42  # begin, 40 audio, 1 event; then the end
            late = await late_task  # joined midway: begin first, then live from there
            assert late[0] == begin(sid) and late == [late[0], *want[-len(late) + 1:]]
            assert len(late) < len(want)
            await until(lambda: _not(registered(redis_db, sid)))  # removed at the end
            assert a.metric("streamserver_relay_messages_published_total") == 42
            assert b.metric("streamserver_relay_messages_rejected_total") == 0
            assert a.metric("streamserver_redis_up") == 1
            await until(lambda: _true(not b.cluster.feeds))

    asyncio.run(go())


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def _true(value: bool) -> bool:
    return value


def test_a_slow_listener_on_another_node_is_cut_alone(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "b" * 32
            relay = await start_session(a, redis_db, sid)
            slow = await b.listen(sid)  # never reads
            fast = await b.listen(sid)
            reading = asyncio.ensure_future(drain(fast))
            n = LISTENER_QUEUE + 100
            for i in range(n):
                relay.publish(audio(i))
                if i % 50 == 0:
                    await asyncio.sleep(0.01)  # 20 ms frames would come slower still
            a.hub.close(sid)
            got = await reading
            assert got == [begin(sid), *[audio(i) for i in range(n)]]
            cut = await drain(slow)
            assert isinstance(cut[-1], SlowListener) and cut[-1].code == "slow_consumer"
            # Neither the session's node nor the feed noticed.
            assert a.metric("streamserver_relay_messages_dropped_total") == 0

    asyncio.run(go())


def test_what_the_publisher_dropped_ends_remote_listeners_typed(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "c" * 32
            relay = await start_session(a, redis_db, sid)
            remote = await b.listen(sid)
            relay.publish(audio(0))
            await until(lambda: _true(remote.queue.qsize() >= 2))
            # A burst the writer has no chance to send (the loop never yields):
            # the outbox drops its backlog; the listener must not hear a splice.
            for i in range(1, OUTBOX_MESSAGES + 10):
                relay.publish(audio(i))
            got = await drain(remote)
            assert got[:-1] == [begin(sid), audio(0)]
            assert isinstance(got[-1], RelayUnavailable)
            assert a.metric("streamserver_relay_messages_dropped_total") == OUTBOX_MESSAGES
            # One joining afterwards hears the session from there on.
            later = await b.listen(sid)
            relay.publish(audio(999))
            a.hub.close(sid)
            got = await drain(later)
            assert got == [begin(sid), audio(999)]

    asyncio.run(go())


def test_only_the_owner_may_listen_and_unknown_ids_are_unknown(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "2" * 32
            await start_session(a, redis_db, sid)
            for session_id, caller in ((sid, OTHER), ("3" * 32, OWNER),
                                       ("../../etc", OWNER), ("x" * 65, OWNER)):
                with pytest.raises(UnknownSession):
                    await b.listen(session_id, caller)
            assert not b.hub.has(sid)
            await b.listen(sid)  # the owner may
            with pytest.raises(UnknownSession):  # and the mirror is the owner's only
                b.hub.get(sid, OTHER)

    asyncio.run(go())


def test_forged_or_copied_registry_entries_are_not_sessions(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "b") as (b,):
            sid, real = "4" * 32, "5" * 32
            wrong = EntryCodec(derive_key(b"an attacker's secret, long enough", "registry"))
            right = EntryCodec(derive_key(CLUSTER_SECRET.encode(), "registry"))
            far = time.time() + 60
            with redis_db.client() as c:
                key = f"streamserver:session:{sid}"
                for value in (
                        wrong.encode(SessionEntry(sid, "evil", OWNER, far)),  # no secret
                        right.encode(SessionEntry(real, "a", OWNER, far)),  # another id's
                        right.encode(SessionEntry(sid, "a", OWNER, time.time() - 60)),  # stale
                        b"{\"node\": \"evil\", \"owner\": \"" + OWNER.encode() + b"\"}"):
                    c.set(key, value)
                    # A stream for it, too: signed with the wrong key.
                    c.xadd(f"streamserver:relay:{sid}", {"m": RelayCodec(
                        derive_key(b"an attacker's secret, long enough", "relay")).encode(
                            sid, RelayMessage.of(begin(sid), 0))})
                    with pytest.raises(UnknownSession):
                        await b.listen(sid)
            assert not b.hub.has(sid) and not b.cluster.feeds
            assert b.metric("streamserver_relay_messages_rejected_total") == 4

    asyncio.run(go())


def test_forged_and_replayed_stream_messages_are_not_relayed(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid, other = "6" * 32, "7" * 32
            relay = await start_session(a, redis_db, sid)
            other_relay = await start_session(a, redis_db, other)
            other_relay.publish(audio(99))
            remote = await b.listen(sid)
            relay.publish(audio(1))
            await until(lambda: _true(remote.queue.qsize() >= 2))
            stream = f"streamserver:relay:{sid}"
            attacker = RelayCodec(derive_key(b"an attacker's secret, long enough", "relay"))
            with redis_db.client() as c:
                genuine_here = c.xrange(stream)[-1][1][b"m"]  # audio(1), seq 1
                genuine_there = c.xrange(f"streamserver:relay:{other}")[-1][1][b"m"]
                c.xadd(stream, {"m": b"garbage"})
                c.xadd(stream, {"m": attacker.encode(sid, RelayMessage.of(audio(66), 2))})
                c.xadd(stream, {"m": genuine_there})  # another session's message
                c.xadd(stream, {"m": genuine_here})  # a replay
                c.xadd(stream, {"x": b"no field m"})
            relay.publish(audio(2))
            a.hub.close(sid)
            got = await drain(remote)
            assert got == [begin(sid), audio(1), audio(2)]
            assert b.metric("streamserver_relay_messages_rejected_total") == 5

    asyncio.run(go())


def test_a_stalled_redis_never_holds_the_session_up(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "8" * 32
            relay = await start_session(a, redis_db, sid)
            local = relay.subscribe()
            remote = await b.listen(sid)
            redis_db.pause()  # connected, answers nothing
            try:
                started = time.perf_counter()
                for i in range(5 * OUTBOX_MESSAGES):
                    relay.publish(audio(i))
                    if local.queue.qsize() > 400:  # a local listener keeps reading
                        while not local.queue.empty():
                            local.queue.get_nowait()
                elapsed = time.perf_counter() - started
                box = a.cluster.writer.boxes[sid]
                assert len(box.pending) <= OUTBOX_MESSAGES
                # The remote listener is told, within the read timeout, never left hanging.
                got = await drain(remote, timeout=10)
                assert isinstance(got[-1], RelayUnavailable)
                assert all(isinstance(x, AudioOut | Event) for x in got[:-1])
            finally:
                redis_db.resume()
            assert elapsed < 0.5  # 1280 outputs: publishing never waited for Redis
            assert a.metric("streamserver_relay_messages_dropped_total") > 0
            # Redis answers again: a new listener follows the session from now on.
            await until(lambda: registered(redis_db, sid), timeout=10)
            again = await b.listen(sid)
            relay.publish(audio(7))
            a.hub.close(sid)
            got = await drain(again)
            assert got[0] == begin(sid) and got[-1] == audio(7)

    asyncio.run(go())


def test_redis_killed_and_back(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "9" * 32
            relay = await start_session(a, redis_db, sid)
            local = relay.subscribe()
            remote = await b.listen(sid)
            relay.publish(audio(1))
            await until(lambda: _true(remote.queue.qsize() >= 2))
            redis_db.kill()
            got = await drain(remote)
            assert isinstance(got[-1], RelayUnavailable) and got[-1].code == "relay_unavailable"
            with pytest.raises(RelayUnavailable):  # no Redis: cannot know; try later
                await b.listen(sid)
            for i in range(2, 50):  # the session and its local listener carry on
                relay.publish(audio(i))
            await until(lambda: _true(not a.cluster.link.up))
            assert a.metric("streamserver_redis_up") == 0
            redis_db.start()  # empty: Redis lost everything
            # Registered again by the next heartbeat, begin included.
            await until(lambda: registered(redis_db, sid), timeout=10)
            again = await b.listen(sid)
            relay.publish(audio(50))
            a.hub.close(sid)
            got = await drain(again)
            assert got[0] == begin(sid) and got[-1] == audio(50)
            mine = await drain(local)
            assert mine == [begin(sid), *[audio(i) for i in range(1, 51)]]

    asyncio.run(go())


def test_a_dead_nodes_sessions_expire(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            sid = "a" * 32
            await start_session(a, redis_db, sid)
            assert await a.cluster.claim("c" * 32, OWNER, 1)
            remote = await b.listen(sid)
            # Node a dies: nothing it wrote is refreshed or removed any more.
            task = a.cluster._writer_task
            assert task is not None
            task.cancel()
            started = time.monotonic()
            got = await drain(remote, timeout=TTL_S + 5)
            assert isinstance(got[-1], UnknownSession) and got[0] == begin(sid)
            assert time.monotonic() - started < TTL_S + 2
            assert not await registered(redis_db, sid)
            with redis_db.client() as c:
                assert not c.exists(f"streamserver:relay:{sid}")  # its stream expired too
            with pytest.raises(UnknownSession):
                await b.listen(sid)
            # Its claim expired with it: the key's one session may start elsewhere.
            assert await b.cluster.claim("d" * 32, OWNER, 1)

    asyncio.run(go())


def test_sessions_per_key_are_counted_across_nodes(redis_db: RedisServer) -> None:
    async def go() -> None:
        async with nodes(redis_db.url, "a", "b") as (a, b):
            assert await a.cluster.claim("s1", OWNER, 2)
            assert await b.cluster.claim("s2", OWNER, 2)
            assert not await a.cluster.claim("s3", OWNER, 2)
            assert not await b.cluster.claim("s3", OWNER, 2)
            assert await b.cluster.claim("s4", OTHER, 2)  # another key has its own count
            a.cluster.release("s1")
            await until(lambda: b.cluster.claim("s3", OWNER, 2))
            # Refreshed every heartbeat: still counted long after the TTL.
            await asyncio.sleep(TTL_S * 1.5)
            assert not await a.cluster.claim("s5", OWNER, 2)

    asyncio.run(go())
