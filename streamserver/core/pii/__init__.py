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

Layout: ``text`` turns words into tokens; ``numbers`` and ``triggers`` say what each
token is; ``digits``, ``dates``, ``addresses``, ``emails`` and ``names`` find one kind
of entity each; ``entities`` holds the labels, scores and ``merge_spans``.

Only word *indices* leave this package; nothing here logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streamserver.core.types import WordSpan

from .addresses import UNIT_WORDS, address_spans
from .dates import date_spans, dob_spans
from .digits import digit_spans, luhn_ok
from .emails import email_spans
from .entities import (
    ACCOUNT_NUMBER,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    EMAIL_ADDRESS,
    ENTITIES,
    LOCATION,
    PERSON,
    PHONE_NUMBER,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    SCORE_WEAK,
    US_SSN,
    merge_spans,
)
from .identifiers import CHAR_WORDS, identifier_spans
from .names import person_spans, plausible_person
from .numbers import classify_number
from .quantities import quantity_spans
from .text import Token, WordText, build_text, tokenize
from .triggers import find_triggers
from .web import web_spans

__all__ = [
    "ACCOUNT_NUMBER",
    "CREDIT_CARD",
    "DATE_OF_BIRTH",
    "EMAIL_ADDRESS",
    "ENTITIES",
    "LOCATION",
    "PERSON",
    "PHONE_NUMBER",
    "SCORE_CONTEXT",
    "SCORE_SHAPE",
    "SCORE_WEAK",
    "US_SSN",
    "WordText",
    "build_text",
    "find_spoken_entities",
    "luhn_ok",
    "may_extend_entity",
    "may_open_entity",
    "merge_spans",
    "plausible_person",
]

# Words that join the parts of a spoken email address.
_JOINERS = {"at", "dot", "underscore", "dash", "hyphen"}
# Single letters that are far more often words than spelled-out letters.
_COMMON_ONE_LETTER = {"a", "i"}
# Capitalised wherever they stand, and never part of a name.
_ALWAYS_CAPITALISED = {"i", "i'm", "i've", "i'll", "i'd"}


# Words Whisper capitalises only because they start a sentence, and that no name,
# street or date begins with ("The", "So", "I'm"; not "Will", "May", "Next", "First").
_SENTENCE_WORDS = frozenset({
    "the", "a", "an", "and", "but", "so", "or", "if", "because", "when", "what", "where",
    "why", "how", "who", "which", "that", "these", "those", "there", "it", "it's", "i'm",
    "i've", "i'll", "i'd", "we", "we're", "we'll", "we've", "you", "you're", "you'll",
    "you've", "he", "he's", "she", "she's", "they", "they're", "my", "your", "our", "their",
    "his", "is", "are", "was", "were", "does", "did", "can", "could", "would", "should",
    "have", "has", "had", "not", "no", "yes", "yeah", "yep", "okay", "ok", "oh", "um", "uh",
    "well", "thanks", "thank", "sorry", "hello", "hi", "hey", "bye", "goodbye", "sure",
    "alright", "actually", "basically", "anyway", "please", "let's", "let", "just", "also",
    "then", "now", "maybe", "that's", "what's", "there's", "where's", "don't", "can't",
    "won't", "isn't", "didn't", "doesn't", "wasn't", "to", "for", "of", "in", "on", "with",
    "from", "as", "all", "any", "some", "every", "each", "both", "got", "perfect",
    "absolutely", "exactly",
})  # fmt: skip


def may_extend_entity(word: str, starts_sentence: bool = False) -> bool:
    """Whether words still to come could make this word part of an entity.

    True for anything number-like, capitalised (names, months, streets), a
    spelled letter, an ``@`` or an email joiner: the transcript holds such a
    word back until enough right context has arrived. A plain lower-case word
    ("the", "thanks") cannot become personal data because of what follows it
    (unless the next word is one of these, which the caller checks); nor can a
    function word that is capitalised because it starts a sentence
    (``starts_sentence``: "So", "The", "I'm").
    """
    tok = tokenize([word])[0]
    if not tok.bare:
        return False
    if tok.title and tok.bare not in _COMMON_ONE_LETTER:
        if tok.bare in _ALWAYS_CAPITALISED:
            return False
        return not (starts_sentence and tok.bare in _SENTENCE_WORDS)
    return _joins_or_spells(tok) or classify_number(tok) is not None


def _joins_or_spells(tok: Token) -> bool:
    """An ``@``, an email joiner or a spelled letter (not "a" or "i")."""
    return "@" in tok.raw or tok.bare in _JOINERS or (
        len(tok.bare) == 1 and tok.bare.isalpha() and tok.bare not in _COMMON_ONE_LETTER)


# Plain words that an entity begun by the number after them may take in at its
# start: "plus 44 20 ...", "the 4th of May", "apartment 5B", "number 5",
# "hash 7 7" (a password's spoken characters).
_NUMBER_OPENERS = frozenset({"plus", "the"}) | UNIT_WORDS | CHAR_WORDS


def may_open_entity(word: str, next_word: str) -> bool:
    """Whether a plain ``word`` could become the start of an entity that
    ``next_word`` (one that :func:`may_extend_entity`) goes on to form.

    Names, places, months, spelled letters and email joiners may take in the
    word before them ("van Dyke", "next Tuesday", "jane dot doe", "capital T"),
    so before those it is always True. A number starts its entity itself, except
    after the few words in ``_NUMBER_OPENERS``: "is" before "4111" stays "is"
    whatever the digits turn out to be, and need not wait for the number to end.
    """
    tok = tokenize([next_word])[0]
    if not tok.bare:
        return False
    if (tok.title and tok.bare not in _COMMON_ONE_LETTER) or _joins_or_spells(tok):
        return True
    return tokenize([word])[0].bare in _NUMBER_OPENERS


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
    toks = tokenize(words)
    nums = [classify_number(t) for t in toks]
    trig = find_triggers(toks)

    spans: list[WordSpan] = []
    dates = date_spans(toks, nums)
    date_words = {j for first, last in dates for j in range(first, last)}
    if DATE_OF_BIRTH in wanted:
        spans.extend(dob_spans(toks, trig, dates))
    trigger_words = {j for j, cat in enumerate(trig) if cat is not None}
    spans.extend(digit_spans(toks, nums, trig, date_words | trigger_words))
    if LOCATION in wanted:
        spans.extend(address_spans(toks, nums, trig))
    if EMAIL_ADDRESS in wanted:
        spans.extend(email_spans(toks, trig))
    if PERSON in wanted:
        spans.extend(person_spans(toks, named_words))
    # Identifiers, card details, PINs, passwords, other digit runs (identifiers.py);
    # URLs and IP addresses (web.py); money, ages, dates, times (quantities.py).
    spans.extend(identifier_spans(toks, nums, trig, wanted))
    spans.extend(web_spans(toks, nums, trig, wanted))
    spans.extend(quantity_spans(toks, nums, trig, wanted))
    return merge_spans(s for s in spans if s.entity in wanted)
