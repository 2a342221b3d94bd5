"""Words as one text (for NER) and as tokens (for the rules), and phrase matching."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WordText:
    """The words joined into one string, with each word's character range."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def word_range(self, start: int, end: int) -> tuple[int, int] | None:
        """Words overlapping characters ``[start, end)`` as a half-open ``(first, last)``."""
        first = bisect_right(self.ends, start)
        last = bisect_left(self.starts, end)
        return (first, last) if first < last else None


def build_text(words: Sequence[str]) -> WordText:
    """Join words as Whisper wrote them (``" Michael" ".Johnson"`` -> ``" Michael.Johnson"``).

    Words that carry no leading space but start with a letter or digit get one, so a
    list of bare words (``["my", "name"]``) reads as text too.
    """
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for word in words:
        if (
            parts
            and word
            and word[0].isalnum()
            and parts[-1]
            and not parts[-1][-1].isspace()
            and parts[-1][-1] not in "@_/'"
        ):
            parts.append(" ")
            pos += 1
        starts.append(pos)
        parts.append(word)
        pos += len(word)
        ends.append(pos)
    return WordText("".join(parts), tuple(starts), tuple(ends))


EDGE_PUNCTUATION = ".,!?;:\"'()[]{}…-–—*"
_SENTENCE_END_RE = re.compile(r"[^.][.?!]$|[?!]$")


@dataclass(slots=True)
class Token:
    """One word as the rules see it."""

    raw: str  # without surrounding whitespace
    low: str
    bare: str  # lower case, edge punctuation removed
    title: bool  # starts with an upper-case letter (after edge punctuation)
    phrase_end: bool  # ends with , ; : . ? ! (a pause the ASR heard)
    sentence_end: bool  # ends with . ? ! (but not "...")


def tokenize(words: Sequence[str]) -> list[Token]:
    toks = []
    for word in words:
        raw = word.strip()
        low = raw.lower()
        bare = low.strip(EDGE_PUNCTUATION)
        core = raw.strip(EDGE_PUNCTUATION)
        title = bool(core) and core[0].isupper()
        phrase_end = bool(raw) and raw[-1] in ",;:.?!…"
        sentence_end = bool(_SENTENCE_END_RE.search(raw)) and not raw.endswith("...")
        if bare in {"mr", "mrs", "ms", "dr", "st", "no"}:
            sentence_end = False
        toks.append(Token(raw, low, bare, title, phrase_end, sentence_end))
    return toks


def ends_statement(tok: Token) -> bool:
    """Whether ``tok`` ends a sentence that is no question: a cue in a question
    reaches into its answer ("Zip code? Yeah, it's 02116"), one in a statement not."""
    return tok.sentence_end and not tok.raw.endswith("?")


def is_capital_letter(tok: Token) -> bool:
    """A single spoken capital ("W 1 2 3", "K -Shabel"); not the pronoun "I"."""
    core = tok.raw.strip(EDGE_PUNCTUATION)
    return len(core) == 1 and core.isalpha() and core.isupper() and core != "I"


def is_plain_word(bare: str) -> bool:
    """Letters only, apostrophes and hyphens aside ("o'brien", "jean-luc")."""
    return bare.replace("'", "").replace("-", "").isalpha()


def split_phrases(text: str) -> tuple[tuple[str, ...], ...]:
    """ "my name is | name's" -> (("my", "name", "is"), ("name's",))."""
    return tuple(tuple(phrase.split()) for phrase in text.split(" | "))


def phrase_at(bare: Sequence[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(bare[i : i + len(phrase)]) == phrase
