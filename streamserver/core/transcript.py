"""The text side of a session: committed words, their labels, and finality.

Words become *final* once their utterance ended or enough committed words follow
them: ``right_context`` words for a word that could still turn out to be part of
an entity (a number, a capitalised word, a letter, an email joiner; or the word
just before one); a plain word as soon as the word after it (committed, or the
first tentative one) is known to be plain as well. Plain words are then final a
pass or two sooner, and the detector still sees every risky word with its right
context before it is released. A redacted span is never cut in two.
Rendering substitutes redacted words (``hash``: one ``#`` per letter or digit,
punctuation kept; ``entity_name``: one ``[ENTITY]`` per span) and masks partials
conservatively. Pure: returns event payloads, emits nothing itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .asr import AsrUpdate
from .pii import may_extend_entity
from .redact import cover_words
from .types import Word, WordSpan, samples_to_seconds

Label = tuple[str, float, str]  # (entity, score, reason)

_HAS_DIGIT_OR_AT = re.compile(r"[\d@]")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def substitute(text: str, entity: str, mode: str) -> str:
    if mode == "entity_name":
        lead = " " if text.startswith(" ") else ""
        return f"{lead}[{entity}]"
    return _ALNUM.sub("#", text)


class Transcript:
    """Committed words by global index (``base`` + list position), bounded."""

    def __init__(self, substitution: str, right_context: int, left_context: int = 24) -> None:
        self.substitution = substitution
        self.right_context = right_context
        self.left_context = left_context
        self._words: list[Word] = []
        self._base = 0
        self._labels: dict[int, Label] = {}
        self._final_upto = 0
        self._ended_upto = 0  # words before this index belong to ended utterances
        self.tentative: list[Word] = []
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

    def relabel(self, first: int, n_committed: int, spans: Sequence[WordSpan]) -> None:
        """Replace the labels of the committed words in a detector window."""
        for i in range(first, first + n_committed):
            self._labels.pop(i, None)
        # Where spans of different entities overlap, a word takes the label of the
        # surest span, and of the longer one on a tie: "Michael.Johnson at
        # example.com" is one email, not a name and an email.
        for span in sorted(spans, key=lambda s: (s.score, s.last - s.first)):
            for i in range(span.first, min(span.last, n_committed)):
                self._labels[first + i] = (span.entity, span.score, span.reason)

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
        # Do not cut a redacted span in two: hold its words back until it is whole.
        while final_to > max(self._final_upto, self._ended_upto):
            left = self._labels.get(final_to - 1)
            right = self._labels.get(final_to)
            if left is None or (right is not None and right[0] != left[0]):
                break
            if right is None and final_to < total:
                break
            final_to -= 1
        return final_to

    def _needs_after(self, i: int) -> int:
        """Committed words that must follow word ``i`` before it can be final.

        A plain word is final as soon as the word after it is known to be plain
        too: the next committed word or, failing that, the first tentative one
        (the latest hypothesis of what follows). This saves a Whisper pass for
        the last word each pass commits.
        """
        word = self._words[i - self._base].text
        if may_extend_entity(word):
            return self.right_context
        if i + 1 < self.total:
            nxt = self._words[i + 1 - self._base].text
        elif self.tentative:
            nxt = self.tentative[0].text
        else:
            return 1  # nothing known after it yet
        return self.right_context if may_extend_entity(nxt) else 0

    def _partial_word(self, w: Word, label: Label | None, masked: Callable[[Word], bool]) -> str:
        # Partials are masked conservatively: any digit or '@', and any word
        # whose audio is masked, even before the detector is sure.
        if label is None and (_HAS_DIGIT_OR_AT.search(w.text) or masked(w)):
            label = ("REDACTED", 0.0, "partial")
        return substitute(w.text, label[0], self.substitution) if label else w.text

    def _final_events(
        self, words: list[Word], labels: list[Label | None], first_index: int
    ) -> list[dict[str, Any]]:
        out_words, parts = [], []
        prev: str | None = None
        for w, lab in zip(words, labels, strict=True):
            entity = lab[0] if lab else None
            shown = substitute(w.text, entity, self.substitution) if entity else w.text
            # entity_name: one [ENTITY] token per run of words.
            if not (entity and self.substitution == "entity_name" and entity == prev):
                parts.append(shown)
            prev = entity
            out_words.append({"text": shown.strip(), "start": samples_to_seconds(w.start),
                              "end": samples_to_seconds(w.end), "redacted": entity is not None,
                              "entity": entity, "confidence": round(w.probability, 3)})
        self.final_words += len(words)
        events: list[dict[str, Any]] = [{
            "type": "transcript.final", "is_final": True, "text": "".join(parts).strip(),
            "start": samples_to_seconds(words[0].start),
            "end": samples_to_seconds(words[-1].end), "words": out_words,
        }]
        # One redaction event per run of words with the same entity, timed like its
        # audio mask (between the kept neighbours, never zero-length).
        i = 0
        while i < len(words):
            lab = labels[i]
            if lab is None:
                i += 1
                continue
            j, score, reasons = i, lab[1], {lab[2]}
            while j + 1 < len(words) and (nxt := labels[j + 1]) is not None and nxt[0] == lab[0]:
                j += 1
                score = max(score, nxt[1])
                reasons.add(nxt[2])
            self.redactions += 1
            start, end = cover_words(words[i].start, max(w.end for w in words[i : j + 1]),
                                     self._neighbour_end(first_index + i),
                                     self._neighbour_start(first_index + j))
            events.append({"type": "redaction", "entity": lab[0],
                           "start": samples_to_seconds(start), "end": samples_to_seconds(end),
                           "score": round(score, 3),
                           "reason": "detector" if "detector" in reasons else lab[2]})
            i = j + 1
        return events

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
        keep_from = self._final_upto - self.left_context
        drop = keep_from - self._base
        if drop > 64:
            del self._words[:drop]
            self._labels = {k: v for k, v in self._labels.items() if k >= keep_from}
            self._base = keep_from
