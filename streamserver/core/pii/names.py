"""Names of people: after "my name is" / "this is X calling", spelled letters, and a
check of NER PERSON spans (``plausible_person``)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamserver.core.types import WordSpan

from .entities import PERSON, SCORE_CONTEXT, SCORE_SHAPE
from .name_lists import (
    AMBIGUOUS_FIRST_NAMES,
    FIRST_NAMES,
    NOT_NAMES,
    SURNAMES,
    is_common_name,
)
from .text import (
    EDGE_PUNCTUATION,
    Token,
    is_capital_letter,
    is_plain_word,
    phrase_at,
    split_phrases,
    tokenize,
)

# Letters that are words on their own; a run of single letters of these alone is speech.
_LETTER_WORDS = {"a", "i"}
_GREETINGS = {"hi", "hello", "hey", "bye", "goodbye", "yes", "yeah", "morning", "afternoon",
              "evening", "okay", "ok", "sure", "thanks", "welcome", "so", "well", "and"}
# Words after a name that confirm it ("this is Maria Davis calling").
_NAME_FOLLOWERS = {"calling", "speaking", "here", "from", "with", "at", "over", "on"}
_FILLERS = {"um", "uh", "er", "erm", "hmm", "ah", "like"}
_NAME_PRECEDERS = {"mr", "mrs", "ms", "miss", "dr", "mister", "doctor", "dear", "i'm", "name's",
                   "it's", "with", "thanks", "thank", "hi", "hello", "hey", "bye", "professor",
                   "prof", "sir", "madam", "called", "named"}
_SPEECH_VERBS = {"said", "says", "told", "asked", "wrote", "writes", "argued", "argues",
                 "thinks", "thought", "called", "replied", "explained"}
# Before a name, certainly: any following name-like words, lower-case too after the
# "my ..." forms ("my name is linda smith").
_STRONG_NAME_TRIGGERS = split_phrases(
    "my name is | my name's | name is | name's | first name is | last name is | surname is"
    " | full name is | i am called | name on the card is | name of the card is"
    " | name on the account is | name on the card | cardholder name is | card holder is"
    " | cardholder is | account holder is"
)
_LOWERCASE_NAME_TRIGGERS = set(split_phrases(
    "my name is | my name's | first name is | last name is | surname is | full name is"
    " | i am called"
))  # fmt: skip
# Before a name, maybe: only capitalised words, and with more evidence.
_WEAK_NAME_TRIGGERS = split_phrases(
    "this is | it's | it is | i'm | i am | speaking with | speak with | speak to"
    " | talking to | talking with | talk to | spoke with | spoke to | ask for | asking for"
    " | call me | mr | mrs | ms | miss | dr | mister | doctor | dear | called | named"
)
_PERSON_NOUNS = {
    "agent", "guy", "man", "woman", "lady", "person", "rep", "representative", "friend",
    "someone", "somebody", "girl", "boy", "son", "daughter", "nurse", "technician",
    "manager", "supervisor", "doctor", "gentleman", "colleague", "husband", "wife",
}  # fmt: skip
_HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "mister", "doctor", "dear"}


def _name_like(tok: Token) -> bool:
    bare = tok.bare
    return len(bare) >= 2 and is_plain_word(bare) and bare not in NOT_NAMES


def _capitalised_names_end(toks: Sequence[Token], start: int) -> int:
    """End of up to three capitalised name words from ``start``, stopping after a pause."""
    n = len(toks)
    k = start
    while k < n and k - start < 3 and toks[k].title and _name_like(toks[k]):
        k += 1
        if toks[k - 1].phrase_end:
            break
    return k


def person_spans(toks: Sequence[Token], named_words: frozenset[int]) -> list[WordSpan]:
    """Names found by their context; ``named_words`` (NER hits) confirm the weak cues."""
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    for i in range(len(toks)):
        strong = _name_after_strong_trigger(toks, bare, i)
        if strong is not None:
            out.append(strong)
        weak = _name_after_weak_trigger(toks, bare, i, named_words)
        if weak is not None:
            out.append(weak)
    out.extend(_names_by_cue_words(toks, bare))
    out.extend(_common_first_names(toks, bare))
    out.extend(_spelled_letter_spans(toks))
    return out


def _name_after_strong_trigger(
    toks: Sequence[Token], bare: Sequence[str], i: int
) -> WordSpan | None:
    phrase = next((p for p in _STRONG_NAME_TRIGGERS if phrase_at(bare, i, p)), None)
    if phrase is None:
        return None
    n = len(toks)
    j = i + len(phrase)
    while j < n and bare[j] in _FILLERS:
        j += 1
    lower_ok = phrase in _LOWERCASE_NAME_TRIGGERS
    k = j
    while k < n and k - j < 3 and (
        (_name_like(toks[k]) and (lower_ok or toks[k].title))
        or (is_capital_letter(toks[k]) and k + 1 < n and _name_like(toks[k + 1]))
    ):  # "Name on the card is, K -Shabel"
        k += 1
        if toks[k - 1].phrase_end:
            break
    return WordSpan(j, k, PERSON, SCORE_CONTEXT) if k > j else None


def _name_after_weak_trigger(
    toks: Sequence[Token], bare: Sequence[str], i: int, named_words: frozenset[int]
) -> WordSpan | None:
    phrase = next((p for p in _WEAK_NAME_TRIGGERS if phrase_at(bare, i, p)), None)
    if phrase is None:
        return None
    n = len(toks)
    j = i + len(phrase)
    k = _capitalised_names_end(toks, j)
    if k == j:
        return None
    follower = bare[k] if k < n else ""
    greeted = i == 0 or toks[i - 1].phrase_end or bare[i - 1] in _GREETINGS
    known = any(is_common_name(bare[m]) for m in range(j, k))
    tagged = any(m in named_words for m in range(j, k))
    if phrase[0] in _HONORIFICS:
        ok = True
    elif phrase in {("called",), ("named",)}:
        # "an agent called Marcus", not "a company called Acme"
        ok = known or (i > 0 and bare[i - 1] in _PERSON_NOUNS)
    elif phrase in {("this", "is"), ("it's",), ("it", "is")}:
        # "Hi, this is Maria Davis calling", "it's Hannah." (not "This is Sparta!")
        ok = follower in _NAME_FOLLOWERS or (
            known and (greeted or k == n or toks[k - 1].phrase_end)
        )
    else:
        ok = known or tagged
    return WordSpan(j, k, PERSON, SCORE_CONTEXT) if ok else None


def _names_by_cue_words(toks: Sequence[Token], bare: Sequence[str]) -> list[WordSpan]:
    """ "Linda here", "Maria speaking" at the start of a turn; "Davis is my last name";
    "in my mother's name, Hannah Nguyen"."""
    n = len(toks)
    out = []
    for i in range(n):
        if bare[i] == "name" and toks[i].raw[-1:] in ",:" and i + 1 < n:
            k = _capitalised_names_end(toks, i + 1)
            if k > i + 1:
                out.append(WordSpan(i + 1, k, PERSON, SCORE_CONTEXT))
        if bare[i] in {"here", "speaking"} and i >= 1:
            j = i
            while j > 0 and i - j < 2 and toks[j - 1].title and _name_like(toks[j - 1]):
                j -= 1
            if j < i and (j == 0 or toks[j - 1].phrase_end or bare[j - 1] in _GREETINGS):
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
        if phrase_at(bare, i, ("is", "my")) and any(
            phrase_at(bare, i + 2, p) for p in (("name",), ("first", "name"), ("last", "name"),
                                                ("surname",), ("full", "name"))
        ):
            j = i
            while j > 0 and i - j < 3 and _name_like(toks[j - 1]) and not (
                j < i and toks[j - 1].phrase_end
            ):
                j -= 1
            if j < i:
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
    return out


def _common_first_names(toks: Sequence[Token], bare: Sequence[str]) -> list[WordSpan]:
    """A well-known first name with a surname ("Lisa Brown") or addressed to someone
    ("Okay Emily, you're set", "... birth Emily?"); alone in prose it may be a character."""
    n = len(toks)
    out = []
    for i, tok in enumerate(toks):
        if not (tok.title and tok.bare in FIRST_NAMES) or tok.bare in AMBIGUOUS_FIRST_NAMES:
            continue
        k = i + 1
        if (
            k < n
            and not tok.phrase_end
            and toks[k].title
            and _name_like(toks[k])
            and toks[k].bare in SURNAMES
        ):
            out.append(WordSpan(i, k + 1, PERSON, SCORE_SHAPE))
        elif (i and bare[i - 1] in _GREETINGS | {"thanks", "thank", "you"}) or (
            tok.phrase_end and i and toks[i - 1].raw[-1:] not in ",."
        ):
            out.append(WordSpan(i, k, PERSON, SCORE_SHAPE))
    return out


# Words before spelled letters that make them a name, not an acronym.
_SPELL_CONTEXT = {"spell", "spelled", "spelling", "spells", "name", "name's", "that's", "it's",
                  "surname", "initials", "letters"}
_LETTERS_IN_WORD_RE = re.compile(r"(?:[a-z][-.]){2,}[a-z]\.?")


def _spelled_letter_spans(toks: Sequence[Token]) -> list[WordSpan]:
    """Spelled-out letters: "J O H N", "j. o. h. n.", "J-O-H-N", "S M I T H"."""
    n = len(toks)
    out = []
    i = 0
    while i < n:
        spell_ctx = any(toks[m].bare in _SPELL_CONTEXT for m in range(max(0, i - 6), i))
        spelled_word = _LETTERS_IN_WORD_RE.fullmatch(toks[i].low.lstrip("-"))
        if spelled_word:
            letters = sum(c.isalpha() for c in spelled_word.group(0))
            if letters >= 5 or spell_ctx:  # "it's J-O-H-N"; "U.S.A.", "the i-m-x" are not
                out.append(WordSpan(i, i + 1, PERSON, SCORE_CONTEXT))
            i += 1
            continue
        j = i
        while j < n and len(toks[j].bare) == 1 and toks[j].bare.isalpha():
            j += 1
            if toks[j - 1].sentence_end and toks[j - 1].raw[-1] != ".":
                break
        letters = j - i
        only_words = all(toks[m].bare in _LETTER_WORDS for m in range(i, j))
        # Without "spell"/"name" before, a short run is more often an acronym ("U S A")
        # or a garbled word ("the i -m -x -n" for "the Amex") than a spelled name.
        if (letters >= 5 and not only_words) or (letters >= 2 and spell_ctx):
            out.append(WordSpan(i, j, PERSON, SCORE_CONTEXT))
        elif (
            spell_ctx
            and j == i
            and toks[i].raw.strip(EDGE_PUNCTUATION).isupper()
            and len(toks[i].bare) >= 2
        ):  # "it's spelled NGUYEN"
            out.append(WordSpan(i, i + 1, PERSON, SCORE_CONTEXT))
        i = max(j, i + 1)
    return out


def plausible_person(words: Sequence[str], first: int, last: int) -> tuple[int, int] | None:
    """Trim a NER PERSON span to its name words, or reject it as a false positive.

    Kept: spans made of common first names and surnames ("Maria Davis"), or with name
    context before or after ("this is X", "Dr. X", "X speaking", "X said"). Dropped:
    greetings and function words at the edges ("Bye", "Okay"), and names with no
    context that are not all common ones: a misheard "and I" -> "Zendai", a business
    "Sunrise Dental", a hypothesis "Howdy Mary Demois", an author in a lecture.
    """
    toks = tokenize(words)
    while first < last and not (toks[first].title and _name_like(toks[first])):
        first += 1
    while last > first and not (toks[last - 1].title and _name_like(toks[last - 1])):
        last -= 1
    if first >= last:
        return None
    names = [toks[j].bare for j in range(first, last)]
    known = [is_common_name(n) for n in names]
    if all(known) and (len(names) >= 2 or names[0] not in AMBIGUOUS_FIRST_NAMES):
        return first, last
    before = [t.bare for t in toks[max(0, first - 3) : first]]
    after = toks[last].bare if last < len(toks) else ""
    context = (
        (before[-1:] and before[-1] in _NAME_PRECEDERS)
        or before[-2:] in (["this", "is"], ["name", "is"], ["i", "am"], ["it", "is"])
        or after in {"speaking", "here", "calling"}
        or after in _SPEECH_VERBS
    )
    return (first, last) if context else None
