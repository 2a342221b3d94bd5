"""VAD segmentation (pure, synthetic probabilities) and the Silero engine on a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamserver.core.vad import SpeechEnded, SpeechStarted, VadConfig, VadEvent, VadSegmenter

W = 512
PAD = 3200  # 200 ms at 16 kHz
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dev_001.wav"


def _run(seg: VadSegmenter, probs: list[float]) -> list[tuple[int, VadEvent]]:
    """Push one window at a time; return (index of the window that caused it, event)."""
    out: list[tuple[int, VadEvent]] = []
    for prob in probs:
        index = seg.frontier // W
        out.extend((index, ev) for ev in seg.push([prob]))
    return out


# --- config ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 0.3, "neg_threshold": 0.4}, {"neg_threshold": 0.0}, {"threshold": 1.5},
     {"min_silence_ms": -1}, {"window": 0}],
)
def test_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VadConfig(**kwargs)  # type: ignore[arg-type]


# --- segmentation ---------------------------------------------------------------------

def test_start_and_end_positions_are_exact() -> None:
    seg = VadSegmenter()
    events = _run(seg, [0.0] * 10 + [0.9] * 20 + [0.0] * 20)
    # Speech from window 10 (sample 5120); confirmed after 120 ms, i.e. at the end
    # of window 13 (4 windows = 2048 samples >= 1920); start back-dated minus the pad.
    # Silence from window 30 (15360); 500 ms = 8000 samples of it are complete at
    # the end of window 45 (46 * 512 = 23552 >= 15360 + 8000); end = 15360 + pad.
    assert events == [(13, SpeechStarted(5120 - PAD)), (45, SpeechEnded(5120 - PAD, 15360 + PAD))]
    assert not seg.in_speech
    assert seg.frontier == 50 * W
    assert seg.segments == ((5120 - PAD, 15360 + PAD),)


def test_batch_push_gives_the_same_events() -> None:
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 20 + [0.8] * 7 + [0.1] * 3
    one_by_one = [ev for _, ev in _run(VadSegmenter(), probs)]
    batched = VadSegmenter()
    events = batched.push(probs[:17]) + batched.push(probs[17:])
    assert events == one_by_one
    assert batched.in_speech and batched.speech_start == 50 * W - PAD


def test_pre_roll_is_clipped_at_zero() -> None:
    events = _run(VadSegmenter(), [0.0, 0.0, 0.9, 0.9, 0.9, 0.9])
    assert events == [(5, SpeechStarted(0))]


def test_min_speech_rejects_short_bursts() -> None:
    seg = VadSegmenter()
    assert _run(seg, [0.0] * 10 + [0.9] * 3 + [0.1] * 20) == []
    assert not seg.in_speech
    # Hysteresis: after a start above threshold, windows above neg_threshold
    # keep the candidate alive until it is long enough.
    assert _run(seg, [0.9, 0.4, 0.4, 0.4]) == [(36, SpeechStarted(33 * W - PAD))]


def test_min_speech_zero_starts_at_once() -> None:
    seg = VadSegmenter(VadConfig(min_speech_ms=0, speech_pad_ms=0))
    assert _run(seg, [0.1, 0.6]) == [(1, SpeechStarted(W))]


def test_min_silence_hysteresis() -> None:
    seg = VadSegmenter()
    speech = [0.9] * 10
    # 15 windows (7680 samples) below neg_threshold: not enough to end.
    # A window between the thresholds (0.4) restarts the silence run.
    events = _run(seg, speech + [0.0] * 15 + speech + [0.0] * 10 + [0.4] + [0.0] * 15 + speech)
    assert [type(ev) for _, ev in events] == [SpeechStarted]
    assert seg.in_speech
    # One more window of silence than that does end it.
    events = _run(seg, [0.0] * 16)
    assert [ev for _, ev in events] == [SpeechEnded(0, seg.frontier - 16 * W + PAD)]


def test_flush_ends_open_segment_at_frontier() -> None:
    seg = VadSegmenter()
    seg.push([0.0] * 10 + [0.9] * 10 + [0.0] * 5)
    assert seg.in_speech
    assert seg.flush() == [SpeechEnded(5120 - PAD, 25 * W)]
    assert not seg.in_speech
    assert seg.flush() == []
    # A segment after a flush does not reach back before it.
    events = seg.push([0.9] * 4)
    assert events == [SpeechStarted(25 * W)]


def test_flush_drops_an_unconfirmed_candidate() -> None:
    seg = VadSegmenter()
    seg.push([0.0] * 10 + [0.9] * 2)
    assert seg.speech_intervals(0, 12 * W, unknown_as_speech=False) == [(10 * W - PAD, 12 * W)]
    assert seg.flush() == []
    assert seg.speech_intervals(0, 12 * W, unknown_as_speech=False) == []


def test_end_pad_may_pass_the_frontier() -> None:
    cfg = VadConfig(min_silence_ms=64, speech_pad_ms=200, min_speech_ms=0)
    seg = VadSegmenter(cfg)
    events = seg.push([0.9] * 10 + [0.0] * 2)
    assert events[-1] == SpeechEnded(0, 10 * W + PAD)
    assert seg.frontier == 12 * W < 10 * W + PAD
    # The next segment starts where the last one's pad ends, never inside it.
    assert seg.push([0.9] * 2)[0] == SpeechStarted(10 * W + PAD)


# --- speech_intervals -----------------------------------------------------------------

def test_speech_intervals_closed_open_and_unknown() -> None:
    seg = VadSegmenter()
    seg.push([0.0] * 10 + [0.9] * 20 + [0.0] * 20 + [0.9] * 10)
    first = (5120 - PAD, 15360 + PAD)
    second_start = 50 * W - PAD
    frontier = 60 * W
    assert seg.speech_intervals(0, frontier, unknown_as_speech=False) == [
        first, (second_start, frontier)
    ]
    # Clipped to the query; beyond the frontier is unknown, hence speech by default.
    assert seg.speech_intervals(3000, frontier + 100) == [
        (3000, first[1]), (second_start, frontier + 100)
    ]
    assert seg.speech_intervals(first[1], second_start) == []


def test_speech_intervals_fail_closed_on_undecided_windows() -> None:
    seg = VadSegmenter()
    seg.push([0.0] * 10)
    assert seg.speech_intervals(0, 10 * W, unknown_as_speech=False) == []
    # An above-neg window near the frontier could still be covered by the
    # pre-roll of a start that has not happened yet: it counts as speech.
    seg.push([0.4])
    assert seg.speech_intervals(0, 11 * W, unknown_as_speech=False) == [(10 * W, 11 * W)]
    # Once the pre-roll can no longer reach it, it is settled as silence.
    seg.push([0.0] * 7)
    assert seg.speech_intervals(0, seg.frontier, unknown_as_speech=False) == []
    # A candidate (not yet confirmed) counts, with its pre-roll.
    seg.push([0.9])
    assert seg.speech_intervals(0, seg.frontier, unknown_as_speech=False) == [
        (18 * W - PAD, 19 * W)
    ]
    # Inside a segment, trailing silence counts until min_silence has passed.
    seg.push([0.9] * 5 + [0.0] * 10)
    assert seg.in_speech
    assert seg.speech_intervals(0, seg.frontier, unknown_as_speech=False) == [
        (18 * W - PAD, seg.frontier)
    ]


def test_forget_before_bounds_memory() -> None:
    seg = VadSegmenter()
    pattern = [0.9] * 10 + [0.0] * 30  # one segment per 40 windows
    for i in range(500):
        seg.push(pattern)
        if i % 10 == 0:
            seg.forget_before(seg.frontier - 5 * 40 * W)
    assert len(seg.segments) <= 16
    last_start, last_end = seg.segments[-1]
    assert seg.speech_intervals(last_start, last_end) == [(last_start, last_end)]
    with pytest.raises(ValueError, match="forgotten"):
        seg.speech_intervals(0, 100)


# --- Silero on real audio ---------------------------------------------------------------

@pytest.fixture(scope="module")
def silero():  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    from streamserver.engines.silero import SileroVadModel

    return SileroVadModel.shared()


def test_silero_on_a_real_clip(silero) -> None:  # type: ignore[no-untyped-def]
    from streamserver.audio import read_wav, to_mono_float

    samples, rate = read_wav(FIXTURE)
    assert rate == 16000
    audio = to_mono_float(samples)

    whole = silero.new_stream().push(audio)
    assert len(whole) == len(audio) // W
    # Any chunking gives the same probabilities (state carried between calls).
    stream = silero.new_stream()
    rng = np.random.default_rng(0)
    chunked: list[float] = []
    i = 0
    while i < len(audio):
        n = int(rng.integers(1, 2000))
        chunked += stream.push(audio[i : i + n])
        i += n
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert stream.pending == len(audio) % W and stream.frontier == len(whole) * W
    assert len(stream.flush()) == 1

    probs = np.array(whole)
    # Digital silence until ~0.6 s, speech ~0.6 .. 7.5 s (phone number at 1.83 .. 5.93 s).
    assert probs[: int(0.5 * 16000) // W].max() < 0.1
    assert np.mean(probs[int(0.8 * 16000) // W : int(7.3 * 16000) // W] > 0.5) > 0.8
    assert probs[int(7.8 * 16000) // W :].max() < 0.1

    seg = VadSegmenter()
    events = seg.push(chunked) + seg.flush()
    assert [type(ev) for ev in events] == [SpeechStarted, SpeechEnded]
    ended = events[-1]
    assert isinstance(ended, SpeechEnded)
    assert int(0.3 * 16000) <= ended.start <= int(0.6 * 16000)
    assert int(7.3 * 16000) <= ended.end <= int(8.0 * 16000)

    # Roughly what faster-whisper's own offline segmentation finds.
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    reference = get_speech_timestamps(
        audio,
        VadOptions(threshold=0.5, neg_threshold=0.35, min_speech_duration_ms=120,
                   min_silence_duration_ms=500, speech_pad_ms=200),
    )
    assert len(reference) == 1
    assert abs(reference[0]["start"] - ended.start) <= 2 * W
    assert abs(reference[0]["end"] - ended.end) <= 2 * W


def test_silero_on_silence(silero) -> None:  # type: ignore[no-untyped-def]
    stream = silero.new_stream()
    probs = stream.push(np.zeros(16000 * 3, dtype=np.float32))
    assert len(probs) == 16000 * 3 // W
    assert max(probs) < 0.1
    seg = VadSegmenter()
    assert seg.push(probs) + seg.flush() == []
    assert seg.speech_intervals(0, seg.frontier, unknown_as_speech=False) == []


def test_silero_windows_held_for_one_call_give_the_same_probabilities(silero) -> None:  # type: ignore[no-untyped-def]
    from streamserver.audio import read_wav, to_mono_float

    samples, _ = read_wav(FIXTURE)
    audio = to_mono_float(samples)
    whole = silero.new_stream().push(audio)
    stream = silero.new_stream(min_windows=4)
    got: list[float] = []
    calls = 0
    for i in range(0, len(audio), 320):  # 20 ms frames, as a live client sends them
        probs = stream.push(audio[i : i + 320])
        calls += bool(probs)
        assert len(probs) in (0, 4, 5)  # nothing until four windows are complete
        got += probs
    assert len(whole) - len(got) < 4 and stream.pending >= (len(whole) - len(got)) * W
    got += stream.drain()  # end of input: the windows held back, not the remainder
    np.testing.assert_allclose(got, whole, atol=1e-5)
    assert stream.pending == len(audio) % W
    assert calls <= len(whole) // 4 + 1
    with pytest.raises(ValueError, match="min_windows"):
        silero.new_stream(min_windows=0)
