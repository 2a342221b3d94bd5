"""Trigger phrases: words that announce what comes next ("my card number is", "born")."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from .text import Token, phrase_at, split_phrases

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


# Trigger phrases by what they announce (" | " between phrases); matched on bare
# lower-case words.
_TRIGGERS = {
    Trigger.SSN: "social security | social | security | ssn | s s n",
    Trigger.CARD: "security code | card | credit | debit | visa | mastercard | amex"
    " | american express | cvv | cvc | expiration | expires | expiry",
    Trigger.ACCOUNT: "account | acct | routing | iban | pin | passcode | password | member"
    " | membership | policy | customer | reference | confirmation | verification | id"
    " | identification | license | licence | passport | code",
    Trigger.PHONE: "phone | telephone | cell | cellphone | mobile | landline | fax | call | calls"
    " | reach | text me | text us | dial | extension | ext | area code | contact",
    # The digit count decides; "home" is how the ASR often hears "number".
    Trigger.GENERIC: "number | numbers | digits | # | last four | last 4 | home",
    Trigger.DOB: "birth | born | birthday | birthdate | dob | d o b",
    Trigger.ZIP: "zip | zipcode | postal | postcode",
    Trigger.ADDRESS: "address | live at | live on | lives at | lives on | living at | living on"
    " | located at | located on | apartment | apt | suite | ship to | ship it to"
    " | deliver to | deliver it to | delivered to",
    Trigger.EMAIL: "email | e mail | e-mail | mail",
}
# Longest phrases first.
_TRIGGER_PHRASES: tuple[tuple[tuple[str, ...], Trigger], ...] = tuple(
    sorted(
        ((phrase, cat) for cat, text in _TRIGGERS.items() for phrase in split_phrases(text)),
        key=lambda p: -len(p[0]),
    )
)
_ADDRESS_OWNERS = {"my", "your", "his", "her", "our", "their", "the", "billing", "shipping",
                   "home", "mailing", "street", "new", "old", "delivery", "current", "postal"}


def find_triggers(toks: Sequence[Token]) -> list[Trigger | None]:
    """The trigger category of each word (every word of a matched phrase)."""
    n = len(toks)
    out: list[Trigger | None] = [None] * n
    bare = [t.bare for t in toks]
    i = 0
    while i < n:
        for phrase, cat in _TRIGGER_PHRASES:
            if phrase_at(bare, i, phrase):
                k = len(phrase)
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
                for j in range(i, i + k):
                    out[j] = cat
                i += k - 1
                break
        i += 1
    return out
