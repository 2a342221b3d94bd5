"""Synthesise the two-party dialogue fixtures (espeak-ng + flite, 8 kHz mu-law).

    .venv/bin/python tests/data/dialogues/make_dialogues.py [--out DIR] [--all]

Each dialogue is an agent and a caller in two synthetic voices (one espeak-ng,
one flite), turns joined by 0.3-0.8 s of silence, the stream ending shortly
after the caller's last word, sent through an 8 kHz G.711 mu-law round trip
(``benchmarks/holdout.py`` ``apply_channel("phone")``) and stored as 8 kHz
mu-law WAV (8 kB/s). ``manifest.json`` holds each clip's reference text.

``FIXTURES`` are the clips committed here: before the streaming fixes of issue
14 each of them came out of ``pace=asap`` with a sentence repeated, and one lost
the end of its phone number. ``--all`` writes every script in every voice pair
(the set they were picked from) instead. Output depends on the installed
espeak-ng and flite versions: regenerate rather than expect bit-identical files.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from holdout import Voice, apply_channel, synthesise  # noqa: E402

from streamserver import audio as audio_mod  # noqa: E402

RATE = 16_000
PHONE_RATE = 8_000
GAP_S = (0.3, 0.8)
LEAD_S = 0.4
TAIL_S = 0.25  # the caller's last word runs almost to the end of the stream

SCRIPTS: dict[str, list[str]] = {
    "spell_number": [
        "Could you spell your last name for me?",
        "Sure, it's D E L G A D O.",
        "And the best number to reach you?",
        "My number is eight three zero, five five five, zero one seven five.",
    ],
    "name_spell": [
        "Can I have your full name please?",
        "My first name is Maria and my last name is Delgado.",
        "Could you spell your last name for me?",
        "Sure, it's D E L G A D O.",
    ],
    "social_callback": [
        "What are the last four of your social?",
        "It's one nine eight eight.",
        "And a callback number?",
        "Yes, it's two one four, five five five, zero one six four.",
    ],
    "who_spell": [
        "Thanks for holding. Who am I speaking with?",
        "This is John Smith.",
        "Could you spell your last name for me?",
        "S M I T H.",
    ],
}
# (agent, caller): (engine, voice, espeak words a minute | flite duration stretch)
PAIRS: dict[str, tuple[tuple[str, str, float], tuple[str, str, float]]] = {
    "m1-slt": (("espeak", "en-us+m1", 165), ("flite", "slt", 1.0)),
    "rms-f3": (("flite", "rms", 1.0), ("espeak", "en+f3", 160)),
    "awb-m7": (("flite", "awb", 1.0), ("espeak", "en-us+m7", 175)),
    "gb-slt": (("espeak", "en-gb", 170), ("flite", "slt", 1.1)),
    "nyc-rms": (("espeak", "en-us-nyc+m2", 160), ("flite", "rms", 0.95)),
}
# (script, voice pair, seed) of the committed clips.
FIXTURES = [
    ("spell_number", "nyc-rms", 5),
    ("name_spell", "m1-slt", 6),
    ("social_callback", "rms-f3", 12),
]


def render(script: list[str], pair: tuple[tuple[str, str, float], ...], seed: int,
           tmp: Path) -> np.ndarray:
    """The dialogue at 16 kHz, float32, each turn at its own level."""
    rng = random.Random(seed)
    chunks = [np.zeros(int(LEAD_S * RATE), np.float32)]
    for turn, text in enumerate(script):
        engine, name, speed = pair[turn % 2]
        x = synthesise(Voice(engine, name, (speed,)), speed, text, tmp)
        x = x / max(float(np.abs(x).max()), 1e-6) * 10 ** (rng.uniform(-9, -3) / 20)
        if turn:
            chunks.append(np.zeros(int(rng.uniform(*GAP_S) * RATE), np.float32))
        chunks.append(x.astype(np.float32))
    chunks.append(np.zeros(int(TAIL_S * RATE), np.float32))
    return np.concatenate(chunks)


def write_mulaw_wav(path: Path, x16k: np.ndarray, seed: int) -> None:
    """Phone channel, then 8 kHz mu-law bytes in a WAVE_FORMAT_MULAW (7) file."""
    narrow = audio_mod.resample(apply_channel(x16k, "phone", seed), RATE, PHONE_RATE)
    fmt = audio_mod.AudioFormat("mulaw", PHONE_RATE, 1)
    data = audio_mod.encode(audio_mod.to_int16(narrow).reshape(-1, 1), fmt)
    header = (b"fmt " + (18).to_bytes(4, "little") + (7).to_bytes(2, "little")
              + (1).to_bytes(2, "little") + PHONE_RATE.to_bytes(4, "little")
              + PHONE_RATE.to_bytes(4, "little") + (1).to_bytes(2, "little")
              + (8).to_bytes(2, "little") + (0).to_bytes(2, "little"))
    body = b"WAVE" + header + b"data" + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--all", action="store_true", help="every script x voice pair")
    args = parser.parse_args(argv)
    every = [(s, p) for s in SCRIPTS for p in PAIRS]
    todo = [(s, p, 1 + i) for i, (s, p) in enumerate(every)] if args.all else FIXTURES
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory() as tmp_name:
        for script, pair, seed in todo:
            x = render(SCRIPTS[script], PAIRS[pair], seed, Path(tmp_name))
            name = f"{script}_{pair}.wav"
            write_mulaw_wav(args.out / name, x, seed)
            manifest.append({"file": name, "text": " ".join(SCRIPTS[script]),
                             "voices": [list(v) for v in PAIRS[pair]], "seed": seed,
                             "duration_s": round(x.size / RATE, 2)})
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
