"""Does the Python heap grow with sessions? A census before and after, in one process.

    .venv/bin/python benchmarks/heap_census.py [--sessions 30] [--warmup 10]
        [--out benchmarks/results/heap_census.json]

The soak (benchmarks/soak.py) sees the server's RSS; this tells the Python part of
it from the native part. The real server app runs under uvicorn in a thread of
this process, on a loopback port; real clips from the data set are streamed to it
over WebSocket (``pace=asap``, one after another). After ``--warmup`` sessions
(models warm, caches filled) it takes a census: live objects by type after a full
``gc.collect()``, and a ``tracemalloc`` snapshot; then ``--sessions`` more, and
the census again. Reports the object types that grew and the allocation sites
that hold more memory than before (file and line only: no content). A leak of
anything per session shows as a count near a multiple of ``--sessions``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import wave
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def census() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from streamserver.cli import stream_file
    from streamserver.config import ServerConfig
    from streamserver.server.app import create_app

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "heap_census.json")
    args = ap.parse_args(argv)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(ServerConfig.from_env(port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           ws="websockets-sansio", log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    state = app.state.streamserver
    deadline = time.monotonic() + 180
    while not (server.started and state.ready):
        if time.monotonic() > deadline:
            raise SystemExit("server did not become ready")
        time.sleep(0.2)
    url = f"ws://127.0.0.1:{port}/v1/stream"
    clips = sorted(args.data.glob("pii_dev/**/*.wav")) + sorted(args.data.glob("real/**/*.wav"))
    if not clips:
        raise SystemExit(f"no clips under {args.data}")

    def stream(n: int, offset: int) -> float:
        audio_s = 0.0
        for i in range(n):
            clip = clips[(offset + i) % len(clips)]
            asyncio.run(stream_file(clip, url, {"encoding": "pcm_s16le"}, pace="asap"))
            with wave.open(str(clip), "rb") as w:
                audio_s += w.getnframes() / w.getframerate()
        return audio_s

    stream(args.warmup, 0)
    before = census()
    tracemalloc.start(8)
    snap_before = tracemalloc.take_snapshot()
    audio_s = stream(args.sessions, args.warmup)
    after = census()
    snap_after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    server.should_exit = True

    grown = sorted(((after[k] - before[k], k) for k in set(after) | set(before)
                    if after[k] != before[k]), reverse=True)
    sites: list[dict[str, Any]] = []
    for stat in snap_after.compare_to(snap_before, "lineno")[:15]:
        frame = stat.traceback[0]
        sites.append({"site": f"{os.path.relpath(frame.filename, ROOT)}:{frame.lineno}",
                      "kib_diff": round(stat.size_diff / 1024, 1),
                      "blocks_diff": stat.count_diff})
    held = sum(s.size_diff for s in snap_after.compare_to(snap_before, "filename"))
    result = {
        "command": "python benchmarks/heap_census.py " + " ".join(argv or sys.argv[1:]),
        "date": date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip() or None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "warmup_sessions": args.warmup,
        "sessions": args.sessions,
        "audio_s": round(audio_s, 1),
        "python_heap_growth_kib": round(held / 1024, 1),
        "objects_before": sum(before.values()),
        "objects_after": sum(after.values()),
        "object_types_grown": [{"type": k, "count": n} for n, k in grown[:20]],
        "allocation_sites": sites,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("sessions", "audio_s", "python_heap_growth_kib",
                                             "objects_before", "objects_after")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
