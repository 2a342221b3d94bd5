"""malloc_trim hands memory freed inside a thread's arena back to the OS."""

from __future__ import annotations

import threading

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
    assert ServerConfig().memory_trim_interval_s == 60.0
    ServerConfig(memory_trim_interval_s=0).validate()  # off
    with pytest.raises(ConfigError, match="memory_trim_interval_s"):
        ServerConfig(memory_trim_interval_s=-1).validate()
