"""Numbers that say when, how much and how old: calendar dates, times of day, amounts
of money and a person's age, as Whisper writes them ("$45.99", "forty five dollars and
ten cents", "half past four", "3 30 pm", "the 14th of July", "I'm 42"); and ZIP codes
(read by ``addresses``, which ``find_spoken_entities`` only asks for street addresses).

Durations ("30 minutes"), counts, scores, percentages, years and model numbers are
none of these: each rule needs a unit, a marker or a cue that only its kind has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .addresses import zip_spans
from .dates import date_spans, dob_spans, ordinal_date_spans, with_weekday
from .entities import (
    DATE,
    MONEY_AMOUNT,
    PERSON_AGE,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    SCORE_WEAK,
    TIME,
    ZIP_CODE,
)
from .numbers import NumberKind, NumberWord
from .text import Token, phrase_at, split_phrases
from .triggers import LOOKBACK, Trigger
from .vocabulary import MONTHS, QUANTITY_WORDS, STOP_WORDS


def quantity_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    wanted: frozenset[str],
) -> list[WordSpan]:
    """Dates, times, money, ages and ZIP codes, for those of them in ``wanted``."""
    out: list[WordSpan] = []
    if ZIP_CODE in wanted:
        out.extend(zip_spans(toks, nums, trig))
    if DATE in wanted:
        out.extend(calendar_date_spans(toks, nums, trig))
    if TIME in wanted:
        out.extend(time_spans(toks, nums))
    if MONEY_AMOUNT in wanted:
        out.extend(money_spans(toks, nums))
    if PERSON_AGE in wanted:
        out.extend(age_spans(toks, nums))
    return out


# ---------------------------------------------------------------------------- dates

# A date just after one of these is a card's expiry (CREDIT_CARD_EXPIRATION), not a DATE.
_EXPIRY_WORDS = {"expires", "expire", "expiring", "expired", "expiry", "expiration", "exp",
                 "thru"}


def calendar_date_spans(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], trig: Sequence[Trigger | None]
) -> list[WordSpan]:
    """Calendar dates that are not dates of birth: a month with a day or year
    ("March 3rd", "the 14th of July", "May of 2024"), a written date ("03/04/2024"),
    or a day of the month after a weekday or preposition ("next Tuesday the 5th")."""
    dates = date_spans(toks, nums)
    births = dob_spans(toks, trig, dates)
    out: list[WordSpan] = []
    candidates = [
        (first, last, SCORE_CONTEXT)
        for first, last in dates
        if last - first > 1 or toks[first].bare not in MONTHS  # not a month on its own
    ]
    candidates += [(first, last, SCORE_SHAPE) for first, last in ordinal_date_spans(toks, nums)]
    for first, last, score in candidates:
        if any(b.first < last and first < b.last for b in births):
            continue  # DATE_OF_BIRTH only
        if _after_expiry(toks, first):
            continue
        wide = with_weekday(toks, first)
        if wide == first and toks[first].bare == "the":
            wide = first + 1  # the value, not its article: "the 21st of June"
        out.append(WordSpan(wide, last, DATE, SCORE_CONTEXT if wide < first else score))
    return out


def _after_expiry(toks: Sequence[Token], first: int) -> bool:
    """ "The expiry on the card is March 2028": a card's expiry date."""
    for j in range(first - 1, max(-1, first - 1 - LOOKBACK), -1):
        if toks[j].sentence_end:
            return False
        if toks[j].bare in _EXPIRY_WORDS:
            return True
    return False


# ---------------------------------------------------------------------------- times

_CLOCK_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::[0-5]\d)?(am|pm|a\.m|p\.m)?")
_HOUR_MARKED_RE = re.compile(r"(1[0-2]|0?[1-9])(?::?([0-5]\d))?(am|pm|a\.m|p\.m)")
# Said right after the hour (and minutes): units of the time, part of its span ...
_UNIT_MARKERS = split_phrases("am | pm | a.m | p.m | a m | p m | o'clock | oclock")
# ... and parts of the day, which make it a time but are not part of it.
_DAY_PARTS = split_phrases(
    "in the morning | in the afternoon | in the evening | at night | tonight | this morning"
    " | this afternoon | this evening | tomorrow morning | tomorrow night | sharp | eastern"
    " | pacific | central | mountain | est | pst | cst | gmt | utc"
)
_MARKER_HEADS = frozenset(p[0] for p in _UNIT_MARKERS + _DAY_PARTS)
# Before "6 45" with no marker: a time, not a count.
_TIME_PREPOSITIONS = {"at", "by", "around", "until", "till", "til", "from", "before",
                      "after", "between", "@"}
# Before a bare hour ("after five."): a time of day; not "at" ("at 7 percent", "look
# at 7"), which needs minutes or a marker.
_HOUR_PREPOSITIONS = {"after", "before", "until", "till", "til", "around", "by"}
# Between two hours that share a marker: "between 8 and 10 AM", "from 9 to 5 pm".
_RANGE_WORDS = {"and", "to", "or", "till", "until", "-", "through", "thru"}
_DURATION_WORDS = {"minute", "minutes", "min", "mins", "hour", "hours", "hr", "hrs",
                   "second", "seconds", "sec", "secs"}
_NOT_AFTER_TIME = QUANTITY_WORDS - {"am", "pm", "a.m", "p.m", "o'clock", "or", "to"}
_FRACTIONS = {"quarter": 15, "half": 30}
_PAST_WORDS = {"past", "after"}
_TO_WORDS = {"to", "till", "til", "of"}
# "ten to nine" is also a score: only after words that ask for a time.
_ASKS_FOR_TIME = {"at", "it's", "its", "is", "about", "around", "by", "until", "till",
                  "before", "after", "from"}
_CLOCK_WORDS = {"noon", "midnight", "midday"}
_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9}
_TENS_VALUES = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
                "seventy": 70, "eighty": 80, "ninety": 90}
_HYPHENATED_RE = re.compile(
    r"(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)-(one|two|three|four|five|six"
    r"|seven|eight|nine)"
)


def hyphenated(bare: str) -> int:
    """The value of a hyphenated spelled number ("twenty-two" -> 22); -1 for any other."""
    m = _HYPHENATED_RE.fullmatch(bare)
    return _TENS_VALUES[m.group(1)] + _UNITS[m.group(2)] if m else -1


def _hour(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    """The hour said at word ``j`` (``-1`` if none): "3", "03", "three", "eleven"."""
    if j >= len(toks):
        return -1
    num = nums[j]
    if num is None:
        return -1
    bare = toks[j].bare
    if num.kind == NumberKind.GROUP and bare.isdigit() and len(bare) <= 2:
        value = int(bare)
        return value if 1 <= value <= 12 else -1
    if num.kind == NumberKind.SPELLED and num.digits != "0":
        return int(num.digits)
    if num.kind == NumberKind.TEEN and int(num.digits) <= 12:
        return int(num.digits)
    return -1


def _minutes(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    """Words used by the minutes at word ``j`` ("30", "05", "thirty", "forty five",
    "forty-five", "oh five", "fifteen"); 0 when there are none."""
    n = len(toks)
    if j >= n:
        return 0
    if 20 <= hyphenated(toks[j].bare) <= 59:
        return 1
    num = nums[j]
    if num is None:
        return 0
    bare = toks[j].bare
    if num.kind == NumberKind.GROUP:
        return 1 if len(bare) == 2 and bare.isdigit() and int(bare) <= 59 else 0
    if num.kind == NumberKind.TEEN:
        return 1
    if num.kind == NumberKind.TENS and int(num.digits) <= 5:
        nxt = nums[j + 1] if j + 1 < n else None
        if nxt is not None and nxt.kind == NumberKind.SPELLED and nxt.digits != "0":
            return 2
        return 1
    if num.kind == NumberKind.WEAK and j + 1 < n:  # "seven oh five"
        nxt = nums[j + 1]
        if nxt is not None and nxt.kind == NumberKind.SPELLED and nxt.digits != "0":
            return 2
    return 0


def _marker(bare: Sequence[str], j: int) -> tuple[int, int]:
    """(words of a unit marker at ``j`` that belong to the time, words of the whole
    marker): "pm" (1, 1), "in the morning" (0, 3), none (0, 0)."""
    if j >= len(bare) or bare[j] not in _MARKER_HEADS:
        return 0, 0
    for phrase in _UNIT_MARKERS:
        if phrase_at(bare, j, phrase):
            return len(phrase), len(phrase)
    for phrase in _DAY_PARTS:
        if phrase_at(bare, j, phrase):
            return 0, len(phrase)
    return 0, 0


def time_spans(toks: Sequence[Token], nums: Sequence[NumberWord | None]) -> list[WordSpan]:
    """Times of day: "3:30", "at 9 a.m.", "3 30 pm", "seven thirty in the evening",
    "at 6 45", "after five.", "between 8 and 10 AM", "half past four", "quarter to
    ten", "noon"; never a duration ("30 minutes", "in 3:45")."""
    n = len(toks)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    for i in range(n):
        prev = bare[i - 1] if i else ""
        num = nums[i]
        word = bare[i]
        # "3:30", "10:45pm", "3:30 p.m.".
        if num is not None and num.kind == NumberKind.TIME:
            m = _CLOCK_RE.fullmatch(word)
            if m is None:
                continue
            unit, marker = _marker(bare, i + 1)
            marked = marker > 0 or m.group(3) is not None
            after = i + 1 + marker
            if not marked and (
                (after < n and bare[after] in _DURATION_WORDS)
                or prev in {"for", "took", "lasted", "in", "ran", "record", "time"}
            ):
                continue
            score = SCORE_CONTEXT if marked or prev in _TIME_PREPOSITIONS else SCORE_SHAPE
            out.append(WordSpan(i, i + 1 + unit, TIME, score))
            continue
        # "9am", "930pm".
        if _HOUR_MARKED_RE.fullmatch(word):
            out.append(WordSpan(i, i + 1, TIME, SCORE_CONTEXT))
            continue
        if word in _CLOCK_WORDS:
            first = i - 1 if prev == "12" else i
            out.append(WordSpan(first, i + 1, TIME, SCORE_CONTEXT))
            continue
        # "quarter past two", "half past four", "twenty past six", "ten to nine".
        span = _fraction_time(toks, nums, bare, i)
        if span is not None:
            out.append(span)
            continue
        # "1030 in the morning", "730 pm".
        if (
            num is not None
            and num.kind == NumberKind.GROUP
            and word.isdigit()
            and len(word) in (3, 4)
            and 1 <= int(word[:-2]) <= 12
            and int(word[-2:]) <= 59
        ):
            unit, marker = _marker(bare, i + 1)
            if marker:
                out.append(WordSpan(i, i + 1 + unit, TIME, SCORE_CONTEXT))
            continue
        if _hour(toks, nums, i) < 0:
            continue
        j = i + 1
        minutes = _minutes(toks, nums, j)
        j += minutes
        unit, marker = _marker(bare, j)
        if marker:
            # "between 8 and 10 AM": the first hour shares the marker.
            if i >= 2 and bare[i - 1] in _RANGE_WORDS and _hour(toks, nums, i - 2) >= 0:
                out.append(WordSpan(i - 2, i - 1, TIME, SCORE_CONTEXT))
            out.append(WordSpan(i, j + unit, TIME, SCORE_CONTEXT))
            continue
        nxt = bare[j] if j < n else None
        ends = toks[j - 1].phrase_end
        # What may follow a time said without a marker: nothing yet, a pause, a function
        # word ("at 6 45 and", "after five tomorrow"); not "at 2 twenty seven Baker
        # Street" or "after 5 years".
        free = ends or (nxt is not None and nxt in STOP_WORDS and nxt not in _NOT_AFTER_TIME)
        if nxt is not None and (nxt in _NOT_AFTER_TIME or nums[j] is not None):
            continue
        # "at 6 45": an hour and minutes after a time preposition; "any time after
        # five.", "call me after 5 tomorrow": a bare hour after a narrower one. At the
        # window end either waits ("at two twenty" + "seven Baker Street").
        prepositions = _TIME_PREPOSITIONS if minutes else _HOUR_PREPOSITIONS
        if free and prev in prepositions:
            out.append(WordSpan(i, j, TIME, SCORE_SHAPE))
    return out


def _fraction_time(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], bare: Sequence[str], i: int
) -> WordSpan | None:
    """ "[a] quarter past two", "half past four", "twenty five to six", "ten after
    nine" starting at word ``i``."""
    n = len(toks)
    word = bare[i]
    first = i - 1 if i and bare[i - 1] == "a" and word == "quarter" else i
    if word in _FRACTIONS:
        used = 1
        sure = True
    else:
        num = nums[i]
        if num is None:
            return None
        used = _minutes(toks, nums, i)
        five = num.kind == NumberKind.SPELLED and num.digits == "5"
        if five or (num.kind == NumberKind.GROUP and word in {"5", "10", "20", "25"}):
            used = 1
        elif not (num.kind in {NumberKind.TEEN, NumberKind.TENS} and used):
            return None
        value = _spoken_value(toks, nums, i, used)
        if value not in {5, 10, 20, 25}:
            return None
        sure = False
    j = i + used
    if j >= n:
        return None
    link = bare[j]
    if link in _TO_WORDS:
        if link == "of" and word != "quarter":
            return None
        if not sure and (first == 0 or bare[first - 1] not in _ASKS_FOR_TIME):
            return None
    elif link not in _PAST_WORDS:
        return None
    if _hour(toks, nums, j + 1) < 0:
        return None
    unit, marker = _marker(bare, j + 2)
    if not marker and j + 2 < n and bare[j + 2] in _NOT_AFTER_TIME:
        return None  # "ten to nine people"
    return WordSpan(first, j + 2 + unit, TIME, SCORE_CONTEXT if sure else SCORE_SHAPE)


def _spoken_value(toks: Sequence[Token], nums: Sequence[NumberWord | None], i: int,
                  used: int) -> int:
    """The value of a 1-2 word number at word ``i`` ("twenty five" -> 25)."""
    num = nums[i]
    if num is None:
        return -1
    if num.kind == NumberKind.GROUP:
        return int(num.digits) if num.digits.isdigit() else -1
    if num.kind == NumberKind.TENS:
        unit = nums[i + 1] if used == 2 else None
        return int(num.digits) * 10 + (int(unit.digits) if unit is not None else 0)
    return int(num.digits) if num.digits.isdigit() else -1


# ---------------------------------------------------------------------------- money

_SYMBOL_AMOUNT_RE = re.compile(
    r"(?:us|c|ca|a|au|nz|hk|s)?[$€£¥]\s?\d[\d,]*(?:\.\d+)?(?:k|m|bn|mn|b)?"
    r"|\d[\d,]*(?:\.\d+)?[$€£¥]"
)
_MAJOR_UNITS = {
    "dollar", "dollars", "buck", "bucks", "euro", "euros", "pound", "pounds", "quid", "yen",
    "rupee", "rupees", "peso", "pesos", "franc", "francs", "usd", "eur", "gbp", "cad",
    "aud", "grand",
}  # fmt: skip
_MINOR_UNITS = {"cent", "cents", "pence"}
_CURRENCY_CODES = {"usd", "eur", "gbp", "cad", "aud"}
_BIG_SCALES = {"million", "billion", "trillion", "thousand", "hundred", "k", "mil"}
_AMOUNT_KINDS = {NumberKind.GROUP, NumberKind.SPELLED, NumberKind.TEEN, NumberKind.TENS,
                 NumberKind.SCALE}
# "20 pounds" of flour or on the scales is no money.
_WEIGHT_WORDS = {"weigh", "weighs", "weighed", "weighing", "weight", "lost", "lose", "losing",
                 "gained", "gain", "gaining", "heavy", "heavier", "lighter", "overweight",
                 "lbs", "kilos", "ounces"}
# Words before a bare decimal amount ("the total is 45.99") that make it money.
_MONEY_CUES = {"cost", "costs", "costing", "price", "priced", "prices", "total", "totals",
               "balance", "charged", "charge", "charges", "paid", "pay", "paying", "owe",
               "owes", "owed", "refund", "refunded", "fee", "fees", "bill", "billed",
               "amount", "payment", "deposit", "deposited", "spent", "spend", "worth",
               "salary", "rent", "premium", "withdrew", "withdrawal", "transfer",
               "transferred", "due", "debit", "tip"}
_PLAIN_NUMBER_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CUE_AMOUNT_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{2})?|\d+\.\d{2}")
# After "five dollars fifty": words that end the amount there.
_AFTER_AMOUNT = {"and", "but", "so", "for", "please", "thanks", "each", "total", "then",
                 "plus", "in", "on", "a", "per"}
_MONEY_CONNECTORS = {"is", "was", "of", "me", "you", "us", "them", "him", "her", "it", "be",
                     "just", "only", "about", "around", "over", "under", "almost", "the",
                     "a", "an", "my", "your", "were", "are", "will", "comes", "came", "to"}


def _amount_word(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> bool:
    """A word that can be part of an amount: "45", "1,200", "4.5", "forty", "hundred",
    "million"."""
    num = nums[j]
    if num is not None and num.kind in _AMOUNT_KINDS:
        return num.kind != NumberKind.GROUP or _PLAIN_NUMBER_RE.fullmatch(toks[j].bare) is not None
    bare = toks[j].bare
    return (bare in _BIG_SCALES and bare not in {"k", "mil"}) or hyphenated(bare) > 0


def money_spans(toks: Sequence[Token], nums: Sequence[NumberWord | None]) -> list[WordSpan]:
    """Amounts of money: "$45.99", "£300", "€12", "45 dollars", "forty five dollars and
    ten cents", "two grand", "a hundred bucks", "$4.5 million", "the total is 45.99"."""
    n = len(toks)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    taken = [False] * n
    for i, word in enumerate(bare):
        if _SYMBOL_AMOUNT_RE.fullmatch(word) or (word in {"$", "£", "€"} and i + 1 < n
                                                 and _amount_word(toks, nums, i + 1)):
            last = i + 1
            while last < n and (_amount_word(toks, nums, last) or bare[last] in _BIG_SCALES):
                last += 1  # "$4.5 million", "$ 45"
            if last < n and bare[last] in _MAJOR_UNITS | _CURRENCY_CODES:
                last += 1
            last = _cents_after(toks, nums, bare, last)
            out.append(WordSpan(i, last, MONEY_AMOUNT, SCORE_CONTEXT))
            for j in range(i, last):
                taken[j] = True
            continue
        if word in _MAJOR_UNITS or word in _MINOR_UNITS:
            if taken[i] or i == 0 or (word == "grand" and toks[i].title):
                continue  # "250 Grand Street"
            first = i
            while first > 0 and (
                _amount_word(toks, nums, first - 1)
                or (bare[first - 1] == "and" and first - 2 >= 0 and first < i
                    and _amount_word(toks, nums, first - 2))
            ):
                first -= 1
            if first > 0 and bare[first - 1] in {"a", "one"} and first < i and (
                bare[first] in _BIG_SCALES
            ):
                first -= 1  # "a hundred bucks"
            if first > 0 and bare[first - 1] == "a" and first == i and word == "grand":
                first -= 1  # "a grand"
            if first == i:
                continue
            if word in {"pound", "pounds"} and _weight_context(toks, bare, first, i):
                continue
            last = i + 1
            if word in _MAJOR_UNITS:
                last = _cents_after(toks, nums, bare, last)
            out.append(WordSpan(first, last, MONEY_AMOUNT, SCORE_CONTEXT))
            for j in range(first, last):
                taken[j] = True
            continue
        if word in _CURRENCY_CODES and i + 1 < n and _amount_word(toks, nums, i + 1):
            last = i + 2  # "USD 45"
            while last < n and _amount_word(toks, nums, last):
                last += 1
            out.append(WordSpan(i, last, MONEY_AMOUNT, SCORE_CONTEXT))
    # "the total is 45.99", "a balance of 1,200".
    for i, word in enumerate(bare):
        num = nums[i]
        if taken[i] or num is None or num.kind != NumberKind.GROUP:
            continue
        if not _CUE_AMOUNT_RE.fullmatch(word):
            continue
        j = i - 1
        while j >= 0 and i - j <= 4 and bare[j] in _MONEY_CONNECTORS and not toks[j].sentence_end:
            j -= 1
        nxt = bare[i + 1] if i + 1 < n else ""
        if not toks[i].phrase_end and (
            (nxt and (nxt not in STOP_WORDS or nxt in QUANTITY_WORDS))
            or (not nxt and "." not in word)
        ):
            continue  # "a total of 1,200 people": "1,200" at the window end waits
        if j >= 0 and bare[j] in _MONEY_CUES and not toks[j].sentence_end:
            out.append(WordSpan(i, i + 1, MONEY_AMOUNT, SCORE_SHAPE))
    return out


def _cents_after(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], bare: Sequence[str], j: int
) -> int:
    """End of "[and] ten cents" / "fifty" said after a whole amount at word ``j``."""
    n = len(toks)
    if toks[j - 1].sentence_end:
        return j
    k = j + 1 if j < n and bare[j] == "and" else j
    m = k
    while m < n and m - k < 2 and _amount_word(toks, nums, m) and bare[m] not in _BIG_SCALES:
        m += 1
    if m == k:
        return j
    if m < n and bare[m] in _MINOR_UNITS:
        return m + 1  # "and ten cents", "99 cents"
    if k == j and (m == n or toks[m - 1].phrase_end or bare[m] in _AFTER_AMOUNT):
        return m  # "five dollars fifty"
    return j


def _weight_context(toks: Sequence[Token], bare: Sequence[str], first: int, unit: int) -> bool:
    """ "lost 20 pounds", "5 pounds of flour", "a 20 pound bag": a weight."""
    before = bare[max(0, first - 4) : first]
    after = bare[unit + 1] if unit + 1 < len(bare) else ""
    if not after and not toks[unit].phrase_end:
        return True  # "5 pounds" + "of flour" may still come: wait for the next word
    if bare[unit] == "pound" and after and not toks[unit].phrase_end and after != "and":
        return True
    return any(w in _WEIGHT_WORDS for w in before) or after in {"of", "heavier", "lighter"}


# ----------------------------------------------------------------------------- ages

_PRONOUN_SUBJECTS = split_phrases(
    "i'm | im | i am | he's | she's | he is | she is | you're | you are | i was | he was"
    " | she was | i'll be | he'll be | she'll be | i will be | he will be | she will be"
    " | who is | who's | who was | who turned | who turns"
)
_TURN_WORDS = {"turned", "turning", "turns", "turn"}
_AGE_WORDS = split_phrases("aged | age | ages | age is | my age is | the age of | age of")
_KIN = {
    "son", "daughter", "kid", "kids", "child", "boy", "girl", "baby", "mother", "mom", "mum",
    "father", "dad", "wife", "husband", "brother", "sister", "grandmother", "grandma",
    "grandfather", "grandpa", "grandson", "granddaughter", "partner", "aunt", "uncle",
    "nephew", "niece", "cousin", "patient", "friend", "boyfriend", "girlfriend", "fiance",
    "fiancee", "spouse", "stepson", "stepdaughter", "toddler", "teenager", "client",
    "mother-in-law", "father-in-law", "parents", "twins", "youngest", "oldest", "eldest",
}  # fmt: skip
_KIN_VERBS = split_phrases("is | was | will be | turned | turns | just turned | is turning")
_OWNERS = {"my", "our", "his", "her", "their", "your", "the"}
# Between the subject and the number: "I'm almost 40", "she's only 7".
_AGE_ADVERBS = {"only", "just", "almost", "nearly", "about", "around", "over", "under",
                "barely", "already", "now", "like", "actually", "turning", "gonna", "be",
                "going", "to", "probably", "maybe", "uh", "um"}
# After "I'm 42": words that leave the number an age ("I'm 42 and ...").
_AGE_OK_NEXT = {"and", "but", "so", "now", "next", "this", "soon", "already", "too",
                "though", "yeah", "yes", "actually", "myself", "as", "if", "when", "since",
                "which", "okay", "ok", "right", "well", "i", "you", "he", "she", "we",
                "they", "my", "your", "today", "tomorrow", "tonight", "yesterday", "going",
                "turning", "herself", "himself", "anyway"}
_AFTER_TURNED = {"in", "on", "last", "this", "yesterday"}
_AGE_UNITS = {"year", "years", "yrs", "yr", "month", "months", "week", "weeks"}
_PEOPLE = {
    "man", "woman", "male", "female", "boy", "girl", "son", "daughter", "kid", "child",
    "patient", "mother", "father", "guy", "lady", "person", "grandson", "granddaughter",
    "brother", "sister", "baby", "gentleman", "driver", "student", "twins", "nephew", "niece",
}  # fmt: skip
_YEAR_OLD_RE = re.compile(r"(\d{1,3})[- ]?(?:years?|yrs?|months?|weeks?)[- ]old")


def _age_number(toks: Sequence[Token], nums: Sequence[NumberWord | None], j: int) -> int:
    """Words used by a plausible age (1-120) at word ``j``; 0 when there is none."""
    n = len(toks)
    if j >= n:
        return 0
    num = nums[j]
    bare = toks[j].bare
    if num is None:
        return 1 if hyphenated(bare) > 0 else 0  # "twenty-two"
    if num.kind == NumberKind.GROUP:
        return 1 if bare.isdigit() and len(bare) <= 3 and 1 <= int(bare) <= 120 else 0
    if num.kind == NumberKind.TENS:
        nxt = nums[j + 1] if j + 1 < n else None
        if nxt is not None and nxt.kind == NumberKind.SPELLED and nxt.digits != "0":
            return 2
        return 1
    if num.kind == NumberKind.TEEN or (num.kind == NumberKind.SPELLED and num.digits != "0"):
        return 1
    return 0


def _years_old(bare: Sequence[str], k: int) -> int:
    """Words used by "years old" / "year old" / "years of age" / "months old" at ``k``."""
    n = len(bare)
    if k + 1 < n and bare[k] in _AGE_UNITS:
        if bare[k + 1] in {"old", "young"}:
            return 2
        if k + 2 < n and bare[k + 1] == "of" and bare[k + 2] == "age":
            return 3
    if k < n and bare[k] in {"year-old", "years-old", "month-old", "months-old"}:
        return 1
    return 0


def _subject_before(bare: Sequence[str], i: int) -> str | None:
    """What says the number at word ``i`` is someone's age: "pronoun" ("I'm", "she's"),
    "kin" ("my son is"), "age" ("aged", "at the age of"), "turn" ("turned"); else None."""
    j = i
    while j > 0 and i - j < 2 and bare[j - 1] in _AGE_ADVERBS:
        j -= 1
    for phrase in _AGE_WORDS:
        if j >= len(phrase) and tuple(bare[j - len(phrase) : j]) == phrase:
            return "age"
    for phrase in _PRONOUN_SUBJECTS:
        if j >= len(phrase) and tuple(bare[j - len(phrase) : j]) == phrase:
            return "pronoun"
    if j >= 1 and bare[j - 1] in _TURN_WORDS:
        return "turn"
    for phrase in _KIN_VERBS:
        k = j - len(phrase)
        if k >= 1 and tuple(bare[k:j]) == phrase and bare[k - 1] in _KIN:
            return "kin"
    if j >= 1 and bare[j - 1].endswith("'s") and bare[j - 1][:-2] in _KIN:
        return "kin"  # "my son's 7"
    return None


def age_spans(toks: Sequence[Token], nums: Sequence[NumberWord | None]) -> list[WordSpan]:
    """A person's age: "I'm 42", "I am forty two", "she's 73 years old", "aged 65",
    "age 30", "my son is 7", "a 42 year old man"; the number words are flagged.

    Not "I'm 5 minutes away", "I'm on 5th street", "30 years ago", "a 40 year
    mortgage", "the house is 30 years old".
    """
    n = len(toks)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    for i in range(n):
        if _YEAR_OLD_RE.fullmatch(bare[i]):  # "42-year-old"
            out.append(WordSpan(i, i + 1, PERSON_AGE, SCORE_CONTEXT))
            continue
        used = _age_number(toks, nums, i)
        if not used:
            continue
        if i and nums[i - 1] is not None:
            continue  # inside a longer number
        k = i + used
        subject = _subject_before(bare, i)
        old = _years_old(bare, k)
        if subject is None:
            # "a 42 year old man", "my 7 year old": not "a 40 year old house".
            after_old = bare[k + old] if old and k + old < n else ""
            owner = i > 0 and bare[i - 1] in _OWNERS - {"the"}
            if old and (after_old in _PEOPLE or owner):
                out.append(WordSpan(i, k, PERSON_AGE, SCORE_CONTEXT))
            continue
        if old:
            out.append(WordSpan(i, k, PERSON_AGE, SCORE_CONTEXT))
            continue
        nxt = bare[k] if k < n else None
        if subject == "age":
            if nxt is None or nxt not in QUANTITY_WORDS or nxt in _AGE_UNITS | {"or", "to"}:
                out.append(WordSpan(i, k, PERSON_AGE, SCORE_CONTEXT))
                out.extend(_listed_ages(toks, nums, k))
            continue
        ends = toks[k - 1].phrase_end
        if nxt is None and not ends:
            # Cut off by the window end: "I'm 5" may yet be "5 minutes away".
            if subject == "kin":
                out.append(WordSpan(i, k, PERSON_AGE, SCORE_WEAK))
            continue
        if not (ends or nxt in _AGE_OK_NEXT or (subject == "turn" and nxt in _AFTER_TURNED)):
            continue
        score = SCORE_CONTEXT if subject == "kin" else SCORE_SHAPE
        out.append(WordSpan(i, k, PERSON_AGE, score))
    return out


def _listed_ages(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], k: int
) -> list[WordSpan]:
    """More ages listed after one that ends at word ``k``: "ages 5 and 9", "7, 9 and 12"."""
    n = len(toks)
    out = []
    while k < n:
        m = k
        if toks[m].bare in {"and", "or", "&"}:
            m += 1
        elif not toks[k - 1].phrase_end:
            break
        used = _age_number(toks, nums, m)
        if not used:
            break
        out.append(WordSpan(m, m + used, PERSON_AGE, SCORE_CONTEXT))
        k = m + used
    return out
