"""Redaction quality of ``streamserver redact`` (pace=asap) on the shared data and on dialogues.

    .venv/bin/python benchmarks/redaction_quality.py [--delay-ms 2000] [--data ../shared/data]
        [--sets pii_dev,real,dialogues] [--layouts mono,stereo] [--channels clean,phone]
        [--limit N] [--whole-clip-baseline]

``pii_dev``: every clip scored against its exact spans; ``real``: every ``real/a*``
clip (no personal data: anything masked is over-redaction), as
``shared/data/README.md`` defines. ``dialogues``: the two-party phone-call corpus of
``benchmarks/dialogues.py`` (generated on first use, cached in the temp dir), every
dialogue in each chosen layout and channel, reported apart for its ``dev`` and
``blind`` splits (the blind split stays untuned). Per split, layout and channel:

* values >= 25 % audible (entity leak), audio leak, over-redaction (masked speech
  more than 0.5 s from any value), per-entity leak, and the entity leak of values
  whose only cue was the other party's question;
* hard negatives: the share of speech masked in turns with no personal data but
  numbers, or a refusal right after a request (speech within 0.5 s of a value left out);
* text leak: values still readable in the final (masked) transcript. Numbers (and
  dates of birth) by their digits inside a run of digits (``quality_vs_delay.digit_runs``),
  names and emails by their letters in the transcript's letters (for emails without
  the words "at", "dot", "underscore"), street addresses by the letters and digits of
  house number and street;
* ``unexplained_speech_ms`` and ``deadline_masked_ms`` from the session's stats;
* repeats: 4-grams of the final transcript (lower case, no punctuation, masked
  words left out) more frequent than in what was said, though said once: a
  sentence the streamed transcript holds twice.

Stereo clips (channel 0 agent, channel 1 caller) are scored per channel against
that channel's input and the values its party said. They get the session setting
``channel_roles=agent,caller`` when ``SessionConfig`` has it. Phone clips are the
8 kHz mu-law decoded files (``--phone-rate 16000``: the upsampled copies).
``--whole-clip-baseline`` also scores the dialogues transcribed whole, at once
(``quality_vs_delay.whole_clip_redact``: the bound at infinite delay).

Writes ``benchmarks/results/redaction_quality.json`` (``--out``); keys of sets
not run this time are kept from the file already there. Transcripts in it are
masked ones only (the dialogues' source sentences are made up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dialogues as dialogue_corpus  # noqa: E402
from quality_vs_delay import digit_runs, wer_tokens, whole_clip_redact  # noqa: E402

from streamserver import audio as audio_mod  # noqa: E402
from streamserver.cli import redact_file, stream_file, transcript_from_events  # noqa: E402
from streamserver.config import AsrConfig, SessionConfig  # noqa: E402
from streamserver.engines.bundle import Engines  # noqa: E402
from streamserver.evaluation import (  # noqa: E402
    AWAY_S,
    ENTITY_AUDIBLE,
    FRAME_S,
    ClipScore,
    Span,
    frame_flags,
    masked_speech_share,
    score_clip,
    summarise,
)

SETS = ("pii_dev", "real", "dialogues")
OUT = ROOT / "benchmarks" / "results" / "redaction_quality.json"
REPEAT_N = 4
LETTER_ENTITIES = {"PERSON", "EMAIL_ADDRESS"}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


# --- pii_dev and real ----------------------------------------------------------------------


def run_pii_dev(args: argparse.Namespace, params: dict[str, Any],
                engines: Engines) -> dict[str, Any]:
    manifest = json.loads((args.data / "pii_dev" / "manifest.json").read_text())
    if args.limit:
        manifest = manifest[: args.limit]
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
    return {"pii_dev": summarise(scores).as_dict(), "pii_dev_clips": clips}


def run_real(args: argparse.Namespace, params: dict[str, Any],
             engines: Engines) -> dict[str, Any]:
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
        if args.verbose:  # the masked transcript only
            print(path.name, round(m / max(s_, 1), 3), transcript["text"][:200], file=sys.stderr)
    return {"real_no_pii": {"clips": len(real), "masked_speech_share":
                            round(masked / speech, 4) if speech else 0.0},
            "real_clips": real_clips}


# --- dialogues: text measures ----------------------------------------------------------------


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def text_leaks(entity: str, value: str, transcript: str) -> bool:
    """Is the value still readable in the masked transcript (normalised as the module says)?"""
    if entity in LETTER_ENTITIES:
        letters = re.sub(r"[^a-z]", "", value.lower())
        said = transcript.lower()
        if entity == "EMAIL_ADDRESS":  # "castillo at example dot com", as it was said
            said = re.sub(r"\b(at|dot|underscore)\b", "", said)
        return bool(letters) and letters in re.sub(r"[^a-z]", "", said)
    if entity == "LOCATION":  # house number and street: "1647elmstreet"
        street = _alnum(value.split(",")[0])
        return bool(street) and street in _alnum(transcript)
    digits = re.sub(r"\D", "", value)
    return bool(digits) and any(digits in run for run in digit_runs(transcript))


def repeated_ngrams(reference: str, hypothesis: str, n: int = REPEAT_N) -> int:
    """Excess occurrences of n-grams the hypothesis holds at least twice and more often
    than the reference (masked words, whose text is unknown, are left out)."""

    def grams(text: str) -> Counter[tuple[str, ...]]:
        toks = wer_tokens(text)
        return Counter(g for g in zip(*(toks[i:] for i in range(n)), strict=False)
                       if "<masked>" not in g)

    ref, hyp = grams(reference), grams(hypothesis)
    return sum(c - max(ref[g], 1) for g, c in hyp.items() if c >= 2 and c > ref[g])


# --- dialogues: one clip ---------------------------------------------------------------------


def _negative_frames(clip: dict[str, Any], role: str | None, speech: np.ndarray,
                     masked: np.ndarray) -> tuple[int, int, bool]:
    """(masked, speech) frames of the hard-negative turns, and whether any is masked."""
    t = np.arange(speech.size) * FRAME_S + FRAME_S / 2
    inside = np.zeros(speech.size, dtype=bool)
    for turn in clip["turns"]:
        if turn["negative"] and role in (None, turn["role"]):
            inside |= (t >= turn["start_s"]) & (t < turn["end_s"])
    for p in clip["pii"]:
        inside &= ~((t >= p["start_s"] - AWAY_S) & (t < p["end_s"] + AWAY_S))
    sp = inside & speech
    m = int((sp & masked).sum())
    return m, int(sp.sum()), m > 0


def score_dialogue(clip: dict[str, Any], inp: np.ndarray, out: np.ndarray, rate: int,
                   transcript: dict[str, Any]) -> tuple[dict[str, Any], list[ClipScore]]:
    """One clip's row and its scores (one per channel for stereo: that party's values)."""
    roles: Sequence[str | None] = ("agent", "caller") if clip["layout"] == "stereo" else (None,)
    scores, audible, neg = [], {}, [0, 0, 0]
    for ch, role in enumerate(roles):
        idx = [i for i, p in enumerate(clip["pii"]) if role in (None, p["role"])]
        spans = [Span(clip["pii"][i]["entity"], clip["pii"][i]["start_s"],
                      clip["pii"][i]["end_s"]) for i in idx]
        s = score_clip(inp[:, ch], out[:, ch], rate, spans)
        scores.append(s)
        audible.update({i: a for i, (_, a) in zip(idx, s.entities, strict=True)})
        m, sp, touched = _negative_frames(clip, role, *frame_flags(inp[:, ch], out[:, ch], rate))
        neg = [neg[0] + m, neg[1] + sp, neg[2] + touched]
    text = transcript["text"]
    # Repeats against the spoken words only (channel_roles adds "agent:" labels).
    words_text = " ".join(w["text"] for w in transcript["words"])
    stats = transcript.get("stats") or {}
    reference = " ".join(t["text"] for t in clip["turns"])
    values = [{"entity": p["entity"], "value": p["text"], "role": p["role"],
               "cued_in_question": p["cued_in_question"], "audible": round(audible[i], 3),
               "text_leak": text_leaks(p["entity"], p["text"], text)}
              for i, p in enumerate(clip["pii"])]
    row = {
        "file": clip["file"], "dialogue": clip["dialogue"], "split": clip["split"],
        "layout": clip["layout"], "channel": clip["channel"], "voices": clip["voices"],
        "values": values,
        "over_masked_s": round(sum(s.away_masked for s in scores) * FRAME_S, 2),
        "negative_masked_frames": neg[0], "negative_speech_frames": neg[1],
        "negative_masked_channels": neg[2],
        "repeated_ngrams": repeated_ngrams(reference, words_text),
        "stats": {k: stats[k] for k in ("speech_ms", "masked_ms", "deadline_masked_ms",
                                        "unexplained_speech_ms", "unexplained_masked_ms",
                                        "requests_heard") if k in stats},
        "redacted_text": text,
    }
    return row, scores


def summarise_dialogues(rows: list[dict[str, Any]],
                        scores: list[list[ClipScore]]) -> dict[str, Any]:
    """One group of clips (a split, layout and channel, or a whole split)."""
    s = summarise([x for xs in scores for x in xs]).as_dict()
    values = [v for r in rows for v in r["values"]]

    def leak(vs: Iterable[dict[str, Any]]) -> float:
        flags = [v["audible"] >= ENTITY_AUDIBLE for v in vs]
        return _ratio(sum(flags), len(flags))

    def stat(key: str) -> float:
        return round(sum(r["stats"].get(key, 0.0) for r in rows), 1)

    speech_ms = stat("speech_ms")
    text_per: dict[str, list[bool]] = defaultdict(list)
    for v in values:
        text_per[v["entity"]].append(v["text_leak"])
    repeats = [r["repeated_ngrams"] for r in rows]
    return {
        "clips": len(rows),
        "values": s["entities"],
        "leaked_values": s["leaked_entities"],
        "entity_leak": s["entity_leak"],
        "audio_leak": s["audio_leak"],
        "over_redaction": s["over_redaction"],
        "per_entity_leak": s["per_entity_leak"],
        "entity_leak_cued_in_question": leak(v for v in values if v["cued_in_question"]),
        "entity_leak_cued_in_answer": leak(v for v in values if not v["cued_in_question"]),
        "entity_leak_per_role": {role: leak(v for v in values if v["role"] == role)
                                 for role in ("agent", "caller")},
        "hard_negative_masked_share": _ratio(sum(r["negative_masked_frames"] for r in rows),
                                             sum(r["negative_speech_frames"] for r in rows)),
        "hard_negative_clips_masked": sum(r["negative_masked_channels"] > 0 for r in rows),
        "text_leak": _ratio(sum(v["text_leak"] for v in values), len(values)),
        "text_leak_per_entity": {k: _ratio(sum(f), len(f)) for k, f in sorted(text_per.items())},
        "speech_ms": speech_ms,
        "unexplained_speech_ms": stat("unexplained_speech_ms"),
        "unexplained_speech_share": _ratio(stat("unexplained_speech_ms"), speech_ms),
        "deadline_masked_ms": stat("deadline_masked_ms"),
        "repeated_ngrams_per_clip": _ratio(sum(repeats), len(repeats)),
        "clips_with_repeats": sum(n > 0 for n in repeats),
    }


def _group_report(rows: list[dict[str, Any]], scores: list[list[ClipScore]]) -> dict[str, Any]:
    by_group: dict[str, list[int]] = defaultdict(list)
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_group[f"{r['split']}/{r['layout']}/{r['channel']}"].append(i)
        by_split[r["split"]].append(i)

    def pick(ix: list[int]) -> dict[str, Any]:
        return summarise_dialogues([rows[i] for i in ix], [scores[i] for i in ix])

    return {"splits": {k: pick(v) for k, v in sorted(by_split.items())},
            "groups": {k: pick(v) for k, v in sorted(by_group.items())}}


def _score_clips(args: argparse.Namespace, clips: list[dict[str, Any]], params: dict[str, Any],
                 engines: Engines, server_url: str, rows: list[dict[str, Any]],
                 scores: list[list[ClipScore]],
                 baseline: tuple[list[dict[str, Any]], list[list[ClipScore]]] | None) -> None:
    """Redact each clip (in-process, or streamed to ``server_url``) and score it."""
    wide_phone = args.phone_rate == 16000
    for n, clip in enumerate(clips, 1):
        path = args.dialogue_dir / clip["file_16k" if wide_phone and "file_16k" in clip
                                       else "file"]
        inp, rate = audio_mod.read_wav(path)
        clip_params = dict(params)
        if clip["layout"] == "stereo":  # one party per channel: analysed per channel
            clip_params["channel_roles"] = "agent,caller"
        if server_url:
            out, _, events = asyncio.run(stream_file(
                path, server_url, {"encoding": "pcm_s16le", **clip_params}, pace="realtime"))
            transcript = transcript_from_events(events)
        else:
            out, _, transcript = redact_file(path, clip_params, engines)
        row, s = score_dialogue(clip, inp, out, rate, transcript)
        rows.append(row)
        scores.append(s)
        if baseline is not None:
            wout, wtext = whole_clip_redact(inp, rate, engines, SessionConfig().mask_padding_ms)
            brow, bs = score_dialogue(clip, inp, wout, rate, wtext)
            baseline[0].append(brow)
            baseline[1].append(bs)
        if args.verbose:
            leaked = [f"{v['entity']} {v['audible']:.2f}" for v in row["values"]
                      if v["audible"] >= ENTITY_AUDIBLE]
            print(f"[{n}/{len(clips)}] {clip['file']} leaks: {', '.join(leaked) or '-'} "
                  f"over {row['over_masked_s']} s repeats {row['repeated_ngrams']} | "
                  f"{row['redacted_text']}", file=sys.stderr)


def run_dialogues(args: argparse.Namespace, params: dict[str, Any],
                  engines: Engines) -> dict[str, Any] | None:
    manifest = dialogue_corpus.load_or_generate(args.dialogue_dir, args.dialogue_seed,
                                                args.dialogue_count, args.regenerate_dialogues)
    if manifest is None:
        return None
    stats = dialogue_corpus.corpus_stats(manifest)
    chosen = set(sorted({c["dialogue"] for c in manifest})[: args.limit or None])
    clips = [c for c in manifest if c["dialogue"] in chosen
             and c["layout"] in args.layouts and c["channel"] in args.channels]
    baseline: tuple[list[dict[str, Any]], list[list[ClipScore]]] | None = None
    server_url, server = "", None
    # Where Whisper ran: this process's engines, or the server's (its /readyz).
    asr_device = {"device": engines.asr.device, "compute_type": engines.asr.compute_type}
    if args.pace == "realtime":
        from capacity import free_port, server_asr, start_server

        port = free_port()
        log = args.out.with_suffix(".server.log")
        env = {f"STREAMSERVER_ASR_{k.upper()}": v for k, v in (o.split("=", 1) for o in args.asr)}
        server = start_server(port, workers=2, max_sessions=4, log=log, env=env)
        server_url = f"ws://127.0.0.1:{port}/v1/stream"
        asr_device = server_asr(port)
    if args.whole_clip_baseline:
        baseline = ([], [])
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    scores: list[list[ClipScore]] = []
    try:
        _score_clips(args, clips, params, engines, server_url, rows, scores, baseline)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    result: dict[str, Any] = {
        "command": "python benchmarks/redaction_quality.py --sets dialogues"
                   + f" --layouts {','.join(args.layouts)} --channels {','.join(args.channels)}"
                   + (f" --pace {args.pace}" if args.pace != "asap" else "")
                   + (f" --limit {args.limit}" if args.limit else ""),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        **asr_device,
        "model": args.model or "tiny.en (bundled)",
        "asr_overrides": args.asr,
        "delay_ms": args.delay_ms,
        "pace": args.pace,
        "client": ("streamserver.cli stream_file, 20 ms frames in real time, one session"
                   if args.pace == "realtime" else "in-process redact_file"),
        "stereo_channel_roles": "agent,caller",
        "phone_rate": args.phone_rate,
        "corpus": {"data_dir": str(args.dialogue_dir), "seed": args.dialogue_seed,
                   "generator_version": dialogue_corpus.GENERATOR_VERSION,
                   "dialogues_scored": len(chosen), **stats},
        **_group_report(rows, scores),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    if baseline is not None:
        result["whole_clip"] = _group_report(*baseline)
    # What was said (made up, never real speech), once per dialogue; then every clip.
    result["sources"] = {str(c["dialogue"]): [f"{t['role']}: {t['text']}" for t in c["turns"]]
                         for c in clips}
    result["clips"] = rows
    return result


# --- report ----------------------------------------------------------------------------------

_COLUMNS = (("values", "values", "{:d}"), ("entity_leak", "ent.leak", "{:.3f}"),
            ("entity_leak_cued_in_question", "q-cued", "{:.3f}"),
            ("audio_leak", "aud.leak", "{:.3f}"), ("over_redaction", "over", "{:.3f}"),
            ("hard_negative_masked_share", "neg.mask", "{:.3f}"),
            ("text_leak", "txt.leak", "{:.3f}"), ("unexplained_speech_share", "unexpl", "{:.3f}"),
            ("repeated_ngrams_per_clip", "rep/clip", "{:.2f}"),
            ("clips_with_repeats", "rep.clips", "{:d}"))


def print_dialogue_table(report: dict[str, Any], title: str) -> None:
    print(f"{title}  (values >= {ENTITY_AUDIBLE:.0%} audible = ent.leak; q-cued: values cued "
          "only by the question; unexpl: unexplained speech share)")
    print(f"  {'group':22s}" + "".join(f"{h:>10s}" for _, h, _ in _COLUMNS))
    for name, g in [*report["groups"].items(), *report["splits"].items()]:
        print(f"  {name:22s}" + "".join(f"{fmt.format(g[k]):>10s}" for k, _, fmt in _COLUMNS))
    for name, g in report["splits"].items():
        print(f"  {name} per entity leak: "
              + ", ".join(f"{k} {v:.2f}" for k, v in g["per_entity_leak"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default="pii_dev,real",
                    help="comma list of pii_dev, real, dialogues (default: pii_dev,real; "
                         "the dialogues take about 6 s a clip)")
    ap.add_argument("--layouts", default="mono,stereo", help="dialogues: mono, stereo")
    ap.add_argument("--channels", default="clean,phone", help="dialogues: clean, phone")
    ap.add_argument("--phone-rate", type=int, choices=(8000, 16000), default=8000,
                    help="dialogues: the 8 kHz phone files or their 16 kHz copies")
    ap.add_argument("--dialogue-dir", type=Path, default=dialogue_corpus.DEFAULT_DATA_DIR)
    ap.add_argument("--dialogue-count", type=int, default=dialogue_corpus.DEFAULT_COUNT)
    ap.add_argument("--dialogue-seed", type=int, default=dialogue_corpus.SEED)
    ap.add_argument("--regenerate-dialogues", action="store_true")
    ap.add_argument("--whole-clip-baseline", action="store_true",
                    help="dialogues: also score whole-clip transcription (infinite delay)")
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--pace", choices=("asap", "realtime"), default="asap",
                    help="dialogues: asap = in-process `redact`; realtime = `stream` each "
                         "clip in real time to a server started on 127.0.0.1 (one session)")
    ap.add_argument("--model", default="")
    ap.add_argument("--encoder-context", choices=("clip", "full"), default="clip")
    ap.add_argument("--asr", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an AsrConfig field (int fields), e.g. prompt_chars=200")
    ap.add_argument("--limit", type=int, default=0,
                    help="only the first N clips of each set (dialogues: N dialogues)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.pace == "realtime" and (args.model or args.encoder_context != "clip"):
        ap.error("--pace realtime streams to a server on its defaults (tiny.en, clip context)")
    sets = [s for s in args.sets.split(",") if s]
    args.layouts = [s for s in args.layouts.split(",") if s]
    args.channels = [s for s in args.channels.split(",") if s]
    for name, chosen, allowed in (("--sets", sets, SETS),
                                  ("--layouts", args.layouts, dialogue_corpus.LAYOUTS),
                                  ("--channels", args.channels, dialogue_corpus.CHANNELS)):
        if not chosen or set(chosen) - set(allowed):
            ap.error(f"{name} takes a comma list of {', '.join(allowed)}")

    overrides = {k: int(v) for k, v in (o.split("=", 1) for o in args.asr)}
    engines = Engines.load(AsrConfig(model=args.model, encoder_context=args.encoder_context,
                                     **overrides))
    params = {"delay_ms": args.delay_ms}
    result: dict[str, Any] = {}
    if args.out.exists():  # keep what this run does not measure
        result = json.loads(args.out.read_text())
    if "pii_dev" in sets or "real" in sets:
        t0 = time.perf_counter()
        result.update({
            "command": "python benchmarks/redaction_quality.py --sets "
                       + ",".join(s for s in sets if s != "dialogues")
                       + f" --delay-ms {args.delay_ms}",
            "date": date.today().isoformat(),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "device": engines.asr.device, "compute_type": engines.asr.compute_type,
            "model": args.model or "tiny.en (bundled)",
            "asr_overrides": args.asr,
            "encoder_context": args.encoder_context,
            "delay_ms": args.delay_ms,
        })
        if "pii_dev" in sets:
            result.update(run_pii_dev(args, params, engines))
        if "real" in sets:
            result.update(run_real(args, params, engines))
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({k: result[k] for k in ("pii_dev", "real_no_pii", "elapsed_s")
                          if k in result}, indent=1))
    if "dialogues" in sets:
        report = run_dialogues(args, params, engines)
        if report is None:
            return 2
        result["dialogues"] = report
        print_dialogue_table(report, f"dialogues, delay {args.delay_ms} ms, pace {args.pace}, "
                                     f"{report['elapsed_s']} s")
        if "whole_clip" in report:
            print_dialogue_table(report["whole_clip"], "dialogues, whole clip at once")
    # Transcripts here are masked ones; the dialogues' sources are made up.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
