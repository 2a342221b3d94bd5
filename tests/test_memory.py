"""malloc_trim hands memory freed inside a thread's arena back to the OS."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from streamserver import memory
from streamserver.config import ConfigError, ServerConfig


def _fragment_a_thread_arena(keep: list[bytearray]) -> None:
    # 64 KiB blocks sit below glibc's mmap threshold, so they come from this
    # thread's arena; keeping every 16th pins the arena's top, so free() alone
    # cannot shrink it.
    blocks = [bytearray(64 << 10) for _ in range(3200)]  # 200 MiB
    keep.extend(blocks[::16])
    del blocks


def test_trim_releases_memory_freed_inside_an_arena() -> None:
    assert memory.trim_supported()  # Debian: glibc
    keep: list[bytearray] = []
    worker = threading.Thread(target=_fragment_a_thread_arena, args=(keep,))
    worker.start()
    worker.join()
    before = memory.rss_bytes()
    released = memory.trim()
    # ~190 MiB was freed; most of it is whole free pages between the kept blocks.
    assert released > 100 << 20, f"only {released >> 20} MiB released"
    assert memory.rss_bytes() < before - (100 << 20)
    assert len(keep) == 200


def test_trim_interval_is_validated() -> None:
    assert ServerConfig().memory_trim_interval_s is None  # the allocator's default
    assert memory.default_trim_interval_s() == memory.GLIBC_TRIM_INTERVAL_S  # pytest: glibc
    ServerConfig(memory_trim_interval_s=0).validate()  # off
    with pytest.raises(ConfigError, match="memory_trim_interval_s"):
        ServerConfig(memory_trim_interval_s=-1).validate()


# Each allocator test runs in a fresh interpreter: mallopt is process-wide and
# one-way, and the dynamic threshold depends on what the process freed before.
_PROBE = r"""
import ctypes, json, sys, threading
from streamserver import memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = memory.tune_allocator(int(sys.argv[1]), int(sys.argv[2]))
def mmapped_by(size):
    before = memory.heap_stats()["mmapped"]
    p = libc.malloc(size)
    grew = memory.heap_stats()["mmapped"] - before
    libc.free(p)
    return grew
first = mmapped_by(8 << 20)   # above the initial threshold: its own mapping
second = mmapped_by(8 << 20)  # after freeing it, glibc's dynamic threshold moved?
def touch():
    keep = [libc.malloc(1024) for _ in range(64)]
    barrier.wait()
    for p in keep:
        libc.free(p)
barrier = threading.Barrier(8)
threads = [threading.Thread(target=touch) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
print(json.dumps({"applied": applied, "first": first, "second": second}))
"""


def _probe(arena_max: int, threshold: int, env: dict[str, str] | None = None
           ) -> tuple[dict[str, object], int]:
    import json
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in memory._GLIBC_MALLOC_ENV}
    done = subprocess.run([sys.executable, "-c", _PROBE, str(arena_max), str(threshold)],
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=True)
    arenas = sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))
    return json.loads(done.stdout), arenas


def test_glibc_default_lets_large_blocks_into_the_arenas() -> None:
    # The behaviour tune_allocator exists for: once an 8 MiB block is freed,
    # the next one comes from an arena (and stays resident there), and eight
    # threads get arenas of their own.
    result, arenas = _probe(0, 0)
    assert result["applied"] == {}
    assert result["first"] >= 8 << 20
    assert result["second"] == 0
    assert arenas >= 4


def test_tuned_allocator_maps_large_blocks_and_caps_arenas() -> None:
    cfg = ServerConfig()
    result, arenas = _probe(cfg.malloc_arena_max, cfg.malloc_mmap_threshold_bytes)
    assert result["applied"] == {"arena_max": 2, "mmap_threshold_bytes": 4 << 20}
    assert result["first"] >= 8 << 20
    assert result["second"] >= 8 << 20  # still its own mapping: freed straight to the OS
    assert arenas <= 2


def test_operator_glibc_settings_win() -> None:
    result, arenas = _probe(2, 4 << 20, env={"MALLOC_ARENA_MAX": "3"})
    assert result["applied"] == {}
    assert result["second"] == 0  # threshold left dynamic, as the operator's glibc has it
    assert arenas <= 3


def test_heap_stats_and_allocator_settings_are_validated() -> None:
    stats = memory.heap_stats()
    assert set(stats) == {"in_use", "free", "mmapped"}
    assert stats["in_use"] > 0
    cfg = ServerConfig()
    assert (cfg.malloc_arena_max, cfg.malloc_mmap_threshold_bytes) == (2, 4 << 20)
    ServerConfig(malloc_arena_max=0, malloc_mmap_threshold_bytes=0).validate()
    with pytest.raises(ConfigError, match="malloc_arena_max"):
        ServerConfig(malloc_arena_max=-1).validate()
    with pytest.raises(ConfigError, match="malloc_mmap_threshold_bytes"):
        ServerConfig(malloc_mmap_threshold_bytes=64 << 20).validate()


def test_jemalloc_environment_preloads_the_installed_library_once() -> None:
    # The test command installs libjemalloc2 (scripts/bootstrap.sh), as serve.sh does.
    path = memory.find_jemalloc()
    assert path and path.endswith("libjemalloc.so.2")
    assert not memory.jemalloc_active()  # pytest itself runs on glibc
    env = memory.jemalloc_environment({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "LD_PRELOAD": path, "MALLOC_CONF": memory.JEMALLOC_CONF,
                   memory.JEMALLOC_PRELOADED_ENV: path}
    # The operator's own settings win and are kept; a second pass does nothing.
    env = memory.jemalloc_environment({"LD_PRELOAD": "/opt/x.so", "MALLOC_CONF": "narenas:1"})
    assert env is not None
    assert env["LD_PRELOAD"] == f"/opt/x.so:{path}" and env["MALLOC_CONF"] == "narenas:1"
    assert memory.jemalloc_environment({memory.JEMALLOC_PRELOADED_ENV: path}) is None


_JEMALLOC_PROBE = r"""
import json, threading, time
from streamserver import memory
assert memory.jemalloc_active()
keep = []
def work():
    blocks = [bytearray(64 << 10) for _ in range(3200)]  # 200 MiB from a worker thread
    keep.append(memory.heap_stats()["in_use"])
    keep.extend(blocks[::16])
t = threading.Thread(target=work); t.start(); t.join()
held = keep.pop(0)
peak = memory.rss_bytes()
# Decay is off (JEMALLOC_CONF): the freed pages stay until a purge...
time.sleep(1.5)
kept_rss = memory.rss_bytes()
# ...which the server runs every JEMALLOC_PURGE_INTERVAL_S.
trimmed = memory.trim()
print(json.dumps({"held": held, "peak": peak, "kept_rss": kept_rss, "settled": memory.rss_bytes(),
                  "after": memory.heap_stats(), "trimmed": trimmed, "kept": len(keep),
                  "interval": memory.default_trim_interval_s()}))
"""


def _run_under_jemalloc(probe: str) -> dict[str, Any]:
    """Run ``probe`` in a Python with jemalloc preloaded as the server gets it; its
    JSON output."""
    import json
    import os
    import subprocess
    import sys

    env = memory.jemalloc_environment(os.environ)
    assert env is not None
    done = subprocess.run([sys.executable, "-c", probe], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_jemalloc_keeps_freed_pages_until_the_purge_returns_them() -> None:
    result = _run_under_jemalloc(_JEMALLOC_PROBE)
    assert result["kept"] == 200
    assert result["held"] > 200 << 20  # mallctl stats see the worker's blocks
    assert result["after"]["in_use"] < result["held"] - (150 << 20)
    assert set(result["after"]) == {"in_use", "free"}
    assert result["kept_rss"] > result["peak"] - (50 << 20), result  # no purge by decay
    assert result["settled"] < result["peak"] - (100 << 20), result
    assert result["trimmed"] >= 100 << 20
    assert result["interval"] == memory.JEMALLOC_PURGE_INTERVAL_S


_LOAD_PROBE = r"""
import ctypes, json
from streamserver import memory
assert memory.jemalloc_active()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MB = 1 << 20

def load_like():
    # What loading a packed model does: scratch written and freed, then big
    # buffers allocated of which only a little is ever written.
    scratch = [libc.malloc(16 * MB) for _ in range(12)]
    for p in scratch:
        ctypes.memset(p, 1, 16 * MB)
    for p in scratch:
        libc.free(p)
    return [libc.malloc(16 * MB) for _ in range(12)]

base = memory.rss_bytes()
kept = load_like()  # decay off: the new buffers reuse the resident freed pages
outside = memory.rss_bytes() - base
memory.trim()
outside_trimmed = memory.rss_bytes() - base
base = memory.rss_bytes()
with memory.freeing_at_once():
    kept += load_like()
inside = memory.rss_bytes() - base
print(json.dumps({"outside": outside, "outside_trimmed": outside_trimmed, "inside": inside,
                  "decay": [memory._mallctl_read(name, ctypes.c_ssize_t) for name in (
                      "arenas.dirty_decay_ms", "arena.0.dirty_decay_ms",
                      "arena.0.muzzy_decay_ms")]}))
"""


def test_memory_freed_while_loading_is_not_kept_under_the_buffers_that_follow() -> None:
    """CTranslate2 4.8 packs Whisper's weights at load: it frees scratch and then
    allocates big buffers it mostly never writes. With jemalloc's decay off the
    buffers land on the freed, still resident pages, and no purge can return them
    (they are allocated): ~95 MB for the process's life. Inside ``freeing_at_once``
    freed pages go back at once; decay is restored after it."""
    result = _run_under_jemalloc(_LOAD_PROBE)
    assert result["outside"] > 150 << 20, result  # the unwritten buffers are resident
    assert result["outside_trimmed"] > 150 << 20, result  # and a purge cannot help
    assert result["inside"] < 40 << 20, result
    assert result["decay"] == [-1, -1, -1], result  # JEMALLOC_CONF's, restored


def test_freeing_at_once_is_a_no_op_on_glibc() -> None:
    assert not memory.jemalloc_active()
    with memory.freeing_at_once():
        pass


def test_allocator_setting_is_validated() -> None:
    assert ServerConfig().allocator == "auto"
    for name in ("auto", "jemalloc", "glibc"):
        ServerConfig(allocator=name).validate()
    with pytest.raises(ConfigError, match="allocator"):
        ServerConfig(allocator="tcmalloc").validate()
