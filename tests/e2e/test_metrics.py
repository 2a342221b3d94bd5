"""Prometheus /metrics: counts and timings move with real sessions, and carry no content."""

from __future__ import annotations

import asyncio
import json

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
    # No transcript text (numbers like 0.0175 may well appear as values: look for the
    # value as spoken or written, not its last digits).
    assert "Linda" not in after and "555-0175" not in after and "5550175" not in after


def test_server_hands_freed_memory_back(tmp_path) -> None:
    """The allocator is tuned and the periodic malloc_trim runs in the serving process,
    and /metrics shows the memory an operator needs to tell a leak from fragmentation."""
    import time

    from tests.conftest import start_server, stop_server

    srv = start_server(tmp_path, env={"STREAMSERVER_MEMORY_TRIM_INTERVAL_S": "0.5"})
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
        mmapped = metric_value(text, 'streamserver_heap_bytes{kind="mmapped"}')
        assert 10 << 20 < in_use < rss and 0 < mmapped < rss
        assert metric_value(text, 'streamserver_heap_bytes{kind="free"}') >= 0
        tuned = [json.loads(line) for line in srv.log_text().splitlines()
                 if '"allocator tuned"' in line]
        assert tuned and tuned[0]["arena_max"] == 2
        assert tuned[0]["mmap_threshold_bytes"] == 4 << 20
        assert srv.proc.poll() is None
    finally:
        stop_server(srv)
