"""What goes out in clear when real-time passes come late: PII audible under load.

    .venv/bin/python benchmarks/realtime_leaks.py [--clips dev_008.wav,dev_014.wav]
        [--sessions 8] [--rounds 2] [--delay-ms 1500]

Starts the server on a loopback port and, per clip and round, streams the clip
``--sessions`` times at once in real time (20 ms frames, 8 kHz PCM as a phone
leg sends it, sessions 0.37 s apart), ``--delay-ms`` as the e2e tests run it. On
two cores eight such sessions keep the model busy, so passes come late and the
release of each 20 ms rests on whatever the last pass heard. Reports per clip the
sessions in which a value stayed >= 25 % audible (``evaluation.score_clip``), the
worst and mean audible share, and deadline-masked speech. Not a capacity figure
(``capacity.py``): one clip, one profile (short single-party utterances), chosen
because a CI run found its phone number 26 % audible. Writes
``benchmarks/results/realtime_leaks.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import free_port, start_server  # noqa: E402
from streamserver import audio as audio_mod  # noqa: E402
from streamserver.client import stream_file  # noqa: E402
from streamserver.evaluation import Span, score_clip  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
PHONE_RATE = 8000


def clip_at_8k(name: str, tmp: Path) -> tuple[Path, np.ndarray, list[Span]]:
    manifest = {c["file"]: c for c in json.loads((FIXTURES / "pii_dev_manifest.json").read_text())}
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    pcm = audio_mod.to_int16(audio_mod.resample(inp[:, 0].astype(np.float32) / 32768,
                                                rate, PHONE_RATE))
    path = tmp / f"8k_{name}"
    audio_mod.write_wav(path, pcm[:, None], PHONE_RATE)
    spans = [Span(p["entity"], p["start_s"], p["end_s"]) for p in manifest[name]["pii"]]
    return path, pcm, spans


async def one_round(url: str, path: Path, pcm: np.ndarray, spans: list[Span], sessions: int,
                    delay_ms: int) -> list[dict[str, Any]]:
    async def one(k: int) -> dict[str, Any]:
        await asyncio.sleep(k * 0.37)
        out, _, events = await stream_file(path, url, {"delay_ms": delay_ms}, "realtime")
        score = score_clip(pcm, out[:, 0], PHONE_RATE, spans)
        stats = next(e for e in events if e["type"] == "session.end")["stats"]
        return {"audible": [round(a, 3) for _, a in score.entities],
                "deadline_masked_ms": stats["deadline_masked_ms"]}

    return list(await asyncio.gather(*(one(k) for k in range(sessions))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clips", default="dev_008.wav,dev_014.wav")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--delay-ms", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/realtime_leaks.json")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="realtime-leaks-"))
    port = free_port()
    proc = start_server(port, workers=2, max_sessions=args.sessions + 1, log=tmp / "server.log")
    url = f"ws://127.0.0.1:{port}/v1/stream"
    report: dict[str, Any] = {}
    finished = False
    try:
        for name in args.clips.split(","):
            path, pcm, spans = clip_at_8k(name, tmp)
            rows = [r for _ in range(args.rounds)
                    for r in asyncio.run(one_round(url, path, pcm, spans, args.sessions,
                                                   args.delay_ms))]
            worst = [max(r["audible"]) for r in rows]
            report[name] = {
                "entities": [s.entity for s in spans],
                "sessions_run": len(rows),
                "sessions_with_a_value_25pct_audible": sum(w >= 0.25 for w in worst),
                "worst_audible": round(max(worst), 3),
                "mean_worst_audible": round(float(np.mean(worst)), 3),
                "deadline_masked_ms_mean": round(float(np.mean(
                    [r["deadline_masked_ms"] for r in rows])), 1),
                "sessions": rows,
            }
            print(name, {k: v for k, v in report[name].items() if k != "sessions"})
        finished = True
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if not finished:  # the server's (redacted) log says why
            sys.stderr.write((tmp / "server.log").read_text(errors="replace")[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)  # the 8 kHz copies and the log
    out = {
        "command": "python benchmarks/realtime_leaks.py " + " ".join(argv or sys.argv[1:]),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "profile": "one short pii_dev clip a session, 8 kHz PCM, real time, 0.37 s apart",
        "sessions": args.sessions, "rounds": args.rounds, "delay_ms": args.delay_ms,
        "clips": report,
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
