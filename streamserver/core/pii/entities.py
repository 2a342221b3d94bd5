"""What the PII rules detect, how sure they are, and how their spans combine."""

from __future__ import annotations

from collections.abc import Iterable

from streamserver.core.types import WordSpan

PERSON = "PERSON"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
LOCATION = "LOCATION"
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"

ENTITIES: frozenset[str] = frozenset(
    {
        PERSON,
        PHONE_NUMBER,
        CREDIT_CARD,
        US_SSN,
        EMAIL_ADDRESS,
        DATE_OF_BIRTH,
        LOCATION,
        ACCOUNT_NUMBER,
    }
)

# Scores of our own rules: context-confirmed > shape-only > partial (cut by the window).
SCORE_CONTEXT = 0.9
SCORE_SHAPE = 0.75
SCORE_WEAK = 0.6


def merge_spans(spans: Iterable[WordSpan]) -> list[WordSpan]:
    """Merge overlapping or touching spans of the same entity; sort by position."""
    by_entity: dict[str, list[WordSpan]] = {}
    for span in spans:
        if span.last > span.first:
            by_entity.setdefault(span.entity, []).append(span)
    out: list[WordSpan] = []
    for entity, group in by_entity.items():
        group.sort(key=lambda s: (s.first, s.last))
        cur = group[0]
        for span in group[1:]:
            if span.first <= cur.last:
                cur = WordSpan(cur.first, max(cur.last, span.last), entity,
                               max(cur.score, span.score))
            else:
                out.append(cur)
                cur = span
        out.append(cur)
    out.sort(key=lambda s: (s.first, s.last, s.entity))
    return out
