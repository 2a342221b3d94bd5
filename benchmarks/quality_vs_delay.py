"""Redaction quality against the delay D, beside the whole-clip bound and an ablation.

    .venv/bin/python benchmarks/quality_vs_delay.py [--data ../shared/data]
        [--delays 500,1000,1500,2000,3000,5000] [--limit N] [--jobs 2]

For every D it runs ``streamserver redact`` (in-process, pace=asap) over the
``pii_dev`` clips and the real clips in two configurations:

* ``default``: the current default session configuration (union of committed
  words and the latest hypothesis);
* ``committed_only``: ``use_hypothesis_evidence=false``, masks decided from
  committed (LocalAgreement) words alone;

and, once, the ``whole_clip`` bound (infinite delay): the same models transcribe
the whole clip (clips over 25 s are cut at VAD silences), the detector sees every
word at once, masks are padded like the default session (``mask_padding_ms``).

Scored as ``shared/data/README.md`` defines (``streamserver.evaluation``):
audio leak, entity leak (>= 25 % audible), per-entity leak, over-redaction
(masked speech away from PII in ``pii_dev`` plus all masked speech on the
``real/a*`` clips), the masked share on the telephone/IVR ``real/b*`` clips
(reported apart: their digits may or may not be personal data), text leak
(``pii_dev`` values still readable in the final transcript) and WER of the
final (redacted) transcript on the ``a*`` clips that have a reference.

Writes ``benchmarks/results/quality_vs_delay.json`` and ``.png`` (``--out``).
``--pii-manifest``/``--real-manifest`` (+ ``--pii-clips``/``--real-clips``) take
explicit clip lists instead of a ``--data`` directory (the smoke test uses them).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver import audio as audio_mod  # noqa: E402
from streamserver.config import SessionConfig  # noqa: E402
from streamserver.core.redact import DelayLine, MaskPlan, ranges_to_mask  # noqa: E402
from streamserver.core.transcript import substitute  # noqa: E402
from streamserver.core.types import ANALYSIS_RATE, Word, ms_to_samples  # noqa: E402
from streamserver.evaluation import (  # noqa: E402
    ClipScore,
    Span,
    masked_speech_share,
    score_clip,
    summarise,
)

DEFAULT_DELAYS = (500, 1000, 1500, 2000, 3000, 5000)
BOUND = "whole_clip"
# Streaming variants: session parameters on top of ``delay_ms``.
STREAMING: dict[str, dict[str, Any]] = {
    "default": {},
    "committed_only": {"use_hypothesis_evidence": False},
}
VARIANTS = (*STREAMING, BOUND)
DESCRIPTIONS = {
    "default": "current default session configuration (pace=asap)",
    "committed_only": "use_hypothesis_evidence=false: masks from committed "
                      "(LocalAgreement-2) words only",
    BOUND: "whole clip transcribed at once (<= 25 s pieces cut at VAD silences), detector "
           "over all words, masks padded like the default session; infinite delay",
}
MAX_PIECE_S = 25.0
MIN_PIECE_S = 5.0

# -- clips ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    kind: str  # "pii" (pii_dev), "a" (real, no personal data), "b" (real, telephone/IVR)
    file: str
    path: str
    duration_s: float
    pii: tuple[tuple[str, str, float, float], ...] = ()  # (entity, text, start_s, end_s)
    reference: str | None = None


def load_pii_clips(manifest: Path, clip_dir: Path) -> list[Clip]:
    clips = []
    for c in json.loads(manifest.read_text()):
        pii = tuple((p["entity"], p["text"], float(p["start_s"]), float(p["end_s"]))
                    for p in c["pii"])
        clips.append(Clip("pii", c["file"], str(clip_dir / c["file"]),
                          float(c.get("duration_s", 0.0)), pii))
    return clips


def load_real_clips(manifest: Path, clip_dir: Path) -> list[Clip]:
    """``MANIFEST.tsv`` rows whose file starts with ``a`` or ``b``."""
    clips = []
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            name = row["file"]
            kind = name[:1]
            if kind not in ("a", "b"):
                continue
            ref = (row.get("transcript") or "").strip()
            clips.append(Clip(kind, name, str(clip_dir / name), float(row["duration_s"] or 0),
                              reference=None if ref.lower() in ("", "none") else ref))
    return sorted(clips, key=lambda c: c.file)


# -- text leak and WER ------------------------------------------------------------------

_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
# Value words too common to identify anyone on their own.
_COMMON = frozenset((
    "the", "and", "of", "at", "dot", "com", "org", "net", "edu", "mail", "gmail", "email",
    "example", "street", "st", "road", "rd", "drive", "dr", "avenue", "ave", "lane", "ln",
    "way", "court", "ct", "boulevard", "blvd", "place", "apartment", "apt", "suite", "unit",
    "north", "south", "east", "west", "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
))
_NON_ALNUM = re.compile(r"[^a-z0-9]")


def _norm_tokens(text: str) -> list[str]:
    """Lowercase, letters and digits only, one token per whitespace-separated word."""
    return [_NON_ALNUM.sub("", t) for t in text.lower().split()]


def digit_runs(text: str) -> list[str]:
    """Runs of digits across adjacent numeric words ("4,539 1488" -> "45391488").

    Spoken digit words count as digits; anything else (a masked ``####`` too)
    ends a run.
    """
    runs, cur = [], ""
    for tok in _norm_tokens(text):
        tok = _DIGIT_WORDS.get(tok, tok)
        if tok.isdigit():
            cur += tok
        else:
            if cur:
                runs.append(cur)
            cur = ""
    if cur:
        runs.append(cur)
    return runs


def value_readable(value: str, text: str) -> bool:
    """Is any part of a PII value still readable in (redacted) ``text``?

    Digits: any 4 consecutive digits of the value inside a digit run of the text.
    Words: any value token of >= 3 letters (not a very common word) equal to a text
    token, or (>= 4 letters) inside one ("michael" in "michaeljohnsonexamplecom").
    """
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 4:
        grams = {digits[i : i + 4] for i in range(len(digits) - 3)}
        runs = digit_runs(text)
        if any(g in r for g in grams for r in runs):
            return True
    words = [w for w in re.findall(r"[a-z]+", value.lower()) if len(w) >= 3 and w not in _COMMON]
    tokens = [t for t in _norm_tokens(text) if t]
    return any(w == t or (len(w) >= 4 and w in t) for w in words for t in tokens)


def wer_tokens(text: str) -> list[str]:
    """Lowercase, no punctuation, numbers as written; masked words become ``<masked>``."""
    text = text.lower().replace("'", "").replace("’", "")
    out = []
    for tok in re.findall(r"[a-z0-9#]+", text):
        out.append("<masked>" if set(tok) == {"#"} else tok.replace("#", ""))
    return [t for t in out if t]


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


# -- the whole-clip bound ---------------------------------------------------------------


def piece_bounds(n: int, segments: Sequence[tuple[int, int]],
                 max_len: int, min_len: int) -> list[tuple[int, int]]:
    """Cut ``[0, n)`` into pieces of at most ``max_len`` samples, at the middle of
    the latest VAD silence that fits (a hard cut where none does)."""
    gaps = [(a[1] + b[0]) // 2 for a, b in itertools.pairwise(segments)
            if b[0] > a[1]]
    cuts, start = [0], 0
    while n - start > max_len:
        fits = [g for g in gaps if start + min_len <= g <= start + max_len]
        start = max(fits) if fits else start + max_len
        cuts.append(start)
    cuts.append(n)
    return list(itertools.pairwise(cuts))


def whole_clip_redact(samples: np.ndarray, rate: int, engines: Any,
                      padding_ms: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Transcribe the whole clip, detect over all words, mask: (output, transcript)."""
    from streamserver.core.vad import VadSegmenter

    mono = audio_mod.to_mono_float(samples)
    if rate != ANALYSIS_RATE:
        mono = audio_mod.resample(mono, rate, ANALYSIS_RATE)
    n16 = mono.size
    max_len = int(MAX_PIECE_S * ANALYSIS_RATE)
    if n16 > max_len:
        stream = engines.vad.new_stream()
        probs = stream.push(mono) + stream.flush()
        seg = VadSegmenter(engines.vad_cfg)
        seg.push(probs)
        seg.flush()
        pieces = piece_bounds(n16, seg.segments, max_len, int(MIN_PIECE_S * ANALYSIS_RATE))
    else:
        pieces = [(0, n16)]
    words: list[Word] = []
    for lo, hi in pieces:
        prompt = "".join(w.text for w in words)[-engines.asr_cfg.prompt_chars :].strip()
        for w in engines.asr.transcribe(mono[lo:hi], prompt):
            words.append(Word(w.text, lo + w.start, lo + w.end, w.probability))
    entities = SessionConfig().entities
    spans = engines.detector.detect([w.text for w in words]) if words else []
    plan = MaskPlan(ms_to_samples(padding_ms))
    labels: dict[int, tuple[str, float]] = {}
    for s in spans:
        if s.entity not in entities or s.last <= s.first:
            continue
        plan.add(words[s.first].start, words[s.last - 1].end)
        for i in range(s.first, s.last):
            if i not in labels or s.score > labels[i][1]:
                labels[i] = (s.entity, s.score)
    n = samples.shape[0]
    idx = np.arange(n, dtype=np.int64) * ANALYSIS_RATE // rate
    m16 = ranges_to_mask(plan.ranges(0, n16 + 1), 0, n16 + 1)
    mask = m16[np.minimum(idx, n16)]
    line = DelayLine(rate, samples.shape[1], "beep")
    line.push(samples)
    out = line.release(n, mask).samples
    text = "".join(substitute(w.text, labels[i][0], "hash") if i in labels else w.text
                   for i, w in enumerate(words)).strip()
    return out, {"text": text, "stats": {"masked_ms": round(1000 * float(mask.sum()) / rate, 1)}}


# -- one task: (variant, delay, clip) ----------------------------------------------------

_ENGINES: Any = None


def init_worker(model: str, cpu_threads: int, step_ms: int = 0) -> None:
    global _ENGINES
    import logging

    from streamserver.config import AsrConfig
    from streamserver.engines.bundle import Engines

    logging.disable(logging.WARNING)
    asr = AsrConfig(model=model, cpu_threads=cpu_threads)
    if step_ms:
        asr = AsrConfig(model=model, cpu_threads=cpu_threads, step_ms=step_ms)
    _ENGINES = Engines.load(asr)


@dataclass
class TaskResult:
    variant: str
    delay_ms: int | None
    clip: Clip
    score: ClipScore | None = None  # pii clips
    masked: int = 0  # real clips: masked speech frames / speech frames
    speech: int = 0
    text_leaks: list[tuple[str, bool]] = field(default_factory=list)  # (entity, readable)
    wer: tuple[int, int] | None = None  # (edits, reference words)
    text: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _mono_int16(x: np.ndarray) -> np.ndarray:
    """Scoring works on int16 mono (it scales integer input to full scale itself)."""
    if x.shape[1] == 1:
        return x[:, 0]
    return np.rint(x.mean(axis=1)).astype(np.int16)


def run_task(variant: str, delay_ms: int | None, clip: Clip) -> TaskResult:
    from streamserver.cli import redact_file

    t0 = time.perf_counter()
    inp, rate = audio_mod.read_wav(clip.path)
    if variant == BOUND:
        out, transcript = whole_clip_redact(inp, rate, _ENGINES,
                                            SessionConfig().mask_padding_ms)
    else:
        params = {"delay_ms": delay_ms, **STREAMING[variant]}
        out, _, transcript = redact_file(Path(clip.path), params, _ENGINES)
    res = TaskResult(variant, delay_ms, clip, text=transcript["text"])
    st = transcript.get("stats") or {}
    res.stats = {k: st[k] for k in ("speech_ms", "masked_ms", "deadline_masked_ms") if k in st}
    x, y = _mono_int16(inp), _mono_int16(out)
    if clip.kind == "pii":
        spans = [Span(e, s, t) for e, _, s, t in clip.pii]
        res.score = score_clip(x, y, rate, spans)
        res.text_leaks = [(e, value_readable(v, res.text)) for e, v, _, _ in clip.pii]
    else:
        res.masked, res.speech = masked_speech_share(x, y, rate)
        if clip.reference is not None:
            ref = wer_tokens(clip.reference)
            res.wer = (edit_distance(ref, wer_tokens(res.text)), len(ref))
    res.seconds = time.perf_counter() - t0
    return res


def _run_in_worker(task: tuple[str, int | None, Clip]) -> TaskResult:
    return run_task(*task)


# -- aggregation ------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def aggregate(results: Sequence[TaskResult]) -> dict[str, Any]:
    """Scores of one (variant, delay) over its clips."""
    pii = [r for r in results if r.clip.kind == "pii"]
    real_a = [r for r in results if r.clip.kind == "a"]
    real_b = [r for r in results if r.clip.kind == "b"]
    summary = summarise([r.score for r in pii if r.score is not None]).as_dict()
    leaks = [lk for r in pii for lk in r.text_leaks]
    per_ent: dict[str, list[bool]] = {}
    for ent, readable in leaks:
        per_ent.setdefault(ent, []).append(readable)
    speech_ms = sum(r.stats.get("speech_ms", 0.0) for r in pii)
    deadline_ms = sum(r.stats.get("deadline_masked_ms", 0.0) for r in pii)
    a_masked, a_speech = sum(r.masked for r in real_a), sum(r.speech for r in real_a)
    b_masked, b_speech = sum(r.masked for r in real_b), sum(r.speech for r in real_b)
    away = sum(r.score.away_speech for r in pii if r.score)
    away_masked = sum(r.score.away_masked for r in pii if r.score)
    wers = [r.wer for r in real_a if r.wer is not None]
    return {
        "audio_leak": summary["audio_leak"],
        "entity_leak": summary["entity_leak"],
        "per_entity_leak": summary["per_entity_leak"],
        "entities": summary["entities"],
        "leaked_entities": summary["leaked_entities"],
        # masked speech > 0.5 s from any span in pii_dev, plus all masked speech on a*
        "over_redaction": _ratio(away_masked + a_masked, away + a_speech),
        "over_redaction_pii_dev": summary["over_redaction"],
        "over_redaction_real_a": _ratio(a_masked, a_speech),
        "real_b_masked_share": _ratio(b_masked, b_speech),
        "text_leak": _ratio(sum(v for _, v in leaks), len(leaks)),
        "text_leak_per_entity": {k: _ratio(sum(v), len(v)) for k, v in sorted(per_ent.items())},
        "wer_real_a": _ratio(sum(e for e, _ in wers), sum(n for _, n in wers)),
        "wer_clips": len(wers),
        # speech masked because it reached its deadline undecided (fail closed)
        "deadline_masked_share_pii_dev": _ratio(deadline_ms, speech_ms),
        "clips": {"pii_dev": len(pii), "real_a": len(real_a), "real_b": len(real_b)},
        "compute_s": round(sum(r.seconds for r in results), 1),
    }


def clip_detail(r: TaskResult) -> dict[str, Any]:
    d: dict[str, Any] = {"file": r.clip.file, "text": r.text}
    if r.score is not None:
        d["entity_audible"] = [[e, round(a, 3)] for e, a in r.score.entities]
        d["away_masked_frames"] = r.score.away_masked
        d["text_readable"] = [[e, v] for e, v in r.text_leaks]
    else:
        d["masked_share"] = _ratio(r.masked, r.speech)
        if r.wer is not None:
            d["wer"] = _ratio(*r.wer)
    if r.stats.get("deadline_masked_ms"):
        d["deadline_masked_ms"] = r.stats["deadline_masked_ms"]
    return d


# -- plot -------------------------------------------------------------------------------


def plot(results: dict[str, dict[str, dict[str, Any]]], delays: Sequence[int],
         png: Path, title: str) -> None:
    """Two panels (leak; over-redaction) against D: colour = variant, line style =
    metric; the whole-clip bound is a horizontal dashed (or dotted) line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colors = {"default": "tab:blue", "committed_only": "tab:orange", BOUND: "0.3"}
    names = {"default": "default (union of evidence)", "committed_only": "committed-only",
             BOUND: "whole-clip bound (D = ∞, horizontal)"}
    xs = [d / 1000 for d in delays]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    panels = [
        (axes[0], "leak vs delay (pii_dev)", "share of PII leaked",
         [("entity_leak", "entity leak (value ≥25% audible)", "o"),
          ("audio_leak", "audio leak (PII speech audible)", "s")]),
        (axes[1], "over-redaction vs delay", "share of non-PII speech masked",
         [("over_redaction", "over-redaction (pii_dev away from PII + a*)", "o"),
          ("over_redaction_real_a", "a* clips only", "s")]),
    ]
    styles = (("-", "--"), (":", (0, (1, 2))))  # (streaming, bound) per metric
    for ax, name, ylabel, metrics in panels:
        for (key, _, marker), (ls, bound_ls) in zip(metrics, styles, strict=True):
            for v in STREAMING:
                if v in results:
                    ys = [results[v][str(d)][key] for d in delays]
                    ax.plot(xs, ys, linestyle=ls, marker=marker, color=colors[v], lw=1.8, ms=5)
            if BOUND in results:
                ax.axhline(results[BOUND]["inf"][key], color=colors[BOUND],
                           linestyle=bound_ls, lw=1.3)
        handles = [Line2D([], [], color=colors[v], lw=2, label=names[v])
                   for v in VARIANTS if v in results]
        handles += [Line2D([], [], color="k", linestyle=ls, marker=marker, lw=1.2, ms=4,
                           label=label)
                    for (_, label, marker), (ls, _) in zip(metrics, styles, strict=True)]
        ax.legend(handles=handles, fontsize=8, loc="upper right", framealpha=0.85)
        ax.set_title(name)
        ax.set_xlabel("delay D (s)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
        top = max(0.05, *(float(np.max(ln.get_ydata())) for ln in ax.get_lines()))
        ax.set_ylim(-0.02 * top, top * 1.45)  # head room for the legend
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


# -- main -------------------------------------------------------------------------------


def _git_state() -> dict[str, Any]:
    """The commit measured, and whether the package had uncommitted changes."""
    import subprocess

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None,
            "streamserver_dirty": bool(git("status", "--porcelain", "--", "streamserver"))}


def _table(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    cols = ("audio_leak", "entity_leak", "over_redaction", "over_redaction_pii_dev",
            "over_redaction_real_a", "real_b_masked_share", "text_leak", "wer_real_a",
            "deadline_masked_share_pii_dev")
    rows = []
    for variant, by_delay in results.items():
        for d, r in by_delay.items():
            rows.append({"variant": variant, "delay_ms": None if d == "inf" else int(d),
                         **{c: r[c] for c in cols}})
    return rows


def _print_table(rows: Iterable[dict[str, Any]]) -> None:
    head = ("variant", "D ms", "aud.leak", "ent.leak", "over", "over.dev", "over.a*",
            "b*.mask", "text.leak", "WER a*", "deadl.")
    print(" ".join(f"{h:>14}" if i == 0 else f"{h:>9}" for i, h in enumerate(head)))
    for r in rows:
        vals = [r[k] for k in ("audio_leak", "entity_leak", "over_redaction",
                               "over_redaction_pii_dev", "over_redaction_real_a",
                               "real_b_masked_share", "text_leak", "wer_real_a",
                               "deadline_masked_share_pii_dev")]
        d = "inf" if r["delay_ms"] is None else str(r["delay_ms"])
        print(f"{r['variant']:>14} {d:>9} " + " ".join(f"{v:9.3f}" for v in vals))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="a directory laid out like shared/data (pii_dev/, real/)")
    ap.add_argument("--pii-manifest", type=Path, default=None,
                    help="pii_dev-style manifest.json (default: DATA/pii_dev/manifest.json)")
    ap.add_argument("--pii-clips", type=Path, default=None,
                    help="directory of the manifest's clips (default: beside the manifest)")
    ap.add_argument("--real-manifest", type=Path, default=None,
                    help="real-style MANIFEST.tsv (default: DATA/real/MANIFEST.tsv)")
    ap.add_argument("--real-clips", type=Path, default=None,
                    help="directory of the real clips (default: beside the manifest)")
    ap.add_argument("--no-real-b", action="store_true", help="skip the b* (telephone) clips")
    ap.add_argument("--delays", default=",".join(map(str, DEFAULT_DELAYS)),
                    help="comma-separated delays in ms")
    ap.add_argument("--limit", type=int, default=0,
                    help="only the first N clips of each set (pii_dev, a*, b*)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (each loads models)")
    ap.add_argument("--model", default="", help="faster-whisper model ('' = bundled tiny.en)")
    ap.add_argument("--step-ms", type=int, default=0,
                    help="Whisper pass interval (default: the configured default)")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "quality_vs_delay.json",
                    help="JSON output; the PNG goes beside it")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    delays = sorted({int(d) for d in args.delays.split(",") if d.strip()})
    pii_manifest = args.pii_manifest or args.data / "pii_dev" / "manifest.json"
    real_manifest = args.real_manifest or args.data / "real" / "MANIFEST.tsv"
    if not pii_manifest.exists():
        ap.error(f"no pii_dev manifest at {pii_manifest} (use --data or --pii-manifest)")
    pii_clips = load_pii_clips(pii_manifest, args.pii_clips or pii_manifest.parent)
    real_clips = (load_real_clips(real_manifest, args.real_clips or real_manifest.parent)
                  if real_manifest.exists() else [])
    sets = {"pii": pii_clips,
            "a": [c for c in real_clips if c.kind == "a"],
            "b": [] if args.no_real_b else [c for c in real_clips if c.kind == "b"]}
    if args.limit:
        sets = {k: v[: args.limit] for k, v in sets.items()}
    clips = [c for v in sets.values() for c in v]
    for c in clips:
        if not Path(c.path).exists():
            ap.error(f"missing clip {c.path}")
    if not clips:
        ap.error("no clips")

    tasks: list[tuple[str, int | None, Clip]] = [(BOUND, None, c) for c in clips]
    tasks += [(v, d, c) for d in delays for v in STREAMING for c in clips]
    # Longest clips first: the pool finishes evenly.
    tasks.sort(key=lambda t: -t[2].duration_s)
    jobs = max(1, args.jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"{len(clips)} clips ({len(sets['pii'])} pii_dev, {len(sets['a'])} a*, "
          f"{len(sets['b'])} b*), {len(delays)} delays, {len(tasks)} runs, {jobs} job(s)",
          file=sys.stderr)
    git_state = _git_state()  # before the run: workers import the code as it is now
    t0 = time.perf_counter()
    done: list[TaskResult] = []

    def progress(r: TaskResult) -> None:
        done.append(r)
        if len(done) % 25 == 0 or len(done) == len(tasks):
            print(f"  {len(done)}/{len(tasks)} runs, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)

    if jobs == 1:
        init_worker(args.model, threads, args.step_ms)
        for t in tasks:
            progress(run_task(*t))
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                 initializer=init_worker,
                                 initargs=(args.model, threads, args.step_ms)) as pool:
            futures = [pool.submit(_run_in_worker, t) for t in tasks]
            for fut in as_completed(futures):
                progress(fut.result())
    elapsed = time.perf_counter() - t0

    order = {c.file: i for i, c in enumerate(clips)}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    details: dict[str, dict[str, list[dict[str, Any]]]] = {}
    keys = [(v, d) for v in STREAMING for d in delays] + [(BOUND, None)]
    for v, d in keys:
        group = sorted((r for r in done if r.variant == v and r.delay_ms == d),
                       key=lambda r: order[r.clip.file])
        dk = "inf" if d is None else str(d)
        results.setdefault(v, {})[dk] = aggregate(group)
        details.setdefault(v, {})[dk] = [clip_detail(r) for r in group]
    rows = _table(results)

    cmd = "python benchmarks/quality_vs_delay.py " + " ".join(argv or sys.argv[1:])
    result = {
        "command": cmd.strip(),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "git": git_state,
        "model": args.model or "tiny.en (bundled)",
        "jobs": jobs,
        "elapsed_s": round(elapsed, 1),
        "delays_ms": delays,
        "mask_padding_ms": SessionConfig().mask_padding_ms,
        "clips": {"pii_dev": [c.file for c in sets["pii"]], "real_a": [c.file for c in sets["a"]],
                  "real_b": [c.file for c in sets["b"]]},
        "variants": {v: DESCRIPTIONS[v] for v in VARIANTS},
        "metrics": {
            "audio_leak": "unmasked speech inside PII spans / speech inside PII spans (pii_dev)",
            "entity_leak": "share of PII values with >= 25% of their speech audible (pii_dev)",
            "over_redaction": "masked speech more than 0.5 s from any PII span in pii_dev plus "
                              "all masked speech on real a* clips / all such speech (frames)",
            "real_b_masked_share": "masked speech share on real b* telephone/IVR clips; their "
                                   "digits may or may not be personal data, so not counted as "
                                   "over-redaction",
            "text_leak": "share of pii_dev values with any part readable in transcript.final "
                         "(4 consecutive digits of the value, or a value word of >= 3 letters "
                         "that is not a common word; spoken digit words count as digits)",
            "wer_real_a": "word error rate of the final (redacted) transcript against the "
                          "reference on a* clips that have one; lowercase, punctuation "
                          "stripped, numbers as written, a masked word counts as an error. "
                          "Unredacted text is never produced by design; a* clips carry no "
                          "personal data, so redaction barely touches them",
            "deadline_masked_share_pii_dev": "speech masked because it reached its release "
                                             "deadline undecided (fail closed) / VAD speech",
        },
        "notes": [
            "pace=asap: the deadline is in audio time, so results do not depend on machine "
            "speed.",
            "real/MANIFEST.tsv notes names in a05 (Mr. Quilter) and a08 (John Dashwood, "
            "fictional); shared/data/README.md counts all a* masking as over-redaction, and "
            "so does this benchmark (see per-clip masked_share).",
        ],
        "results": results,
        "table": rows,
        "per_clip": details,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    if not args.no_plot:
        title = (f"streamserver redaction quality vs delay — tiny.en, {len(sets['pii'])} pii_dev "
                 f"+ {len(sets['a'])} a* clips, pace=asap")
        plot(results, delays, args.out.with_suffix(".png"), title)
    _print_table(rows)
    print(f"elapsed {elapsed:.0f} s; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
