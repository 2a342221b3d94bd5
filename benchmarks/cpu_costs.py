"""Per-call CPU cost of the pieces that run inline on the live path.

    .venv/bin/python benchmarks/cpu_costs.py [--out benchmarks/results/cpu_costs.json]

These used to be timed assertions in the unit tests; timings belong here (machines
are noisy), the tests keep only what could fail for a real reason. Each figure is
the median and p99 of many calls, single-threaded, after a warm-up:

* ``spoken_rules_window``: our spoken-form rules (``find_spoken_entities``) over a
  40-word window full of numbers, spelling and an email — run on every detector
  update;
* ``spoken_rules_everyday``: the same with the off-by-default everyday entities;
* ``person_spans``: the name rules over a window with spelled names;
* ``detector_detect``: the whole ``PresidioPiiDetector.detect`` (spaCy + presidio +
  our rules) on a 30-word utterance, and on a 40-word one touching every entity type;
* ``pathological``: the worst of the shapes the patterns read (long runs of dots,
  joiners, digits) — a guard against catastrophic backtracking;
* ``dtmf_per_frame``: the keypad-tone detector per 20 ms frame of speech, analysed
  frame by frame and batched by 60 ms (``min_batch_ms``, as the live session does);
* ``session_per_frame_us``: what the event loop spends in the session core per
  20 ms frame of a real-time session: ``push_audio`` (decode, resample, Silero VAD,
  keypad tones) and ``release`` (masks, delay line, encoding), over the
  ``real/a*`` clips each followed by 90 % of its length in silence (the
  half-silent profile of ``capacity.py``), 16 kHz PCM and 8 kHz mu-law, with a
  Whisper pass and detection every 0.5 s run inline (not timed). The rest of the
  loop's time (WebSocket frames, asyncio, metrics) is not in it.

Writes the JSON (command, date, commit, machine, figures in milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver.core.pii import find_spoken_entities  # noqa: E402
from streamserver.core.pii.entities import CATALOGUE  # noqa: E402
from streamserver.core.pii.names import person_spans  # noqa: E402
from streamserver.core.pii.text import tokenize  # noqa: E402

WINDOW = (
    "so the area code is 617, then 555 0134, um, and my social is four one two, three "
    "three, nine eight seven six, the card is 4000 0566, um, 5566 5556 and my email is "
    "walsh, W A L S H, at example dot com, not www dot example dot org slash help"
)
EVERYDAY = (
    "so my username is john underscore smith 42 and my password is capital B oh b "
    "1 2 exclamation mark, my card 4111 1111 1111 1111 expires oh nine twenty seven "
    "and the CVV is 3 1 4, the VIN is 1 H G C M 8 2 6 3 3 A 0 0 4 3 5 2"
)
NAMES = (
    "that's O-L-U-W-A-S-E-U-N. Yeah, the account's under my wife, Mei Lin Zhang. Last "
    "name is Kowalczyk, K-O-W-A-L-C-Z-Y-K. It's Smith, S as in Sam, M, I, T, H. Can I "
    "speak to Dmitri Volkov, please? I was"
)
UTTERANCE = (
    "Hi, this is Maria Davis calling about my order, my card number is "
    "5129 1417 7763 1703 and you can reach me at 23 0 5 5 0 1 4 9 anytime after 5 "
    "or at my email Michael.Johnson.example.com. Thanks."
)
EVERY_ENTITY = (
    "Hi, this is Maria Davis from Acme Insurance, I'm 42, my zip is 9 0 2 1 0 and "
    "I paid $45.99 on March 3rd at 3:30 pm, the site is acme dot com slash help and "
    "my IP is 192.168.0.1, thanks."
)
PATHOLOGICAL = [
    " dot" * 60, " a" + " dot a" * 40, " " + "a." * 150 + "com", " " + "1." * 150,
    " w" * 60, " 1" * 60, " one" * 60, " at" * 60, " " + "a-" * 200 + "a.com",
    " " + ":" * 100 + "1", " quarter past" * 30,
]


def words_of(text: str) -> list[str]:
    return [" " + w for w in text.split()]


def timed(call: Callable[[], object], runs: int) -> dict[str, float]:
    for _ in range(min(10, runs)):
        call()
    timings = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        timings.append(time.perf_counter() - t0)
    timings.sort()
    return {"median_ms": round(1000 * statistics.median(timings), 3),
            "p99_ms": round(1000 * timings[min(len(timings) - 1, int(0.99 * len(timings)))], 3),
            "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu_costs.json")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--session-seconds", type=float, default=90.0,
                    help="audio per session_per_frame_us line")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="real/a*.wav for session_per_frame_us (else a test fixture)")
    args = ap.parse_args(argv)

    figures: dict[str, Any] = {}
    window = words_of(WINDOW)
    figures["spoken_rules_window"] = timed(lambda: find_spoken_entities(window), args.runs)
    everyday = words_of(EVERYDAY)
    figures["spoken_rules_everyday"] = timed(
        lambda: find_spoken_entities(everyday, set(CATALOGUE)), args.runs)
    toks = tokenize(words_of(NAMES))
    figures["person_spans"] = timed(lambda: person_spans(toks, frozenset()), args.runs)
    worst = 0.0
    for text in PATHOLOGICAL:
        words = [" " + w for w in text.split(" ")[1:]]
        t0 = time.perf_counter()
        find_spoken_entities(words, set(CATALOGUE))
        worst = max(worst, time.perf_counter() - t0)
    figures["pathological_worst_ms"] = round(1000 * worst, 3)

    from streamserver.engines.presidio import PresidioPiiDetector

    detector = PresidioPiiDetector()
    utterance = words_of(UTTERANCE)
    figures["detector_detect"] = timed(lambda: detector.detect(utterance), max(30, args.runs // 5))
    window40 = words_of(EVERY_ENTITY)
    figures["detector_detect_every_entity_40_words"] = timed(
        lambda: detector.detect(window40), max(30, args.runs // 5))

    from streamserver import audio as audio_mod
    from streamserver.core.dtmf import DtmfDetector

    speech, rate = audio_mod.read_wav(ROOT / "tests" / "fixtures" / "dev_008.wav")
    mono = audio_mod.resample(speech[:, 0].astype(np.float32) / 32768, rate, 16000)
    frames = [mono[i:i + 320] for i in range(0, mono.size - 320, 320)]
    # Each 20 ms frame analysed as it comes, and batched by 60 ms as the live session does.
    for key, batch_ms in (("dtmf_per_frame_us", 0.0), ("dtmf_per_frame_us_batched_60ms", 60.0)):
        per_frame = []
        for _ in range(5):
            det = DtmfDetector(min_batch_ms=batch_ms)
            t0 = time.perf_counter()
            for f in frames:
                det.push(f)
            per_frame.append((time.perf_counter() - t0) / len(frames))
        figures[key] = {"median": round(1e6 * statistics.median(per_frame), 1),
                        "best": round(1e6 * min(per_frame), 1)}

    figures["session_per_frame_us"] = session_per_frame(args.data, args.session_seconds)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
              "date": date.today().isoformat(), "commit": commit,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "processor": platform.processor() or platform.machine()},
              "figures": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    return 0


def session_per_frame(data: Path, seconds: float) -> dict[str, dict[str, float]]:
    """Microseconds per 20 ms frame in ``push_audio`` and ``release`` (see above)."""
    from streamserver import audio as audio_mod
    from streamserver.config import SessionConfig
    from streamserver.engines.bundle import Engines

    engines = Engines.load(workers=1)
    clips = sorted((data / "real").glob("a*.wav")) or [ROOT / "tests" / "fixtures" / "dev_008.wav"]
    parts = []
    for clip in clips:
        samples, rate = audio_mod.read_wav(clip)
        mono = audio_mod.resample(samples[:, 0].astype(np.float32) / 32768, rate, 16000)
        parts += [mono, np.zeros(mono.size * 9 // 10, dtype=np.float32)]
    audio16k = np.concatenate(parts)[: int(seconds * 16000)]
    out: dict[str, dict[str, float]] = {}
    for name, encoding, rate in (("pcm16k", "pcm_s16le", 16000), ("mulaw8k", "mulaw", 8000)):
        cfg = SessionConfig.from_params({"encoding": encoding, "sample_rate": rate,
                                         "pace": "realtime"})
        fmt = audio_mod.AudioFormat(encoding, rate, 1)
        pcm = np.clip(np.rint(audio_mod.resample(audio16k, 16000, rate) * 32767),
                      -32768, 32767).astype(np.int16)
        wire = audio_mod.encode(pcm, fmt)
        step = fmt.bytes_per_frame * rate // 50
        session = engines.new_session(cfg)
        push_s = release_s = 0.0
        frames = 0
        for k, i in enumerate(range(0, len(wire) - step + 1, step)):
            now = k * 0.02
            t0 = time.perf_counter()
            session.push_audio(wire[i : i + step], now)
            t1 = time.perf_counter()
            session.release(now)
            session.take_outputs()
            t2 = time.perf_counter()
            push_s, release_s, frames = push_s + t1 - t0, release_s + t2 - t1, frames + 1
            if k % 25 == 0:  # a pass (and its detection) every 0.5 s, not timed
                job = session.next_job(eager=True)
                while job is not None:
                    job = session.complete_job(job, engines.run_job(job)) or session.next_job()
        out[name] = {"push_audio": round(1e6 * push_s / max(1, frames), 1),
                     "release": round(1e6 * release_s / max(1, frames), 1),
                     "frames": frames}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
