"""PERSON: the name rules of ``streamserver.core.pii.names`` and the name lists.

Cases are sentences as Whisper writes them, split on spaces (each word gets its
leading space); ``{ ... }`` marks the words that must be flagged PERSON, and every other
word must not be. Titles ("Dr.") are not part of a name. The rule tables run the speech
rules alone (``find_spoken_entities``); the detector tables add presidio/spaCy, whose
PERSON hits go through ``plausible_person``.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamserver.core.pii import PERSON, find_spoken_entities, plausible_person
from streamserver.core.pii.name_lists import (
    AMBIGUOUS_FIRST_NAMES,
    FIRST_NAMES,
    NOT_NAMES,
    SURNAMES,
    fold,
    is_certain_name,
    is_common_name,
)
from streamserver.core.types import WordSpan
from streamserver.engines.presidio import PresidioPiiDetector


def parse(case: str) -> tuple[list[str], set[int]]:
    """Whisper-style words and the indices of the words marked with braces."""
    words: list[str] = []
    marked: set[int] = set()
    inside = False
    for token in case.split():
        if token.startswith("{"):
            inside, token = True, token[1:]
        closes = token.endswith("}")
        if closes:
            token = token[:-1]
        if inside:
            marked.add(len(words))
        words.append(" " + token)
        if closes:
            inside = False
    assert not inside, case
    return words, marked


def person_words(spans: list[WordSpan]) -> set[int]:
    return {j for s in spans if s.entity == PERSON for j in range(s.first, s.last)}


def shown(words: list[str], indices: set[int]) -> list[str]:
    return [words[j].strip() for j in sorted(indices)]


def check(words: list[str], expected: set[int], spans: list[WordSpan]) -> None:
    got = person_words(spans)
    missed, extra = shown(words, expected - got), shown(words, got - expected)
    assert got == expected, f"missed {missed}, extra {extra}"


def cases(table: dict[str, list[str]]) -> list[Any]:
    return [pytest.param(c, id=f"{family}: {c}") for family, rows in table.items() for c in rows]


# ------------------------------------------------------------- speech rules alone

RULE_POSITIVES: dict[str, list[str]] = {
    "role or kinship noun before": [
        "Hi, my husband, {Kenji Watanabe,} set up the account.",
        "I need to add my daughter {Priyanka} to the plan.",
        "Our accountant, {Rebecca Oyelaran,} sent the forms.",
        "My brother-in-law {Marco Bianchi} will pick it up.",
        "My neighbor, {Stanislav Horak,} got the package.",
        "The technician, {Luis Ortega,} came yesterday.",
        "My grandson, {Mateo,} set up my phone.",
        "I'm the daughter of {Edith Clarke.}",
        "The beneficiary is my mother, {Rosa Jiménez.}",
        "My wife {Anjali} and I share the account.",
    ],
    "role holder is / was": [
        "The account holder is {Chidi Okeke.}",
        "The policyholder is {Ingrid Solberg.}",
        "Our primary contact is {Beatriz Souza.}",
        "The patient is {Aaliyah Brooks.}",
        "I'm the account holder, {Samuel Oduya.}",
        "Sure, the caller was {Ayodele Bankole} and she was upset.",
    ],
    "verb of addressing": [
        "Could you tell {Fernando} I called?",
        "Ask {Tobias Lindqvist} about the invoice.",
        "Please ask Ms. {Delacroix} to call me back.",
        "Attention of Dr. {Lucia Ferreira,} please.",
        "The reservation is under {Haruka Sato.}",
        "Please make the check out to {Liam O'Connell.}",
        "Let {Siobhan} know the package arrived.",
        "Could you let Mr. {Tanaka} know I called?",
        "I'm the executor of the estate of {Harold Finch.}",
    ],
    "weak cue with a listed name": [
        "Could you transfer me to {Dmitri} in support?",
        "I'm trying to reach {Amara Nwachukwu.}",
        "I'd like to leave a message for {Theo Lambert.}",
        "I'm looking for {Arjun Mehta.}",
        "The order was placed by {Haruto Ishikawa.}",
        "I'm calling on behalf of {Eleanor Whitfield.}",
        "Is {Deborah} available?",
        "Is Mr. {Haddad} there?",
        "The appointment is for {Dev Patel.}",
        "The package is for {Sipho Dlamini.}",
        "Send the documents to {Brian O'Leary.}",
        "Please have {Jerome} call me back.",
        "Please note the account belongs to {Haruki Murakami.}",
    ],
    "greeting and self-introduction": [
        "Hi, this is {Tomás García} calling about my claim.",
        "This is {Jonah} with Acme Plumbing.",
        "Hello, I'm {Bongani.}",
        "Hi, I'm {Ximena,} I have a question.",
        "Yes, it's {Wanjiru.}",
        "My name? It's {Priya.}",
        "Thanks, {Tamara,} that helps.",
        "Okay, {Hiroshi,} you're all set.",
        "Hey {Nikhil,} how are you?",
        "Goodbye, {Fatima.}",
        "{Kwabena Mensah} here, returning your call.",
    ],
    "title": [
        "This is Dr. {Hamid Rahimi} returning your call.",
        "Hello Mr. {Ramirez,} thanks for holding.",
        "Mrs {Patel} will call you back.",
        "Please speak to Nurse {Adeyemi.}",
        "Officer {Brennan} took the report.",
    ],
    "name part": [
        "Last name {Nakashima,} first name {Ren.}",
        "First name {Bogdan,} last name {Kravets.}",
        "Her maiden name was {Kowalski.}",
        "For the record, my full name is {Anastasia Petrova.}",
        "What's your last name? {Okonjo.}",
        "The card is in my partner's name, {Jordan Ellis.}",
        "The name on the card is {Chukwuemeka Obi.}",
    ],
    "cue after": [
        "You spoke with {Sunita} from our billing team.",
        "{Raúl Castañeda} from accounting approved it.",
        "{Ngozi} at the front desk has your file.",
        "Yeah, {Jake} told me the same thing.",
        "I'll mark it down, {Will} said it was fine.",
        "Uh, {Bill} said he'd email me.",
    ],
    "spelled": [
        "It's {Olumide,} {O-L-U-M-I-D-E.}",
        "That's {K-W-A-M-E,} {Kwame.}",
        "Put it under {Okonkwo,} {O-K-O-N-K-W-O.}",
        "Her last name is {Zielinski,} {Z-I-E-L-I-N-S-K-I.}",
        "It's {Davis,} {D as in David, A, V, I, S.}",
        "Spell it {B, as in boy, R, O, W, N.}",
        "{Zhou,} {Z like zebra, H, O, U.}",
        "It's {O'Brien,} {O, apostrophe, B, R, I, E, N.}",
        "Last name is {McDonald,} {M-C-D-O-N-A-L-D.}",
        "It's spelled with a K, {K-A-T-I-E.}",
        "It's {Nguyen-Tran,} {N-G-U-Y-E-N, hyphen, T-R-A-N.}",
        "The first name is {Yusuf,} {Y, U, S, U, F,} {Demir,} {D-E-M-I-R.}",
        "Yes, {Paolo,} {P-A-O-L-O,} {Ricci,} and my number is 5 5 5.",
        "it's spelled {OKAFOR}",
    ],
    "listed names and particles": [
        "Can you send it to {Hiroshi Tanaka} at the office?",
        "I think {Mei Lin Zhang} has the receipt.",
        "Yesterday {Grace Kim} picked it up.",
        "My surname is {van der Berg.}",
        "The name is {María de la Cruz.}",
        "My name is {Ludwig van Beethoven} and I play piano.",
        "My name's {Omar bin Rashid.}",
        "This is {Fatima Al-Hashimi} again.",
        "My name is {Bartholomew Fitzgerald-Hayes.}",
    ],
    "same name again": [
        "I'm {Wojciech,} {Wojciech Nowak.}",
        "It's {Grace.} {Grace Kim.}",
        "Uh, {Bill} said he'd email me, {Bill Henderson} from accounting.",
    ],
}

RULE_NEGATIVES: dict[str, list[str]] = {
    "products and brands": [
        "I bought a Samsung TV from Best Buy.",
        "My Honda Accord needs new tires.",
        "It's a 65 inch OLED TV.",
        "It's a 4K TV with 120 hertz.",
        "I have a Dell laptop and an Apple watch.",
        "Chase sent me a new card.",
        "Tell Alexa to turn off the lights.",
        "Ask Siri for directions.",
        "I'm with Progressive for car insurance.",
        "I work at Sunrise Dental.",
        "The owner is Sunrise Properties.",
        "I'm calling on behalf of Acme Insurance.",
        "My employer is Northwind Traders.",
    ],
    "places": [
        "We drove past Jackson Heights on the way.",
        "I'm staying near Victoria station tonight.",
        "We visited Jordan and Egypt last year.",
        "My sister moved to Georgia.",
        "The Lincoln Tunnel was closed.",
        "Austin has great barbecue.",
        "The zip is 7 8 7 0 5, it's Austin.",
        "Turn left at Washington Avenue.",
        "Madison Square Garden was full.",
        "I'm looking for Main Street.",
        "Send it to Denver by Friday.",
        "Ship it to Boise.",
        "Forward the bill to Acme Insurance.",
    ],
    "words that are names": [
        "Will you send me a receipt?",
        "I'll mark it as paid.",
        "Summer is the busiest time.",
        "Hope to hear from you soon.",
        "Grace period ends on Friday.",
        "Bill me next month.",
        "Drew the short straw again.",
        "May I ask a quick question?",
        "Jack up the price and see what happens.",
    ],
    "cues without a name": [
        "Can you tell me my balance?",
        "Tell me more about the plan.",
        "Put it under my account.",
        "The account is under review.",
        "The policy holder is the company.",
        "My wife is Vietnamese.",
        "I'm Canadian.",
        "I'm Fine, thanks.",
        "The patient is stable.",
        "My manager approved the refund.",
        "I'd like to speak to a manager.",
        "Could you transfer me to the fraud department?",
        "What's your last name?",
        "Can you spell your last name for me?",
        "I'm trying to reach Amazon support.",
        "Is Saturday available?",
        "Is Premium available on my plan?",
        "It was approved by HR yesterday.",
        "Let me know when it ships.",
        "The appointment is for Tuesday.",
        "The order is for Premium members only.",
        "Have Spectrum call me tomorrow.",
        "It belongs to the company.",
        "My user name is J-S-M-I-T-H-8-8.",
        "The company name is Bluebird.",
    ],
    "letters that spell no name": [
        "My password is P A S S W O R D 1 2.",
        "Password, M as in Mary, 7, K, dollar sign, 9, Z.",
        "The VIN is 1 H G C M 8 2 6 3 3 A.",
        "The SWIFT code is C H A S U S 3 3.",
        "My license plate is K L M 4 4 2.",
        "Go to H T T P S colon slash slash example dot com.",
        "It's lisa, L-I-S-A, dot park at icloud dot com.",
        "Email me, n-g-o-z-i at gmail dot com.",
        "That's the IBAN, F R 7 6.",
        "It says PIN required.",
        "It's about the ATM fee.",
        "The U S A team won.",
        "It's O K, don't worry.",
        "We need to go to the A T M N.",
    ],
}


@pytest.mark.parametrize("case", cases(RULE_POSITIVES) + cases(RULE_NEGATIVES))
def test_speech_rules(case: str) -> None:
    words, expected = parse(case)
    check(words, expected, find_spoken_entities(words, {PERSON}))


def test_named_words_confirm_weak_cues() -> None:
    """ "I'm X" with an unlisted X needs an NER hit (or a greeting and a pause)."""
    words, expected = parse("I'm {Zebulon} and I'll be helping you today.")
    assert find_spoken_entities(words, {PERSON}) == []
    check(words, expected, find_spoken_entities(words, {PERSON}, named_words=frozenset({1})))


def test_surname_after_a_spelling_needs_a_list_or_ner() -> None:
    words, _ = parse("It's J-O-H-N, Quibblesworth, and that's it.")
    assert person_words(find_spoken_entities(words, {PERSON})) == {1}
    spans = find_spoken_entities(words, {PERSON}, named_words=frozenset({2}))
    assert person_words(spans) == {1, 2}


# ------------------------------------------------------------ with presidio/spaCy


@pytest.fixture(scope="module")
def detector() -> PresidioPiiDetector:
    det = PresidioPiiDetector()
    det.warm_up()
    return det


DETECTOR_CASES: dict[str, list[str]] = {
    "NER name with context": [
        "{Gwendolyn} said she would call back.",
        "You can call me {Rob.}",
        "My manager, {Olena Shevchuk,} approved the refund.",
        "Can you tell {Hiroshi Takemura} that the parts arrived?",
        "The primary insured is {Esperanza Villalobos.}",
        "Okay, {Diego,} I have your address as 3 1 5 Juniper Street, Fresno.",
        "I'm {Radosław,} {Radosław Kamiński,} {K-A-M-I-N-S-K-I.}",
        "{Linh,} {L-I-N-H,} last name {Pham,} {P-H-A-M.}",
    ],
    "no person": [
        "It's a 75 inch TV.",
        "4 7 1 9, that's my PIN.",
        "It's D-R-A-G-O-N-7, my password.",
        "It's 12 Abbey Road, St John's Wood, London NW8 9AY.",
        "I'm waiting outside Victoria station.",
        "We flew to Jordan in May.",
        "My cousin lives in Georgia now.",
        "Holland Tunnel traffic was terrible.",
        "We had lunch near Washington Square Park.",
        "I drive a 2017 Toyota Camry.",
        "My laptop runs Windows 10.",
        "Hunter green was the color we picked.",
        "Madison Avenue was packed.",
        "Sydney was beautiful, we loved Australia.",
        "Hello, you've reached Bright Smile Dental, how may I help?",
        "My user name is K-J-O-N-E-S.",
    ],
}


@pytest.mark.parametrize("case", cases(DETECTOR_CASES))
def test_detector(detector: PresidioPiiDetector, case: str) -> None:
    words, expected = parse(case)
    check(words, expected, detector.detect(words))


STREAMED = [
    "Yeah, the account's under my wife, {Mei Lin Zhang.}",
    "Can you tell {Hiroshi Tanaka} that the package arrived?",
    "Go ahead and put it under {Nakamura,} {N-A-K-A-M-U-R-A.}",
    "It's {Smith,} {S as in Sam, M, I, T, H.}",
    "Uh, {Bill} said he'd email me, {Bill Henderson} from accounting.",
    "The zip is 7 8 7 0 5, it's Austin.",
    "Tell Alexa to turn off the lights.",
    "I'm staying near Victoria station tonight.",
]


@pytest.mark.parametrize("case", STREAMED)
def test_streaming_prefixes(detector: PresidioPiiDetector, case: str) -> None:
    """Growing windows: a flagged name word stays flagged, nothing else is ever flagged."""
    words, expected = parse(case)
    before: set[int] = set()
    for end in range(1, len(words) + 1):
        now = person_words(detector.detect(words[:end]))
        prefix = "".join(words[:end])
        assert not now - expected, f"{prefix!r} flags {shown(words, now - expected)}"
        assert before <= now, f"{prefix!r} dropped {shown(words, before - now)}"
        before = now
    assert before == expected


# ----------------------------------------------------------------- NER spans


@pytest.mark.parametrize(
    ("case", "kept"),
    [
        # Context before or after makes any name-shaped span a person.
        ("my wife, {Mei Lin Zhang.}", (2, 5)),
        ("the caller was {Ayesha Siddiqui} and", (3, 5)),
        ("can you tell {Hiroshi Tanaka} that", (3, 5)),
        ("{Bill Henderson} from accounting", (0, 2)),
        ("her name's {Siobhan,} that's S-I-O-B-H-A-N", (2, 3)),
        ("Okay, {Diego,} I have your address", (1, 2)),
        # A listed first name before the span is part of the name.
        ("The policy holder is Alejandro {García Márquez.}", (4, 7)),
        # Acronyms, digits and greetings at the edges are trimmed.
        ("It's a {4K TV} with 120 hertz", None),
        ("Hi, {Bye Maria Davis} calling", (2, 4)),
        # A name that is also a place or a word needs more than "it's".
        ("The zip is 78705, it's {Austin.}", None),
        ("Yeah, it's {Grace.}", (2, 3)),
        ("I'm calling from outside {Victoria} station.", None),
        ("we stayed near {Washington} Square Park", None),
        # Example words of a spelling are not people.
        ("Password, M as in {Mary,} 7, K", None),
        # Unlisted words without context are no name (a misheard word, a business).
        ("the total last $45 {Zendai} paid at Normandy.", None),
        ("you've reached {Sunrise Dental,} this is Kevin", None),
    ],
)
def test_plausible_person(case: str, kept: tuple[int, int] | None) -> None:
    words = [" " + w.strip("{}") for w in case.split()]
    first = next(i for i, w in enumerate(case.split()) if w.startswith("{"))
    last = next(i for i, w in enumerate(case.split()) if w.endswith("}") or w.endswith("},")) + 1
    assert plausible_person(words, first, last) == kept


# ------------------------------------------------------------------ name lists


def test_lists_cover_many_cultures() -> None:
    assert len(FIRST_NAMES) >= 1000 and len(SURNAMES) >= 1000
    for name in ("oluwaseun", "siobhan", "xiaoling", "hiroshi", "tomasz", "lakshmi",
                 "aaliyah", "svetlana", "ayesha", "kwabena", "ximena", "ngozi"):
        assert name in FIRST_NAMES, name
    for name in ("adeyemi", "o'sullivan", "kowalczyk", "tanaka", "nguyen", "siddiqui",
                 "petrenko", "okafor", "iyer", "wiśniewski", "márquez"):
        assert is_common_name(name), name


def test_fold_and_compound_names() -> None:
    assert fold("García") == "garcia"
    assert fold("Wiśniewski") == "wisniewski"
    assert fold("Łukasz") == "lukasz"
    assert is_common_name("garcía") and is_common_name("garcia")
    assert is_common_name("al-hashimi") and is_common_name("fitzgerald-hayes")
    assert not is_common_name("acme-widgets")


def test_ambiguous_names_are_not_certain() -> None:
    for word in ("will", "grace", "austin", "jordan", "georgia", "chase", "summer", "victoria"):
        assert is_common_name(word) and not is_certain_name(word), word
        assert word in AMBIGUOUS_FIRST_NAMES, word
    assert is_certain_name("hiroshi") and is_certain_name("okafor")
    assert not ({"texas", "windows", "amazon", "tv", "monday"} - NOT_NAMES)

