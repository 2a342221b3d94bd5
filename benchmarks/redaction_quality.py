"""Redaction quality of ``streamserver redact`` (pace=asap) on the shared data.

    .venv/bin/python benchmarks/redaction_quality.py [--delay-ms 2000] [--data ../shared/data]

Scores every ``pii_dev`` clip against its exact spans and every ``real/a*``
clip (no personal data: anything masked is over-redaction), as
``shared/data/README.md`` defines. Writes ``benchmarks/results/redaction_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver import audio as audio_mod  # noqa: E402
from streamserver.cli import redact_file  # noqa: E402
from streamserver.config import AsrConfig  # noqa: E402
from streamserver.engines.bundle import Engines  # noqa: E402
from streamserver.evaluation import (  # noqa: E402
    Span,
    masked_speech_share,
    score_clip,
    summarise,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--model", default="")
    ap.add_argument("--encoder-context", choices=("clip", "full"), default="clip")
    ap.add_argument("--limit", type=int, default=0, help="only the first N clips of each set")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "redaction_quality.json")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    engines = Engines.load(AsrConfig(model=args.model, encoder_context=args.encoder_context))
    params = {"delay_ms": args.delay_ms}
    manifest = json.loads((args.data / "pii_dev" / "manifest.json").read_text())
    if args.limit:
        manifest = manifest[: args.limit]
    t0 = time.perf_counter()
    scores, clips = [], []
    for clip in manifest:
        path = args.data / "pii_dev" / clip["file"]
        inp, rate = audio_mod.read_wav(path)
        out, _, transcript = redact_file(path, params, engines)
        spans = [Span(p["entity"], p["start_s"], p["end_s"]) for p in clip["pii"]]
        s = score_clip(inp[:, 0], out[:, 0], rate, spans)
        scores.append(s)
        clips.append({"file": clip["file"], "entities": s.entities,
                      "over_masked_frames": s.away_masked, "text": transcript["text"]})
        if args.verbose:
            print(clip["file"], [(e, round(a, 2)) for e, a in s.entities], s.away_masked,
                  transcript["text"], file=sys.stderr)
    summary = summarise(scores)

    real = sorted((args.data / "real").glob("a*.wav"))
    if args.limit:
        real = real[: args.limit]
    masked = speech = 0
    real_clips = []
    for path in real:
        inp, rate = audio_mod.read_wav(path)
        out, _, transcript = redact_file(path, params, engines)
        m, s_ = masked_speech_share(inp[:, 0], out[:, 0], rate)
        masked, speech = masked + m, speech + s_
        real_clips.append({"file": path.name, "masked_share": round(m / s_, 4) if s_ else 0.0,
                           "redactions": [r["entity"] for r in transcript["redactions"]]})
        if args.verbose:
            print(path.name, round(m / max(s_, 1), 3), transcript["text"][:200], file=sys.stderr)
    elapsed = time.perf_counter() - t0
    result = {
        "command": "python benchmarks/redaction_quality.py" + (f" --delay-ms {args.delay_ms}"),
        "date": date.today().isoformat(),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "model": args.model or "tiny.en (bundled)",
        "encoder_context": args.encoder_context,
        "delay_ms": args.delay_ms,
        "pii_dev": summary.as_dict(),
        "real_no_pii": {"clips": len(real), "masked_speech_share":
                        round(masked / speech, 4) if speech else 0.0},
        "elapsed_s": round(elapsed, 1),
        "pii_dev_clips": clips,
        "real_clips": real_clips,
    }
    # Transcripts here are of synthetic clips; still, keep only redacted text.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("pii_dev", "real_no_pii", "elapsed_s")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
