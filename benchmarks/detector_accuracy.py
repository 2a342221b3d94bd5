"""Accuracy and latency of the PII detector on the labelled ASR-style text corpus.

    .venv/bin/python benchmarks/detector_accuracy.py [--corpus tests/data/pii_corpus.jsonl]
        [--no-latency] [--limit N] [--seed 0] [--window 40] [--out ...]

Runs ``PresidioPiiDetector`` (all entities) on every sentence of
``tests/data/pii_corpus.jsonl`` (format: ``tests/data/README.md``) and scores it
per entity, by words:

* a labelled value is *found* (recall) when >= 50 % of its words are covered by
  predicted spans of the same entity; *any-entity* recall counts spans of any entity;
* a predicted span is *correct* (precision) when >= 50 % of its words lie inside
  labelled values of the same entity.

Then times ``detect()`` the way a live session calls it: growing prefixes of each
sentence (2-4 words per step) and of 3-5 sentence concatenations, the window
capped at the last ``--window`` words. Writes
``benchmarks/results/detector_accuracy.json``; prints a table. The scoring
functions here are shared with ``tests/core/test_pii_corpus.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamserver.core.pii.entities import CATALOGUE, DTMF  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "pii_corpus.jsonl"
OUT = ROOT / "benchmarks" / "results" / "detector_accuracy.json"
# Every text entity (DTMF is audio-only).
TEXT_ENTITIES: tuple[str, ...] = tuple(e for e in CATALOGUE if e != DTMF)
# The targets: recall >= 0.95 and precision >= 0.90 for these.
CORE_ENTITIES: tuple[str, ...] = (
    "PERSON", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN",
    "EMAIL_ADDRESS", "DATE_OF_BIRTH", "ACCOUNT_NUMBER", "LOCATION",
)  # fmt: skip
RECALL_TARGET = 0.95
PRECISION_TARGET = 0.90
NEGATIVE_PREFIX = "neg-"  # ids of the hard negatives
LATENCY_TARGET_P99_MS = 20.0
NONE = "-"  # "nothing": no predicted span / no labelled value


class Span(Protocol):
    """What the scorer needs of a prediction (``streamserver.core.types.WordSpan``)."""

    @property
    def first(self) -> int: ...
    @property
    def last(self) -> int: ...
    @property
    def entity(self) -> str: ...


# --- corpus ---------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """A labelled value: words ``first`` .. ``last - 1`` of its sentence."""

    entity: str
    value: str
    first: int
    last: int


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: tuple[Label, ...]
    note: str = ""

    @property
    def words(self) -> list[str]:
        """Whisper-style words: each with its leading space."""
        return whisper_words(self.text)

    @property
    def negative(self) -> bool:
        return self.id.startswith(NEGATIVE_PREFIX)


def whisper_words(text: str) -> list[str]:
    return [" " + w for w in text.split()]


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character range of each whitespace-separated word of ``text``."""
    out, pos = [], 0
    for w in text.split():
        start = text.index(w, pos)
        pos = start + len(w)
        out.append((start, pos))
    return out


def occurrences(text: str, value: str) -> list[int]:
    """Start offsets of every (possibly overlapping) occurrence of ``value``."""
    starts, i = [], text.find(value)
    while i >= 0 and value:
        starts.append(i)
        i = text.find(value, i + 1)
    return starts


def value_words(text: str, value: str, occurrence: int = 1) -> tuple[int, int]:
    """Word range ``[first, last)`` covered by the ``occurrence``-th ``value`` in ``text``."""
    starts = occurrences(text, value)
    if not 1 <= occurrence <= len(starts):
        raise ValueError(f"{value!r} (occurrence {occurrence}) not in {text!r}")
    start = starts[occurrence - 1]
    end = start + len(value)
    idx = [i for i, (s, e) in enumerate(word_offsets(text)) if s < end and start < e]
    if not idx:
        raise ValueError(f"{value!r} covers no word of {text!r}")
    return idx[0], idx[-1] + 1


def read_lines(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The corpus lines as parsed JSON (no validation)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def to_example(row: Mapping[str, Any]) -> Example:
    text = row["text"]
    labels = []
    for span in row["spans"]:
        first, last = value_words(text, span["value"], int(span.get("occurrence", 1)))
        labels.append(Label(span["entity"], span["value"], first, last))
    return Example(row["id"], text, tuple(labels), row.get("note", ""))


def load_corpus(path: Path = CORPUS) -> list[Example]:
    return [to_example(row) for row in read_lines(path)]


def corpus_counts(examples: Sequence[Example]) -> dict[str, dict[str, int]]:
    """Per entity: sentences with it (positives), without it, and labelled values."""
    out = {}
    for entity in TEXT_ENTITIES:
        pos = sum(any(lb.entity == entity for lb in ex.labels) for ex in examples)
        values = sum(lb.entity == entity for ex in examples for lb in ex.labels)
        out[entity] = {"positive_sentences": pos, "negative_sentences": len(examples) - pos,
                       "values": values}
    return out


# --- scoring --------------------------------------------------------------


@dataclass
class EntityScore:
    support: int = 0  # labelled values
    tp: int = 0  # labelled values found by a span of the same entity
    any_found: int = 0  # labelled values covered by a span of any entity
    predicted: int = 0  # predicted spans
    correct: int = 0  # predicted spans inside labelled values of the same entity

    @property
    def fn(self) -> int:
        return self.support - self.tp

    @property
    def fp(self) -> int:
        return self.predicted - self.correct

    @property
    def recall(self) -> float:
        return self.tp / self.support if self.support else 1.0

    @property
    def precision(self) -> float:
        """Share of predicted spans that are correct (1.0 when nothing was predicted)."""
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def any_recall(self) -> float:
        return self.any_found / self.support if self.support else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"support": self.support, "tp": self.tp, "fn": self.fn,
                "predicted": self.predicted, "fp": self.fp,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "any_entity_recall": round(self.any_recall, 4)}


@dataclass
class Report:
    entities: dict[str, EntityScore] = field(
        default_factory=lambda: {e: EntityScore() for e in TEXT_ENTITIES})
    # labelled entity -> Counter(predicted entity, NONE, or "X (<50%)")
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    misses: list[dict[str, str]] = field(default_factory=list)  # id, entity, predicted
    false_alarms: list[dict[str, str]] = field(default_factory=list)  # id, entity, labelled
    negatives: int = 0  # hard-negative sentences
    negatives_with_false_alarm: int = 0

    def __repr__(self) -> str:  # short: pytest prints it in failure tracebacks
        t = self.total()
        return (f"Report(values={t.support}, found={t.tp}, predicted={t.predicted}, "
                f"correct={t.correct})")

    def total(self, entities: Iterable[str] | None = None) -> EntityScore:
        t = EntityScore()
        for e in entities if entities is not None else self.entities:
            s = self.entities[e]
            t.support += s.support
            t.tp += s.tp
            t.any_found += s.any_found
            t.predicted += s.predicted
            t.correct += s.correct
        return t

    def as_dict(self) -> dict[str, Any]:
        return {
            "micro": self.total().as_dict(),
            "core_micro": self.total(CORE_ENTITIES).as_dict(),
            "entities": {e: s.as_dict() for e, s in self.entities.items()},
            "hard_negatives": {"sentences": self.negatives,
                               "with_false_alarm": self.negatives_with_false_alarm},
            "confusion": {e: dict(c.most_common()) for e, c in sorted(self.confusion.items())},
            "misses": self.misses,
            "false_alarms": self.false_alarms,
        }


def _covered(first: int, last: int, spans: Iterable[tuple[int, int]]) -> int:
    """How many words of ``[first, last)`` the union of ``spans`` covers."""
    hit = set()
    for a, b in spans:
        hit.update(range(max(a, first), min(b, last)))
    return len(hit)


def score_example(example: Example, predicted: Sequence[Span], report: Report) -> None:
    """Add one sentence's labels and predictions to ``report``."""
    preds = [(p.first, p.last, p.entity) for p in predicted]
    for lb in example.labels:
        s = report.entities[lb.entity]
        n = lb.last - lb.first
        s.support += 1
        by_entity = Counter({
            e: _covered(lb.first, lb.last, [(a, b) for a, b, pe in preds if pe == e])
            for e in {pe for _, _, pe in preds}
        })
        found = 2 * by_entity.get(lb.entity, 0) >= n
        s.tp += found
        s.any_found += 2 * _covered(lb.first, lb.last, [(a, b) for a, b, _ in preds]) >= n
        if found:
            cell = lb.entity
        else:
            best = min(by_entity, key=lambda e: (-by_entity[e], e != lb.entity, e), default=None)
            if best is None or by_entity[best] == 0:
                cell = NONE
            elif 2 * by_entity[best] >= n:
                cell = best
            else:
                cell = f"{best} (<50%)"
            report.misses.append({"id": example.id, "entity": lb.entity, "predicted": cell})
        report.confusion.setdefault(lb.entity, Counter())[cell] += 1
    alarm = False
    for a, b, entity in preds:
        if entity not in report.entities:
            continue  # e.g. DTMF: not a text entity
        s = report.entities[entity]
        s.predicted += 1
        inside = _covered(a, b, [(lb.first, lb.last) for lb in example.labels
                                 if lb.entity == entity])
        if 2 * inside >= b - a:
            s.correct += 1
            continue
        alarm = True
        overlap = Counter({lb.entity: _covered(a, b, [(lb.first, lb.last)])
                           for lb in example.labels})
        labelled = min(overlap, key=lambda e: (-overlap[e], e), default=None)
        report.false_alarms.append({
            "id": example.id, "entity": entity,
            "labelled": labelled if labelled is not None and overlap[labelled] else NONE,
        })
    if example.negative:
        report.negatives += 1
        report.negatives_with_false_alarm += alarm


def score(examples: Sequence[Example], predictions: Mapping[str, Sequence[Span]]) -> Report:
    """Score ``predictions`` (example id -> predicted spans) against the labels."""
    report = Report()
    for ex in examples:
        score_example(ex, predictions.get(ex.id, ()), report)
    return report


def make_detector() -> Any:
    """The real detector, asked for every entity (its default)."""
    from streamserver.engines.presidio import PresidioPiiDetector

    return PresidioPiiDetector()


def predict(detector: Any, examples: Sequence[Example]) -> dict[str, list[Span]]:
    return {ex.id: list(detector.detect(ex.words)) for ex in examples}


def evaluate(detector: Any, examples: Sequence[Example]) -> Report:
    return score(examples, predict(detector, examples))


# --- latency --------------------------------------------------------------


def streaming_windows(
    examples: Sequence[Example], rng: random.Random, window: int = 40
) -> list[list[str]]:
    """The word lists a live session would pass: growing prefixes, 2-4 words a step.

    Each sentence alone, then the corpus shuffled into runs of 3-5 sentences
    (a longer call), each prefix capped to its last ``window`` words.
    """
    def prefixes(words: list[str]) -> Iterable[list[str]]:
        n = 0
        while n < len(words):
            n = min(len(words), n + rng.randint(2, 4))
            yield words[max(0, n - window) : n]

    calls = [p for ex in examples for p in prefixes(ex.words)]
    order = list(examples)
    rng.shuffle(order)
    i = 0
    while i < len(order):
        k = rng.randint(3, 5)
        words = [w for ex in order[i : i + k] for w in ex.words]
        calls.extend(prefixes(words))
        i += k
    return calls


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def latency(detector: Any, calls: Sequence[list[str]], warm_up: int = 30) -> dict[str, Any]:
    """Time ``detector.detect`` on each word list; ms stats overall and by window size."""
    if hasattr(detector, "warm_up"):
        detector.warm_up()
    for words in calls[:warm_up]:
        detector.detect(words)
    timed: list[tuple[int, float]] = []
    for words in calls:
        t0 = time.perf_counter()
        detector.detect(words)
        timed.append((len(words), (time.perf_counter() - t0) * 1000.0))

    def stats(ms: list[float]) -> dict[str, float | int]:
        return {"calls": len(ms), "p50_ms": round(percentile(ms, 50), 2),
                "p90_ms": round(percentile(ms, 90), 2), "p99_ms": round(percentile(ms, 99), 2),
                "max_ms": round(max(ms, default=0.0), 2),
                "mean_ms": round(sum(ms) / len(ms), 2) if ms else 0.0}

    buckets = {}
    for lo, hi in ((1, 10), (11, 20), (21, 30), (31, 10**6)):
        ms = [t for n, t in timed if lo <= n <= hi]
        if ms:
            buckets[f"{lo}-{hi}" if hi < 10**6 else f">={lo}"] = stats(ms)
    return {"all": stats([t for _, t in timed]), "by_window_words": buckets,
            "target_p99_ms": LATENCY_TARGET_P99_MS}


# --- report ---------------------------------------------------------------


def format_table(report: Report, counts: Mapping[str, Mapping[str, int]]) -> str:
    head = (f"{'entity':24} {'sent':>4} {'supp':>4} {'tp':>4} {'fn':>4} {'pred':>4} {'fp':>4} "
            f"{'prec':>6} {'rec':>6} {'f1':>6} {'any-rec':>7}")
    lines = [head, "-" * len(head)]

    def row(name: str, s: EntityScore, sent: str) -> str:
        mark = ""
        if name in CORE_ENTITIES:
            ok = s.recall >= RECALL_TARGET and s.precision >= PRECISION_TARGET
            mark = "  core ok" if ok else "  core BELOW TARGET"
        return (f"{name:24} {sent:>4} {s.support:>4} {s.tp:>4} {s.fn:>4} {s.predicted:>4} "
                f"{s.fp:>4} {s.precision:>6.3f} {s.recall:>6.3f} {s.f1:>6.3f} "
                f"{s.any_recall:>7.3f}{mark}")

    for e in (*CORE_ENTITIES, *(e for e in TEXT_ENTITIES if e not in CORE_ENTITIES)):
        lines.append(row(e, report.entities[e], str(counts[e]["positive_sentences"])))
    lines.append("-" * len(head))
    lines.append(row("core (micro)", report.total(CORE_ENTITIES), ""))
    lines.append(row("all (micro)", report.total(), ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency pass")
    ap.add_argument("--window", type=int, default=40, help="detector window (words)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--verbose", action="store_true", help="print misses and false alarms")
    args = ap.parse_args(argv)

    examples = load_corpus(args.corpus)
    if args.limit:
        examples = examples[: args.limit]
    counts = corpus_counts(examples)
    t0 = time.perf_counter()
    detector = make_detector()
    load_s = time.perf_counter() - t0
    report = evaluate(detector, examples)
    lat = None
    if not args.no_latency:
        lat = latency(detector, streaming_windows(examples, random.Random(args.seed),
                                                  args.window))
    elapsed = time.perf_counter() - t0

    command = "python benchmarks/detector_accuracy.py"
    for flag, value, default in (("--limit", args.limit, 0), ("--window", args.window, 40),
                                 ("--seed", args.seed, 0)):
        if value != default:
            command += f" {flag} {value}"
    if args.no_latency:
        command += " --no-latency"
    result = {
        "command": command,
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "corpus": {"path": os.path.relpath(args.corpus, ROOT), "sentences": len(examples),
                   "hard_negatives": sum(ex.negative for ex in examples),
                   "no_pii": sum(not ex.labels for ex in examples), "entities": counts},
        "scoring": ("value found: >= 50% of its words covered by spans of the same entity; "
                    "span correct: >= 50% of its words inside values of the same entity"),
        "targets": {"entities": list(CORE_ENTITIES), "recall": RECALL_TARGET,
                    "precision": PRECISION_TARGET},
        "latency": lat,
        "detector_load_s": round(load_s, 1),
        "elapsed_s": round(elapsed, 1),
        **report.as_dict(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")

    print(f"{len(examples)} sentences ({result['corpus']['hard_negatives']} hard negatives), "
          f"{report.total().support} labelled values\n")
    print(format_table(report, counts))
    neg = result["hard_negatives"]
    print(f"\nhard negatives with a false alarm: {neg['with_false_alarm']} / {neg['sentences']}")
    print("\nconfusion (labelled -> predicted), misses only:")
    for entity, cells in sorted(report.confusion.items()):
        wrong = {k: v for k, v in cells.items() if k != entity}
        if wrong:
            print(f"  {entity:24} " + ", ".join(f"{k}: {v}" for k, v in
                                               Counter(wrong).most_common()))
    fa = Counter((a["entity"], a["labelled"]) for a in report.false_alarms)
    if fa:
        print("\nfalse alarms (predicted <- labelled):")
        for (pred, lab), n in fa.most_common():
            print(f"  {pred:24} <- {lab}: {n}")
    if args.verbose:
        print("\nmisses:", " ".join(f"{m['id']}:{m['entity']}->{m['predicted']}"
                                    for m in report.misses))
        print("\nfalse alarms:", " ".join(f"{a['id']}:{a['entity']}"
                                          for a in report.false_alarms))
    if lat is not None:
        a = lat["all"]
        print(f"\nlatency per detect() call ({a['calls']} calls, window <= {args.window} words): "
              f"p50 {a['p50_ms']} ms, p90 {a['p90_ms']} ms, p99 {a['p99_ms']} ms, "
              f"max {a['max_ms']} ms (target p99 <= {LATENCY_TARGET_P99_MS:g} ms)")
        for bucket, s in lat["by_window_words"].items():
            print(f"  {bucket:>6} words: {s['calls']:5d} calls, p50 {s['p50_ms']} ms, "
                  f"p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
    print(f"\nwrote {os.path.relpath(args.out, ROOT)} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
