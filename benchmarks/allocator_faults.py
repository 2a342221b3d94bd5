"""Page faults and kernel time of Whisper calls under different jemalloc settings.

    .venv/bin/python benchmarks/allocator_faults.py [--calls 60]
        [--out benchmarks/results/allocator_faults.json]

Each ``MALLOC_CONF`` runs in a fresh process with Debian's libjemalloc2 preloaded:
the real tiny.en engine on one thread, 5 warm-up then ``--calls`` batches of 1-6
utterances of 1-8 s (seeded, real speech from a fixture), as the live pool sends
them. Reported per config: wall and CPU seconds (user, kernel), minor page
faults, RSS and its high-water mark at the end. The server's default
(``memory.JEMALLOC_CONF``, purged every 2 s by the server itself) is compared with
the previous default (decay of 1 s) and with that plus ``oversize_threshold:0``
(no separate arena for allocations of 8 MiB and up, whose pages are purged as
soon as they are freed). Writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver import memory  # noqa: E402

CONFIGS = {
    "default (decay off, purged by the server)": memory.JEMALLOC_CONF,
    "before 2026-12-07 (decay 1 s)":
        "background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0",
    "decay 1 s, no oversize arena":
        "background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0,"
        "oversize_threshold:0",
}

PROBE = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from streamserver import audio as audio_mod
from streamserver.config import AsrConfig
from streamserver.engines.whisper import WhisperEngine
engine = WhisperEngine(AsrConfig(cpu_threads=1), 1)
samples, rate = audio_mod.read_wav(sys.argv[1] + "/tests/fixtures/dev_008.wav")
speech = np.tile(audio_mod.resample(samples[:, 0].astype(np.float32) / 32768, rate, 16000), 3)
rng = np.random.default_rng(1)
def go(n):
    for _ in range(n):
        engine.transcribe_batch([(speech[: int(rng.integers(16000, 16000 * 8))].copy(), "")
                                 for _ in range(int(rng.integers(1, 7)))])
go(5)
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
go(int(sys.argv[2]))
r1 = resource.getrusage(resource.RUSAGE_SELF)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"wall_s": round(time.perf_counter() - t0, 2),
                  "user_s": round(r1.ru_utime - r0.ru_utime, 2),
                  "kernel_s": round(r1.ru_stime - r0.ru_stime, 2),
                  "minor_faults": r1.ru_minflt - r0.ru_minflt,
                  "rss_mb": int(status["VmRSS"].split()[0]) // 1024,
                  "rss_peak_mb": int(status["VmHWM"].split()[0]) // 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "allocator_faults.json")
    args = ap.parse_args(argv)
    library = memory.find_jemalloc()
    if library is None:
        print("libjemalloc2 is not installed (scripts/bootstrap.sh installs it)", file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    for name, conf in CONFIGS.items():
        env = {**os.environ, "LD_PRELOAD": library, "MALLOC_CONF": conf}
        done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(args.calls)],
                              env=env, capture_output=True, text=True, check=True)
        results[name] = {"malloc_conf": conf, **json.loads(done.stdout.splitlines()[-1])}
        print(name, results[name], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    out = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date": date.today().isoformat(), "commit": commit, "calls": args.calls,
           "cpus": os.cpu_count(), "configs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
