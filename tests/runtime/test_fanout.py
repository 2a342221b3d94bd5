"""The relay: bounded per-listener queues, late joiners, slow listeners cut off."""

from __future__ import annotations

import asyncio

import pytest

from streamserver.core.session import AudioOut, Event
from streamserver.server import fanout
from streamserver.server.fanout import Relay, SlowListener, TooManyListeners, UnknownSession


def test_late_listener_gets_begin_then_live_output_then_end() -> None:
    async def go() -> list[object]:
        relay = Relay()
        relay.publish(Event({"type": "session.begin", "session_id": "s"}))
        relay.publish(AudioOut(b"early", 0))  # before it joined: not replayed
        listener = relay.subscribe()
        relay.publish(AudioOut(b"late", 10))
        relay.end()
        got = []
        while (out := await listener.next()) is not None:
            got.append(out)
        return got

    got = asyncio.run(go())
    assert isinstance(got[0], Event) and got[0].payload["type"] == "session.begin"
    assert got[1:] == [AudioOut(b"late", 10)]


def test_a_slow_listener_is_cut_off_without_touching_the_others(monkeypatch) -> None:
    monkeypatch.setattr(fanout, "LISTENER_QUEUE", 4)

    async def go() -> tuple[int, bool]:
        relay = Relay()
        slow, fast = relay.subscribe(), relay.subscribe()
        for i in range(10):
            relay.publish(AudioOut(bytes([i]), i))
            if fast.queue.qsize():
                await fast.next()
        with pytest.raises(SlowListener):
            await slow.next()
        return len(relay.listeners), fast in relay.listeners

    assert asyncio.run(go()) == (1, True)


def test_listener_limits() -> None:
    relay = Relay()
    for _ in range(fanout.MAX_LISTENERS):
        relay.subscribe()
    with pytest.raises(TooManyListeners):
        relay.subscribe()
    relay.end()
    with pytest.raises(UnknownSession):
        relay.subscribe()
