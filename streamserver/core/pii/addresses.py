"""Street addresses, however the ASR cased and misheard them ("36 mape all drive"),
and the ZIP and postal codes in them or said on their own ("zip code 9 0 2 1 0",
"postcode SW1A 1AA")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import LOCATION, SCORE_CONTEXT, SCORE_SHAPE, SCORE_WEAK, ZIP_CODE
from .numbers import SPELLED_OUT, DigitRun, NumberKind, NumberWord, digit_runs
from .text import (
    EDGE_PUNCTUATION,
    Token,
    ends_statement,
    is_plain_word,
    phrase_at,
    split_phrases,
)
from .triggers import LOOKAHEAD, LOOKBACK, Trigger
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
UNIT_WORDS = frozenset({"apartment", "apt", "suite", "ste", "unit", "floor", "flat", "room",
                        "#", "number", "no"})  # after a street: "250 Grand Street, number 5"
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
    if not is_plain_word(bare) or bare in _STREET_SUFFIXES:
        return False
    # "Grand Street", "Second Avenue": a capitalised word is a name even when it is
    # also a quantity word; function words never are.
    return bare not in _NOT_STREET_NAME or (tok.title and bare not in STOP_WORDS)


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
        # A weak suffix ("Circle", "Way") needs a capitalised name; number words
        # before it are the house number read into the name ("four forty four Peachtree").
        if tok.bare in _WEAK_SUFFIXES and not (
            all(toks[j].title or nums[j] is not None for j in range(k, s))
            and any(toks[j].title for j in range(k, s))
        ):
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
    # "P.O. Box 4471, Tucson, Arizona 85717", "post office box 12".
    for i in range(n):
        box = _po_box_number(toks, nums, i)
        if box is not None:
            out.append(WordSpan(i, _address_tail(toks, nums, box), LOCATION, SCORE_CONTEXT))
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


_PO_BOX = (("p.o", "box"), ("po", "box"), ("p", "o", "box"), ("post", "office", "box"))


def _po_box_number(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], i: int
) -> int | None:
    """End of "P.O. Box <number>" starting at word ``i``; None when there is none."""
    bare = [t.bare for t in toks]
    for phrase in _PO_BOX:
        if phrase_at(bare, i, phrase):
            j = i + len(phrase)
            k = j
            while k < len(toks) and k - j < 6 and _kind(nums, k) in _HOUSE_NUMBER_KINDS:
                k += 1
            return k if k > j else None
    return None


def _zip_digits_end(nums: Sequence[NumberWord | None], j: int) -> int:
    """End of a ZIP read in pieces ("9 8 0 0 4", "980 04", "nine eight oh ..."); ``j``
    when the words from ``j`` are not 5 or 9 digits."""
    digits, k = 0, j
    while k < len(nums) and digits < 9:
        num = nums[k]
        if num is None or num.kind not in (NumberKind.GROUP, NumberKind.SPELLED, NumberKind.WEAK):
            break
        digits += len(num.digits)
        k += 1
        if digits in (5, 9) and (k == len(nums) or nums[k] is None):
            return k
    return j


def _address_tail(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    """Extend past the street suffix over direction, unit, city, state and ZIP."""
    n = len(toks)
    if j < n and toks[j - 1].sentence_end:
        return j
    if j < n and toks[j].bare in _DIRECTIONS and len(toks[j].bare) > 2:
        j += 1
    if j < n and toks[j].bare in UNIT_WORDS and j + 1 < n:
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
        elif (end := _zip_digits_end(nums, j)) > j:
            j = end
        else:
            break
    return j


# ------------------------------------------------------------------ ZIP / postcodes

# Phrases that announce a ZIP or postal code (longest first).
_ZIP_CUES = tuple(
    sorted(
        split_phrases(
            "zip | zip code | zipcode | zip plus four | postal code | postcode | post code"
            " | postal | area code zip"
        ),
        key=len,
        reverse=True,
    )
)
_ZIP_CUE_HEADS = frozenset(c[0] for c in _ZIP_CUES)
_ZIP_CUE_CONTRACTIONS = {"zip's", "zipcode's", "postcode's"}
# Between a cue and the code: "my zip code is ...", "postcode: ...".
_ZIP_CONNECTORS = {"is", "was", "it's", "its", "my", "the", "code", "of", "would", "be",
                   "should", "number", "uh", "um", "that's", "there", "here", "it", "for"}
# After a code, before its cue: "90210 is my zip".
_ZIP_AFTER_CONNECTORS = {"is", "was", "that's", "my", "the", "our", "your", "as", "for"}
_US_STATE_CODES = {
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL",
    "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE",
    "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
    "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR",
}  # fmt: skip
_CA_PROVINCES = {
    "ontario", "quebec", "alberta", "manitoba", "saskatchewan", "columbia", "scotia",
    "brunswick", "newfoundland", "labrador", "yukon", "nunavut", "territories",
}  # fmt: skip
_UK_POSTCODE_RE = re.compile(r"(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\d[A-Z]{2}")
_CA_POSTCODE_RE = re.compile(r"[A-Z]\d[A-Z]\d[A-Z]\d")
# What a postcode said so far can look like (to flag one cut off by the window end).
_POSTCODE_PREFIX_RE = re.compile(r"[A-Z]{1,2}(?:\d[A-Z\d]{0,4})?")
# Written as two tokens: "SW1A 1AA", "K1A 0B1".
_UK_OUTWARD_RE = re.compile(r"[A-Z]{1,2}\d[A-Z\d]?")
_UK_INWARD_RE = re.compile(r"\d[ABD-HJLNP-UW-Z]{2}")
_CA_HALF_RE = re.compile(r"[A-Z]\d[A-Z]")
_CA_OTHER_HALF_RE = re.compile(r"\d[A-Z]\d")
# A number after a state that is no ZIP: "Texas 10000 people".
_NOT_ZIP_AFTER = QUANTITY_WORDS - {"or", "to"}


def zip_spans(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], trig: Sequence[Trigger | None]
) -> list[WordSpan]:
    """ZIP codes (5 digits, ZIP+4) and UK / Canadian postcodes: after a cue ("zip code
    is ...", "postcode ..."), before one ("... is my zip"), or closing an address
    ("Springfield, Illinois 6 2 7 0 4", "Oregon 97475", "Maple Street, Springfield,
    62704", "Kingfisher Close, Leeds, L S 6 2 A B")."""
    n = len(toks)
    if not n:
        return []
    bare = [t.bare for t in toks]
    cues: list[tuple[int, int]] = []
    i = 0
    while i < n:
        cue = None
        if bare[i] in _ZIP_CUE_HEADS:
            cue = next((c for c in _ZIP_CUES if phrase_at(bare, i, c)), None)
        if cue is None and bare[i] in _ZIP_CUE_CONTRACTIONS:
            cue = (bare[i],)
        if cue is not None:
            cues.append((i, i + len(cue)))
            i += len(cue)
        else:
            i += 1
    cue_words = {j for a, b in cues for j in range(a, b)}  # "zip plus four" is no digit
    runs = {run.first: run for run in digit_runs(toks, nums, cue_words)}
    out: list[WordSpan] = []
    for i, cue_end in cues:
        j = cue_end
        while j < n and j - i <= LOOKAHEAD + 1 and bare[j] in _ZIP_CONNECTORS:
            j += 1
        if j >= n:
            continue
        run = runs.get(j)
        if run is not None:
            span = _zip_from_run(run, n, SCORE_CONTEXT)
            if span is not None:
                out.append(span)
            continue
        if ends_statement(toks[j - 1]):
            continue  # "I don't know my zip code. I ...": the cue's sentence is over
        postcode = _postcode_at(toks, nums, j)
        if postcode is not None:
            out.append(postcode)
            continue
        far = _zip_run_within_reach(toks, runs, j, cue_end + LOOKBACK)
        if far is not None:
            span = _zip_from_run(far, n, SCORE_CONTEXT)
            if span is not None:
                out.append(span)
    # "90210 is my zip code".
    for run in runs.values():
        if len(run.digits) not in (5, 9):
            continue
        k = run.last
        while k < n and k - run.last < LOOKAHEAD and bare[k] in _ZIP_AFTER_CONNECTORS:
            k += 1
        if k < n and k in cue_words:
            out.append(WordSpan(run.first, run.last, ZIP_CODE, SCORE_CONTEXT))
    # Closing an address: after its city or state ("..., Springfield, 62704").
    addresses = [s for s in address_spans(toks, nums, trig) if s.last - s.first >= 3]
    for i, tok in enumerate(toks):
        if i + 1 >= n or tok.sentence_end:
            continue
        core = tok.raw.strip(EDGE_PUNCTUATION)
        listed = i > 0 and toks[i - 1].phrase_end  # "Austin, TX ...", "Springfield, Illinois"
        in_address = any(a.first < i + 1 <= a.last for a in addresses)
        state = bare[i] in _US_STATES or (core in _US_STATE_CODES and (listed or in_address))
        city = in_address and tok.phrase_end and tok.title  # "..., Springfield, 62704"
        if not (state or city or bare[i] in _CA_PROVINCES):
            continue
        run = runs.get(i + 1)
        if run is not None:
            after = bare[run.last] if run.last < n else ""
            if after in _NOT_ZIP_AFTER or run.thousands or run.decimal:
                continue
            # A code still arriving counts only where an address is plainly being said;
            # "Texas 10000" waits for the next word ("people").
            sure = listed or in_address
            if not sure and run.last == n and not toks[-1].phrase_end:
                continue
            span = _zip_from_run(run, n, SCORE_CONTEXT if sure else SCORE_SHAPE,
                                 partial_ok=sure)
            if span is not None:
                out.append(span)
        elif bare[i] in _CA_PROVINCES or city:
            postcode = _postcode_at(toks, nums, i + 1, strict=True)
            if postcode is not None:
                out.append(postcode)
    # Written postcodes: "SW1A 1AA", "K1A 0B1".
    for i in range(n - 1):
        a = toks[i].raw.strip(EDGE_PUNCTUATION)
        b = toks[i + 1].raw.strip(EDGE_PUNCTUATION)
        uk = _UK_OUTWARD_RE.fullmatch(a) and _UK_INWARD_RE.fullmatch(b)
        ca = _CA_HALF_RE.fullmatch(a) and _CA_OTHER_HALF_RE.fullmatch(b)
        if (uk or ca) and not toks[i].sentence_end:
            out.append(WordSpan(i, i + 2, ZIP_CODE, SCORE_SHAPE))
    return out


def _zip_run_within_reach(
    toks: Sequence[Token], runs: dict[int, DigitRun], j: int, reach: int
) -> DigitRun | None:
    """The first digit run from word ``j`` to ``reach``, past other words ("zip is in
    Boston, 0 2 1 1 6", "Zip code? Yeah, it's 02116"): as far as a ZIP cue claims a
    run for a ZIP (digits.py), so that a claimed run is never left unlabelled. Not
    past the end of a sentence that is no question."""
    for k in range(j, min(reach, len(toks))):
        run = runs.get(k)
        if run is not None:
            return run
        if ends_statement(toks[k]):
            return None
    return None


def _zip_from_run(run: DigitRun, n: int, score: float, partial_ok: bool = True) -> WordSpan | None:
    """A 5-digit ZIP or ZIP+4; a shorter run only when cut off by the window end."""
    count = len(run.digits)
    if count in (5, 9):
        return WordSpan(run.first, run.last, ZIP_CODE, score)
    if run.last == n and count < 9 and partial_ok:
        return WordSpan(run.first, run.last, ZIP_CODE, SCORE_WEAK)
    return None


def _postcode_at(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int, strict: bool = False
) -> WordSpan | None:
    """A UK or Canadian postcode starting at word ``j``, written ("SW1A 1AA") or spelled
    ("S W 1 A 1 A A", "K one A zero B one"); a prefix when the window ends inside it."""
    n = len(toks)
    text = ""
    best = None
    k = j
    while k < n and k - j < 8 and len(text) < 7:
        tok = toks[k]
        num = nums[k]
        core = tok.raw.strip(EDGE_PUNCTUATION)
        if num is not None and num.kind in {NumberKind.SPELLED, NumberKind.WEAK}:
            piece = num.digits
        elif core.isalnum() and len(core) <= 4 and core.isascii() and (
                core.isupper() or core.isdigit()):  # "SW1A", "M", "1"; not "in", "In"
            piece = core
        else:
            break
        text += piece
        k += 1
        if _UK_POSTCODE_RE.fullmatch(text) or _CA_POSTCODE_RE.fullmatch(text):
            best = k
        if tok.sentence_end:
            break
    if best is not None:
        return WordSpan(j, best, ZIP_CODE, SCORE_CONTEXT)
    if not strict and k == n and text and _POSTCODE_PREFIX_RE.fullmatch(text):
        return WordSpan(j, k, ZIP_CODE, SCORE_WEAK)
    return None

# Shared with the dialogue state (an armed address answer).
STREET_SUFFIXES = frozenset(_STREET_SUFFIXES)
