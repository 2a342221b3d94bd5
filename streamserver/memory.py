"""Hand freed heap memory back to the operating system, so RSS follows what is live.

Whisper and spaCy run in worker threads, and glibc gives each thread's allocations
an arena of their own. Memory freed inside an arena (the encoder's activations for
a long utterance, a batch of eight) is kept for reuse and returned to the kernel
only when it sits at the arena's very top, which after a busy minute it seldom
does. RSS then ratchets up to the highest concurrent demand the process has ever
seen and stays there: in an hour's soak it rose in ~10 MB steps that never came
back (benchmarks/results/soak_60min_notrim.json). ``malloc_trim(0)`` walks every
arena and releases whole free pages (``madvise``), so a periodic call keeps RSS
near what is in use: in the next hour's soak 60 trims handed back 4.7 GB
(benchmarks/results/soak.json). The call takes each
arena's lock briefly; it runs off the event loop, once a minute by default
(``memory_trim_interval_s``). On a libc without ``malloc_trim`` (musl, macOS) it is
a no-op.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None
    fn = getattr(libc, "malloc_trim", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_malloc_trim = _load_malloc_trim()


def trim_supported() -> bool:
    return _malloc_trim is not None


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def trim() -> int:
    """Release free heap pages to the kernel; returns the bytes RSS fell by (>= 0)."""
    if _malloc_trim is None:
        return 0
    before = rss_bytes()
    _malloc_trim(0)
    return max(0, before - rss_bytes())


async def trim_forever(interval_s: float, on_trim: Callable[[int, float], None]) -> None:
    """Every ``interval_s``: :func:`trim` in a thread, then ``on_trim(bytes, seconds)``."""
    while True:
        await asyncio.sleep(interval_s)
        started = time.perf_counter()
        released = await asyncio.to_thread(trim)
        took = time.perf_counter() - started
        on_trim(released, took)
        log.debug("memory trimmed", extra={"released_mb": round(released / 2**20, 1),
                                           "took_ms": round(took * 1000, 1)})
