"""Transcript finality and substitution (pure)."""

from __future__ import annotations

from streamserver.core.asr import AsrUpdate
from streamserver.core.transcript import Transcript, substitute
from streamserver.core.types import Word, WordSpan


def w(text: str, i: int) -> Word:
    return Word(text, i * 1000, i * 1000 + 900, 0.9, True)


def update(words: list[Word], tentative: list[Word] | None = None,
           ended: bool = False) -> AsrUpdate:
    return AsrUpdate(words, tentative or [], 0, ended)


def never(_: Word) -> bool:
    return False


def test_substitution_modes() -> None:
    assert substitute(" 412-555-1234,", "PHONE_NUMBER", "hash") == " ###-###-####,"
    assert substitute(" Maria", "PERSON", "entity_name") == " [PERSON]"


def test_words_become_final_with_right_context() -> None:
    t = Transcript("hash", right_context=2)
    t.take(update([w(" my", 0), w(" name", 1), w(" is", 2)]))
    events = t.render(never)
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert [x["text"] for x in finals] == ["my"]
    assert events[-1]["type"] == "transcript.partial" and events[-1]["text"] == "name is"


def test_redacted_span_is_not_split_and_yields_one_event() -> None:
    t = Transcript("entity_name", right_context=1)
    words = [w(" call", 0), w(" 412", 1), w(" 555", 2)]
    t.take(update(words))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 3, "PHONE_NUMBER", 0.8)])
    events = t.render(never)
    assert [e["text"] for e in events if e["type"] == "transcript.final"] == ["call"]
    t.take(update([w(" 1234", 3), w(" thanks", 4), w(" bye", 5)], ended=True))
    _, first, n = t.window(with_tentative=False)
    assert first == 0
    t.relabel(first, n, [WordSpan(1, 4, "PHONE_NUMBER", 0.9)])
    events = t.render(never)
    final = [e for e in events if e["type"] == "transcript.final"]
    assert final[0]["text"] == "[PHONE_NUMBER] thanks bye"
    redactions = [e for e in events if e["type"] == "redaction"]
    assert len(redactions) == 1 and redactions[0]["score"] == 0.9
    assert [x["redacted"] for x in final[0]["words"]] == [True, True, True, False, False]


def test_partials_hide_digits_and_masked_words() -> None:
    t = Transcript("hash", right_context=5)
    t.take(update([w(" my", 0), w(" pin", 1)], tentative=[w(" 4", 2), w(" Bob", 3)]))
    events = t.render(lambda word: word.text == " Bob")
    assert events[-1]["text"] == "my pin # ###"


def test_memory_stays_bounded() -> None:
    t = Transcript("hash", right_context=1, left_context=4)
    for i in range(2000):
        t.take(update([w(" word", i)]))
        t.render(never)
    assert len(t._words) < 100
