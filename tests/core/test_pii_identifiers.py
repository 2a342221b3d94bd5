"""Speech rules for identifiers: card expiry and CVV, banking details, licence,
passport, tax and health numbers, PINs, passwords, user names, vehicle ids, other
digit sequences.

Cases are written as in ``test_pii.py``: words separated by single spaces (each gets
Whisper's leading space; ``~word`` has none), ``{ ... }`` around the words that must be
flagged, with the entity of each group. Every word outside braces must NOT be flagged
by any of ``RULE_ENTITIES`` (the entities these rules and the digit rules produce).
"""

from __future__ import annotations

import pytest

from streamserver.core.pii import (
    ACCOUNT_NUMBER,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    LOCATION,
    PHONE_NUMBER,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    SCORE_WEAK,
    US_SSN,
    find_spoken_entities,
)
from streamserver.core.pii.digits import aba_ok, expiry_ok
from streamserver.core.pii.entities import (
    BANKING_INFORMATION,
    CREDIT_CARD_CVV,
    CREDIT_CARD_EXPIRATION,
    DRIVERS_LICENSE,
    HEALTHCARE_NUMBER,
    NUMBER_SEQUENCE,
    PASSPORT_NUMBER,
    PASSWORD,
    PIN,
    TAX_ID,
    USERNAME,
    VEHICLE_ID,
)
from streamserver.core.types import WordSpan
from tests.core.pii_cases import parse

# What the identifier and digit rules can say. (Names, emails, amounts, times, dates
# and URLs have their own tests; a spelled code may also read as a spelled name.)
RULE_ENTITIES = frozenset({
    CREDIT_CARD_EXPIRATION, CREDIT_CARD_CVV, BANKING_INFORMATION, DRIVERS_LICENSE,
    PASSPORT_NUMBER, TAX_ID, HEALTHCARE_NUMBER, PIN, PASSWORD, USERNAME, VEHICLE_ID,
    NUMBER_SEQUENCE, PHONE_NUMBER, CREDIT_CARD, US_SSN, ACCOUNT_NUMBER, DATE_OF_BIRTH,
    LOCATION,
})  # fmt: skip




def detect(words: list[str]) -> list[WordSpan]:
    return find_spoken_entities(words, RULE_ENTITIES)


def flagged(spans: list[WordSpan]) -> set[int]:
    return {j for s in spans for j in range(s.first, s.last)}


def check(case: str, entities: tuple[str, ...]) -> None:
    words, groups = parse(case)
    assert len(groups) == len(entities), "one entity per brace group"
    spans = detect(words)
    shown = [("".join(words[s.first : s.last]), s.entity) for s in spans]
    expected = {j for first, last in groups for j in range(first, last)}
    extra = sorted(flagged(spans) - expected)
    assert not extra, f"over-redacted words {[words[j] for j in extra]}: {shown}"
    for (first, last), entity in zip(groups, entities, strict=True):
        for j in range(first, last):
            hits = {s.entity for s in spans if s.first <= j < s.last}
            assert entity in hits, f"{words[j]!r} is {hits or 'not flagged'}, not {entity}"


# ------------------------------------------------------------------------- positives

EXPIRY = [
    ("my card expires {oh nine twenty seven}", (CREDIT_CARD_EXPIRATION,)),
    ("The card's expiration date {09/27.}", (CREDIT_CARD_EXPIRATION,)),
    ("Visa, exp {9 27}", (CREDIT_CARD_EXPIRATION,)),
    ("My Visa is valid through {September 2027.}", (CREDIT_CARD_EXPIRATION,)),
    ("The expiry on the card is {0 9 2 7.}", (CREDIT_CARD_EXPIRATION,)),
    ("{09/27} is the expiration date on my card.", (CREDIT_CARD_EXPIRATION,)),
    ("the card expires {nine slash twenty seven}", (CREDIT_CARD_EXPIRATION,)),
    ("my debit card expires {Sept of twenty eight}", (CREDIT_CARD_EXPIRATION,)),
    ("The card number is {4111 1111 1111 1111} and it expires {12/26.}",
     (CREDIT_CARD, CREDIT_CARD_EXPIRATION)),
    ("The expiration is {0 4 27} and the CVV is {1 2 3 4.}",
     (CREDIT_CARD_EXPIRATION, CREDIT_CARD_CVV)),
    ("It's {4242 4242 4242 4242,} expires {09/27.}", (CREDIT_CARD, CREDIT_CARD_EXPIRATION)),
    ("The expiry on the card is {0 9 2 7.}", (CREDIT_CARD_EXPIRATION,)),
    # No card word in the window (a turn of its own): an expiry cue is enough.
    ("It expires {oh nine twenty seven.}", (CREDIT_CARD_EXPIRATION,)),
    ("Exp is {11/2026.}", (CREDIT_CARD_EXPIRATION,)),
    ("It's good through {0 4 slash 2 9.}", (CREDIT_CARD_EXPIRATION,)),
    ("Expiration month {oh three, year twenty nine.}", (CREDIT_CARD_EXPIRATION,)),
    ("It expires the end of {January 2027.}", (CREDIT_CARD_EXPIRATION,)),
]  # fmt: skip

CVV = [
    ("And the CVV is {3 1 4.}", (CREDIT_CARD_CVV,)),
    ("C V V {314}", (CREDIT_CARD_CVV,)),
    ("The security code on the back is {7 7 2.}", (CREDIT_CARD_CVV,)),
    ("CVC {4821}", (CREDIT_CARD_CVV,)),
    ("the security code is {123}", (CREDIT_CARD_CVV,)),
    ("The three digit code on the back is {five five one.}", (CREDIT_CARD_CVV,)),
    ("{7 7 2} is the security code.", (CREDIT_CARD_CVV,)),
    ("The code on the back is {556.}", (CREDIT_CARD_CVV,)),
    ("It's {9 0 5,} the three digits on the back.", (CREDIT_CARD_CVV,)),
    ("the four digit code on the front of the Amex is {3 7 9 1.}", (CREDIT_CARD_CVV,)),
    # "the code" is the card's when a card is talked about.
    ("Card number {5 1 0 5, 1 0 5 1, 0 5 1 0, 5 1 0 0,} and the code is {7 3 2.}",
     (CREDIT_CARD, CREDIT_CARD_CVV)),
]  # fmt: skip

BANKING = [
    ("The routing number is {0 2 1 0 0 0 0 2 1.}", (BANKING_INFORMATION,)),
    ("the routing number is {021000021}", (BANKING_INFORMATION,)),
    ("ABA {0 2 1 ~-0 0 0 ~-0 2 1}", (BANKING_INFORMATION,)),
    ("Sort code {20 00 00,} account {3 1 9 2 6 8 1 9.}", (BANKING_INFORMATION, ACCOUNT_NUMBER)),
    ("the sort code is {20-00-00}", (BANKING_INFORMATION,)),
    ("My IBAN is {G B 2 9 N W B K 6016 1331 9268 19.}", (BANKING_INFORMATION,)),
    ("IBAN {GB29 NWBK 6016 1331 9268 19}", (BANKING_INFORMATION,)),
    ("Please pay into {GB29 NWBK 6016 1331 9268 19.}", (BANKING_INFORMATION,)),
    ("Please pay into {DE89 3704 0044 0532 0130 00} today.", (BANKING_INFORMATION,)),
    ("The SWIFT code is {NWBKGB2L.}", (BANKING_INFORMATION,)),
    ("BIC {DEUTDEFF}", (BANKING_INFORMATION,)),
    ("the transit number is {0 4 5 6 7}", (BANKING_INFORMATION,)),
    ("The routing number for the account is {0 2 1 0 0 0 0 2 1.}", (BANKING_INFORMATION,)),
]  # fmt: skip

LICENSE = [
    ("My driver's license number is {D as in David 1 2 3 4 5 6 7.}", (DRIVERS_LICENSE,)),
    ("driver's license {D 1 2 3 4 5 6 7}", (DRIVERS_LICENSE,)),
    ("DL number {S 5 3 0 7 8 2 1}", (DRIVERS_LICENSE,)),
    ("{D1234567} is my driver's license.", (DRIVERS_LICENSE,)),
    ("my drivers licence is {B R 4 4 7 1 2 9 9}", (DRIVERS_LICENSE,)),
    ("License number {S530-412-78-891-0.}", (DRIVERS_LICENSE,)),
    ("License number, uh, {F as in Frank, 2 5 5, 0 1 9, 3 3 8.}", (DRIVERS_LICENSE,)),
    ("The license on file is {K 4 1 2 - 7 7 0 - 9 1 - 5 5 0.}", (DRIVERS_LICENSE,)),
    # Another licence is an account number.
    ("my software license key is {X 4 4 7 1 2 9}", (ACCOUNT_NUMBER,)),
]  # fmt: skip

PASSPORT = [
    ("My passport number is {5 3 1 2 4 8 7 9 2.}", (PASSPORT_NUMBER,)),
    ("passport {X 1 2 3 4 5 6 7 8}", (PASSPORT_NUMBER,)),
    ("my passport is {A12345678}", (PASSPORT_NUMBER,)),
]  # fmt: skip

TAX = [
    ("Our EIN is {12-3456789.}", (TAX_ID,)),
    ("ITIN {9 1 2 7 8 1 2 3 4}", (TAX_ID,)),
    ("the tax id is {912-78-1234}", (TAX_ID,)),
    ("The employer identification number is {4 5 6 7 8 9 0 1 2.}", (TAX_ID,)),
    ("our VAT number is {GB 123 4567 89}", (TAX_ID,)),
    ("{912-78-1234}", (TAX_ID,)),  # an ITIN by its shape
    ("VAT registration number {DE 8 1 1 9 0 7 9 8 0.}", (TAX_ID,)),
]  # fmt: skip

HEALTH = [
    ("My medical record number is {4 4 7 1 2 2 9.}", (HEALTHCARE_NUMBER,)),
    ("MRN {00 12 34 56}", (HEALTHCARE_NUMBER,)),
    ("My Medicare number is {1EG4-TE5-MK73.}", (HEALTHCARE_NUMBER,)),
    ("The member ID on my insurance card is {W 1 2 3 4 5 6 7 8.}", (HEALTHCARE_NUMBER,)),
    ("my NHS number is {943 476 5919}", (HEALTHCARE_NUMBER,)),
    ("health insurance member ID {X Y Z 4 4 7 1 2 3 9}", (HEALTHCARE_NUMBER,)),
    ("My policy number is {7 7 4 2 9 1 3} with Aetna.", (HEALTHCARE_NUMBER,)),
    ("The patient's subscriber ID is {8 8 3 1 2 0 7.}", (HEALTHCARE_NUMBER,)),
    ("My health insurance ID is {W 2 7 7 4 0 1 9 8 8.}", (HEALTHCARE_NUMBER,)),
    ("Medicaid ID, {8 8 0 4 1 2 7 7 9 1.}", (HEALTHCARE_NUMBER,)),
    # No health context: a member or policy number stays an account number.
    ("my car insurance policy number is {7 7 4 2 9 1 3}", (ACCOUNT_NUMBER,)),
    ("my member ID is {AB1234567}", (ACCOUNT_NUMBER,)),
]  # fmt: skip

PINS = [
    ("my PIN is {4 4 7 1}", (PIN,)),
    ("my pin is {4421}", (PIN,)),
    ("pin number {1 2 3 4}", (PIN,)),
    ("passcode {9 9 0 0}", (PIN,)),
    ("{4471,} that's my pin.", (PIN,)),
    ("my pin is {four four seven one}", (PIN,)),
    ("The PIN for the card is {double 5 2 9.}", (PIN,)),
    ("The verbal passcode on the account is {1 9 7 3.}", (PIN,)),
]  # fmt: skip

PASSWORDS = [
    ("my password is {capital B oh b 1 2 exclamation mark} and that's it",
     (PASSWORD,)),
    ("My password is {sunshine.}", (PASSWORD,)),
    ("The passphrase is {purple monkey dishwasher.} Thanks", (PASSWORD,)),
    ("my password: {correct horse battery staple.} Thanks", (PASSWORD,)),
    ("my passcode is {sunshine}", (PASSWORD,)),
    ("my new password, {Hunter2}", (PASSWORD,)),
    ("my password is {sunshine} and my PIN is {4 4 7 1}", (PASSWORD, PIN)),
    ("password is {lower case j smith 9 9 at sign} okay", (PASSWORD,)),
    ("Password is {capital S, summer, 2 0 2 4, hashtag.}", (PASSWORD,)),
    ("Password, {M as in Mary, 7, K, dollar sign, 9, Z.}", (PASSWORD,)),
    ("I set the password to {correcthorse,} all one word.", (PASSWORD,)),
    ("The temporary password they gave me is {XK7-PQ2-LM9.}", (PASSWORD,)),
    ("{Rainbow7Kite,} that's my password.", (PASSWORD,)),
]  # fmt: skip

USERNAMES = [
    ("my username is {john underscore smith 42}", (USERNAME,)),
    ("My login is {jsmith42.}", (USERNAME,)),
    ("my Twitter handle is {at jsmith}", (USERNAME,)),
    ("username: {jane_doe}", (USERNAME,)),
    ("My user ID is {4 4 7 1 2 3.}", (USERNAME,)),
    ("the user name is {dragon slayer 99,} and the password is {hunter 2.}",
     (USERNAME, PASSWORD)),
    ("Username, {mike underscore t 77.}", (USERNAME,)),
    ("I log in as {rkumar1990.}", (USERNAME,)),
    ("User ID, {ferreira dot ana,} all lowercase.", (USERNAME,)),
    ("{jsmith_42} is my username.", (USERNAME,)),
]  # fmt: skip

VEHICLES = [
    ("The VIN is {1 H G C M 8 2 6 3 3 A 0 0 4 3 5 2.}", (VEHICLE_ID,)),
    ("VIN {1HGCM82633A004352}", (VEHICLE_ID,)),
    ("vehicle identification number {1HG CM826 33A 004352}", (VEHICLE_ID,)),
    ("my license plate is {7 X Y Z 1 2 3}", (VEHICLE_ID,)),
    ("The plate number is {ABC 1234.}", (VEHICLE_ID,)),
    ("the registration is {K L 0 5 V X Y}", (VEHICLE_ID,)),
    ("Plate number is {L R 6 9 K T W.}", (VEHICLE_ID,)),
]  # fmt: skip

SEQUENCES = [
    ("I was given {4 4 7 1 9 2} yesterday", (NUMBER_SEQUENCE,)),
    ("my order {4 4 7 1} arrived", (NUMBER_SEQUENCE,)),
    ("ticket {5 5 9 2 1}", (NUMBER_SEQUENCE,)),
    ("it says {0 7 7 4} on the box", (NUMBER_SEQUENCE,)),
    ("they sent {88213} by text", (NUMBER_SEQUENCE,)),
    # "in" before the last digits of something is no time: "ends in 3577".
    ("It ends in {3 5 7 7.}", (NUMBER_SEQUENCE,)),
    ("Is it the one ending in {4817?}", (NUMBER_SEQUENCE,)),
    # Order, ticket and tracking numbers are digit sequences, not phone numbers.
    ("The invoice number is {7 7 4 0 1 2.}", (NUMBER_SEQUENCE,)),
    ("The tracking number is {9400 1118 9922 3344 5566 77.}", (NUMBER_SEQUENCE,)),
    ("Work order {3 3 0 1 9 8 2} is still open.", (NUMBER_SEQUENCE,)),
    ("The serial on the back says SN {7 7 4 4 1 0 2 9.}", (NUMBER_SEQUENCE,)),
    # A house number is the address's.
    ("We moved to {6015 Sunset Ridge Drive.}", (LOCATION,)),
]  # fmt: skip

# Cut by the end of the streaming window right after (or inside) the value.
PARTIAL = [
    ("the CVV is {3}", (CREDIT_CARD_CVV,)),
    ("my card expires {oh nine}", (CREDIT_CARD_EXPIRATION,)),
    ("my Visa is valid through {September}", (CREDIT_CARD_EXPIRATION,)),
    ("my PIN is {4 4}", (PIN,)),
    ("the routing number is {0 2 1}", (BANKING_INFORMATION,)),
    ("my IBAN is {G B 2 9}", (BANKING_INFORMATION,)),
    ("my passport number is {X 1 2}", (PASSPORT_NUMBER,)),
    ("my driver's license number is {D as in David}", (DRIVERS_LICENSE,)),
    ("the VIN is {1 H G}", (VEHICLE_ID,)),
    ("my password is {capital}", (PASSWORD,)),
    ("my username is {john underscore}", (USERNAME,)),
    ("my medical record number is {4 4}", (HEALTHCARE_NUMBER,)),
]  # fmt: skip

POSITIVES = (
    EXPIRY + CVV + BANKING + LICENSE + PASSPORT + TAX + HEALTH + PINS + PASSWORDS + USERNAMES
    + VEHICLES + SEQUENCES + PARTIAL
)

# ------------------------------------------------------------------ hard negatives

NEGATIVES = [
    # Durations, prices, times, quantities.
    "I waited 45 minutes on hold.",
    "It was $12.99 a month.",
    "Let's meet at 3:30 tomorrow.",
    "The meeting is at 10 45.",
    "The train leaves at 10 45 and arrives at 12 15.",
    "The meeting got moved to Tuesday 1030 in the morning.",
    "We sold two thousand units last year.",
    "It costs 1299 dollars.",
    "It costs 1299 in total.",
    "We shipped 4500 of them.",
    "Prices rose 45 percent.",
    # Model and version numbers, flights, rooms, pages.
    "I bought the iPhone 15 last week.",
    "I upgraded to Windows 11 yesterday.",
    "The Boeing 737 was grounded.",
    "Version 2.4.1 was released.",
    "Version 10.4.1 is out.",
    "Flight 2 3 7 4 from Boston was delayed.",
    "UA 1234 boards at gate 12.",
    "Room 1204 is on the left.",
    "It's on page 1042.",
    # Years, scores, counting, service numbers, ASR loops.
    "Back in 2019 we moved.",
    "Back in 2019 and 2020 we grew.",
    "The score was 21 14.",
    "She scored 98 out of 100.",
    "One two three four, testing.",
    "I counted one two three four five.",
    "Call 911 if there's an emergency.",
    "Channel 7 7 7 7 7 2 3 1",
    # Cue words in ordinary talk.
    "I reset my password 3 times.",
    "My password is wrong.",
    "My password is 8 characters long.",
    "The password is case sensitive.",
    "My password is not working.",
    "I forgot my password.",
    "What is your password?",
    "Can you spell your username for me?",
    "My username is the same as my email.",
    "I can't login to the portal.",
    "I can handle 5 calls an hour.",
    "Pin it to the board 4 times.",
    "My PIN is 4 digits.",
    "The package is in transit for 3 days.",
    "Taylor Swift sold 2000 tickets.",
    "A plate of food for 12 people.",
    "My registration is complete.",
    "The VAT is 20 percent.",
    "I have been a member since 2015.",
    "My insurance covers 80 percent.",
    "My subscription expires in 30 days.",
    "The card expires next month.",
    "The CVV is on the back.",
    # An expiry without any card talk is some other date.
    "My license expires 09/27.",
    "My passport expires September 2027.",
    # An IBAN whose check digits are wrong, with no cue.
    "Please pay into GB29 NWBK 6016 1331 9268 18 today.",
    # Amounts without a unit, models, addresses, resolutions.
    "We have 1500 customers.",
    "We have 1537 customers.",
    "The Dow closed at 34500.",
    "The model number is X 1 2 3 4.",
    "My flight number is 4 4 7 1.",
    "It's a TV with 1080p.",
    "Between 2010 and 2015 we grew.",
    "Since 2 0 1 9 nothing changed.",
    "I've told you 1000 times.",
    "My insurance card is in the car.",
    "My library card number is in the drawer.",
]


@pytest.mark.parametrize(("case", "entities"), POSITIVES, ids=[c for c, _ in POSITIVES])
def test_positive(case: str, entities: tuple[str, ...]) -> None:
    check(case, entities)


@pytest.mark.parametrize("case", NEGATIVES)
def test_negative(case: str) -> None:
    check(case, ())


@pytest.mark.parametrize(("case", "entities"), POSITIVES, ids=[c for c, _ in POSITIVES])
def test_positives_stay_flagged_while_streaming(case: str, entities: tuple[str, ...]) -> None:
    """A word, once flagged, stays flagged as more words arrive; nothing else is."""
    words, groups = parse(case)
    expected = {j for first, last in groups for j in range(first, last)}
    before: set[int] = set()
    for end in range(1, len(words) + 1):
        now = flagged(detect(words[:end]))
        assert not (now - expected), f"prefix {''.join(words[:end])!r} over-redacts"
        assert before <= now, f"prefix {''.join(words[:end])!r} dropped a flag"
        before = now


# Prefixes that are ambiguous until the next word: a number cut off right after a cue
# is masked at once ("my PIN is 4" ...), then released by "digits".
AMBIGUOUS_PREFIXES = {
    "I reset my password 3 times.",
    "My password is 8 characters long.",
    "My PIN is 4 digits.",
    "The VAT is 20 percent.",
    "We have 1537 customers.",
}


@pytest.mark.parametrize("case", [c for c in NEGATIVES if c not in AMBIGUOUS_PREFIXES])
def test_negatives_stay_clean_while_streaming(case: str) -> None:
    words, _ = parse(case)
    for end in range(1, len(words)):
        spans = detect(words[:end])
        assert not spans, f"prefix {''.join(words[:end])!r}: {spans}"


# --------------------------------------------------------------- scores and filtering


@pytest.mark.parametrize(
    ("case", "span"),
    [
        ("the CVV is {3 1 4}", (CREDIT_CARD_CVV, SCORE_CONTEXT)),
        ("the routing number is {0 2 1 0 0 0 0 2 1}", (BANKING_INFORMATION, SCORE_CONTEXT)),
        # Checksum wrong: still masked after the cue, with less confidence.
        ("the routing number is {0 2 1 0 0 0 0 2 2}", (BANKING_INFORMATION, SCORE_WEAK)),
        ("pay into {GB29 NWBK 6016 1331 9268 19}", (BANKING_INFORMATION, SCORE_SHAPE)),
        ("my PIN is {4 4}", (PIN, SCORE_WEAK)),
        ("I was given {4 4 7 1 9 2} yesterday", (NUMBER_SEQUENCE, SCORE_WEAK)),
        ("my password is {sunshine}", (PASSWORD, SCORE_CONTEXT)),
    ],
)
def test_exact_span(case: str, span: tuple[str, float]) -> None:
    words, groups = parse(case)
    assert detect(words) == [WordSpan(*groups[0], *span)]


def test_only_wanted_entities() -> None:
    words, groups = parse(
        "my {sunshine} password and the CVV is {3 1 4} and my PIN is {4 4 7 1}"
    )
    spans = find_spoken_entities(words, {PIN})
    assert spans == [WordSpan(*groups[2], PIN, SCORE_CONTEXT)]
    assert find_spoken_entities(words, {USERNAME, TAX_ID}) == []


def test_specific_entity_outscores_number_sequence() -> None:
    """A digit run is a NUMBER_SEQUENCE only when no cue claims it."""
    words, _ = parse("the CVV is 3 1 4 2 and the order was 5 5 9 2 1")
    spans = find_spoken_entities(words, RULE_ENTITIES)
    assert [(s.entity, s.score) for s in spans] == [
        (CREDIT_CARD_CVV, SCORE_CONTEXT),
        (NUMBER_SEQUENCE, SCORE_WEAK),
    ]


# ------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("021000021", True), ("011000015", True), ("021000022", False), ("12345", False)],
)
def test_aba_checksum(digits: str, ok: bool) -> None:
    assert aba_ok(digits) is ok


@pytest.mark.parametrize(
    ("digits", "partial", "ok"),
    [
        ("0927", False, True), ("927", False, True), ("092027", False, True),
        ("92027", False, True), ("1327", False, False), ("0027", False, False),
        ("09", False, False), ("09", True, True), ("092", True, True), ("1", True, True),
        ("44712", False, False),
    ],
)  # fmt: skip
def test_expiry_shapes(digits: str, partial: bool, ok: bool) -> None:
    assert expiry_ok(digits, partial) is ok
