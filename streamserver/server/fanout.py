"""Relay a live session's redacted output to other listeners (fan-out).

An agent desktop or a recorder subscribes to a running session by its id
(``/v1/sessions/{id}/listen``) and receives exactly what the session's own client
receives: the redacted audio (the session's encoding) and the protocol v1 events.
Never the raw input: a relay only ever sees the runner's outputs.

Every listener has its own bounded queue. A listener that stops reading is cut
off with ``slow_consumer``; it never slows the session or the other listeners.
A listener that joins late first gets the session's ``session.begin`` (the
audio format), then the live stream from that point on.

With a cluster (``redis_url``), each relay also *forwards* its outputs to the
session's Redis stream (non-blocking, bounded: streamserver/cluster), and a
node that does not run a session *attaches* a mirror relay fed from that stream,
so its listeners are served exactly as local ones.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.session import AudioOut, Event
from ..protocol import CLOSE_TRY_LATER, ProtocolError

MAX_LISTENERS = 8
LISTENER_QUEUE = 512  # outputs (20-200 ms of audio each, or one event)


class UnknownSession(ProtocolError):
    code = "unknown_session"
    close_code = 4404


class TooManyListeners(ProtocolError):
    code = "too_many_listeners"
    close_code = CLOSE_TRY_LATER


class SlowListener(ProtocolError):
    code = "slow_consumer"
    close_code = 1008


class RelayUnavailable(ProtocolError):
    """The cluster relay (Redis) failed: this listener cannot follow the session."""

    code = "relay_unavailable"
    close_code = CLOSE_TRY_LATER


_END = object()  # the session ended: close normally
_CUT = object()  # this listener fell behind: close with slow_consumer


@dataclass(frozen=True)
class _Failed:  # the relay failed: raise this error to every listener
    error: ProtocolError


class Forward(Protocol):
    """Where a relay also sends its outputs (the cluster's outbox for the session).

    Both calls must return at once: the session never waits for a forward."""

    def put(self, out: AudioOut | Event) -> None: ...

    def end(self) -> None: ...


class Outbound(Protocol):
    def open(self, session_id: str, owner: str) -> Forward: ...


@dataclass(eq=False)
class Listener:
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(LISTENER_QUEUE + 1))

    async def next(self) -> AudioOut | Event | None:
        """The next output; None when the session ended. Raises SlowListener."""
        item = await self.queue.get()
        if item is _END:
            return None
        if item is _CUT:
            raise SlowListener("listener is not reading the relayed output")
        if isinstance(item, _Failed):
            raise item.error
        return item  # type: ignore[no-any-return]


class Relay:
    """One session's outputs, copied to its listeners."""

    def __init__(self, max_listeners: int = MAX_LISTENERS,
                 forward: Forward | None = None) -> None:
        self.listeners: set[Listener] = set()
        self.begin: Event | None = None
        self.ended = False
        self.max_listeners = max_listeners
        self.forward = forward

    def subscribe(self) -> Listener:
        if self.ended:
            raise UnknownSession("the session has ended")
        if len(self.listeners) >= self.max_listeners:
            raise TooManyListeners(f"at most {self.max_listeners} listeners per session")
        listener = Listener()
        if self.begin is not None:
            listener.queue.put_nowait(self.begin)
        self.listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def publish(self, out: AudioOut | Event) -> None:
        if isinstance(out, Event) and out.payload.get("type") == "session.begin":
            self.begin = out
        if self.forward is not None:
            self.forward.put(out)
        for listener in list(self.listeners):
            if listener.queue.qsize() >= LISTENER_QUEUE:
                # Full: drop what it has not read and tell it why (one slot is kept free).
                self._cut(listener)
            else:
                listener.queue.put_nowait(out)

    def end(self) -> None:
        if self.forward is not None and not self.ended:
            self.forward.end()
        self.ended = True
        for listener in list(self.listeners):
            listener.queue.put_nowait(_END)
        self.listeners.clear()

    def fail(self, error: ProtocolError) -> None:
        """End every listener with ``error`` (a mirror whose feed broke)."""
        self.ended = True
        for listener in list(self.listeners):
            while not listener.queue.empty():  # nothing after a gap: the error at once
                listener.queue.get_nowait()
            listener.queue.put_nowait(_Failed(error))
        self.listeners.clear()

    def _cut(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        while not listener.queue.empty():
            listener.queue.get_nowait()
        listener.queue.put_nowait(_CUT)


class RelayHub:
    """Relays of the running sessions, by session id, each with its owner.

    Only the owner (the hash of the API key that started the session) may listen;
    anyone else gets the same answer as for an id that does not exist, so a
    session id is no capability and other tenants learn nothing from probing.
    """

    def __init__(self, max_listeners: int = MAX_LISTENERS, max_per_key: int = 0) -> None:
        self._relays: dict[str, tuple[Relay, str]] = {}
        self.max_listeners = max_listeners  # per session
        self.max_per_key = max_per_key  # over all of one key's sessions; 0 = no limit
        self.outbound: Outbound | None = None  # the cluster, when there is one

    def open(self, session_id: str, owner: str) -> Relay:
        forward = self.outbound.open(session_id, owner) if self.outbound is not None else None
        relay = Relay(self.max_listeners, forward)
        self._relays[session_id] = (relay, owner)
        return relay

    def attach(self, session_id: str, owner: str) -> Relay:
        """A mirror of a session another node runs (fed by the cluster); listeners
        find it with :meth:`get` like a local one. Not forwarded anywhere."""
        relay = Relay(self.max_listeners)
        self._relays[session_id] = (relay, owner)
        return relay

    def has(self, session_id: str) -> bool:
        return session_id in self._relays

    def detach(self, session_id: str, relay: Relay) -> None:
        """Forget a mirror (if it is still the one under ``session_id``)."""
        found = self._relays.get(session_id)
        if found is not None and found[0] is relay:
            del self._relays[session_id]

    def get(self, session_id: str, caller: str) -> Relay:
        """The relay of ``session_id`` if ``caller`` owns it, else UnknownSession."""
        found = self._relays.get(session_id)
        # Compared in constant time; an unknown id is compared too (same timing).
        owner = found[1] if found is not None else "\0"
        if not hmac.compare_digest(owner.encode(), caller.encode()) or found is None:
            raise UnknownSession("no running session with this id")
        if self.max_per_key and sum(len(r.listeners) for r, o in self._relays.values()
                                    if o == caller) >= self.max_per_key:
            raise TooManyListeners(f"at most {self.max_per_key} listeners per API key")
        return found[0]

    def close(self, session_id: str) -> None:
        found = self._relays.pop(session_id, None)
        if found is not None:
            found[0].end()
