"""Which digit runs are PII: phone, card, SSN and account numbers (also ZIP codes and
numeric dates of birth).

A run takes its entity from the trigger phrase before it ("my card number is ...")
or after it ("... is my PIN"); without one, only long runs count, by their shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import (
    ACCOUNT_NUMBER,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    LOCATION,
    PHONE_NUMBER,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    SCORE_WEAK,
    US_SSN,
)
from .numbers import DigitRun, NumberKind, NumberWord, digit_runs
from .text import Token, is_capital_letter
from .triggers import LOOKAHEAD, LOOKBACK, Trigger
from .vocabulary import QUANTITY_WORDS

# Emergency and service numbers: public, never personal.
_SERVICE_NUMBERS = {"911", "999", "112", "411", "311", "211", "511", "611", "711", "811"}
# A number right after one of these is a time or amount ("after 5", "in 20 minutes").
_TIME_PREPOSITIONS = {
    "after", "before", "until", "till", "til", "around", "about", "in", "for", "within",
    "by", "past", "than", "over", "under", "every", "since", "only", "just", "like",
}  # fmt: skip
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_CONTINUED = "continued"  # a run that goes on from the flagged one just before it


def digit_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    skip: set[int],
) -> list[WordSpan]:
    """PII among the digit runs outside ``skip``: by a trigger phrase near the run, or
    failing that by its shape (length, checksum)."""
    runs = digit_runs(toks, nums, skip)
    n = len(toks)
    in_run = [False] * n
    for run in runs:
        for j in range(run.first, run.last):
            in_run[j] = True
    out: list[WordSpan] = []
    for run in runs:
        count = len(run.digits)
        at_end = run.last == n
        written_enough = run.groups > 0 or run.spelled >= 4
        after = toks[run.last] if run.last < n else None
        quantity = after is not None and (
            after.bare in QUANTITY_WORDS or (after.raw[:1] == "%")
        )
        before = toks[run.first - 1].bare if run.first else ""
        ctx: str | None
        ctx, gap = _context_before(trig, run.first, in_run, toks)
        if ctx is None and count >= 3:
            ctx, gap = _context_after(trig, run.last, in_run, toks), 0
        if (
            ctx is None
            and out
            and out[-1].last + 1 == run.first
            and before not in _TIME_PREPOSITIONS | {"and", "or", "but", "then", "so"}
            and not toks[run.first - 1].sentence_end
        ):
            # "is 36 do 1421 5": one misheard word inside a number already flagged.
            ctx, gap = _CONTINUED, 0

        entity: str | None = None
        score = SCORE_CONTEXT
        # "7 7 7 7 7 2 3 1" with nothing asking for a number: the ASR looping.
        if ctx is None and _repeats(toks, run) >= 5:
            continue
        if ctx is not None:
            single = run.last - run.first == 1
            ending_in = run.first >= 2 and toks[run.first - 2].bare in {"ending", "ends", "ended"}
            looks_like_time = ctx != Trigger.DOB and not ending_in and (
                (before in _TIME_PREPOSITIONS | _WEEKDAYS and count <= 4)
                or (before == "at" and single and count <= 2 and int(run.digits) <= 12)
            )
            if count < 7 and (quantity or looks_like_time):
                entity = None
            elif ctx == _CONTINUED:
                entity, score = out[-1].entity, out[-1].score
            elif count >= 7 or (count >= 3 and gap <= (3 if ctx == Trigger.DOB else 1)):
                entity = _entity_for(ctx, run.digits)
            elif gap == 0 and (run.groups or run.spelled >= 2):
                # "my number is 880" (the rest still to come), "number is 1 3 here".
                entity = _entity_for(ctx, run.digits)
                score = SCORE_WEAK
        elif at_end and count == 6 and run.groups >= 2 and not quantity:
            # Probably the start of a long number whose trigger the ASR misheard
            # ("my home is 759-595"): mask now, the rest arrives in a moment.
            if not _is_year_list(nums, run) and not run.thousands:
                entity, score = PHONE_NUMBER, SCORE_WEAK
        elif count >= 7 and written_enough and not quantity:
            single = run.last - run.first == 1
            if (single and (run.thousands or run.decimal)) or _is_year_list(nums, run):
                continue
            if count in (10, 11):
                entity, score = PHONE_NUMBER, SCORE_SHAPE
            elif 13 <= count <= 19 and luhn_ok(run.digits):
                entity, score = CREDIT_CARD, SCORE_SHAPE
            else:
                entity, score = ACCOUNT_NUMBER, SCORE_WEAK + 0.05
        if entity is not None and run.digits not in _SERVICE_NUMBERS:
            first = run.first
            if ctx is not None:  # "member ID is W 1 2 3 4": spoken letters of the ID
                while first > 0 and run.first - first < 3 and is_capital_letter(toks[first - 1]):
                    first -= 1
            if first > 0 and toks[first - 1].bare == "plus":  # "plus 1 646 555 0115"
                first -= 1
            out.append(WordSpan(first, run.last, entity, score))
    return out


def _is_year_list(nums: Sequence[NumberWord | None], run: DigitRun) -> bool:
    """ "2019, 2020": years listed, not an identifier."""
    years = [g for g in nums[run.first : run.last] if g is not None and g.kind == NumberKind.GROUP]
    return bool(years) and all(
        len(g.digits) == 4 and 1900 <= int(g.digits) <= 2099 for g in years
    )


def _repeats(toks: Sequence[Token], run: DigitRun) -> int:
    """The longest streak of one word repeated inside ``run``."""
    best = streak = 0
    prev = None
    for j in range(run.first, run.last):
        word = toks[j].bare
        streak = streak + 1 if word == prev else 1
        best = max(best, streak)
        prev = word
    return best


def _entity_for(ctx: str, digits: str) -> str:
    count = len(digits)
    if ctx == Trigger.SSN:
        return US_SSN
    if ctx == Trigger.CARD:
        return CREDIT_CARD
    if ctx == Trigger.ACCOUNT:
        return ACCOUNT_NUMBER
    if ctx == Trigger.DOB:
        return DATE_OF_BIRTH
    if ctx in {Trigger.ZIP, Trigger.ADDRESS}:
        return LOCATION
    if 13 <= count <= 19 and (ctx == Trigger.GENERIC or luhn_ok(digits)):
        return CREDIT_CARD
    return PHONE_NUMBER


# How far a trigger phrase reaches a run, before it or after it.
_SPECIFIC_BEFORE_GENERIC = 2  # "social security number", "card number": look this far
# Words that may stand between a trigger and its number.
_CONNECTORS = {
    "is", "was", "are", "were", "it's", "its", "it", "at", "me", "us", "on", "my", "the",
    "of", "for", "this", "that", "that's", "your", "our", "a", "an", "to", "be", "will",
    "would", "should", "uh", "um", "er", "so", "just", "number", "numbers", "please", "and",
    "here", "you", "i", "can", "reach", "call", "dial", "ending", "in", "as", "with", "by",
    "from", "also", "sure", "yes", "yeah", "okay", "ok", "right", "", "i'm", "goes",
}  # fmt: skip


def _context_before(
    trig: Sequence[Trigger | None], start: int, blocked: Sequence[bool], toks: Sequence[Token]
) -> tuple[Trigger | None, int]:
    """The trigger reaching word ``start`` from the left, and how many words between
    them are not mere connectors ("my number is 880": none; "the card game had 52": 2).

    The nearest trigger wins, except that a generic "number" takes the category of a
    specific word just before it ("social security number", "card number").
    """
    j = start - 1
    while j >= 0 and start - j <= LOOKBACK:
        if blocked[j]:
            break
        if j < start - 1 and toks[j].sentence_end and not toks[j].raw.endswith("?"):
            break  # a question's trigger reaches into the answer
        cat = trig[j]
        if cat is not None and cat != Trigger.EMAIL:
            gap = sum(toks[m].bare not in _CONNECTORS for m in range(j + 1, start))
            if cat == Trigger.GENERIC:
                for k in range(j - 1, max(-1, j - 1 - _SPECIFIC_BEFORE_GENERIC), -1):
                    if trig[k] not in {None, Trigger.GENERIC, Trigger.EMAIL}:
                        return trig[k], gap
            return cat, gap
        j -= 1
    return None, 0


_AFTER_CONNECTORS = {"is", "was", "that's", "thats", "are", "as", "my", "the", "your",
                     "that", "it's", "its", "for", "our", "his", "her", "their"}
_AFTER_CATEGORIES = {
    Trigger.SSN, Trigger.CARD, Trigger.ACCOUNT, Trigger.PHONE, Trigger.DOB, Trigger.GENERIC
}  # fmt: skip


def _context_after(
    trig: Sequence[Trigger | None], end: int, blocked: Sequence[bool], toks: Sequence[Token]
) -> Trigger | None:
    """A trigger right after ``end``, through connectors ("4421 is my PIN")."""
    for j in range(end, min(len(trig), end + LOOKAHEAD)):
        if blocked[j]:
            return None
        cat = trig[j]
        if cat in _AFTER_CATEGORIES:
            return cat
        if toks[j].bare not in _AFTER_CONNECTORS or toks[j].sentence_end:
            return None
    return None


def luhn_ok(digits: str) -> bool:
    """The card-number checksum (ISO/IEC 7812)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
