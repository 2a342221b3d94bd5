"""Everyday entities: URLs, IP addresses, ZIP / postal codes, dates, times, amounts of
money and ages (speech rules), and organisations (presidio + cue rules).

Cases are written as in ``test_pii.py``: words separated by single spaces (each gets
Whisper's leading space; ``~word`` has none), ``{ ... }`` around the words that must be
flagged, all with the entity the table is for. Every word outside braces must NOT be
flagged as that entity. Hard negatives must not be flagged as any of ``EVERYDAY``.
"""

from __future__ import annotations

import time

import pytest

from streamserver.core.pii import (
    DATE_OF_BIRTH,
    EMAIL_ADDRESS,
    ENTITIES,
    LOCATION,
    PERSON,
    SCORE_WEAK,
    find_spoken_entities,
)
from streamserver.core.pii.entities import (
    BANKING_INFORMATION,
    DATE,
    DTMF,
    IP_ADDRESS,
    MONEY_AMOUNT,
    ORGANIZATION,
    PERSON_AGE,
    TAX_ID,
    TIME,
    URL,
    ZIP_CODE,
)
from streamserver.core.types import WordSpan
from streamserver.engines.presidio import PresidioPiiDetector
from tests.core.pii_cases import parse

# What the speech rules of web.py, quantities.py and addresses.zip_spans say.
EVERYDAY = frozenset({URL, IP_ADDRESS, ZIP_CODE, DATE, TIME, MONEY_AMOUNT, PERSON_AGE})




def flagged(spans: list[WordSpan], entity: str | None = None) -> set[int]:
    return {j for s in spans if entity in (None, s.entity) for j in range(s.first, s.last)}


def shown(words: list[str], spans: list[WordSpan]) -> list[tuple[str, str]]:
    return [("".join(words[s.first : s.last]), s.entity) for s in spans]


def check_rules(case: str, entity: str) -> None:
    words, groups = parse(case)
    spans = find_spoken_entities(words, {entity})
    expected = {j for first, last in groups for j in range(first, last)}
    got = flagged(spans, entity)
    want = [words[j] for j in sorted(expected)]
    assert got == expected, f"{shown(words, spans)} (expected {want})"
    assert all(s.entity == entity for s in spans)


# ------------------------------------------------------------------------------ URL

URLS = [
    "Go to {example.com} for details.",
    "You'll find it at {www.acme-shop.co.uk/help} under returns.",
    "The link is {https://acme.com/returns?id=7.}",
    "It's {acme dot com slash returns} if you want to send it back.",
    "Just type {w w w dot acme dot com} into the browser.",
    "Visit {W W W dot acme dash shop dot co dot uk} please.",
    "it's {h t t p s colon slash slash acme dot com slash help}",
    "{https colon slash slash portal dot example dot org}",
    "Our new site is {acme.io.}",
    "Log in at {portal.example.com forward slash account.}",
    "My blog is {janedoe dot blogspot dot com.}",
    "Let's go to {www.example.com} for more.",
    "go to {www.acme}",  # cut off by the window end
]

# ------------------------------------------------------------------------------- IP

IPS = [
    "My IP address is {192.168.0.1.}",
    "The router is at {10.0.0.1} I think.",
    "my IP address is {192 168 0 1}",
    "The IP is {192, 168, 1, 20.}",
    "The server is {ten dot zero dot zero dot one.}",
    "Gateway {one nine two dot one six eight dot one dot one.}",
    "The IP is {one ninety two dot one sixty eight dot zero dot twenty.}",
    "It's {192 dot 168 dot 1 dot 254.}",
    "The subnet is {10.0.0.0/24.}",
    "IPv6 address {fe80::1ff:fe23:4567:890a} on the router.",
    "It shows {2001:db8::1} as the IPv6 address.",
    "my IP is {10 dot 0}",  # still arriving
]

# ------------------------------------------------------------------------ ZIP codes

ZIPS = [
    "The zip code is {97201.}",
    "My zip is {9 0 2 1 0.}",
    "zip code {nine oh two one oh} please",
    "My zip's {02139.}",
    "Zip plus four, {30062-4418.}",
    "{62704} is my zip code.",
    "I live at 12 Oak Street, Springfield, Illinois {6 2 7 0 4.}",
    "ship it to 742 Evergreen Terrace, Springfield, Oregon {97475}",
    "I live at 142 Maple Street, apartment 3B, Springfield, {62704.}",
    "It's 18 Hillcrest Drive, Bellevue, {9 8 0 0 4.}",
    "We're in Austin, TX {78701} now.",
    "My postcode is {SW1A 1AA.}",
    "The postcode is {M 1 1, 4 A E.}",
    "post code {S W 1 A 1 A A}",
    "My postal code is {K1A 0B1,} in Ottawa.",
    "Ottawa, Ontario {K1A 0B1.}",
    "It's in London, {SW1A 1AA.}",
    "my zip is {9 0 2}",  # still arriving
    # Other words between the cue and the code (digits.py claims the run for a ZIP
    # as far as a trigger reaches: it must not be left unlabelled).
    "My zip is in Boston, {0 2 1 1 6.}",
    "The zip code for Boston is {0 2 1 1 6.}",
    "Zip code? Yeah, it's {02116.}",
]

# ---------------------------------------------------------------------------- dates

DATES = [
    "I'll see you on {March 3rd.}",
    "We fly out on the {14th of July.}",
    "The appointment is {03/04/2024.}",
    "Can we do {next Tuesday the 5th?}",
    "The meeting is on {Monday the 5th.}",
    "It was delivered on {January 12, 2024.}",
    "The invoice is due by the {20th of next month.}",
    "I called on the {12th} and again on the {19th.}",
    "The policy started on the {first of May.}",
    "We need at least 10 of them by {May 4.}",
    "The shipment arrived on {March 3rd, 1985} according to the log.",
    "My payment of $250 went through on {March 5th.}",
    "The lease ends {December 31st, 2025.}",
    "It's booked for {Friday, June 6th.}",
]

# ---------------------------------------------------------------------------- times

TIMES = [
    "Let's meet at {3:30.}",
    "I'll call you at {3 30 pm.}",
    "We close at {half past four.}",
    "It's {a quarter to ten.}",
    "I've been on hold since {a quarter past two.}",
    "Lunch is at {noon.}",
    "The appointment is at {9 a.m.}",
    "call me at {9am} tomorrow",
    "Come by at {seven thirty} tonight.",
    "We open at {nine} in the morning.",
    "The train leaves at {6 45} and arrives at {8 15.}",
    "We'll come back at {2 o'clock.}",
    "It's {ten to nine} already.",
    "The technician comes between {8} and {10 AM.}",
    "The meeting got moved to Tuesday {1030} in the morning.",
    "You can reach me any time after {five.}",
    "My flight lands at {9:45} tonight.",
    "Open until {midnight} on Fridays.",
]

# ---------------------------------------------------------------------------- money

MONEY = [
    "That'll be {$45.99.}",
    "It was {45 dollars.}",
    "It cost {forty five dollars.}",
    "I paid {forty five dollars and ten cents.}",
    "It cost me {two grand.}",
    "The fee is {£300.}",
    "Give me {a hundred bucks.}",
    "It's {€12} per month.",
    "I see two charges of {89 dollars and 99 cents} from yesterday.",
    "Revenue grew 12% to {$4,500,000} in 2021.",
    "They raised {$4.5 million} last year.",
    "The total is {45.99.}",
    "The balance of {1,200} is due Friday.",
    "It's {five dollars fifty} please.",
    "It was {twenty-five dollars} in the end.",
    "They charged me {300 euros.}",
]

# ----------------------------------------------------------------------------- ages

AGES = [
    "I'm {42.}",
    "I'm {42,} and I live alone.",
    "I am {forty two} and I still play.",
    "She's {73} years old.",
    "The patient is aged {65.}",
    "Age {30,} male.",
    "My son is {7.}",
    "my son is {7}",  # still arriving: a child's age is rarely anything else
    "My daughter's {12.}",
    "He's {twenty-two.}",
    "I'm {fifty-seven} years of age.",
    "We have two kids, ages {5} and {9.}",
    "He just turned {18} last week.",
    "It's for a {42} year old man.",
    "At the age of {30} she moved.",
    "I'm almost {40} and I still can't cook.",
]

POSITIVES = (
    [(c, URL) for c in URLS]
    + [(c, IP_ADDRESS) for c in IPS]
    + [(c, ZIP_CODE) for c in ZIPS]
    + [(c, DATE) for c in DATES]
    + [(c, TIME) for c in TIMES]
    + [(c, MONEY_AMOUNT) for c in MONEY]
    + [(c, PERSON_AGE) for c in AGES]
)


@pytest.mark.parametrize(("case", "entity"), POSITIVES, ids=[f"{e}:{c}" for c, e in POSITIVES])
def test_rules_find(case: str, entity: str) -> None:
    check_rules(case, entity)


# --------------------------------------------------------------------- hard negatives

HARD_NEGATIVES = [
    # durations and quantities
    "I'll be there in 30 minutes.",
    "The call took 45 minutes and I waited 2 hours.",
    "I waited 20 minutes on hold.",
    "The offer ends in 10 days.",  # "ends in" + digits is a last four only without a unit
    "The promotion ended in 2024.",
    "She ran a mile in 5:30.",
    "I'll reverse them, you should see the credit in 3 to 5 business days.",
    "We'll take a 15 minute break.",
    "I have 2 kids, 3 dogs and 4 cats.",
    "Turn left after 200 meters.",
    "It weighs 20 pounds.",
    "I lost 20 pounds last year.",
    "Add 5 pounds of flour.",
    "There were 1,500,000 people at the rally.",
    # model and version numbers, flights, rooms, pages
    "I bought the iPhone 15 last week.",
    "My laptop runs Windows 11 now.",
    "We're on version 2.4.1 of the app.",
    "Update to version 10.0.19041.1 please.",
    "Version 1.2.3.4 of the firmware is out.",
    "Windows 10 and Office 365 are installed.",
    "My flight is UA 237 from Denver.",
    "Flight 2 3 7 from Boston was delayed by 40 minutes.",
    "Take the 5 freeway north.",
    "Chapter 11, page 304.",
    "Room 212 is on the left.",
    "Press 1 for sales, 2 for support.",
    # years, scores, percentages
    "Back in 2019 we moved.",
    "In 1997 we moved to Texas.",
    "In Texas 10000 people voted.",
    "They won 3 to 1 last night.",
    "The score was 2 1 at halftime.",
    "We lost ten to nine.",
    "The ratio is 3:1.",
    "Prices rose 4 percent last year.",
    "About 50% of people agree.",
    "I'm 100 percent sure.",
    "Interest rates are at 5.5 percent.",
    # "dot" and abbreviations in ordinary speech
    "Look at the dot on the map.",
    "There's a dot in the corner of the screen.",
    "Connect the dots, please.",
    "I love the dot com era.",
    "The U.S.A. and the U.K. signed it, e.g. last year.",
    "That is not a problem, I do not com plain.",
    # not ages
    "I'm 5 minutes away.",
    "I'm on 5th street.",
    "I'm on the 12th floor.",
    "That was 30 years ago.",
    "We have a 40 year mortgage.",
    "The house is 30 years old.",
    "I'm 2 blocks away from the store.",
    "I'm 6 2 and about 180.",
    "I'm 1 of 3 people on the account.",
    "He's number 5 on the list.",
    "I've been a customer for 12 years.",
    "I turned 3 pages.",
    "She's in the 5th grade.",
    # not dates or times
    "The meeting is on Monday.",
    "We'll do it in January.",
    "May I ask who is calling?",
    "I may be late.",
    "On the first try it worked.",
    "Wait a second.",
    "Check the 3rd option.",
    "The second time was better.",
    "Call me at 7 Main Street.",
    "It's at the bottom of page 12.",
    "I'm over at two twenty seven Baker Street.",
    # not money
    "My old address was 250 Grand Street, number 5.",
    "A total of 1,200 people came.",
    "The plate is 7 A B C 1 2 P.",
    "We drove past the Grand Canyon.",
    "Give me 5 stars.",
    # everyday places and things
    "I went to Jordan last year.",
    "I had an apple for lunch.",
    "My sister lives in Georgia.",
    "Meet me at Victoria station.",
    # a ZIP cue does not reach past the end of its sentence
    "I don't know my zip code. I ordered 12345 items.",
    "My zip code is the same as my office, 10 minutes away.",
]


@pytest.mark.parametrize("case", HARD_NEGATIVES)
def test_rules_hard_negatives(case: str) -> None:
    words, _ = parse(case)
    spans = find_spoken_entities(words, EVERYDAY)
    assert not spans, shown(words, spans)


@pytest.mark.parametrize("case", HARD_NEGATIVES)
def test_hard_negatives_stay_clean_while_streaming(case: str) -> None:
    """A prefix masks audio too: no everyday entity on any prefix of a hard negative."""
    words, _ = parse(case)
    for end in range(1, len(words)):
        spans = find_spoken_entities(words[:end], EVERYDAY)
        assert not spans, f"prefix {''.join(words[:end])!r}: {shown(words, spans)}"


@pytest.mark.parametrize(("case", "entity"), POSITIVES, ids=[f"{e}:{c}" for c, e in POSITIVES])
def test_prefixes_never_over_flag(case: str, entity: str) -> None:
    """On every prefix, only the words of the value may be flagged."""
    words, groups = parse(case)
    expected = {j for first, last in groups for j in range(first, last)}
    for end in range(1, len(words) + 1):
        spans = find_spoken_entities(words[:end], {entity})
        extra = flagged(spans) - expected
        assert not extra, f"prefix {''.join(words[:end])!r}: {shown(words, spans)}"


# ------------------------------------------------------------- how the types combine


def test_date_of_birth_is_not_also_a_date() -> None:
    words, groups = parse("My date of birth is {May 4, 1997} and I moved on {June 2nd.}")
    spans = find_spoken_entities(words, {DATE, DATE_OF_BIRTH})
    assert [(s.first, s.last, s.entity) for s in spans] == [
        (*groups[0], DATE_OF_BIRTH),
        (*groups[1], DATE),
    ]


def test_card_expiry_is_not_a_date() -> None:
    words, _ = parse("The expiry on the card is March 2028.")
    assert find_spoken_entities(words, {DATE}) == []


def test_zip_inside_an_address_is_also_a_zip() -> None:
    words, groups = parse("ship it to {742 Evergreen Terrace, Springfield, Oregon 97475}")
    spans = find_spoken_entities(words, {LOCATION, ZIP_CODE})
    first, last = groups[0]
    assert WordSpan(first, last, LOCATION, 0.9) in spans
    assert [(s.first, s.last) for s in spans if s.entity == ZIP_CODE] == [(last - 1, last)]


def test_zip_codes_need_no_location_request() -> None:
    words, groups = parse("the zip code is {97201}")
    assert find_spoken_entities(words, {ZIP_CODE}) == [WordSpan(*groups[0], ZIP_CODE, 0.9)]


@pytest.mark.parametrize(
    "case",
    [
        "my email is {john dot smith at gmail dot com}",
        "you can email me at {jane.doe@example.com} anytime",
        "Please send the receipt to {Michael ~.Johnson ~.example ~.com.} Thanks.",
        "write to {j_smith at outlook dot com} please",
    ],
)
def test_urls_never_overlap_emails(case: str) -> None:
    words, groups = parse(case)
    spans = find_spoken_entities(words, {URL, EMAIL_ADDRESS})
    assert flagged(spans, EMAIL_ADDRESS) == set(range(*groups[0]))
    assert not flagged(spans, URL), shown(words, spans)


def test_only_wanted_entities() -> None:
    words, _ = parse("I'm 42 and paid $45.99 at 3:30 on March 3rd, the site is acme.com and "
                     "the IP is 10.0.0.1")
    everything = find_spoken_entities(words, EVERYDAY)
    assert {s.entity for s in everything} == EVERYDAY - {ZIP_CODE}
    for entity in EVERYDAY:
        assert {s.entity for s in find_spoken_entities(words, {entity})} <= {entity}
    assert find_spoken_entities(words, {DTMF}) == []


def test_partial_values_score_weak() -> None:
    for case, entity in [("my IP is {10 dot 0}", IP_ADDRESS), ("my zip is {9 0 2}", ZIP_CODE),
                         ("go to {www.acme}", URL), ("my son is {7}", PERSON_AGE)]:
        words, groups = parse(case)
        assert find_spoken_entities(words, {entity}) == [WordSpan(*groups[0], entity, SCORE_WEAK)]


def test_rules_never_blow_up() -> None:
    """Long runs of joiners, dots and digits (the shapes the patterns read) finish:
    a guard against catastrophic backtracking, which would take minutes. (What the
    rules cost is measured in benchmarks/cpu_costs.py, not asserted here.)"""
    nasty = [
        " dot" * 60,
        " a" + " dot a" * 40,
        " " + "a." * 150 + "com",
        " " + "1." * 150,
        " w" * 60,
        " 1" * 60,
        " one" * 60,
        " at" * 60,
        " " + "a-" * 200 + "a.com",
        " " + ":" * 100 + "1",
        " quarter past" * 30,
    ]
    for text in nasty:
        words = text.split(" ")[1:]
        words = [" " + w for w in words]
        t0 = time.perf_counter()
        find_spoken_entities(words, EVERYDAY)
        assert time.perf_counter() - t0 < 5, text[:40]


# ------------------------------------------------- presidio: organisations and friends


@pytest.fixture(scope="module")
def detector() -> PresidioPiiDetector:
    det = PresidioPiiDetector()  # every entity of the catalogue
    det.warm_up()
    return det


ORGANIZATIONS = [
    "I work at {Acme Logistics.}",
    "I work at {Acme Insurance} and I'm calling from {Wells Fargo.}",
    "I'm calling from {Blue Cross} about your claim.",
    "I bank with {Wells Fargo.}",
    "My employer is {Johnson & Johnson.}",
    "I'm calling from {Bank of America} about your account.",
    "The account is with {Chase Bank.}",
    "{Acme Inc.} sent the invoice.",
    "Hello, you've reached {Sunrise Dental,} how may I help?",
    "I'm with {State Farm,} policy holder.",
    "A company called {Acme} makes them.",
    "My name is Jordan Smith and I work for {Microsoft.}",
    "My previous carrier was {T-Mobile.}",
    "i work at {acme insurance} now",
]


@pytest.mark.parametrize("case", ORGANIZATIONS)
def test_organizations(detector: PresidioPiiDetector, case: str) -> None:
    words, groups = parse(case)
    spans = detector.detect(words)
    expected = {j for first, last in groups for j in range(first, last)}
    assert flagged(spans, ORGANIZATION) == expected, shown(words, spans)
    # An organisation never takes a person's words.
    assert not flagged(spans, ORGANIZATION) & flagged(spans, PERSON), shown(words, spans)


ORGANIZATION_NEGATIVES = [
    "I went to Jordan last year.",
    "Jordan called about the Apple watch.",
    "I had an apple for lunch.",
    "Apple pie was on sale.",
    "My sister lives in Georgia.",
    "Meet me at Victoria station.",
    "I bought the iPhone 15 last week.",
    "I drive a 2019 Honda Civic.",
    "We flew on a Boeing 737 and the seats were tiny.",
    "My Visa card was declined.",
    "My Social Security number is 287-65-4321.",
    "My Medicare number is 1EG4-TE5-MK73.",
    "The VIN is 1HGCM82633A004352.",
    "My IP address is 192.168.0.1.",
    "My PIN is 4 4 7 1.",
    "Customer ID, A C 7 7 4 0 1 9.",
    "The U S A team won 3 medals.",
    "We need to go to the A T M.",
    "Hi this is John from the billing department.",
    "I'm with John right now.",
    "calling from Chicago about the order",
    "I'm calling from the office.",
    "I live at 1500 Willow Creek Court, apartment 22.",
    "My email is pat.obi.gmail.com, sorry.",
    "I work from home.",
    "The Amazon rainforest is huge.",
]


@pytest.mark.parametrize("case", ORGANIZATION_NEGATIVES)
def test_organization_negatives(detector: PresidioPiiDetector, case: str) -> None:
    words, _ = parse(case)
    spans = detector.detect(words)
    assert not flagged(spans, ORGANIZATION), shown(words, spans)


@pytest.mark.parametrize("case", ORGANIZATION_NEGATIVES)
def test_organization_negatives_while_streaming(detector: PresidioPiiDetector, case: str) -> None:
    words, _ = parse(case)
    for end in range(1, len(words)):
        spans = detector.detect(words[:end])
        assert not flagged(spans, ORGANIZATION), f"prefix {''.join(words[:end])!r}"


@pytest.mark.parametrize(
    ("case", "entity"),
    [
        ("My IBAN is {GB82 WEST 1234 5698 7654 32.}", BANKING_INFORMATION),
        ("The ITIN is {912-70-1234.}", TAX_ID),
        ("The IPv6 address is {::ffff:192.0.2.1} on that box.", IP_ADDRESS),
        ("The IP is {192.168.0.1} on that box.", IP_ADDRESS),
    ],
)
def test_presidio_recognisers_map_to_our_entities(case: str, entity: str) -> None:
    words, groups = parse(case)
    spans = PresidioPiiDetector(entities=frozenset({entity})).detect(words)
    assert flagged(spans, entity) >= set(range(*groups[0])), shown(words, spans)
    assert {s.entity for s in spans} == {entity}


@pytest.mark.parametrize(("case", "entity"), POSITIVES[::3], ids=[c for c, _ in POSITIVES[::3]])
def test_detector_finds_the_spoken_forms(
    detector: PresidioPiiDetector, case: str, entity: str
) -> None:
    words, groups = parse(case)
    spans = detector.detect(words)
    expected = {j for first, last in groups for j in range(first, last)}
    assert flagged(spans, entity) == expected, shown(words, spans)


def test_detector_entities() -> None:
    # The catalogue's every name is accepted; DTMF is audio-only and never found in text.
    assert PresidioPiiDetector(entities=ENTITIES).entities == ENTITIES
    dtmf = PresidioPiiDetector(entities=frozenset({DTMF}))
    assert dtmf.detect(parse("my pin is 4421 and I'm 42.")[0]) == []
    with pytest.raises(ValueError):
        PresidioPiiDetector(entities=frozenset({"DATE_TIME"}))
    # presidio is only asked for what the detector wants.
    assert PresidioPiiDetector(entities=frozenset({URL, MONEY_AMOUNT}))._presidio_entities == []
    assert PresidioPiiDetector(entities=frozenset({IP_ADDRESS}))._presidio_entities == [
        "IP_ADDRESS"
    ]
    assert PresidioPiiDetector(entities=frozenset({BANKING_INFORMATION}))._presidio_entities == [
        "IBAN_CODE"
    ]
