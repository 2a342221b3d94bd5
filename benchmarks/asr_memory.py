"""Server-process memory of Whisper (CTranslate2) against input shapes and kernel cache.

    .venv/bin/python benchmarks/asr_memory.py [--calls 200]
        [--configs 2:1024 50:1024 2:0 50:0] [--out benchmarks/results/asr_memory.json]

Two things in the ASR runtime keep memory for every distinct input shape it has
run, and a live server sees utterances of every length in batches of every size:

* oneDNN, which runs CTranslate2's int8 GEMMs on CPUs where MKL is not used (this
  machine's AMD EPYC), keeps a compiled kernel per matrix shape, up to
  ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` (default 1,024). The server sets it to 0
  unless the operator sets it (streamserver/engines/whisper.py).
* Our engine pads each batch's mel features to a width rounded up to
  ``WhisperEngine._WIDTH_STEP`` frames of 10 ms: 2 (the encoder's stride, no
  rounding) allows 1,500 widths, 50 (0.5 s, the default) 60.

Each config ``step:capacity`` runs in a fresh process: the real tiny.en engine,
``--calls`` batches of 1-4 utterances of random length (1-20 s, seeded, real
speech from a fixture), ``malloc_trim`` and an RSS sample every 10 calls (as the
server trims), and the time spent in the calls. Writes the JSON (RSS curve per
config, growth over the second half, seconds per call) and a PNG of RSS against
calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "dev_008.wav"


def probe(step: int, calls: int, seed: int) -> dict[str, Any]:
    """Runs in its own process: one engine, ``calls`` batches, RSS every 10 calls."""
    import numpy as np
    import psutil

    sys.path.insert(0, str(ROOT))
    from streamserver import audio as audio_mod
    from streamserver import memory
    from streamserver.config import AsrConfig
    from streamserver.engines.whisper import WhisperEngine

    WhisperEngine._WIDTH_STEP = step
    engine = WhisperEngine(AsrConfig(), 1)
    samples, rate = audio_mod.read_wav(str(FIXTURE))
    speech = audio_mod.resample(samples[:, 0].astype(np.float32) / 32768, rate, 16000)
    speech = np.tile(speech, 3)
    rng = np.random.default_rng(seed)
    proc = psutil.Process()
    curve: list[list[float]] = []
    busy = 0.0
    for i in range(calls + 1):
        if i % 10 == 0 or i == calls:
            memory.trim()
            curve.append([i, round(proc.memory_info().rss / 2**20, 1)])
        if i == calls:
            break
        batch = [(speech[: int(rng.integers(16000, 16000 * 20))].copy(), "")
                 for _ in range(int(rng.integers(1, 5)))]
        started = time.perf_counter()
        engine.transcribe_batch(batch)
        busy += time.perf_counter() - started
    return {"curve": curve, "seconds_per_call": round(busy / calls, 4)}


def summarise(step: int, capacity: int, run: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    curve = run["curve"]
    half = [p for p in curve if p[0] >= curve[-1][0] / 2]
    slope = (round(float(np.polyfit([p[0] for p in half], [p[1] for p in half], 1)[0]) * 100, 1)
             if len(half) >= 3 else None)
    return {
        "step_frames": step,
        "onednn_primitive_cache_capacity": capacity,
        "step_s": step / 100,
        "max_distinct_widths": -(-3000 // step),
        "rss_after_load_mb": curve[0][1],
        "rss_end_mb": curve[-1][1],
        "rss_growth_mb": round(curve[-1][1] - curve[0][1], 1),
        "second_half_mb_per_100_calls": slope,
        "seconds_per_call": run["seconds_per_call"],
        "curve_calls_rss_mb": curve,
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        x, y = zip(*r["curve_calls_rss_mb"], strict=True)
        ax.plot(x, y, ".-", label=f"width step {r['step_s']:g} s, kernel cache "
                f"{r['onednn_primitive_cache_capacity']}: {r['rss_end_mb']:.0f} MB, "
                f"{r['seconds_per_call'] * 1000:.0f} ms/call")
    ax.set_xlabel("ASR calls (batches of 1-4 utterances, 1-20 s each)")
    ax.set_ylabel("process RSS after malloc_trim (MB)")
    ax.set_title("Whisper tiny.en (int8, CPU) memory: encoder width step and oneDNN "
                 "kernel cache", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--configs", nargs="+", default=["2:1024", "50:1024", "2:0", "50:0"],
                    help="width step (10 ms frames) : oneDNN primitive cache capacity")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # the child's entry
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "asr_memory.json")
    args = ap.parse_args(argv)
    if args.probe is not None:
        print(json.dumps(probe(args.probe, args.calls, args.seed)))
        return 0
    results = []
    for config in args.configs:
        step, capacity = (int(x) for x in config.split(":"))
        out = subprocess.run(
            [sys.executable, __file__, "--probe", str(step), "--calls", str(args.calls),
             "--seed", str(args.seed)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(capacity)})
        results.append(summarise(step, capacity,
                                 json.loads(out.stdout.strip().splitlines()[-1])))
        r = results[-1]
        print(f"{config}: {r['rss_after_load_mb']} -> {r['rss_end_mb']} MB, second half "
              f"{r['second_half_mb_per_100_calls']} MB/100 calls, "
              f"{r['seconds_per_call']} s/call", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "benchmarks/asr_memory.py " + " ".join(argv or sys.argv[1:]),
        "date": date.today().isoformat(), "commit": commit,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "calls": args.calls, "seed": args.seed, "fixture": FIXTURE.name,
        "results": results,
    }, indent=1))
    plot(results, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
