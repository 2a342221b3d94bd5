"""Names of people: found by the words around them, by spelled-out letters and by the
name lists, plus a check of NER PERSON spans (``plausible_person``).

A capitalised word is not a name by itself: Whisper capitalises products, places,
businesses and sentence starts, and real recordings mention characters and authors.
So each rule pairs a name-shaped run of words with evidence:

* a cue before it: "my name is", "this is X calling", a title ("Dr.", "Officer"), a
  role or kinship noun ("my wife, X", "the caller was X", "policy holder is X"), a verb
  of addressing ("tell X", "ask X", "put it under X", "attention of X", "transfer me
  to X"), a name part ("last name X", "first name X");
* a cue after it: "X speaking", "X said", "X from accounting", "X, that's <spelling>";
* its spelling said next to it ("Nakamura, N-A-K-A-M-U-R-A"), or being a listed first
  name with a listed surname ("Hiroshi Tanaka"), or the same name found nearby.

Spelled letters ("J O H N", "O-L-U-W-A-S-E-U-N", "S as in Sam, M, I, T, H") are a
name unless they read as a code: digits next to them, an email or URL around them
("L-I-S-A, dot park at"), or a password / username / VIN / SWIFT cue before them.
Capitalised words that end in a place or company word ("Victoria station", "Sunrise
Dental"), acronyms ("TV", "PIN") and words with digits ("4K") are never names.

All tables are built at import; a call is a few linear passes over the words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from streamserver.core.types import WordSpan

from .entities import PERSON, SCORE_CONTEXT, SCORE_SHAPE, spans_without
from .name_lists import (
    AMBIGUOUS_FIRST_NAMES,
    NAME_PARTICLES,
    NOT_NAMES,
    fold,
    is_certain_name,
    is_common_name,
    is_first_name,
    is_surname,
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

Phrase = tuple[str, ...]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Letters that are words on their own; a run of single letters of these alone is speech.
_LETTER_WORDS = {"a", "i"}
_GREETINGS = {"hi", "hello", "hey", "bye", "goodbye", "yes", "yeah", "morning", "afternoon",
              "evening", "okay", "ok", "sure", "thanks", "welcome", "so", "well", "and"}
# Greetings proper: before "I'm X." they make an unlisted X a name.
_HELLOS = {"hi", "hello", "hey", "morning", "afternoon", "evening", "yes", "yeah"}
# Words after a name that confirm it ("this is Maria Davis calling").
_NAME_FOLLOWERS = {"calling", "speaking", "here", "from", "with", "at", "over", "on"}
_FILLERS = {"um", "uh", "er", "erm", "hmm", "ah", "like"}
_NAME_PRECEDERS = {"mr", "mrs", "ms", "miss", "dr", "mister", "doctor", "dear", "i'm", "name's",
                   "it's", "with", "thanks", "thank", "hi", "hello", "hey", "bye", "professor",
                   "prof", "sir", "madam", "called", "named"}
_SPEECH_VERBS = {"said", "says", "told", "asked", "wrote", "writes", "argued", "argues",
                 "thinks", "thought", "called", "replied", "explained", "mentioned",
                 "promised", "texted", "emailed", "confirmed", "approved", "suggested"}
_DETERMINERS = {"the", "a", "an", "this", "that", "my", "your", "our", "their", "his", "her"}
_POSSESSIVES = {"my", "our", "your", "his", "her", "their", "the"}
# Titles before a name. The first group always; the second only written capitalised
# ("Officer Jones", "Nurse Kim"; not "the nurse said").
_HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "mister", "doctor", "dear", "prof",
               "professor"}
_TITLE_WORDS = {"officer", "detective", "sergeant", "sgt", "captain", "coach", "pastor",
                "reverend", "rev", "rabbi", "judge", "nurse", "father", "sister"}
# Nouns for people: "my wife, X", "the caller was X", "an agent called X".
_ROLE_NOUNS = _words("""
    wife husband spouse partner son daughter child kid mother mom mum mommy father dad
    daddy brother sister sibling grandmother grandma granny grandfather grandpa grandson
    granddaughter aunt auntie uncle cousin niece nephew stepson stepdaughter stepmother
    stepfather stepmom stepdad fiance fiancé fiancee fiancée boyfriend girlfriend ex-wife
    ex-husband mother-in-law father-in-law son-in-law daughter-in-law brother-in-law
    sister-in-law godmother godfather roommate flatmate housemate friend neighbor
    neighbour boss manager supervisor colleague coworker co-worker assistant secretary
    lawyer attorney accountant doctor physician dentist nurse therapist counselor
    counsellor landlord landlady tenant agent rep representative technician tech adjuster
    advisor adviser banker broker realtor caseworker caregiver carer nanny babysitter
    tutor teacher coach pastor priest contact employee customer patient
    caller holder policyholder cardholder beneficiary recipient subscriber applicant
    borrower cosigner co-signer guarantor insured claimant payee signer signatory owner
    executor guardian sender addressee driver member requester officer detective
    specialist surgeon pharmacist vet veterinarian mechanic contractor plumber
    electrician guy man woman lady person someone somebody girl boy gentleman widow
    widower parents kids children sons daughters grandkids
""")  # fmt: skip
# Family: "the daughter of X" (but not "the owner of X", often a business).
_KIN_NOUNS = _words("""
    wife husband spouse son daughter child mother mom father dad brother sister
    grandmother grandfather grandson granddaughter aunt uncle cousin niece nephew widow
    widower parents
""")  # fmt: skip
# Words between a role noun and the name it introduces ("my manager is X").
_ROLE_LINKS = {"is", "was", "named", "called", "being"}
# "<owner> name is X" where X is no person: "my user name is", "the company name is".
_NOT_PERSON_NAME_OWNERS = {
    "user", "username", "screen", "login", "company", "company's", "business", "file",
    "domain", "network", "wifi", "wi-fi", "street", "product", "brand", "store", "shop",
    "project", "pet", "pet's", "dog", "dog's", "cat", "cat's", "app", "device", "model",
    "band", "restaurant", "hotel", "program", "song", "movie", "book", "school", "town",
    "city", "ship", "boat", "horse", "folder", "server", "host", "computer", "router",
    "display", "plan", "account's", "channel", "game", "team", "group", "gamer",
}  # fmt: skip
# Words that make the capitalised words before them a place or a business.
_PLACE_WORDS = _words("""
    station square tunnel bridge airport mall county city beach river lake island
    mountain mount valley heights falls harbor harbour bay port springs plaza terrace
    boulevard blvd highway freeway parkway expressway turnpike circle crescent gardens
    hospital university college school academy cathedral stadium arena center centre
    theater theatre museum library hotel restaurant market store pharmacy clinic dental
    medical health insurance bank bancorp inc llc ltd corp corporation company co group
    motors airlines airways electric energy wireless mobile telecom labs foods services
    solutions systems technologies tech software financial credit partners associates
    realty properties management construction consulting logistics express international
    national federal state tv pro plus mini app phone rainforest street road avenue drive
    lane court way place st ave rd county province district region coast empire republic
    kingdom government administration temple mosque synagogue foundation institute
    society club league association council committee army navy police department office
    team brothers bros sons law firm auto cars dealership trucking plumbing roofing
    cleaning salon spa cafe grill bar pub bakery pizza kitchen diner house tower towers
    apartments manor estates village town township farm farms ranch creek canyon point
    landing crossing junction depot terminal pier wharf dock civic traders trading supply
    supplies industries enterprises holdings ventures imports exports distributors
    manufacturing studios studio media network networks productions publishing press
    airline motel inn lodge resort
""")  # fmt: skip
# Departments: "Bill Henderson from accounting", "Svetlana in billing".
_DEPARTMENTS = _words("""
    accounting accounts billing sales support claims hr legal finance payroll marketing
    shipping receiving collections underwriting dispatch reception security maintenance
    operations admissions records engineering management procurement purchasing
    compliance fraud escalations retention returns scheduling desk team department dept
    office service care resources branch
""")  # fmt: skip
# Brands and voice assistants that are also names: no person on a cue alone ("Chase
# said", "tell Alexa").
_BRAND_NAMES = {"chase", "mercedes", "harley", "alexa", "wendy", "lincoln", "ford", "dell",
                "target", "discover", "ally", "progressive", "liberty", "chance", "wells",
                "siri", "cortana", "google", "jeeves"}


def _index(phrases: Iterable[Phrase], *, by_last: bool = False) -> dict[str, tuple[Phrase, ...]]:
    """Phrases keyed by their first (or last) word, longest first."""
    table: dict[str, list[Phrase]] = {}
    for p in phrases:
        table.setdefault(p[-1] if by_last else p[0], []).append(p)
    return {k: tuple(sorted(v, key=len, reverse=True)) for k, v in table.items()}


# Before a name, certainly: any following name-like words, lower-case too after the
# "my ..." forms ("my name is linda smith").
_STRONG_NAME_TRIGGERS = split_phrases(
    "my name is | my name's | name is | name's | first name is | last name is | surname is"
    " | full name is | i am called | name on the card is | name of the card is"
    " | name on the account is | name on the card | cardholder name is | card holder is"
    " | cardholder is | account holder is | name was | middle name is | maiden name is"
    " | legal name is | name on the policy is | name on the reservation is"
    " | name on the order is | name on the booking is | name on file is"
    " | name on the file is | name on the lease is | name on the check is"
    " | policy holder is | policyholder is | primary account holder is | names are"
)
_LOWERCASE_NAME_TRIGGERS = set(split_phrases(
    "my name is | my name's | first name is | last name is | surname is | full name is"
    " | i am called | middle name is | maiden name is | legal name is"
))  # fmt: skip
# Before a name, maybe: only capitalised words, and with more evidence.
_WEAK_NAME_TRIGGERS = split_phrases(
    "this is | it's | it is | i'm | i am | speaking with | speak with | speak to"
    " | talking to | talking with | talk to | talk with | spoke with | spoke to"
    " | spoken with | spoken to | ask for | asking for | asked for | call me | mr | mrs"
    " | ms | miss | dr | mister | doctor | dear | prof | professor | called | named"
    " | transfer me to | transferred me to | transfer to | transferred to | connect me to"
    " | connect me with | connected me with | put me through to | looking for"
    " | send it to | send this to | send that to | mail it to | ship it to | forward it to"
    " | give it to | on behalf of | cc | trying to reach | try to reach | get ahold of"
    " | get a hold of | message for | note for | placed by | ordered by | submitted by"
    " | opened by | authorized by | handled by | assigned to | referred by | approved by"
    " | is for | was for | booked for | reservation for | appointment for | prescription for"
    " | package for | delivery for | order for | tickets for | ticket for"
)
# Of those, the ones where a business or place is as likely as a person: only a listed
# name counts, not an NER hit of any kind.
_LISTED_ONLY_TRIGGERS = set(split_phrases(
    "send it to | send this to | send that to | mail it to | ship it to | forward it to"
    " | give it to | on behalf of | cc | looking for | trying to reach | try to reach"
    " | get ahold of | get a hold of | message for | note for | placed by | ordered by"
    " | submitted by | opened by | authorized by | handled by | assigned to | referred by"
    " | approved by | is for | was for | booked for | reservation for | appointment for"
    " | prescription for | package for | delivery for | order for | tickets for | ticket for"
))  # fmt: skip
# Verbs and phrases of addressing someone: the capitalised words after them are a name.
_ADDRESS_CUES = split_phrases(
    "tell | ask | remind | attention of | attn | care of | put it under | put that under"
    " | put this under | put everything under | put the order under | put the account under"
    " | put the reservation under | booked under | reserved under | listed under"
    " | registered under | registered to | filed under | it's under | is under | was under"
    " | under the name | under the name of | in the name of | made out to"
    " | make it out to | payable to | addressed to | address it to | signed by | goes by"
    " | go by | went by | known as | let | estate of | belongs to | belonged to"
)
# Name parts: "last name Okafor", "First name John,", "What's your last name? Okafor."
_NAME_PART_CUES = split_phrases(
    "first name | last name | surname | middle name | maiden name | given name"
    " | family name | second name"
)
_STRONG_INDEX = _index(_STRONG_NAME_TRIGGERS)
_WEAK_INDEX = _index(_WEAK_NAME_TRIGGERS)
_ADDRESS_INDEX = _index(_ADDRESS_CUES)
_NAME_PART_INDEX = _index(_NAME_PART_CUES)
# Every cue, keyed by its last word: context for an NER PERSON span.
_CUES_BEFORE = _index(
    (*_STRONG_NAME_TRIGGERS, *_WEAK_NAME_TRIGGERS, *_ADDRESS_CUES, *_NAME_PART_CUES),
    by_last=True,
)


def _phrase_from(
    index: dict[str, tuple[Phrase, ...]], bare: Sequence[str], i: int
) -> Phrase | None:
    for p in index.get(bare[i], ()):
        if phrase_at(bare, i, p):
            return p
    return None


# ------------------------------------------------------------------ word shapes


def _name_like(tok: Token) -> bool:
    bare = tok.bare
    return len(bare) >= 2 and is_plain_word(bare) and bare not in NOT_NAMES


def _is_acronym(tok: Token) -> bool:
    """ "TV", "PIN", "IBAN", "J-O-H-N": two or more letters, all capitals."""
    raw = tok.raw
    return raw.isupper() and sum(c.isalpha() for c in raw) >= 2


def _name_word(tok: Token) -> bool:
    """A word that can be part of a name as Whisper writes one."""
    return (
        tok.title
        and _name_like(tok)
        and not _is_acronym(tok)
        and tok.bare not in _PLACE_WORDS
        and tok.bare not in _TITLE_WORDS
    )


def _name_run(toks: Sequence[Token], start: int, limit: int = 4) -> int:
    """End of up to ``limit`` capitalised name words from ``start``, with particles
    between them ("García Márquez", "Ludwig van Beethoven", "María de la Cruz");
    stops after a pause. ``start`` when there is none."""
    n = len(toks)
    k = end = start
    words = 0
    while k < n and words < limit:
        if _name_word(toks[k]):
            k += 1
            end = k
            words += 1
            if toks[k - 1].phrase_end:
                break
            continue
        j = k
        while end > start and j < n and j - k < 2 and toks[j].bare in NAME_PARTICLES and (
            not toks[j].phrase_end
        ):
            j += 1
        if j > k and j < n and _name_word(toks[j]):
            k = j
            continue
        break
    return end


def _place_after(toks: Sequence[Token], k: int) -> bool:
    """A place or company word right after a run ends ("Victoria station")."""
    return k < len(toks) and toks[k].bare in _PLACE_WORDS and not toks[k - 1].phrase_end


def _listed(toks: Sequence[Token], first: int, last: int) -> bool:
    """A listed name that is no everyday word, or several words with a listed one."""
    words = [toks[m].bare for m in range(first, last)]
    if any(is_certain_name(w) for w in words):
        return True
    return len(words) >= 2 and any(is_common_name(w) for w in words)


# ------------------------------------------------------------------------ rules


def person_spans(toks: Sequence[Token], named_words: frozenset[int]) -> list[WordSpan]:
    """Names found by their context; ``named_words`` (NER hits) confirm the weak cues."""
    bare = [t.bare for t in toks]
    spelled = _letter_runs(toks)
    # Letters of a code and the example words of a spelling that is no name ("M as in
    # Mary, 7, K"): no name rule may take them.
    codes = {
        j for r in spelled if r.code or (r.phonetic and not r.name)
        for j in range(r.first, r.last)
    }
    out: list[WordSpan] = []
    for i in range(len(toks)):
        for rule in (_name_after_strong_trigger, _name_after_cue):
            span = rule(toks, bare, i)
            if span is not None:
                out.append(span)
        weak = _name_after_weak_trigger(toks, bare, i, named_words)
        if weak is not None:
            out.append(weak)
    out.extend(_names_by_cue_words(toks, bare))
    out.extend(_names_before_cues(toks, bare, named_words))
    out.extend(_common_first_names(toks, bare))
    out.extend(_spelled_name_spans(toks, spelled, named_words))
    out = spans_without(out, codes)
    out.extend(_repeated_names(toks, out, codes))
    return out




def _name_after_strong_trigger(
    toks: Sequence[Token], bare: Sequence[str], i: int
) -> WordSpan | None:
    phrase = _phrase_from(_STRONG_INDEX, bare, i)
    if phrase is None or (phrase[0] in {"name", "name's", "names"} and i > 0 and (
        bare[i - 1] in _NOT_PERSON_NAME_OWNERS
    )):  # "my user name is ..."
        return None
    n = len(toks)
    j = i + len(phrase)
    while j < n and bare[j] in _FILLERS:
        j += 1
    lower_ok = phrase in _LOWERCASE_NAME_TRIGGERS
    k = j
    while k < n and k - j < 3 and (
        (_name_like(toks[k]) and (lower_ok or toks[k].title) and not _is_acronym(toks[k]))
        or (is_capital_letter(toks[k]) and k + 1 < n and _name_like(toks[k + 1]))
    ):  # "Name on the card is, K -Shabel"
        k += 1
        if toks[k - 1].phrase_end:
            break
        if toks[k - 1].title and k < n and bare[k] in NAME_PARTICLES:
            k = max(k, _name_run(toks, k - 1) if _name_word(toks[k - 1]) else k)
            break  # "María de la Cruz"
    return WordSpan(j, k, PERSON, SCORE_CONTEXT) if k > j else None


def _name_after_cue(toks: Sequence[Token], bare: Sequence[str], i: int) -> WordSpan | None:
    """Capitalised words after a verb of addressing ("tell X", "put it under X"), a role
    noun ("my wife, X", "the caller was X"), a title ("Officer X") or a name part
    ("last name X", "What's your last name? Okafor.")."""
    n = len(toks)
    tok = toks[i]
    j: int | None = None
    if tok.bare in _ROLE_NOUNS and not tok.sentence_end:
        j = _after_role(toks, bare, i)
    if j is None and tok.bare in _TITLE_WORDS and tok.title and not tok.phrase_end:
        j = i + 1
    if j is None:
        phrase = _phrase_from(_ADDRESS_INDEX, bare, i)
        if phrase is not None and not toks[i + len(phrase) - 1].phrase_end:
            j = i + len(phrase)
        else:
            phrase = _phrase_from(_NAME_PART_INDEX, bare, i)
            if phrase is not None and toks[i + len(phrase) - 1].raw[-1:] != "!":
                j = i + len(phrase)
        if phrase == ("let",):  # "let Maria know"
            k = _name_run(toks, i + 1)
            ok = i + 1 < k < n and bare[k] == "know"
            return WordSpan(i + 1, k, PERSON, SCORE_CONTEXT) if ok else None
    if j is None or j >= n:
        return None
    k = _name_run(toks, j)
    if k == j or _place_after(toks, k) or (k == j + 1 and bare[j] in _BRAND_NAMES):
        return None  # "tell Alexa to ...", "the owner is Sunrise Properties"
    return WordSpan(j, k, PERSON, SCORE_CONTEXT)


def _after_role(toks: Sequence[Token], bare: Sequence[str], i: int) -> int | None:
    """Where a name starts after the role noun at ``i``: "my wife, X", "my son X", "the
    caller was X", "policy holder is X", "the widow of X"; None when the noun has no
    owner or link."""
    j = i + 1
    linked = j < len(toks) and not toks[i].phrase_end and (
        bare[j] in _ROLE_LINKS or (bare[j] == "of" and bare[i] in _KIN_NOUNS)
    )
    if linked:
        j += 1
    owned = False
    for m in range(i - 1, max(-1, i - 4), -1):  # "my", "the", "our claims", "the account"
        if bare[m] in _POSSESSIVES:
            owned = True
            break
        if toks[m].phrase_end or toks[m].title or not bare[m].isalpha():
            break
    if not (owned or linked) or (toks[i].phrase_end and toks[i].raw[-1] not in ",:"):
        return None
    return j


def _name_after_weak_trigger(
    toks: Sequence[Token], bare: Sequence[str], i: int, named_words: frozenset[int]
) -> WordSpan | None:
    phrase = _phrase_from(_WEAK_INDEX, bare, i)
    if phrase is None:
        return None
    n = len(toks)
    j = i + len(phrase)
    k = _name_run(toks, j, 3)
    if k == j:
        return None
    follower = bare[k] if k < n else ""
    greeted = i == 0 or toks[i - 1].phrase_end or bare[i - 1] in _GREETINGS
    hello = i > 0 and bare[i - 1] in _HELLOS
    known = _listed(toks, j, k)
    tagged = any(m in named_words for m in range(j, k))
    ambiguous_ok = any(is_common_name(bare[m]) for m in range(j, k)) and hello
    pause = toks[k - 1].phrase_end
    if phrase[0] in _HONORIFICS:
        ok = True
    elif phrase in {("called",), ("named",)}:
        # "an agent called Marcus", not "a company called Acme"
        ok = known or (i > 0 and bare[i - 1] in _ROLE_NOUNS)
    elif phrase in {("this", "is"), ("it's",), ("it", "is")}:
        # "Hi, this is Maria Davis calling", "it's Hannah.", "Yeah, it's Grace." (not
        # "This is Sparta!", "it's Austin." after a zip code)
        ok = follower in _NAME_FOLLOWERS or (
            (known or ambiguous_ok) and (greeted or k == n or pause)
        ) or (hello and pause)
    elif phrase in {("i'm",), ("i", "am")}:
        # "I'm Sarah and ...", "Hi, I'm Lakshmi." (not "So I'm Kind of worried")
        ok = known or tagged or (hello and pause) or (ambiguous_ok and pause)
    elif phrase in _LISTED_ONLY_TRIGGERS:
        ok = known
    else:
        ok = known or tagged
    if ok and _place_after(toks, k):
        ok = False
    return WordSpan(j, k, PERSON, SCORE_CONTEXT) if ok else None


def _names_by_cue_words(toks: Sequence[Token], bare: Sequence[str]) -> list[WordSpan]:
    """ "Linda here", "Maria speaking" at the start of a turn; "Davis is my last name";
    "in my mother's name, Hannah Nguyen"."""
    n = len(toks)
    out = []
    for i in range(n):
        if bare[i] == "name" and toks[i].raw[-1:] in ",:" and i + 1 < n and not (
            i > 0 and bare[i - 1] in _NOT_PERSON_NAME_OWNERS
        ):
            k = _name_run(toks, i + 1, 3)
            if k > i + 1:
                out.append(WordSpan(i + 1, k, PERSON, SCORE_CONTEXT))
        if bare[i] in {"here", "speaking"} and i >= 1:
            j = i
            while j > 0 and i - j < 2 and _name_word(toks[j - 1]):
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


def _run_before(toks: Sequence[Token], end: int, limit: int = 3) -> int:
    """Start of the capitalised name words that end at ``end`` (``end`` if none)."""
    j = end
    while j > 0 and end - j < limit and _name_word(toks[j - 1]) and not (
        j < end and toks[j - 1].phrase_end
    ):
        j -= 1
    return j


def _names_before_cues(
    toks: Sequence[Token], bare: Sequence[str], named_words: frozenset[int]
) -> list[WordSpan]:
    """ "Bill said", "Will said" (a listed first name before a verb of speech); "Bill
    Henderson from accounting", "Svetlana in billing" (before a department); "Is
    Deborah available?"; "send the forms to Brian O'Leary"; "have Jerome call me"."""
    n = len(toks)
    out = []
    for i in range(1, n):
        if bare[i] == "to" and any(bare[m] in _SENDING_VERBS for m in range(max(0, i - 4), i)):
            k = _name_run(toks, i + 1, 3)  # "send the documents to Brian O'Leary"
            if k > i + 1 and _listed(toks, i + 1, k) and not _place_after(toks, k):
                out.append(WordSpan(i + 1, k, PERSON, SCORE_CONTEXT))
        if bare[i] in _CALLBACK_VERBS and not toks[i - 1].phrase_end:
            j = _run_before(toks, i)  # "Please have Jerome call me back"
            if 0 < j < i and bare[j - 1] in {"have", "get", "ask", "tell"} and (
                _listed(toks, j, i) or any(m in named_words for m in range(j, i))
            ):
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
        if bare[i] in _SPEECH_VERBS and not toks[i - 1].phrase_end:
            j = _run_before(toks, i)
            if j == i and toks[i - 1].title and is_first_name(bare[i - 1]):
                j = i - 1  # "Will said": a first name that is also a word
            if j < i and _said_by_person(toks, bare, j, i, named_words):
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
        elif bare[i] in {"available", "there", "around", "home", "free"}:
            j = _run_before(toks, i)  # "Is Deborah available?"
            if 0 < j < i and bare[j - 1] == "is" and _listed(toks, j, i):
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
        elif bare[i] in {"from", "in", "at"} and not toks[i - 1].phrase_end and _department_at(
            bare, i + 1
        ):
            j = _run_before(toks, i)
            if j < i and (
                _listed(toks, j, i) or i - j >= 2 or any(m in named_words for m in range(j, i))
            ):
                out.append(WordSpan(j, i, PERSON, SCORE_CONTEXT))
    return out


_SENDING_VERBS = _words("""
    send sent sending mail mailed ship shipped forward forwarded give gave deliver delivered
    email emailed fax faxed hand handed pass passed refer referred address addressed
""")  # fmt: skip
_CALLBACK_VERBS = {"call", "contact", "email", "text", "reach", "phone", "ring"}


def _said_by_person(
    toks: Sequence[Token], bare: Sequence[str], j: int, i: int, named_words: frozenset[int]
) -> bool:
    if j > 0 and bare[j - 1] in _DETERMINERS | {"to", "in", "at", "from", "of"}:
        return False
    words = [bare[m] for m in range(j, i)]
    if any(w in _BRAND_NAMES for w in words):
        return False
    # A listed first name ("Will said"); a surname alone only with an NER hit, as an
    # author in a lecture ("Smith argued") is no caller.
    return any(is_first_name(w) for w in words) or any(m in named_words for m in range(j, i))


def _department_at(bare: Sequence[str], k: int) -> bool:
    """ "accounting", "the front desk", "our claims team" from ``k``."""
    n = len(bare)
    if k < n and bare[k] in _POSSESSIVES:
        k += 1
    return any(k + d < n and bare[k + d] in _DEPARTMENTS for d in (0, 1))


def _common_first_names(toks: Sequence[Token], bare: Sequence[str]) -> list[WordSpan]:
    """A listed first name with a listed surname ("Lisa Brown", "Hiroshi Tanaka",
    "Grace Kim", but not "Rose Hill") or addressed to someone ("Okay Emily, you're
    set", "... birth Emily?"); alone in prose it may be a character."""
    n = len(toks)
    out = []
    for i, tok in enumerate(toks):
        if not (tok.title and is_first_name(tok.bare)) or not _name_like(tok):
            continue
        ambiguous = not is_certain_name(tok.bare) or tok.bare in AMBIGUOUS_FIRST_NAMES
        k = i + 1
        if k < n and not tok.phrase_end and _name_word(toks[k]) and is_surname(toks[k].bare) and (
            not ambiguous or is_certain_name(toks[k].bare)
        ):
            end = k + 1
            while end < n and end - i < 4 and not toks[end - 1].phrase_end and _name_word(
                toks[end]
            ) and is_common_name(toks[end].bare):
                end += 1  # "Mei Lin Zhang", "Rajesh Kumar Iyer"
            if not _place_after(toks, end):
                out.append(WordSpan(i, end, PERSON, SCORE_SHAPE))
        elif not ambiguous and (
            (i and bare[i - 1] in _GREETINGS | {"thanks", "thank", "you"})
            or (tok.phrase_end and i and toks[i - 1].raw[-1:] not in ",.")
        ):
            out.append(WordSpan(i, k, PERSON, SCORE_SHAPE))
    return out


def _repeated_names(
    toks: Sequence[Token], spans: Sequence[WordSpan], codes: set[int]
) -> list[WordSpan]:
    """A name found once is a name wherever else it appears in the window ("I'm Tomasz,
    Tomasz Wiśniewski"; "Bill said ..., Bill Henderson"), with the names after it."""
    found = {j for s in spans for j in range(s.first, s.last)}
    names = {toks[j].bare for j in found if _name_word(toks[j])}
    out = []
    for i, tok in enumerate(toks):
        if i in found or i in codes or tok.bare not in names or not _name_word(tok):
            continue
        k = i + 1
        while k < len(toks) and k - i < 3 and not toks[k - 1].phrase_end and _name_word(toks[k]):
            k += 1
        if not _place_after(toks, k):
            out.append(WordSpan(i, k, PERSON, SCORE_CONTEXT))
    return out


# ------------------------------------------------------------ spelled letters


@dataclass(slots=True)
class _LetterRun:
    first: int
    last: int
    letters: str
    phonetic: bool  # "S as in Sam"
    name: bool = False  # spelled name (else a code, an acronym or just letters)
    code: bool = False  # digits, an email or a non-name cue around it
    words: tuple[int, ...] = ()  # the word(s) it spells, when said next to it


_LETTER_GROUP_RE = re.compile(r"[a-z](?:[-.][a-z])+\.?")
_PHONETIC_LINKS: tuple[Phrase, ...] = (("as", "in"), ("for",), ("like",), ("as",))
# Said between spelled letters: "M-E-N-S-A-H, hyphen, B-O-N-S-U"; "O, apostrophe, C".
_SPELL_JOINERS = {"hyphen", "dash", "space", "apostrophe"} | _FILLERS
# Before letters: they spell a name ("my name is", "spelled", "initials") ...
_PERSON_SPELL_CUES = {"spell", "spelled", "spelling", "spells", "spelt", "name", "name's",
                      "names", "surname", "initials", "initial", "letters"}
# ... or something else (a password, a username, a plate, a code).
_OTHER_SPELL_CUES = {
    "password", "passcode", "passphrase", "passwords", "username", "usernames", "login",
    "handle", "code", "swift", "bic", "vin", "plate", "license", "licence", "id", "pin",
    "zip", "postcode", "postal", "serial", "model", "confirmation", "reference",
    "tracking", "booking", "order", "iban", "promo", "coupon", "voucher", "wifi",
    "network", "ssid", "key", "ticket", "flight", "seat", "gate", "number", "email",
    "e-mail", "address", "website", "url", "domain",
}  # fmt: skip
_EMAIL_WORDS = {"at", "dot", "underscore", "@", "colon", "slash", "period", "com", "gmail"}
_DIGIT_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
# Letter strings that are acronyms or words, not names, unless a name is spelled.
_ACRONYMS = _words("""
    usa us uk eu atm https http www fbi cia irs dmv ups usps dhl cvv ssn pin dob vin id
    ceo cfo hr it tv pc ok llc inc aka asap faq gps nba nfl nyc la dc ibm bmw hbo cnn bbc
    abc nbc cbs espn aarp aaa gpa mba phd md rn ac ad pm am ny nj ca tx fl ira hsa pto
    eg ie jr sr st vs et al ps mph dj att
""")  # fmt: skip


def _letter_unit(toks: Sequence[Token], i: int) -> tuple[str, int, bool] | None:
    """The letters one spelled unit at ``i`` stands for, where it ends, and whether it
    was phonetic: "J", "-O", "J-O-H-N,", "j.o.h.n.", "S as in Sam", "double L"."""
    tok = toks[i]
    bare = tok.bare
    n = len(toks)
    if len(bare) == 1 and bare.isalpha():
        for link in _PHONETIC_LINKS:
            j = i + 1 + len(link)
            if j < n and phrase_at([t.bare for t in toks[i + 1 : j]], 0, link):
                example = fold(toks[j].bare)
                if len(example) >= 2 and example.isalpha() and example[0] == fold(bare):
                    return fold(bare), j + 1, True  # "S as in Sam", "M for Mary"
        return fold(bare), i + 1, False
    if bare == "double" and i + 1 < n and len(toks[i + 1].bare) == 1 and toks[i + 1].bare.isalpha():
        return fold(toks[i + 1].bare) * 2, i + 2, False
    core = tok.low.strip(EDGE_PUNCTUATION)
    if ("-" in core or "." in core) and _LETTER_GROUP_RE.fullmatch(core := fold(core)):
        return "".join(c for c in core if c.isalpha()), i + 1, False
    return None


def _letter_runs(toks: Sequence[Token]) -> list[_LetterRun]:
    """Every run of spelled letters, judged name or not (``_LetterRun.name``)."""
    n = len(toks)
    runs: list[_LetterRun] = []
    # "with a K", "with an H": a letter said about a spelling, not spelled.
    skip = {j for i in range(2, n) for j in (i - 1, i)
            if toks[i - 2].bare == "with" and toks[i - 1].bare in {"a", "an"}
            and len(toks[i].bare) == 1}
    i = 0
    while i < n:
        unit = _letter_unit(toks, i) if i not in skip else None
        if unit is None:
            i += 1
            continue
        first, letters, phonetic, units = i, "", False, []
        while unit is not None:
            units.append(i)
            letters += unit[0]
            phonetic = phonetic or unit[2]
            i = unit[1]
            last_tok = toks[i - 1]
            if last_tok.sentence_end and last_tok.raw[-1] != ".":
                break
            j = i
            while j < n and toks[j].bare in _SPELL_JOINERS:
                j += 1
            if j < n and toks[j].bare in {"and", "then"} and j + 1 < n and is_capital_letter(
                toks[j + 1]
            ):
                j += 1
            unit = _letter_unit(toks, j) if j < n and j not in skip else None
            if unit is not None:
                i = j
        # "J O H N I think": the pronoun is no letter; nor is an article "a".
        while len(units) > 1 and (
            toks[units[-1]].raw.strip() == "a"
            or (toks[units[-1]].raw.strip() == "I" and i < n and toks[i].bare.isalpha()
                and len(toks[i].bare) > 1 and not toks[i].title)
        ):
            i = units.pop()
            letters = letters[:-1]
        while len(units) > 1 and toks[units[0]].raw.strip() == "a":
            units.pop(0)
            letters = letters[1:]
            first = units[0]
        run = _LetterRun(first, i, letters, phonetic)
        run.name = _spells_a_name(toks, run, [toks[u].bare for u in units])
        runs.append(run)
    return runs


def _spells_a_name(toks: Sequence[Token], run: _LetterRun, unit_words: list[str]) -> bool:
    """Whether a run of letters spells a name (and which word, ``run.words``)."""
    if len(run.letters) < 2:
        return False
    run.words = _spelled_words(toks, run)
    if run.words:
        return True
    if _code_around(toks, run) or _cue_before(toks, run.first) == "other":
        run.code = True
        return False
    if run.letters in _ACRONYMS:
        return False
    prev = toks[run.first - 1].bare if run.first else ""
    spell_ctx = _cue_before(toks, run.first) == "person" or prev in {"that's", "it's", "is"}
    only_words = all(w in _LETTER_WORDS for w in unit_words)
    return spell_ctx or run.phonetic or (len(run.letters) >= 5 and not only_words)


def _code_around(toks: Sequence[Token], run: _LetterRun) -> bool:
    """Digits, an email or a URL right next to the letters: "B O F A U S 3 N", "3 G C
    U K", "L-I-S-A, dot park at", "H T T P S colon slash"."""
    n = len(toks)
    near = [run.first - 1, run.last]
    if run.last + 1 < n and toks[run.last].bare in _FILLERS:
        near.append(run.last + 1)
    for m in near:
        if not 0 <= m < n:
            continue
        tok = toks[m]
        if any(c.isdigit() for c in tok.raw) or tok.bare in _DIGIT_WORDS or "@" in tok.raw:
            return True
        if tok.bare in _EMAIL_WORDS and (m == run.last or tok.bare != "at"):
            return True
    return False


def _cue_before(toks: Sequence[Token], first: int) -> str | None:
    """The nearest cue within 8 words before ``first``: "person", "other" or None."""
    for m in range(first - 1, max(-1, first - 9), -1):
        bare = toks[m].bare
        if bare in _PERSON_SPELL_CUES:
            if bare.startswith("name") and m > 0 and toks[m - 1].bare in _NOT_PERSON_NAME_OWNERS:
                return "other"  # "my user name is T-W-I-L-L-I-A-M-S"
            return "person"
        if bare in _OTHER_SPELL_CUES:
            return "other"
    return None


def _spelled_words(toks: Sequence[Token], run: _LetterRun) -> tuple[int, ...]:
    """The capitalised word next to the letters that they spell ("Nakamura,
    N-A-K-A-M-U-R-A"; "T-H-E-R-E-S-A, Theresa"; "Wiśniewski, W-I-S-N-I-E-W-S-K-I")."""
    n = len(toks)
    before = range(run.first - 1, max(-1, run.first - 5), -1)
    for m in (*before, *range(run.last, min(n, run.last + 3))):
        tok = toks[m]
        if not (tok.title and _name_like(tok)) or _is_acronym(tok):
            continue
        word = "".join(c for c in fold(tok.bare) if c.isalpha())
        if _same_spelling(word, run.letters):
            return (m,)
    return ()


def _same_spelling(word: str, letters: str) -> bool:
    if word == letters:
        return True
    if len(letters) < 4 or word[:1] != letters[:1]:
        return False
    return SequenceMatcher(None, word, letters).ratio() >= 0.8


def _spelled_name_spans(
    toks: Sequence[Token], runs: Sequence[_LetterRun], named_words: frozenset[int]
) -> list[WordSpan]:
    """Spelled names, the word they spell with the names next to it, the name before
    "that's <spelling>" and a surname said after a spelled first name."""
    n = len(toks)
    out = []
    for run in runs:
        if not run.name:
            continue
        out.append(WordSpan(run.first, run.last, PERSON, SCORE_CONTEXT))
        for m in run.words:
            if m < run.first:
                j = _run_before(toks, m + 1) if _name_word(toks[m]) else m
                out.append(WordSpan(min(j, m), m + 1, PERSON, SCORE_CONTEXT))
            else:
                out.append(WordSpan(m, max(_name_run(toks, m), m + 1), PERSON, SCORE_CONTEXT))
        if not run.words and run.first >= 2 and toks[run.first - 1].bare in {
            "that's", "spelled", "spelt"
        }:
            p = run.first - 2
            if p >= 1 and toks[p].bare in {"it's", "that's", "is"}:
                p -= 1
            if _name_word(toks[p]):
                out.append(WordSpan(_run_before(toks, p + 1), p + 1, PERSON, SCORE_CONTEXT))
        k = run.last
        if (
            k < n
            and toks[k - 1].raw[-1:] == ","
            and run.last not in run.words
            and _name_word(toks[k])
            and (is_common_name(toks[k].bare) or k in named_words)
        ):  # "John, J-O-H-N, Abernathy"
            out.append(WordSpan(k, _name_run(toks, k), PERSON, SCORE_CONTEXT))
    # "it's spelled NGUYEN"
    for i in range(1, n):
        if toks[i - 1].bare in {"spelled", "spell", "spelling", "spells", "spelt"} and _is_acronym(
            toks[i]
        ) and toks[i].raw.strip(EDGE_PUNCTUATION).isalpha():
            out.append(WordSpan(i, i + 1, PERSON, SCORE_CONTEXT))
    return out


# ------------------------------------------------------------------ NER spans


def plausible_person(words: Sequence[str], first: int, last: int) -> tuple[int, int] | None:
    """Trim a NER PERSON span to its name words, or reject it as a false positive.

    Kept: spans made of common first names and surnames ("Maria Davis"), or with name
    context before or after ("this is X", "Dr. X", "my wife, X", "tell X", "X
    speaking", "X said", "X from billing", "X, that's <spelling>"). Dropped: greetings,
    function words and acronyms at the edges ("Bye", "Okay", "TV"), names followed by a
    place or company word ("Victoria station"), example words of a spelling ("M as in
    Mary"), and names with no context that are not all common ones: a misheard "and I"
    -> "Zendai", a business "Sunrise Dental", a hypothesis "Howdy Mary Demois", an
    author in a lecture.
    """
    toks = tokenize(words)
    while first < last and not _name_word(toks[first]):
        first += 1
    while last > first and not _name_word(toks[last - 1]):
        last -= 1
    if first >= last or _phonetic_example(toks, first):
        return None
    if first > 0 and _name_word(toks[first - 1]) and not toks[first - 1].phrase_end and (
        is_certain_name(toks[first - 1].bare) and is_first_name(toks[first - 1].bare)
    ):
        first -= 1  # "Alejandro [García Márquez]"
    names = [toks[j].bare for j in range(first, last)]
    before = _context_before(toks, first)
    if _context_after(toks, last) or before == _STRONG:
        return first, last
    if before == _WEAK and (len(names) >= 2 or is_certain_name(names[0])):
        return first, last  # "it's Hannah", not "it's Austin"
    if before == _WEAK and not is_common_name(names[0]) and not _place_after(toks, last):
        return first, last  # "I'm Tomasz", "speaking with Adaeze"
    if _place_after(toks, last):
        return None
    if all(is_common_name(n) for n in names) and (len(names) >= 2 or is_certain_name(names[0])):
        return first, last
    return None


def _phonetic_example(toks: Sequence[Token], j: int) -> bool:
    """ "Mary" in "M as in Mary" or "M for Mary"."""
    bare = [t.bare for t in toks[max(0, j - 3) : j]]
    return (
        (bare[-2:] == ["as", "in"] and len(bare) == 3 and len(bare[0]) == 1)
        or (bare[-1:] in (["for"], ["like"], ["as"]) and len(bare) >= 2 and len(bare[-2]) == 1)
    )


_WEAK, _STRONG = 1, 2
# Cues that introduce a business or a place as often as a person ("it's Austin", "with
# Jordan"): enough for a listed name, not for one that is also a word or a place.
_WEAK_CUES = {
    p for p in _WEAK_NAME_TRIGGERS
    if p[0] not in _HONORIFICS and p not in {("called",), ("named",)}
} | {("with",), ("name's",)}


def _context_before(toks: Sequence[Token], first: int) -> int:
    """How surely the words before ``first`` introduce a name: 0, _WEAK or _STRONG."""
    if first == 0:
        return 0
    bare = [t.bare for t in toks[max(0, first - 6) : first]]
    prev = toks[first - 1]
    if prev.sentence_end:
        return 0
    cues = [p for p in _CUES_BEFORE.get(bare[-1], ()) if tuple(bare[-len(p) :]) == p]
    cues += [(w,) for w in bare[-1:] if w in _NAME_PRECEDERS]
    cues += [p for p in (("this", "is"), ("name", "is"), ("i", "am"), ("it", "is"))
             if tuple(bare[-2:]) == p]
    strength = 0
    for p in cues:
        if p == ("let",):
            continue
        if p not in _WEAK_CUES:
            return _STRONG
        before = toks[first - len(p) - 1].bare if first - len(p) - 1 >= 0 else ""
        strength = _STRONG if before in _HELLOS else max(strength, _WEAK)
    if bare[-1] in {"okay", "ok", "alright", "yes"} and toks[first].phrase_end:
        return _STRONG  # "Okay, Diego, I have your address"
    if bare[-1] in _TITLE_WORDS and prev.title:
        return _STRONG
    # "my wife, X", "the caller was X", "My son X"
    for r in (len(bare) - 1, len(bare) - 2):
        if r >= 0 and bare[r] in _ROLE_NOUNS:
            if r == len(bare) - 2 and bare[-1] not in _ROLE_LINKS:
                continue
            i = first - len(bare) + r
            if _after_role(toks, [t.bare for t in toks], i) == first:
                return _STRONG
    return strength


def _context_after(toks: Sequence[Token], last: int) -> bool:
    n = len(toks)
    if last >= n:
        return False
    after = toks[last].bare
    if after in {"speaking", "here", "calling"} or (
        after in _SPEECH_VERBS and not toks[last - 1].phrase_end
    ):
        return True
    bare = [t.bare for t in toks]
    if after in {"from", "in", "at"} and not toks[last - 1].phrase_end and _department_at(
        bare, last + 1
    ):
        return True
    # "Siobhan, that's S-I-O-B-H-A-N"
    k = last + 1 if after in {"that's", "spelled", "spelt"} else last
    return k < n and _letter_unit(toks, k) is not None and (
        is_capital_letter(toks[k]) or _is_acronym(toks[k])
    )
