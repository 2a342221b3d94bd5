"""A remote session's stream, read into a mirror relay on this node.

One :class:`RemoteFeed` per (this node, remote session) that has listeners here:
it ``XREAD BLOCK``s the session's stream and publishes every verified message
into the mirror :class:`~streamserver.server.fanout.Relay`, whose per-listener
bounded queues cut a listener that stops reading (``slow_consumer``) without
slowing the feed, the other listeners, or the session's node. It stops when:

* the end marker arrives — the listeners close normally, as local ones do;
* the last listener left — nothing more to read for;
* a gap in ``seq`` after the first relayed message — the feed lagged beyond the
  stream's MAXLEN (``slow_consumer``) or the publisher dropped messages
  (``relay_unavailable``);
* Redis fails — ``relay_unavailable`` at once, never a silent hang;
* the session's registry entry is gone or no longer verifies while the stream is
  quiet — its node died (entries expire after the TTL): ``unknown_session``.

Messages whose MAC does not verify, or that repeat a ``seq`` already relayed,
are counted and skipped: they cannot make this node relay anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..protocol import ProtocolError
from ..server.fanout import Relay, RelayUnavailable, SlowListener, UnknownSession
from .codec import KIND_END, EntryCodec, Forged, RelayCodec
from .link import BLOCK_S, REDIS_ERRORS, RedisLink

log = logging.getLogger("streamserver.cluster")

READ_COUNT = 256  # messages per XREAD


class RemoteFeed:
    """Call :meth:`run` in a task; it ends the mirror relay however it stops."""

    def __init__(self, link: RedisLink, relay_codec: RelayCodec, entry_codec: EntryCodec,
                 session_id: str, relay: Relay, start_id: bytes | str,
                 last_seq: int | None, floor_seq: int, begin_seq: int | None,
                 on_stop: Callable[[], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.link = link
        self.relay_codec = relay_codec
        self.entry_codec = entry_codec
        self.session_id = session_id
        self.relay = relay
        self.start_id = start_id
        self.last_seq = last_seq  # the last message seen: the next must follow it
        self.floor_seq = floor_seq  # at or below: already relayed (or replayed)
        self.begin_seq = begin_seq  # relayed from its key: its XADD may follow
        self.relayed = False  # a message from the stream reached the listeners
        self.on_stop = on_stop  # before the relay ends: a new listener makes a new feed
        self.clock = clock

    async def run(self) -> None:
        try:
            error = await self._read()
        except asyncio.CancelledError:
            self.on_stop()
            self.relay.fail(RelayUnavailable("this node is shutting down; listen again"))
            raise
        except Exception:  # a bug must not leave listeners hanging
            log.exception("relay feed failed", extra={"session": self.session_id})
            error = RelayUnavailable("the cluster relay failed; try later")
        self.on_stop()
        if error is None:
            self.relay.end()
        else:
            log.info("relay feed ended", extra={"session": self.session_id,
                                                "code": error.code})
            self.relay.fail(error)

    async def _read(self) -> ProtocolError | None:
        link, stream = self.link, self.link.stream_key(self.session_id)
        last_id = self.start_id
        while self.relay.listeners:
            try:
                got: Any = await link.blocking.xread({stream: last_id}, count=READ_COUNT,
                                                     block=int(BLOCK_S * 1000))
            except REDIS_ERRORS:
                link.mark(False)
                return RelayUnavailable("the cluster relay (Redis) is unavailable")
            if not got:
                if not await self._still_registered():
                    return UnknownSession("the session is no longer running (its node "
                                          "stopped)")
                continue
            for entry_id, fields in got[0][1]:
                last_id = entry_id
                outcome = self._relay_one(fields)
                if outcome is not None:
                    return outcome if isinstance(outcome, ProtocolError) else None
        return None

    def _relay_one(self, fields: dict[bytes, bytes]) -> ProtocolError | bool | None:
        """Relay one stream entry; an error or True (the end) stops the feed."""
        try:
            msg = self.relay_codec.decode(self.session_id, fields[b"m"])
            out = msg.output()
        except (Forged, KeyError):
            self.link.metrics.rejected.inc()
            return None
        if msg.seq <= self.floor_seq:  # relayed already: a replay (or the begin again)
            if msg.seq != self.begin_seq:
                self.link.metrics.rejected.inc()
            return None
        if self.last_seq is not None and msg.seq != self.last_seq + 1 and self.relayed:
            # A gap in what these listeners hear (before the first message it is
            # only a later start: they joined at a loss, and hear nothing spliced).
            if msg.after_loss:
                return RelayUnavailable("the cluster relay lost part of the session's "
                                        "output")
            return SlowListener("this node fell behind the session's relayed output")
        self.last_seq = self.floor_seq = msg.seq
        if msg.kind == KIND_END:
            return True
        assert out is not None
        self.relay.publish(out)
        self.relayed = True
        return None

    async def _still_registered(self) -> bool:
        try:
            raw: Any = await self.link.redis.get(self.link.entry_key(self.session_id))
        except REDIS_ERRORS:
            self.link.mark(False)
            return True  # the next read says relay_unavailable
        if raw is None:
            return False
        try:
            self.entry_codec.decode(self.session_id, raw, self.clock())
        except Forged:
            self.link.metrics.rejected.inc()
            return False
        return True
