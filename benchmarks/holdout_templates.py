"""Sentences and made-up values for the holdout set (``benchmarks/holdout.py``).

Deliberately unlike the ``pii_dev`` sentences: other call-centre phrasings,
values said in several spoken forms, context after the value, two values in one
sentence, and hard negatives full of numbers, times and dates that are not
personal data. Every value is invented: 555-01xx phone lines, example-style
domains, Luhn-valid test card numbers, SSNs in valid ranges but random.

A template is text with ``{SLOT}`` values and ``[written|spoken]`` literals (the
manifest shows the written form, the voice says the spoken one). Each slot's
generator returns pieces: plain strings (literal text) and :class:`Value` s (a
span to redact). Generators take the slot's use count so every spoken style of
a slot appears in turn, whatever the seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Value:
    entity: str
    written: str  # as the manifest shows it
    spoken: str  # what the voice is given


Piece = str | Value
Generator = Callable[[random.Random, int], list[Piece]]

# --- spoken numbers ------------------------------------------------------------------

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINALS = ("", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
             "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth",
             "twenty first", "twenty second", "twenty third", "twenty fourth", "twenty fifth",
             "twenty sixth", "twenty seventh", "twenty eighth", "twenty ninth", "thirtieth",
             "thirty first")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def number_words(n: int) -> str:
    """0..999999 as words: 1420 -> 'one thousand four hundred twenty'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return _TENS[t] + (f" {_ONES[o]}" if o else "")
    if n < 1000:
        h, r = divmod(n, 100)
        return f"{_ONES[h]} hundred" + (f" {number_words(r)}" if r else "")
    th, r = divmod(n, 1000)
    return f"{number_words(th)} thousand" + (f" {number_words(r)}" if r else "")


def digit_words(s: str, zero: str = "oh") -> str:
    """'0132' -> 'oh one three two' (non-digits dropped)."""
    return " ".join(zero if c == "0" else _ONES[int(c)] for c in s if c.isdigit())


def pair_words(s: str) -> str:
    """Digits said in pairs, as people read card groups: '4417' -> 'forty four seventeen'."""
    s = "".join(c for c in s if c.isdigit())
    out = []
    if len(s) % 2:
        out.append(digit_words(s[0]))
        s = s[1:]
    for i in range(0, len(s), 2):
        a, b = s[i], s[i + 1]
        if a == "0":
            out.append("oh oh" if b == "0" else f"oh {_ONES[int(b)]}")
        else:
            out.append(number_words(int(a + b)))
    return " ".join(out)


def year_words(y: int) -> str:
    if 2000 <= y < 2010:
        return f"two thousand {_ONES[y - 2000]}" if y > 2000 else "two thousand"
    hi, lo = divmod(y, 100)
    tail = number_words(lo) if lo >= 10 else (f"oh {_ONES[lo]}" if lo else "hundred")
    return f"{number_words(hi)} {tail}"


def house_words(n: int) -> str:
    """House numbers as said aloud: 742 -> 'seven forty two', 1420 -> 'fourteen twenty'."""
    if n < 100:
        return number_words(n)
    if n < 1000:
        h, r = divmod(n, 100)
        return f"{_ONES[h]} " + (number_words(r) if r >= 10 else f"oh {_ONES[r]}")
    return pair_words(str(n))


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:  # doubled: the check digit will sit to its right
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# --- value pools (none of them in pii_dev) -----------------------------------------------

FIRST = ("Priya", "Tomasz", "Keisha", "Carlos", "Emily", "Owen", "Fatima", "Greg", "Hannah",
         "Marcus", "Sofia", "Derek", "Aisha", "Brendan", "Mei", "Rafael", "Yusuf", "Colleen",
         "Nadia", "Trevor")
LAST = ("Raman", "Kowalski", "Brennan", "Mendoza", "Nguyen", "Gallagher", "Haddad", "Olsen",
        "Weiss", "Bell", "Rossi", "Chung", "Okafor", "Fitzgerald", "Petrov", "Alvarez",
        "Lindqvist", "Moreau", "Takahashi", "Becker")
STREETS = ("Elm Street", "Evergreen Terrace", "Cedar Avenue", "Willow Court", "Harbor View Lane",
           "Birch Boulevard", "Lakeshore Drive", "Magnolia Way", "Sycamore Lane", "Old Mill Road")
CITIES = ("Denver", "Tacoma", "Albany", "Tucson", "Raleigh", "Madison", "Boise", "Omaha")
STATES = {"Denver": ("Colorado", "80204"), "Tacoma": ("Washington", "98402"),
          "Albany": ("New York", "12207"), "Tucson": ("Arizona", "85701"),
          "Raleigh": ("North Carolina", "27601"), "Madison": ("Wisconsin", "53703"),
          "Boise": ("Idaho", "83702"), "Omaha": ("Nebraska", "68102")}
AREA_CODES = ("415", "312", "646", "720", "503", "617", "206", "404", "512", "303")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "gmail.com")


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _spoken_email(addr: str) -> str:
    out = addr.replace(".", " dot ").replace("@", " at ").replace("_", " underscore ")
    out = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", out)
    return " ".join(out.split())


# --- slot generators -------------------------------------------------------------------


def person(rng: random.Random, k: int) -> list[Piece]:
    first, last = _name(rng)
    return [Value("PERSON", f"{first} {last}", f"{first} {last}")]


def first_name(rng: random.Random, k: int) -> list[Piece]:
    first = rng.choice(FIRST)
    return [Value("PERSON", first, first)]


def surname_spelled(rng: random.Random, k: int) -> list[Piece]:
    last = rng.choice([n for n in LAST if len(n) <= 8])
    letters = last.upper()
    return [Value("PERSON", last, last), ", that's ",
            Value("PERSON", "-".join(letters), ", ".join(letters))]


def phone(rng: random.Random, k: int) -> list[Piece]:
    area = rng.choice(AREA_CODES)
    line = f"01{rng.randrange(100):02d}"
    style = k % 6
    if style == 0:  # "555 867 5309": the exchange first, digit by digit
        mid = f"{rng.randrange(200, 1000):03d}"
        w, s = f"555 {mid} {line}", f"{digit_words('555')}, {digit_words(mid)}, {digit_words(line)}"
    elif style == 1:
        w = f"({area}) 555-{line}"
        s = f"{digit_words(area)}, five five five, {digit_words(line)}"
    elif style == 2:
        w = f"{area}-555-{line}"
        s = f"{digit_words(area, 'zero')} five five five {digit_words(line, 'zero')}"
    elif style == 3:  # mixed: digits then pairs
        w = f"{area}.555.{line}"
        s = f"{digit_words(area)}, five five five, {pair_words(line)}"
    elif style == 4:
        w = f"+1 {area} 555 {line}"
        s = f"plus one, {digit_words(area)}, five five five, {digit_words(line)}"
    else:  # toll-free said with "hundred"
        w = f"800-555-{line}"
        s = f"eight hundred, five five five, {digit_words(line)}"
    return [Value("PHONE_NUMBER", w, s)]


def _grouped(number: str, groups: tuple[int, ...]) -> list[str]:
    out, i = [], 0
    for g in groups:
        out.append(number[i : i + g])
        i += g
    return out


def card(rng: random.Random, k: int) -> list[Piece]:
    style = k % 3
    prefix = ("4", "4", "6011")[style]  # Visa, Visa, Discover
    number = luhn_complete(prefix, 16, rng)
    groups = _grouped(number, (4, 4, 4, 4))
    if style == 0:
        spoken = ", ".join(digit_words(g) for g in groups)
    elif style == 1:
        spoken = ", ".join(pair_words(g) for g in groups)
    else:
        spoken = " ".join(digit_words(g, "zero") for g in groups)
    return [Value("CREDIT_CARD", " ".join(groups), spoken)]


def amex(rng: random.Random, k: int) -> list[Piece]:
    number = luhn_complete(("34", "37")[k % 2], 15, rng)
    groups = _grouped(number, (4, 6, 5))
    spoken = ", ".join(digit_words(g, ("oh", "zero")[k % 2]) for g in groups)
    return [Value("CREDIT_CARD", " ".join(groups), spoken)]


def ssn(rng: random.Random, k: int) -> list[Piece]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    a, g, s = f"{area:03d}", f"{rng.randrange(1, 100):02d}", f"{rng.randrange(1, 10000):04d}"
    style = k % 3
    if style == 0:
        spoken = f"{digit_words(a)}, {digit_words(g)}, {digit_words(s)}"
    elif style == 1:
        spoken = f"{digit_words(a, 'zero')} dash {digit_words(g, 'zero')} dash {digit_words(s)}"
    else:
        spoken = f"{digit_words(a)}, {number_words(int(g))}, {pair_words(s)}"
    return [Value("US_SSN", f"{a}-{g}-{s}", spoken)]


def email(rng: random.Random, k: int) -> list[Piece]:
    first, last = _name(rng)
    style = k % 4
    if style == 0:  # said the way people say it
        addr = f"{first}.{last}@{rng.choice(('gmail.com', 'example.com'))}".lower()
        return [Value("EMAIL_ADDRESS", addr, _spoken_email(addr))]
    if style == 1:  # the voice reads the written address itself
        addr = f"{first[0]}.{last}@{rng.choice(('example.org', 'example.net'))}".lower()
        return [Value("EMAIL_ADDRESS", addr, addr)]
    if style == 2:
        addr = f"{first[0]}_{last}{rng.randrange(10, 100)}@{rng.choice(DOMAINS)}".lower()
        return [Value("EMAIL_ADDRESS", addr, _spoken_email(addr))]
    letters = last.lower()  # local part spelled out
    addr = f"{letters}@{rng.choice(('example.com', 'example.net'))}"
    spoken = ", ".join(letters.upper()) + " at " + _spoken_email(addr.split("@")[1])
    return [Value("EMAIL_ADDRESS", addr, spoken)]


def dob(rng: random.Random, k: int) -> list[Piece]:
    y, m, d = rng.randrange(1945, 2004), rng.randrange(1, 13), rng.randrange(1, 29)
    month, style = _MONTHS[m - 1], k % 5
    suffix = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd"}.get(d, "th")
    if style == 0:
        w, s = f"{month} {d}{suffix} {y}", f"{month} {_ORDINALS[d]}, {year_words(y)}"
    elif style == 1:
        w = f"{m:02d}/{d:02d}/{y}"
        s = f"{pair_words(f'{m:02d}')}, {pair_words(f'{d:02d}')}, {year_words(y)}"
    elif style == 2:
        w, s = f"the {d}{suffix} of {month} {y}", f"the {_ORDINALS[d]} of {month}, {year_words(y)}"
    elif style == 3:
        w = f"{m}-{d}-{y % 100:02d}"
        s = f"{number_words(m)} {number_words(d)} {pair_words(f'{y % 100:02d}')}"
    else:
        w, s = f"{month} {d}, {y}", f"{month} {number_words(d)}, {year_words(y)}"
    return [Value("DATE_OF_BIRTH", w, s)]


def address(rng: random.Random, k: int) -> list[Piece]:
    street, city = rng.choice(STREETS), rng.choice(CITIES)
    style = k % 4
    if style == 0:
        n, apt = rng.randrange(1000, 2000), rng.randrange(2, 20)
        w = f"{n} {street}, Apartment {apt}, {city}"
        s = f"{house_words(n)} {street}, apartment {number_words(apt)}, {city}"
    elif style == 1:
        n = rng.randrange(100, 1000)
        w, s = f"{n} {street}", f"{house_words(n)} {street}"
    elif style == 2:
        n, unit = rng.randrange(10, 100), f"{rng.randrange(1, 30)}B"
        state, zipc = STATES[city]
        w = f"{n} {street}, Unit {unit}, {city}, {state} {zipc}"
        s = (f"{house_words(n)} {street}, unit {number_words(int(unit[:-1]))} B, {city}, "
             f"{state}, {digit_words(zipc)}")
    else:
        n = rng.randrange(2000, 9000)
        w = f"{n} {street}, {city}"
        s = f"{house_words(n)} {street} in {city}"
    return [Value("LOCATION", w, s)]


def member_id(rng: random.Random, k: int) -> list[Piece]:
    a, b = f"{rng.randrange(1000, 10000)}", f"{rng.randrange(10000):04d}"
    return [Value("ACCOUNT_NUMBER", f"{a} {b}", f"{digit_words(a)}, {digit_words(b)}")]


def policy(rng: random.Random, k: int) -> list[Piece]:
    letters = rng.choice(("HX", "PL", "AK", "QM"))
    mid, end = f"{rng.randrange(10000, 100000)}", f"{rng.randrange(100):02d}"
    return [Value("ACCOUNT_NUMBER", f"{letters}-{mid}-{end}",
                  f"{', '.join(letters)}, {digit_words(mid)}, {digit_words(end)}")]


def account(rng: random.Random, k: int) -> list[Piece]:
    n = f"{rng.randrange(10**11):012d}"
    groups = _grouped(n, (4, 4, 4))
    zero = ("oh", "zero")[k % 2]
    return [Value("ACCOUNT_NUMBER", " ".join(groups),
                  " ".join(digit_words(g, zero) for g in groups))]


SLOTS: dict[str, Generator] = {
    "PERSON": person, "FIRST": first_name, "SURNAME_SPELLED": surname_spelled,
    "PHONE": phone, "CARD": card, "AMEX": amex, "SSN": ssn, "EMAIL": email, "DOB": dob,
    "ADDRESS": address, "MEMBER_ID": member_id, "POLICY": policy, "ACCOUNT": account,
}

# --- templates ---------------------------------------------------------------------------

PII_TEMPLATES: tuple[str, ...] = (
    # PERSON
    "Hello, you're speaking with {PERSON}, how can I help you today?",
    "The account is in my mother's name, {PERSON}.",
    "{PERSON} here, I got a letter from you last week.",
    "Could you put me through to {PERSON} in billing?",
    "My surname is {SURNAME_SPELLED}.",
    "I spoke to an agent called {FIRST} yesterday and she said it was fixed.",
    # PHONE_NUMBER
    "The best callback number is {PHONE}.",
    "{PHONE} is my cell, so call me there.",
    "Text me on {PHONE} if anything changes with the delivery.",
    "My wife's number is {PHONE} and mine is {PHONE}.",
    "Sure, take down {PHONE} and ask for the front desk.",
    # CREDIT_CARD
    "{CARD} is my card.",
    "Go ahead and put it on the Visa, {CARD}, thank you.",
    "The Amex number is {AMEX}.",
    "Okay, I'd like to pay with {CARD} today please.",
    "Let me read it to you, {AMEX}, and that's the corporate card.",
    # US_SSN
    "For verification my social is {SSN}.",
    "{SSN}, that's my social security number.",
    "They asked for the SSN so I gave them {SSN} over the phone.",
    "The social on the application should read {SSN}, is that what you have?",
    # EMAIL_ADDRESS
    "You can email me, it's {EMAIL}, all lower case.",
    "{EMAIL} is the best address for the invoice.",
    "Update my contact email to {EMAIL} please.",
    "Did you send it to {EMAIL} or to my work one?",
    # DATE_OF_BIRTH
    "I was born on {DOB}.",
    "[DOB|D, O, B] is {DOB}.",
    "{DOB} is my birthday, if that helps.",
    "The birth date on file should be {DOB}, not the one you have.",
    # LOCATION
    "We moved to {ADDRESS} last spring.",
    "Ship it to {ADDRESS}, that's the new place.",
    "{ADDRESS} is the billing address on the account.",
    "The technician needs to come out to {ADDRESS} on Thursday.",
    # ACCOUNT_NUMBER
    "My member ID is {MEMBER_ID}.",
    "The policy number is {POLICY} for the home insurance.",
    "{ACCOUNT}, that's the customer number on the bill.",
    "Can you look up account {ACCOUNT} for me?",
    # two values, or values among harmless numbers
    "This is {PERSON}, my callback number is {PHONE}.",
    "Ship it to {ADDRESS} and send tracking to {EMAIL}.",
    "Name on the card is {PERSON}, number {CARD}.",
    "Member ID {MEMBER_ID}, date of birth {DOB}.",
    "Call me at {PHONE} after [6|six], I have [2|two] kids to pick up at three.",
    "Hi, it's {PERSON}, I'm calling about the [2|two] chairs that arrived broken on Friday.",
)

NEGATIVE_TEMPLATES: tuple[str, ...] = (
    "Flight [237|two thirty seven] leaves from gate [12|twelve] at three thirty.",
    "I'm in room [404|four oh four] on the fourth floor of the hotel.",
    "We upgraded to version [2.5|two point five] last week and it keeps crashing.",
    "Honestly the year [2019|twenty nineteen] was great for our business.",
    "I need [3|three] boxes of [12|twelve], not [2|two] boxes of [6|six].",
    "Press [1|one] for sales, or press [2|two] for technical support.",
    "The total came to [129|one hundred twenty nine] dollars and [99|ninety nine] cents "
    "with tax.",
    "I've been on hold for forty five minutes since a quarter past two.",
    "We're open from nine to five, Monday through Friday, and until noon on Saturday.",
    "The box weighs [14|fourteen] pounds and it's [20|twenty] by [30|thirty] inches.",
    "Your estimated wait time is [7|seven] minutes, there are [4|four] callers ahead of you.",
    "It's about [300|three hundred] miles, maybe five hours of driving.",
    "We ordered [250|two hundred fifty] units at [4|four] dollars each back in March.",
    "Can you call back around the [15th|fifteenth] of next month when the new plan starts?",
    "Step [3|three] says to hold the power button for [10|ten] seconds.",
    "The meeting got moved to Tuesday at [10:30|ten thirty] in the morning.",
    "Channel [7|seven] says it'll be [72|seventy two] degrees on Sunday.",
    "There were [16|sixteen] people in line and only [2|two] cashiers open.",
    "The warranty lasts [24|twenty four] months from the date of purchase.",
    "Use promo code [SPRING20|spring twenty] for [20|twenty] percent off your next order.",
)

_SLOT = re.compile(r"\{(\w+)\}")
_LITERAL = re.compile(r"\[([^|\]]*)\|([^\]]*)\]")


def literal(text: str) -> tuple[str, str]:
    """Template literal -> (written, spoken), resolving ``[written|spoken]``."""
    return _LITERAL.sub(r"\1", text), _LITERAL.sub(r"\2", text)


def expand(template: str, rng: random.Random, uses: dict[str, int]) -> list[Piece]:
    """A template's pieces, with fresh values; ``uses`` counts each slot's uses."""
    pieces: list[Piece] = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.start() > pos:
            pieces.append(template[pos : m.start()])
        slot = m.group(1)
        k = uses.get(slot, 0)
        uses[slot] = k + 1
        pieces.extend(SLOTS[slot](rng, k))
        pos = m.end()
    if pos < len(template):
        pieces.append(template[pos:])
    return pieces
