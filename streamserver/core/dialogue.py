"""Dialogue state: a question for a kind of value arms the session for the answer.

On a support call the cue is usually in the *other* party's question ("last four
of your social?" → "uh, yeah, it's 9 8 1 7"), and a small Whisper drops or
garbles short answers on a phone line. So a *request* — a question or imperative
naming a kind of value ("can I get…", "what's your…", "go ahead with the card
number", "could you spell…", "confirm the last four…") — opens an *armed window*
for that entity over the answer that follows:

* it opens at the end of the request's last word;
* it closes at the end of the first utterance (VAD) that carries an answer, plus
  a grace (``grace``), or ``max_window`` after it opened, whichever comes first;
  an utterance of fillers only ("hold on, let me see") does not count as the
  answer, and a clear decline ("I don't have it") closes the window where it is
  said; a new request replaces the window.

While a window is open, the words said in it that could be the value — number
words and digits, spelled letters, months (dates of birth), words Whisper was
unsure of, and for names, emails and addresses any word that is not a filler or
function word — are masked and labelled as the armed entity (runs of them with
short gaps are one span), and so is speech the ASR wrote no word for
(``Session`` asks :meth:`DialogueState.armed_ranges`). It only ever adds masks.
A *declaration* ("my number is …") arms the speaker's own value the same way.

Mono mixes carry no speaker labels: a question and its answer are consecutive
words. With channel roles, a request on one channel arms the other channels
(``channel`` on each call; ``None`` = mono, every channel). Pure: no I/O, time in
samples. Documented with the state machine in ``docs/entities.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .pii.addresses import STREET_SUFFIXES
from .pii.entities import (
    ACCOUNT_NUMBER,
    BANKING_INFORMATION,
    CREDIT_CARD,
    CREDIT_CARD_CVV,
    CREDIT_CARD_EXPIRATION,
    DATE_OF_BIRTH,
    DRIVERS_LICENSE,
    EMAIL_ADDRESS,
    HEALTHCARE_NUMBER,
    LOCATION,
    PASSPORT_NUMBER,
    PASSWORD,
    PERSON,
    PHONE_NUMBER,
    PIN,
    TAX_ID,
    US_SSN,
    USERNAME,
    VEHICLE_ID,
    ZIP_CODE,
)
from .pii.name_lists import FIRST_NAMES, SURNAMES
from .pii.numbers import classify_number
from .pii.text import Token, split_phrases, tokenize
from .pii.vocabulary import MONTHS, STOP_WORDS, common_words
from .types import Word, WordSpan, ms_to_samples

CONTEXT_REASON = "context"
CONTEXT_SCORE = 0.6  # above the default score_threshold (0.5): a policy can still raise it

# Cue phrases per entity, matched on bare lower-case words. Where a request names
# several, the first one said wins ("name on the card" is a name).
_CUES: dict[str, str] = {
    US_SSN: "social | social's | social security | ssn | s s n | security number",
    CREDIT_CARD_CVV: "security code | cvv | cvc | three digit code | 3 digit code"
    " | code on the back | digits on the back",
    CREDIT_CARD_EXPIRATION: "expiration | expiry | expiration date | expiry date | expires",
    EMAIL_ADDRESS: "email | e-mail | email address | mail address",
    ZIP_CODE: "zip | zip code | zipcode | postal code | postcode | post code",
    DATE_OF_BIRTH: "date of birth | birth date | birthdate | birthday | dob | born",
    CREDIT_CARD: "card | card number | credit card | debit card | visa | mastercard | amex",
    PHONE_NUMBER: "phone | phone number | telephone | cell | cell phone | mobile"
    " | callback number | call back number | best number | number to reach | reach you"
    " | contact number | home number",
    LOCATION: "address | street | street address | mailing address | billing address"
    " | home address | where do you live | where you live",
    BANKING_INFORMATION: "routing | routing number | sort code | iban | swift",
    DRIVERS_LICENSE: "license | licence | driver's license | drivers license",
    PASSPORT_NUMBER: "passport",
    TAX_ID: "tax id | ein | itin | tin",
    HEALTHCARE_NUMBER: "medicare | medicaid | medical record | insurance id | health plan id",
    VEHICLE_ID: "vin | license plate | plate number",
    USERNAME: "username | user name | user id | login",
    PASSWORD: "password | passphrase",
    PIN: "pin | pin number | passcode",
    ACCOUNT_NUMBER: "account | account number | member | member id | member number"
    " | membership | policy | policy number | customer number | reference number"
    " | id number | subscriber id | group number",
    PERSON: "name | first name | last name | full name | surname | speaking with"
    " | speaking to | who's calling | who is calling | who do i have | who i'm speaking"
    " | whom am i",
}
# Used only when no cue above is in the request.
_WEAK_CUES: dict[str, str] = {
    PERSON: "spell | spell that | spell it",
    ACCOUNT_NUMBER: "number | last four | last 4 | digits",
}
# What makes a sentence a request rather than a remark ("I lost my card").
_REQUEST_FRAMES = split_phrases(
    "can i | could i | may i | can you | could you | would you | will you | what's | what"
    " | whats | which | go ahead | confirm | verify | spell | give me | tell me | read me"
    " | read | provide | need | and your | who | what about | how about | do you have"
    " | have you got | do you know | let me get | let me have | i'll need | i will need"
    " | i need | i'll just need | can we get | could we get | is there"
)
# A clear "no value coming": closes the window where it is said.
_DECLINES = split_phrases(
    "don't have | do not have | dont have | don't know | do not know | dont know | not sure"
    " | can't remember | cannot remember | don't remember | can't find | not with me"
    " | i have no | there's no | there is no | no idea | rather not"
    " | have to find | have to look | have to check | go find | go look | not on me"
    " | can't recall | cannot recall | don't recall"
)
# An utterance of only these is not the answer yet ("hold on, let me see").
_FILLERS = {"um", "uh", "er", "erm", "hmm", "ah", "oh", "okay", "ok", "yeah", "yes", "sure",
            "yep", "right", "alright", "so", "well", "let", "me", "see", "check", "hold", "on",
            "one", "moment", "second", "sec", "just", "a", "grab", "get", "find", "it", "i",
            "it's", "that's", "got", "have", "here", "hang", "minute", "like", "mm", "mhm"}
# Neither the value nor a guess at it: small talk around the answer.
_NEUTRAL = (STOP_WORDS - {"one", "at"}) | _FILLERS - {"one"} | {
    "it's", "that's", "i'm", "thanks", "thank", "sorry", "correct", "that", "is",
    "let's", "lemme", "gonna", "think", "believe", "sir", "ma'am", "mam", "again"}
# Number homophones a phone line turns digits into ("one night for a six").
_HOMOPHONES = {"for", "fore", "to", "too", "tu", "won", "ate", "oh", "o", "free", "tree",
               "nein", "night", "tin", "sex", "fix", "sick", "ten", "then", "hate", "nun", "none"}
# Entities whose value is words, not digits: names, rare words and (for emails)
# the joiners count too.
_WORD_VALUES = frozenset({PERSON, EMAIL_ADDRESS, LOCATION, USERNAME, PASSWORD})
_EMAIL_JOINERS = {"dot", "at", "underscore", "dash", "hyphen", "com", "net", "org"}
# How the asking party moves on once the answer is in: a new turn.
_ACKNOWLEDGEMENTS = split_phrases(
    "thank you | thanks | great | perfect | okay | ok | alright | all right | got it"
    " | wonderful | excellent | lovely | awesome | cool"
)
# Words said after the last cue that still belong to the request ("... for me, please").
_REQUEST_TAIL_WORDS = 5
# Small words a request may start with.
_LEAD_INS = {"and", "so", "okay", "ok", "now", "also", "then", "great", "thanks", "alright",
             "right", "perfect", "um", "uh"}
# How the other party's next turn may begin once the answer is in.
_TURN_STARTS = (*_REQUEST_FRAMES, *_ACKNOWLEDGEMENTS, *split_phrases(
    "how | where | when | why | is that | do you | did you | are you | have you | and what"
    " | and the | and can | and could | so | now"))


def _index(table: dict[str, str]) -> list[tuple[tuple[str, ...], str]]:
    pairs = [(p, entity) for entity, phrases in table.items() for p in split_phrases(phrases)]
    return sorted(pairs, key=lambda pe: -len(pe[0]))  # longest phrase first


_CUE_INDEX = _index(_CUES)
# Cues specific enough to arm at the end of any sentence (a garbled question:
# "I'm going to walk the street address."); "account" or "card" alone are not.
_TRAILING_CUES = split_phrases(
    "social | social security | social security number | ssn | zip code | postal code"
    " | date of birth | birth date | email address | address | card number"
    " | account number | member id | member number | phone number | security code"
    " | expiration date | routing number | spell that | spell it")
_CUE_WORDS = frozenset(w for phrase, _ in (*_CUE_INDEX, *_index(_WEAK_CUES)) for w in phrase)
_WEAK_INDEX = _index(_WEAK_CUES)


@dataclass(frozen=True, slots=True)
class DialogueConfig:
    """Bounds of an armed window (samples are taken at 16 kHz)."""

    max_window_ms: int = 12_000  # from the request's end, whatever happens
    grace_ms: int = 600  # after the answer's utterance ends
    min_answer_ms: int = 400  # speech after the request before an utterance end counts
    join_gap_ms: int = 1_000  # masked answer words this close are one span
    low_probability: float = 0.5  # Whisper's word probability under this: unsure
    intro_window_ms: int = 1_500  # a self-introduction's name is said within this


@dataclass(slots=True)
class ArmedWindow:
    """``[start, end)`` in which answers are masked as ``entity``."""

    entity: str
    start: int
    end: int
    request_start: int  # the request's first word (identifies the window)
    channel: int | None  # the channel that asked (None: mono)
    limit: int = 0  # the window never reaches past this (max_window_ms after start)
    answered: bool = False  # an utterance that carried an answer has ended
    closed: bool = False  # a decline, the next turn or a new request ended it for good
    # A self-introduction ("this is Leah", "my name is ..."): the speaker's own name
    # follows at once, on the speaker's own channel; no answer, no next turn.
    intro: bool = False
    whole_name: bool = False  # after "my name is": every word is the name (Introduction.whole)
    framed: bool = True  # armed by a framed request (Request.framed): any word may answer
    # A declaration ("my number is ..."): the speaker's own value follows at once, on
    # the speaker's own channel; otherwise it is an answer like any other.
    declared: bool = False

    def close(self, at: int) -> None:
        self.end = min(self.end, max(self.start, at))
        self.closed = True

    def covers(self, sample: int, channel: int | None) -> bool:
        return self.start <= sample < self.end and self.answers(channel)

    def answers(self, channel: int | None) -> bool:
        """Whether speech on ``channel`` may answer: another party's (mono: any); for
        an introduction or a declaration, the speaker's own."""
        if self.channel is None or channel is None:
            return True
        own = self.intro or self.declared
        return channel == self.channel if own else channel != self.channel


@dataclass(frozen=True, slots=True)
class Request:
    entity: str
    first: int  # word index where the asking starts ("can I get ..."), in the words given
    cue: int  # index of the cue's first word ("social")
    end_word: int  # index of the request's last word
    weak: bool = False  # only a weak cue ("the last four digits?"): may refine the one before
    declared: bool = False  # "my number is ...": the speaker gives the value, no one asks
    # Asked with a question mark or a frame ("can I get"), not only a sentence that
    # ends on a cue ("... on my account."), which a caller's remark can be too.
    framed: bool = True


# A pause this long between words ends a sentence (tiny.en often leaves a call
# unpunctuated).
_SENTENCE_PAUSE = ms_to_samples(300)


def find_requests(words: Sequence[Word], entities: Iterable[str],
                  pause: int = _SENTENCE_PAUSE) -> list[Request]:
    """Requests for a value among ``words``, one per sentence that asks for one.

    Sentences end at ``.?!`` or at a ``pause`` between words (tiny.en often writes
    a call without punctuation).
    """
    wanted = frozenset(entities)
    toks = tokenize([w.text for w in words])
    out = []
    for first, last in sentences(words, toks, pause):
        # A sentence still being said (the last, unpunctuated) may go on with its
        # value: only a finished one may arm on how it ends.
        finished = last < len(toks) or toks[last - 1].sentence_end
        found = _requested_entity(toks, first, last, wanted, finished)
        if found is None:
            declared = _declared_entity(toks, first, last, wanted)
            if declared is not None:
                entity, own, cue, verb = declared
                out.append(Request(entity, own, cue, verb, declared=True))
            continue
        entity, cue, cue_end, weak, framed = found
        # "... your last name for me, please?": small words after the cue belong to it.
        end = cue_end
        while (end + 1 < last and end - cue_end < _REQUEST_TAIL_WORDS
               and toks[end + 1].bare in _NEUTRAL and len(toks[end + 1].bare) > 1):
            end += 1
        if toks[last - 1].raw.endswith("?") and last - 1 - cue_end <= 2 * _REQUEST_TAIL_WORDS:
            end = last - 1  # "... card number you'd like to use?": all of it asks
        # The asking begins at the nearest frame word before the cue ("what's the ...").
        ask = cue
        bare = [t.bare for t in toks]
        for k in range(cue, max(first, cue - _REQUEST_TAIL_WORDS - 1) - 1, -1):
            if any(_at(bare, k, f) for f in _REQUEST_FRAMES):
                ask = k
        while ask > first and bare[ask - 1] in _LEAD_INS:
            ask -= 1  # "and could you ...", "okay, so what's ..."
        out.append(Request(entity, ask, cue, end, weak, framed=framed))
    # "My name is Marcus, how can I help?": "name" there introduces, it does not ask.
    intros = find_introductions(words)
    return [r for r in out if not any(i.cue <= r.cue <= i.end_word for i in intros)]


@dataclass(frozen=True, slots=True)
class Introduction:
    cue: int  # index of the phrase's first word ("this", "my")
    end_word: int  # index of its last word ("is"): the name follows
    stop: int | None  # index of the first word after the name (None: not said yet)
    # "My name is ...": whatever follows is the name, however Whisper wrote it
    # ("my name is please" for "my name's Leah"). After "this is" only name-like
    # words are ("this is the billing team" is no name).
    whole: bool = False


# A speaker saying their own name: it follows the phrase at once. "This is" only
# counts in a greeting ("thank you for calling ..., this is Leah, how can I help?").
_NAME_IS = split_phrases("my name is | my name's | my name was")
_INTRO_PHRASES = (*_NAME_IS, *split_phrases(
    "you're speaking with | you are speaking with | you're speaking to | you are speaking to"))
_GREETING_INTRO = split_phrases(
    "this is | here is | you're through to | you are through to | you're with | you are with"
    " | you've got | you have got")
# "My name's" on a phone line often comes out "my name and": in a greeting only
# ("I need my name and address updated" introduces no one).
_GREETING_NAME_IS = split_phrases("my name and | my name in | my name as")
_GREETINGS = frozenset({"calling", "reached", "welcome", "morning", "afternoon", "evening",
                        "hi", "hello", "thank", "thanks", "holding", "support", "billing",
                        "care", "service", "waiting"})
# How far back a greeting word makes "this is" an introduction.
_GREETING_WORDS_BEFORE = 10
# The name is at most this many words (a first and a last name, a title).
_NAME_WORDS = 3


def find_introductions(words: Sequence[Word]) -> list[Introduction]:
    """Self-introductions among ``words``: where a speaker's own name is said."""
    toks = tokenize([w.text for w in words])
    bare = [t.bare for t in toks]
    out: list[Introduction] = []
    i = 0
    while i < len(bare):
        phrase = next((p for p in _INTRO_PHRASES if _at(bare, i, p)), None)
        whole = phrase in _NAME_IS
        if phrase is None and _GREETINGS & set(bare[max(0, i - _GREETING_WORDS_BEFORE) : i]):
            phrase = next((p for p in _GREETING_NAME_IS if _at(bare, i, p)), None)
            whole = phrase is not None
            if phrase is None:
                phrase = next((p for p in _GREETING_INTRO if _at(bare, i, p)), None)
        if phrase is None:
            i += 1
            continue
        end = i + len(phrase) - 1
        out.append(Introduction(i, end, _name_stop(toks, bare, end), whole))
        i = end + 1
    return out


# "Dana speaking, how can I help?": the name comes before the cue, at most this many
# words of it, back to the clause before ("Hello, Dana speaking").
_SPEAKING_NAME_WORDS = 2
# Not a name before "speaking": "who am I speaking with", "I was speaking",
# "generally speaking", "Spanish speaking".
_NOT_SPEAKERS = frozenset({
    "i", "i'm", "me", "you", "you're", "we", "we're", "he", "he's", "she", "she's", "they",
    "they're", "who", "who's", "it", "it's", "that", "this", "am", "is", "are", "was", "were",
    "be", "been", "being", "not", "no", "and", "or", "but", "the", "for", "of", "to", "with",
    "generally", "roughly", "strictly", "technically", "broadly", "honestly", "frankly",
    "legally", "spanish", "english", "french", "public", "still", "currently", "now", "just",
    "while", "when", "after", "before", "about"})


def names_before_speaking(toks: Sequence[Token]) -> list[tuple[int, int]]:
    """``(first, end)`` word ranges of a name said before "speaking" in a greeting
    ("Hello, Dana speaking", "Customer care, Jorge speaking"). Whatever Whisper wrote
    there is masked: it is the name however garbled ("done a speaking")."""
    bare = [t.bare for t in toks]
    out = []
    for i, word in enumerate(bare):
        if word != "speaking" or i == 0 or (i + 1 < len(bare) and bare[i + 1] in {"with", "to"}):
            continue
        first = i
        while (first > 0 and i - first < _SPEAKING_NAME_WORDS
               and not toks[first - 1].raw.rstrip().endswith((",", ".", "!", "?", ":", ";"))
               and bare[first - 1] not in _GREETINGS and bare[first - 1] not in _NOT_SPEAKERS):
            first -= 1
        if first == i:
            continue
        # In a greeting: a greeting word before the name, or the name opening the words.
        before = set(bare[max(0, first - _GREETING_WORDS_BEFORE) : first])
        if _GREETINGS & before or first == 0:
            out.append((first, i))
    return out


def _name_stop(toks: Sequence[Token], bare: Sequence[str], end: int) -> int | None:
    """The first word after the name that follows word ``end``: a new sentence,
    the next turn ("how can I help"), a filler or small word after the name, or
    the word after :data:`_NAME_WORDS`. None while nothing follows yet."""
    for j in range(end + 1, len(bare)):
        if j > end + 1 and toks[j - 1].sentence_end:
            return j
        if any(_at(bare, j, t) for t in _TURN_STARTS) or bare[j] in {"and", "from", "with"}:
            return j
        if j - end > _NAME_WORDS:
            return j
    return None


def sentences(words: Sequence[Word], toks: Sequence[Token], pause: int) -> list[tuple[int, int]]:
    """``(first, last)`` word ranges split at sentence ends and pauses."""
    bounds, start = [], 0
    for i, tok in enumerate(toks):
        gap = i + 1 < len(words) and words[i + 1].start - words[i].end >= pause
        if tok.sentence_end or gap:
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(toks):
        bounds.append((start, len(toks)))
    return bounds


def _wish(bare: Sequence[str], after: int) -> bool:
    """"I need to update my account": a wish of the speaker's, not a request (the
    frame's last word "need" followed by "to")."""
    return 0 < after < len(bare) and bare[after - 1] == "need" and bare[after] == "to"


def _requested_entity(toks: Sequence[Token], first: int, last: int, wanted: frozenset[str],
                      finished: bool = True) -> tuple[str, int, int, bool, bool] | None:
    """(entity asked for, index of its cue's first word, of the last cue's last word,
    whether the cue was a weak one, whether it was asked with a question mark or a
    frame), or None."""
    bare = [t.bare for t in toks[first:last]]
    question = toks[last - 1].raw.endswith("?")
    framed = question or any(_at(bare, i, f) and not _wish(bare, i + len(f))
                             for i in range(len(bare)) for f in _REQUEST_FRAMES)
    # A finished sentence that ends on a specific cue is a question Whisper
    # garbled: "I'm going to walk the street address." ("my name is ..." is not:
    # its value follows in the same sentence, where the detector reads it.)
    # "And the service address, please." asks as plainly: a framed request.
    polite = len(bare) > 1 and bare[-1] == "please"
    cued = bare[:-1] if polite else bare
    trailing = finished and bool(cued) and any(
        _at(cued, len(cued) - len(phrase), phrase) for phrase in _TRAILING_CUES)
    framed = framed or (trailing and polite)
    if not (framed or trailing):
        return None
    if any(_at(bare, i, d) for i in range(len(bare)) for d in _DECLINES):
        return None
    for weak, index in ((False, _CUE_INDEX), (True, _WEAK_INDEX)):
        hits = [(i, -len(phrase), entity) for i in range(len(bare)) for phrase, entity in index
                if entity in wanted and _at(bare, i, phrase)]
        if hits:
            i, _, entity = min(hits)
            last_cue = max(j - neg_len - 1 for j, neg_len, _ in hits)
            return entity, first + i, first + last_cue, weak, framed
    return None


# "my card number is ...": a speaker about to say a value of their own.
_POSSESSIVES = frozenset({"my", "our"})
_DECLARING_VERBS = frozenset({"is", "was", "are"})


def _declared_entity(toks: Sequence[Token], first: int, last: int,
                     wanted: frozenset[str]) -> tuple[str, int, int, int] | None:
    """(entity, index of "my", of the cue's first word, of the verb) when the sentence
    declares a number-like value of the speaker's: "my number is", "my card number
    is", "our zip code is". Names have their introductions; other word values (an
    email, an address) are left to the detector: their words are ordinary ones."""
    bare = [t.bare for t in toks]
    for i in range(first, last - 2):
        if bare[i] not in _POSSESSIVES:
            continue
        for weak, index in ((False, _CUE_INDEX), (True, _WEAK_INDEX)):
            for phrase, entity in index:
                if not _at(bare, i + 1, phrase):
                    continue
                verb = i + 1 + len(phrase)
                # "my cell phone number is": cue words run on to the verb.
                while (verb < last - 1 and bare[verb] in _CUE_WORDS
                       and bare[verb] not in _DECLARING_VERBS):
                    verb += 1
                if verb >= last or bare[verb] not in _DECLARING_VERBS:
                    continue
                if weak and phrase == ("number",):
                    entity = PHONE_NUMBER  # "my number is ...": whose else
                if entity in wanted and entity not in _WORD_VALUES:
                    return entity, i, i + 1, verb
    return None


def _beside_value(toks: Sequence[Token], i: int) -> bool:
    """Whether a neighbour of word ``i`` is a spelled letter or a number ("I 8 1 7")."""
    return any(0 <= k < len(toks) and (
        (len(toks[k].bare) == 1 and toks[k].bare.isalpha())
        or classify_number(toks[k]) is not None) for k in (i - 1, i + 1))


def _at(bare: Sequence[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(bare[i : i + len(phrase)]) == phrase


class DialogueState:
    """Armed windows of one conversation. One owner; call in time order.

    Per detection window: :meth:`observe` (arms on requests) then
    :meth:`answer_spans` (context masks for those words). Per VAD utterance end:
    :meth:`utterance_ended`. At release: :meth:`armed_ranges`.
    """

    def __init__(self, entities: Iterable[str], cfg: DialogueConfig | None = None) -> None:
        self.cfg = cfg or DialogueConfig()
        self.entities = frozenset(entities)
        self._max = ms_to_samples(self.cfg.max_window_ms)
        self._grace = ms_to_samples(self.cfg.grace_ms)
        self._min_answer = ms_to_samples(self.cfg.min_answer_ms)
        self._join = ms_to_samples(self.cfg.join_gap_ms)
        self._same_request = ms_to_samples(700)
        self._follow_up = ms_to_samples(8000)  # a weak request this soon refines the last
        self._intro = ms_to_samples(self.cfg.intro_window_ms)
        self._stretched = ms_to_samples(450)  # "is" takes ~0.2 s; longer holds more
        self._seen: deque[tuple[str, int, int | None]] = deque(maxlen=64)  # requests armed
        self._windows: deque[ArmedWindow] = deque(maxlen=16)
        # Recent utterances (start, end, channel) and the latest words per channel
        # (for filler-only utterances).
        self._utterances: deque[tuple[int, int, int | None]] = deque(maxlen=8)
        self._words: dict[int | None, list[Word]] = {}
        # The requests found in the last words observed: answer_spans over the same
        # list (the session's call order) does not look for them again.
        self._requests: tuple[Sequence[Word], list[Request]] | None = None
        self.armed_count = 0

    @property
    def windows(self) -> tuple[ArmedWindow, ...]:
        return tuple(self._windows)

    def observe(self, words: Sequence[Word], channel: int | None = None) -> None:
        """Arm on requests among ``words`` (committed context + latest hypothesis)."""
        self._words[channel] = list(words)
        if not words or not self.entities:
            return
        requests = find_requests(words, self.entities)
        self._requests = (words, requests)
        for req in requests:
            cue_start = words[req.cue].start
            request_start = words[req.first].start
            entity = req.entity
            if req.weak:  # "Which card is it? Can you read me the last four digits?"
                recent = [w for w in self._windows if w.channel == channel
                          and 0 <= request_start - w.request_start <= self._follow_up]
                entity = recent[-1].entity if recent else entity
            if any(abs(cue - cue_start) < self._same_request and e == entity
                   and ch == channel for e, cue, ch in self._seen):
                continue  # seen in an earlier pass (word times move a little)
            self._seen.append((entity, cue_start, channel))
            start = words[req.end_word].end
            window = ArmedWindow(entity, start, start + self._max, request_start, channel,
                                 limit=start + self._max, declared=req.declared,
                                 framed=req.framed)
            # A newer request ends the window before it (one question at a time).
            for other in self._windows:
                if other.start <= request_start < other.end:
                    other.close(request_start)
            self._windows.append(window)
            self.armed_count += 1
            for utt in self._utterances:  # its answer may have ended already
                self._close_on_answer(window, *utt)
        if PERSON in self.entities:
            self._arm_introductions(words, channel)
        for window in self._windows:
            if window.answers(channel) and not window.intro:  # the answering party's turn
                self._close_on_decline(window, words)
                self._close_on_next_turn(window, words)
                if window.declared:
                    self._close_on_plain_word(window, words)

    def _arm_introductions(self, words: Sequence[Word], channel: int | None) -> None:
        """A speaker saying their own name arms PERSON right after the phrase, until
        the words after the name (or ``intro_window_ms``): Whisper garbles or drops
        names on a phone line ("this is three", "this is how can I help you")."""
        for intro in find_introductions(words):
            start = words[intro.end_word].end
            cue_start = words[intro.cue].start
            stop = words[intro.stop].start if intro.stop is not None else None
            known = next((w for w in self._windows if w.intro and w.channel == channel
                          and abs(w.request_start - cue_start) < self._same_request), None)
            if known is not None:  # seen in an earlier pass: the name's end may be known now
                if stop is not None and not known.closed:
                    known.close(max(stop, known.start))
                continue
            window = ArmedWindow(PERSON, start, start + self._intro, cue_start, channel,
                                 limit=start + self._intro, answered=True, intro=True,
                                 whole_name=intro.whole)
            if stop is not None:
                window.close(stop)
            self._windows.append(window)

    def utterance_ended(self, start: int, end: int, channel: int | None = None) -> None:
        """A VAD utterance ``[start, end)`` ended (on ``channel``): it may have been the answer."""
        self._utterances.append((start, end, channel))
        for window in self._windows:
            self._close_on_answer(window, start, end, channel)

    def answer_spans(self, words: Sequence[Word], channel: int | None = None) -> list[WordSpan]:
        """Context spans over ``words`` that lie in an armed window (index spans)."""
        spans: list[WordSpan] = []
        if not words:
            return spans
        toks = tokenize([w.text for w in words])
        # A request's own words are the question, never the answer.
        requests = (self._requests[1] if self._requests and self._requests[0] is words
                    else find_requests(words, self.entities))
        asking = {i for req in requests for i in range(req.first, req.end_word + 1)}
        # Questions and requests ("can you read me the last four digits?", a garbled
        # one included) are the asking party's: no answer starts in them on words alone.
        # (A request Whisper ran on into its answer, "... the social to pull it up A
        # mirror, mirror", is all asking: measured, starting the answer after the
        # request's last word there masked more of the agent's words than it saved.)
        bare = [t.bare for t in toks]
        asked = {i for first, last in sentences(words, toks, _SENTENCE_PAUSE)
                 if toks[last - 1].raw.endswith("?")
                 or any(_at(bare, k, f) for k in range(first, last) for f in _REQUEST_FRAMES)
                 for i in range(first, last)}
        for window in self._windows:
            # From the first word that may be the value to the end of the answer,
            # everything is masked: what Whisper wrote after it ("I hate one
            # payment") may be the rest of the value misheard. A pause longer than
            # join_gap_ms starts over (the next run needs a value-like word again).
            run: list[int] = []
            for i, w in enumerate(words):
                if i in asking or not (window.covers(w.start, channel)
                                       or window.covers(w.end - 1, channel)):
                    continue
                if run and w.start - words[run[-1]].end > self._join:
                    spans.append(self._span(run, window))
                    run = []
                if (window.whole_name
                        or self._value_like(toks, i, w, window.entity, window.intro, masking=True,
                                            answer=window.framed and not (
                                                window.intro or window.declared
                                                or i in asked))
                        or (run and self._run_goes_on(window, toks, words, i))):
                    run.append(i)
                elif run:
                    spans.append(self._span(run, window))
                    run = []
            if run:
                spans.append(self._span(run, window))
        if PERSON in self.entities:
            spans += self._swallowed_names(words)
            spans += [WordSpan(a, b, PERSON, CONTEXT_SCORE, CONTEXT_REASON)
                      for a, b in names_before_speaking(toks)]
        return spans

    def _swallowed_names(self, words: Sequence[Word]) -> list[WordSpan]:
        """"This is [name] how can I help": when Whisper writes no name, its sound is
        usually in the word before, stretched over it ("is" lasting 0.6 s). That word
        is masked as the name (its audio holds it)."""
        out = []
        for intro in find_introductions(words):
            last = words[intro.end_word]
            if intro.stop == intro.end_word + 1 and last.end - last.start > self._stretched:
                out.append(WordSpan(intro.end_word, intro.end_word + 1, PERSON, CONTEXT_SCORE,
                                    CONTEXT_REASON))
        return out

    def _run_goes_on(self, window: ArmedWindow, toks: Sequence[Token],
                     words: Sequence[Word], i: int) -> bool:
        """Whether a run of masked words goes on over word ``i``, which is not
        value-like itself. An answer's runs to its end (what Whisper wrote after the
        first value may be the rest of it misheard); an introduced name ends at the
        first other word; a declared value goes on over unsure words and over one odd
        word before more of it ("8 free year old", "A3 do 5")."""
        if window.intro:
            return False
        if not window.declared:
            return True
        return words[i].probability < self.cfg.low_probability or (
            i + 1 < len(words) and self._value_like(toks, i + 1, words[i + 1], window.entity))

    @staticmethod
    def _span(run: list[int], window: ArmedWindow) -> WordSpan:
        return WordSpan(run[0], run[-1] + 1, window.entity, CONTEXT_SCORE, CONTEXT_REASON)

    def _value_like(self, toks: Sequence[Token], i: int, word: Word, entity: str,
                    intro: bool = False, answer: bool = False, masking: bool = False) -> bool:
        """Whether an answer may start at word ``i``: not a cue ("last four", "social"),
        not merely a word Whisper was unsure of. (Right after an introduction no cue
        is said: "this is three" is a name misheard.) In the ``answer`` to a request
        any word but small talk may: Whisper on a phone line writes a value's first
        digits as ordinary words ("a mirror, mirror" for "eight thousand"), and the
        question said what comes. When ``masking`` (not when deciding whether the
        answer came), a number word that is also a cue word ("four") is a digit
        unless beside another cue word ("the last four")."""
        if (not intro and toks[i].bare in _CUE_WORDS
                and not any(c.isdigit() for c in toks[i].raw)
                and not (masking and self._lone_number(toks, i))):
            return False
        if answer and toks[i].bare and toks[i].bare not in _NEUTRAL:
            ahead = [t.bare for t in toks[i : i + 3]]
            if not any(_at(ahead, 0, a) for a in _ACKNOWLEDGEMENTS):
                return toks[i].bare not in {"a", "i"} or _beside_value(toks, i)
        if not self._candidate(toks[i], word, entity):
            return False
        if (not intro and word.probability < self.cfg.low_probability
                and not any(c.isdigit() for c in toks[i].raw)
                and toks[i].bare in common_words()
                and not (entity not in _WORD_VALUES and toks[i].bare in _HOMOPHONES)):
            # (After "this is", an unsure common word is a name misheard; and a digit's
            # homophone is one where a number is due, however unsure: "a free" = "8 3".)
            return False
        # "a" / "I" are the article and the pronoun unless beside other letters or digits.
        return toks[i].bare not in {"a", "i"} or _beside_value(toks, i)

    @staticmethod
    def _lone_number(toks: Sequence[Token], i: int) -> bool:
        """A number word that is part of a cue only beside another cue word ("the
        last four", "four digits"); alone it is a digit ("it's four one one one")."""
        if classify_number(toks[i]) is None:
            return False
        before = i > 0 and not toks[i - 1].sentence_end
        after = i + 1 < len(toks) and not toks[i].sentence_end
        return not any(toks[j].bare in _CUE_WORDS and classify_number(toks[j]) is None
                       for j, beside in ((i - 1, before), (i + 1, after)) if beside)

    def armed_ranges(self, start: int, end: int,
                     channel: int | None = None) -> list[tuple[int, int, str]]:
        """Armed ``(start, end, entity)`` ranges overlapping ``[start, end)``, clipped."""
        out = []
        for w in self._windows:
            if w.start < end and w.end > start and w.answers(channel):
                out.append((max(start, w.start), min(end, w.end), w.entity))
        return out

    def forget_before(self, sample: int) -> None:
        while self._windows and self._windows[0].end < sample:
            self._windows.popleft()

    # -- internals -------------------------------------------------------------
    def _candidate(self, tok: Token, word: Word, entity: str) -> bool:
        if not tok.bare:
            return False
        if any(c.isdigit() for c in tok.raw) or "@" in tok.raw:
            return True
        if classify_number(tok) is not None and tok.bare not in {"-", "dash", "hyphen"}:
            return True
        if len(tok.bare) == 1 and tok.bare.isalpha():
            return True  # a spelled letter ("a"/"i" only beside other values: answer_spans)
        if word.probability < self.cfg.low_probability:
            # What Whisper could not make out (but not a filler it was unsure of).
            return tok.bare not in _NEUTRAL and not any(
                _at([tok.bare], 0, a) for a in _ACKNOWLEDGEMENTS)
        if entity in _WORD_VALUES:
            if tok.bare in _NEUTRAL:
                return False
            return (tok.title or tok.bare not in common_words() or tok.bare in FIRST_NAMES
                    or tok.bare in SURNAMES
                    or (entity == EMAIL_ADDRESS and tok.bare in _EMAIL_JOINERS)
                    or (entity == LOCATION and tok.bare in STREET_SUFFIXES))
        if entity == DATE_OF_BIRTH and tok.bare in MONTHS:
            return True
        return tok.bare in _HOMOPHONES

    def _close_on_answer(self, window: ArmedWindow, start: int, end: int,
                         channel: int | None) -> None:
        """Close ``window`` a grace after the utterance that carried its answer ends.

        That is an utterance that began after the request (even one Whisper wrote
        nothing for), or the request's own utterance if a value-like word follows
        the request in it (mono: the answer came without a pause). A later
        utterance that begins inside the window and carries value-like words ("C
        C ... [pause] 6 4 1 5 2 8") extends it, up to its limit.
        """
        if (window.closed or window.intro or not window.answers(channel)
                or end - max(start, window.start) < self._min_answer):
            return
        said = [w for w in self._words.get(channel, ())
                if max(start, window.start) <= w.start < end]
        toks = tokenize([w.text for w in said])
        valued = any(self._value_like(toks, i, w, window.entity) for i, w in enumerate(said))
        if window.answered:
            if start < window.end and valued:
                window.end = min(window.limit, max(window.end, end + self._grace))
            return
        if start < window.start - self._min_answer and not valued:
            return  # the question's own utterance ended: the answer is still to come
        if said and all(t.bare in _FILLERS for t in toks):
            return  # "hold on, let me see": the value is still to come
        window.answered = True
        window.end = min(window.end, end + self._grace)

    def _close_on_next_turn(self, window: ArmedWindow, words: Sequence[Word]) -> None:
        """After the answer began, a question or an acknowledgement is the next turn."""
        said = [w for w in words if window.start <= w.start < window.end]
        if not said:
            return
        toks = tokenize([w.text for w in said])
        answered = next((i for i, w in enumerate(said)
                         if self._value_like(toks, i, w, window.entity)), None)
        if answered is not None:
            # "... 8 1 7 great, what's ...", "... 0 8 7 8 and how much ...": Whisper
            # often writes a call without punctuation; how a turn begins still shows.
            bare = [t.bare for t in toks]
            for k in range(answered + 1, len(toks)):
                starts = {k, k + 1} if bare[k] in _LEAD_INS else {k}
                if any(_at(bare, j, a) for j in starts for a in _TURN_STARTS):
                    window.close(said[k].start)
                    return
        # Before any value: only a question is the next turn ("hold on. okay, 4135"
        # is still the answer).
        for first, last in sentences(said, toks, _SENTENCE_PAUSE)[1:]:
            if toks[last - 1].raw.endswith("?") and (answered is None or first > answered):
                window.close(said[first].start)
                return

    def _close_on_plain_word(self, window: ArmedWindow, words: Sequence[Word]) -> None:
        """A declaration whose first word past the fillers is a sure, plain one
        ("my card is expired", "my account is locked") declared no value."""
        said = [w for w in words if window.start <= w.start < window.end]
        toks = tokenize([w.text for w in said])
        for i, (tok, w) in enumerate(zip(toks, said, strict=True)):
            if tok.bare in _NEUTRAL or not tok.bare or w.probability < self.cfg.low_probability:
                continue  # (an unsure word may be the value misheard: "a free year")
            if not self._value_like(toks, i, w, window.entity):
                window.close(w.start)
            return

    def _close_on_decline(self, window: ArmedWindow, words: Sequence[Word]) -> None:
        said = [w for w in words if window.start <= w.start < window.end]
        if not said:
            return
        toks = tokenize([w.text for w in said])
        bare = [t.bare for t in toks]
        for i in range(len(bare)):
            for phrase in _DECLINES:
                if _at(bare, i, phrase):
                    confident = all(w.probability >= self.cfg.low_probability
                                    for w in said[i : i + len(phrase)])
                    before = said[:i]
                    if confident and not any(self._candidate(t, w, window.entity)
                                             and t.bare not in {"a", "i"}
                                             for t, w in zip(toks[:i], before, strict=True)):
                        window.close(said[i + len(phrase) - 1].end)
                        return
