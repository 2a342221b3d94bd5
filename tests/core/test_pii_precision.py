"""What a digit run is called, given the cue around it (and its shape when there is
none); what is an email and what is a web or IP address.

Each table is one confusion the rules used to make: a phone number, card number,
SSN, health or confirmation number read as an ACCOUNT_NUMBER, a tax id read as an
SSN, a URL or IP address read as an EMAIL_ADDRESS. Cases are written as in
``test_pii.py``: words separated by single spaces (each gets Whisper's leading
space; ``~word`` has none), ``{ ... }`` around the words that must be flagged, with
the entity of each group. Every word outside braces must NOT be flagged, and a
flagged digit run carries ONE digit label (no ACCOUNT_NUMBER left over a phone
number).
"""

from __future__ import annotations

import pytest

from streamserver.core.pii import (
    ACCOUNT_NUMBER,
    CREDIT_CARD,
    EMAIL_ADDRESS,
    PHONE_NUMBER,
    US_SSN,
    find_spoken_entities,
)
from streamserver.core.pii.digits import digit_groups
from streamserver.core.pii.entities import (
    BANKING_INFORMATION,
    CREDIT_CARD_CVV,
    DRIVERS_LICENSE,
    HEALTHCARE_NUMBER,
    NUMBER_SEQUENCE,
    PASSPORT_NUMBER,
    PIN,
    TAX_ID,
)
from streamserver.core.pii.numbers import classify_number, digit_runs
from streamserver.core.pii.text import tokenize
from streamserver.core.types import WordSpan
from tests.core.pii_cases import parse

# The labels a digit run can get: one of them per run.
DIGIT_ENTITIES = frozenset({
    PHONE_NUMBER, CREDIT_CARD, US_SSN, ACCOUNT_NUMBER, HEALTHCARE_NUMBER, NUMBER_SEQUENCE,
    TAX_ID, BANKING_INFORMATION, CREDIT_CARD_CVV, PIN, DRIVERS_LICENSE, PASSPORT_NUMBER,
})  # fmt: skip




def check(case: str, entities: tuple[str, ...], wanted: frozenset[str]) -> None:
    words, groups = parse(case)
    assert len(groups) == len(entities), "one entity per brace group"
    spans = find_spoken_entities(words, wanted)
    shown = [("".join(words[s.first : s.last]), s.entity) for s in spans]
    expected = {j for first, last in groups for j in range(first, last)}
    flagged = {j for s in spans for j in range(s.first, s.last)}
    extra = sorted(flagged - expected)
    assert not extra, f"over-redacted words {[words[j] for j in extra]}: {shown}"
    for (first, last), entity in zip(groups, entities, strict=True):
        for j in range(first, last):
            hits = {s.entity for s in spans if s.first <= j < s.last}
            assert hits == {entity}, f"{words[j]!r} is {hits or 'not flagged'}, not {entity}"


# ------------------------------------------------------------------ digit runs

PHONES = [
    # Split by a pause word, or an area code said on its own first.
    ("The area code is {617, and then 555 0134.}", (PHONE_NUMBER,)),
    ("So it's {312-555-01, uh, 77.}", (PHONE_NUMBER,)),
    ("{646 555, um, 0143} is my cell.", (PHONE_NUMBER,)),
    # A country code: 8 to 15 digits after "plus" / "+".
    ("It's {plus 44 161 496 0123.}", (PHONE_NUMBER,)),
    ("{+49 30 9018 2200} is the office line.", (PHONE_NUMBER,)),
    # The extension belongs to the number.
    ("The front desk is {415-555-0100, extension 12.}", (PHONE_NUMBER,)),
    # Cut by the window end after the area code: the rest is still to come.
    ("The area code is {617, then 555}", (PHONE_NUMBER,)),
]  # fmt: skip

CARDS = [
    ("Okay it's {4000 0566, um, 5566 5556.}", (CREDIT_CARD,)),
    # A group said again and again is no ASR loop when the whole is Luhn-valid.
    ("It's {40 00 00 00 00 00 00 02.}", (CREDIT_CARD,)),
]  # fmt: skip

SSNS = [
    # Nine digits said 3-2-4 with a valid area: an SSN, not an account number.
    ("It's {four one two, three three, nine eight seven six.}", (US_SSN,)),
    ("{287 65 4321,} if you need it.", (US_SSN,)),
    ("The number is {518-26-4409.}", (US_SSN,)),
    ("Okay, {287, uh, 65, 4321.}", (US_SSN,)),
    # 9xx-7x: an ITIN; area 666 or no grouping: no SSN shape.
    ("It's {912 78 4567.}", (TAX_ID,)),
    ("It's {666 12 3456.}", (ACCOUNT_NUMBER,)),
    ("It's {5 1 8 2 6 4 4 0 9.}", (ACCOUNT_NUMBER,)),
]  # fmt: skip

HEALTH = [
    # "subscriber ID" is the health plan's term; a cable subscriber's is an account.
    ("The subscriber number is {7 7 0 4 1 2 9 8.}", (HEALTHCARE_NUMBER,)),
    ("My cable subscriber ID is {4 4 0 1 9 2 7.}", (ACCOUNT_NUMBER,)),
    # A card named after an insurer is a health card.
    ("The ID on my Aetna card is {A B 4 4 1 9 0 2 7.}", (HEALTHCARE_NUMBER,)),
    ("Member number on the Blue Shield card, {C 7 7 1 0 2 4 4.}", (HEALTHCARE_NUMBER,)),
    # Still an account without health talk.
    ("My loyalty card number is {6 6 1 0 2 8 4 7.}", (ACCOUNT_NUMBER,)),
]  # fmt: skip

SEQUENCES = [
    # Confirmation numbers are digit sequences, not accounts.
    ("Your confirmation number is {5 5 2 0 1 9.}", (NUMBER_SEQUENCE,)),
    ("{7 7 3 0 1 4 2,} that's the confirmation code.", (NUMBER_SEQUENCE,)),
    ("The account number is {4 4 0 9 1 2 7.}", (ACCOUNT_NUMBER,)),
]  # fmt: skip

DIGIT_CASES = PHONES + CARDS + SSNS + HEALTH + SEQUENCES

# A short run right after "number" that is complete: a rank, a route, a unit.
DIGIT_NEGATIVES = [
    "We finished number 2 in the league.",
    "Bus number 14 comes every ten minutes.",
    "She lives at the blue house, number 9.",
    "Room number 210 is on the left.",
    "I was number 37 in the queue this morning.",
]


@pytest.mark.parametrize(("case", "entities"), DIGIT_CASES, ids=[c for c, _ in DIGIT_CASES])
def test_one_label_per_digit_run(case: str, entities: tuple[str, ...]) -> None:
    check(case, entities, DIGIT_ENTITIES)


@pytest.mark.parametrize("case", DIGIT_NEGATIVES)
def test_short_number_after_number_is_no_phone(case: str) -> None:
    words, _ = parse(case)
    assert find_spoken_entities(words, DIGIT_ENTITIES) == []


@pytest.mark.parametrize(
    ("text", "groups"),
    [
        ("518 26 4409", [3, 2, 4]),
        ("123-45-6789", [3, 2, 4]),
        ("five one eight, two six, four four oh nine", [3, 2, 4]),
        ("5 1 8 2 6 4 4 0 9", [9]),
        ("double five, 0 1", [2, 2]),
        ("forty two, 7 7", [2, 2]),
    ],
)
def test_digit_groups(text: str, groups: list[int]) -> None:
    toks = tokenize([" " + w for w in text.split()])
    nums = [classify_number(t) for t in toks]
    (run,) = digit_runs(toks, nums, set())
    assert digit_groups(toks, nums, run) == groups


# ---------------------------------------------------------------------- emails

EMAILS = [
    ("My email is {k dot osei at example dot org.}", (EMAIL_ADDRESS,)),
    ("It's {info@example.com.}", (EMAIL_ADDRESS,)),
    # Letters spelled before "at" are the local part, and so is the word they spell.
    ("It's {D, U, B, O, I, S at example dot net.}", (EMAIL_ADDRESS,)),
    ("It's {walsh, W A L S H, at example dot com.}", (EMAIL_ADDRESS,)),
    ("{tom underscore lee 77 at example dot com} is my email.", (EMAIL_ADDRESS,)),
    # No "@": only with an email cue (before or after) or something sent to it.
    ("Send the invoice to {priya.raman.example.com} please.", (EMAIL_ADDRESS,)),
    ("{j.mbeki.example.org} is my email.", (EMAIL_ADDRESS,)),
]  # fmt: skip

# URLs and IP addresses: web.py's, never an email.
NOT_EMAILS = [
    "Go to www dot example dot org slash pricing.",
    "The page is at shop dot example dot com slash cart.",
    "Visit W W W dot example dot net for details.",
    "Type h t t p s colon slash slash example dot com.",
    "The gateway is ten dot one dot one dot one.",
    "The printer's at 192.168.1.40.",
    "It's at one ninety two dot one sixty eight dot one dot nine.",
    "Sign in at accounts.example.com slash login.",
    "Log in at portal.example.org to see it.",
    "I read it on news.example.co.uk yesterday.",
    "Check out blog dot example dot com.",
    "Her site is jane dot example dot io.",
]


@pytest.mark.parametrize(("case", "entities"), EMAILS, ids=[c for c, _ in EMAILS])
def test_email(case: str, entities: tuple[str, ...]) -> None:
    check(case, entities, frozenset({EMAIL_ADDRESS}))


@pytest.mark.parametrize("case", NOT_EMAILS)
def test_web_and_ip_addresses_are_no_email(case: str) -> None:
    words, _ = parse(case)
    for end in range(1, len(words) + 1):  # nor any prefix of one, while streaming
        spans = find_spoken_entities(words[:end], {EMAIL_ADDRESS})
        assert spans == [], f"prefix {''.join(words[:end])!r}: {spans}"


def test_spelled_email_scores_as_context() -> None:
    words, groups = parse("It's {D, U, B, O, I, S at example dot net.}")
    assert find_spoken_entities(words, {EMAIL_ADDRESS}) == [
        WordSpan(*groups[0], EMAIL_ADDRESS, 0.9)
    ]


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("michael.johnson.example.com is fine", "EMAIL_ADDRESS"),
        ("It is Sarah.Lee.gmail.com okay", "EMAIL_ADDRESS"),
        ("go to support.acme.com for help", "URL"),
        ("visit shop.example.com today", "URL"),
    ],
)
def test_a_dotted_address_named_after_a_person_is_an_email(text: str, entity: str) -> None:
    words = [" " + w for w in text.split()]
    assert [s.entity for s in find_spoken_entities(words)] == [entity]
