"""Transcript finality and substitution (pure)."""

from __future__ import annotations

import pytest

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


def finals(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "transcript.final"]


def test_plain_words_are_final_once_one_word_follows() -> None:
    t = Transcript("hash", right_context=3)
    t.take(update([w(" thanks", 0), w(" for", 1), w(" calling", 2)]))
    events = t.render(never)
    assert finals(events) == ["thanks for"]
    assert events[-1]["type"] == "transcript.partial" and events[-1]["text"] == "calling"


def test_words_that_may_be_an_entity_wait_for_right_context() -> None:
    t = Transcript("hash", right_context=3)
    # "4" and "oh" may belong to an entity; "is" cannot, whatever the number is.
    t.take(update([w(" my", 0), w(" number", 1), w(" is", 2), w(" 4", 3), w(" oh", 4)]))
    assert finals(t.render(never)) == ["my number is"]
    t.take(update([w(" one", 5), w(" two", 6)]))
    assert finals(t.render(never)) == ["4"]  # three words follow "4" now
    t.take(update([w(" thanks", 7), w(" Mr", 8), w(" Smith", 9), w(" bye", 10)]))
    # "Mr" still needs three words after it, so the transcript stops before it.
    assert finals(t.render(never)) == ["oh one two thanks"]
    t.take(update([w(" now", 11)], ended=True))
    assert finals(t.render(never)) == ["Mr Smith bye now"]


def test_words_a_number_may_take_in_wait_with_it() -> None:
    """"plus 44 ...", "the 4th of May", "apartment 5": the word before the number
    may become the start of its span, so it waits for right context too."""
    for opener in (" plus", " the", " apartment"):
        t = Transcript("hash", right_context=3)
        t.take(update([w(" call", 0), w(opener, 1), w(" 4", 2), w(" 4", 3)]))
        assert finals(t.render(never)) == ["call"], opener
    # A word between two parts of a value waits: "36 do 1421" is one number
    # with a misheard word in it, even once "36" is labelled and final.
    t = Transcript("hash", right_context=3)
    t.take(update([w(" is", 0), w(" 36", 1), w(" do", 2), w(" 1421", 3), w(" 5", 4)]))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 2, "ACCOUNT_NUMBER", 0.6)])
    assert finals(t.render(never)) == ["is ##"]
    # A plain word the detector labelled on the way still waits for context: the
    # span may yet be widened or relabelled as more words come ("this is" before a
    # name); a label is never taken back.
    t = Transcript("hash", right_context=3)
    t.take(update([w(" so", 0), w(" is", 1), w(" Bianca.", 2)]))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 3, "PERSON", 0.5)])
    assert finals(t.render(never)) == ["so"]
    # Before a capitalised word any word waits ("van Dyke", "next Tuesday").
    t = Transcript("hash", right_context=3)
    t.take(update([w(" meet", 0), w(" van", 1), w(" Dyke", 2), w(" today", 3)]))
    assert finals(t.render(never)) == ["meet"]


def test_a_function_word_capitalised_by_its_sentence_is_plain() -> None:
    t = Transcript("hash", right_context=3)
    t.take(update([w(" thanks.", 0), w(" So", 1), w(" I'm", 2), w(" calling", 3)],
                  tentative=[w(" about", 4)]))
    # "So" opens a sentence and "I'm" is capitalised wherever it stands.
    assert finals(t.render(never)) == ["thanks. So I'm calling"]
    t = Transcript("hash", right_context=3)
    t.take(update([w(" thanks.", 0), w(" The", 1), w(" bill", 2)], tentative=[w(" is", 3)]))
    assert finals(t.render(never)) == ["thanks. The bill"]
    # Mid-sentence, a capitalised word may be a name ("ask So Yeon"): it waits,
    # and so does the word before it.
    t = Transcript("hash", right_context=3)
    t.take(update([w(" ask", 0), w(" So", 1), w(" Yeon", 2)]))
    assert finals(t.render(never)) == []
    # "Will" and "May" may be names or a month even when they open a sentence.
    t = Transcript("hash", right_context=3)
    t.take(update([w(" thanks.", 0), w(" May", 1), w(" is", 2)], tentative=[w(" it", 3)]))
    assert finals(t.render(never)) == ["thanks."]


def test_the_hypothesis_tail_counts_as_right_context() -> None:
    t = Transcript("hash", right_context=3)
    t.take(update([w(" thanks", 0), w(" so", 1)], tentative=[w(" much", 2)]))
    # "so" is followed by a plain tentative word: final without waiting a pass.
    assert finals(t.render(never)) == ["thanks so"]
    t.take(update([w(" call", 3), w(" 4", 4)], tentative=[w(" 1", 5), w(" 2", 6)]))
    # Three words are known after "call" (before a number), one committed;
    # "4" has three only with the tentative ones and none committed: it waits.
    assert finals(t.render(never)) == ["call"]
    t.take(update([w(" 1", 5)], tentative=[w(" 2", 6), w(" 5", 7)]))
    assert finals(t.render(never)) == ["4"]


def test_email_words_wait_for_their_joiners() -> None:
    t = Transcript("hash", right_context=3)
    t.take(update([w(" write", 0), w(" to", 1), w(" jane", 2), w(" dot", 3)]))
    # "jane" comes before a joiner: held with "dot" until three words follow it.
    assert finals(t.render(never)) == ["write to"]


def test_labelled_words_are_final_at_once_and_a_span_yields_one_event() -> None:
    """A labelled word is shown masked whatever follows, so it need not wait for
    right context; the span's token (entity_name) and its redaction event still
    come once, the event when the span is over."""
    t = Transcript("entity_name", right_context=3)
    words = [w(" call", 0), w(" 412", 1), w(" 555", 2)]
    t.take(update(words))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 3, "PHONE_NUMBER", 0.8)])
    events = t.render(never)
    assert finals(events) == ["call [PHONE_NUMBER]"]
    assert not [e for e in events if e["type"] == "redaction"]  # the span may go on
    t.take(update([w(" 1234", 3), w(" thanks", 4), w(" bye", 5)], ended=True))
    _, first, n = t.window(with_tentative=False)
    assert first == 0
    t.relabel(first, n, [WordSpan(1, 4, "PHONE_NUMBER", 0.9)])
    events = t.render(never)
    final = [e for e in events if e["type"] == "transcript.final"]
    # "1234" carries on the span already shown: no second token.
    assert final[0]["text"] == "thanks bye"
    assert [x["redacted"] for x in final[0]["words"]] == [True, False, False]
    redactions = [e for e in events if e["type"] == "redaction"]
    assert len(redactions) == 1 and redactions[0]["score"] == 0.9
    # The event covers the whole span, "412" to "1234", up to the kept neighbours.
    assert redactions[0]["start"] <= 1000 / 16000 and redactions[0]["end"] >= 3900 / 16000
    assert t.redactions == 1


def test_a_final_never_ends_inside_a_written_word() -> None:
    t = Transcript("hash", right_context=3)
    t.take(update([w(" call", 0), w(" 555", 1), w("-0175", 2)], tentative=[w(" now", 3)]))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 2, "PHONE_NUMBER", 0.8)])
    # "555" is labelled and "-0175" not yet: "555" waits for the piece it is
    # written with, so no final ends between "555" and "-0175".
    assert finals(t.render(never)) == ["call"]
    t.relabel(first, n, [WordSpan(1, 3, "PHONE_NUMBER", 0.8)])
    assert finals(t.render(never)) == ["###-####"]


def test_a_span_at_the_end_of_its_utterance_is_reported_with_it() -> None:
    t = Transcript("hash", right_context=3)
    t.take(update([w(" I'm", 0), w(" Maria", 1)], ended=True))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 2, "PERSON", 0.85)])
    events = t.render(never)
    assert finals(events) == ["I'm #####"]
    (redaction,) = [e for e in events if e["type"] == "redaction"]
    assert redaction["entity"] == "PERSON"


def test_partials_hide_digits_and_masked_words() -> None:
    t = Transcript("hash", right_context=5)
    t.take(update([], tentative=[w(" my", 0), w(" pin", 1), w(" 4", 2), w(" Bob", 3)]))
    events = t.render(lambda word: word.text == " Bob")
    assert events[-1]["text"] == "my pin # ###"


def test_memory_stays_bounded() -> None:
    t = Transcript("hash", right_context=1, left_context=4)
    for i in range(2000):
        t.take(update([w(" word", i)]))
        t.render(never)
    assert len(t._words) < 100


def test_a_name_inside_an_email_is_labelled_as_the_email() -> None:
    t = Transcript("entity_name", right_context=1)
    words = [w(" to", 0), w(" Michael", 1), w(".Johnson", 2), w(" at", 3), w(" example.com", 4)]
    t.take(update(words, ended=True))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 3, "PERSON", 0.9), WordSpan(1, 5, "EMAIL_ADDRESS", 0.9)])
    events = t.render(never)
    assert finals(events) == ["to [EMAIL_ADDRESS]"]
    assert [e["entity"] for e in events if e["type"] == "redaction"] == ["EMAIL_ADDRESS"]


def test_a_label_is_never_taken_back_by_a_later_window() -> None:
    """The audio plan keeps every range it was given; the text keeps every label,
    so a later window that finds nothing ("… 51-36. or": a list?) cannot show in
    clear a value whose audio was masked (a real-time text leak on a phone call)."""
    t = Transcript("hash", right_context=3)
    t.take(update([w(" four", 0), w(" or", 1), w(" 51", 2), w("-36.", 3)]))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(2, 4, "NUMBER_SEQUENCE", 0.6)])
    t.take(update([w(" or", 4)], ended=True))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [])
    assert finals(t.render(never)) == ["four or ##-##. or"]
    # Another label may replace it.
    t = Transcript("hash", right_context=3)
    t.take(update([w(" is", 0), w(" 4111", 1), w(" 1111", 2)]))
    _, first, n = t.window(with_tentative=False)
    t.relabel(first, n, [WordSpan(1, 2, "NUMBER_SEQUENCE", 0.6)])
    t.relabel(first, n, [WordSpan(1, 3, "CREDIT_CARD", 0.9)])
    t.take(update([], ended=True))
    events = t.render(never)
    assert [x["entity"] for x in events[0]["words"]] == [None, "CREDIT_CARD", "CREDIT_CARD"]


def at(text: str, start_ms: int, end_ms: int) -> Word:
    return Word(text, start_ms * 16, end_ms * 16, 0.9, True)


def test_words_committed_where_a_hypothesis_was_labelled_keep_its_label() -> None:
    """A span over the hypothesis masks its audio at once; the words later committed
    over that audio must not come out in clear because the window they are judged in
    finds nothing ("3 -5 cameras" heard and masked as a card, "It ends in 3 5 7 7."
    committed, "in" + four digits read as a time: the real-time text leak of a
    phone dialogue, audio fully masked, digits in the transcript)."""
    t = Transcript("hash", right_context=3)
    heard = [at(" 3", 1250, 1450), at(" -5", 1450, 1700), at(" cameras", 1700, 2400)]
    t.take(update([at(" please.", 0, 800)], heard))
    words, first, n = t.window(with_tentative=True)
    t.relabel(first, n, [WordSpan(1, 3, "CREDIT_CARD", 0.6)], words)
    said = [at(" It", 900, 1000), at(" ends", 1000, 1100), at(" in", 1100, 1200),
            at(" 3", 1250, 1450), at(" 5", 1450, 1650), at(" 7", 1700, 1900),
            at(" 7.", 1900, 2200)]
    t.take(update(said, ended=True))
    words, first, n = t.window(with_tentative=True)
    t.relabel(first, n, [], words)
    events = t.render(never)
    # "3 5" lie under the heard span; "7 7." under "cameras", which it left out.
    assert " ".join(finals(events)) == "please. It ends in # # 7 7."
    assert [e["entity"] for e in events if e["type"] == "redaction"] == ["CREDIT_CARD"]


@pytest.mark.parametrize("left_context", [0, 4])
def test_hypothesis_labels_stay_bounded_and_do_not_outlive_their_words(
        left_context: int) -> None:
    t = Transcript("hash", right_context=1, left_context=left_context)
    for i in range(500):
        t.take(update([w(" word", i)], [w(" 5", i + 1)]))
        words, first, n = t.window(with_tentative=True)
        t.relabel(first, n, [WordSpan(n, n + 1, "NUMBER_SEQUENCE", 0.6)], words)
        t.render(never)
    assert len(t._heard_labels) <= 3
