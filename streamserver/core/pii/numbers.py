"""Reading numbers: what each word is ("4111", "four", "oh", "double", "4th", "$45"),
and runs of such words joined into one digit string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from .text import Token

_UNITS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_WEAK_ZERO = {"oh", "o"}  # digits only next to other digits
_TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
_REPEATS = {"double": 2, "triple": 3}
_SCALE = {"hundred": "00", "thousand": "000"}
# Every word that spells (part of) a number: "ten dot zero dot zero dot one" is no email.
NUMBER_WORDS: frozenset[str] = frozenset(
    [*_UNITS, *_WEAK_ZERO, *_TEENS, *TENS, *_REPEATS, *_SCALE]
)


class NumberKind(IntEnum):
    """Kinds of number-bearing words. Those up to ``SEP`` can be part of a digit run."""

    GROUP = 0  # written with digits: "4111", "(412)", "-77", "AB1234567"
    SPELLED = 1  # "four"
    WEAK = 2  # "oh": a zero only next to other digits
    TEEN = 3  # "fourteen"
    TENS = 4  # "forty"
    REPEAT = 5  # "double"
    SCALE = 6  # "hundred"
    SEP = 7  # "-", "dash"
    MONEY = 8  # "$45", "20%"
    TIME = 9  # "5:30"
    DATE = 10  # "05/04/1997"
    ORDINAL = 11  # "4th"


# Words that spell a number out: "nineteen ninety seven", "one oh two".
SPELLED_OUT = frozenset(
    {NumberKind.SPELLED, NumberKind.TEEN, NumberKind.TENS, NumberKind.SCALE, NumberKind.WEAK}
)


@dataclass(frozen=True, slots=True)
class NumberWord:
    kind: NumberKind
    digits: str = ""
    thousands: bool = False  # "1,234,567": a quantity when it stands alone
    decimal: bool = False  # "3.5"


_MONEY_RE = re.compile(r"[$€£¥]|\d%|percent")
_TIME_RE = re.compile(r"\d:\d")
_DATE_WORD_RE = re.compile(
    r"\(?(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})|(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})"
)
_GROUP_RE = re.compile(r"[\-–.,/#+(]*\(?\d(?:[\d\-–./,() ]*[)\d])?")
_ALNUM_ID_RE = re.compile(r"[a-z]{1,3}\d{4,}|\d{4,}[a-z]{1,3}")
_ORDINAL_RE = re.compile(r"(\d{1,2})(st|nd|rd|th)")
_TRAIL = ".,;:!?…"


def classify_number(tok: Token) -> NumberWord | None:
    """What the word is as a number; ``None`` for a word that is no number."""
    raw = tok.raw
    if not raw:
        return None
    if raw in {"-", "–", "—"} or tok.bare in {"dash", "hyphen"}:
        return NumberWord(NumberKind.SEP)
    has_digit = any(c.isdigit() for c in raw)
    if not has_digit:
        bare = tok.bare
        if bare in _UNITS:
            return NumberWord(NumberKind.SPELLED, _UNITS[bare])
        if bare in _WEAK_ZERO:
            return NumberWord(NumberKind.WEAK, "0")
        if bare in _TEENS:
            return NumberWord(NumberKind.TEEN, _TEENS[bare])
        if bare in TENS:
            return NumberWord(NumberKind.TENS, TENS[bare])
        if bare in _REPEATS:
            return NumberWord(NumberKind.REPEAT)
        if bare in _SCALE:
            return NumberWord(NumberKind.SCALE, _SCALE[bare])
        return None
    if _MONEY_RE.search(tok.low):
        return NumberWord(NumberKind.MONEY)
    if _TIME_RE.search(raw):
        return NumberWord(NumberKind.TIME)
    core = raw.rstrip(_TRAIL)
    m = _DATE_WORD_RE.fullmatch(core)
    if m and _plausible_numeric_date(m):
        return NumberWord(NumberKind.DATE, re.sub(r"\D", "", core))
    m = _ORDINAL_RE.fullmatch(tok.bare)
    if m:
        return NumberWord(NumberKind.ORDINAL, m.group(1))
    if _GROUP_RE.fullmatch(core):
        digits = re.sub(r"\D", "", core)
        body = core.lstrip("-–.,/#+(")
        return NumberWord(
            NumberKind.GROUP,
            digits,
            thousands=bool(re.fullmatch(r"\d{1,3}(,\d{3})+", body)),
            decimal=bool(re.fullmatch(r"\d+\.\d+", body)),
        )
    if re.fullmatch(r"o\d+", tok.bare):  # "O9, O2, 2001": the ASR's letter O for zero
        return NumberWord(NumberKind.GROUP, "0" + tok.bare[1:])
    if _ALNUM_ID_RE.fullmatch(tok.bare) and not re.fullmatch(r"\d{2,4}'?s", tok.bare):
        return NumberWord(NumberKind.GROUP, re.sub(r"\D", "", tok.bare))
    return None


def _plausible_numeric_date(m: re.Match[str]) -> bool:
    if m.group(1):
        a, b = int(m.group(1)), int(m.group(2))
    else:
        a, b = int(m.group(5)), int(m.group(6))
    return 1 <= min(a, b) <= 12 and max(a, b) <= 31


@dataclass(slots=True)
class DigitRun:
    """Consecutive number words read as one digit string."""

    first: int
    last: int  # exclusive
    digits: str
    groups: int  # words written with digits
    spelled: int  # spelled single digits ("four", "oh", "double five" counts 2)
    thousands: bool
    decimal: bool


def _single_digit(num: NumberWord | None) -> bool:
    """A word that "double" / "triple" can repeat: "five", "oh", "5"."""
    return (
        num is not None
        and num.kind in {NumberKind.SPELLED, NumberKind.WEAK, NumberKind.GROUP}
        and len(num.digits) == 1
    )


def digit_runs(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], skip: set[int]
) -> list[DigitRun]:
    """Maximal runs of digit-bearing words, joined across spaces, commas, dashes, dots."""
    runs: list[DigitRun] = []
    n = len(toks)

    def at(j: int) -> NumberWord | None:
        """The number-bearing word ``j`` if it may be part of a run."""
        if j >= n or j in skip:
            return None
        num = nums[j]
        return num if num is not None and num.kind <= NumberKind.SEP else None

    i = 0
    while i < n:
        num = at(i)
        if num is None or num.kind in {NumberKind.SEP, NumberKind.SCALE} or (
            num.kind == NumberKind.REPEAT and not _single_digit(at(i + 1))
        ):
            i += 1
            continue
        digits: list[str] = []
        groups = spelled = 0
        thousands = decimal = False
        j = i
        prev_kind = -1
        while (cur := at(j)) is not None:
            kind = cur.kind
            nxt = at(j + 1)
            if kind == NumberKind.SEP:
                if nxt is not None and nxt.kind != NumberKind.SEP:
                    j += 1
                    continue
                if j + 1 == n:  # a dash cut off by the window end
                    j += 1
                break
            if kind == NumberKind.REPEAT:  # "double five"
                if nxt is None or nxt.kind not in {
                    NumberKind.SPELLED, NumberKind.WEAK, NumberKind.GROUP
                }:
                    break
                if len(nxt.digits) != 1:
                    break
                times = _REPEATS[toks[j].bare]
                digits.append(nxt.digits * times)
                spelled += times
                j += 2
                prev_kind = NumberKind.SPELLED
                continue
            if kind == NumberKind.SCALE:  # "eight hundred"
                if prev_kind not in {NumberKind.SPELLED, NumberKind.TEEN, NumberKind.TENS}:
                    break
                digits.append(cur.digits)
                j += 1
                prev_kind = NumberKind.SCALE
                continue
            if kind == NumberKind.TENS:  # "forty five" -> 45, "forty" -> 40
                if nxt is not None and nxt.kind == NumberKind.SPELLED and nxt.digits != "0":
                    digits.append(cur.digits + nxt.digits)
                    j += 2
                else:
                    digits.append(cur.digits + "0")
                    j += 1
                prev_kind = NumberKind.TENS
                continue
            if kind == NumberKind.GROUP:
                groups += 1
                thousands |= cur.thousands
                decimal |= cur.decimal
            elif kind in {NumberKind.SPELLED, NumberKind.WEAK}:
                spelled += 1
            digits.append(cur.digits)
            prev_kind = kind
            j += 1
        first = i
        # "Oh, five ..." / a run that is only "oh": the interjection is not a zero.
        while (
            first < j
            and (lead := nums[first]) is not None
            and lead.kind == NumberKind.WEAK
            and (toks[first].phrase_end or first + 1 == j)
        ):
            first += 1
            digits = digits[1:]
            spelled -= 1
        if first < j and digits:
            runs.append(DigitRun(first, j, "".join(digits), groups, spelled, thousands, decimal))
        i = j
    return runs
