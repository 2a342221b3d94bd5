"""What the PII rules detect, how sure they are, and how their spans combine."""

from __future__ import annotations

from collections.abc import Iterable

from streamserver.core.types import WordSpan

PERSON = "PERSON"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
LOCATION = "LOCATION"  # a street address (house number, street, unit, city/zip after it)
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"
CREDIT_CARD_EXPIRATION = "CREDIT_CARD_EXPIRATION"
CREDIT_CARD_CVV = "CREDIT_CARD_CVV"
BANKING_INFORMATION = "BANKING_INFORMATION"
DRIVERS_LICENSE = "DRIVERS_LICENSE"
PASSPORT_NUMBER = "PASSPORT_NUMBER"
TAX_ID = "TAX_ID"
HEALTHCARE_NUMBER = "HEALTHCARE_NUMBER"
IP_ADDRESS = "IP_ADDRESS"
URL = "URL"
ZIP_CODE = "ZIP_CODE"
ORGANIZATION = "ORGANIZATION"
PERSON_AGE = "PERSON_AGE"
MONEY_AMOUNT = "MONEY_AMOUNT"
DATE = "DATE"
TIME = "TIME"
PASSWORD = "PASSWORD"
PIN = "PIN"
USERNAME = "USERNAME"
VEHICLE_ID = "VEHICLE_ID"
NUMBER_SEQUENCE = "NUMBER_SEQUENCE"
DTMF = "DTMF"  # keypad tones in the audio (not a text entity)

# Every entity a policy can name: what it covers (docs/entities.md has examples).
CATALOGUE: dict[str, str] = {
    PERSON: "a person's name, incl. spelled out (J O H N)",
    PHONE_NUMBER: "telephone numbers, spoken or written, with extensions",
    EMAIL_ADDRESS: "email addresses, incl. spoken 'jane dot doe at example dot com'",
    CREDIT_CARD: "payment card numbers (12-19 digits, Luhn or card context)",
    CREDIT_CARD_EXPIRATION: "card expiry dates ('expires oh nine twenty seven')",
    CREDIT_CARD_CVV: "card security codes (CVV, CVC, 3-4 digits)",
    US_SSN: "US social security numbers",
    DATE_OF_BIRTH: "dates of birth (context before or after the date)",
    ACCOUNT_NUMBER: "bank, customer, member, policy and other account numbers",
    BANKING_INFORMATION: "routing / sort codes, IBANs, SWIFT/BIC codes",
    DRIVERS_LICENSE: "driver's licence numbers",
    PASSPORT_NUMBER: "passport numbers",
    TAX_ID: "tax ids: ITIN, EIN, TIN, VAT numbers",
    HEALTHCARE_NUMBER: "medical record, health insurance, member and Medicare/NHS numbers",
    IP_ADDRESS: "IPv4 and IPv6 addresses, incl. spoken 'ten dot zero dot ...'",
    URL: "web addresses and domain names",
    LOCATION: "street addresses (house number, street, unit)",
    ZIP_CODE: "ZIP and postal codes",
    ORGANIZATION: "company and organisation names",
    PERSON_AGE: "a person's age ('I'm 42', 'forty two years old')",
    MONEY_AMOUNT: "amounts of money",
    DATE: "calendar dates other than dates of birth",
    TIME: "times of day",
    PASSWORD: "passwords and passphrases said after a password cue",
    PIN: "PINs and numeric passcodes",
    USERNAME: "user names and login ids",
    VEHICLE_ID: "VINs and licence plates",
    NUMBER_SEQUENCE: "any other run of 4 or more digits",
    DTMF: "keypad (DTMF) tones in the audio",
}
ENTITIES: frozenset[str] = frozenset(CATALOGUE)
# Kinds no digit or '@' is ever part of (DTMF is tones, not words).
WORDS_ONLY: frozenset[str] = frozenset({PERSON, ORGANIZATION, DTMF})
# Redacted unless a session says otherwise: personal identifiers, and any other run
# of 4+ digits (on a support call a bare digit run is a ZIP, a last four, a member
# or order id whose cue the ASR lost; quantities, prices, times and years are not
# runs). Left out: kinds that are usually business talk on a call (organisations,
# amounts, dates, times, ages, URLs); a policy can add them, or ask for "all".
DEFAULT_ENTITIES: tuple[str, ...] = tuple(
    e for e in CATALOGUE
    if e not in {ORGANIZATION, MONEY_AMOUNT, DATE, TIME, PERSON_AGE, URL}
)
# Policy names accepted for our entities (lower case; hosted-API and presidio names).
ALIASES: dict[str, str] = {
    "person": PERSON, "person_name": PERSON, "name": PERSON, "names": PERSON,
    "phone": PHONE_NUMBER, "phone_number": PHONE_NUMBER, "telephone": PHONE_NUMBER,
    "email": EMAIL_ADDRESS, "email_address": EMAIL_ADDRESS,
    "credit_card": CREDIT_CARD, "credit_card_number": CREDIT_CARD, "card_number": CREDIT_CARD,
    "credit_card_expiration": CREDIT_CARD_EXPIRATION, "card_expiration": CREDIT_CARD_EXPIRATION,
    "expiration_date": CREDIT_CARD_EXPIRATION,
    "credit_card_cvv": CREDIT_CARD_CVV, "cvv": CREDIT_CARD_CVV, "cvc": CREDIT_CARD_CVV,
    "security_code": CREDIT_CARD_CVV,
    "ssn": US_SSN, "us_ssn": US_SSN, "us_social_security_number": US_SSN,
    "social_security_number": US_SSN,
    "dob": DATE_OF_BIRTH, "date_of_birth": DATE_OF_BIRTH, "birth_date": DATE_OF_BIRTH,
    "account_number": ACCOUNT_NUMBER, "us_bank_number": ACCOUNT_NUMBER,
    "bank_account_number": ACCOUNT_NUMBER,
    "banking_information": BANKING_INFORMATION, "routing_number": BANKING_INFORMATION,
    "iban": BANKING_INFORMATION, "iban_code": BANKING_INFORMATION,
    "swift_code": BANKING_INFORMATION, "sort_code": BANKING_INFORMATION,
    "drivers_license": DRIVERS_LICENSE, "driver_license": DRIVERS_LICENSE,
    "us_driver_license": DRIVERS_LICENSE, "drivers_licence": DRIVERS_LICENSE,
    "passport": PASSPORT_NUMBER, "passport_number": PASSPORT_NUMBER,
    "us_passport": PASSPORT_NUMBER,
    "tax_id": TAX_ID, "us_itin": TAX_ID, "itin": TAX_ID, "ein": TAX_ID,
    "healthcare_number": HEALTHCARE_NUMBER, "medical_record_number": HEALTHCARE_NUMBER,
    "mrn": HEALTHCARE_NUMBER, "health_insurance_number": HEALTHCARE_NUMBER,
    "medicare_number": HEALTHCARE_NUMBER, "nhs_number": HEALTHCARE_NUMBER,
    "ip": IP_ADDRESS, "ip_address": IP_ADDRESS,
    "url": URL, "domain_name": URL, "web_address": URL,
    "location": LOCATION, "address": LOCATION, "street_address": LOCATION,
    "zip": ZIP_CODE, "zip_code": ZIP_CODE, "postal_code": ZIP_CODE, "postcode": ZIP_CODE,
    "organization": ORGANIZATION, "organisation": ORGANIZATION, "org": ORGANIZATION,
    "company": ORGANIZATION,
    "person_age": PERSON_AGE, "age": PERSON_AGE,
    "money_amount": MONEY_AMOUNT, "money": MONEY_AMOUNT,
    "date": DATE, "time": TIME,
    "password": PASSWORD, "passphrase": PASSWORD, "passcode": PIN,
    "pin": PIN, "pin_number": PIN,
    "username": USERNAME, "user_name": USERNAME, "user_id": USERNAME,
    "vehicle_id": VEHICLE_ID, "vin": VEHICLE_ID, "license_plate": VEHICLE_ID,
    "number_sequence": NUMBER_SEQUENCE,
    "dtmf": DTMF, "keypad_tones": DTMF,
}  # fmt: skip
ALIASES.update({e.lower(): e for e in CATALOGUE})

# Scores of our own rules: context-confirmed > shape-only > partial (cut by the window).
SCORE_CONTEXT = 0.9
SCORE_SHAPE = 0.75
SCORE_WEAK = 0.6


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


def spans_without(spans: Iterable[WordSpan], drop: set[int]) -> list[WordSpan]:
    """``spans`` with the words in ``drop`` cut out (a span may split in pieces)."""
    out = []
    for s in spans:
        j = s.first
        while j < s.last:
            if j in drop:
                j += 1
                continue
            k = j
            while k < s.last and k not in drop:
                k += 1
            out.append(WordSpan(j, k, s.entity, s.score))
            j = k
    return out
