"""Spoken-form PII rules: read what Whisper writes, find what a text NER misses.

Pure Python (no presidio, no spaCy), safe to call from any thread. The engine in
``streamserver.engines.presidio`` adds presidio/spaCy detections on top of these.

What speech looks like after ASR, and what the rules here handle:

* digits split and merged arbitrarily: ``23 0 5 5 0 1 4 9``, ``1 -3 -0 -77``,
  ``3767, 9074, 3115, 008``; spelled digits (``four one two``, ``oh``, ``double five``);
* emails spoken with ``dot``/``at``, or written without the ``@``
  (``Michael.Johnson.example.com``);
* street addresses in lower case with a misheard name (``36 mape all drive, Springfield``);
* dates of birth, with ``birth``/``born``/``DOB`` before *or* after the date;
* names after ``my name is`` / ``this is X calling`` / spelled letters ``J O H N``.

Streaming: the caller passes a rolling window of words that grows at the end. A digit
run cut off by the window end after a trigger (``my number is 880``) is flagged at
once, so the audio can be masked before the rest of the number arrives.

Only word *indices* leave this module; nothing here logs.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streamserver.core.types import WordSpan

PERSON = "PERSON"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
LOCATION = "LOCATION"
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"

ENTITIES: frozenset[str] = frozenset(
    {
        PERSON,
        PHONE_NUMBER,
        CREDIT_CARD,
        US_SSN,
        EMAIL_ADDRESS,
        DATE_OF_BIRTH,
        LOCATION,
        ACCOUNT_NUMBER,
    }
)

# Scores of our own rules: context-confirmed > shape-only > partial (cut by the window).
SCORE_CONTEXT = 0.9
SCORE_SHAPE = 0.75
SCORE_WEAK = 0.6

# How far (in words) a trigger phrase reaches.
_LOOKBACK = 6
_LOOKAHEAD = 4


# --------------------------------------------------------------------------- text


@dataclass(frozen=True, slots=True)
class WordText:
    """The words joined into one string, with each word's character range."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def word_range(self, start: int, end: int) -> tuple[int, int] | None:
        """Words overlapping characters ``[start, end)`` as a half-open ``(first, last)``."""
        first = bisect_right(self.ends, start)
        last = bisect_left(self.starts, end)
        return (first, last) if first < last else None


def build_text(words: Sequence[str]) -> WordText:
    """Join words as Whisper wrote them (``" Michael" ".Johnson"`` -> ``" Michael.Johnson"``).

    Words that carry no leading space but start with a letter or digit get one, so a
    list of bare words (``["my", "name"]``) reads as text too.
    """
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for word in words:
        if (
            parts
            and word
            and word[0].isalnum()
            and parts[-1]
            and not parts[-1][-1].isspace()
            and parts[-1][-1] not in "@_/'"
        ):
            parts.append(" ")
            pos += 1
        starts.append(pos)
        parts.append(word)
        pos += len(word)
        ends.append(pos)
    return WordText("".join(parts), tuple(starts), tuple(ends))


# ------------------------------------------------------------------ vocabularies

_UNITS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_WEAK_ZERO = {"oh", "o"}  # digits only next to other digits
_TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3}
_SCALE = {"hundred": "00", "thousand": "000"}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
    "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
    "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
    "thirtieth": 30,
}  # fmt: skip
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
    "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
# Words after a number that make it a quantity, price or time, not an identifier.
_QUANTITY_WORDS = {
    "minute", "minutes", "min", "mins", "hour", "hours", "hr", "hrs", "second", "seconds",
    "day", "days", "week", "weeks", "month", "months", "year", "years", "yr", "yrs",
    "decade", "decades", "century", "centuries", "o'clock", "am", "pm", "a.m", "p.m",
    "dollar", "dollars", "buck", "bucks", "cent", "cents", "euro", "euros", "pound",
    "pounds", "percent", "per", "%", "times", "time", "people", "persons", "items",
    "item", "kids", "children", "miles", "mile", "km", "kilometers", "meters", "feet",
    "foot", "inches", "degrees", "points", "pages", "grand", "k", "million", "billion",
    "thousand", "hundred", "calls", "tries", "attempts", "rings", "boxes", "pieces",
    "units", "orders", "packages", "gb", "mb", "tb", "pro", "plus", "max", "mini",
    "ish", "or", "to", "more", "less", "of",
}  # fmt: skip
# Emergency and service numbers: public, never personal.
_SERVICE_NUMBERS = {"911", "999", "112", "411", "311", "211", "511", "611", "711", "811"}
# A number right after one of these is a time or amount ("after 5", "in 20 minutes").
_TIME_PREPOSITIONS = {
    "after", "before", "until", "till", "til", "around", "about", "in", "for", "within",
    "by", "past", "than", "over", "under", "every", "since", "only", "just", "like",
}  # fmt: skip

_STOP = {
    "a", "about", "above", "across", "after", "again", "against", "all", "also", "am", "an",
    "and", "any", "are", "around", "as", "at", "be", "because", "been", "before", "being",
    "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing",
    "done", "down", "during", "each", "either", "else", "even", "ever", "every", "few",
    "for", "from", "further", "get", "got", "had", "has", "have", "having", "he", "her",
    "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "me", "might", "more", "most", "much", "must",
    "my", "myself", "near", "neither", "never", "next", "no", "nor", "not", "now", "of",
    "off", "on", "once", "one", "only", "or", "other", "our", "ours", "out", "over", "own",
    "please", "quite", "rather", "really", "same", "shall", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these",
    "they", "this", "those", "though", "through", "to", "too", "under", "until", "up",
    "upon", "us", "very", "was", "we", "were", "what", "when", "where", "whether", "which",
    "while", "who", "whom", "whose", "why", "will", "with", "within", "without", "would",
    "yet", "you", "your", "yours", "yourself", "yesterday", "today", "tomorrow", "tonight",
    "okay", "ok", "yes", "yeah", "yep", "um", "uh", "er", "erm", "hmm", "oh", "well",
    "thanks", "thank", "sorry", "hello", "hi", "hey", "bye", "goodbye", "sure", "right",
    "alright", "actually", "basically", "anyway", "spelled", "spell", "spelling", "called",
    "calling", "speaking", "last", "first", "still", "already",
    "maybe", "probably", "definitely", "like", "kind", "sort", "stuff", "thing",
    "things", "great", "good", "fine", "new", "old", "big", "small", "going", "gonna",
    "want", "wanna", "need", "let", "lets", "let's", "i'm", "it's", "that's", "i'll",
    "we're", "you're", "don't", "can't", "won't", "isn't", "wasn't", "didn't", "doesn't",
    "what's", "where's", "there's", "he's", "she's", "we'll", "you'll", "i've", "i'd",
    "said", "say", "says", "told", "tell", "ask", "asked", "know", "think", "see",
    "look", "make", "made", "take", "took", "give", "gave", "call", "come", "came", "go",
    "went", "live", "lives", "living", "lived", "located", "moved", "email", "number",
    "phone", "address", "name", "card", "account", "code", "order", "back", "today's",
}  # fmt: skip
# Capitalised words that are never names, whatever spaCy thinks.
_NOT_NAMES = _STOP | {
    "mr", "mrs", "ms", "miss", "dr", "sir", "madam", "ma'am", "mister", "doctor",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "god", "lord", "customer", "service", "support", "team", "bank", "company", "office",
    "department", "manager", "agent", "representative", "morning", "afternoon", "evening",
    "night", "christmas", "easter", "thanksgiving", "internet", "english", "american",
    "capital", "century", "chapter", "section", "page", "part", "volume", "book",
    "street", "road", "avenue", "drive", "lane", "court", "way", "place",
} | _MONTHS  # fmt: skip


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Common US first names and surnames: a lone capitalised word from spaCy is kept as a
# name only when it is one of these or has name context (a curated list, not a gazetteer).
_FIRST_NAMES = _word_set(
    """
    james john robert michael william david richard joseph thomas charles christopher
    daniel matthew anthony mark donald steven paul andrew joshua kenneth kevin brian
    george timothy ronald edward jason jeffrey ryan jacob gary nicholas eric jonathan
    stephen larry justin scott brandon benjamin samuel gregory alexander frank patrick
    raymond jack dennis jerry tyler aaron jose adam nathan henry douglas zachary peter
    kyle ethan walter noah jeremy christian keith roger terry gerald harold sean austin
    carl arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan albert
    willie alan juan wayne elijah randy roy vincent ralph eugene russell bobby mason
    philip louis mario carlos luis miguel mike jim bob tom dave steve chris matt tony
    mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy
    betty margaret sandra ashley kimberly emily donna michelle carol amanda dorothy
    melissa deborah stephanie rebecca sharon laura cynthia kathleen amy angela shirley
    anna brenda pamela emma nicole helen samantha katherine christine debra rachel
    carolyn janet catherine maria heather diane ruth julie olivia joyce virginia
    victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah
    jacqueline martha gloria teresa ann sara madison frances kathryn janice jean abigail
    alice judy sophia grace denise amber doris marilyn danielle beverly isabella theresa
    diana natalie brittany charlotte marie kayla alexis lori jane jenny kate katie sue
    liz beth meg ellen anne lucy rose chloe mia ava zoe priya raj wei ming ahmed
    mohammed muhammad ali fatima omar yusuf ivan dmitri olga sofia lucas leo max oliver
    """
)
_SURNAMES = _word_set(
    """
    smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez
    lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson
    white harris sanchez clark ramirez lewis robinson walker young allen king wright
    scott torres nguyen hill flores green adams nelson baker hall rivera campbell
    mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins
    reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper
    peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez
    wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel
    myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman
    butler henderson barnes gonzales fisher vasquez simmons romero jordan patterson
    alexander hamilton graham reynolds griffin wallace moreno west cole hayes bryant
    herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens
    harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman
    webb tucker guzman burns crawford olson simpson porter hunter gordon mendez silva
    shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black robertson boyd
    rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson
    nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins
    arnold pierce vazquez hansen peters santos hart bradley knight elliott cunningham
    duncan armstrong hudson carroll lane riley andrews alvarado ray delgado berry
    perkins hoffman johnston matthews pena richards willis carpenter lawrence sandoval
    wang li zhang liu singh kumar shah khan cohen levy murphy obrien o'brien connor
    """
)

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
    _STOP - {"one", "first", "last", "next", "new", "old", "well", "great", "good", "all", "ever"}
) | _QUANTITY_WORDS  # fmt: skip
_US_STATES = {
    "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut",
    "delaware", "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa",
    "kansas", "kentucky", "louisiana", "maine", "maryland", "massachusetts", "michigan",
    "minnesota", "mississippi", "missouri", "montana", "nebraska", "nevada", "ohio",
    "oklahoma", "oregon", "pennsylvania", "tennessee", "texas", "utah", "vermont",
    "virginia", "washington", "wisconsin", "wyoming", "carolina", "dakota", "hampshire",
    "jersey", "mexico", "york", "island",
}  # fmt: skip
_EMAIL_PROVIDERS = (
    "gmail|googlemail|yahoo|hotmail|outlook|icloud|aol|protonmail|proton|live|msn|"
    "comcast|mail|gmx|yandex|zoho|fastmail"
)
_TLDS = (
    "com|net|org|edu|gov|mil|io|co|us|uk|ca|de|fr|au|in|info|biz|ai|app|dev|ly|tv|nz|ie|"
    "es|it|nl|eu|jp|ch|se|no|dk|fi|be|at|pl|br|mx|org\\.uk|co\\.uk"
)
# Letters that are words on their own; a run of single letters of these alone is speech.
_LETTER_WORDS = {"a", "i"}
_GREETINGS = {"hi", "hello", "hey", "bye", "goodbye", "yes", "yeah", "morning", "afternoon",
              "evening", "okay", "ok", "sure", "thanks", "welcome", "so", "well", "and"}
# Words after a name that confirm it ("this is Maria Davis calling").
_NAME_FOLLOWERS = {"calling", "speaking", "here", "from", "with", "at", "over", "on"}
_FILLERS = {"um", "uh", "er", "erm", "hmm", "ah", "like"}
_NAME_PRECEDERS = {"mr", "mrs", "ms", "miss", "dr", "mister", "doctor", "dear", "i'm", "name's",
                   "it's", "with", "thanks", "thank", "hi", "hello", "hey", "bye", "professor",
                   "prof", "sir", "madam", "called", "named"}
_SPEECH_VERBS = {"said", "says", "told", "asked", "wrote", "writes", "argued", "argues",
                 "thinks", "thought", "called", "replied", "explained"}
# First names that are also common words or places: no name on their own.
_AMBIGUOUS_FIRST_NAMES = {"mark", "frank", "jack", "grace", "rose", "max", "sue", "christian",
                          "austin", "charlotte", "madison", "victoria", "virginia", "sofia",
                          "amber", "jordan", "joy", "hope", "faith", "will", "bill", "art",
                          "ray", "dean", "chase", "hunter", "summer", "penny", "ruby", "long",
                          "may", "june", "april", "august", "lucas", "leo", "oliver", "scott",
                          "henry", "louis", "kelly", "lee", "king", "young"}


# ------------------------------------------------------------------------- words

_EDGE = ".,!?;:\"'()[]{}…-–—*"
_SENTENCE_END_RE = re.compile(r"[^.][.?!]$|[?!]$")


@dataclass(slots=True)
class _Tok:
    raw: str  # without surrounding whitespace
    low: str
    bare: str  # lower case, edge punctuation removed
    title: bool  # starts with an upper-case letter (after edge punctuation)
    phrase_end: bool  # ends with , ; : . ? ! (a pause the ASR heard)
    sentence_end: bool  # ends with . ? ! (but not "...")


def _tokens(words: Sequence[str]) -> list[_Tok]:
    toks = []
    for word in words:
        raw = word.strip()
        low = raw.lower()
        bare = low.strip(_EDGE)
        core = raw.strip(_EDGE)
        title = bool(core) and core[0].isupper()
        phrase_end = bool(raw) and raw[-1] in ",;:.?!…"
        sentence_end = bool(_SENTENCE_END_RE.search(raw)) and not raw.endswith("...")
        if bare in {"mr", "mrs", "ms", "dr", "st", "no"}:
            sentence_end = False
        toks.append(_Tok(raw, low, bare, title, phrase_end, sentence_end))
    return toks


# ------------------------------------------------------------------ digit tokens

# Kinds of number-bearing words. Those up to _K_SEP can be part of a digit run.
_K_GROUP, _K_SPELLED, _K_WEAK, _K_TEEN, _K_TENS, _K_REPEAT, _K_SCALE, _K_SEP = range(8)
_K_MONEY, _K_TIME, _K_DATE, _K_ORDINAL = range(8, 12)


@dataclass(frozen=True, slots=True)
class _Num:
    kind: int
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


def _classify(tok: _Tok) -> _Num | None:
    raw = tok.raw
    if not raw:
        return None
    if raw in {"-", "–", "—"} or tok.bare in {"dash", "hyphen"}:
        return _Num(_K_SEP)
    has_digit = any(c.isdigit() for c in raw)
    if not has_digit:
        bare = tok.bare
        if bare in _UNITS:
            return _Num(_K_SPELLED, _UNITS[bare])
        if bare in _WEAK_ZERO:
            return _Num(_K_WEAK, "0")
        if bare in _TEENS:
            return _Num(_K_TEEN, _TEENS[bare])
        if bare in _TENS:
            return _Num(_K_TENS, _TENS[bare])
        if bare in _REPEAT:
            return _Num(_K_REPEAT)
        if bare in _SCALE:
            return _Num(_K_SCALE, _SCALE[bare])
        return None
    if _MONEY_RE.search(tok.low):
        return _Num(_K_MONEY)
    if _TIME_RE.search(raw):
        return _Num(_K_TIME)
    core = raw.rstrip(_TRAIL)
    m = _DATE_WORD_RE.fullmatch(core)
    if m and _plausible_numeric_date(m):
        return _Num(_K_DATE, re.sub(r"\D", "", core))
    m = _ORDINAL_RE.fullmatch(tok.bare)
    if m:
        return _Num(_K_ORDINAL, m.group(1))
    if _GROUP_RE.fullmatch(core):
        digits = re.sub(r"\D", "", core)
        body = core.lstrip("-–.,/#+(")
        return _Num(
            _K_GROUP,
            digits,
            thousands=bool(re.fullmatch(r"\d{1,3}(,\d{3})+", body)),
            decimal=bool(re.fullmatch(r"\d+\.\d+", body)),
        )
    if re.fullmatch(r"o\d+", tok.bare):  # "O9, O2, 2001": the ASR's letter O for zero
        return _Num(_K_GROUP, "0" + tok.bare[1:])
    if _ALNUM_ID_RE.fullmatch(tok.bare) and not re.fullmatch(r"\d{2,4}'?s", tok.bare):
        return _Num(_K_GROUP, re.sub(r"\D", "", tok.bare))
    return None


def _plausible_numeric_date(m: re.Match[str]) -> bool:
    if m.group(1):
        a, b = int(m.group(1)), int(m.group(2))
    else:
        a, b = int(m.group(5)), int(m.group(6))
    return 1 <= min(a, b) <= 12 and max(a, b) <= 31


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


# ---------------------------------------------------------------------- triggers

_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_CONTINUED = "continued"  # a run that goes on from the flagged one just before it

# What a trigger phrase says the next number (or address, email) is.
_SSN, _CARD, _ACCOUNT, _PHONE, _DOB, _ZIP, _ADDRESS, _EMAIL, _GENERIC = (
    "ssn", "card", "account", "phone", "dob", "zip", "address", "email", "generic",
)  # fmt: skip

# Trigger phrases by what they announce (" | " between phrases); matched on bare
# lower-case words.
_TRIGGERS = {
    _SSN: "social security | social | security | ssn | s s n",
    _CARD: "security code | card | credit | debit | visa | mastercard | amex"
    " | american express | cvv | cvc | expiration | expires | expiry",
    _ACCOUNT: "account | acct | routing | iban | pin | passcode | password | member"
    " | membership | policy | customer | reference | confirmation | verification | id"
    " | identification | license | licence | passport | code",
    _PHONE: "phone | telephone | cell | cellphone | mobile | landline | fax | call | calls"
    " | reach | text me | text us | dial | extension | ext | area code | contact",
    # The digit count decides; "home" is how the ASR often hears "number".
    _GENERIC: "number | numbers | digits | # | last four | last 4 | home",
    _DOB: "birth | born | birthday | birthdate | dob | d o b",
    _ZIP: "zip | zipcode | postal | postcode",
    _ADDRESS: "address | live at | live on | lives at | lives on | living at | living on"
    " | located at | located on | apartment | apt | suite | ship to | ship it to"
    " | deliver to | deliver it to | delivered to",
    _EMAIL: "email | e mail | e-mail | mail",
}
# Longest phrases first.
_TRIGGER_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    sorted(
        (
            (tuple(phrase.split()), cat)
            for cat, phrases in _TRIGGERS.items()
            for phrase in phrases.split(" | ")
        ),
        key=lambda p: -len(p[0]),
    )
)
_ADDRESS_OWNERS = {"my", "your", "his", "her", "our", "their", "the", "billing", "shipping",
                   "home", "mailing", "street", "new", "old", "delivery", "current", "postal"}
_SPECIFIC_BEFORE_GENERIC = 2  # "social security number", "card number": look this far


def _triggers(toks: Sequence[_Tok]) -> list[str | None]:
    """The trigger category of each word (every word of a matched phrase)."""
    n = len(toks)
    out: list[str | None] = [None] * n
    bare = [t.bare for t in toks]
    i = 0
    while i < n:
        for phrase, cat in _TRIGGER_PHRASES:
            k = len(phrase)
            if tuple(bare[i : i + k]) == phrase:
                nxt = bare[i + k] if i + k < n else ""
                prev = bare[i - 1] if i else ""
                if cat == _GENERIC and nxt == "of":  # "the number of people"
                    break
                if phrase == ("call",) and prev in {"this", "the", "a", "your", "my", "our"}:
                    break  # the noun: "the reference number for this call"
                if cat == _ADDRESS and phrase == ("address",) and prev in {"email", "e-mail",
                                                                          "ip", "web", "mail"}:
                    cat = _EMAIL
                if phrase == ("code",) and prev in {"zip", "postal", "area", "security", "promo",
                                                    "discount", "coupon", "gift", "voucher"}:
                    break
                if phrase == ("phone",) and (
                    prev in {"on", "by", "over"} or bare[max(0, i - 2) : i] == ["on", "the"]
                ):
                    break  # "on the phone", "been on phone 45 minutes"
                if (
                    cat == _ADDRESS
                    and phrase == ("address",)
                    and prev not in _ADDRESS_OWNERS
                    and nxt not in {"is", "was", "its", "it's"}
                    and not toks[i].raw.endswith(":")
                ):
                    break  # "the Gettysburg address", "to address 3 issues"
                for j in range(i, i + k):
                    out[j] = cat
                i += k - 1
                break
        i += 1
    return out


def _context_before(
    trig: Sequence[str | None], start: int, blocked: Sequence[bool], toks: Sequence[_Tok]
) -> tuple[str | None, int]:
    """The trigger reaching word ``start`` from the left, and how many words between
    them are not mere connectors ("my number is 880": none; "the card game had 52": 2).

    The nearest trigger wins, except that a generic "number" takes the category of a
    specific word just before it ("social security number", "card number").
    """
    j = start - 1
    while j >= 0 and start - j <= _LOOKBACK:
        if blocked[j]:
            break
        if j < start - 1 and toks[j].sentence_end and not toks[j].raw.endswith("?"):
            break  # a question's trigger reaches into the answer
        cat = trig[j]
        if cat is not None and cat != _EMAIL:
            gap = sum(toks[m].bare not in _CONNECTORS for m in range(j + 1, start))
            if cat == _GENERIC:
                for k in range(j - 1, max(-1, j - 1 - _SPECIFIC_BEFORE_GENERIC), -1):
                    if trig[k] not in {None, _GENERIC, _EMAIL}:
                        return trig[k], gap
            return cat, gap
        j -= 1
    return None, 0


# Words that may stand between a trigger and its number.
_CONNECTORS = {
    "is", "was", "are", "were", "it's", "its", "it", "at", "me", "us", "on", "my", "the",
    "of", "for", "this", "that", "that's", "your", "our", "a", "an", "to", "be", "will",
    "would", "should", "uh", "um", "er", "so", "just", "number", "numbers", "please", "and",
    "here", "you", "i", "can", "reach", "call", "dial", "ending", "in", "as", "with", "by",
    "from", "also", "sure", "yes", "yeah", "okay", "ok", "right", "", "i'm", "goes",
}  # fmt: skip


_AFTER_CONNECTORS = {"is", "was", "that's", "thats", "are", "as", "my", "the", "your",
                     "that", "it's", "its", "for", "our", "his", "her", "their"}
_AFTER_CATEGORIES = {_SSN, _CARD, _ACCOUNT, _PHONE, _DOB, _GENERIC}


def _context_after(
    trig: Sequence[str | None], end: int, blocked: Sequence[bool], toks: Sequence[_Tok]
) -> str | None:
    """A trigger right after ``end``, through connectors ("4421 is my PIN")."""
    for j in range(end, min(len(trig), end + _LOOKAHEAD)):
        if blocked[j]:
            return None
        cat = trig[j]
        if cat in _AFTER_CATEGORIES:
            return cat
        if toks[j].bare not in _AFTER_CONNECTORS or toks[j].sentence_end:
            return None
    return None


# --------------------------------------------------------------------- digit runs


@dataclass(slots=True)
class _Run:
    first: int
    last: int  # exclusive
    digits: str
    groups: int  # words written with digits
    spelled: int  # spelled single digits ("four", "oh", "double five" counts 2)
    thousands: bool
    decimal: bool


def _digit_runs(toks: Sequence[_Tok], nums: Sequence[_Num | None], skip: set[int]) -> list[_Run]:
    """Maximal runs of digit-bearing words, joined across spaces, commas, dashes, dots."""
    runs: list[_Run] = []
    n = len(toks)

    def at(j: int) -> _Num | None:
        """The number-bearing word ``j`` if it may be part of a run."""
        if j >= n or j in skip:
            return None
        num = nums[j]
        return num if num is not None and num.kind <= _K_SEP else None

    i = 0
    while i < n:
        num = at(i)
        if num is None or num.kind in {_K_SEP, _K_REPEAT, _K_SCALE}:
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
            if kind == _K_SEP:
                if nxt is not None and nxt.kind != _K_SEP:
                    j += 1
                    continue
                if j + 1 == n:  # a dash cut off by the window end
                    j += 1
                break
            if kind == _K_REPEAT:  # "double five"
                if nxt is None or nxt.kind not in {_K_SPELLED, _K_WEAK, _K_GROUP}:
                    break
                if len(nxt.digits) != 1:
                    break
                times = _REPEAT[toks[j].bare]
                digits.append(nxt.digits * times)
                spelled += times
                j += 2
                prev_kind = _K_SPELLED
                continue
            if kind == _K_SCALE:  # "eight hundred"
                if prev_kind not in {_K_SPELLED, _K_TEEN, _K_TENS}:
                    break
                digits.append(cur.digits)
                j += 1
                prev_kind = _K_SCALE
                continue
            if kind == _K_TENS:  # "forty five" -> 45, "forty" -> 40
                if nxt is not None and nxt.kind == _K_SPELLED and nxt.digits != "0":
                    digits.append(cur.digits + nxt.digits)
                    j += 2
                else:
                    digits.append(cur.digits + "0")
                    j += 1
                prev_kind = _K_TENS
                continue
            if kind == _K_GROUP:
                groups += 1
                thousands |= cur.thousands
                decimal |= cur.decimal
            elif kind in {_K_SPELLED, _K_WEAK}:
                spelled += 1
            digits.append(cur.digits)
            prev_kind = kind
            j += 1
        if j == i:
            i += 1
            continue
        first = i
        # "Oh, five ..." / a run that is only "oh": the interjection is not a zero.
        while first < j and (lead := nums[first]) is not None and lead.kind == _K_WEAK and (
            toks[first].phrase_end or first + 1 == j
        ):
            first += 1
            digits = digits[1:]
            spelled -= 1
        if first < j and digits:
            runs.append(_Run(first, j, "".join(digits), groups, spelled, thousands, decimal))
        i = j
    return runs


def _is_year_list(nums: Sequence[_Num | None], run: _Run) -> bool:
    """ "2019, 2020": years listed, not an identifier."""
    years = [g for g in nums[run.first : run.last] if g is not None and g.kind == _K_GROUP]
    return bool(years) and all(
        len(g.digits) == 4 and 1900 <= int(g.digits) <= 2099 for g in years
    )


def _digit_spans(
    toks: Sequence[_Tok],
    nums: Sequence[_Num | None],
    trig: Sequence[str | None],
    skip: set[int],
) -> list[WordSpan]:
    runs = _digit_runs(toks, nums, skip)
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
            after.bare in _QUANTITY_WORDS or (after.raw[:1] == "%")
        )
        before = toks[run.first - 1].bare if run.first else ""
        ctx, gap = _context_before(trig, run.first, in_run, toks)
        if ctx is None and count >= 3:
            ctx, gap = _context_after(trig, run.last, in_run, toks), 0
        if ctx == _EMAIL:
            ctx = None
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
            looks_like_time = ctx != _DOB and not ending_in and (
                (before in _TIME_PREPOSITIONS | _WEEKDAYS and count <= 4)
                or (before == "at" and single and count <= 2 and int(run.digits) <= 12)
            )
            if count < 7 and (quantity or looks_like_time):
                entity = None
            elif ctx == _CONTINUED:
                entity, score = out[-1].entity, out[-1].score
            elif count >= 7 or (count >= 3 and gap <= (3 if ctx == _DOB else 1)):
                entity = _entity_for(ctx, run.digits)
            elif gap == 0 and (run.groups or run.spelled >= 2):
                # "my number is 880" (the rest still to come), "number is 1 3 here".
                entity = _entity_for(ctx, run.digits)
                score = SCORE_WEAK
        elif at_end and count == 6 and run.groups >= 2 and not quantity:
            # Probably the start of a long number whose trigger the ASR misheard
            # ("my home is 759-595"): mask now, the rest arrives in a moment.
            if not _is_year_list(nums, run) and not run.thousands:
                entity, score = (PHONE_NUMBER if count <= 11 else ACCOUNT_NUMBER), SCORE_WEAK
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
                while first > 0 and run.first - first < 3 and _is_capital_letter(toks[first - 1]):
                    first -= 1
            if first > 0 and toks[first - 1].bare == "plus":  # "plus 1 646 555 0115"
                first -= 1
            out.append(WordSpan(first, run.last, entity, score))
    return out


def _repeats(toks: Sequence[_Tok], run: _Run) -> int:
    """The longest streak of one word repeated inside ``run``."""
    best = streak = 0
    prev = None
    for j in range(run.first, run.last):
        word = toks[j].bare
        streak = streak + 1 if word == prev else 1
        best = max(best, streak)
        prev = word
    return best


def _is_capital_letter(tok: _Tok) -> bool:
    core = tok.raw.strip(_EDGE)
    return len(core) == 1 and core.isalpha() and core.isupper() and core != "I"


def _entity_for(ctx: str, digits: str) -> str:
    count = len(digits)
    if ctx == _SSN:
        return US_SSN
    if ctx == _CARD:
        return CREDIT_CARD
    if ctx == _ACCOUNT:
        return ACCOUNT_NUMBER
    if ctx == _DOB:
        return DATE_OF_BIRTH
    if ctx in {_ZIP, _ADDRESS}:
        return LOCATION
    if 13 <= count <= 19 and (ctx == _GENERIC or luhn_ok(digits)):
        return CREDIT_CARD
    return PHONE_NUMBER


# -------------------------------------------------------------------------- dates


def _date_spans(toks: Sequence[_Tok], nums: Sequence[_Num | None]) -> list[tuple[int, int]]:
    """Calendar dates: "May 4, 1997", "the fourth of May", "05/04/1997", "October 10"."""
    spans: list[tuple[int, int]] = []
    for i, tok in enumerate(toks):
        num = nums[i]
        if num is not None and num.kind == _K_DATE:
            spans.append((i, i + 1))
            continue
        if tok.bare not in _MONTHS:
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
        k = i
        if k >= 1 and toks[k - 1].bare == "of":
            d = _take_day_backwards(toks, nums, k - 1)
            if d < k - 1:
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


def _day_value(toks: Sequence[_Tok], nums: Sequence[_Num | None], j: int) -> tuple[int, int]:
    """(day, words used) for a day of month at word ``j``; (0, 0) when there is none."""
    n = len(toks)
    if j >= n:
        return 0, 0
    num = nums[j]
    bare = toks[j].bare
    if num is not None and num.kind in {_K_GROUP, _K_ORDINAL} and len(num.digits) <= 2:
        return int(num.digits), 1
    if bare in _ORDINALS:
        return _ORDINALS[bare], 1
    if bare in _TENS and j + 1 < n:
        nxt = toks[j + 1].bare
        if nxt in _ORDINALS and _ORDINALS[nxt] < 10:
            return int(_TENS[bare]) * 10 + _ORDINALS[nxt], 2
    if num is not None and num.kind in {_K_SPELLED, _K_TEEN}:
        return int(num.digits), 1
    return 0, 0


def _take_day(toks: Sequence[_Tok], nums: Sequence[_Num | None], j: int) -> int:
    if j < len(toks) and toks[j].bare == "the":
        value, used = _day_value(toks, nums, j + 1)
        return j + 1 + used if 1 <= value <= 31 else j
    value, used = _day_value(toks, nums, j)
    return j + used if 1 <= value <= 31 else j


def _take_day_backwards(toks: Sequence[_Tok], nums: Sequence[_Num | None], of: int) -> int:
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


def _take_year(toks: Sequence[_Tok], nums: Sequence[_Num | None], j: int) -> int:
    n = len(toks)
    if j < n and toks[j].bare == "of":  # "May of 1997"
        if j + 1 < n and _is_year_start(nums[j + 1]):
            j += 1
        else:
            return j
    if j + 1 < n and toks[j].bare == "in":  # "the 4th of July in 1976"
        num = nums[j + 1]
        if num is not None and num.kind == _K_GROUP and len(num.digits) == 4:
            return j + 2
    if j >= n:
        return j
    num = nums[j]
    if num is not None and num.kind == _K_GROUP and len(num.digits) in (2, 4):
        return j + 1
    # Spelled years: "nineteen ninety seven", "two thousand and three".
    k = j
    while k < n and k - j < 4:
        cur = nums[k]
        spelled = cur is not None and cur.kind in {_K_SPELLED, _K_TEEN, _K_TENS, _K_SCALE, _K_WEAK}
        if spelled or (toks[k].bare == "and" and k > j):
            k += 1
        else:
            break
    while k > j and toks[k - 1].bare == "and":
        k -= 1
    return k if k - j >= 2 else j


def _is_year_start(num: _Num | None) -> bool:
    return num is not None and num.kind in {_K_GROUP, _K_SPELLED, _K_TEEN, _K_TENS}


def _dob_spans(
    toks: Sequence[_Tok],
    trig: Sequence[str | None],
    dates: Sequence[tuple[int, int]],
) -> list[WordSpan]:
    n = len(toks)
    out = []
    for first, last in dates:
        lo = max(0, first - 8)
        hi = min(n, last + _LOOKAHEAD + 1)
        if any(trig[j] == _DOB for j in range(lo, first)) or any(
            trig[j] == _DOB for j in range(last, hi)
        ):
            out.append(WordSpan(first, last, DATE_OF_BIRTH, SCORE_CONTEXT))
    return out


# ---------------------------------------------------------------------- addresses


_HOUSE_NUMBER_KINDS = {_K_GROUP, _K_SPELLED, _K_TEEN, _K_TENS, _K_SCALE}


def _kind(nums: Sequence[_Num | None], j: int) -> int | None:
    num = nums[j]
    return None if num is None else num.kind


def _is_name_word(tok: _Tok, num: _Num | None) -> bool:
    if num is not None and num.kind == _K_ORDINAL:
        return True  # "5th Avenue"
    bare = tok.bare
    return (
        bool(bare)
        and bare.replace("'", "").replace("-", "").isalpha()
        and bare not in _NOT_STREET_NAME
        and bare not in _STREET_SUFFIXES
    )


def _house_number_start(toks: Sequence[_Tok], nums: Sequence[_Num | None], end: int) -> int:
    """Start of a house number ending just before word ``end``; ``end`` when none."""
    if end <= 0:
        return end
    num = nums[end - 1]
    if num is not None and num.kind == _K_GROUP and 1 <= len(num.digits) <= 6 and not num.decimal:
        return end - 1
    if re.fullmatch(r"\d{1,5}[a-z]", toks[end - 1].bare):  # "36b"
        return end - 1
    j = end
    while j > 0 and end - j < 4:
        cur = nums[j - 1]
        spoken_oh = toks[j - 1].bare == "or" and j - 1 > 0 and j < end  # "one or two"
        if (cur is not None and cur.kind in {_K_SPELLED, _K_TEEN, _K_TENS, _K_SCALE, _K_WEAK}) or (
            spoken_oh
        ):
            j -= 1
        else:
            break
    return j if j < end and _kind(nums, j) != _K_WEAK else end


def _address_spans(
    toks: Sequence[_Tok], nums: Sequence[_Num | None], trig: Sequence[str | None]
) -> list[WordSpan]:
    n = len(toks)
    out: list[WordSpan] = []
    for s, tok in enumerate(toks):
        if tok.bare not in _STREET_SUFFIXES:
            continue
        if tok.bare in {"st", "dr"} and s + 1 < n and toks[s + 1].title and not tok.phrase_end:
            continue  # "St. Louis", "Dr. Smith" read forwards, not a suffix
        # Street name: 1-3 words before the suffix.
        k = s
        while k > 0 and s - k < 3 and _is_name_word(toks[k - 1], nums[k - 1]):
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
            if not any(trig[j] == _ADDRESS for j in range(lo, k)) or not toks[k].title:
                continue
            start = k
        end = _address_tail(toks, nums, s + 1)
        out.append(WordSpan(start, end, LOCATION, SCORE_CONTEXT))
    # "... live at 36 maple" cut by the window end, or an address whose suffix was lost.
    for i in range(n):
        if trig[i] != _ADDRESS:
            continue
        j = i + 1
        while j < n and trig[j] == _ADDRESS:
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
        while k < n and k - house_end < 4 and _is_name_word(toks[k], nums[k]):
            k += 1
            if toks[k - 1].phrase_end:
                break
        if k == n or toks[i].bare == "address":
            out.append(WordSpan(j, k, LOCATION, SCORE_WEAK))
    return out


def _address_tail(toks: Sequence[_Tok], nums: Sequence[_Num | None], j: int) -> int:
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
        if not bare.replace("'", "").replace("-", "").isalpha() or bare in _STOP:
            break
        if bare in _QUANTITY_WORDS or bare in _MONTHS:
            break
        j += 1
        city += 1
        if tok.phrase_end:
            break
    # State and ZIP.
    while j < n and not toks[j - 1].sentence_end:
        bare = toks[j].bare
        num = nums[j]
        core = toks[j].raw.strip(_EDGE)
        state = bare in _US_STATES or (len(core) == 2 and core.isupper())  # "OR", "TX"
        zip_code = num is not None and num.kind == _K_GROUP and len(num.digits) in (5, 9)
        if state or zip_code:
            j += 1
        else:
            break
    return j


# ------------------------------------------------------------------------- emails

_EMAIL_AT_RE = re.compile(
    rf"(?<![\w.+\-])(?!(?:me|us|him|her|them|you|it)@)[a-z0-9][\w.%+\-]*@[a-z0-9][\w\-]*"
    rf"(?:\.[\w\-]+)*\.(?:{_TLDS})\b"
)
_EMAIL_AT_PROVIDER_RE = re.compile(
    rf"(?<![\w.+\-])(?!(?:me|us|him|her|them|you|it)@)[a-z0-9][\w.%+\-]*@(?:{_EMAIL_PROVIDERS})\b"
)
# Whisper often drops the "@": "michael.johnson.example.com" (three or more labels).
_EMAIL_NO_AT_RE = re.compile(
    rf"(?<![\w.@])(?!www\.)[a-z][\w\-]*(?:\.[\w\-]+){{1,}}\.(?:{_TLDS})\b"
)
_DOT_CHAIN_RE = re.compile(r"(?<![\w.@])(?!www\.)[a-z][a-z0-9_\-]+(?:\.[a-z][a-z0-9_\-]+){2,}")
_NOT_DOT_EMAIL_RE = re.compile(
    r"(?<![\w.@])[a-z][\w\-]*(?:(?: not |\.)[a-z][\w\-]*)*(?: not |\.)(?:com|org|net|edu)\b"
)
_EMAIL_PARTIAL_RE = re.compile(
    r"(?<![\w.@])(?!www\.|(?:me|us|him|her|them|you|it)@)"
    r"[a-z][\w.\-]*(?:@[\w.\-]*|\.[\w\-]+\.[\w\-]+)[.@]?$"
)


def _email_spans(toks: Sequence[_Tok], trig: Sequence[str | None]) -> list[WordSpan]:
    """Emails written or spoken ("john dot smith at gmail dot com")."""
    n = len(toks)
    pieces: list[str] = []
    owner: list[int] = []
    glue_next = False
    for i, tok in enumerate(toks):
        bare = tok.bare
        op = {"dot": ".", "at": "@", "underscore": "_", "dash": "-", "hyphen": "-"}.get(bare)
        core = tok.low.strip(" ,;:!?\"'()…")
        core = core.rstrip(".")
        piece = op if op is not None else core
        starts_glued = op is not None or (piece[:1] in {".", "@", "_", "-"})
        if pieces and not (glue_next or starts_glued):
            pieces.append(" ")
            owner.append(-1)
        pieces.append(piece)
        owner.extend([i] * len(piece))
        glue_next = op is not None or piece[-1:] in {".", "@", "_", "-"}
    stream = "".join(pieces)
    out: list[WordSpan] = []

    def emit(start: int, end: int, score: float) -> None:
        idx = [owner[c] for c in range(start, end) if owner[c] >= 0]
        if idx:
            out.append(WordSpan(min(idx), max(idx) + 1, EMAIL_ADDRESS, score))

    for m in _EMAIL_AT_RE.finditer(stream):
        emit(m.start(), m.end(), SCORE_CONTEXT)
    for m in _EMAIL_AT_PROVIDER_RE.finditer(stream):
        emit(m.start(), m.end(), SCORE_CONTEXT)
    for m in _EMAIL_NO_AT_RE.finditer(stream):
        first_word = owner[m.start()]
        email_ctx = _EMAIL in trig[max(0, first_word - _LOOKBACK) : first_word]
        if m.group(0).count(".") >= 2 or email_ctx:  # three labels, or "email" before
            emit(m.start(), m.end(), SCORE_CONTEXT if email_ctx else SCORE_SHAPE)
    # "mario.mit.mit.mit": three or more dotted labels is an email the ASR mangled.
    for m in _DOT_CHAIN_RE.finditer(stream):
        emit(m.start(), m.end(), SCORE_WEAK)
    # "example not org": the ASR hears "dot" as "not"; only when a TLD closes the chain.
    for m in _NOT_DOT_EMAIL_RE.finditer(stream):
        labels = re.split(r" not |\.", m.group(0))
        if " not " in m.group(0) and len(labels) >= 3:
            emit(m.start(), m.end(), SCORE_WEAK)
    out.extend(_email_target_spans(toks))
    # Cut by the window end: "my email is john dot smith at", "Michael.Johnson.example".
    partial = _EMAIL_PARTIAL_RE.search(stream)
    if partial and n:
        first_word = owner[partial.start()]
        email_ctx = _EMAIL in trig[max(0, first_word - _LOOKBACK) : first_word]
        text = partial.group(0)
        labels = [label for label in re.split(r"[.@]", text) if len(label) >= 2]
        provider = re.search(rf"@(?:{_EMAIL_PROVIDERS})\b", text)
        domain = text.partition("@")[2]
        shaped = len(labels) >= 3 or (len(labels) >= 2 and "." in domain.rstrip("."))
        if (email_ctx and ("." in text or "@" in text)) or provider or shaped:
            emit(partial.start(), partial.end(), SCORE_WEAK)
    return out


_SEND_VERBS = {"send", "sent", "sending", "end", "forward", "forwarded", "forwarding", "mail",
               "mailed", "email", "emailed", "e-mail", "e-mailed"}
_EMAIL_VERBS = {"email", "emailed", "e-mail", "e-mailed"}
_SENT_THINGS = {"receipt", "receipts", "invoice", "invoices", "confirmation", "copy", "link",
                "tracking", "updates", "password", "reset", "statements",
                "details", "statement", "bill", "documents", "document", "form", "forms",
                "email", "e-mail", "quote", "report", "ticket", "tickets", "code"}
_SIGN_OFFS = {"thanks", "thank", "please", "cheers", "bye", "okay", "ok"}
# Inside a spoken address; "not"/"and" are how the ASR hears "dot"/"at".
_EMAIL_JOINERS = {"at", "dot", "underscore", "dash", "hyphen", "not", "and"}


# The end of an address: "example.com", or a spoken "... dot com".
_ENDS_WITH_TLD = re.compile(rf"\.(?:{_TLDS})$|^(?:com|net|org|edu|gov)$")


def _email_target_spans(toks: Sequence[_Tok]) -> list[WordSpan]:
    """What follows "send the receipt to" / "email it to", however the ASR wrote it.

    Whisper often garbles a spoken email ("linda dot davis at example dot com" ->
    "Linda not David and M.M."), so the words between "to" and the sign-off are
    the address. Only after something one sends by email (receipt, invoice, copy...)
    or an explicit "email ... to/at", and only when the target starts like a name.
    """
    n = len(toks)
    out = []
    for i, tok in enumerate(toks):
        if tok.bare not in _SEND_VERBS:
            continue
        to = next((m for m in range(i + 1, min(n, i + 6)) if toks[m].bare in {"to", "at"}), None)
        if to is None or any(toks[m].sentence_end for m in range(i, to)):
            continue
        if tok.bare not in _EMAIL_VERBS and not any(
            toks[m].bare in _SENT_THINGS for m in range(i + 1, to)
        ):
            continue
        start = to + 1
        if start >= n:
            continue
        head = toks[start]
        joined = start + 1 < n and toks[start + 1].bare in {"underscore", "dot", "dash"}
        if not head.bare or (head.bare in _STOP and not joined) or not head.bare[0].isalpha():
            continue
        spoken = any(toks[m].bare in _EMAIL_JOINERS for m in range(start + 1, min(n, start + 6)))
        if not (head.title or spoken or "." in head.bare or "@" in head.bare):
            continue  # "send the invoice to accounts payable"
        sign_off = next(
            (m for m in range(start + 1, min(n, start + 11)) if toks[m].bare in _SIGN_OFFS), None
        )
        if sign_off is not None and not any(
            toks[m].raw[-1:] in "?!" for m in range(start, sign_off)
        ):
            end = sign_off
        else:
            end = start
            while end < n and end - start < 8 and (
                toks[end].bare not in _STOP or toks[end].bare in _EMAIL_JOINERS
            ):
                end += 1
                last = toks[end - 1]
                if (last.phrase_end and not last.raw.startswith(".")) or _ENDS_WITH_TLD.search(
                    last.bare
                ):
                    break
            while end < n and end > start + 1 and toks[end - 1].bare in _EMAIL_JOINERS:
                end -= 1  # "... to Maria and" + more words: not the "and"
        out.append(WordSpan(start, end, EMAIL_ADDRESS, SCORE_WEAK))
    out.extend(_email_is_spans(toks))
    return out


def _email_is_spans(toks: Sequence[_Tok]) -> list[WordSpan]:
    """ "my email is X ... dot com", "email me, it's aye shall not call, get a email.com":
    after "email ... is" everything up to the word that ends the address is the address.
    """
    n = len(toks)
    out = []
    for i, tok in enumerate(toks):
        if tok.bare not in {"email", "e-mail"}:
            continue
        start = next(
            (m + 1 for m in range(i + 1, min(n, i + 5)) if toks[m].bare in {"is", "it's", "was"}),
            None,
        )
        if start is None or start >= n:
            continue
        window = range(start, min(n, start + 12))
        ends = (m + 1 for m in window if _ENDS_WITH_TLD.search(toks[m].bare))
        end = next(ends, None)
        if end is not None and not any(toks[m].sentence_end for m in range(start, end - 1)):
            out.append(WordSpan(start, end, EMAIL_ADDRESS, SCORE_WEAK))
    return out


# -------------------------------------------------------------------------- names

def _phrases(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(phrase.split()) for phrase in text.split(" | "))


# Before a name, certainly: any following name-like words, lower-case too after the
# "my ..." forms ("my name is linda smith").
_STRONG_NAME_TRIGGERS = _phrases(
    "my name is | my name's | name is | name's | first name is | last name is | surname is"
    " | full name is | i am called | name on the card is | name of the card is"
    " | name on the account is | name on the card | cardholder name is | card holder is"
    " | cardholder is | account holder is"
)
_LOWERCASE_NAME_TRIGGERS = set(_phrases(
    "my name is | my name's | first name is | last name is | surname is | full name is"
    " | i am called"
))  # fmt: skip
# Before a name, maybe: only capitalised words, with more evidence (see _person_spans).
_WEAK_NAME_TRIGGERS = _phrases(
    "this is | it's | it is | i'm | i am | speaking with | speak with | speak to"
    " | talking to | talking with | talk to | spoke with | spoke to | ask for | asking for"
    " | call me | mr | mrs | ms | miss | dr | mister | doctor | dear | called | named"
)
_PERSON_NOUNS = {
    "agent", "guy", "man", "woman", "lady", "person", "rep", "representative", "friend",
    "someone", "somebody", "girl", "boy", "son", "daughter", "nurse", "technician",
    "manager", "supervisor", "doctor", "gentleman", "colleague", "husband", "wife",
}  # fmt: skip
_HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "mister", "doctor", "dear"}


def _name_like(tok: _Tok) -> bool:
    bare = tok.bare
    return (
        len(bare) >= 2
        and bare.replace("'", "").replace("-", "").isalpha()
        and bare not in _NOT_NAMES
    )


def _match_at(bare: Sequence[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(bare[i : i + len(phrase)]) == phrase


def _person_spans(toks: Sequence[_Tok], named_words: frozenset[int]) -> list[WordSpan]:
    n = len(toks)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    for i in range(n):
        for phrase in _STRONG_NAME_TRIGGERS:
            if not _match_at(bare, i, phrase):
                continue
            j = i + len(phrase)
            while j < n and bare[j] in _FILLERS:
                j += 1
            lower_ok = phrase in _LOWERCASE_NAME_TRIGGERS
            k = j
            while k < n and k - j < 3 and (
                (_name_like(toks[k]) and (lower_ok or toks[k].title))
                or (_is_capital_letter(toks[k]) and k + 1 < n and _name_like(toks[k + 1]))
            ):  # "Name on the card is, K -Shabel"
                k += 1
                if toks[k - 1].phrase_end:
                    break
            if k > j:
                out.append(WordSpan(j, k, PERSON, SCORE_CONTEXT))
            break
        for phrase in _WEAK_NAME_TRIGGERS:
            if not _match_at(bare, i, phrase):
                continue
            j = i + len(phrase)
            k = j
            while k < n and k - j < 3 and toks[k].title and _name_like(toks[k]):
                k += 1
                if toks[k - 1].phrase_end:
                    break
            if k == j:
                break
            follower = bare[k] if k < n else ""
            greeted = i == 0 or toks[i - 1].phrase_end or bare[i - 1] in _GREETINGS
            known = any(bare[m] in _FIRST_NAMES or bare[m] in _SURNAMES for m in range(j, k))
            tagged = any(m in named_words for m in range(j, k))
            if phrase[0] in _HONORIFICS:
                ok = True
            elif phrase in {("called",), ("named",)}:
                # "an agent called Marcus", not "a company called Acme"
                ok = known or (i > 0 and bare[i - 1] in _PERSON_NOUNS)
            elif phrase in {("this", "is"), ("it's",), ("it", "is")}:
                # "Hi, this is Maria Davis calling", "it's Hannah." (not "This is Sparta!")
                ok = follower in _NAME_FOLLOWERS or (
                    known and (greeted or k == n or toks[k - 1].phrase_end)
                )
            else:
                ok = known or tagged
            if ok:
                out.append(WordSpan(j, k, PERSON, SCORE_CONTEXT))
            break
    # "Linda here", "Maria speaking" at the start of a turn; "Davis is my last name";
    # "in my mother's name, Hannah Nguyen".
    for i in range(n):
        if bare[i] == "name" and toks[i].raw[-1:] in ",:" and i + 1 < n:
            k = i + 1
            while k < n and k - i <= 3 and toks[k].title and _name_like(toks[k]):
                k += 1
                if toks[k - 1].phrase_end:
                    break
            if k > i + 1:
                out.append(WordSpan(i + 1, k, PERSON, SCORE_CONTEXT))
        if bare[i] in {"here", "speaking"} and i >= 1:
            k = i
            j = k
            while j > 0 and k - j < 2 and toks[j - 1].title and _name_like(toks[j - 1]):
                j -= 1
            if j < k and (j == 0 or toks[j - 1].phrase_end or bare[j - 1] in _GREETINGS):
                out.append(WordSpan(j, k, PERSON, SCORE_CONTEXT))
        if _match_at(bare, i, ("is", "my")) and any(
            _match_at(bare, i + 2, p) for p in (("name",), ("first", "name"), ("last", "name"),
                                                ("surname",), ("full", "name"))
        ):
            j = i
            while j > 0 and i - j < 3 and _name_like(toks[j - 1]) and not (
                j < i and toks[j - 1].phrase_end
            ):
                j -= 1
            if j < i:
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
    # A well-known first name with a surname ("Lisa Brown") or addressed to someone
    # ("Okay Emily, you're set", "... birth Emily?"); alone in prose it may be a character.
    for i, tok in enumerate(toks):
        if not (tok.title and tok.bare in _FIRST_NAMES) or tok.bare in _AMBIGUOUS_FIRST_NAMES:
            continue
        k = i + 1
        if (
            k < n
            and not tok.phrase_end
            and toks[k].title
            and _name_like(toks[k])
            and toks[k].bare in _SURNAMES
        ):
            out.append(WordSpan(i, k + 1, PERSON, SCORE_SHAPE))
        elif (i and bare[i - 1] in _GREETINGS | {"thanks", "thank", "you"}) or (
            tok.phrase_end and i and toks[i - 1].raw[-1:] not in ",."
        ):
            out.append(WordSpan(i, k, PERSON, SCORE_SHAPE))
    out.extend(_spelled_letter_spans(toks))
    return out


_SPELL_CONTEXT = {"spell", "spelled", "spelling", "spells", "name", "name's", "that's", "it's",
                  "surname", "initials", "letters"}
_LETTERS_IN_WORD_RE = re.compile(r"(?:[a-z][-.]){2,}[a-z]\.?")


def _spelled_letter_spans(toks: Sequence[_Tok]) -> list[WordSpan]:
    """Spelled-out letters: "J O H N", "j. o. h. n.", "J-O-H-N", "S M I T H"."""
    n = len(toks)
    out = []
    i = 0
    while i < n:
        spell_ctx = any(toks[m].bare in _SPELL_CONTEXT for m in range(max(0, i - 6), i))
        spelled_word = _LETTERS_IN_WORD_RE.fullmatch(toks[i].low.lstrip("-"))
        if spelled_word:
            letters = sum(c.isalpha() for c in spelled_word.group(0))
            if letters >= 5 or spell_ctx:  # "it's J-O-H-N"; "U.S.A.", "the i-m-x" are not
                out.append(WordSpan(i, i + 1, PERSON, SCORE_CONTEXT))
            i += 1
            continue
        j = i
        while j < n and len(toks[j].bare) == 1 and toks[j].bare.isalpha():
            j += 1
            if toks[j - 1].sentence_end and toks[j - 1].raw[-1] != ".":
                break
        letters = j - i
        only_words = all(toks[m].bare in _LETTER_WORDS for m in range(i, j))
        # Without "spell"/"name" before, a short run is more often an acronym ("U S A")
        # or a garbled word ("the i -m -x -n" for "the Amex") than a spelled name.
        if (letters >= 5 and not only_words) or (letters >= 2 and spell_ctx):
            out.append(WordSpan(i, j, PERSON, SCORE_CONTEXT))
        elif spell_ctx and j == i and i < n and toks[i].raw.strip(_EDGE).isupper() and len(
            toks[i].bare
        ) >= 2:
            out.append(WordSpan(i, i + 1, PERSON, SCORE_CONTEXT))
        i = max(j, i + 1)
    return out


def plausible_person(words: Sequence[str], first: int, last: int) -> tuple[int, int] | None:
    """Trim a NER PERSON span to its name words, or reject it as a false positive.

    Kept: spans made of common first names and surnames ("Maria Davis"), or with name
    context before or after ("this is X", "Dr. X", "X speaking", "X said"). Dropped:
    greetings and function words at the edges ("Bye", "Okay"), and names with no
    context that are not all common ones: a misheard "and I" -> "Zendai", a business
    "Sunrise Dental", a hypothesis "Howdy Mary Demois", an author in a lecture.
    """
    toks = _tokens(words)
    while first < last and not (toks[first].title and _name_like(toks[first])):
        first += 1
    while last > first and not (toks[last - 1].title and _name_like(toks[last - 1])):
        last -= 1
    if first >= last:
        return None
    names = [toks[j].bare for j in range(first, last)]
    known = [n in _FIRST_NAMES or n in _SURNAMES for n in names]
    if all(known) and (len(names) >= 2 or names[0] not in _AMBIGUOUS_FIRST_NAMES):
        return first, last
    before = [t.bare for t in toks[max(0, first - 3) : first]]
    after = toks[last].bare if last < len(toks) else ""
    context = (
        (before[-1:] and before[-1] in _NAME_PRECEDERS)
        or before[-2:] in (["this", "is"], ["name", "is"], ["i", "am"], ["it", "is"])
        or after in {"speaking", "here", "calling"}
        or after in _SPEECH_VERBS
    )
    return (first, last) if context else None


# --------------------------------------------------------------------------- entry


def find_spoken_entities(
    words: Sequence[str],
    entities: Iterable[str] = ENTITIES,
    *,
    named_words: frozenset[int] = frozenset(),
) -> list[WordSpan]:
    """PII spans found by the speech rules, merged per entity and sorted.

    ``words`` are Whisper's words (leading spaces optional). ``named_words`` are the
    indices of words inside a NER entity of any kind (optional; it confirms the
    "I'm X" / "speaking with X" name rules). Safe to call concurrently.
    """
    wanted = frozenset(entities)
    if not words or not wanted:
        return []
    toks = _tokens(words)
    nums = [_classify(t) for t in toks]
    trig = _triggers(toks)

    spans: list[WordSpan] = []
    dates = _date_spans(toks, nums)
    date_words = {j for first, last in dates for j in range(first, last)}
    if DATE_OF_BIRTH in wanted:
        spans.extend(_dob_spans(toks, trig, dates))
        n = len(toks)
        # "my date of birth is May" cut by the window end.
        if n and toks[-1].bare in _MONTHS and any(
            trig[j] == _DOB for j in range(max(0, n - 1 - _LOOKBACK), n - 1)
        ):
            spans.append(WordSpan(n - 1, n, DATE_OF_BIRTH, SCORE_WEAK))
    trigger_words = {j for j, cat in enumerate(trig) if cat is not None}
    spans.extend(_digit_spans(toks, nums, trig, date_words | trigger_words))
    if LOCATION in wanted:
        spans.extend(_address_spans(toks, nums, trig))
    if EMAIL_ADDRESS in wanted:
        spans.extend(_email_spans(toks, trig))
    if PERSON in wanted:
        spans.extend(_person_spans(toks, named_words))
    return merge_spans(s for s in spans if s.entity in wanted)


def merge_spans(spans: Iterable[WordSpan]) -> list[WordSpan]:
    """Merge overlapping or touching spans of the same entity; sort by position."""
    by_entity: dict[str, list[WordSpan]] = {}
    for span in spans:
        if span.last > span.first:
            by_entity.setdefault(span.entity, []).append(span)
    out: list[WordSpan] = []
    for entity, group in by_entity.items():
        group.sort(key=lambda s: (s.first, s.last))
        cur = group[0]
        for span in group[1:]:
            if span.first <= cur.last:
                cur = WordSpan(cur.first, max(cur.last, span.last), entity,
                               max(cur.score, span.score))
            else:
                out.append(cur)
                cur = span
        out.append(cur)
    out.sort(key=lambda s: (s.first, s.last, s.entity))
    return out
