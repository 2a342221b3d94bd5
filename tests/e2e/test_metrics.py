"""Prometheus /metrics: counts and timings move with real sessions, and carry no content."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from streamserver import memory
from streamserver.cli import stream_file
from tests.conftest import FIXTURES, metric_value, scrape_metrics


def test_metrics_follow_a_session(server) -> None:
    before = scrape_metrics(server.http)
    asyncio.run(stream_file(FIXTURES / "dev_008.wav", server.url, {"encoding": "pcm_s16le"},
                            pace="asap"))
    after = scrape_metrics(server.http)
    started = 'streamserver_sessions_started_total{transport="websocket"}'
    assert metric_value(after, started) == metric_value(before, started) + 1
    audio = "streamserver_audio_in_seconds_total"
    assert metric_value(after, audio) >= metric_value(before, audio) + 5.0  # dev_008 is ~8 s
    person = 'streamserver_redactions_total{entity="PERSON"}'
    assert metric_value(after, person) >= metric_value(before, person) + 1
    for stage in ("asr", "pii", "analysis", "vad"):
        assert metric_value(after, f'streamserver_stage_seconds_count{{stage="{stage}"}}') > 0
    assert "streamserver_sessions_active" in after and "streamserver_asr_queue_depth" in after
    # The event loop's own lateness is watched all the time (the floor of jitter).
    assert metric_value(after, "streamserver_event_loop_lag_seconds_count") > 0
    # Speech no word explains, and what the dialogue state did, are counted too.
    for name in ("streamserver_unexplained_speech_seconds_total",
                 "streamserver_unexplained_masked_seconds_total",
                 "streamserver_requests_heard_total"):
        assert re.search(rf"^{name} ", after, re.M), name
        assert metric_value(after, name) >= metric_value(before, name)
    # No transcript text (numbers like 0.0175 may well appear as values: look for the
    # value as spoken or written, not its last digits).
    assert "Linda" not in after and "555-0175" not in after and "5550175" not in after


@pytest.mark.parametrize("allocator", ["auto", "glibc"])
def test_server_hands_freed_memory_back(tmp_path, allocator: str) -> None:
    """The serving process runs the allocator it was configured with (jemalloc when
    installed, as the test command installs it; else tuned glibc), the periodic
    trim runs in it, and /metrics shows the memory an operator needs to tell a
    leak from fragmentation."""
    import time

    from tests.conftest import start_server, stop_server

    srv = start_server(tmp_path, env={"STREAMSERVER_MEMORY_TRIM_INTERVAL_S": "0.5",
                                      "STREAMSERVER_ALLOCATOR": allocator})
    try:
        asyncio.run(stream_file(FIXTURES / "dev_008.wav", srv.url, {"encoding": "pcm_s16le"},
                                pace="asap"))
        deadline = time.monotonic() + 10
        trims_total = "streamserver_memory_trims_total"
        while (trims := metric_value(scrape_metrics(srv.http), trims_total)) < 2:
            assert time.monotonic() < deadline, "no trims counted"
            time.sleep(0.25)
        text = scrape_metrics(srv.http)
        assert metric_value(text, 'streamserver_stage_seconds_count{stage="memory_trim"}') >= trims
        assert "streamserver_memory_trimmed_bytes_total" in text
        rss = metric_value(text, "process_resident_memory_bytes")
        in_use = metric_value(text, 'streamserver_heap_bytes{kind="in_use"}')
        # Allocated bytes are mapped, not necessarily resident: CTranslate2 4.8
        # mallocs ~0.7 GB at model load that it never touches (docs/benchmarks.md).
        status = Path(f"/proc/{srv.proc.pid}/status").read_text()
        mapped = 1024 * int(next(line.split()[1] for line in status.splitlines()
                                 if line.startswith("VmSize:")))
        assert 10 << 20 < in_use < mapped and 0 < rss < mapped
        assert metric_value(text, 'streamserver_heap_bytes{kind="free"}') >= 0
        said = [json.loads(line) for line in srv.log_text().splitlines()
                if '"msg":"allocator"' in line]
        maps = Path(f"/proc/{srv.proc.pid}/maps").read_text()
        if allocator == "auto":
            # Re-executed in place (same PID) with Debian's libjemalloc2 preloaded.
            assert "libjemalloc" in maps
            assert said and said[0]["allocator"] == "jemalloc"
            assert said[0]["malloc_conf"] == memory.JEMALLOC_CONF
            assert 'kind="mmapped"' not in text  # jemalloc has no such kind
        else:
            assert "libjemalloc" not in maps
            assert said and said[0] == {**said[0], "allocator": "glibc", "arena_max": 2,
                                        "mmap_threshold_bytes": 4 << 20}
            assert 0 < metric_value(text, 'streamserver_heap_bytes{kind="mmapped"}') < mapped
        assert srv.proc.poll() is None
    finally:
        stop_server(srv)
