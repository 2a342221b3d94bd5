"""Which digit runs are PII: phone, card, SSN and account numbers, and the digit forms
of the identifiers in ``identifiers`` (card expiry and CVV, routing and sort codes,
licence, passport, tax, health numbers, PINs); also ZIP codes and numeric dates of
birth, and any other run of 4+ digits (NUMBER_SEQUENCE).

A run takes its entity from the trigger phrase before it ("my card number is ...")
or after it ("... is my PIN"); without one, only long runs count, by their shape,
and a shorter run that reads as no quantity, time, year, price or model number is a
NUMBER_SEQUENCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from streamserver.core.types import WordSpan

from .entities import (
    ACCOUNT_NUMBER,
    BANKING_INFORMATION,
    CREDIT_CARD,
    CREDIT_CARD_CVV,
    CREDIT_CARD_EXPIRATION,
    DATE_OF_BIRTH,
    DRIVERS_LICENSE,
    HEALTHCARE_NUMBER,
    LOCATION,
    NUMBER_SEQUENCE,
    PASSPORT_NUMBER,
    PASSWORD,
    PHONE_NUMBER,
    PIN,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    SCORE_WEAK,
    TAX_ID,
    US_SSN,
    USERNAME,
    VEHICLE_ID,
)
from .numbers import DigitRun, NumberKind, NumberWord, digit_runs
from .text import EDGE_PUNCTUATION, Token, ends_statement, is_capital_letter
from .triggers import LOOKAHEAD, LOOKBACK, NON_HEALTH_INSURANCE, Trigger
from .vocabulary import QUANTITY_WORDS, STOP_WORDS

# Emergency and service numbers: public, never personal.
_SERVICE_NUMBERS = {"911", "999", "112", "411", "311", "211", "511", "611", "711", "811"}
# A number right after one of these is a time or amount ("after 5", "in 20 minutes").
_TIME_PREPOSITIONS = {
    "after", "before", "until", "till", "til", "around", "about", "in", "for", "within",
    "by", "past", "than", "over", "under", "every", "since", "only", "just", "like",
}  # fmt: skip
# "ending in 4321", "it ends in 3 5 7 7": the last digits of a card, account or
# phone number, never a time ("in 20 minutes").
_ENDING = {"ending", "ends", "ended"}
_PLACE_PREPOSITIONS = {"to", "on", "from", "near", "into", "onto", "toward", "towards", "of"}
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
# After a number, besides QUANTITY_WORDS: it is a length ("8 characters", "4 digits").
_COUNTED = {"characters", "character", "chars", "letters", "digit", "digits"}
_CONTINUED = "continued"  # a run that goes on from the flagged one just before it
# Words anywhere in the window that make "member" / "policy" numbers health numbers.
HEALTH_WORDS = {
    "medical", "medicare", "medicaid", "nhs", "patient", "patients", "patient's", "chart",
    "health", "healthcare", "hospital", "clinic", "doctor", "doctor's", "physician",
    "dental", "dentist", "pharmacy", "prescription", "prescriptions", "insurance", "insurer",
    "hmo", "ppo", "aetna", "cigna", "humana", "kaiser", "anthem", "unitedhealthcare",
    "bluecross", "copay", "deductible", "mrn", "surgery", "appointment", "diagnosis",
}  # fmt: skip
# Before a run without a trigger: it is a model, version, flight, page, score or price.
_NOT_SEQUENCE_BEFORE = {
    "version", "v", "ver", "model", "flight", "route", "highway", "interstate", "chapter",
    "page", "pages", "room", "channel", "gate", "platform", "track", "episode", "season",
    "volume", "vol", "issue", "level", "floor", "exit", "bus", "train", "line", "windows",
    "iphone", "ios", "android", "galaxy", "pixel", "boeing", "airbus", "xbox", "playstation",
    "office", "series", "generation", "gen", "mark", "mk", "class", "type", "size", "rev",
    "revision", "build", "release", "patch", "update", "firmware", "verse", "section",
    "article", "clause", "rule", "part", "step", "question", "lesson", "grade", "year",
    "years", "score", "scored", "scores", "won", "lost", "beat", "tied", "final", "rated",
    "ranked", "cost", "costs", "price", "priced", "paid", "pay", "charged", "charge", "fee",
    "total", "balance", "amount", "spent", "owe", "owed", "worth", "saved", "sold", "bought",
    "shipped", "employs", "population", "nearly", "almost", "approximately", "roughly",
    "approx", "another", "extra", "additional", "least", "most", "up", "down", "than",
    "temperature", "degrees", "mph", "speed", "weighs", "weight", "height", "tall", "top",
    "rank", "number", "no", "odds", "ratio", "ranking", "vs", "versus", "against",
}  # fmt: skip
# Other things that expire: an expiry near them is no card's.
_OTHER_EXPIRING = {Trigger.LICENSE, Trigger.PASSPORT, Trigger.TAX, Trigger.HEALTH,
                   Trigger.MEMBER, Trigger.VEHICLE}
_OTHER_EXPIRING_WORDS = {
    "license", "licence", "passport", "subscription", "membership", "warranty", "trial",
    "lease", "contract", "offer", "coupon", "voucher", "registration", "insurance", "policy",
    "domain", "certificate", "permit", "prescription", "milk", "food", "medication", "tags",
    "id", "visa's", "plan", "promotion", "promo", "deal", "password", "link", "quote",
}  # fmt: skip
# ITIN middle digits (the fourth and fifth): 50-65, 70-88, 90-92, 94-99.
_ITIN_GROUPS = frozenset(
    [*range(50, 66), *range(70, 89), *range(90, 93), *range(94, 100)]
)


def digit_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    skip: set[int],
) -> list[WordSpan]:
    """PII among the digit runs outside ``skip``: by a trigger phrase near the run, or
    failing that by its shape (length, checksum)."""
    runs = _join_over_fillers(toks, digit_runs(toks, nums, skip))
    n = len(toks)
    starts = {run.first for run in runs}
    in_run = [False] * n
    for run in runs:
        for j in range(run.first, run.last):
            in_run[j] = True
    out: list[WordSpan] = []
    out_digits: list[int] = []  # how many digits each span of ``out`` holds
    sequences: list[WordSpan] = []
    win = window_context(toks, trig, runs)
    for run in runs:
        count = len(run.digits)
        at_end = run.last == n
        after = toks[run.last] if run.last < n else None
        # (A word after the number's sentence has ended counts nothing: "51-36. Or
        # …" is a number, then a new sentence.)
        quantity = after is not None and not toks[run.last - 1].sentence_end and (
            after.bare in QUANTITY_WORDS or after.bare in _COUNTED or (after.raw[:1] == "%")
        )
        before = toks[run.first - 1].bare if run.first else ""
        ctx: str | None
        ctx, gap = context_before(trig, run.first, in_run, toks)
        if ctx is None and count >= 3:
            ctx, gap = context_after(trig, run.last, in_run, toks), 0
        if ctx is None and out and _continues_phone(toks, out[-1], out_digits[-1], run, at_end):
            # "area code 503, then 555 01 88": the rest of a number begun just before.
            prev = out.pop()
            total = out_digits.pop() + count
            out.append(WordSpan(prev.first, run.last, PHONE_NUMBER, prev.score))
            out_digits.append(total)
            continue
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
        if ctx is not None:
            single = run.last - run.first == 1
            ending_in = _after_ending(toks, run.first)
            looks_like_time = ctx != Trigger.DOB and not ending_in and (
                (before in _TIME_PREPOSITIONS | _WEEKDAYS and count <= 4)
                or (before == "at" and single and count <= 2 and int(run.digits) <= 12)
            )
            if count < 7 and (quantity or looks_like_time):
                entity = None
            elif ctx == _CONTINUED:
                entity, score = out[-1].entity, out[-1].score
            elif count >= 7 or (count >= 3 and gap <= (3 if ctx == Trigger.DOB else 1)):
                entity, score = _entity_for(ctx, run.digits, at_end, win)
            elif gap == 0 and (run.groups or run.spelled >= 2):
                # "my number is 880" (the rest still to come), "number is 1 3 here".
                entity, _ = _entity_for(ctx, run.digits, True, win)
                score = SCORE_WEAK
            else:
                # The trigger is too far to claim the run ("the last four of my social,
                # let me check, 9 8 1 7"; "my number is a free year 5, 5, 0, 1, 7, 5"): the
                # run is still what it is without one. A cue never makes a number less
                # likely to be masked.
                entity, score = _by_shape(toks, nums, trig, run, at_end, quantity)
            if entity == PHONE_NUMBER and ctx == Trigger.GENERIC:
                if count == 9 and _ssn_shape(toks, nums, run):
                    entity = US_SSN  # "my number is 518-26-4409": grouped 3-2-4
                elif count < 7 and before in _NUMBER_WORDS and not _open_end(
                    toks, run, starts
                ):
                    # "number 4 in the queue", "the number 42 bus", "Grand Street,
                    # number 5.": a complete short run right after "number" is a rank,
                    # a route or a unit; a phone number has 7 digits or more.
                    entity = None
        else:
            entity, score = _by_shape(toks, nums, trig, run, at_end, quantity)
        if entity == NUMBER_SEQUENCE:
            sequences.append(WordSpan(run.first, run.last, NUMBER_SEQUENCE, score))
        elif entity is not None and run.digits not in _SERVICE_NUMBERS:
            first = run.first
            if ctx is not None:  # "member ID is W 1 2 3 4": spoken letters of the ID
                while (
                    first > 0
                    and run.first - first < 3
                    and is_capital_letter(toks[first - 1])
                    and trig[first - 1] is None  # not the cue: "C V V 314"
                ):
                    first -= 1
            if first > 0 and toks[first - 1].bare == "plus":  # "plus 1 646 555 0115"
                first -= 1
            if entity == PHONE_NUMBER and out and _extension_of(toks, out[-1], first):
                # "312-555-0167, extension 204": one number, the cue inside it.
                first = out.pop().first
                count += out_digits.pop()
            out.append(WordSpan(first, run.last, entity, score))
            out_digits.append(count)
    return out + sequences


def _by_shape(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    run: DigitRun,
    at_end: bool,
    quantity: bool,
) -> tuple[str | None, float]:
    """(entity, score) of a digit run that no trigger claims, by its shape alone:
    length, grouping, checksum; ``NUMBER_SEQUENCE`` for any other digit sequence."""
    count = len(run.digits)
    written_enough = run.groups > 0 or run.spelled >= 4
    if quantity:
        return None, 0.0
    # "7 7 7 7 7 2 3 1" with nothing asking for a number: the ASR looping.
    if _only_a_loop(toks, run, 5) and not _card_like(toks, run):
        return None, 0.0
    if at_end and count == 6 and run.groups >= 2:
        # Probably the start of a long number whose trigger the ASR misheard
        # ("my home is 759-595"): mask now, the rest arrives in a moment.
        if not _is_year_list(nums, run) and not run.thousands and not _in_code(toks, run):
            return PHONE_NUMBER, SCORE_WEAK
        return None, 0.0
    if count >= 7 and written_enough:
        single = run.last - run.first == 1
        if (single and (run.thousands or run.decimal)) or _is_year_list(nums, run):
            return None, 0.0
        if _in_code(toks, run, letters=False) or (single and _ipv4(toks[run.first])):
            return None, 0.0  # "GB29 NWBK 6016 1331 9268 19": an IBAN's; "10.0.0.1" (web.py)
        if _international(toks, run) and 8 <= count <= 15:
            return PHONE_NUMBER, SCORE_SHAPE  # "plus 44 20 7946 0958"
        if count in (10, 11):
            return PHONE_NUMBER, SCORE_SHAPE
        if 13 <= count <= 19 and luhn_ok(run.digits):
            return CREDIT_CARD, SCORE_SHAPE
        if _tax_id_shape(toks, run):
            return TAX_ID, SCORE_SHAPE
        if count == 9 and _ssn_shape(toks, nums, run):
            return US_SSN, SCORE_SHAPE  # "five one eight, two six, 4409"
        return ACCOUNT_NUMBER, SCORE_WEAK + 0.05
    if count >= 4 and written_enough and _other_sequence(toks, nums, trig, run):
        return NUMBER_SEQUENCE, SCORE_WEAK
    return None, 0.0


# Hesitations said inside a number: "4147 2003, um, 1122 8896" is one number.
_FILLERS = {"um", "uh", "er", "erm", "ah", "uhm", "umm", "hmm", "mm"}
# Between the parts of one phone number: "area code 503, then 555 01 88".
_PHONE_JOINERS = _FILLERS | {"then", "and", "dash"}
# The cue word itself right before a short run: "number 4", "# 12".
_NUMBER_WORDS = {"number", "numbers", "#", "num"}


def _join_over_fillers(toks: Sequence[Token], runs: list[DigitRun]) -> list[DigitRun]:
    """Runs split only by a hesitation ("214-555-01, um, 64") joined into one."""
    out: list[DigitRun] = []
    for run in runs:
        if out:
            prev = out[-1]
            between = range(prev.last, run.first)
            if (
                1 <= len(between) <= 2
                and not toks[prev.last - 1].sentence_end
                and all(toks[j].bare in _FILLERS and not toks[j].sentence_end for j in between)
            ):
                out[-1] = DigitRun(
                    prev.first, run.last, prev.digits + run.digits, prev.groups + run.groups,
                    prev.spelled + run.spelled, prev.thousands or run.thousands,
                    prev.decimal or run.decimal,
                )
                continue
        out.append(run)
    return out


def _continues_phone(
    toks: Sequence[Token], prev: WordSpan, prev_digits: int, run: DigitRun, at_end: bool
) -> bool:
    """Whether ``run`` is the rest of the short phone number ``prev`` flagged just before
    it ("area code 503, then 555 01 88"): together they make 7, 10 or 11 digits (fewer
    while the window may still grow)."""
    if prev.entity != PHONE_NUMBER or prev_digits >= 7:
        return False
    between = range(prev.last, run.first)
    if not 1 <= len(between) <= 2 or toks[prev.last - 1].sentence_end:
        return False
    if any(toks[j].bare not in _PHONE_JOINERS or toks[j].sentence_end for j in between):
        return False
    total = prev_digits + len(run.digits)
    return total in (7, 10, 11) or (at_end and total < 11)


_EXTENSION_WORDS = {"extension", "ext", "x", "and", "at", "is", "the"}


def _extension_of(toks: Sequence[Token], prev: WordSpan, first: int) -> bool:
    """Whether the words between the phone number ``prev`` and a run starting at
    ``first`` say "extension" ("..., extension 204", "ext. 12")."""
    between = range(prev.last, first)
    return (
        prev.entity == PHONE_NUMBER
        and 1 <= len(between) <= 3
        and any(toks[j].bare in {"extension", "ext"} for j in between)
        and all(toks[j].bare in _EXTENSION_WORDS for j in between)
        and not any(toks[j].sentence_end for j in range(prev.last - 1, first - 1))
    )


def _open_end(toks: Sequence[Token], run: DigitRun, starts: set[int]) -> bool:
    """Whether more of the number may follow ``run``: the window ends right after it
    (fillers aside), or another run starts a word or two later ("503, then 555")."""
    n = len(toks)
    if toks[run.last - 1].sentence_end:
        return False
    j = run.last
    while j < n and j - run.last < 2 and toks[j].bare in _PHONE_JOINERS:
        if toks[j].sentence_end:
            return False
        j += 1
    return j == n or j in starts


def _card_like(toks: Sequence[Token], run: DigitRun) -> bool:
    """A card number that repeats a group ("41 11 11 11 11 11 11 11"): Luhn-valid,
    13-19 digits, and not one word said over and over."""
    return (
        13 <= len(run.digits) <= 19
        and luhn_ok(run.digits)
        and toks[run.first].bare != toks[run.last - 1].bare
    )


def _international(toks: Sequence[Token], run: DigitRun) -> bool:
    """ "plus 44 20 7946 0958", "+44 20 ...": a number with a country code."""
    if run.first and toks[run.first - 1].bare == "plus":
        return True
    return toks[run.first].raw.lstrip("(").startswith("+")


def digit_groups(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], run: DigitRun
) -> list[int]:
    """How the digits of ``run`` were grouped when said: a pause (comma), a dash or a
    filler ends a group, and a written group of 2+ digits is one ("518 26 4409",
    "123-45-6789", "five one eight, two six, four four oh nine" all give [3, 2, 4])."""
    groups: list[int] = []
    cur = 0
    j = run.first
    while j < run.last:
        num = nums[j]
        tok = toks[j]
        if num is None or num.kind == NumberKind.SEP:
            if cur:
                groups.append(cur)
            cur = 0
            j += 1
            continue
        kind = num.kind
        step = 1
        if kind == NumberKind.GROUP:
            if tok.raw[:1] in "-–" and cur:
                groups.append(cur)
                cur = 0
            parts = "".join(ch if ch.isdigit() else " " for ch in tok.raw).split()
            if len(num.digits) == 1:
                cur += 1
            else:
                if cur:
                    groups.append(cur)
                groups.extend(len(part) for part in parts)
                cur = 0
        elif kind == NumberKind.REPEAT:
            nxt = nums[j + 1] if j + 1 < run.last else None
            cur += (3 if tok.bare == "triple" else 2) * (len(nxt.digits) if nxt else 0)
            step = 2
        elif kind == NumberKind.TENS:
            nxt = nums[j + 1] if j + 1 < run.last else None
            if nxt is not None and nxt.kind == NumberKind.SPELLED and nxt.digits != "0":
                step = 2
            cur += 2
        else:
            cur += len(num.digits)
        j += step
        if toks[j - 1].phrase_end and cur:
            groups.append(cur)
            cur = 0
    if cur:
        groups.append(cur)
    return groups if sum(groups) == len(run.digits) else []


def _ssn_shape(toks: Sequence[Token], nums: Sequence[NumberWord | None], run: DigitRun) -> bool:
    """Nine digits said 3-2-4 with a valid area, group and serial (not 000, 666 or 9xx;
    not 00; not 0000)."""
    d = run.digits
    if len(d) != 9 or digit_groups(toks, nums, run) != [3, 2, 4]:
        return False
    area = int(d[:3])
    return 0 < area < 900 and area != 666 and d[3:5] != "00" and d[5:] != "0000"


@dataclass(frozen=True, slots=True)
class Window:
    """What the whole window talks about (for labels that depend on it)."""

    card: bool  # a payment card: a card word, a CVV cue or a card number
    health: bool  # medical or health-insurance talk
    other_expiry: bool  # something else that expires: a licence, passport, subscription


def window_context(
    toks: Sequence[Token], trig: Sequence[Trigger | None], runs: Sequence[DigitRun]
) -> Window:
    card = Trigger.CARD in trig or Trigger.CVV in trig or any(
        13 <= len(run.digits) <= 19 and luhn_ok(run.digits) for run in runs
    )
    other = any(cat in _OTHER_EXPIRING for cat in trig) or any(
        tok.bare in _OTHER_EXPIRING_WORDS for tok in toks
    )
    return Window(card, has_health_context(toks), other)


def has_health_context(toks: Sequence[Token]) -> bool:
    """Medical or health-insurance talk somewhere in the window ("my insurance card",
    "Medicare", "the patient", "Blue Cross"); car, home or life insurance is not."""
    for j, tok in enumerate(toks):
        if tok.bare == "blue" and j + 1 < len(toks) and toks[j + 1].bare in {"cross", "shield"}:
            return True
        if tok.bare in HEALTH_WORDS:
            if tok.bare in {"insurance", "insurer"} and j and toks[j - 1].bare in (
                NON_HEALTH_INSURANCE
            ):
                continue
            return True
    return False


def _after_ending(toks: Sequence[Token], first: int) -> bool:
    """Whether the run at ``first`` follows "ending / ends / ended" and one word
    ("ending in 4321"): the last digits of something, no time."""
    return first >= 2 and toks[first - 2].bare in _ENDING


def _other_sequence(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    run: DigitRun,
) -> bool:
    """Whether a run of 4+ digits with no trigger near it is some other digit sequence:
    not a year, time, price, score, model/version/flight number, counting ("one two
    three four"), the digits of an alphanumeric code, or a service number."""
    digits = run.digits
    if digits in _SERVICE_NUMBERS or _only_a_loop(toks, run, 4):
        return False
    words = [nums[j] for j in range(run.first, run.last)]
    if any(w is not None and w.kind == NumberKind.SCALE for w in words):
        return False  # "two thousand", "fifteen hundred": a quantity
    groups = [j for j, w in enumerate(words, run.first) if w and w.kind == NumberKind.GROUP]
    if any(ch in toks[j].raw.strip(EDGE_PUNCTUATION) for j in groups for ch in "./"):
        return False  # "10.4.1", "3.14159", "09/27"
    if run.thousands or run.decimal or _is_year_list(nums, run):
        return False
    if run.last - run.first == 1:
        core = toks[run.first].raw.strip(EDGE_PUNCTUATION)
        if not core.isdigit():
            return False  # "1080p", "AB1234": a code with letters is for the cue rules
        if len(digits) == 4 and 1900 <= int(digits) <= 2099:
            return False  # a year
        if digits.endswith("00") and digits[0] != "0":
            return False  # "1500", "34500": a round number is an amount
        noun = toks[run.last].bare if run.last < len(toks) else ""
        if len(noun) > 3 and noun.endswith("s") and noun.isalpha() and noun not in STOP_WORDS:
            return False  # "1537 customers"
    steps = {int(b) - int(a) for a, b in pairwise(digits)}
    if steps in ({1}, {-1}):
        return False  # counting: "one two three four", "5 4 3 2 1"
    if run.first:
        prev = toks[run.first - 1]
        ending_in = prev.bare in {"in", "with"} and _after_ending(toks, run.first)
        if (prev.bare in _TIME_PREPOSITIONS | _WEEKDAYS | {"at"} and len(digits) <= 4
                and not ending_in):
            return False  # "at 10 45", "Tuesday 1030"
        if prev.bare in _PLACE_PREPOSITIONS:
            return False  # "moved to 6015 Sunset...", "up to 4500": a house number, an amount
        if is_capital_letter(prev) or (prev.title and prev.bare not in STOP_WORDS):
            return False  # "Boeing 737", "UA 1234", "W 1 2 3 4" (an id's letters)
    for j in range(max(0, run.first - 3), run.first):
        if toks[j].bare in _NOT_SEQUENCE_BEFORE:
            return False
    if run.last < len(toks):
        after = toks[run.last]
        # (After a sentence's end a capital is the next sentence: "41 3 5. Perfect.")
        if (after.title and after.bare not in STOP_WORDS
                and not toks[run.last - 1].sentence_end):
            return False  # "6015 Sunset Ridge Drive", "1204 Main"
        if any(cat in {Trigger.ZIP, Trigger.ADDRESS} for cat in trig[run.last : run.last + 2]):
            return False  # "the 60614 zip code"
    return not _in_code(toks, run)


def _ipv4(tok: Token) -> bool:
    """ "192.168.0.1": an IP address (web.py), no account number."""
    parts = tok.raw.strip(EDGE_PUNCTUATION).split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)


def _in_code(toks: Sequence[Token], run: DigitRun, letters: bool = True) -> bool:
    """Whether the run is the digits of a code with letters: next to a word mixing
    letters and digits ("GB29"), a short word in capitals ("NWBK") or, with
    ``letters``, a spelled capital ("8 2 6 3 3 A 0 0")."""
    for j in (run.first - 1, run.last):
        if 0 <= j < len(toks):
            tok = toks[j]
            core = tok.raw.strip(EDGE_PUNCTUATION)
            if len(core) == 1:
                if letters and is_capital_letter(tok):
                    return True
            elif core.isalnum() and not core.isdigit() and (
                not core.isalpha() or (core.isupper() and tok.bare not in STOP_WORDS)
            ):
                return True
    return False


def _tax_id_shape(toks: Sequence[Token], run: DigitRun) -> bool:
    """An ITIN (9xx-7x-xxxx) or a written EIN (12-3456789), with no cue."""
    digits = run.digits
    if len(digits) != 9:
        return False
    if digits[0] == "9" and int(digits[3:5]) in _ITIN_GROUPS:
        return True
    core = "".join(toks[j].raw.strip(EDGE_PUNCTUATION) for j in range(run.first, run.last))
    return len(core) == 10 and core[2] == "-" and core.replace("-", "").isdigit()


def _is_year_list(nums: Sequence[NumberWord | None], run: DigitRun) -> bool:
    """ "2019, 2020": years listed, not an identifier."""
    years = [g for g in nums[run.first : run.last] if g is not None and g.kind == NumberKind.GROUP]
    return bool(years) and all(
        len(g.digits) == 4 and 1900 <= int(g.digits) <= 2099 for g in years
    )


def _only_a_loop(toks: Sequence[Token], run: DigitRun, streak: int) -> bool:
    """Whether ``run`` is the ASR looping on one word (``streak`` times or more) with
    fewer than 4 digits besides the loop: "7 7 7 7 7 2 3 1". A number that runs
    into a loop is still a number: "6,5,000,1,5,5,5,5,5,5,5,5" (a phone line's
    address number, the decoder looping on its last digit)."""
    best = length = 0
    best_end = run.first
    prev = None
    for j in range(run.first, run.last):
        word = toks[j].bare
        length = length + 1 if word == prev else 1
        if length > best:
            best, best_end = length, j + 1
        prev = word
    if best < streak:
        return False
    besides = [toks[j].raw for j in (*range(run.first, best_end - best),
                                     *range(best_end, run.last))]
    return sum(c.isdigit() for raw in besides for c in raw) < 4


def _entity_for(ctx: str, digits: str, partial: bool, win: Window) -> tuple[str | None, float]:
    """The entity of ``digits`` after (or before) a trigger of category ``ctx``, and the
    score; ``None`` for a run the trigger claims but that is no PII (an expiry date of
    a passport). ``partial``: more digits may still come."""
    count = len(digits)
    entity = _SIMPLE_ENTITIES.get(ctx)
    if entity is not None:
        return entity, SCORE_CONTEXT
    if ctx == Trigger.ZIP:  # claimed here (no phone), labelled ZIP_CODE by addresses.py
        return None, SCORE_CONTEXT
    if ctx == Trigger.CVV:
        return (CREDIT_CARD_CVV if count <= 4 else CREDIT_CARD), SCORE_CONTEXT
    if ctx == Trigger.CODE:  # "the code is 7 3 2" about a card
        return (CREDIT_CARD_CVV if win.card and count <= 4 else ACCOUNT_NUMBER), SCORE_CONTEXT
    if ctx == Trigger.EXPIRY:
        if count >= 7:  # "4242 4242 4242 4242, expires 09/27": the card's number
            return CREDIT_CARD, SCORE_CONTEXT
        if not expiry_ok(digits, partial):
            return None, SCORE_CONTEXT
        if win.card:
            return CREDIT_CARD_EXPIRATION, SCORE_CONTEXT
        # "It expires oh nine twenty seven": a card's, unless the talk is of a licence,
        # a passport, a subscription...
        return (None if win.other_expiry else CREDIT_CARD_EXPIRATION), SCORE_SHAPE
    if ctx == Trigger.BANK:
        if count == 9 and not aba_ok(digits):  # a routing number heard wrong
            return BANKING_INFORMATION, SCORE_WEAK
        return BANKING_INFORMATION, SCORE_CONTEXT
    if ctx == Trigger.MEMBER:
        return (HEALTHCARE_NUMBER if win.health else ACCOUNT_NUMBER), SCORE_CONTEXT
    if ctx == Trigger.PIN:
        return (PIN if count <= 8 else ACCOUNT_NUMBER), SCORE_CONTEXT
    if ctx == Trigger.SEQUENCE:
        return NUMBER_SEQUENCE, SCORE_WEAK
    if ctx == Trigger.MODEL:
        return None, SCORE_CONTEXT  # "model number X 1 2 3 4": no personal data
    if 13 <= count <= 19 and (ctx == Trigger.GENERIC or luhn_ok(digits)):
        return CREDIT_CARD, SCORE_CONTEXT
    return PHONE_NUMBER, SCORE_CONTEXT


_SIMPLE_ENTITIES: dict[str, str] = {
    Trigger.SSN: US_SSN,
    Trigger.CARD: CREDIT_CARD,
    Trigger.ACCOUNT: ACCOUNT_NUMBER,
    Trigger.DOB: DATE_OF_BIRTH,
    Trigger.ADDRESS: LOCATION,
    Trigger.LICENSE: DRIVERS_LICENSE,
    Trigger.PASSPORT: PASSPORT_NUMBER,
    Trigger.TAX: TAX_ID,
    Trigger.HEALTH: HEALTHCARE_NUMBER,
    Trigger.PASSWORD: PASSWORD,
    Trigger.USERNAME: USERNAME,
    Trigger.VEHICLE: VEHICLE_ID,
}


def expiry_ok(digits: str, partial: bool = False) -> bool:
    """A card expiry: M YY, MM YY, M YYYY or MM YYYY (20xx); with ``partial``, also
    the start of one ("0 9", "1 2 2")."""
    count = len(digits)
    month2 = count >= 2 and 1 <= int(digits[:2]) <= 12
    if count == 3 and digits[0] != "0":
        return True  # 9 27
    if count == 4 and month2:
        return True  # 09 27
    if count == 5 and digits[0] != "0" and digits[1:3] == "20":
        return True  # 9 2027
    if count == 6 and month2 and digits[2:4] == "20":
        return True  # 09 2027
    if not partial or count >= 6:
        return False
    if count <= 2:
        return digits != "00"
    if count == 3:
        return month2  # 09 2...
    if count == 4:
        return digits[0] != "0" and digits[1:3] == "20"  # 9 202...
    return month2 and digits[2:4] == "20"  # 09 202...


def aba_ok(digits: str) -> bool:
    """The ABA routing-number checksum: 3(d1+d4+d7) + 7(d2+d5+d8) + (d3+d6+d9) = 0 mod 10."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    d = [int(c) for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


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


def context_before(
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
        if j < start - 1 and ends_statement(toks[j]):
            break  # a question's trigger reaches into the answer
        cat = trig[j]
        if cat is not None and cat != Trigger.EMAIL:
            gap = sum(toks[m].bare not in _CONNECTORS for m in range(j + 1, start))
            if cat == Trigger.GENERIC or (cat == Trigger.ACCOUNT and toks[j].bare in _ID_WORDS):
                # "social security number", "Medicaid ID": the word before says which
                for k in range(j - 1, max(-1, j - 1 - _SPECIFIC_BEFORE_GENERIC), -1):
                    if trig[k] not in {None, Trigger.GENERIC, Trigger.EMAIL}:
                        return trig[k], gap
            if cat in _HOLDERS:
                # "the expiry on the card is", "the social on the account should be"
                detail = _detail_before(trig, toks, j)
                if detail is not None:
                    return detail, gap
            return cat, gap
        j -= 1
    return None, 0


_ID_WORDS = {"id", "identification"}
# Triggers that name what holds a number, not the number: "the PIN on the card".
_HOLDERS = {Trigger.CARD, Trigger.ACCOUNT, Trigger.CODE}
_OF_THE = {"on", "of", "for", "the", "my", "your", "this", "that", "from", "to", "with"}


def _detail_before(
    trig: Sequence[Trigger | None], toks: Sequence[Token], j: int
) -> Trigger | None:
    """The specific trigger before "on the card" / "for the account" at word ``j``
    ("the verbal passcode on the account", "the routing number for my account")."""
    for k in range(j - 1, max(-1, j - 5), -1):
        cat = trig[k]
        if cat is None:
            if toks[k].bare in _OF_THE:
                continue
            return None
        if cat == trig[j]:
            continue  # the holder's own phrase ("american express")
        if cat == Trigger.GENERIC:  # "the phone / card number on the account"
            before = trig[k - 1] if k else None
            return None if before in {None, Trigger.GENERIC, Trigger.EMAIL} else before
        return None if cat in _HOLDERS or cat == Trigger.EMAIL else cat
    return None


_AFTER_CONNECTORS = {"is", "was", "that's", "thats", "are", "as", "my", "the", "your",
                     "that", "it's", "its", "for", "our", "his", "her", "their"}
_AFTER_CATEGORIES = {
    Trigger.SSN, Trigger.CARD, Trigger.ACCOUNT, Trigger.PHONE, Trigger.DOB, Trigger.GENERIC,
    Trigger.CVV, Trigger.EXPIRY, Trigger.BANK, Trigger.LICENSE, Trigger.PASSPORT, Trigger.TAX,
    Trigger.HEALTH, Trigger.MEMBER, Trigger.PIN, Trigger.PASSWORD, Trigger.VEHICLE,
    Trigger.CODE, Trigger.SEQUENCE,
}  # fmt: skip


def context_after(
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
