"""The labelled ASR-style PII corpus (``tests/data/pii_corpus.jsonl``) and the detector on it.

Structural checks run per line (table-driven); the accuracy checks run the real
``PresidioPiiDetector`` over the whole corpus once and hold the core entity
types to the issue's targets (recall >= 0.95, precision >= 0.90). Scoring lives
in ``benchmarks/detector_accuracy.py``, which also reports the other types.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import detector_accuracy as acc  # noqa: E402

ROWS: list[dict[str, Any]] = acc.read_lines(acc.CORPUS)
ID_RE = re.compile(r"^[a-z]+-\d{3}$")
MIN_LINES = 400
MIN_POSITIVES = 10
MIN_CORE_POSITIVES = 20
MIN_NEGATIVES = 100


@pytest.mark.parametrize("row", ROWS, ids=[str(r.get("id")) for r in ROWS])
def test_line_is_well_formed(row: dict[str, Any]) -> None:
    assert set(row) <= {"id", "text", "spans", "note"}, set(row)
    assert ID_RE.match(row["id"]), row["id"]
    text = row["text"]
    assert isinstance(text, str) and text.strip() == text and text
    assert isinstance(row["spans"], list)
    taken: set[tuple[str, int, int]] = set()
    for span in row["spans"]:
        assert set(span) <= {"entity", "value", "occurrence"}, span
        assert span["entity"] in acc.TEXT_ENTITIES, span["entity"]
        value = span["value"]
        assert isinstance(value, str) and value.strip() == value and value, span
        found = acc.occurrences(text, value)
        assert found, f"{value!r} is not a substring of the text"
        if len(found) > 1:
            assert "occurrence" in span, f"{value!r} occurs {len(found)} times: say which"
        occurrence = span.get("occurrence", 1)
        assert isinstance(occurrence, int) and 1 <= occurrence <= len(found), span
        first, last = acc.value_words(text, value, occurrence)
        assert 0 <= first < last <= len(text.split())
        start = found[occurrence - 1]
        key = (span["entity"], start, start + len(value))
        assert key not in taken, f"duplicate label {span}"
        taken.add(key)


def test_ids_and_texts_are_unique() -> None:
    ids = Counter(r["id"] for r in ROWS)
    texts = Counter(r["text"] for r in ROWS)
    assert [i for i, n in ids.items() if n > 1] == []
    assert [t for t, n in texts.items() if n > 1] == []


def test_corpus_size() -> None:
    assert len(ROWS) >= MIN_LINES


@pytest.mark.parametrize("entity", acc.TEXT_ENTITIES)
def test_enough_positives_per_entity(entity: str) -> None:
    positives = sum(any(s["entity"] == entity for s in r["spans"]) for r in ROWS)
    need = MIN_CORE_POSITIVES if entity in acc.CORE_ENTITIES else MIN_POSITIVES
    assert positives >= need, f"{entity}: {positives} sentences"


def test_enough_hard_negatives() -> None:
    negatives = [r for r in ROWS if r["id"].startswith(acc.NEGATIVE_PREFIX)]
    assert len(negatives) >= MIN_NEGATIVES
    # Most hard negatives hold no PII at all; the rest only money, dates, times, ...
    assert sum(not r["spans"] for r in negatives) >= MIN_NEGATIVES


def test_scoring_rules() -> None:
    """The 50 % word-overlap rules on a hand-made example."""
    from streamserver.core.types import WordSpan

    ex = acc.to_example({"id": "x-001", "text": "My number is 412 555 0199, call me.", "spans": [
        {"entity": "PHONE_NUMBER", "value": "412 555 0199"}]})
    assert ex.labels[0].first == 3 and ex.labels[0].last == 6

    def run(*spans: WordSpan) -> acc.Report:
        return acc.score([ex], {ex.id: list(spans)})

    r = run(WordSpan(4, 6, "PHONE_NUMBER", 0.9))  # 2 of 3 words: found, correct
    assert (r.entities["PHONE_NUMBER"].tp, r.entities["PHONE_NUMBER"].fp) == (1, 0)
    r = run(WordSpan(5, 8, "PHONE_NUMBER", 0.9))  # 1 of 3 words: missed; span 1/3 inside
    assert (r.entities["PHONE_NUMBER"].tp, r.entities["PHONE_NUMBER"].fp) == (0, 1)
    assert r.misses == [{"id": "x-001", "entity": "PHONE_NUMBER",
                         "predicted": "PHONE_NUMBER (<50%)"}]
    r = run(WordSpan(3, 6, "ACCOUNT_NUMBER", 0.9))  # wrong label: any-entity recall only
    s = r.entities["PHONE_NUMBER"]
    assert (s.tp, s.any_found, r.entities["ACCOUNT_NUMBER"].fp) == (0, 1, 1)
    assert r.confusion["PHONE_NUMBER"] == Counter({"ACCOUNT_NUMBER": 1})
    assert r.false_alarms == [{"id": "x-001", "entity": "ACCOUNT_NUMBER",
                               "labelled": "PHONE_NUMBER"}]


@pytest.fixture(scope="module")
def report() -> acc.Report:
    examples = acc.load_corpus(acc.CORPUS)
    return acc.evaluate(acc.make_detector(), examples)


def _summary(report: acc.Report, entity: str) -> str:
    s = report.entities[entity]
    misses = [m["id"] + "->" + m["predicted"] for m in report.misses if m["entity"] == entity]
    alarms = [a["id"] + "<-" + a["labelled"] for a in report.false_alarms
              if a["entity"] == entity]
    return (f"{entity}: P={s.precision:.3f} R={s.recall:.3f} (support {s.support}, "
            f"tp {s.tp}, fn {s.fn}, fp {s.fp}); misses {misses}; false alarms {alarms}")


@pytest.mark.parametrize("entity", acc.CORE_ENTITIES)
def test_core_recall(report: acc.Report, entity: str) -> None:
    assert report.entities[entity].recall >= acc.RECALL_TARGET, _summary(report, entity)


@pytest.mark.parametrize("entity", acc.CORE_ENTITIES)
def test_core_precision(report: acc.Report, entity: str) -> None:
    assert report.entities[entity].precision >= acc.PRECISION_TARGET, _summary(report, entity)
