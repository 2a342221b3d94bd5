"""What the streaming Whisper passes cost, by stage, on the same audio (pace=asap).

    .venv/bin/python benchmarks/asr_passes.py [--asr prompt_chars=200] [--clips real-long]

Runs the real session core offline (``redact_file``, fixed 1 s steps, so every
configuration sees exactly the same passes) over real calls and reports, per
configuration: the passes, their wall time per stage (features, encoder, decoder,
word alignment), the tokens each pass decoded and the share of passes that
decoded up to the token limit (the decoder looping: "yes my name is violet. yes my
name is violet. ..."), and the words finalised. Single process, one thread per
model call: a like-for-like measure of work, not of capacity (``capacity.py``).

Default: the configuration as shipped and the one before (``prompt_chars=200``),
over the real support calls of 30 s or more. Writes
``benchmarks/results/asr_passes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver.cli import redact_file  # noqa: E402
from streamserver.config import AsrConfig  # noqa: E402
from streamserver.engines.bundle import Engines  # noqa: E402

LONG_CALLS = ("b10_ibm_english2_g712_loan_call.wav", "b13_google_commercial_mono_callcenter.wav",
              "b17_aws_pca_auto0_car_call_first120s.wav")


def measure(clips: list[Path], overrides: dict[str, int]) -> dict[str, Any]:
    engines = Engines.load(AsrConfig(cpu_threads=1, **overrides), workers=1)
    stages: dict[str, float] = {}
    engines.asr.on_stage = lambda s, t: stages.__setitem__(s, stages.get(s, 0.0) + t)
    rows: list[tuple[int, int]] = []  # (tokens decoded, token limit) per buffer
    engines.asr.on_decoded = lambda tokens, limit: rows.append((tokens, limit))
    words = 0
    audio_s = 0.0
    t0 = time.perf_counter()
    for clip in clips:
        out, rate, transcript = redact_file(clip, engines=engines)
        words += transcript["stats"]["final_words"]
        audio_s += out.shape[0] / rate
    elapsed = time.perf_counter() - t0
    tokens = np.array([r[0] for r in rows])
    limits = np.array([r[1] for r in rows])
    return {
        "asr_overrides": overrides,
        "audio_s": round(audio_s, 1),
        "passes": len(rows),
        "tokens_per_pass_mean": round(float(tokens.mean()), 1) if rows else None,
        "passes_at_token_limit": round(float((tokens >= limits).mean()), 3) if rows else None,
        "stage_s": {k: round(v, 2) for k, v in sorted(stages.items())},
        "model_s_per_audio_s": round(sum(stages.values()) / audio_s, 4),
        "final_words": words,
        "elapsed_s": round(elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--asr", action="append", default=None, metavar="FIELD=VALUE",
                    help="a configuration to measure (repeat for more; int AsrConfig "
                         "fields, comma-separated: prompt_chars=200,step_ms=500); "
                         "'default' = as shipped")
    ap.add_argument("--clips", nargs="*", type=Path, default=None,
                    help="WAV files instead of the long real calls")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "asr_passes.json")
    args = ap.parse_args(argv)
    clips = args.clips or [args.data / "real" / name for name in LONG_CALLS]
    missing = [c for c in clips if not c.exists()]
    if missing:
        raise SystemExit(f"asr_passes: missing {', '.join(map(str, missing))}")
    configs = args.asr or ["default", "prompt_chars=200"]
    runs = []
    for spec in configs:
        overrides = {} if spec == "default" else {
            k: int(v) for k, v in (part.split("=", 1) for part in spec.split(","))}
        run = measure(clips, overrides)
        print(json.dumps(run), flush=True)
        runs.append(run)
    result = {
        "command": "python benchmarks/asr_passes.py" + "".join(
            f" --asr {c}" for c in (args.asr or [])),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model": "tiny.en (bundled)",
        "clips": [c.name for c in clips],
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
