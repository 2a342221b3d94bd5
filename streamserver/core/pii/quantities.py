"""Spoken-form recognisers: (being written)."""

from __future__ import annotations

from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .numbers import NumberWord
from .text import Token
from .triggers import Trigger


def quantity_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    wanted: frozenset[str],
) -> list[WordSpan]:
    """Spans of the entities this module knows that are in ``wanted``."""
    return []
