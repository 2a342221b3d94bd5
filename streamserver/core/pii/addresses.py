"""Street addresses, however the ASR cased and misheard them ("36 mape all drive")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import LOCATION, SCORE_CONTEXT, SCORE_WEAK
from .numbers import SPELLED_OUT, NumberKind, NumberWord
from .text import EDGE_PUNCTUATION, Token, is_plain_word
from .triggers import Trigger
from .vocabulary import MONTHS, QUANTITY_WORDS, STOP_WORDS

_STREET_SUFFIXES = {
    "street", "st", "avenue", "ave", "av", "road", "rd", "drive", "dr", "lane", "ln",
    "boulevard", "blvd", "court", "ct", "way", "place", "pl", "terrace", "circle", "cir",
    "parkway", "pkwy", "highway", "hwy", "square", "trail", "crescent", "plaza", "alley",
    "pike", "turnpike", "expressway", "freeway", "route", "rte",
}  # fmt: skip
# Suffixes that are also common words: the street name must be capitalised.
_WEAK_SUFFIXES = {"way", "place", "court", "circle", "square", "trail", "route"}
_DIRECTIONS = {
    "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest",
    "n", "s", "e", "w", "ne", "nw", "se", "sw",
}  # fmt: skip
_UNIT_WORDS = {"apartment", "apt", "suite", "ste", "unit", "floor", "flat", "room", "#"}
# Words that cannot be part of a street name between a house number and the suffix:
# they make "3 hours on the road" or "20 minutes down the way" a non-address.
_NOT_STREET_NAME = (
    STOP_WORDS
    - {"one", "first", "last", "next", "new", "old", "well", "great", "good", "all", "ever"}
) | QUANTITY_WORDS
_US_STATES = {
    "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut",
    "delaware", "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa",
    "kansas", "kentucky", "louisiana", "maine", "maryland", "massachusetts", "michigan",
    "minnesota", "mississippi", "missouri", "montana", "nebraska", "nevada", "ohio",
    "oklahoma", "oregon", "pennsylvania", "tennessee", "texas", "utah", "vermont",
    "virginia", "washington", "wisconsin", "wyoming", "carolina", "dakota", "hampshire",
    "jersey", "mexico", "york", "island",
}  # fmt: skip
_HOUSE_NUMBER_KINDS = {
    NumberKind.GROUP, NumberKind.SPELLED, NumberKind.TEEN, NumberKind.TENS, NumberKind.SCALE
}  # fmt: skip


def _kind(nums: Sequence[NumberWord | None], j: int) -> NumberKind | None:
    num = nums[j]
    return None if num is None else num.kind


def _is_street_name_word(tok: Token, num: NumberWord | None) -> bool:
    if num is not None and num.kind == NumberKind.ORDINAL:
        return True  # "5th Avenue"
    bare = tok.bare
    return is_plain_word(bare) and bare not in _NOT_STREET_NAME and bare not in _STREET_SUFFIXES


def _house_number_start(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], end: int
) -> int:
    """Start of a house number ending just before word ``end``; ``end`` when none."""
    if end <= 0:
        return end
    num = nums[end - 1]
    if (
        num is not None
        and num.kind == NumberKind.GROUP
        and 1 <= len(num.digits) <= 6
        and not num.decimal
    ):
        return end - 1
    if re.fullmatch(r"\d{1,5}[a-z]", toks[end - 1].bare):  # "36b"
        return end - 1
    j = end
    while j > 0 and end - j < 4:
        cur = nums[j - 1]
        spoken_oh = toks[j - 1].bare == "or" and j - 1 > 0 and j < end  # "one or two"
        if (cur is not None and cur.kind in SPELLED_OUT) or spoken_oh:
            j -= 1
        else:
            break
    return j if j < end and _kind(nums, j) != NumberKind.WEAK else end


def address_spans(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], trig: Sequence[Trigger | None]
) -> list[WordSpan]:
    """Street addresses: house number, street name and suffix, then unit, city, state,
    ZIP; without a suffix only after an address trigger ("I live at 36 maple")."""
    n = len(toks)
    out: list[WordSpan] = []
    for s, tok in enumerate(toks):
        if tok.bare not in _STREET_SUFFIXES:
            continue
        if tok.bare in {"st", "dr"} and s + 1 < n and toks[s + 1].title and not tok.phrase_end:
            continue  # "St. Louis", "Dr. Smith" read forwards, not a suffix
        # Street name: 1-3 words before the suffix.
        k = s
        while k > 0 and s - k < 3 and _is_street_name_word(toks[k - 1], nums[k - 1]):
            if k < s and toks[k - 1].phrase_end:
                break
            k -= 1
        if k == s:
            continue
        if tok.bare in _WEAK_SUFFIXES and not all(toks[j].title for j in range(k, s)):
            continue
        start = None
        for name_start in range(k, s):
            house = _house_number_start(toks, nums, name_start)
            if house < name_start:
                start = house
                break
        if start is None:
            # No house number: only with address context ("I live on Maple Drive").
            lo = max(0, k - 3)
            if not any(trig[j] == Trigger.ADDRESS for j in range(lo, k)) or not toks[k].title:
                continue
            start = k
        end = _address_tail(toks, nums, s + 1)
        out.append(WordSpan(start, end, LOCATION, SCORE_CONTEXT))
    # "... live at 36 maple" cut by the window end, or an address whose suffix was lost.
    for i in range(n):
        if trig[i] != Trigger.ADDRESS:
            continue
        j = i + 1
        while j < n and trig[j] == Trigger.ADDRESS:
            j += 1
        if j < n and toks[j].bare == "is":
            j += 1
        house_end = j
        while house_end < n and (
            _kind(nums, house_end) in _HOUSE_NUMBER_KINDS
            or (toks[house_end].bare == "or" and house_end > j)  # "one or two": "one oh two"
        ):
            house_end += 1
        if house_end == j or house_end - j > 3:
            continue
        k = house_end
        while k < n and k - house_end < 4 and _is_street_name_word(toks[k], nums[k]):
            k += 1
            if toks[k - 1].phrase_end:
                break
        if k == n or toks[i].bare == "address":
            out.append(WordSpan(j, k, LOCATION, SCORE_WEAK))
    return out


def _address_tail(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    """Extend past the street suffix over direction, unit, city, state and ZIP."""
    n = len(toks)
    if j < n and toks[j - 1].sentence_end:
        return j
    if j < n and toks[j].bare in _DIRECTIONS and len(toks[j].bare) > 2:
        j += 1
    if j < n and toks[j].bare in _UNIT_WORDS and j + 1 < n:
        nxt = nums[j + 1]
        if (nxt is not None and nxt.kind in _HOUSE_NUMBER_KINDS) or re.fullmatch(
            r"\d{0,5}[a-z]?", toks[j + 1].bare
        ):  # "apartment 5B", "suite 200", "unit C"
            j += 2
    # City: up to three words that are not function words.
    city = 0
    while j < n and city < 3 and toks[j - 1].sentence_end is False:
        tok = toks[j]
        bare = tok.bare
        if not is_plain_word(bare) or bare in STOP_WORDS:
            break
        if bare in QUANTITY_WORDS or bare in MONTHS:
            break
        j += 1
        city += 1
        if tok.phrase_end:
            break
    # State and ZIP.
    while j < n and not toks[j - 1].sentence_end:
        bare = toks[j].bare
        num = nums[j]
        core = toks[j].raw.strip(EDGE_PUNCTUATION)
        state = bare in _US_STATES or (len(core) == 2 and core.isupper())  # "OR", "TX"
        zip_code = num is not None and num.kind == NumberKind.GROUP and len(num.digits) in (5, 9)
        if state or zip_code:
            j += 1
        else:
            break
    return j
