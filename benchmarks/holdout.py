"""Holdout redaction benchmark: new voices, new sentences, exact spans.

    .venv/bin/python benchmarks/holdout.py [--regenerate] [--data-dir D] [--limit N] [--verbose]

``pii_dev`` is what the detector is tuned on; this set is what catches rules
overfitted to its sentences. It synthesises about sixty call-centre clips with
voices ``pii_dev`` does not use (espeak-ng en-us+m1, en+f3, en-gb, ...; flite
awb and rms when flite is installed) at several speeds, from the sentences and
invented values in ``holdout_templates.py``: every entity in several spoken
forms, values with context after them, two values in one sentence, and twenty
hard negatives (times, prices, quantities, flight and room numbers, versions)
with no personal data. As in ``pii_dev``, each piece of a sentence is
synthesised on its own and the pieces are joined with 100-300 ms gaps, so the
manifest knows each value's exact span. A third of the clips carry faint noise
(-60 dBFS, below the speech threshold) and a sixth go through an 8 kHz mu-law
telephone channel.

The clips and ``manifest.json`` (the ``pii_dev`` format plus ``spoken``,
``speed`` and ``channel``) are made once, seeded, into ``--data-dir``
(default: the system temp dir, so nothing lands in git) and reused until
``--regenerate`` or a new seed. Each clip then goes through the real
in-process redaction (``streamserver.cli.redact_file``, pace=asap) and is
scored with ``streamserver.evaluation`` as ``shared/data/README.md`` defines.
Writes ``benchmarks/results/holdout.json``; transcripts in it and on screen are
the redacted ones (the source sentences are made up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from random import Random
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from holdout_templates import (  # noqa: E402
    NEGATIVE_TEMPLATES,
    PII_TEMPLATES,
    Piece,
    Value,
    expand,
    literal,
)

from streamserver import audio as audio_mod  # noqa: E402
from streamserver.evaluation import (  # noqa: E402
    ENTITY_AUDIBLE,
    FRAME_S,
    ClipScore,
    Span,
    masked_speech_share,
    score_clip,
    summarise,
)

RATE = 16_000
SEED = 20240611
GENERATOR_VERSION = 1  # bump when templates or synthesis change: cached data is remade
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "streamserver-holdout"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "holdout.json"

ESPEAK_VOICES = ("en-us+m1", "en+f3", "en-gb", "en-us+m7", "en-gb-x-rp+f4", "en-us-nyc+m2")
ESPEAK_WPM = (150.0, 170.0, 195.0)
FLITE_VOICES = ("awb", "rms")
FLITE_STRETCH = (0.9, 1.0, 1.15)  # flite duration_stretch: > 1 is slower
CHANNELS = ("clean", "noise", "clean", "phone", "clean", "noise")

GAP_S = (0.10, 0.30)
EDGE_S = (0.5, 1.0)
PEAK_DBFS = (-9.0, -2.0)
NOISE_DBFS = -60.0  # RMS; below the -45 dBFS speech threshold, so never scored as speech
TRIM_DBFS = -50.0
OVER_REDACTION_FRAMES = 10  # >= 0.1 s of masked speech away from any span lists the clip


@dataclass(frozen=True, slots=True)
class Voice:
    engine: str  # "espeak" or "flite"
    name: str
    speeds: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


# --- synthesis -------------------------------------------------------------------------


def available_voices() -> list[Voice] | None:
    """Holdout voices the installed engines have; None (after a message) without espeak-ng."""
    if not shutil.which("espeak-ng"):
        print("holdout: espeak-ng is not installed. Install it with\n"
              "    sudo apt-get install -y espeak-ng\n"
              "(and optionally flite for two more voices: sudo apt-get install -y flite),\n"
              "or pass --data-dir with clips generated elsewhere.", file=sys.stderr)
        return None
    # espeak-ng falls back to a default voice for unknown names, so check the lists.
    listed = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout
    languages = {line.split()[1] for line in listed.splitlines()[1:] if len(line.split()) > 1}
    languages |= set(re.findall(r"\((\S+) \d+\)", listed))
    listed = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True,
                            text=True).stdout
    variants = set(re.findall(r"!v/(\S+)", listed))
    voices = []
    for v in ESPEAK_VOICES:
        lang, _, variant = v.partition("+")
        if lang in languages and (not variant or variant in variants):
            voices.append(Voice("espeak", v, ESPEAK_WPM))
    if shutil.which("flite"):
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        have = set(out.split(":", 1)[-1].split())
        voices += [Voice("flite", v, FLITE_STRETCH) for v in FLITE_VOICES if v in have]
    else:
        print("holdout: flite not found, using espeak-ng voices only "
              "(sudo apt-get install -y flite adds two voices)", file=sys.stderr)
    return voices


def synthesise(voice: Voice, speed: float, text: str, tmp: Path) -> np.ndarray:
    """One piece of speech: float32 mono at 16 kHz, trimmed to its voiced part."""
    wav = tmp / "piece.wav"
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(speed)), "-w", str(wav), text]
    else:
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={speed}",
               "-t", text, "-o", str(wav)]
    subprocess.run(cmd, check=True, capture_output=True)
    samples, rate = audio_mod.read_wav(wav)
    x = audio_mod.to_mono_float(samples)
    if rate != RATE:
        x = audio_mod.resample(x, rate, RATE)
    return trim(x)


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading/trailing silence (10 ms frames under -50 dBFS), keeping 10 ms either side."""
    n = int(RATE * FRAME_S)
    frames = x[: x.size // n * n].reshape(-1, n)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-10)) > TRIM_DBFS)
    if loud.size == 0:
        return x[:0]
    start, end = max(0, (loud[0] - 1) * n), min(x.size, (loud[-1] + 2) * n)
    return x[start:end]


def apply_channel(x: np.ndarray, channel: str, seed: int) -> np.ndarray:
    if channel == "clean":
        return x
    if channel == "phone":  # 8 kHz mu-law round trip: band-limited and companded
        fmt = audio_mod.AudioFormat("mulaw", 8000, 1)
        narrow = audio_mod.to_int16(audio_mod.resample(x, RATE, 8000)).reshape(-1, 1)
        coded = audio_mod.decode(audio_mod.encode(narrow, fmt), fmt)
        wide = audio_mod.resample(audio_mod.to_mono_float(coded), 8000, RATE)
        x = np.pad(wide, (0, max(0, x.size - wide.size)))[: x.size]
    noise = np.random.default_rng(seed).standard_normal(x.size) * 10 ** (NOISE_DBFS / 20)
    return (x + noise).astype(np.float32)


def render_clip(pieces: list[Piece], voice: Voice, speed: float, rng: Random,
                tmp: Path) -> tuple[np.ndarray, str, str, list[dict[str, Any]]]:
    """Pieces -> (float audio, written text, spoken text, pii spans)."""
    chunks = [np.zeros(int(rng.uniform(*EDGE_S) * RATE), dtype=np.float32)]
    cursor = chunks[0].size
    written, spoken, spans = [], [], []
    for piece in pieces:
        if isinstance(piece, Value):
            w, s = piece.written, piece.spoken
        else:
            w, s = literal(piece)
        written.append(w)
        say = s.strip(" ,.;:")
        if not re.search(r"[A-Za-z0-9]", say):
            continue  # punctuation only: nothing to say
        spoken.append(say)
        if cursor > chunks[0].size:
            gap = np.zeros(int(rng.uniform(*GAP_S) * RATE), dtype=np.float32)
            chunks.append(gap)
            cursor += gap.size
        audio = synthesise(voice, speed, say, tmp)
        if isinstance(piece, Value):
            spans.append({"entity": piece.entity, "text": piece.written,
                          "start_s": round(cursor / RATE, 4),
                          "end_s": round((cursor + audio.size) / RATE, 4)})
        chunks.append(audio)
        cursor += audio.size
    chunks.append(np.zeros(int(rng.uniform(*EDGE_S) * RATE), dtype=np.float32))
    text = "".join(written)
    if pieces and isinstance(pieces[0], str):  # never re-case a value ("m.olsen@...")
        text = text[:1].upper() + text[1:]
    return np.concatenate(chunks), text, " ".join(spoken), spans


def generate(data_dir: Path, voices: list[Voice], seed: int) -> list[dict[str, Any]]:
    rng = Random(seed)
    uses: dict[str, int] = {}
    items = [expand(t, rng, uses) for t in PII_TEMPLATES]
    items += [expand(t, rng, uses) for t in NEGATIVE_TEMPLATES]
    rng.shuffle(items)  # so --limit N still mixes entities and negatives
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("holdout_*.wav"):
        old.unlink()
    manifest = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, pieces in enumerate(items):
            voice = voices[i % len(voices)]
            speed = rng.choice(voice.speeds)
            channel = CHANNELS[i % len(CHANNELS)]
            x, text, spoken, spans = render_clip(pieces, voice, speed, rng, tmp)
            x *= 10 ** (rng.uniform(*PEAK_DBFS) / 20) / max(float(np.abs(x).max()), 1e-6)
            x = apply_channel(x, channel, seed + i)
            name = f"holdout_{i:03d}.wav"
            audio_mod.write_wav(data_dir / name, audio_mod.to_int16(x), RATE)
            manifest.append({"file": name, "voice": voice.label, "speed": speed,
                             "channel": channel, "text": text, "spoken": spoken,
                             "duration_s": round(x.size / RATE, 3), "pii": spans})
    (data_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    meta = {"seed": seed, "generator_version": GENERATOR_VERSION,
            "voices": [v.label for v in voices]}
    (data_dir / "holdout_meta.json").write_text(json.dumps(meta, indent=1))
    return manifest


def load_or_generate(data_dir: Path, seed: int, regenerate: bool) -> list[dict[str, Any]] | None:
    manifest_path, meta_path = data_dir / "manifest.json", data_dir / "holdout_meta.json"
    if not regenerate and manifest_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        manifest: list[dict[str, Any]] = json.loads(manifest_path.read_text())
        fresh = (meta.get("seed") == seed
                 and meta.get("generator_version") == GENERATOR_VERSION
                 and all((data_dir / c["file"]).exists() for c in manifest))
        if fresh:
            return manifest
    voices = available_voices()
    if voices is None:
        return None
    t0 = time.perf_counter()
    manifest = generate(data_dir, voices, seed)
    print(f"holdout: generated {len(manifest)} clips in {data_dir} "
          f"({time.perf_counter() - t0:.1f} s; voices: {', '.join(v.label for v in voices)})",
          file=sys.stderr)
    return manifest


# --- scoring ---------------------------------------------------------------------------


def _group_summary(scores: list[ClipScore]) -> dict[str, Any]:
    s = summarise(scores)
    return {"clips": len(scores), "entities": s.entities,
            "entity_leak": round(s.entity_leak, 4), "audio_leak": round(s.audio_leak, 4),
            "over_redaction": round(s.over_redaction, 4)}


def run(args: argparse.Namespace, manifest: list[dict[str, Any]]) -> dict[str, Any]:
    from streamserver.cli import redact_file
    from streamserver.config import AsrConfig
    from streamserver.engines.bundle import Engines

    engines = Engines.load(AsrConfig(model=args.model))
    params = {"delay_ms": args.delay_ms}
    t0 = time.perf_counter()
    scores: list[ClipScore] = []
    groups: dict[str, dict[str, list[ClipScore]]] = {"voice": defaultdict(list),
                                                      "channel": defaultdict(list)}
    neg_masked = neg_speech = neg_touched = 0
    rows = []
    for clip in manifest:
        path = args.data_dir / clip["file"]
        inp, rate = audio_mod.read_wav(path)
        out, _, transcript = redact_file(path, params, engines)
        spans = [Span(p["entity"], p["start_s"], p["end_s"]) for p in clip["pii"]]
        s = score_clip(inp[:, 0], out[:, 0], rate, spans)
        scores.append(s)
        groups["voice"][clip["voice"]].append(s)
        groups["channel"][clip["channel"]].append(s)
        row: dict[str, Any] = {
            "file": clip["file"], "voice": clip["voice"], "speed": clip["speed"],
            "channel": clip["channel"], "source": clip["text"],
            "entities": [{"entity": p["entity"], "value": p["text"], "audible": round(a, 3)}
                         for p, (_, a) in zip(clip["pii"], s.entities, strict=True)],
            "over_masked_s": round(s.away_masked * FRAME_S, 2),
            "redacted_text": transcript["text"],
            "redactions": [r["entity"] for r in transcript["redactions"]],
            # masking at the deadline without a decision (fail closed), not a detection
            "deadline_masked_s": round((transcript["stats"] or {}).get(
                "deadline_masked_ms", 0.0) / 1000, 2),
        }
        if not spans:
            m, sp = masked_speech_share(inp[:, 0], out[:, 0], rate)
            neg_masked, neg_speech, neg_touched = neg_masked + m, neg_speech + sp, neg_touched + (
                m > 0)
            row["masked_share"] = round(m / sp, 4) if sp else 0.0
        row["leaks"] = any(a >= ENTITY_AUDIBLE for _, a in s.entities)
        row["over_redacts"] = s.away_masked >= OVER_REDACTION_FRAMES
        rows.append(row)
        if args.verbose:
            print(f"{clip['file']} {clip['voice']} "
                  f"{[(e, round(a, 2)) for e, a in s.entities]} over={row['over_masked_s']}s | "
                  f"{transcript['text']}", file=sys.stderr)
    summary = summarise(scores)
    pii_only = [s for s in scores if s.entities]
    negatives = sum(1 for c in manifest if not c["pii"])
    return {
        "command": "python benchmarks/holdout.py"
                   + (f" --limit {args.limit}" if args.limit else ""),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model": args.model or "tiny.en (bundled)",
        "delay_ms": args.delay_ms,
        "seed": args.seed,
        "clips": len(manifest),
        "summary": summary.as_dict(),
        "pii_clips_over_redaction": round(summarise(pii_only).over_redaction, 4),
        "negatives": {"clips": negatives, "clips_with_masking": neg_touched,
                      "masked_speech_share": round(neg_masked / neg_speech, 4)
                      if neg_speech else 0.0},
        "per_voice": {k: _group_summary(v) for k, v in sorted(groups["voice"].items())},
        "per_channel": {k: _group_summary(v) for k, v in sorted(groups["channel"].items())},
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "failures": {"leaks": [r["file"] for r in rows if r["leaks"]],
                     "over_redaction": [r["file"] for r in rows if r["over_redacts"]]},
        "clip_rows": rows,
    }


def print_report(result: dict[str, Any]) -> None:
    s, neg = result["summary"], result["negatives"]
    print(f"holdout: {result['clips']} clips, {s['entities']} PII values, "
          f"delay {result['delay_ms']} ms, {result['elapsed_s']} s")
    print(f"  audio leak {s['audio_leak']:.3f}   entity leak {s['entity_leak']:.3f} "
          f"({s['leaked_entities']}/{s['entities']})   over-redaction {s['over_redaction']:.3f} "
          f"(PII clips only {result['pii_clips_over_redaction']:.3f})")
    print(f"  negatives: {neg['clips']} clips, masked speech share "
          f"{neg['masked_speech_share']:.3f}, {neg['clips_with_masking']} with any masking")
    print("  per entity leak: " + ", ".join(f"{k} {v:.2f}"
                                            for k, v in s["per_entity_leak"].items()))
    for key in ("per_voice", "per_channel"):
        print(f"  {key.replace('_', ' ')}:")
        for name, g in result[key].items():
            print(f"    {name:22s} clips {g['clips']:2d}  entity leak {g['entity_leak']:.2f}  "
                  f"over-redaction {g['over_redaction']:.3f}")
    bad = [r for r in result["clip_rows"] if r["leaks"] or r["over_redacts"]]
    print(f"  failing clips: {len(bad)}")
    for r in bad:
        what = []
        if r["leaks"]:
            what.append("LEAK " + ", ".join(f"{e['entity']} {e['audible']:.2f}"
                                            for e in r["entities"]
                                            if e["audible"] >= ENTITY_AUDIBLE))
        if r["over_redacts"]:
            what.append(f"OVER {r['over_masked_s']:.2f}s")
        why = f"detections: {', '.join(r['redactions']) or 'none'}"
        if r["deadline_masked_s"]:
            why += f", deadline-masked {r['deadline_masked_s']:.2f}s"
        print(f"  - {r['file']} [{r['voice']}, {r['channel']}] {'; '.join(what)} ({why})")
        print(f"      source:   {r['source']}")
        print(f"      redacted: {r['redacted_text']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help=f"where clips and manifest.json are cached (default {DEFAULT_DATA_DIR})")
    ap.add_argument("--regenerate", action="store_true", help="synthesise the clips again")
    ap.add_argument("--generate-only", action="store_true", help="make the clips, do not score")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--limit", type=int, default=0, help="score only the first N clips")
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--model", default="", help="faster-whisper model name or path")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--verbose", action="store_true", help="one line per clip as it is scored")
    args = ap.parse_args(argv)

    manifest = load_or_generate(args.data_dir, args.seed, args.regenerate)
    if manifest is None:
        return 2
    if args.generate_only:
        return 0
    if args.limit:
        manifest = manifest[: args.limit]
    result = run(args, manifest)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print_report(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
