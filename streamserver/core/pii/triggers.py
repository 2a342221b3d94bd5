"""Trigger phrases: words that announce what comes next ("my card number is", "born")."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from .text import Token, split_phrases

# How far (in words) a trigger phrase reaches.
LOOKBACK = 6
LOOKAHEAD = 4


class Trigger(StrEnum):
    """What a trigger phrase says the next number (or address, email) is."""

    SSN = "ssn"
    CARD = "card"
    ACCOUNT = "account"
    PHONE = "phone"
    DOB = "dob"
    ZIP = "zip"
    ADDRESS = "address"
    EMAIL = "email"
    GENERIC = "generic"  # "number", "digits": the digit count decides
    CODE = "code"  # "the code is": a card's CVV when a card is talked about, else an account
    CVV = "cvv"  # card security code
    EXPIRY = "expiry"  # card expiry date
    BANK = "bank"  # routing / sort code, IBAN, SWIFT/BIC
    LICENSE = "license"  # driver's licence
    PASSPORT = "passport"
    TAX = "tax"  # TIN, EIN, ITIN, VAT number
    HEALTH = "health"  # medical record, Medicare / NHS number: always a health number
    MEMBER = "member"  # member / policy / subscriber id: a health number in a health context
    PIN = "pin"
    PASSWORD = "password"
    USERNAME = "username"
    VEHICLE = "vehicle"  # VIN, licence plate
    SEQUENCE = "sequence"  # order, ticket, tracking, serial numbers: no personal data
    MODEL = "model"  # model, part, item numbers: not personal, not even a sequence


# Trigger phrases by what they announce (" | " between phrases); matched on bare
# lower-case words.
_TRIGGERS = {
    Trigger.SSN: "social security | social | social's | security | ssn | s s n",
    Trigger.CARD: "card | card's | credit | debit | visa | mastercard | amex | american express",
    Trigger.CVV: "security code | cvv | cvc | cvv2 | cvc2 | c v v | c v c | card verification"
    " | card security code | verification value | three digit code | 3 digit code"
    " | three-digit code | 3-digit code | code on the back | code on the front"
    " | digits on the back | numbers on the back | number on the back | digits on the front"
    " | three digits on the back | 3 digits on the back | four digit code on the front"
    " | 4 digit code on the front",
    Trigger.EXPIRY: "expiration | expiration date | expires | expire | expiring | expiry"
    " | expiry date | exp | exp date | valid through | valid thru | valid until | good through"
    " | good thru",
    Trigger.ACCOUNT: "account | acct | customer | reference | verification | id"
    " | identification | license key | licence key | product key",
    Trigger.CODE: "code",
    Trigger.SEQUENCE: "order number | order no | order id | tracking number | tracking no"
    " | tracking id | tracking | ticket number | ticket no | ticket id | case number | case no"
    " | case id | serial number | serial no | serial | sn | invoice number | invoice no"
    " | claim number | claim no | claim id | booking number | booking reference"
    " | reservation number | transaction number | transaction id | receipt number"
    " | incident number | work order | work order number | confirmation | confirmation number"
    " | confirmation no | confirmation code | confirmation id",
    Trigger.MODEL: "model number | model no | part number | part no | item number | item no"
    " | product number | sku | version number | flight number | flight no | room number"
    " | page number | chapter number | gate number | seat number | table number",
    Trigger.BANK: "routing | aba | transit | sort code | iban | i b a n | swift | swift code"
    " | bic | bic code | bank code | bsb",
    Trigger.LICENSE: "driver's license | drivers license | driver license | driver's licence"
    " | drivers licence | driver licence | driving license | driving licence | dl"
    " | license id | licence id | license | licence",
    Trigger.PASSPORT: "passport",
    Trigger.TAX: "tax id | tax identification | taxpayer identification | taxpayer id"
    " | tax number | tax reference | tin | ein | itin | employer identification | employer id"
    " | vat | vat number | vat id | vat registration | vat registration number | vat reg",
    Trigger.HEALTH: "medical record | medical records | mrn | m r n | medicare | medicaid | nhs"
    " | health insurance | health card | insurance card | medicare card | health plan"
    " | patient id | patient number | chart number | hospital number | health id",
    Trigger.MEMBER: "member | member id | membership | membership id | policy | policy id"
    " | subscriber | subscriber id | insurance | insurance id | group number",
    Trigger.PIN: "pin | pin number | pin code | p i n | passcode | pass code",
    Trigger.PASSWORD: "password | passphrase | pass phrase | pass word",
    Trigger.USERNAME: "username | user name | user id | userid | login | login id | login name"
    " | handle | screen name | log in as | logged in as | logs in as | login as | sign in as"
    " | signed in as | signs in as",
    Trigger.VEHICLE: "vin | v i n | vehicle identification | vehicle id | license plate"
    " | licence plate | number plate | plate | plate number | plate no | registration"
    " | registration number"
    " | reg number | tag number",
    Trigger.PHONE: "phone | telephone | cell | cellphone | mobile | landline | fax | call | calls"
    " | reach | text me | text us | dial | extension | ext | area code | contact",
    # The digit count decides; "home" is how the ASR often hears "number".
    Trigger.GENERIC: "number | numbers | digits | # | last four | last 4 | home",
    Trigger.DOB: "birth | born | birthday | birthdate | dob | d o b",
    Trigger.ZIP: "zip | zip's | zipcode | postal | postcode",
    Trigger.ADDRESS: "address | live at | live on | lives at | lives on | living at | living on"
    " | located at | located on | apartment | apt | suite | ship to | ship it to"
    " | deliver to | deliver it to | delivered to",
    Trigger.EMAIL: "email | e mail | e-mail | mail",
}
# Phrases by their first word, longest first.
_BY_FIRST: dict[str, tuple[tuple[tuple[str, ...], Trigger], ...]] = {}
for _cat, _text in _TRIGGERS.items():
    for _phrase in split_phrases(_text):
        _BY_FIRST[_phrase[0]] = (*_BY_FIRST.get(_phrase[0], ()), (_phrase, _cat))
_BY_FIRST = {w: tuple(sorted(ps, key=lambda p: -len(p[0]))) for w, ps in _BY_FIRST.items()}
_ADDRESS_OWNERS = {"my", "your", "his", "her", "our", "their", "the", "billing", "shipping",
                   "home", "mailing", "street", "new", "old", "delivery", "current", "postal"}
_OWNERS = {"my", "your", "his", "her", "our", "their", "the", "car's", "vehicle's", "new",
           "old", "temporary", "temp", "current", "twitter", "instagram", "tiktok", "social",
           "account", "online", "portal", "website", "user", "reddit", "gamer", "discord",
           "telegram", "github", "tag", "registration", "front", "rear", "back"}
# Words after an acronym-like cue that ask for an id ("tin number", "swift code").
_ID_FOLLOWERS = {"number", "numbers", "#", "no", "code", "id"}
# Cues that are ordinary words too ("Taylor Swift", "a tin of beans", "pin it"): they
# count when spelled in capitals ("VIN", "TIN"), before a colon, or before an id word.
_WORD_LIKE = {"vin", "tin", "ein", "vat", "swift", "bic", "aba", "bsb", "dl", "transit",
              "insurance", "subscriber", "registration", "sn"}
# "license" alone is a driver's licence, except after these.
_OTHER_LICENSES = {"software", "business", "professional", "product", "contractor", "nursing",
                   "medical", "marriage", "liquor", "fishing", "hunting", "pilot", "pilot's",
                   "estate", "broker", "trade", "music", "wifi", "windows", "office", "user"}
# "card" after these is no payment card ("insurance card", "library card").
_NOT_PAYMENT_CARDS = {"insurance", "health", "medicare", "medicaid", "nhs", "member",
                      "membership", "id", "library", "loyalty", "rewards", "reward", "business",
                      "sim", "key", "report", "birthday", "cross", "shield", "greeting",
                      "playing", "sd", "memory", "graphics", "video", "sound", "network",
                      "boarding", "index", "score", "green", "student", "access", "benefits"}
# Cues that are nouns only after an owner ("my login", "your handle", "the plate") or
# before "is" ("login is jsmith"; not "I can't login", "I can handle 5 calls").
_NEED_OWNER = {"login", "handle", "plate"}
_NOT_BEFORE_NOUN = {"to", "can", "can't", "cannot", "couldn't", "could", "won't", "will",
                    "i", "we", "you", "they", "a", "and", "or", "just", "not", "it"}
# "car insurance" is no health context and its policy no health number.
NON_HEALTH_INSURANCE = {
    "car", "auto", "automobile", "home", "homeowners", "homeowner's", "house", "renters",
    "renter's", "life", "travel", "pet", "vehicle", "motor", "boat", "business",
    "liability", "flood", "contents", "property", "motorcycle", "rental",
}  # fmt: skip
# A "subscriber ID" is the health plan's (the term on every US insurance card), unless
# one of these says what is subscribed to.
_NON_HEALTH_SUBSCRIPTIONS = NON_HEALTH_INSURANCE | {
    "cable", "internet", "tv", "satellite", "phone", "mobile", "cell", "wireless",
    "broadband", "streaming", "newspaper", "magazine", "newsletter", "premium", "netflix",
    "spotify", "sirius", "gym", "club",
}  # fmt: skip
# "card" after these holds an account number: "my loyalty card number is ...".
_ACCOUNT_CARDS = {"loyalty", "membership", "library", "club", "frequent", "points"}
# "card" after an insurer or a kind of cover is a health card: "my Blue Cross card".
_HEALTH_CARD_OWNERS = {
    "cross", "shield", "aetna", "cigna", "humana", "kaiser", "anthem", "unitedhealthcare",
    "tricare", "bcbs", "medicaid", "medicare", "hmo", "ppo", "dental", "vision",
    "prescription", "pharmacy",
}  # fmt: skip


def find_triggers(toks: Sequence[Token]) -> list[Trigger | None]:
    """The trigger category of each word (every word of a matched phrase)."""
    n = len(toks)
    out: list[Trigger | None] = [None] * n
    bare = [t.bare for t in toks]
    i = 0
    while i < n:
        for phrase, cat in _BY_FIRST.get(bare[i], ()):
            k = len(phrase)
            if k > 1 and tuple(bare[i : i + k]) != phrase:
                continue
            nxt = bare[i + k] if i + k < n else ""
            prev = bare[i - 1] if i else ""
            if cat == Trigger.GENERIC and nxt == "of":  # "the number of people"
                break
            if phrase == ("call",) and prev in {"this", "the", "a", "your", "my", "our"}:
                break  # the noun: "the reference number for this call"
            if cat == Trigger.ADDRESS and phrase == ("address",) and prev in {
                "email", "e-mail", "ip", "web", "mail"
            }:
                cat = Trigger.EMAIL
            if phrase == ("code",) and prev in {"zip", "postal", "area", "security", "promo",
                                                "discount", "coupon", "gift", "voucher"}:
                break
            if phrase == ("phone",) and (
                prev in {"on", "by", "over"} or bare[max(0, i - 2) : i] == ["on", "the"]
            ):
                break  # "on the phone", "been on phone 45 minutes"
            if (
                cat == Trigger.ADDRESS
                and phrase == ("address",)
                and prev not in _ADDRESS_OWNERS
                and nxt not in {"is", "was", "its", "it's"}
                and not toks[i].raw.endswith(":")
            ):
                break  # "the Gettysburg address", "to address 3 issues"
            if not _cue_word_ok(toks, i, phrase, prev, nxt):
                break
            if phrase == ("card",) and prev in _HEALTH_CARD_OWNERS:
                cat = Trigger.HEALTH
            elif phrase == ("card",) and prev in _ACCOUNT_CARDS:
                cat = Trigger.ACCOUNT
            elif phrase == ("card",) and prev in _NOT_PAYMENT_CARDS:
                break
            if phrase in {("license",), ("licence",)} and prev in _OTHER_LICENSES:
                cat = Trigger.ACCOUNT
            if (
                cat == Trigger.MEMBER
                and phrase[0] in {"insurance", "policy"}
                and prev in NON_HEALTH_INSURANCE
            ):
                cat = Trigger.ACCOUNT  # "car insurance policy number"
            if (
                cat == Trigger.MEMBER
                and phrase[0] == "subscriber"
                and prev not in _NON_HEALTH_SUBSCRIPTIONS
            ):
                cat = Trigger.HEALTH  # "the subscriber ID is ..."
            for j in range(i, i + k):
                out[j] = cat
            i += k - 1
            break
        i += 1
    return out


def _cue_word_ok(
    toks: Sequence[Token], i: int, phrase: tuple[str, ...], prev: str, nxt: str
) -> bool:
    """Whether a one-word cue that is also an ordinary word is meant as the cue here."""
    if len(phrase) != 1:
        return True
    word = phrase[0]
    if word == "pin":
        return nxt not in {"it", "them", "this", "that", "down"} and prev not in {"to", "a"}
    if word not in _WORD_LIKE and word not in _NEED_OWNER:
        return True
    colon = toks[i].raw.endswith(":")
    if word in _NEED_OWNER:
        return colon or prev in _OWNERS or (nxt in {"is", "was"} and prev not in _NOT_BEFORE_NOUN)
    if word == "transit":  # "in transit", "transit time"
        return prev != "in" and (nxt in _ID_FOLLOWERS or colon)
    if word in {"insurance", "subscriber", "registration"}:
        # "my insurance id", "registration is": not "insurance covers it".
        return colon or nxt in _ID_FOLLOWERS | {"is", "was", "card", "plan", "plate"}
    core = toks[i].raw.strip(".,;:!?\"'()")
    return colon or core.isupper() or nxt in _ID_FOLLOWERS
