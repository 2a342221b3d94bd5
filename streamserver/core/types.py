"""Value types shared by the core stages.

Every position is an integer sample index at the analysis rate (16 kHz) counted
from the start of the stream; seconds appear only at the edges (wire, CLI).
"""

from __future__ import annotations

from dataclasses import dataclass

ANALYSIS_RATE = 16_000


def samples_to_seconds(sample: int, rate: int = ANALYSIS_RATE) -> float:
    """Edge helper: a sample index as seconds, rounded to the wire's 3 decimals."""
    return round(sample / rate, 3)


def ms_to_samples(ms: float, rate: int = ANALYSIS_RATE) -> int:
    return round(ms * rate / 1000)


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word. ``text`` keeps Whisper's leading space/punctuation."""

    text: str
    start: int
    end: int
    probability: float = 1.0
    stable: bool = False


@dataclass(frozen=True, slots=True)
class WordSpan:
    """A detection over a word list: words ``first`` .. ``last - 1``."""

    first: int
    last: int
    entity: str
    score: float
    # Why: "detector" (the words say it) or "context" (the question before them did).
    reason: str = "detector"


@dataclass(frozen=True, slots=True)
class SampleSpan:
    """A half-open sample range ``[start, end)`` with the entity that caused it."""

    start: int
    end: int
    entity: str
    score: float = 1.0
