"""The two-party dialogue fixtures (``tests/data/dialogues``) and how they are scored."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamserver import audio as audio_mod

DIALOGUES = Path(__file__).resolve().parent / "data" / "dialogues"
_WAVE_FORMAT_MULAW = 7


@dataclass(frozen=True)
class Dialogue:
    file: str
    text: str  # the reference: what was said, in order

    @property
    def path(self) -> Path:
        return DIALOGUES / self.file


def dialogues() -> list[Dialogue]:
    manifest = json.loads((DIALOGUES / "manifest.json").read_text())
    return [Dialogue(m["file"], m["text"]) for m in manifest]


def read_mulaw_wav(path: Path) -> tuple[np.ndarray, int]:
    """A mono mu-law WAV (format 7, which :mod:`wave` cannot read) -> (int16 (n, 1), rate)."""
    blob = path.read_bytes()
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, rate, data = 12, 0, b""
    while pos + 8 <= len(blob):
        tag, size = blob[pos : pos + 4], int.from_bytes(blob[pos + 4 : pos + 8], "little")
        body = blob[pos + 8 : pos + 8 + size]
        if tag == b"fmt ":
            if int.from_bytes(body[:2], "little") != _WAVE_FORMAT_MULAW or body[2:4] != b"\1\0":
                raise ValueError(f"{path}: not mono mu-law")
            rate = int.from_bytes(body[4:8], "little")
        elif tag == b"data":
            data = body
        pos += 8 + size + size % 2
    fmt = audio_mod.AudioFormat("mulaw", rate, 1)
    return audio_mod.decode(data, fmt), rate


def as_pcm_wav(dialogue: Dialogue, out_dir: Path) -> Path:
    """The dialogue decoded to a 16-bit PCM WAV (what ``redact_file``/``stream_file`` read)."""
    samples, rate = read_mulaw_wav(dialogue.path)
    path = out_dir / dialogue.file
    audio_mod.write_wav(path, samples, rate)
    return path


def _words(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", t.lower()) for t in text.split()) if w]


def repeated_phrases(hypothesis: str, reference: str, n: int = 4) -> dict[str, int]:
    """Phrases of ``n`` words the hypothesis has more often than the reference (and > 1)."""
    def grams(words: list[str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    hyp, ref = grams(_words(hypothesis)), grams(_words(reference))
    return {" ".join(g): c for g, c in hyp.items() if c > max(1, ref[g])}


_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}


def digits(text: str) -> str:
    """The digits said, in order: numerals as written, digit words as digits."""
    return "".join(_DIGIT_WORDS.get(t, t if t.isdigit() else "")
                   for t in re.findall(r"[a-z]+|\d+", text.lower()))


def digits_kept(hypothesis: str, reference: str) -> float:
    """Share of the reference's digits found in order in the hypothesis (LCS)."""
    ref, hyp = digits(reference), digits(hypothesis)
    prev = [0] * (len(hyp) + 1)
    for r in ref:
        cur = [0]
        for j, h in enumerate(hyp, 1):
            cur.append(prev[j - 1] + 1 if r == h else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1] / len(ref) if ref else 1.0


def final_text(events: list[dict[str, Any]]) -> str:
    return " ".join(e["text"] for e in events if e["type"] == "transcript.final" and e["text"])
