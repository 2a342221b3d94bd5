"""Two-party phone dialogues (issue 14): no repeated sentences, no lost words.

The clips (``tests/data/dialogues``, synthetic voices through an 8 kHz mu-law
channel) are ones where, before the fixes, the streamed transcript repeated
a sentence ("Could you spell your last name for me? Could you spell ...") and
a phone number lost its end. Real tiny.en, pace=asap in-process and
pace=realtime through a real server on loopback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streamserver.cli import redact_file, stream_file
from tests.dialogues import (
    Dialogue,
    as_pcm_wav,
    dialogues,
    digits_kept,
    final_text,
    repeated_phrases,
)

pytestmark = pytest.mark.e2e

CLIPS = dialogues()
# Keep the words readable in the final text (only emails are redacted): these
# tests are about the transcript itself.
PARAMS = {"entities": "EMAIL_ADDRESS"}


def final_words(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w for e in events if e["type"] == "transcript.final" for w in e["words"]]


def assert_every_turn_reached_a_final(events: list[dict[str, Any]]) -> None:
    """Each speech segment has final words, the last partial's words all became
    final, and all of it came before ``session.end`` (the last event)."""
    assert events[-1]["type"] == "session.end"
    words = final_words(events)
    assert words
    for seg in (e for e in events if e["type"] == "speech.ended"):
        inside = [w for w in words if w["end"] > seg["start"] and w["start"] < seg["end"]]
        assert inside, f"no final word for the speech at {seg['start']}-{seg['end']} s"
    partials = [e for e in events if e["type"] == "transcript.partial"]
    if partials:  # word times move by up to ~0.5 s between passes
        assert max(w["end"] for w in words) >= partials[-1]["end"] - 1.0


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: c.file)
def test_asap_dialogue_transcript_has_no_repeats_and_loses_no_turn(
        engines: Any, tmp_path: Path, clip: Dialogue) -> None:
    _, _, transcript = redact_file(as_pcm_wav(clip, tmp_path), PARAMS, engines)
    text = transcript["text"]
    assert not repeated_phrases(text, clip.text), text
    # The numbers said last, up to the end of the stream, are in the final text
    # (before the fixes: "My number is 830", the rest of it lost).
    assert digits_kept(text, clip.text) >= 0.8, text


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: c.file)
def test_realtime_dialogue_through_a_server(server, tmp_path: Path, clip: Dialogue) -> None:
    _, _, events = asyncio.run(stream_file(as_pcm_wav(clip, tmp_path), server.url,
                                           {"encoding": "pcm_s16le", **PARAMS},
                                           pace="realtime"))
    text = final_text(events)
    assert not repeated_phrases(text, clip.text), text
    assert_every_turn_reached_a_final(events)
    # Looser than asap: realtime passes see other buffers; a lost last turn
    # keeps none of its number (0.0-0.3).
    assert digits_kept(text, clip.text) >= 0.5, text
