"""Calendar dates, and which of them are dates of birth."""

from __future__ import annotations

from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import DATE_OF_BIRTH, SCORE_CONTEXT, SCORE_WEAK
from .numbers import SPELLED_OUT, TENS, NumberKind, NumberWord
from .text import Token
from .triggers import LOOKAHEAD, LOOKBACK, Trigger
from .vocabulary import MONTHS

_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
    "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
    "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
    "thirtieth": 30,
}  # fmt: skip


def date_spans(
    toks: Sequence[Token], nums: Sequence[NumberWord | None]
) -> list[tuple[int, int]]:
    """Calendar dates: "May 4, 1997", "the fourth of May", "05/04/1997", "October 10"."""
    spans: list[tuple[int, int]] = []
    for i, tok in enumerate(toks):
        num = nums[i]
        if num is not None and num.kind == NumberKind.DATE:
            spans.append((i, i + 1))
            continue
        if tok.bare not in MONTHS:
            continue
        first, last = i, i + 1
        # Day then year after the month.
        j = _take_day(toks, nums, last)
        has_day = j > last
        last = j
        j = _take_year(toks, nums, last)
        has_year = j > last
        last = j
        # "the fourth of May", "4th of May".
        if i >= 1 and toks[i - 1].bare == "of":
            d = _take_day_backwards(toks, nums, i - 1)
            if d < i - 1:
                first = d
                has_day = True
        if tok.bare in {"may", "march"} and not (has_day or has_year):
            continue  # the verb, or a month named in passing
        if tok.bare in {"may", "march"} and not tok.title and i and toks[i - 1].bare in {
            "i", "you", "we", "they", "he", "she", "it", "that", "which", "who",
        }:
            continue
        spans.append((first, last))
    return spans


WEEKDAYS = frozenset({
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
})  # fmt: skip
# Before "the 5th" with no month: words that make it a day of the month.
_DAY_PREPOSITIONS = {"on", "by", "until", "till", "til", "from", "before", "after", "since",
                     "through", "thru", "for", "due"}
# After "on the 5th": words that leave it a date ("on the 12th floor" does not).
_AFTER_DAY = {"at", "and", "or", "then", "please", "so", "instead", "is", "works", "would",
              "will", "should", "if", "but", "because", "when", "right", "okay", "ok",
              "in", "around", "between", "from", "morning", "afternoon", "evening", "night"}
_RELATIVE = {"next", "this", "last", "coming", "past", "following"}


def ordinal_date_spans(
    toks: Sequence[Token], nums: Sequence[NumberWord | None]
) -> list[tuple[int, int]]:
    """Days of the month said without a month: "Monday the 5th", "next Tuesday the
    fifth", "on the 14th.", "by the 20th of next month"."""
    n = len(toks)
    spans: list[tuple[int, int]] = []
    for i, tok in enumerate(toks):
        if tok.bare != "the" or i + 1 >= n:
            continue
        value, used = _ordinal_day(toks, nums, i + 1)
        if not 1 <= value <= 31:
            continue
        last = i + 1 + used
        prev = toks[i - 1].bare if i else ""
        weekday = prev in WEEKDAYS
        # "of next month" / "of this month".
        if (
            last + 2 < n
            and toks[last].bare == "of"
            and toks[last + 1].bare in _RELATIVE | {"the"}
            and toks[last + 2].bare == "month"
        ):
            spans.append((i, last + 3))
            continue
        if weekday:
            spans.append((i, last))
            continue
        if prev not in _DAY_PREPOSITIONS or toks[i + 1].bare in {"first", "second"}:
            continue
        end = toks[last - 1]
        if end.phrase_end or (last < n and toks[last].bare in _AFTER_DAY):
            spans.append((i, last))
    return spans


def with_weekday(toks: Sequence[Token], first: int) -> int:
    """Start of a date that begins at ``first``, widened over a weekday said before it
    ("next Tuesday the 5th", "Friday, March 3rd")."""
    if first >= 1 and toks[first - 1].bare in WEEKDAYS and not toks[first - 1].sentence_end:
        first -= 1
        if first >= 1 and toks[first - 1].bare in _RELATIVE:
            first -= 1
    return first


def _ordinal_day(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int
) -> tuple[int, int]:
    """(day, words used) for an ordinal at word ``j`` ("5th", "fifth", "twenty first")."""
    num = nums[j]
    if num is not None and num.kind == NumberKind.ORDINAL:
        return int(num.digits), 1
    bare = toks[j].bare
    if bare in _ORDINALS:
        return _ORDINALS[bare], 1
    if bare in TENS and j + 1 < len(toks) and toks[j + 1].bare in _ORDINALS:
        unit = _ORDINALS[toks[j + 1].bare]
        if unit < 10:
            return int(TENS[bare]) * 10 + unit, 2
    return 0, 0


def _day_value(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int
) -> tuple[int, int]:
    """(day, words used) for a day of month at word ``j``; (0, 0) when there is none."""
    n = len(toks)
    if j >= n:
        return 0, 0
    num = nums[j]
    bare = toks[j].bare
    if (
        num is not None
        and num.kind in {NumberKind.GROUP, NumberKind.ORDINAL}
        and len(num.digits) <= 2
    ):
        return int(num.digits), 1
    if bare in _ORDINALS:
        return _ORDINALS[bare], 1
    if bare in TENS and j + 1 < n:
        nxt = toks[j + 1].bare
        if nxt in _ORDINALS and _ORDINALS[nxt] < 10:
            return int(TENS[bare]) * 10 + _ORDINALS[nxt], 2
    if num is not None and num.kind in {NumberKind.SPELLED, NumberKind.TEEN}:
        return int(num.digits), 1
    return 0, 0


def _take_day(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    if j < len(toks) and toks[j].bare == "the":
        value, used = _day_value(toks, nums, j + 1)
        return j + 1 + used if 1 <= value <= 31 else j
    value, used = _day_value(toks, nums, j)
    return j + used if 1 <= value <= 31 else j


def _take_day_backwards(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], of: int
) -> int:
    """Start of "[the] DAY" ending just before word ``of``; ``of`` when there is none."""
    for used in (2, 1):
        start = of - used
        if start < 0:
            continue
        value, got = _day_value(toks, nums, start)
        if got == used and 1 <= value <= 31:
            if start >= 1 and toks[start - 1].bare == "the":
                return start - 1
            return start
    return of


def _take_year(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    n = len(toks)
    if j < n and toks[j].bare == "of":  # "May of 1997"
        if j + 1 < n and _is_year_start(nums[j + 1]):
            j += 1
        else:
            return j
    if j + 1 < n and toks[j].bare == "in":  # "the 4th of July in 1976"
        num = nums[j + 1]
        if num is not None and num.kind == NumberKind.GROUP and len(num.digits) == 4:
            return j + 2
    if j >= n:
        return j
    num = nums[j]
    if num is not None and num.kind == NumberKind.GROUP and len(num.digits) in (2, 4):
        return j + 1
    if toks[j].raw.startswith(("'", "’")) and toks[j].bare.isdigit() and len(toks[j].bare) == 2:
        return j + 1  # "January 5th, '88"
    # Spelled years: "nineteen ninety seven", "two thousand and three".
    k = j
    while k < n and k - j < 4:
        cur = nums[k]
        spelled = cur is not None and cur.kind in SPELLED_OUT
        if spelled or (toks[k].bare == "and" and k > j):
            k += 1
        else:
            break
    while k > j and toks[k - 1].bare == "and":
        k -= 1
    return k if k - j >= 2 else j


def _is_year_start(num: NumberWord | None) -> bool:
    return num is not None and num.kind in {
        NumberKind.GROUP, NumberKind.SPELLED, NumberKind.TEEN, NumberKind.TENS
    }


_BIRTH_CONTRACTIONS = {"birthday's", "birthdate's", "dob's", "bday", "b-day"}


def dob_spans(
    toks: Sequence[Token],
    trig: Sequence[Trigger | None],
    dates: Sequence[tuple[int, int]],
) -> list[WordSpan]:
    """The ``dates`` near a birth trigger, before or after ("born May 4", "May 4 is my
    birthday"), and a month cut off by the window end ("my date of birth is May")."""
    n = len(toks)
    out = []
    # Birth triggers, and their contractions ("Birthday's December 25th").
    birth = [
        trig[j] == Trigger.DOB or toks[j].bare in _BIRTH_CONTRACTIONS for j in range(n)
    ]
    for first, last in dates:
        lo = max(0, first - 8)
        hi = min(n, last + LOOKAHEAD + 1)
        if any(birth[lo:first]) or any(birth[last:hi]):
            out.append(WordSpan(first, last, DATE_OF_BIRTH, SCORE_CONTEXT))
    if n and toks[-1].bare in MONTHS and any(birth[max(0, n - 1 - LOOKBACK) : n - 1]):
        out.append(WordSpan(n - 1, n, DATE_OF_BIRTH, SCORE_WEAK))
    return out
