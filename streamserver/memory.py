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
from typing import Any

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc_function(name: str, argtypes: list[Any], restype: Any) -> Any:
    """``name`` from glibc, typed; None on another OS or C library (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL("libc.so.6"), name, None)
    except OSError:  # not glibc
        return None
    if fn is not None:
        fn.argtypes = argtypes
        fn.restype = restype
    return fn


_malloc_trim: Callable[[int], int] | None = _libc_function(
    "malloc_trim", [ctypes.c_size_t], ctypes.c_int)


class _MallInfo2(ctypes.Structure):
    # glibc >= 2.33 ``struct mallinfo2`` (size_t fields, unlike the int-overflowing mallinfo).
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


_mallinfo2: Callable[[], _MallInfo2] | None = _libc_function("mallinfo2", [], _MallInfo2)


# mallopt(3) parameters (glibc malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# glibc reads these from the environment at start-up; an operator's own choice wins.
_GLIBC_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


_mallopt: Callable[[int, int], int] | None = _libc_function(
    "mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)


def tune_allocator(arena_max: int, mmap_threshold_bytes: int) -> dict[str, int]:
    """Cap glibc's arenas and fix its mmap threshold; returns what was applied.

    Call before the model threads start. Left alone, glibc raises the mmap
    threshold to the largest block ever freed (up to 32 MiB), so the encoder's
    multi-megabyte buffers move into the arenas, and each of up to 8 x cores
    arenas (one per thread that allocates) keeps its own high-water mark. In a
    20-minute soak malloc's in-use bytes stayed near 100 MB while its free-but-kept
    bytes rose 115 MB/h and RSS with them. Blocks from the threshold up get their
    own mappings, returned on free; two arenas share their free space. A lower
    threshold costs more than it saves: at 256 KiB every mid-sized tensor is an
    mmap/munmap pair and the page faults that follow, and 8 sessions missed 7-9 %
    of their deadlines; at 4 MiB none, at glibc's CPU (benchmarks/allocator.py).
    0 leaves a parameter at glibc's default. Skipped when the operator configured
    glibc through its own environment variables, and on other C libraries.
    """
    if _mallopt is None or any(name in os.environ for name in _GLIBC_MALLOC_ENV):
        return {}
    applied: dict[str, int] = {}
    if arena_max > 0 and _mallopt(_M_ARENA_MAX, arena_max) == 1:
        applied["arena_max"] = arena_max
    if mmap_threshold_bytes > 0 and _mallopt(_M_MMAP_THRESHOLD, mmap_threshold_bytes) == 1:
        applied["mmap_threshold_bytes"] = mmap_threshold_bytes
    return applied


def heap_stats() -> dict[str, int]:
    """glibc's own account of the malloc heap, in bytes (empty where unavailable).

    ``in_use``: allocated and not freed; ``free``: freed but kept inside the arenas
    (what fragmentation looks like; ``malloc_trim`` can only return whole free pages
    of it); ``mmapped``: large blocks served by their own mappings. RSS rising with
    ``in_use`` is a leak, with ``free`` fragmentation, with neither memory outside
    malloc (thread stacks, runtimes' own mappings).
    """
    if _mallinfo2 is None:
        return {}
    info = _mallinfo2()
    return {"in_use": int(info.uordblks), "free": int(info.fordblks),
            "mmapped": int(info.hblkhd)}


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
