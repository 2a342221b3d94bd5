"""The text side of a session: committed words, their labels, and finality.

Words become *final* once their utterance ended or enough words are known after
them: ``right_context`` words for a word that could still turn out to be part of
an entity (a number, a capitalised word, a letter, an email joiner; or the word
just before one that could take it in: ``may_open_entity``, or that sits between
two parts of a value); such a word that the detector has labelled already at once,
since it is shown masked whatever follows; a plain word as soon as the word after
it (committed, or the first tentative one) is known to be plain as well. The
detector still sees every unlabelled risky word with its right context before it
is released. A redacted span may reach the client over
several ``transcript.final`` events (its later words are still being said), but
its ``entity_name`` token is written once and its ``redaction`` event comes once,
when the span is over. Rendering substitutes redacted words (``hash``: one ``#``
per letter or digit, punctuation kept; ``entity_name``: one ``[ENTITY]`` per span)
and masks partials conservatively. Pure: returns event payloads, emits nothing
itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .asr import AsrUpdate
from .pii import may_extend_entity, may_open_entity
from .redact import cover_words
from .types import Word, WordSpan, samples_to_seconds

Label = tuple[str, float, str]  # (entity, score, reason)


@dataclass(slots=True)
class _OpenRun:
    """A redacted span whose words are final but which may go on."""

    entity: str
    start: int
    end: int
    score: float
    reasons: list[str]  # in order of the words
    before_end: int | None  # end of the kept word before it


# Bounds the hypothesis labels kept between finals (a few per pass at most).
_MAX_HEARD_LABELS = 256
_HAS_DIGIT_OR_AT = re.compile(r"[\d@]")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def substitute(text: str, entity: str, mode: str) -> str:
    if mode == "entity_name":
        lead = " " if text.startswith(" ") else ""
        return f"{lead}[{entity}]"
    return _ALNUM.sub("#", text)


def shown_masked_while_partial(text: str) -> bool:
    """A word the partial transcript masks before the detector is sure of it: any
    digit or '@'. Its audio is held to the same rule (``Session``)."""
    return _HAS_DIGIT_OR_AT.search(text) is not None


def _ends_sentence(text: str) -> bool:
    return text.rstrip().rstrip("\"')").endswith((".", "?", "!"))


class Transcript:
    """Committed words by global index (``base`` + list position), bounded."""

    def __init__(self, substitution: str, right_context: int, left_context: int = 24) -> None:
        self.substitution = substitution
        self.right_context = right_context
        self.left_context = left_context
        self._words: list[Word] = []
        self._base = 0
        self._labels: dict[int, Label] = {}
        # Labels given to words of a hypothesis, by time: (start, end, label).
        self._heard_labels: list[tuple[int, int, Label]] = []
        self._final_upto = 0
        self._ended_upto = 0  # words before this index belong to ended utterances
        self.tentative: list[Word] = []
        self._open_run: _OpenRun | None = None
        self.final_words = 0
        self.redactions = 0

    @property
    def total(self) -> int:
        return self._base + len(self._words)

    def take(self, update: AsrUpdate) -> None:
        self._words.extend(update.committed)
        self.tentative = update.tentative
        if update.utterance_ended:
            self._ended_upto = self.total

    def window(self, with_tentative: bool) -> tuple[list[Word], int, int]:
        """Detector input: (words, global index of words[0], how many are committed).

        Left context reaches back into final words so that a value's context
        ("my card number is ...") still counts after its sentence was emitted.
        """
        first = max(self._final_upto - self.left_context, self._base)
        words = self._words[first - self._base :]
        n_committed = len(words)
        if with_tentative:
            words = words + self.tentative
        return words, first, n_committed

    def relabel(self, first: int, n_committed: int, spans: Sequence[WordSpan],
                words: Sequence[Word] = ()) -> None:
        """Label the committed words in a detector window (``words``: the window,
        committed then tentative; only needed for spans over tentative words).

        A label is never taken back, only replaced by another: the audio plan keeps
        every range it was given (fail closed), so a word whose audio was masked
        for an earlier window's span must not come out in clear because a later
        window, with more words after it, found nothing there ("The last four or
        51-36." masked, then "… 51-36. or" judged a list). Text and audio agree.
        For the same reason a span over words of the hypothesis is remembered by
        time: the audio under it is masked at once, and the words committed there
        later ("3 -5 cameras" heard, "3 5 7 7." committed and judged plain, as
        "in" before a number reads as a time) carry its label.
        """
        # Where spans of different entities overlap, a word takes the label of the
        # surest span, and of the longer one on a tie: "Michael.Johnson at
        # example.com" is one email, not a name and an email.
        for span in sorted(spans, key=lambda s: (s.score, s.last - s.first)):
            label = (span.entity, span.score, span.reason)
            for i in range(span.first, min(span.last, n_committed)):
                self._labels[first + i] = label
            heard = words[max(span.first, n_committed) : span.last]
            if heard:
                self._heard_labels.append((heard[0].start, max(w.end for w in heard), label))
        del self._heard_labels[:-_MAX_HEARD_LABELS]
        for i in range(max(first, self._final_upto), first + n_committed):
            if i not in self._labels and (heard_label := self._heard_label(i)) is not None:
                self._labels[i] = heard_label

    def _heard_label(self, i: int) -> Label | None:
        """The surest label heard over most of committed word ``i``'s time."""
        w = self._words[i - self._base]
        length = max(1, w.end - w.start)
        best: Label | None = None
        for start, end, label in self._heard_labels:
            overlap = min(end, max(w.end, w.start + 1)) - max(start, w.start)
            if 2 * overlap >= length and (best is None or label[1] > best[1]):
                best = label
        return best

    def render(self, masked: Callable[[Word], bool]) -> list[dict[str, Any]]:
        """Events for what became final since last time, then the partial."""
        events: list[dict[str, Any]] = []
        final_to = self._final_boundary()
        if final_to > self._final_upto:
            idx = range(self._final_upto, final_to)
            words = [self._words[i - self._base] for i in idx]
            labels = [self._labels.get(i) for i in idx]
            self._final_upto = final_to
            events += self._final_events(words, labels, idx.start)
            self._trim()
        pending = self._words[self._final_upto - self._base :]
        labels = [self._labels.get(i) for i in range(self._final_upto, self.total)]
        shown = [self._partial_word(w, lab, masked) for w, lab in zip(pending, labels, strict=True)]
        shown += [self._partial_word(w, None, masked) for w in self.tentative]
        if shown:
            span = pending + self.tentative
            events.append({"type": "transcript.partial", "is_final": False,
                           "text": "".join(shown).strip(),
                           "start": samples_to_seconds(span[0].start),
                           "end": samples_to_seconds(span[-1].end)})
        return events

    def _final_boundary(self) -> int:
        total = self.total
        final_to = max(self._final_upto, self._ended_upto)
        known = total + len(self.tentative)
        while final_to < total:
            needs = self._needs_after(final_to)
            if needs and not (final_to + 1 < total and final_to + needs < known):
                break
            final_to += 1
        # Never between the pieces of one written word ("555" | "-0175"): a
        # client joins finals with a space.
        floor = max(self._final_upto, self._ended_upto)
        while final_to > floor and self._continues_word(final_to):
            final_to -= 1
        return final_to

    def _known_text(self, i: int) -> str | None:
        """Committed word ``i``'s text; past the committed, the first tentative
        word's (the latest hypothesis of what follows); None if nothing is known."""
        if i < self.total:
            return self._words[i - self._base].text
        return self.tentative[0].text if self.tentative else None

    def _continues_word(self, i: int) -> bool:
        """Whether word ``i`` (or the first tentative one, past the committed) is
        written on to the word before it, with no space."""
        text = self._known_text(i)
        return text is not None and text != "" and not text[0].isspace()

    def _needs_after(self, i: int) -> int:
        """Committed words that must follow word ``i`` before it can be final.

        A word that may extend an entity waits for ``right_context`` words,
        unless the detector has labelled it already: it is shown masked whatever
        comes after it (more context can only widen the span, which reaches the
        client as the span's next words). A plain word is final as soon as the
        word after it is known not to make it part of an entity: the next
        committed word or, failing that, the first tentative one (the latest
        hypothesis of what follows). This saves a Whisper pass for the last word
        each pass commits, and a plain word before a number ("is 4111 ...") does
        not wait for the whole number to be said and agreed on — unless a value
        comes just before it too ("36 do 1421": a misheard word inside a number).
        """
        word = self._words[i - self._base].text
        if may_extend_entity(word, self._starts_sentence(i)):
            return 0 if i in self._labels else self.right_context
        nxt = self._known_text(i + 1)
        if nxt is None:
            return 1  # nothing known after it yet
        if not may_extend_entity(nxt, _ends_sentence(word)):
            return 0
        if may_open_entity(word, nxt) or self._after_value(i):
            return self.right_context
        return 0

    def _starts_sentence(self, i: int) -> bool:
        """Word ``i`` opens its utterance or follows a sentence's end."""
        if i == self._ended_upto or i == 0:
            return True
        if i - 1 < self._base:
            return False  # the word before is trimmed: not known to end a sentence
        return _ends_sentence(self._words[i - 1 - self._base].text)

    def _after_value(self, i: int) -> bool:
        """Whether the word before ``i`` is labelled or may extend an entity."""
        if i - 1 < self._base:
            return False
        return i - 1 in self._labels or may_extend_entity(
            self._words[i - 1 - self._base].text, self._starts_sentence(i - 1))

    def _partial_word(self, w: Word, label: Label | None, masked: Callable[[Word], bool]) -> str:
        # Partials are masked conservatively: any digit or '@', and any word
        # whose audio is masked, even before the detector is sure.
        if label is None and (shown_masked_while_partial(w.text) or masked(w)):
            label = ("REDACTED", 0.0, "partial")
        return substitute(w.text, label[0], self.substitution) if label else w.text

    def _final_events(
        self, words: list[Word], labels: list[Label | None], first_index: int
    ) -> list[dict[str, Any]]:
        out_words, parts = [], []
        run = self._open_run
        prev: str | None = run.entity if run is not None else None
        for w, lab in zip(words, labels, strict=True):
            entity = lab[0] if lab else None
            shown = substitute(w.text, entity, self.substitution) if entity else w.text
            # entity_name: one [ENTITY] per run of words, across events.
            if not (entity and self.substitution == "entity_name" and entity == prev):
                parts.append(shown)
            prev = entity
            out_words.append({"text": shown.strip(), "start": samples_to_seconds(w.start),
                              "end": samples_to_seconds(w.end), "redacted": entity is not None,
                              "entity": entity, "confidence": round(w.probability, 3)})
        self.final_words += len(words)
        # Its text continues the last one's: with entity_name, words that carry on a
        # span already shown add no token (the text may then be empty).
        events: list[dict[str, Any]] = [{
            "type": "transcript.final", "is_final": True, "text": "".join(parts).strip(),
            "start": samples_to_seconds(words[0].start),
            "end": samples_to_seconds(words[-1].end), "words": out_words,
        }]
        # One redaction event per run of words with the same entity, timed like its
        # audio mask (between the kept neighbours, never zero-length), once the run
        # is over: a later word is final, or its utterance ended.
        for i, (w, lab) in enumerate(zip(words, labels, strict=True)):
            if run is not None and (lab is None or lab[0] != run.entity):
                events.append(self._redaction_event(run, w.start))
                run = None
            if lab is None:
                continue
            if run is None:
                run = _OpenRun(lab[0], w.start, w.end, lab[1], [lab[2]],
                               self._neighbour_end(first_index + i))
            else:
                run.end = max(run.end, w.end)
                run.score = max(run.score, lab[1])
                run.reasons.append(lab[2])
        if run is not None and first_index + len(words) <= self._ended_upto:
            events.append(self._redaction_event(run, self._neighbour_start(
                first_index + len(words) - 1)))
            run = None
        self._open_run = run
        return events

    def _redaction_event(self, run: _OpenRun, after_start: int | None) -> dict[str, Any]:
        self.redactions += 1
        start, end = cover_words(run.start, run.end, run.before_end, after_start)
        return {"type": "redaction", "entity": run.entity,
                "start": samples_to_seconds(start), "end": samples_to_seconds(end),
                "score": round(run.score, 3),
                "reason": "detector" if "detector" in run.reasons else run.reasons[0]}

    def _neighbour_end(self, index: int) -> int | None:
        """End of the committed word before global ``index``, if it is kept."""
        k = index - 1 - self._base
        return self._words[k].end if 0 <= k < len(self._words) else None

    def _neighbour_start(self, index: int) -> int | None:
        """Start of the committed (or first tentative) word after global ``index``."""
        k = index + 1 - self._base
        if 0 <= k < len(self._words):
            return self._words[k].start
        return self.tentative[0].start if self.tentative else None

    def _trim(self) -> None:
        # A hypothesis label over final words only can label nothing any more (read
        # before the trim: with no left context the last final word goes too).
        final_end = self._words[self._final_upto - 1 - self._base].end
        self._heard_labels = [h for h in self._heard_labels if h[1] > final_end]
        keep_from = self._final_upto - self.left_context
        drop = keep_from - self._base
        if drop > 64:
            del self._words[:drop]
            self._labels = {k: v for k, v in self._labels.items() if k >= keep_from}
            self._base = keep_from
