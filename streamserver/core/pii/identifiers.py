"""Identifiers that are more than a digit run: codes with letters (licence, passport,
VIN, plate, IBAN, SWIFT, Medicare ids), card expiry dates with a month name or a
spoken "slash", passwords and user names (after "my password is", "username:",
"log in as", or one code-like word before "that's my password").

The digit-only forms of the same identifiers ("my PIN is 4 4 7 1", "routing number
0 2 1 ...") are ``digits.digit_spans``'s; both take the entity from the same trigger
categories (``triggers.Trigger``) and map them the same way, so their spans agree.

An identifier with letters is read as a *chunk*: consecutive pieces, each a digit
word ("4", "four", "oh", "double five"), a letter ("D", "D as in David", "d"), a
word mixing letters and digits ("GB29", "1EG4-TE5-MK73") or a short word in
capitals ("NWBK"); the pieces may be split by dashes and pauses. The chunk takes its
entity from a trigger before or after it, as a digit run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamserver.core.types import WordSpan

from .digits import (
    context_after,
    context_before,
    expiry_ok,
    has_health_context,
    window_context,
)
from .entities import (
    ACCOUNT_NUMBER,
    BANKING_INFORMATION,
    CREDIT_CARD_EXPIRATION,
    DRIVERS_LICENSE,
    HEALTHCARE_NUMBER,
    PASSPORT_NUMBER,
    PASSWORD,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    SCORE_WEAK,
    TAX_ID,
    USERNAME,
    VEHICLE_ID,
)
from .numbers import DigitRun, NumberKind, NumberWord, digit_runs
from .text import EDGE_PUNCTUATION, Token
from .triggers import Trigger
from .vocabulary import MONTHS, QUANTITY_WORDS, STOP_WORDS

# Entities whose spans come (also) from chunks with letters, by trigger category.
_CHUNK_ENTITIES = {
    Trigger.LICENSE: DRIVERS_LICENSE,
    Trigger.PASSPORT: PASSPORT_NUMBER,
    Trigger.TAX: TAX_ID,
    Trigger.HEALTH: HEALTHCARE_NUMBER,
    Trigger.BANK: BANKING_INFORMATION,
    Trigger.VEHICLE: VEHICLE_ID,
    Trigger.ACCOUNT: ACCOUNT_NUMBER,
    Trigger.CODE: ACCOUNT_NUMBER,
}
_MEMBER_ENTITIES = {HEALTHCARE_NUMBER, ACCOUNT_NUMBER}
_MAX_CHUNK_WORDS = 40
_MAX_CHUNK_CHARS = 34  # the longest IBAN

# IBAN lengths by country (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VA": 22,
    "VG": 24, "XK": 20,
}  # fmt: skip

# Passwords: words that say how a character is written, and spoken symbols.
CHAR_WORDS = frozenset({
    "capital", "cap", "caps", "uppercase", "upper", "lowercase", "lower", "small", "case",
    "letter", "digit", "number", "exclamation", "mark", "point", "sign", "symbol", "hash",
    "hashtag", "pound", "dollar", "percent", "caret", "ampersand", "asterisk", "star",
    "underscore", "dash", "hyphen", "minus", "plus", "equals", "equal", "dot", "period",
    "comma", "colon", "semicolon", "question", "slash", "forward", "backslash", "back",
    "tilde", "bang", "space", "bracket", "parenthesis", "quote", "apostrophe",
})  # fmt: skip
# After "password is": a word saying what the password is like, not the password.
_SECRET_NOT_VALUES = {
    "wrong", "incorrect", "invalid", "expired", "expiring", "locked", "correct", "right",
    "case", "too", "not", "reset", "changed", "working", "broken", "weak", "strong",
    "required", "missing", "different", "same", "being", "also", "just", "very", "really",
    "fine", "good", "secure", "long", "short", "saved", "stored", "blank", "empty",
    "sensitive", "hidden", "encrypted", "protected", "still", "probably", "supposed",
    "manager", "recovery", "field", "box", "characters", "character", "letters", "chars",
    "digits", "minimum", "maximum", "hint", "requirements", "policy", "updated", "taken",
    "available", "unavailable", "already", "my", "your", "email", "e-mail", "like",
    "something", "easy", "hard", "complicated", "simple", "temporary", "new", "old", "all",
}  # fmt: skip
# Words that end a password or user name (a new clause, thanks, a filler).
_SECRET_BREAKS = {
    "and", "but", "so", "then", "thanks", "thank", "please", "okay", "ok", "because",
    "which", "if", "or", "can", "could", "would", "will", "i", "i'm", "it's", "that's",
    "you", "we", "alright", "right", "yeah", "yes", "sorry", "um", "uh", "er", "erm",
    "characters", "character", "chars", "letters", "digits", "long", "is", "was",
}  # fmt: skip
# Before "my password" with no "is": the password is talked about, not said.
_SECRET_ACTIONS = {
    "reset", "change", "changed", "changing", "forgot", "forget", "forgotten", "update",
    "updated", "enter", "entered", "type", "typed", "remember", "lost", "need", "recover",
    "use", "used", "try", "tried", "with", "for", "to", "of", "about", "is", "was", "know",
    "share", "give", "send", "sent", "tell", "told", "unlock", "locked", "verify", "confirm",
}  # fmt: skip
_COPULAS = {"is", "was", "it's", "its", "equals", "reads", "="}
# Between the cue and "is": "the password they gave me is X".
_SECRET_FILLERS = {"they", "you", "he", "she", "we", "i", "gave", "give", "given", "sent",
                   "me", "us", "set", "for", "the", "on", "file", "here", "they've",
                   "you've", "uh", "um", "er", "then", "new", "temporary"}
_SETTING_VERBS = {"set", "changed", "change", "reset", "updated", "update", "switched"}
# Between a code-like word and the cue after it: "X, that's my password".
_BEFORE_CUE = {"that's", "thats", "is", "was", "my", "the", "your", "as", "that", "it's",
               "our", "his", "her"}
_SECRET_OWNERS = {"my", "your", "his", "her", "our", "their", "the", "new", "temporary",
                  "temp", "current", "old"}
_USER_JOINERS = {"underscore", "dot", "dash", "hyphen", "period", "at"}
_MAX_PASSWORD_WORDS = 12
_MAX_USERNAME_WORDS = 8
_YEAR_JOINERS = {"of", ","}


@dataclass(slots=True)
class _Chunk:
    first: int
    last: int  # exclusive
    chars: str  # upper-case letters and digits
    letters: bool  # holds a letter (else the digit rules have it)


def identifier_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    wanted: frozenset[str],
) -> list[WordSpan]:
    """Spans of the entities this module knows that are in ``wanted``."""
    out: list[WordSpan] = []
    if not toks:
        return out
    if any(cat in _CHUNK_ENTITIES or cat == Trigger.MEMBER for cat in trig) or (
        BANKING_INFORMATION in wanted
    ):
        out.extend(_chunk_spans(toks, nums, trig, wanted))
    if CREDIT_CARD_EXPIRATION in wanted and Trigger.EXPIRY in trig:
        out.extend(_expiry_spans(toks, nums, trig))
    if PASSWORD in wanted and (Trigger.PASSWORD in trig or Trigger.PIN in trig):
        out.extend(_secret_spans(toks, nums, trig, PASSWORD))
    if USERNAME in wanted and Trigger.USERNAME in trig:
        out.extend(_secret_spans(toks, nums, trig, USERNAME))
    return [s for s in out if s.entity in wanted]


# ------------------------------------------------------------------ codes with letters


def _chunk_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    wanted: frozenset[str],
) -> list[WordSpan]:
    n = len(toks)
    chunks = _chunks(toks, nums, trig)
    if not chunks:
        return []
    blocked = [False] * n
    for c in chunks:
        for j in range(c.first, c.last):
            blocked[j] = True
    health: bool | None = None
    out: list[WordSpan] = []
    for c in chunks:
        if not c.letters:
            continue
        ctx, gap = context_before(trig, c.first, blocked, toks)
        if ctx is None or gap > 1:
            ctx = context_after(trig, c.last, blocked, toks)
        partial = c.last == n or _spelling_cut(toks, c.last)
        entity: str | None = None
        score = SCORE_CONTEXT
        if ctx == Trigger.MEMBER:
            if health is None:
                health = has_health_context(toks)
            entity = HEALTHCARE_NUMBER if health else ACCOUNT_NUMBER
        elif ctx is not None:
            entity = _CHUNK_ENTITIES.get(ctx)
        if entity == BANKING_INFORMATION:
            score = _bank_score(c.chars, partial)
        elif entity is not None:
            score = _id_score(entity, c.chars, partial)
        elif BANKING_INFORMATION in wanted and _iban_checked(c.chars) is True:
            entity, score = BANKING_INFORMATION, SCORE_SHAPE  # a whole IBAN, no cue
        if entity is not None and score > 0:
            out.append(WordSpan(c.first, c.last, entity, score))
    return out


def _id_score(entity: str, chars: str, partial: bool) -> float:
    """How sure a chunk after a cue for ``entity`` is that identifier (0: it is not)."""
    digits = sum(ch.isdigit() for ch in chars)
    if digits == 0:  # no id without digits; at the window end, the digits may follow
        return SCORE_WEAK if partial else 0.0
    size = len(chars)
    if entity == PASSPORT_NUMBER:
        return SCORE_CONTEXT if 6 <= size <= 9 or (partial and size < 6) else SCORE_WEAK
    if entity == VEHICLE_ID:  # a plate (2-8) or a VIN (17; no I, O, Q)
        if size == 17 and not any(ch in "IOQ" for ch in chars):
            return SCORE_CONTEXT
        return SCORE_CONTEXT if 2 <= size <= 8 or (partial and size < 17) else SCORE_WEAK
    return SCORE_CONTEXT if size >= 4 or partial else SCORE_WEAK


def _bank_score(chars: str, partial: bool) -> float:
    """A chunk after a banking cue: an IBAN (checked when whole), a SWIFT/BIC code, or
    a routing / sort code / account number with letters."""
    iban = _iban_checked(chars)
    if iban is not None:
        return SCORE_CONTEXT if iban else SCORE_WEAK
    if len(chars) in (8, 11) and chars[:6].isalpha():
        return SCORE_CONTEXT  # SWIFT/BIC: bank, country, location (, branch)
    if any(ch.isdigit() for ch in chars):
        return SCORE_CONTEXT
    return SCORE_WEAK if partial else 0.0


def _iban_checked(chars: str) -> bool | None:
    """For a whole IBAN: whether its check digits are right (ISO 7064 mod 97-10);
    ``None`` when ``chars`` is no whole IBAN."""
    if len(chars) < 15 or not chars[:2].isalpha() or not chars[2:4].isdigit():
        return None
    if _IBAN_LENGTHS.get(chars[:2]) != len(chars):
        return None
    rest = chars[4:] + chars[:4]
    value = 0
    for ch in rest:
        value = (value * (100 if ch.isalpha() else 10) + int(ch, 36)) % 97
    return value == 1


def _chunks(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], trig: Sequence[Trigger | None]
) -> list[_Chunk]:
    """Every maximal run of id pieces in the window."""
    n = len(toks)
    out: list[_Chunk] = []
    i = 0
    while i < n:
        got = _piece(toks, nums, trig, i)
        if got is None:
            i += 1
            continue
        first = i
        parts: list[str] = []
        letters = False
        size = 0
        while got is not None:
            text, nxt = got
            parts.append(text)
            size += len(text)
            letters = letters or not text.isdigit()
            i = nxt
            if toks[i - 1].sentence_end or size >= _MAX_CHUNK_CHARS or i - first > _MAX_CHUNK_WORDS:
                break
            k = i
            while k < n and (sep := nums[k]) is not None and sep.kind == NumberKind.SEP:
                k += 1  # "ABC - 123", "1EG4 dash TE5"
            got = _piece(toks, nums, trig, k) if k < n else None
            if got is not None:
                i = k
        out.append(_Chunk(first, i, "".join(parts), letters))
    return out


def _piece(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], trig: Sequence[Trigger | None], j: int
) -> tuple[str, int] | None:
    """The characters of the id piece at word ``j`` and the word after it."""
    if trig[j] is not None:
        return None
    tok = toks[j]
    core = tok.raw.strip(EDGE_PUNCTUATION)
    if not core:
        return None
    num = nums[j]
    if num is not None:
        kind = num.kind
        if kind == NumberKind.GROUP:
            chars = "".join(ch for ch in core if ch.isalnum()).upper()
            if chars.isalnum() and not chars.isdigit() and not (
                chars[0] == "O" and chars[1:].isdigit()  # "O9": the ASR's letter O for zero
            ):
                return chars, j + 1  # "AB1234567"
            return num.digits, j + 1
        if kind in {NumberKind.SPELLED, NumberKind.WEAK, NumberKind.TEEN}:
            return num.digits, j + 1
        if kind == NumberKind.TENS:
            nxt = nums[j + 1] if j + 1 < len(toks) else None
            if nxt is not None and nxt.kind == NumberKind.SPELLED and nxt.digits != "0":
                return num.digits + nxt.digits, j + 2
            return num.digits + "0", j + 1
        if kind == NumberKind.REPEAT and j + 1 < len(toks):  # "double five", "double A"
            got = _piece(toks, nums, trig, j + 1)
            if got is not None and len(got[0]) == 1:
                return got[0] * (3 if tok.bare == "triple" else 2), got[1]
        return None  # amounts, times, dates, ordinals, "hundred"
    if len(core) == 1 and core.isalpha():
        if core == "I" or core in {"a", "i"}:
            return None  # the pronoun, the article
        return core.upper(), _after_spelling(toks, j + 1, core.lower())
    plain = core.replace("-", "")
    if not plain.isalnum():
        return None
    if not plain.isalpha():
        return plain.upper(), j + 1  # "GB29", "1EG4-TE5-MK73", "33A"
    if "-" in core and all(len(part) == 1 for part in core.split("-")):
        return plain.upper(), j + 1  # "J-O-H-N"
    if core.isupper() and 2 <= len(plain) <= 11 and tok.bare not in STOP_WORDS:
        return plain, j + 1  # "NWBK", "DEUTDEFF"
    return None


def _spelling_cut(toks: Sequence[Token], j: int) -> bool:
    """Whether the window ends in "as" / "as in" / "for" / "like" after a letter at
    ``j - 1`` ("D as in" + "David" still to come)."""
    rest = [t.bare for t in toks[j:]]
    return rest in (["as"], ["as", "in"], ["for"], ["like"])


def _after_spelling(toks: Sequence[Token], j: int, letter: str) -> int:
    """The word after "as in David" / "for David" / "like David" that spells ``letter``
    (``j`` when there is none)."""
    n = len(toks)
    k = j
    if k + 1 < n and toks[k].bare == "as" and toks[k + 1].bare == "in":
        k += 2
    elif k < n and toks[k].bare in {"for", "like"}:
        k += 1
    else:
        return j
    if k < n and len(toks[k].bare) >= 2 and toks[k].bare[0] == letter and toks[k].bare.isalpha():
        return k + 1
    return j


# ------------------------------------------------------------------------ card expiry


def _expiry_spans(
    toks: Sequence[Token], nums: Sequence[NumberWord | None], trig: Sequence[Trigger | None]
) -> list[WordSpan]:
    """Expiry dates the digit rules cannot read: "valid through September 2027",
    "expires 0 4 slash 2 9", "month oh three, year twenty nine" (digit-only forms are
    ``digits.digit_spans``'s). Like them: sure with card talk in the window, less sure
    with none, and none when a licence, passport or subscription is talked about."""
    n = len(toks)
    skip = {j for j, cat in enumerate(trig) if cat is not None}
    runs = {run.first: run for run in digit_runs(toks, nums, skip)}
    win = window_context(toks, trig, list(runs.values()))
    if not win.card and win.other_expiry:
        return []
    out: list[WordSpan] = []
    blocked = [False] * n
    for i, tok in enumerate(toks):
        last, digits, cut = 0, "", False
        run = runs.get(i)
        if tok.bare in MONTHS and trig[i] is None:
            last, digits = _month_year(toks, runs, i)
        elif run is not None and len(run.digits) <= 2 and run.last < n:
            after = toks[run.last].bare
            year = runs.get(run.last + 1)
            if after in {"slash", "/", "over"} and year is not None:
                last, digits = year.last, run.digits + year.digits  # "0 4 slash 2 9"
            elif after == "year" and year is not None and i and toks[i - 1].bare == "month":
                last, digits = year.last, run.digits + year.digits  # "month 03, year 29"
            elif after in {"slash", "/", "over", "year"} and run.last + 1 == n:
                last, digits, cut = run.last, run.digits, True  # the year still to come
        if not last:
            continue
        partial = cut or last == n
        if len(digits) > 2 and not expiry_ok(digits, partial):
            continue
        first = i
        ctx, gap = context_before(trig, first, blocked, toks)
        if ctx != Trigger.EXPIRY or gap > 1:
            ctx = context_after(trig, last, blocked, toks)
        if ctx == Trigger.EXPIRY:
            score = SCORE_CONTEXT if win.card else SCORE_SHAPE
            if len(digits) <= 2 and not partial:
                score = SCORE_WEAK  # a month alone: "expires in March"
            out.append(WordSpan(first, last, CREDIT_CARD_EXPIRATION, score))
    return out


def _month_year(toks: Sequence[Token], runs: dict[int, DigitRun], i: int) -> tuple[int, str]:
    """The end of "September [of] 2027" from the month at ``i`` and its digits ("0927"),
    or the month alone ("09"), at the window end or with no year."""
    month = _MONTH_NUMBERS[toks[i].bare[:3]]
    j = i + 1
    if j < len(toks) and toks[j].bare in _YEAR_JOINERS:
        j += 1
    run = runs.get(j)
    if run is not None and (
        len(run.digits) == 2 or (len(run.digits) == 4 and run.digits[:2] == "20")
    ):
        return run.last, f"{month:02d}{run.digits}"
    return i + 1, f"{month:02d}"


_MONTH_NUMBERS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip


# ------------------------------------------------------------ passwords and user names


def _secret_spans(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    entity: str,
) -> list[WordSpan]:
    """The words after "my password is" / "username:" up to a pause (bounded), or one
    code-like word before "that's my password"."""
    n = len(toks)
    out: list[WordSpan] = []
    cue = Trigger.PASSWORD if entity == PASSWORD else Trigger.USERNAME
    i = 0
    while i < n:
        if trig[i] is None:
            i += 1
            continue
        start = i
        while i < n and trig[i] == trig[start]:
            i += 1
        cat = trig[start]
        if cat == Trigger.PIN and entity == PASSWORD:
            # "passcode is sunshine": a passcode of words is a password.
            if not any(toks[j].bare in {"passcode", "pass"} for j in range(start, i)):
                continue
        elif cat != cue:
            continue
        span = _secret_after(toks, nums, trig, start, i, entity)
        if span is not None and cat == Trigger.PIN and nums[span[0]] is not None:
            continue  # "passcode 9 9 0 0": a PIN (digits.py)
        if span is None and cat == cue:
            span = _secret_before(toks, trig, start)
        if span is not None:
            out.append(WordSpan(span[0], span[1], entity, SCORE_CONTEXT))
            i = max(i, span[1])
    return out


def _secret_after(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    trig: Sequence[Trigger | None],
    cue_first: int,
    cue_last: int,
    entity: str,
) -> tuple[int, int] | None:
    """The words of the password / user name said after the cue ending at ``cue_last``."""
    n = len(toks)
    cue = toks[cue_last - 1]
    if cue.sentence_end or cue_last == n:
        return None  # "I forgot my password."
    # "password: X", "Password, M as in Mary", "log in as X": the value comes next.
    colon = cue.raw.endswith(":")
    connected = colon or cue.phrase_end or cue.bare == "as"
    j = cue_last
    if not connected:
        k = j
        while k < n and k - j < 5 and toks[k].bare in _SECRET_FILLERS:
            k += 1  # "the password they gave me is X"
        if k < n and toks[k].bare in _COPULAS:
            connected = True
            colon = toks[k].raw.endswith(":")
            j = k + 1
            if j < n and toks[j].bare in {"now", "just", "still"}:
                j += 1
        elif j + 1 < n and toks[j].bare in {"will", "would", "should"} and toks[j + 1].bare == "be":
            connected, j = True, j + 2
        elif toks[j].bare == "to" and any(
            toks[m].bare in _SETTING_VERBS for m in range(max(0, cue_first - 3), cue_first)
        ):
            connected, j = True, j + 1  # "I set the password to X"
    owner = cue_first > 0 and toks[cue_first - 1].bare in _SECRET_OWNERS
    if not connected and (
        not owner or (cue_first > 1 and toks[cue_first - 2].bare in _SECRET_ACTIONS)
    ):
        return None  # "I reset my password 3 times"
    if not connected and cue_last - cue_first == 1 and cue.bare in {"login", "handle"}:
        return None  # "my login" / "my handle" need "is"
    limit = _MAX_PASSWORD_WORDS if entity == PASSWORD else _MAX_USERNAME_WORDS
    first = j
    while j < n and j - first < limit:
        tok = toks[j]
        if not tok.bare or (trig[j] is not None and j > first):
            break
        if not _secret_word(toks, nums, j, entity, first, colon):
            break
        if j == first and not connected and not _looks_secret(tok, nums[j]):
            return None  # "my password expired": no "is", no password-like word
        k = _after_spelling(toks, j + 1, tok.bare) if len(tok.bare) == 1 else j + 1
        j = k  # "M as in Mary"
        last = toks[j - 1]
        if last.sentence_end or j == n:
            break
        if last.phrase_end and not (
            _spelled_like(last, nums[j - 1]) or _spelled_like(toks[j], nums[j])
        ):
            break  # a pause between words: "sunshine, all lower case"
    if j == first:
        return None
    nxt = toks[first + 1].bare if first + 1 < n else ""
    if nums[first] is not None and (nxt in _SECRET_NOT_VALUES or nxt in QUANTITY_WORDS):
        return None  # "password is 8 characters long", "my password 3 times"
    return first, j


def _secret_before(
    toks: Sequence[Token], trig: Sequence[Trigger | None], cue_first: int
) -> tuple[int, int] | None:
    """ "Rainbow7Kite, that's my password", "P-A-S-S-1, my password": one code-like word."""
    k = cue_first - 1
    while k >= 0 and cue_first - k <= 3 and toks[k].bare in _BEFORE_CUE:
        k -= 1
    if k < 0 or k == cue_first - 1 or trig[k] is not None or toks[k].sentence_end:
        return None
    core = toks[k].raw.strip(EDGE_PUNCTUATION)
    plain = core.replace("-", "")
    code_like = (
        (any(ch.isdigit() for ch in core) and any(ch.isalpha() for ch in core))
        or "_" in core
        or "@" in core
        or ("-" in core and len(plain) >= 4 and all(len(p) == 1 for p in core.split("-")))
    )
    return (k, k + 1) if code_like and plain.replace("_", "").replace("@", "").isalnum() else None


def _secret_word(
    toks: Sequence[Token],
    nums: Sequence[NumberWord | None],
    j: int,
    entity: str,
    first: int,
    colon: bool,
) -> bool:
    """Whether word ``j`` can be part of the password / user name starting at ``first``
    (after a colon, the first word is, whatever it is)."""
    tok = toks[j]
    bare = tok.bare
    num = nums[j]
    if num is not None and num.kind <= NumberKind.SEP:
        return True
    core = tok.raw.strip(EDGE_PUNCTUATION)
    if len(core) == 1 and core.isalpha():
        return core != "I" or j > first
    if any(not ch.isalpha() for ch in core.replace("'", "")):
        return True  # "sunshine42", "j_smith", "@jsmith"
    nxt = toks[j + 1].bare if j + 1 < len(toks) else ""
    if j == first and colon:
        return bare not in _SECRET_BREAKS
    if j == first and bare in _SECRET_NOT_VALUES:
        return False  # "password is case sensitive"
    if entity == PASSWORD and bare in CHAR_WORDS:
        return True
    if bare in _USER_JOINERS:
        return bare != "at" or nxt in {"sign", "symbol"} or (entity == USERNAME and j == first)
    if j == first:
        return bare not in STOP_WORDS
    return bare not in _SECRET_BREAKS and bare not in STOP_WORDS


def _spelled_like(tok: Token, num: NumberWord | None) -> bool:
    """A character said on its own: "S", "7", "dollar sign", "hashtag"."""
    core = tok.raw.strip(EDGE_PUNCTUATION)
    return (num is not None and num.kind <= NumberKind.SEP) or len(core) == 1 or (
        tok.bare in CHAR_WORDS or tok.bare in _USER_JOINERS
    )


def _looks_secret(tok: Token, num: NumberWord | None) -> bool:
    """A word that is plainly a password / handle, not an English word."""
    core = tok.raw.strip(EDGE_PUNCTUATION)
    if num is not None or len(core) == 1 or tok.bare in CHAR_WORDS:
        return True
    letters = core.replace("'", "")
    return not letters.isalpha() or (letters[1:] != letters[1:].lower())
