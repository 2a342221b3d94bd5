"""Resident memory of an idle server, by allocator and weight packing.

    .venv/bin/python benchmarks/load_memory.py [--out benchmarks/results/load_memory.json]

CTranslate2 4.8 packs Whisper's linear weights for MKL at load (``CT2_PACKED_GEMM``,
on by default on Intel CPUs): a fifth less CPU per audio second in a dense
8-session run here, but it allocates ~0.75 GB of buffers it mostly never writes,
freeing the unpacked weights and its scratch as it goes. Under jemalloc with decay
off (the server's default, streamserver/memory.py) the buffers can land on freed
pages that are still resident, which then count in RSS for the process's life;
the server therefore loads its models inside ``memory.freeing_at_once``. Whether
the pages are reused depends on the heap's layout, so this measures the real
server: a process loading only the models shows no difference.

Each variant starts ``streamserver serve`` on a loopback port (capacity.py's
``start_server``), waits for ``/readyz``, lets the 2 s purge run twice, and reads
the process's RSS, anonymous RSS and mapped size. Variants: jemalloc with
``freeing_at_once`` (the default) and without it (patched out by a
``sitecustomize`` on the server's path: the load as before the change), packing
off, and glibc. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity import ROOT, free_port, server_allocator, start_server

# Put on the server's path for the "decay off while loading" variant.
_KEEP_FREED = """
from contextlib import nullcontext
from streamserver import memory
memory.freeing_at_once = nullcontext
"""

# key: (name, allocator, CT2_PACKED_GEMM, how freed memory is handled while loading)
VARIANTS = {
    "default": ("jemalloc, packed, freeing at once (default)", "jemalloc", "1", "free"),
    "keep": ("jemalloc, packed, decay off while loading", "jemalloc", "1", "keep"),
    "unpacked": ("jemalloc, not packed", "jemalloc", "0", "free"),
    "glibc": ("glibc, packed", "glibc", "1", "free"),
    "glibc-unpacked": ("glibc, not packed", "glibc", "0", "free"),
}


def run_variant(allocator: str, packed: str, load: str) -> dict[str, Any]:
    env = {"CT2_PACKED_GEMM": packed, "STREAMSERVER_ALLOCATOR": allocator}
    with tempfile.TemporaryDirectory() as tmp:
        if load == "keep":
            Path(tmp, "sitecustomize.py").write_text(_KEEP_FREED)
            env["PYTHONPATH"] = os.pathsep.join([tmp, str(ROOT)])
        proc = start_server(free_port(), 2, 8, Path(tmp) / "server.log", env=env)
        try:
            time.sleep(5)  # two purges (JEMALLOC_PURGE_INTERVAL_S)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            in_use = server_allocator(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if in_use != allocator:
        raise SystemExit(f"{allocator} was asked for, {in_use} is in use")
    return {k: int(re.search(k + r":\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
            for k in ("VmRSS", "RssAnon", "VmSize")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/load_memory.json")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = ap.parse_args()
    import ctranslate2

    rows = []
    for key in args.variants.split(","):
        name, allocator, packed, load = VARIANTS[key]
        result = run_variant(allocator, packed, load)
        rows.append({"variant": name, "key": key, "allocator": allocator,
                     "packed_gemm": packed == "1", "freeing_at_once": load == "free",
                     "rss_mb": result["VmRSS"], "rss_anon_mb": result["RssAnon"],
                     "mapped_mb": result["VmSize"]})
        print(f"{name:48s} RSS {result['VmRSS']:4d} MB (anon {result['RssAnon']:4d}), "
              f"mapped {result['VmSize']:5d} MB", flush=True)
    out = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
           "ctranslate2": ctranslate2.__version__, "variants": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
