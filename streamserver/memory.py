"""Keep RSS following what is live: the process's malloc, chosen and watched.

Whisper and spaCy run in worker threads, and glibc gives each thread's allocations
an arena of their own. Memory freed inside an arena (the encoder's activations for
a long utterance, a batch of eight) is kept for reuse and returned to the kernel
only when it sits at the arena's very top, which after a busy minute it seldom
does. RSS then ratchets up to the highest concurrent demand the process has ever
seen and stays there: in an hour's soak it rose in ~10 MB steps that never came
back (benchmarks/results/soak_60min_notrim.json). Three answers, in the order
they were measured: ``malloc_trim(0)`` once a minute (:func:`trim`, off the event
loop) returns whole free pages; glibc capped at two arenas with large blocks in
their own mappings (:func:`tune_allocator`) shares and unmaps the big buffers;
both together still left RSS rising ~25 MB/h in glibc's free-but-kept bytes. So
by default the server runs under jemalloc (:func:`jemalloc_environment`, used by
``serve``), with its own decay off and a purge of every arena every 2 s (see
:data:`JEMALLOC_CONF` for why not jemalloc's decay); the other two remain
for a process on glibc (``allocator=glibc``, or no libjemalloc2).
On a libc with neither (musl, macOS) every call here is a no-op.
"""

from __future__ import annotations

import asyncio
import ctypes
import glob
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc_function(name: str, argtypes: list[Any], restype: Any,
                   library: str | None = "libc.so.6") -> Any:
    """``name`` from glibc, typed; None on another OS or C library (musl, macOS).

    ``library=None`` looks in the process's global scope instead.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL(library), name, None)
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


# jemalloc, when the server runs under it (``allocator`` setting; the ``serve``
# command re-executes itself with Debian's libjemalloc2 preloaded). glibc keeps
# memory freed by the model threads inside its arenas, and even capped at two
# arenas, with large blocks mapped apart and a trim every minute, RSS under an
# 8-session soak still rose ~25 MB/h (benchmarks/results/soak_60min_glibc_tuned.json).
# jemalloc returns what a purge finds free, whole. It purges nothing on its own
# here (decay off): the server purges every JEMALLOC_PURGE_INTERVAL_S instead.
# jemalloc's own decay cost a third of the ASR time: allocations of 8 MiB and up
# (a batch's encoder activations) go to an arena that purges on free, so every
# model call faulted its activations in afresh, ~85,000 page faults a call (a
# decay of 1 s on every arena still faulted a seventh of that). 60 batches of 1-6
# utterances (benchmarks/allocator_faults.py): 28.9 s with 9.4 s of kernel time
# under the old "dirty_decay_ms:1000,muzzy_decay_ms:0", 18.8 s and 0.1 s now. One
# arena: two kept two high-water marks, and at 16 live sessions peak RSS was
# 606-636 MB against 547 MB with one (benchmarks/capacity.py).
JEMALLOC_CONF = "narenas:1,dirty_decay_ms:-1,muzzy_decay_ms:-1"
JEMALLOC_PURGE_INTERVAL_S = 2.0
# glibc's malloc_trim walks every arena; once a minute held RSS flat enough.
GLIBC_TRIM_INTERVAL_S = 60.0
# Set in the re-executed process (to the library's path), so it happens once.
JEMALLOC_PRELOADED_ENV = "STREAMSERVER_JEMALLOC_PRELOADED"
_JEMALLOC_GLOBS = ("/usr/lib/*-linux-gnu/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2",
                   "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
_MALLCTL_ARENAS_ALL = 4096  # jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" = every arena


def find_jemalloc() -> str | None:
    """Path of an installed libjemalloc.so.2 (Debian: libjemalloc2), or None."""
    for pattern in _JEMALLOC_GLOBS:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


# Exported to the global scope only by a jemalloc that is the process's malloc
# (preloaded or linked); wheels that bundle one keep theirs local and prefixed.
_mallctl: Callable[..., int] | None = _libc_function(
    "mallctl", [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                ctypes.c_void_p, ctypes.c_size_t], ctypes.c_int, library=None)


def jemalloc_active() -> bool:
    """Whether this process's malloc is jemalloc."""
    return _mallctl is not None


def _mallctl_read(name: str, ctype: Any = ctypes.c_size_t) -> int | None:
    """A jemalloc setting or statistic of C type ``ctype`` (None if unreadable)."""
    value = ctype(0)
    size = ctypes.c_size_t(ctypes.sizeof(value))
    if _mallctl is None or _mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size),
                                    None, 0) != 0:
        return None
    return int(value.value)


def _mallctl_write(name: str, value: int, ctype: Any = ctypes.c_uint64) -> bool:
    new = ctype(value)
    return _mallctl is not None and _mallctl(name.encode(), None, None, ctypes.byref(new),
                                             ctypes.sizeof(new)) == 0


def _mallctl_void(name: str) -> bool:
    return _mallctl is not None and _mallctl(name.encode(), None, None, None, 0) == 0


def _set_decay(dirty_ms: int, muzzy_ms: int) -> None:
    """jemalloc's decay for arenas made from now on and for every existing one (an
    arena not created yet, such as the one for large blocks, refuses: it takes the
    default when it is)."""
    prefixes = ["arenas", *(f"arena.{i}" for i in range(
        _mallctl_read("arenas.narenas", ctypes.c_uint) or 0))]
    for prefix in prefixes:
        _mallctl_write(f"{prefix}.dirty_decay_ms", dirty_ms, ctypes.c_ssize_t)
        _mallctl_write(f"{prefix}.muzzy_decay_ms", muzzy_ms, ctypes.c_ssize_t)


@contextmanager
def freeing_at_once() -> Iterator[None]:
    """Under jemalloc, pages freed inside the block go back to the kernel at once.

    For loading models. CTranslate2 4.8 packs Whisper's weights for MKL at load
    (``CT2_PACKED_GEMM``, on by default: a fifth less CPU per audio second here):
    it allocates ~0.75 GB it mostly never writes, and frees the unpacked weights
    and its scratch as it goes. With decay off (:data:`JEMALLOC_CONF`) those freed
    pages are still resident when the packed buffers reuse them, so ~95 MB of
    buffer nobody writes stayed in RSS for the process's life, where glibc's fresh
    mappings cost nothing (benchmarks/load_memory.py). Decay back to what it was
    afterwards. A no-op on glibc.
    """
    if not jemalloc_active():
        yield
        return
    dirty = _mallctl_read("arenas.dirty_decay_ms", ctypes.c_ssize_t)
    muzzy = _mallctl_read("arenas.muzzy_decay_ms", ctypes.c_ssize_t)
    _set_decay(0, 0)
    try:
        yield
    finally:
        if dirty is not None and muzzy is not None:
            _set_decay(dirty, muzzy)


def jemalloc_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute this process in so that jemalloc is its malloc.

    None when it already is, when a re-execution already tried, or when no
    libjemalloc is installed. An operator's own ``MALLOC_CONF`` wins over
    :data:`JEMALLOC_CONF`; an existing ``LD_PRELOAD`` is kept, first.
    """
    if jemalloc_active() or environ.get(JEMALLOC_PRELOADED_ENV):
        return None
    path = find_jemalloc()
    if path is None:
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = ":".join(p for p in (environ.get("LD_PRELOAD", ""), path) if p)
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    env[JEMALLOC_PRELOADED_ENV] = path
    return env


def heap_stats() -> dict[str, int]:
    """The allocator's own account of the malloc heap, in bytes (empty where unavailable).

    ``in_use``: allocated and not freed; ``free``: freed but kept (glibc: inside
    the arenas, what fragmentation looks like; jemalloc: resident beyond what is
    allocated, i.e. dirty pages waiting for their decay, and metadata);
    ``mmapped`` (glibc only): large blocks served by their own mappings. RSS
    rising with ``in_use`` is a leak, with ``free`` fragmentation, with neither
    memory outside malloc (thread stacks, runtimes' own mappings).
    """
    if jemalloc_active():
        _mallctl_write("epoch", 1)  # jemalloc's statistics are a snapshot per epoch
        allocated = _mallctl_read("stats.allocated")
        resident = _mallctl_read("stats.resident")
        if allocated is None or resident is None:
            return {}
        return {"in_use": allocated, "free": max(0, resident - allocated)}
    if _mallinfo2 is None:
        return {}
    info = _mallinfo2()
    return {"in_use": int(info.uordblks), "free": int(info.fordblks),
            "mmapped": int(info.hblkhd)}


def trim_supported() -> bool:
    return jemalloc_active() or _malloc_trim is not None


def default_trim_interval_s() -> float:
    """How often :func:`trim` runs when the configuration leaves it to the allocator."""
    return JEMALLOC_PURGE_INTERVAL_S if jemalloc_active() else GLIBC_TRIM_INTERVAL_S


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def trim() -> int:
    """Release free heap pages to the kernel; returns the bytes RSS fell by (>= 0)."""
    before = rss_bytes()
    if jemalloc_active():
        # Every arena's dirty pages now rather than at the end of their decay.
        _mallctl_void(f"arena.{_MALLCTL_ARENAS_ALL}.purge")
    elif _malloc_trim is not None:
        _malloc_trim(0)
    else:
        return 0
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
