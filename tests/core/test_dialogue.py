"""Dialogue state: a question for a value arms the answer that follows (pure)."""

from __future__ import annotations

import pytest

from streamserver.core.dialogue import CONTEXT_REASON, DialogueState, find_requests
from streamserver.core.pii.entities import DEFAULT_ENTITIES
from streamserver.core.types import Word

RATE = 16_000


def words_at(text: str, start_s: float = 0.0, step_s: float = 0.3,
             probability: float = 0.9) -> list[Word]:
    """Words of ``text`` one after another, ``step_s`` each."""
    out = []
    t = int(start_s * RATE)
    step = int(step_s * RATE)
    for w in text.split():
        out.append(Word(" " + w, t, t + step - 800, probability, True))
        t += step
    return out


def masked_texts(state: DialogueState, words: list[Word], channel: int | None = None) -> list[str]:
    spans = state.answer_spans(words, channel)
    assert all(s.reason == CONTEXT_REASON for s in spans)
    return [w.text.strip() for s in spans for w in words[s.first : s.last]]


@pytest.mark.parametrize(("question", "entity"), [
    ("And for verification, can I get the last four of your social?", "US_SSN"),
    ("What's the zip code on the account?", "ZIP_CODE"),
    ("Could you spell your last name for me?", "PERSON"),
    ("What email should I send it to?", "EMAIL_ADDRESS"),
    ("Who am I speaking with?", "PERSON"),
    ("Go ahead with the card number.", "CREDIT_CARD"),
    ("Can you confirm the last four of the card?", "CREDIT_CARD"),
    ("And your date of birth?", "DATE_OF_BIRTH"),
    ("What's the best number to reach you?", "PHONE_NUMBER"),
    ("what's the name on the card", "PERSON"),  # the first cue said wins
    ("could i get your member id please", "ACCOUNT_NUMBER"),
])
def test_requests_name_the_value_asked_for(question: str, entity: str) -> None:
    requests = find_requests(words_at(question), DEFAULT_ENTITIES)
    assert [r.entity for r in requests] == [entity]


@pytest.mark.parametrize("remark", [
    "I lost my card yesterday.",
    "How many items were in the order?",
    "Okay, the total last four two and I paid it on Monday.",
    "The price is twelve dollars.",
    "I don't have my card with me, can you look it up?",
])
def test_remarks_and_other_questions_arm_nothing(remark: str) -> None:
    assert find_requests(words_at(remark), DEFAULT_ENTITIES) == []


def test_entity_not_in_the_policy_is_not_armed() -> None:
    assert find_requests(words_at("What's your social?"), ["PERSON"]) == []


def test_answer_without_cue_is_masked_as_the_armed_entity() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("can I get the last four of your social? uh, yeah, it's 9 8 1 7")
    state.observe(words)
    spans = state.answer_spans(words)
    assert [s.entity for s in spans] == ["US_SSN"]
    assert masked_texts(state, words) == ["9", "8", "1", "7"]
    assert state.armed_count == 1


def test_garbled_digits_and_unsure_words_count() -> None:
    """'one night for a six': number words, homophones and what Whisper was unsure of."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = [*words_at("what's the zip code on the account?"),
             Word(" one", 48000, 52000, 0.9), Word(" night", 52000, 56000, 0.9),
             Word(" for", 56000, 60000, 0.9), Word(" a", 60000, 62000, 0.9),
             Word(" six", 62000, 66000, 0.9), Word(" blorp", 66000, 70000, 0.2)]
    state.observe(words)
    assert masked_texts(state, words) == ["one", "night", "for", "a", "six", "blorp"]


@pytest.mark.parametrize(("said", "masked"), [
    # "eight thousand" heard as "a mirror, mirror, mirror": no digit, no homophone.
    ("can I get the last four of your social? A mirror, mirror, mirror.",
     ["mirror,", "mirror,", "mirror."]),
    # The value's start garbled into words, its end heard: masked from the start.
    ("go ahead with the card number. Kill all done L-486", ["Kill", "all", "done", "L-486"]),
    # Small talk before the value is no part of it.
    ("what's the zip code on the account? uh, yeah, sure, it's 9 8 1 7", ["9", "8", "1", "7"]),
])
def test_an_answer_is_masked_from_its_first_word_that_is_not_small_talk(
        said: str, masked: list[str]) -> None:
    """A request says a value comes: the answer's first word that is not small talk
    ("uh", "sure", "it's") starts the mask, however Whisper wrote it."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(said)
    state.observe(words)
    assert masked_texts(state, words) == masked


def test_a_follow_up_question_in_the_window_is_no_answer() -> None:
    """A second question (garbled or not) while the first is armed is the asking
    party's: its words start no answer; the digits after it do."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("which card would you like to use? can you read me the last four "
                     "digits? go ahead whenever ready. 4 1 2 1")
    state.observe(words)
    assert masked_texts(state, words) == ["4", "1", "2", "1"]


def test_a_wish_is_no_request_and_an_unframed_cue_arms_only_values() -> None:
    """"I need to update my account" asks nothing; a sentence that only ends on a
    cue ("... the street address.", a garbled question, or a remark) arms the
    answer's value-like words, not every word."""
    assert find_requests(words_at("I need to update something on my account."),
                         DEFAULT_ENTITIES) == []
    (request,) = find_requests(words_at("I need your date of birth."), DEFAULT_ENTITIES)
    assert request.framed
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("I'm going to walk the street address. sure, twelve oh four main")
    state.observe(words)
    assert [r.framed for r in find_requests(words, DEFAULT_ENTITIES)] == [False]
    assert masked_texts(state, words) == ["twelve", "oh", "four", "main"]


def test_a_cue_then_please_is_a_request() -> None:
    (request,) = find_requests(words_at("And the service address, please."), DEFAULT_ENTITIES)
    assert request.entity == "LOCATION" and request.framed


@pytest.mark.parametrize("said", [
    "Okay and the card number please. Yeah it's four one one one",
    "can I get the last four of your social? four one one one",
])
def test_four_is_a_digit_unless_it_is_part_of_the_cue(said: str) -> None:
    """"four" is a cue word ("the last four") and a digit: as the answer's first
    digit it is masked with the rest."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(said)
    state.observe(words)
    assert masked_texts(state, words)[-4:] == ["four", "one", "one", "one"]


def test_a_number_word_ending_the_question_is_not_its_answer() -> None:
    """"What's the house number and three[street]": a hypothesis of the question
    with a number word in it must not count as the answer given in the question's
    own utterance, which would close the window before the real answer."""
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("What's the house number and three")
    state.observe(question)
    state.utterance_ended(question[0].start, question[-1].end)
    answer = words_at("All right, 82 Harmon Road.", start_s=3.0)
    state.observe(question + answer)
    assert "82" in masked_texts(state, question + answer)


def test_an_acknowledgement_after_a_request_starts_no_answer() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("what's the best number to reach you? okay, thank you")
    state.observe(words)
    assert masked_texts(state, words) == []


def test_spelled_name_and_spoken_email() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("could you spell your last name for me? D E L G A D O")
    state.observe(words)
    assert masked_texts(state, words) == list("DELGADO")
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("what email should I send it to? yolanda dot castillo at yahoo dot com")
    state.observe(words)
    assert masked_texts(state, words) == ["yolanda", "dot", "castillo", "at", "yahoo", "dot", "com"]


@pytest.mark.parametrize("decline", [
    "Hmm, I'd have to go find it.",
    "Uh, I don't know it offhand, sorry.",
    "I'd have to look it up, it's not on me.",
])
def test_a_decline_masks_nothing_even_though_any_word_may_start_an_answer(decline: str) -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(f"What's the card number? {decline}")
    state.observe(words)
    assert masked_texts(state, words) == []


def test_a_clear_decline_closes_the_window() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("go ahead with the card number. no I don't have it with me, sorry "
                     "it was 4 pm")
    state.observe(words)
    assert state.answer_spans(words) == []
    (window,) = state.windows
    assert window.end <= words[-4].start


def test_window_is_bounded_in_time() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("what's your social?")
    late = words_at("it was 4 5 6", start_s=30.0)
    state.observe(question + late)
    assert state.answer_spans(question + late) == []


def test_the_answer_utterance_ending_closes_the_window_after_a_grace() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("what's your social?")
    answer = words_at("uh it's 1 2 3 4", start_s=2.0)
    state.observe(question + answer)
    state.utterance_ended(int(1.9 * RATE), int(3.6 * RATE))
    (window,) = state.windows
    assert window.answered
    assert window.end == int(3.6 * RATE) + int(0.6 * RATE)
    later = words_at("and 5 6", start_s=6.0)
    state.observe(question + answer + later)
    assert masked_texts(state, question + answer + later) == ["1", "2", "3", "4"]


def test_fillers_only_do_not_count_as_the_answer() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("go ahead with the card number")
    hold = words_at("hold on let me see", start_s=2.0)
    state.observe(question + hold)
    state.utterance_ended(int(2.0 * RATE), int(3.5 * RATE))
    (window,) = state.windows
    assert not window.answered
    digits = words_at("4 1 1 1", start_s=6.0)
    state.observe(question + hold + digits)
    assert masked_texts(state, question + hold + digits) == ["4", "1", "1", "1"]


def test_an_acknowledgement_ends_the_answer() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("what's the zip code? 1 9 4 6 2 great and how many items was it, four?")
    state.observe(words)
    assert masked_texts(state, words) == ["1", "9", "4", "6", "2"]


def test_a_new_request_ends_the_previous_window() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("what's your social? 1 2 3 4 and could you spell your last name? "
                     "B O")
    state.observe(words)
    spans = state.answer_spans(words)
    assert [(s.entity, s.last - s.first) for s in spans] == [("US_SSN", 4), ("PERSON", 2)]


def test_question_on_one_channel_arms_the_other() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("what's your social?")
    state.observe(question, channel=0)
    answer = words_at("9 8 1 7", start_s=2.0)
    assert masked_texts(state, answer, channel=1) == ["9", "8", "1", "7"]
    assert state.answer_spans(answer, channel=0) == []  # the asker's own words
    assert state.armed_ranges(0, 10 * RATE, channel=0) == []
    ((lo, hi, entity),) = state.armed_ranges(0, 10 * RATE, channel=1)
    assert entity == "US_SSN" and lo == question[-1].end < hi


def test_only_the_answering_channel_ends_the_window() -> None:
    """The asker going on talking (agent channel) is not the caller's answer."""
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("what's your social?")
    state.observe(question, channel=0)
    state.observe(words_at("take your time", start_s=1.5), channel=0)
    state.utterance_ended(int(1.4 * RATE), int(3.0 * RATE), channel=0)
    (window,) = state.windows
    assert not window.answered and window.end == window.limit
    # ... nor does an asker's "no I don't have it" (only the answering party declines).
    state.observe(question + words_at("no I don't have it", start_s=3.2), channel=0)
    assert not window.closed
    answer = words_at("uh it's 9 8 1 7", start_s=5.0)
    state.observe(answer, channel=1)
    state.utterance_ended(int(4.9 * RATE), int(6.3 * RATE), channel=1)
    assert window.answered and window.end == int(6.3 * RATE) + int(0.6 * RATE)
    assert masked_texts(state, answer, channel=1) == ["9", "8", "1", "7"]


def test_a_request_seen_again_in_later_passes_arms_once() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("what's your social?")
    for shift in (0, 800, 1600):  # word times move a little between passes
        state.observe([Word(w.text, w.start + shift, w.end + shift) for w in words])
    assert state.armed_count == 1 and len(state.windows) == 1


def test_windows_are_forgotten_once_released() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    state.observe(words_at("what's your social?"))
    state.forget_before(60 * RATE)
    assert state.windows == ()


def test_a_weak_follow_up_refines_the_request_before_it() -> None:
    """'Which card is it? Can you read me the last four digits?' asks for the card."""
    state = DialogueState(DEFAULT_ENTITIES)
    state.observe(words_at("which card is it? can you read me the last four digits?"))
    assert [w.entity for w in state.windows] == ["CREDIT_CARD", "CREDIT_CARD"]
    assert state.windows[0].closed


def test_a_value_said_after_a_pause_extends_the_answer() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    question = words_at("can you read me the membership number?")
    first = words_at("C C", start_s=3.0)
    state.observe(question + first)
    state.utterance_ended(int(2.9 * RATE), int(3.8 * RATE))
    (window,) = state.windows
    assert window.answered and window.end == int(3.8 * RATE) + int(0.6 * RATE)
    rest = words_at("6 4 1 5 2 8", start_s=4.2)
    state.observe(question + first + rest)
    state.utterance_ended(int(4.1 * RATE), int(6.4 * RATE))
    assert window.end == int(6.4 * RATE) + int(0.6 * RATE)
    assert masked_texts(state, question + first + rest) == ["C", "C", *"641528"]


def _armed(state: DialogueState, words: list[Word], channel: int | None = None
           ) -> list[tuple[float, float, str]]:
    return [(round(lo / RATE, 2), round(hi / RATE, 2), e)
            for lo, hi, e in state.armed_ranges(0, 60 * RATE, channel)]


@pytest.mark.parametrize(("greeting", "name"), [
    ("Thank you for calling Northwind support. This is Leah. How can I help you?", ["Leah."]),
    ("Hi, you've reached billing, my name is Marcus, how can I help?", ["Marcus,"]),
    ("Thank you for calling Northwind support. This is three. How can I help you?",
     ["three."]),  # a name the phone line turned into a number word
    ("Hi there, my name is Tobias Vasquez and I'm calling about my bill",
     ["Tobias", "Vasquez"]),
])
def test_a_speaker_saying_their_own_name_masks_it(greeting: str, name: list[str]) -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(greeting)
    state.observe(words)
    assert masked_texts(state, words) == name


def test_a_dropped_name_in_a_greeting_is_armed_speech() -> None:
    """'This is [name Whisper dropped] how can I help you': the gap is armed."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("Thank you for calling support. This is")
    words += words_at("how can I help you?", start_s=words[-1].end / RATE + 0.8)
    state.observe(words)
    assert masked_texts(state, words) == []
    (armed,) = _armed(state, words)
    gap = (round(words[6].end / RATE, 2), round(words[7].start / RATE, 2), "PERSON")
    assert armed == gap  # exactly the speech between "is" and "how"


@pytest.mark.parametrize("remark", [
    "This is the third time I have called about it.",
    "this is great, thanks",
    "I think this is wrong on my bill",
    "Sorry, I was speaking to my husband.",
    "Generally speaking the bill is higher in winter.",
    "Do you have a Spanish speaking agent?",
])
def test_this_is_outside_a_greeting_arms_nothing(remark: str) -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(remark)
    state.observe(words)
    assert masked_texts(state, words) == [] and _armed(state, words) == []


def test_an_introduction_arms_the_speakers_own_channel() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("Thanks for calling, this is Dana, how can I help?")
    state.observe(words, channel=0)
    assert masked_texts(state, words, channel=0) == ["Dana,"]
    assert _armed(state, words, channel=1) == []


def test_a_name_whisper_folded_into_the_word_before_is_masked_with_it() -> None:
    """'This is [Dana] how can I help you': no name written, "is" stretched over it."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("Thank you for calling support. This is how can I help you?")
    stretched = words[6]
    words[6] = Word(stretched.text, stretched.start, stretched.start + int(0.7 * RATE),
                    stretched.probability, True)
    for k in range(7, len(words)):
        w = words[k]
        words[k] = Word(w.text, w.start + int(0.5 * RATE), w.end + int(0.5 * RATE),
                        w.probability, True)
    state.observe(words)
    assert masked_texts(state, words) == ["is"]
    normal = words_at("Thank you for calling support. This is how can I help you?")
    fresh = DialogueState(DEFAULT_ENTITIES)
    fresh.observe(normal)
    assert masked_texts(fresh, normal) == []  # an ordinary "is": nothing folded into it


def test_an_unsure_common_word_after_this_is_is_a_name() -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("Thanks for calling, this is three. How can I help you?")
    words[5] = Word(words[5].text, words[5].start, words[5].end, 0.3, True)
    state.observe(words)
    assert masked_texts(state, words) == ["three."]


# ------------------------------------------------ "my number is ...": declarations

@pytest.mark.parametrize(("said", "entity"), [
    ("and my number is", "PHONE_NUMBER"),
    ("my cell phone number is", "PHONE_NUMBER"),
    ("okay my card number is", "CREDIT_CARD"),
    ("our zip code is", "ZIP_CODE"),
    ("my social is", "US_SSN"),
    ("my member id is", "ACCOUNT_NUMBER"),
])
def test_a_speaker_declaring_a_value_arms_it(said: str, entity: str) -> None:
    (request,) = find_requests(words_at(said), DEFAULT_ENTITIES)
    assert request.declared and request.entity == entity


@pytest.mark.parametrize("remark", [
    "my email is",  # word values are the detector's: their words are ordinary ones
    "the card number is on the back",  # not the speaker's own
    "what is my card number",
])
def test_what_is_no_declaration(remark: str) -> None:
    assert not [r for r in find_requests(words_at(remark), DEFAULT_ENTITIES) if r.declared]


def test_digits_heard_as_words_after_a_declaration_are_masked() -> None:
    """'and my number is eight three oh' as Whisper hears it on a phone line: "A Free
    Year", the digits after it fine. Homophones and unsure words count, and speech
    with no word in the window is armed; the speaker's own channel is armed."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = [*words_at("My name is Slinger and my number is"),
             Word(" A", 40000, 44000, 0.4), Word(" Free", 44000, 48000, 0.6),
             Word(" Year", 48000, 52000, 0.3), *words_at("5 5 0 1 7 5", start_s=3.3)]
    state.observe(words, channel=1)
    spans = state.answer_spans(words, channel=1)
    by_entity = {s.entity: [w.text.strip() for w in words[s.first : s.last]] for s in spans}
    # ("A" alone is the article: masked only beside letters or digits.)
    assert by_entity == {"PHONE_NUMBER": ["Free", "Year", "5", "5", "0", "1", "7", "5"],
                         "PERSON": ["Slinger"]}  # (the introduction before it)
    assert state.armed_ranges(0, 10 * RATE, channel=0) == []
    armed = {e: lo for lo, _, e in state.armed_ranges(0, 10 * RATE, channel=1)}
    assert armed["PHONE_NUMBER"] == words[7].end  # from the end of "is"


@pytest.mark.parametrize("remark", ["my account is locked again", "my card is expired",
                                    "my phone number is changing soon"])
def test_a_declaration_followed_by_a_plain_word_closes_at_once(remark: str) -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(remark)
    state.observe(words)
    assert masked_texts(state, words) == []
    verb = next(i for i, w in enumerate(words) if w.text.strip() == "is")
    assert state.armed_ranges(0, 10 * RATE) in ([], [(words[verb].end, words[verb + 1].start,
                                                      state.windows[0].entity)])


def test_a_declared_value_ends_at_the_first_other_word() -> None:
    """"My card number is 4111 ... and it expires next year": the value is masked, not
    the rest of the sentence (an answer to a question runs on to its end instead)."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at("my card number is 4111 1111 A1 1111 and it expires next year")
    state.observe(words)
    assert masked_texts(state, words) == ["4111", "1111", "A1", "1111"]


def test_unsure_homophones_keep_a_declaration_open_and_are_masked() -> None:
    """A real-time pass over 'and my number is eight three oh ...' on a phone line:
    'my number is a free year old', every word after "is" unsure."""
    state = DialogueState(DEFAULT_ENTITIES)
    words = [*words_at("and my number is"), Word(" a", 20000, 24000, 0.4),
             Word(" free,", 24000, 28000, 0.4)]
    state.observe(words)
    (window,) = state.windows
    assert not window.closed  # an unsure word is no sure "no value" ("my card is expired")
    assert masked_texts(state, words) == ["free,"]
    words = [*words[:4], Word(" a", 20000, 24000, 0.5), Word(" free", 24000, 28000, 0.6),
             Word(" year", 28000, 32000, 0.3), Word(" old", 32000, 36000, 0.4)]
    state.observe(words)
    assert masked_texts(state, words) == ["free", "year", "old"]


# ------------------------------------------------ introductions as call centres say them

@pytest.mark.parametrize(("said", "name"), [
    # "my name is": whatever follows is the name, however garbled.
    ("Hi, you've reached billing, my name is please. How can I help?", ["please."]),
    # "my name's Leah" heard as "my name and please" (in a greeting only).
    ("Hi, you reached billing, my name and please.", ["please."]),
    ("Hello, Dana speaking, what can I do for you today?", ["Dana"]),
    ("Customer care, done a speaking. How may I help?", ["done", "a"]),
    ("Hey there, thanks for waiting, you're with Jorge.", ["Jorge."]),
    ("Thanks for calling, you're through to Marcus, how can I help?", ["Marcus,"]),
])
def test_a_greeting_introduction_masks_the_name(said: str, name: list[str]) -> None:
    state = DialogueState(DEFAULT_ENTITIES)
    words = words_at(said)
    state.observe(words)
    assert masked_texts(state, words) == name


def test_asking_for_a_name_is_no_introduction() -> None:
    """These ask for a name (the answer is armed), they introduce no one."""
    for remark in ("I need my name and address updated on the account.",
                   "Who am I speaking with?"):
        state = DialogueState(DEFAULT_ENTITIES)
        words = words_at(remark)
        state.observe(words)
        assert masked_texts(state, words) == [], remark
        assert not [w for w in state.windows if w.intro], remark
