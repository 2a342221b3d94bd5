"""LocalAgreement-2 and the utterance buffer (pure, scripted hypotheses)."""

from __future__ import annotations

import numpy as np
import pytest

from streamserver.config import AsrConfig
from streamserver.core.asr import StreamingTranscriber, TimedWord

SR = 16000


def words(*spec: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(t, int(a * SR), int(b * SR)) for t, a, b in spec]


def feed(tr: StreamingTranscriber, seconds: float) -> None:
    tr.push_audio(np.zeros(int(seconds * SR), dtype=np.float32))


def test_no_job_without_utterance_or_enough_audio() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000))
    feed(tr, 2.0)
    assert tr.next_job() is None
    tr.start_utterance(int(1.8 * SR))  # back-dated start within the kept pre-roll
    assert tr.next_job() is None  # 0.2 s of utterance audio < step
    feed(tr, 0.8)
    job = tr.next_job()
    assert job is not None and job.buffer_start == int(1.8 * SR)
    assert job.audio.size == SR


def test_local_agreement_commits_common_prefix_only() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000))
    tr.start_utterance(0)
    feed(tr, 1.0)
    job = tr.next_job()
    assert job is not None and job.buffer_start == 0 and not job.final
    up = tr.complete_job(job, words((" My", 0.1, 0.3), (" card", 0.3, 0.6)))
    assert up.committed == [] and [w.text for w in up.tentative] == [" My", " card"]
    feed(tr, 1.0)
    job = tr.next_job()
    assert job is not None
    up = tr.complete_job(
        job, words((" My", 0.1, 0.3), (" card.", 0.3, 0.6), (" number", 0.6, 1.0))
    )
    # "card" vs "card." agree (punctuation ignored); "number" is new: tentative.
    assert [w.text for w in up.committed] == [" My", " card."]
    assert all(w.stable for w in up.committed)
    assert [w.text for w in up.tentative] == [" number"]
    assert up.analysed_until == 2 * SR


def test_committed_words_are_not_repeated() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=500))
    tr.start_utterance(0)
    committed: list[str] = []
    hyps = [
        words((" a", 0.0, 0.2), (" b", 0.2, 0.4)),
        words((" a", 0.0, 0.2), (" b", 0.2, 0.4), (" c", 0.4, 0.6)),
        words((" a", 0.0, 0.2), (" b", 0.2, 0.4), (" c", 0.4, 0.6), (" d", 0.6, 0.8)),
    ]
    for h in hyps:
        feed(tr, 0.5)
        job = tr.next_job()
        assert job is not None
        committed += [w.text for w in tr.complete_job(job, h).committed]
    assert committed == [" a", " b", " c"]


def test_final_pass_commits_everything_and_closes_utterance() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000))
    tr.start_utterance(0)
    feed(tr, 1.2)
    tr.end_utterance(int(1.2 * SR))
    job = tr.next_job()
    assert job is not None and job.final and job.buffer_end == int(1.2 * SR)
    up = tr.complete_job(job, words((" hello", 0.1, 0.5), (" there", 0.5, 0.9)))
    assert [w.text for w in up.committed] == [" hello", " there"]
    assert up.utterance_ended and not tr.utterance_open
    feed(tr, 2.0)
    assert tr.next_job() is None


def test_speech_restart_before_final_pass_opens_next_utterance() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000))
    tr.start_utterance(0)
    feed(tr, 1.0)
    tr.end_utterance(SR)
    tr.start_utterance(int(1.1 * SR))
    feed(tr, 1.5)
    job = tr.next_job()
    assert job is not None and job.final
    tr.complete_job(job, words((" one", 0.1, 0.5)))
    assert tr.utterance_open
    job = tr.next_job()
    assert job is not None and job.buffer_start == int(1.1 * SR)


def test_buffer_is_cut_at_last_committed_word() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000, max_buffer_ms=3000))
    tr.start_utterance(0)
    hyp = words((" x", 0.1, 0.4), (" y", 0.5, 0.9))
    for _ in range(4):
        feed(tr, 1.0)
        job = tr.next_job()
        assert job is not None
        tr.complete_job(job, hyp)
    job_start_after = None
    feed(tr, 1.0)
    job = tr.next_job()
    assert job is not None
    job_start_after = job.buffer_start
    assert job_start_after == int(0.9 * SR)
    assert job.audio.size == job.buffer_end - job.buffer_start


def test_complete_unknown_job_is_an_error() -> None:
    tr = StreamingTranscriber(AsrConfig())
    tr.start_utterance(0)
    feed(tr, 2.0)
    job = tr.next_job()
    assert job is not None
    tr.complete_job(job, [])
    with pytest.raises(ValueError):
        tr.complete_job(job, [])


def test_store_is_bounded_between_utterances() -> None:
    tr = StreamingTranscriber(AsrConfig(), preroll=SR // 2)
    for _ in range(50):
        feed(tr, 1.0)
    assert tr._store.size <= SR // 2 + SR


def test_fixed_steps_pass_every_step_however_fast_audio_arrives() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000), fixed_steps=True)
    tr.start_utterance(0)
    feed(tr, 3.5)  # all at once, as a fast asap client sends it
    ends = []
    while (job := tr.next_job()) is not None:
        ends.append(job.buffer_end)
        tr.complete_job(job, [])
    assert ends == [SR, 2 * SR, 3 * SR]


def test_vad_edges_queued_behind_a_pending_final_pass_are_kept() -> None:
    tr = StreamingTranscriber(AsrConfig(step_ms=1000), fixed_steps=True)
    tr.start_utterance(0)
    feed(tr, 6.0)
    tr.end_utterance(SR)  # utterance 1: 0..1 s
    tr.start_utterance(2 * SR)  # utterance 2: 2..3 s, all before any pass ran
    tr.end_utterance(3 * SR)
    tr.start_utterance(4 * SR)  # utterance 3 still open
    spans = []
    while (job := tr.next_job()) is not None:
        spans.append((job.buffer_start, job.buffer_end, job.final))
        tr.complete_job(job, [])
    assert spans == [(0, SR, True), (2 * SR, 3 * SR, True), (4 * SR, 5 * SR, False),
                     (4 * SR, 6 * SR, False)]


def test_eager_pass_needs_only_min_step_unless_steps_are_fixed() -> None:
    cfg = AsrConfig(step_ms=1000, min_step_ms=500)
    for fixed in (False, True):
        tr = StreamingTranscriber(cfg, fixed_steps=fixed)
        tr.start_utterance(0)
        feed(tr, 0.6)
        assert tr.next_job() is None  # busy model: wait for a whole step
        job = tr.next_job(eager=True)  # idle model: 0.6 s is enough...
        if fixed:
            assert job is None  # ...but asap results must not depend on timing
        else:
            assert job is not None and job.audio.size == int(0.6 * SR)
