"""What each malloc costs the live path: deadlines, CPU and RSS at N sessions.

    .venv/bin/python benchmarks/allocator.py [--sessions 8] [--seconds 60]
        [--configs jemalloc 0:0 2:0 2:262144 2:1048576 2:4194304] [--repeats 2]
        [--out benchmarks/results/allocator.json]

Each config starts a fresh server: ``jemalloc`` (``STREAMSERVER_ALLOCATOR=jemalloc``,
the default's choice where libjemalloc2 is installed), or glibc as
``arena_max:mmap_threshold_bytes`` (0 = glibc's default; ``STREAMSERVER_ALLOCATOR=glibc``
with ``STREAMSERVER_MALLOC_ARENA_MAX`` / ``STREAMSERVER_MALLOC_MMAP_THRESHOLD_BYTES``),
and runs one capacity level (``benchmarks/capacity.py``: N real-time sessions of
real clips starting within a second, D = 2000 ms), ``--repeats`` times. Reported per
run: deadline-masked share of speech, release jitter p99, CPU seconds per audio
second, peak RSS, and after the level RSS and the allocator's in-use / free (and
glibc's mmapped) bytes (``/metrics``). Whether memory *grows* over hours is the soak's question
(benchmarks/soak.py); this one is whether a setting is affordable at all.
Writes the JSON and a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity import (
    ROOT,
    build_program,
    free_port,
    heap_by_kind_mb,
    result_header,
    run_level,
    scrape,
    server_allocator,
    start_server,
)

MB = 1 << 20


def heap_after(port: int) -> dict[str, float]:
    values = scrape(f"http://127.0.0.1:{port}",
                    ("streamserver_heap_bytes", "process_resident_memory_bytes"))
    return {"rss_after_mb": round(values.get("process_resident_memory_bytes", 0) / MB, 1),
            **heap_by_kind_mb(values)}


def run_config(spec: str, args: argparse.Namespace, program: Any,
               log: Path) -> dict[str, Any]:
    port = free_port()
    if spec == "jemalloc":
        env = {"STREAMSERVER_ALLOCATOR": "jemalloc"}
        arena_max = threshold = 0
    else:
        arena_max, threshold = (int(v) for v in spec.split(":"))
        env = {"STREAMSERVER_ALLOCATOR": "glibc",
               "STREAMSERVER_MALLOC_ARENA_MAX": str(arena_max),
               "STREAMSERVER_MALLOC_MMAP_THRESHOLD_BYTES": str(threshold)}
    server = start_server(port, args.workers, args.sessions + 2, log, "info", env)
    allocator = server_allocator(server.pid)
    try:
        level = asyncio.run(run_level(f"ws://127.0.0.1:{port}/v1/stream", server.pid,
                                      args.sessions, program, args.delay_ms))
        level.update(heap_after(port))
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The server says what it applied; nothing when both are glibc's defaults.
    applied = [json.loads(line) for line in log.read_text(errors="replace").splitlines()
               if '"msg":"allocator"' in line]
    return {"config": spec, "allocator": allocator,
            "arena_max": arena_max, "mmap_threshold_bytes": threshold,
            "applied": {k: v for k, v in (applied[0] if applied else {}).items()
                        if k in ("arena_max", "mmap_threshold_bytes")},
            **{k: level[k] for k in level if k != "sessions"}}


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(r: dict[str, Any]) -> str:
        if r.get("config") == "jemalloc":
            return "jemalloc\n(default)"
        threshold = r["mmap_threshold_bytes"]
        size = (f"{threshold >> 20} MiB" if threshold and threshold % (1 << 20) == 0
                else f"{threshold >> 10} KiB")
        mmap = f"mmap ≥ {size}" if threshold else "mmap dynamic"
        return f"glibc\narenas {r['arena_max'] or 'default'}\n{mmap}"

    labels = [label(r) for r in runs]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(runs))
    ax.bar(x, [100 * (r["deadline_masked_share"] or 0) for r in runs], color="tab:red")
    ax.axhline(1.0, ls="--", c="k", lw=0.8, label="1 % (capacity rule)")
    ax.set_ylabel("deadline-masked speech (%)")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.legend()
    bx.bar(x, [r["peak_rss_mb"] for r in runs], color="tab:blue", label="peak RSS")
    bx.plot(list(x), [r.get("rss_after_mb") for r in runs], "ko", label="RSS after the level")
    bx.set_ylabel("MB")
    bx.set_xticks(list(x), labels, fontsize=7)
    bx.legend()
    fig.suptitle(f"malloc settings at {runs[0].get('n', '?')} sessions: deadlines and RSS",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--configs", nargs="+",
                    default=["jemalloc", "0:0", "2:0", "2:262144", "2:1048576", "2:4194304"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "allocator.json")
    args = ap.parse_args(argv)

    program = build_program(args.data, args.seconds, seed=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for spec in args.configs:
        if spec != "jemalloc" and not re.fullmatch(r"\d+:\d+", spec):
            ap.error(f"config {spec!r}: jemalloc or ARENA_MAX:MMAP_THRESHOLD_BYTES")
        for _ in range(args.repeats):
            run = run_config(spec, args, program, args.out.with_suffix(".log"))
            run["n"] = args.sessions
            runs.append(run)
            print(json.dumps({k: run.get(k) for k in (
                "config", "allocator", "deadline_masked_share", "jitter_ms_p99",
                "cpu_s_per_audio_s", "peak_rss_mb", "rss_after_mb")}), flush=True)
    result = {
        **result_header("allocator.py", argv),
        "sessions": args.sessions,
        "seconds_per_session": args.seconds,
        "delay_ms": args.delay_ms,
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=1))
    plot(runs, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
