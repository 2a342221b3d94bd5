"""A timer that wakes a hair early still ends a wait for the limit it was set for.

uvloop's timers have millisecond resolution: ``asyncio.wait(timeout=t)`` can return
a moment before ``t``. A fresh-clone CI run once answered a socket that never
configured with ``idle_timeout`` instead of ``config_timeout`` because the handler
re-read the clock after the wait. The early wake is injected here (a fault), the
handler is the real one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamserver.config import ServerConfig
from streamserver.protocol import ConfigTimeout, IdleTimeout
from streamserver.server import app as app_mod
from streamserver.server.state import ServerState

EARLY_S = 0.003

_real_wait = asyncio.wait


async def _wakes_early(fs: Any, timeout: float | None = None, **kw: Any) -> Any:
    if timeout is None:
        return await _real_wait(fs, **kw)
    # Nothing arrives: sleep to just before the deadline and report a timeout.
    await asyncio.sleep(max(0.0, timeout - EARLY_S))
    return set(), set(fs)


class _SilentSocket:
    """A client that never sends anything."""

    async def receive(self) -> Any:
        await asyncio.Event().wait()


def _receive(cfg: ServerConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, bool]:
    monkeypatch.setattr(app_mod.asyncio, "wait", _wakes_early)

    async def go() -> tuple[Any, bool]:
        handler = app_mod.StreamHandler(ServerState(cfg=cfg), _SilentSocket())  # type: ignore[arg-type]
        try:
            got: Any = await handler._receive()
        except (ConfigTimeout, IdleTimeout) as exc:
            got = exc
        return got, handler.host.too_long

    return asyncio.run(go())


def test_an_early_wake_at_the_configure_deadline_is_config_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    got, too_long = _receive(ServerConfig(configure_timeout_s=0.2, idle_timeout_s=60.0),
                             monkeypatch)
    assert isinstance(got, ConfigTimeout) and not too_long


def test_an_early_wake_at_the_session_limit_ends_it_as_too_long(
        monkeypatch: pytest.MonkeyPatch) -> None:
    got, too_long = _receive(ServerConfig(max_session_s=0.2, configure_timeout_s=30.0,
                                          idle_timeout_s=60.0), monkeypatch)
    assert got is None and too_long


def test_an_early_wake_at_the_idle_deadline_is_idle_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    got, too_long = _receive(ServerConfig(idle_timeout_s=0.2, configure_timeout_s=30.0),
                             monkeypatch)
    assert isinstance(got, IdleTimeout) and not too_long
