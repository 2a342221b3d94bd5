"""Conversation-aware redaction on the session core: real VAD, scripted ASR.

The ASR is scripted to do what tiny.en does on a phone line: hear the agent's
question, then write nothing for the caller's short answer. The VAD is the real
Silero model, so "speech" is what the VAD hears.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamserver import audio as audio_mod
from streamserver.config import AsrConfig, SessionConfig
from streamserver.core.asr import AsrJob
from streamserver.core.session import AudioOut, DetectJob, Event, Session, run_offline
from streamserver.core.types import WordSpan
from streamserver.engines.silero import SileroVadModel
from streamserver.engines.whisper import AsrWord
from streamserver.evaluation import masked_speech_share
from tests.conftest import FIXTURES

RATE = 16000


@pytest.fixture(scope="module")
def vad_model() -> SileroVadModel:
    return SileroVadModel.shared()


@pytest.fixture(scope="module")
def call() -> tuple[np.ndarray, int]:
    """A question, 1.5 s of silence, an answer: two utterances of real speech."""
    samples, rate = audio_mod.read_wav(FIXTURES / "dev_001.wav")
    assert rate == RATE
    speech = samples[: 4 * RATE, 0]
    gap = np.zeros(int(1.5 * RATE), dtype=np.int16)
    return np.concatenate([speech, gap, speech, gap]), speech.size + gap.size


def run(vad_model: SileroVadModel, audio: np.ndarray, answer_at: int,
        detect_digits: bool = False, **cfg: Any) -> tuple[np.ndarray, list[dict], Session]:
    """``audio`` is mono, or (n, 2) with ``channel_roles`` (a VAD per channel)."""
    scfg = SessionConfig.from_params({"pace": "asap", "delay_ms": 2000,
                                      "audio_redaction": "silence", **cfg})
    streams = [vad_model.new_stream() for _ in range(len(scfg.channel_roles) or 1)]
    session = Session(scfg, AsrConfig(), streams, session_id="t")

    def transcribe(job: AsrJob) -> list[AsrWord]:
        if job.buffer_start >= answer_at - RATE // 2:
            return []  # Whisper wrote nothing for the answer
        # Fixed times in the stream (as a real model gives), cut at the buffer's end.
        script = ([(" what's", 0.3, 1.2), (" your", 1.2, 2.0), (" social?", 2.0, 3.9)]
                  if not detect_digits else [(" it's", 0.3, 2.0), (" 1234", 2.4, 2.4)])
        words = []
        for text, lo, hi in script:
            start, end = int(lo * RATE) - job.buffer_start, int(hi * RATE) - job.buffer_start
            if start >= 0 and end <= job.audio.size:
                words.append(AsrWord(text, start, end, 0.9))
        return words

    def detect(job: DetectJob) -> list[WordSpan]:
        return [WordSpan(i, i + 1, "ACCOUNT_NUMBER", 0.9)
                for i, t in enumerate(job.texts) if t.strip().isdigit()]

    outs = run_offline(session, transcribe, detect, audio.tobytes(), 640 * audio.ndim)
    released = np.frombuffer(b"".join(o.data for o in outs if isinstance(o, AudioOut)),
                             dtype=np.int16).reshape(audio.shape)
    events = [o.payload for o in outs if isinstance(o, Event)]
    assert released.size == audio.size  # every sample exactly once
    return released, events, session


def answer_masked_share(audio: np.ndarray, out: np.ndarray, answer_at: int) -> float:
    masked, speech = masked_speech_share(audio[answer_at:], out[answer_at:], RATE)
    assert speech > 100
    return masked / speech


def test_speech_without_words_after_a_request_is_masked(vad_model, call) -> None:
    audio, answer_at = call
    out, events, session = run(vad_model, audio, answer_at)
    assert answer_masked_share(audio, out, answer_at) > 0.9
    # The question itself is released untouched.
    masked, speech = masked_speech_share(audio[:answer_at], out[:answer_at], RATE)
    assert masked / speech < 0.05
    assert session.stats.requests_heard == 1
    assert session.stats.unexplained_speech_ms > 1000
    assert session.stats.unexplained_masked_ms > 1000
    context = [e for e in events if e["type"] == "redaction" and e.get("reason") == "context"]
    assert context and all(e["entity"] == "US_SSN" for e in context)
    assert context[0]["start"] >= answer_at / RATE - 0.5
    end = events[-1]
    assert end["type"] == "session.end" and end["stats"]["unexplained_speech_ms"] > 1000


def test_without_a_request_wordless_speech_is_released_and_counted(vad_model, call) -> None:
    audio, answer_at = call
    out, _, session = run(vad_model, audio, answer_at, context_redaction="false")
    assert answer_masked_share(audio, out, answer_at) < 0.05
    assert session.stats.unexplained_speech_ms > 1000
    assert session.stats.unexplained_masked_ms == 0


def test_mask_unexplained_masks_it_everywhere(vad_model, call) -> None:
    audio, answer_at = call
    out, events, session = run(vad_model, audio, answer_at, context_redaction="false",
                               mask_unexplained="true")
    assert answer_masked_share(audio, out, answer_at) > 0.9
    kinds = {(e["entity"], e["reason"]) for e in events if e["type"] == "redaction"}
    assert kinds == {("UNEXPLAINED_SPEECH", "unexplained")}
    assert session.stats.redactions == len([e for e in events if e["type"] == "redaction"])


def test_context_only_adds_masks(vad_model, call) -> None:
    """Whatever the dialogue state does, it never unmasks what the detector masked."""
    audio, answer_at = call
    with_ctx, _, _ = run(vad_model, audio, answer_at, detect_digits=True)
    without, _, _ = run(vad_model, audio, answer_at, detect_digits=True,
                        context_redaction="false")
    assert not np.any((without == 0) & (audio != 0) & (with_ctx != 0))


def test_redaction_events_cover_their_words_audio(vad_model, call) -> None:
    """A zero-length word still gets a mask (and an event) as long as MIN_MASK."""
    audio, answer_at = call
    out, events, _ = run(vad_model, audio, answer_at, detect_digits=True,
                         context_redaction="false")
    finals = [w for e in events if e["type"] == "transcript.final" for w in e["words"]]
    redactions = [e for e in events if e["type"] == "redaction"]
    assert redactions
    for r in redactions:
        assert r["end"] - r["start"] >= 0.3 - 1e-9
        words = [w for w in finals if w["redacted"] and r["start"] - 1e-9 <= w["start"]
                 and w["end"] <= r["end"] + 1e-9]
        assert words, r  # each event covers the audio of its words
    for w in (w for w in finals if w["redacted"]):
        lo, hi = int((w["start"] - 0.1) * RATE), int((w["end"] + 0.1) * RATE)
        assert not out[max(lo, 0) : hi].any()  # silenced around the word, both sides


def two_channels(audio: np.ndarray, answer_at: int, answer_channel: int) -> np.ndarray:
    """The question on channel 0, the answer on ``answer_channel``, silence elsewhere."""
    stereo = np.zeros((audio.size, 2), dtype=np.int16)
    stereo[:answer_at, 0] = audio[:answer_at]
    stereo[answer_at:, answer_channel] = audio[answer_at:]
    return stereo


def test_agent_question_arms_the_caller_channel(vad_model, call) -> None:
    audio, answer_at = call
    stereo = two_channels(audio, answer_at, answer_channel=1)
    out, events, session = run(vad_model, stereo, answer_at, channels=2,
                               channel_roles="agent,caller")
    assert answer_masked_share(stereo[:, 1], out[:, 1], answer_at) > 0.9
    masked, speech = masked_speech_share(stereo[:answer_at, 0], out[:answer_at, 0], RATE)
    assert masked / speech < 0.05  # the question itself is released
    assert session.stats.requests_heard == 1
    context = [e for e in events if e["type"] == "redaction" and e.get("reason") == "context"]
    assert context and {(e["entity"], e["channel"], e["role"]) for e in context} == {
        ("US_SSN", 1, "caller")}
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert finals and {(e["channel"], e["role"]) for e in finals} == {(0, "agent")}
    spoken = {(e["channel"], e["role"]) for e in events if e["type"] == "speech.ended"}
    assert spoken == {(0, "agent"), (1, "caller")}


def test_the_askers_own_speech_is_not_its_answer(vad_model, call) -> None:
    """Question and wordless speech both on the agent channel: nothing arms it."""
    audio, answer_at = call
    stereo = two_channels(audio, answer_at, answer_channel=0)
    out, _, session = run(vad_model, stereo, answer_at, channels=2,
                          channel_roles="agent,caller")
    assert session.stats.requests_heard == 1
    assert answer_masked_share(stereo[:, 0], out[:, 0], answer_at) < 0.05
    assert session.stats.unexplained_speech_ms > 1000  # counted all the same


def test_without_roles_two_channels_are_one_mix(vad_model, call) -> None:
    audio, answer_at = call
    stereo = two_channels(audio, answer_at, answer_channel=0)
    out, events, _ = run(vad_model, stereo, answer_at, channels=2)
    assert answer_masked_share(stereo[:, 0], out[:, 0], answer_at) > 0.9
    assert not any("channel" in e for e in events if e["type"] == "transcript.final")
