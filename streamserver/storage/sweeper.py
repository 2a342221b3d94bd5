"""The background sweeper: purge expired artefacts every ``interval_s`` seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("streamserver.storage")


class Purger(Protocol):
    """A store, or what sweeps one (the server's archive also sends webhooks)."""

    def purge_expired(self, now: float) -> int: ...


async def sweep_forever(
    store: Purger, interval_s: float, now: Callable[[], float] = time.time,
    after: Callable[[], None] | None = None,
) -> None:
    """Run until cancelled; a failed purge is logged (type and count only) and retried.

    Purges once at start, then after every ``interval_s``. Cancel the task to
    stop it; a purge already running in its thread finishes on its own.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    while True:
        try:
            purged = await asyncio.to_thread(store.purge_expired, now())
        except Exception as exc:  # keep sweeping: the next round may succeed
            log.warning("storage purge failed: %s", type(exc).__name__)
        else:
            if purged:
                log.info("storage purge", extra={"stats": {"purged": purged}})
        if after is not None:  # e.g. measure what is stored now (quotas)
            try:
                await asyncio.to_thread(after)
            except Exception as exc:
                log.warning("storage measurement failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
