"""Phrasings and made-up values for the two-party call dialogues (``benchmarks/dialogues.py``).

Two phrasebooks, ``DEV`` and ``BLIND``, share no phrasing and no name: every
greeting, question, answer, hard negative and closing, and every first and last
name, belongs to exactly one of them, so rules tuned on the dev dialogues cannot
have seen the blind ones.

A request is an agent question that names the value (the cue) and a caller answer
that usually does not ("uh, yeah, it's 9 8 1 7"): answers come as ``bare`` (no cue)
or ``cued`` ("my social is ..."). Answer templates hold one ``{}`` for the value;
``{...}`` asks for the value said hesitantly, with pauses between its groups. Text
may carry ``[written|spoken]`` literals (``holdout_templates.literal``) and ``...``
for a pause. Values reuse the holdout generators (cards, SSNs, phones, dates of
birth, addresses, member ids); all are invented: 555-01xx lines, example domains,
Luhn-valid test card numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from holdout_templates import (
    Piece,
    Value,
    _spoken_email,
    address,
    amex,
    card,
    digit_words,
    dob,
    member_id,
    number_words,
    pair_words,
    phone,
    ssn,
)

# What the detector calls each kind of value (streamserver/core/pii/entities.py):
# a ZIP code is ZIP_CODE; member ids outside health talk are ACCOUNT_NUMBER.
KINDS: dict[str, str] = {
    "SSN_LAST4": "US_SSN", "SSN": "US_SSN", "ZIP": "ZIP_CODE", "SPELL_LAST": "PERSON",
    "EMAIL": "EMAIL_ADDRESS", "NAME": "PERSON", "CARD": "CREDIT_CARD",
    "CARD_LAST4": "CREDIT_CARD", "DOB": "DATE_OF_BIRTH", "PHONE": "PHONE_NUMBER",
    "MEMBER_ID": "ACCOUNT_NUMBER", "ADDRESS": "LOCATION",
}  # fmt: skip
READBACK_KINDS = ("PHONE", "EMAIL", "CARD_LAST4", "ZIP")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")


@dataclass(frozen=True)
class Phrasebook:
    name: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    agent_names: tuple[str, ...]
    greetings: tuple[str, ...]  # agent; {} = the agent's own first name
    openings: tuple[str, ...]  # caller, why they call: numbers that are no personal data
    plain_openings: tuple[str, ...]  # caller, why they call, no numbers
    questions: dict[str, tuple[str, ...]]  # kind -> agent request (the cue)
    bare: tuple[str, ...]  # caller answers without a cue, any kind
    cued: dict[str, tuple[str, ...]]  # kind -> caller answers that name the value
    non_answers: tuple[str, ...]  # caller cannot give what was asked
    small_talk: tuple[tuple[str, str], ...]  # (agent, caller): quantities, prices, times
    readbacks: dict[str, tuple[str, ...]]  # kind -> agent reads a value back
    confirmations: tuple[str, ...]  # caller, after a readback
    closings: tuple[str, ...]  # agent
    goodbyes: tuple[str, ...]  # caller

    def phrasings(self) -> set[str]:
        """Every phrasing in the book (for the dev/blind disjointness check)."""
        out = {*self.greetings, *self.openings, *self.plain_openings, *self.bare, *self.non_answers,
               *self.confirmations, *self.closings, *self.goodbyes}
        out |= {s for pair in self.small_talk for s in pair}
        for table in (self.questions, self.cued, self.readbacks):
            out |= {s for texts in table.values() for s in texts}
        return out


DEV = Phrasebook(
    name="dev",
    first_names=("Yolanda", "Desmond", "Ingrid", "Tobias", "Marisol", "Kwame", "Beatrix",
                 "Lorenzo", "Shanice", "Anders"),
    last_names=("Castillo", "Delgado", "Okonkwo", "Lindgren", "Abernathy", "Vasquez",
                "Pemberton", "Marchetti", "Sorensen", "Quintero"),
    agent_names=("Dana", "Marcus", "Leah", "Jorge"),
    greetings=(
        "Thank you for calling Northwind support, this is {}, how can I help you?",
        "Hi, you've reached billing, my name is {}.",
        "Good morning, thanks for holding, how can I help?",
    ),
    openings=(
        "Hi, I ordered [3|three] boxes last week and only [2|two] showed up.",
        "Yeah, my bill went from [49|forty nine] to [65|sixty five] dollars this month.",
        "I'm calling about the internet, it's been down since about [7|seven] this morning.",
        "Hi, I need the delivery moved to after [5|five] o'clock.",
    ),
    plain_openings=("Hi, I need to update some details on my account.",
                    "Hey, I'm calling about a charge on my bill.",
                    "Hi there, I'd like to make a payment."),
    questions={
        "SSN_LAST4": ("For verification, can I get the last four of your social?",
                      "Can you verify the last four digits of your social security number?",
                      "I just need the last four of the social to pull it up."),
        "SSN": ("And what's your social security number?",
                "I'll need the full social, go ahead whenever you're ready.",
                "Can you read me your SSN, please?"),
        "ZIP": ("What's the zip code on the account?", "Can I get the billing zip code?",
                "And the zip code there?"),
        "SPELL_LAST": ("Could you spell your last name for me?",
                       "How do you spell the last name?",
                       "Can you spell the surname for me?"),
        "EMAIL": ("What email should I send it to?", "What's a good email address for you?",
                  "Which email do you want the receipt sent to?"),
        "NAME": ("Who am I speaking with?", "Can I get your name, please?",
                 "And who do I have on the line today?"),
        "CARD": ("Go ahead with the card number.", "What's the card number you'd like to use?",
                 "Okay, I can take the card number now."),
        "CARD_LAST4": ("Confirm the last four of the card.",
                       "Which card is it, can you read me the last four digits?",
                       "What are the last four on the card you used?"),
        "DOB": ("And your date of birth?", "Can you confirm your date of birth for me?",
                "What's the birth date on the account?"),
        "PHONE": ("What's the best number to reach you?", "What's a good callback number?",
                  "Can I get a phone number for the account?"),
        "MEMBER_ID": ("What's your member ID?", "Do you have your member number handy?",
                      "Can you read me the membership number?"),
        "ADDRESS": ("What's the street address?", "What address should we ship it to?",
                    "And the service address, please?"),
    },
    bare=("uh, yeah, it's {}", "{}", "um, {}", "sure, {...}", "let me see... {}",
          "hold on... okay, {}", "yeah, {}", "it's {}"),
    cued={
        "SSN_LAST4": ("the last four are {}", "my social ends in {}"),
        "SSN": ("my social is {}", "social security number is {...}"),
        "ZIP": ("the zip is {}", "zip code's {}"),
        "SPELL_LAST": ("it's spelled {}", "last name is {}"),
        "EMAIL": ("my email is {}", "send it to {}"),
        "NAME": ("this is {}", "my name is {}"),
        "CARD": ("the card number is {...}", "okay, the Visa is {}"),
        "CARD_LAST4": ("the card ends in {}", "last four on the card are {}"),
        "DOB": ("I was born on {}", "my birthday is {}"),
        "PHONE": ("my cell is {}", "you can call me at {...}"),
        "MEMBER_ID": ("my member ID is {}", "the member number is {}"),
        "ADDRESS": ("I live at {}", "ship it to {}"),
    },
    non_answers=("No, I don't have it with me.", "Uh, I don't know it offhand, sorry.",
                 "Hmm, I'd have to go find it."),
    small_talk=(
        ("How many did you want to order?", "[12|twelve], so [2|two] boxes of [6|six]."),
        ("And how much did they charge you?", "It was [129.99|one twenty nine ninety nine] "
                                              "with tax."),
        ("What time works for the technician?", "Anytime after [2:30|two thirty] on Thursday."),
        ("How long has it been doing that?", "About [3|three] weeks, maybe [20|twenty] days."),
    ),
    readbacks={
        "PHONE": ("I have {} as the number on file, is that still good?",),
        "EMAIL": ("I'll send it to {}, is that right?",),
        "CARD_LAST4": ("I see a card ending in {}, is that the one?",),
        "ZIP": ("And the zip I have is {}, correct?",),
    },
    confirmations=("Yes, that's right.", "Yep, that's still good."),
    closings=("Alright, you're all set. Anything else I can help with?",
              "Perfect, that's everything I need. Have a great day.",
              "Thanks, I've updated the account."),
    goodbyes=("No, that's it, thanks.", "Nope, thank you so much."),
)

BLIND = Phrasebook(
    name="blind",
    first_names=("Rosalind", "Dmitri", "Esperanza", "Callum", "Noor", "Wendell", "Ottilie",
                 "Ignatius", "Zainab", "Rutger"),
    last_names=("Halvorsen", "Achebe", "Kovalenko", "Whitfield", "Ferreira", "Brannigan",
                "Oyelaran", "Szabo", "Thibodeaux", "Yamada"),
    agent_names=("Tamsin", "Rahul", "Bianca", "Ellis"),
    greetings=(
        "Hello, {} speaking, what can I do for you today?",
        "Customer care, how may I help you?",
        "Hey there, thanks for waiting, you're with {}.",
    ),
    openings=(
        "Hello, I was charged twice, [2|two] payments of [35|thirty five] dollars each.",
        "I've been trying since Monday, this is my [4th|fourth] call.",
        "My package was supposed to come on the [12th|twelfth] and it's still not here.",
        "I want to upgrade to the [500|five hundred] megabit plan.",
    ),
    plain_openings=("Yes, hello, I have a question about my order.",
                    "Hi, I think somebody changed my settings.",
                    "Good afternoon, I'm trying to cancel a subscription."),
    questions={
        "SSN_LAST4": ("To confirm it's you, what are the final four digits of your Social "
                      "Security?", "Last four of the SSN, please."),
        "SSN": ("I'm going to need your full social to open the claim.",
                "Could you give me your social security number?"),
        "ZIP": ("Which postal code is that billing address in?", "Zip, please?"),
        "SPELL_LAST": ("And how is your surname spelled?",
                       "Let me make sure I have it right, can you spell out the last name?"),
        "EMAIL": ("Where should the confirmation go, what's your email?",
                  "Do you have an email address we can use?"),
        "NAME": ("May I have your full name?", "And your name is?"),
        "CARD": ("Whenever you're ready, read me the digits on the front of the card.",
                 "Which card number should I charge?"),
        "CARD_LAST4": ("Just to double check, the card ends in what?",
                       "Read me the final four digits on the card, please."),
        "DOB": ("When were you born?", "I'll also need the birthday on file."),
        "PHONE": ("What number should we call you back on?", "And a contact phone number?"),
        "MEMBER_ID": ("Can you give me the ID number from your rewards card?",
                      "What's the member number, it should be on the back of your card?"),
        "ADDRESS": ("Where do you live, the full address?",
                    "What's the house number and street?"),
    },
    bare=("okay so, {}", "right, um, {}", "one second... got it, {}", "mm, that'd be {}",
          "yep, {}", "alright, {...}"),
    cued={
        "SSN_LAST4": ("those would be {}, the last four", "ends with {}, that's the social"),
        "SSN": ("{}, that's my social", "SSN is {}"),
        "ZIP": ("{}, that's the zip", "postal code {}"),
        "SPELL_LAST": ("surname {}", "I spell it {}"),
        "EMAIL": ("email's {}", "{}, that's my email"),
        "NAME": ("I'm {}", "{} speaking"),
        "CARD": ("card number {...}", "{}, that's the Mastercard"),
        "CARD_LAST4": ("{} is the last four of the card", "it ends in {}"),
        "DOB": ("{}, that's my birthday", "date of birth {}"),
        "PHONE": ("phone number's {}", "reach me at {}"),
        "MEMBER_ID": ("{}, that's the member ID", "the ID is {}"),
        "ADDRESS": ("{}, that's my home address", "we're at {}"),
    },
    non_answers=("Sorry, it's in the car, I can't get to it right now.",
                 "I never memorised that one, honestly.", "I don't have the card on me."),
    small_talk=(
        ("How many units are affected?", "[4|four] of the [10|ten] we bought."),
        ("What did the last invoice come to?", "[84.50|eighty four fifty], I think."),
        ("When's a good window for delivery?", "Between [9|nine] and [11|eleven] on Saturday."),
        ("How many people are on the plan?", "[5|five] of us, [3|three] adults and [2|two] "
                                             "kids."),
    ),
    readbacks={
        "PHONE": ("The callback number showing here is {}, still current?",),
        "EMAIL": ("Your email on file reads {}, does that sound right?",),
        "CARD_LAST4": ("Is it the card that ends {}?",),
        "ZIP": ("Still at zip {}?",),
    },
    confirmations=("Correct.", "That's the one."),
    closings=("Great, that's taken care of. Is there anything else?",
              "Okay, you should see that in your inbox shortly. Bye now."),
    goodbyes=("That's all, bye.", "No, I'm good, thanks again."),
)

BOOKS = {"dev": DEV, "blind": BLIND}


# --- values ------------------------------------------------------------------------------

ValueMaker = Callable[[random.Random, int, Phrasebook], list[Piece]]


def four_digits(entity: str) -> ValueMaker:
    """Last four of a card or a social: '9 8 1 7', 'ninety eight seventeen', '98, 17'."""

    def make(rng: random.Random, k: int, book: Phrasebook) -> list[Piece]:
        d = f"{rng.randrange(10000):04d}"
        spoken = (digit_words(d), pair_words(d),
                  f"{digit_words(d[:2], 'zero')}, {digit_words(d[2:], 'zero')}")[k % 3]
        return [Value(entity, d, spoken)]

    return make


def zip_code(rng: random.Random, k: int, book: Phrasebook) -> list[Piece]:
    z = f"{rng.randrange(1001, 99951):05d}"
    spoken = (digit_words(z), digit_words(z, "zero"),
              f"{digit_words(z[:3])}, {digit_words(z[3:])}")[k % 3]
    return [Value("ZIP_CODE", z, spoken)]


def spelled_last(rng: random.Random, k: int, book: Phrasebook) -> list[Piece]:
    last = rng.choice(book.last_names)
    spelled = Value("PERSON", "-".join(last.upper()), ", ".join(last.upper()))
    if k % 2:
        return [spelled]
    return [Value("PERSON", last, last), ", ", spelled]  # "Delgado, D E L G A D O"


def full_name(rng: random.Random, k: int, book: Phrasebook) -> list[Piece]:
    name = f"{rng.choice(book.first_names)} {rng.choice(book.last_names)}"
    return [Value("PERSON", name, name)]


def email_address(rng: random.Random, k: int, book: Phrasebook) -> list[Piece]:
    first, last = rng.choice(book.first_names).lower(), rng.choice(book.last_names).lower()
    domain = rng.choice(EMAIL_DOMAINS)
    style = k % 3
    if style == 0:  # "yolanda dot castillo at example dot com"
        addr = f"{first}.{last}@{domain}"
        return [Value("EMAIL_ADDRESS", addr, _spoken_email(addr))]
    if style == 1:  # "y castillo eighty four at ..."
        n = rng.randrange(10, 100)
        addr = f"{first[0]}{last}{n}@{domain}"
        spoken = f"{first[0]}, {last} {number_words(n)} at {_spoken_email(domain)}"
        return [Value("EMAIL_ADDRESS", addr, spoken)]
    addr = f"{last}@{domain}"  # the local part spelled out
    return [Value("EMAIL_ADDRESS", addr,
                  f"{', '.join(last.upper())} at {_spoken_email(domain)}")]


def lettered_member_id(rng: random.Random, k: int, book: Phrasebook) -> list[Piece]:
    if k % 2 == 0:
        return member_id(rng, k)
    letters = "".join(rng.choice("BCDFHKMRTW") for _ in range(2))
    digits = f"{rng.randrange(10**6):06d}"
    return [Value("ACCOUNT_NUMBER", letters + digits,
                  f"{', '.join(letters)}, {digit_words(digits[:3])}, {digit_words(digits[3:])}")]


VALUES: dict[str, ValueMaker] = {
    "SSN_LAST4": four_digits("US_SSN"),
    "SSN": lambda rng, k, book: ssn(rng, k),
    "ZIP": zip_code,
    "SPELL_LAST": spelled_last,
    "EMAIL": email_address,
    "NAME": full_name,
    "CARD": lambda rng, k, book: (card if k % 4 else amex)(rng, k),
    "CARD_LAST4": four_digits("CREDIT_CARD"),
    "DOB": lambda rng, k, book: dob(rng, k),
    "PHONE": lambda rng, k, book: phone(rng, k),
    "MEMBER_ID": lettered_member_id,
    "ADDRESS": lambda rng, k, book: address(rng, k),
}
