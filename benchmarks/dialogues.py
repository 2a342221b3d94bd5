"""Two-party phone-call dialogues with exact spans: a corpus for redaction quality.

    .venv/bin/python benchmarks/dialogues.py [--regenerate] [--data-dir D] [--count 70]

A support call is an agent and a caller taking turns, and the cue for a value is
usually in the *other* party's question: "for verification, can I get the last
four of your social?" - "uh, yeah, it's 9 8 1 7". Each dialogue here has 5-8 turns:
a greeting, the caller's reason for calling (often full of harmless numbers) when
there is room, 1-3 requests with their answers, a closing; now and then a
small-talk exchange about quantities, prices or times, a caller who cannot give
what was asked ("I don't know it offhand"), an agent reading a value back, a
goodbye. Answers mostly carry no cue
of their own, sometimes one, with fillers ("uh", "let me see", "hold on...").
Phrasings and values come from ``dialogue_templates.py``.

Agent and caller have different voices (espeak-ng voices and variants at several
speeds and pitches, flite awb/rms/slt/kal at several duration stretches). Turns
are 0.3-0.8 s apart and never overlap. Each piece of a turn is synthesised on its
own (``holdout.synthesise``) and joined, so the manifest knows every turn's and
every value's start and end.

Dialogue ``i`` is ``blind`` when ``i % 5`` is 1 or 3 (40 %), else ``dev``. The
two splits share no phrasing, no name and no voice (``DEV_VOICES`` /
``BLIND_VOICES``), so the blind part can stay untuned.

Every dialogue is written four ways: layout ``mono`` (both parties in one
channel) or ``stereo`` (channel 0 agent, channel 1 caller, each silent while the
other speaks), channel ``clean`` (16 kHz) or ``phone`` (an 8 kHz mu-law round
trip, ``holdout.apply_channel``; stored as the 8 kHz decoded samples, what a
telephony client sends, plus the 16 kHz upsampled copy as ``file_16k``).
``manifest.json`` lists one entry per clip::

    {"file", "dialogue", "split", "layout", "channel", "rate", "voices": {"agent", "caller"},
     "duration_s", "turns": [{"role", "start_s", "end_s", "text", "negative"}],
     "pii": [{"entity", "text", "start_s", "end_s", "role", "cued_in_question"}],
     "phrasings": [...]}

``negative`` marks turns with no personal data that a redactor may be tempted by
(numbers, a refusal right after a request). Clips are made once, seeded, into
``--data-dir`` (default: the system temp dir) and reused until ``--regenerate``,
another seed or count, or a new ``GENERATOR_VERSION``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dialogue_templates import (  # noqa: E402
    BOOKS,
    KINDS,
    READBACK_KINDS,
    VALUES,
    Phrasebook,
)
from holdout import PEAK_DBFS, RATE, Voice, apply_channel, synthesise  # noqa: E402
from holdout_templates import Piece, Value, literal  # noqa: E402

from streamserver import audio as audio_mod  # noqa: E402

SEED = 20241206
DEFAULT_COUNT = 70
GENERATOR_VERSION = 1  # bump when phrasings, voices or synthesis change: cached data is remade
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "streamserver-dialogues"
BLIND_SLOTS = (1, 3)  # dialogue i is blind when i % 5 is one of these
LAYOUTS = ("mono", "stereo")
CHANNELS = ("clean", "phone")
PHONE_RATE = 8000

ESPEAK_PITCHES = (35, 50, 65)  # espeak-ng -p, sent as an embedded command (\x01<n>P)
DEV_VOICES = (
    Voice("espeak", "en-us+m3", (150.0, 170.0, 190.0)),
    Voice("espeak", "en-us+f4", (145.0, 165.0, 185.0)),
    Voice("espeak", "en-gb+m4", (150.0, 175.0)),
    Voice("espeak", "en-gb-scotland+f2", (150.0, 170.0)),
    Voice("espeak", "en-029+m5", (155.0, 175.0)),
    Voice("flite", "slt", (0.95, 1.1)),
    Voice("flite", "kal", (0.9, 1.05)),
)
BLIND_VOICES = (
    Voice("espeak", "en-us+f5", (150.0, 170.0, 190.0)),
    Voice("espeak", "en-us-nyc+m6", (150.0, 175.0)),
    Voice("espeak", "en-gb-x-rp+m2", (145.0, 170.0)),
    Voice("espeak", "en-gb-x-gbclan+f1", (150.0, 170.0)),
    Voice("flite", "awb", (0.95, 1.1)),
    Voice("flite", "rms", (0.9, 1.05)),
)
SPLIT_VOICES = {"dev": DEV_VOICES, "blind": BLIND_VOICES}

MAX_TURNS = 8
TURN_GAP_S = (0.3, 0.8)
PIECE_GAP_S = (0.08, 0.25)
PAUSE_S = (0.5, 1.1)  # "..." in a phrasing: a hesitation
EDGE_S = (0.3, 0.6)
CUED_ANSWER_SHARE = 0.3  # the rest of the answers carry no cue of their own


@dataclass(frozen=True, slots=True)
class Speaker:
    voice: Voice
    speed: float
    pitch: int | None  # espeak only

    @property
    def label(self) -> str:
        pitch = f" p{self.pitch}" if self.pitch is not None else ""
        return f"{self.voice.label} s{self.speed:g}{pitch}"

    def say(self, text: str, tmp: Path) -> np.ndarray:
        if self.pitch is not None:
            text = f"\x01{self.pitch}P {text}"
        return synthesise(self.voice, self.speed, text, tmp)


@dataclass
class TurnPlan:
    role: str  # "agent" or "caller"
    pieces: list[Piece]
    negative: bool = False  # no personal data, but numbers or a refusal after a request
    cued_in_question: bool = False  # its values' only cue is in the question before


@dataclass
class DialoguePlan:
    index: int
    split: str
    turns: list[TurnPlan] = field(default_factory=list)
    phrasings: list[str] = field(default_factory=list)


# --- planning (text only) ----------------------------------------------------------------


class _Rotation:
    """Picks phrasings and value styles in turn, so a split uses every one of them."""

    def __init__(self) -> None:
        self.uses: Counter[str] = Counter()

    def next(self, key: str) -> int:
        k = self.uses[key]
        self.uses[key] += 1
        return k

    def pick(self, key: str, options: tuple[str, ...], plan: DialoguePlan) -> str:
        text = options[self.next(key) % len(options)]
        plan.phrasings.append(text)
        return text


def fill(template: str, value: list[Piece]) -> list[Piece]:
    """A phrasing with its ``{}`` (or hesitant ``{...}``) replaced by the value's pieces."""
    if "{...}" in template:  # groups said with pauses: "4 1 2 ... 5 5 5 ... 0 1 9 9"
        value = [Value(p.entity, p.written, p.spoken.replace(", ", " ... "))
                 if isinstance(p, Value) else p for p in value]
        template = template.replace("{...}", "{}")
    before, slot, after = template.partition("{}")
    return [p for p in (before, *(value if slot else []), after) if p]


def split_of(index: int) -> str:
    return "blind" if index % 5 in BLIND_SLOTS else "dev"


def plan_dialogue(index: int, book: Phrasebook, rng: Random, rot: _Rotation) -> DialoguePlan:
    plan = DialoguePlan(index, book.name)

    def value(kind: str) -> list[Piece]:
        return VALUES[kind](rng, rot.next(f"value:{kind}"), book)

    def request(kind: str, refuse: bool) -> list[TurnPlan]:
        question = TurnPlan("agent", [rot.pick(f"q:{kind}", book.questions[kind], plan)])
        if refuse:
            return [question, TurnPlan("caller", [rot.pick("refuse", book.non_answers, plan)],
                                       negative=True)]
        cued = rng.random() < CUED_ANSWER_SHARE
        template = (rot.pick(f"cued:{kind}", book.cued[kind], plan) if cued
                    else rot.pick("bare", book.bare, plan))
        return [question, TurnPlan("caller", fill(template, value(kind)),
                                   cued_in_question=not cued)]

    # The least used kinds first, so every entity is well represented in both splits.
    n_requests = rng.choice((1, 2, 2, 3, 3))
    kinds = sorted(KINDS, key=lambda k: (rot.uses[f"value:{k}"], rng.random()))[:n_requests]
    refused = rng.randrange(n_requests - 1) if n_requests > 1 and rng.random() < 0.25 else -1
    body = [t for i, kind in enumerate(kinds) for t in request(kind, i == refused)]

    greeting = rot.pick("greeting", book.greetings, plan)
    name = rng.choice(book.agent_names)
    turns = [TurnPlan("agent", fill(greeting, [Value("PERSON", name, name)]))]
    budget = MAX_TURNS - 2 - len(body)  # greeting and closing are always there
    if budget >= 1:  # the caller's reason for calling, now and then full of numbers
        numbers = rng.random() < 0.6
        opening = (rot.pick("opening", book.openings, plan) if numbers
                   else rot.pick("plain_opening", book.plain_openings, plan))
        turns.append(TurnPlan("caller", [opening], negative=numbers))
        budget -= 1
    else:  # no room: the agent greets and asks in one breath
        turns[0].pieces += [" ", *body.pop(0).pieces]
    if budget >= 2 and rng.random() < 0.4:
        agent, caller = book.small_talk[rot.next("small_talk") % len(book.small_talk)]
        plan.phrasings += [agent, caller]
        at = 2 * rng.randrange(len(body) // 2 + 1)  # between two requests
        body[at:at] = [TurnPlan("agent", [agent]), TurnPlan("caller", [caller], negative=True)]
        budget -= 2
    turns += body
    if budget >= 2 and rng.random() < 0.3:
        kind = READBACK_KINDS[rot.next("readback") % len(READBACK_KINDS)]
        readback = rot.pick(f"readback:{kind}", book.readbacks[kind], plan)
        turns += [TurnPlan("agent", fill(readback, value(kind))),
                  TurnPlan("caller", [rot.pick("confirm", book.confirmations, plan)],
                           negative=True)]
        budget -= 2
    turns.append(TurnPlan("agent", [rot.pick("closing", book.closings, plan)]))
    if budget >= 1 and rng.random() < 0.5:
        turns.append(TurnPlan("caller", [rot.pick("goodbye", book.goodbyes, plan)]))
    plan.turns = turns
    return plan


# --- synthesis ---------------------------------------------------------------------------


@dataclass
class RenderedTurn:
    audio: np.ndarray
    text: str
    values: list[tuple[Value, int, int]]  # value, start and end sample within the turn


def utterances(pieces: list[Piece]) -> list[tuple[str, bool, int | None]]:
    """What a turn's voice says, bit by bit: (text, pause before it, index of the value
    piece it belongs to). Each piece is said on its own; ``...`` splits it for a pause."""
    out, pause = [], False
    for i, piece in enumerate(pieces):
        spoken = piece.spoken if isinstance(piece, Value) else literal(piece)[1]
        for j, chunk in enumerate(spoken.split("...")):
            pause |= j > 0
            say = chunk.strip(" ,.;:")
            if re.search(r"[A-Za-z0-9]", say):  # not punctuation alone
                out.append((say, pause, i if isinstance(piece, Value) else None))
                pause = False
    return out


def render_turn(turn: TurnPlan, speaker: Speaker, rng: Random, tmp: Path) -> RenderedTurn:
    said = utterances(turn.pieces)
    audio = [speaker.say(text, tmp) for text, _, _ in said]
    starts, cursor = [], 0
    for k, (_, pause, _) in enumerate(said):
        if k:
            cursor += int(rng.uniform(*(PAUSE_S if pause else PIECE_GAP_S)) * RATE)
        starts.append(cursor)
        cursor += audio[k].size
    out = np.zeros(cursor, dtype=np.float32)
    bounds: dict[int, tuple[int, int]] = {}
    for (_, _, owner), a, start in zip(said, audio, starts, strict=True):
        out[start : start + a.size] = a
        if owner is not None:
            first = bounds.get(owner, (start, 0))[0]
            bounds[owner] = (first, start + a.size)
    values = [(v, a, b) for i, (a, b) in sorted(bounds.items())
              if isinstance(v := turn.pieces[i], Value)]
    text = "".join(p.written if isinstance(p, Value) else literal(p)[0]
                   for p in turn.pieces).strip()
    if isinstance(turn.pieces[0], str):  # never re-case a value ("castillo@example.com")
        text = text[:1].upper() + text[1:]
    return RenderedTurn(out, text, values)


def telephone_8k(x: np.ndarray) -> np.ndarray:
    """16 kHz float (already through the phone channel) -> int16 8 kHz mu-law decoded."""
    fmt = audio_mod.AudioFormat("mulaw", PHONE_RATE, 1)
    narrow = audio_mod.to_int16(audio_mod.resample(x, RATE, PHONE_RATE))
    return audio_mod.decode(audio_mod.encode(narrow, fmt), fmt)[:, 0]


def _seconds(samples: int) -> float:
    return round(samples / RATE, 4)


def render_dialogue(plan: DialoguePlan, speakers: dict[str, Speaker], rng: Random,
                    tmp: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The plan as two tracks (agent, caller) on one timeline, and its manifest part."""
    rendered = [render_turn(t, speakers[t.role], rng, tmp) for t in plan.turns]
    starts, cursor = [], int(rng.uniform(*EDGE_S) * RATE)
    for r in rendered:
        starts.append(cursor)
        cursor += r.audio.size + int(rng.uniform(*TURN_GAP_S) * RATE)
    total = starts[-1] + rendered[-1].audio.size + int(rng.uniform(*EDGE_S) * RATE)
    tracks = {role: np.zeros(total, dtype=np.float32) for role in speakers}
    turns, pii = [], []
    for plan_turn, r, start in zip(plan.turns, rendered, starts, strict=True):
        tracks[plan_turn.role][start : start + r.audio.size] = r.audio
        turns.append({"role": plan_turn.role, "start_s": _seconds(start),
                      "end_s": _seconds(start + r.audio.size), "text": r.text,
                      "negative": plan_turn.negative})
        pii += [{"entity": v.entity, "text": v.written, "start_s": _seconds(start + a),
                 "end_s": _seconds(start + b), "role": plan_turn.role,
                 "cued_in_question": plan_turn.cued_in_question} for v, a, b in r.values]
    for track in tracks.values():  # each party at its own level
        track *= 10 ** (rng.uniform(*PEAK_DBFS) / 20) / max(float(np.abs(track).max()), 1e-6)
    info = {"dialogue": plan.index, "split": plan.split,
            "voices": {role: s.label for role, s in speakers.items()},
            "duration_s": _seconds(total), "turns": turns, "pii": pii,
            "phrasings": plan.phrasings}
    return tracks, info


def write_variants(data_dir: Path, tracks: dict[str, np.ndarray], info: dict[str, Any],
                   seed: int) -> list[dict[str, Any]]:
    """Every layout x channel of one dialogue, written; their manifest entries."""
    agent, caller = tracks["agent"], tracks["caller"]
    stem = f"dialogue_{info['dialogue']:03d}"
    clips = []
    for channel in CHANNELS:
        for layout in LAYOUTS:
            parts = [agent + caller] if layout == "mono" else [agent, caller]
            wide = np.stack([apply_channel(x, channel, seed + 7 * info["dialogue"] + j)
                             for j, x in enumerate(parts)], axis=1)
            name = f"{stem}_{layout}_{channel}.wav"
            clip = {"file": name, **info, "layout": layout, "channel": channel, "rate": RATE}
            if channel == "phone":
                clip["file_16k"] = f"{stem}_{layout}_phone16k.wav"
                audio_mod.write_wav(data_dir / clip["file_16k"], audio_mod.to_int16(wide), RATE)
                narrow = np.stack([telephone_8k(wide[:, j]) for j in range(wide.shape[1])], 1)
                audio_mod.write_wav(data_dir / name, narrow, PHONE_RATE)
                clip["rate"] = PHONE_RATE
            else:
                audio_mod.write_wav(data_dir / name, audio_mod.to_int16(wide), RATE)
            clips.append(clip)
    return clips


# --- corpus --------------------------------------------------------------------------------


def installed_voices() -> dict[str, tuple[Voice, ...]] | None:
    """Each split's voices that the installed engines have; None (after a message) if
    espeak-ng is missing or a split is left with fewer than two voices. Without flite
    the flite voices are left out, with a warning."""
    if not shutil.which("espeak-ng"):
        print("dialogues: espeak-ng is not installed; install it (and flite) with\n"
              "    sudo apt-get install -y espeak-ng flite", file=sys.stderr)
        return None
    listed = " ".join(subprocess.run(["espeak-ng", f"--voices{kind}"], capture_output=True,
                                     text=True).stdout for kind in ("", "=variant"))
    known = set(listed.split())  # espeak-ng languages and variant files ("!v/m3")
    if shutil.which("flite"):
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        known |= {f"flite:{name}" for name in listed.split(":", 1)[-1].split()}
    else:
        print("dialogues: flite not found, using espeak-ng voices only "
              "(sudo apt-get install -y flite)", file=sys.stderr)

    def have(v: Voice) -> bool:
        if v.engine == "flite":
            return v.label in known
        # espeak-ng silently falls back to a default voice for unknown names
        lang, _, variant = v.name.partition("+")
        return lang in known and f"!v/{variant}" in known

    out = {split: tuple(v for v in vs if have(v)) for split, vs in SPLIT_VOICES.items()}
    missing = [v.label for vs in SPLIT_VOICES.values() for v in vs
               if v.engine == "espeak" and not have(v)]
    if missing:
        print(f"dialogues: espeak-ng has no voice {', '.join(missing)}", file=sys.stderr)
    if min(len(vs) for vs in out.values()) < 2:
        print("dialogues: each split needs two voices", file=sys.stderr)
        return None
    return out


def pick_speakers(voices: tuple[Voice, ...], rng: Random) -> dict[str, Speaker]:
    chosen = rng.sample(voices, 2)  # agent and caller never share a voice
    return {role: Speaker(v, rng.choice(v.speeds),
                          rng.choice(ESPEAK_PITCHES) if v.engine == "espeak" else None)
            for role, v in zip(("agent", "caller"), chosen, strict=True)}


def generate(data_dir: Path, voices: dict[str, tuple[Voice, ...]], seed: int,
             count: int) -> list[dict[str, Any]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("dialogue_*.wav"):
        old.unlink()
    rotations = {split: _Rotation() for split in BOOKS}
    manifest: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        for i in range(count):
            split = split_of(i)
            rng = Random(f"{seed}:{i}")
            plan = plan_dialogue(i, BOOKS[split], rng, rotations[split])
            speakers = pick_speakers(voices[split], rng)
            tracks, info = render_dialogue(plan, speakers, rng, Path(tmp_name))
            manifest += write_variants(data_dir, tracks, info, seed)
    (data_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    meta = {"seed": seed, "count": count, "generator_version": GENERATOR_VERSION,
            "voices": {s: [v.label for v in vs] for s, vs in voices.items()},
            "stats": corpus_stats(manifest)}
    (data_dir / "dialogues_meta.json").write_text(json.dumps(meta, indent=1))
    return manifest


def load_or_generate(data_dir: Path = DEFAULT_DATA_DIR, seed: int = SEED,
                     count: int = DEFAULT_COUNT,
                     regenerate: bool = False) -> list[dict[str, Any]] | None:
    """The cached corpus if it is current, else a freshly generated one; None if the
    voices' engine (espeak-ng) is missing."""
    manifest_path, meta_path = data_dir / "manifest.json", data_dir / "dialogues_meta.json"
    if not regenerate and manifest_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        manifest: list[dict[str, Any]] = json.loads(manifest_path.read_text())
        if (meta.get("seed"), meta.get("count"), meta.get("generator_version")) == (
                seed, count, GENERATOR_VERSION) and all(
                (data_dir / c["file"]).exists() for c in manifest):
            return manifest
    voices = installed_voices()
    if voices is None:
        return None
    t0 = time.perf_counter()
    manifest = generate(data_dir, voices, seed, count)
    print(f"dialogues: generated {count} dialogues ({len(manifest)} clips) in {data_dir} "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return manifest


def corpus_stats(manifest: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per dialogue (not per clip): dialogues, values per entity, per split."""
    dialogues = {c["dialogue"]: c for c in manifest}.values()
    out: dict[str, Any] = {"dialogues": len(dialogues), "clips": len(manifest)}
    for split in BOOKS:
        ds = [d for d in dialogues if d["split"] == split]
        values = [p for d in ds for p in d["pii"]]
        out[split] = {
            "dialogues": len(ds),
            "values": len(values),
            "values_cued_in_question": sum(p["cued_in_question"] for p in values),
            "per_entity": dict(sorted(Counter(p["entity"] for p in values).items())),
            "negative_turns": sum(t["negative"] for d in ds for t in d["turns"]),
            "turns": sum(len(d["turns"]) for d in ds),
            "audio_s": round(sum(d["duration_s"] for d in ds), 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help=f"where clips and manifest.json are cached (default {DEFAULT_DATA_DIR})")
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of dialogues")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--regenerate", action="store_true", help="synthesise the clips again")
    args = ap.parse_args(argv)
    manifest = load_or_generate(args.data_dir, args.seed, args.count, args.regenerate)
    if manifest is None:
        return 2
    print(json.dumps(corpus_stats(manifest), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
