"""The brace notation the PII rule tests share: ``"my pin is {4421}"``.

Braces mark the words that must be flagged; a word written ``~x`` is glued to the
one before (no leading space), as Whisper sometimes writes "-5500107".
"""

from __future__ import annotations


def parse(case: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words and the half-open word ranges marked with braces."""
    words: list[str] = []
    groups: list[tuple[int, int]] = []
    start: int | None = None
    for token in case.split(" "):
        opens = token.startswith("{")
        token = token.removeprefix("{")
        closes = token.endswith("}")
        token = token.removesuffix("}")
        if opens:
            start = len(words)
        words.append(token[1:] if token.startswith("~") else " " + token)
        if closes:
            assert start is not None, case
            groups.append((start, len(words)))
            start = None
    assert start is None, case
    return words, groups
