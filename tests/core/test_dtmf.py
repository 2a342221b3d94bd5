"""DTMF detector (pure): Q.24 accept/reject limits, speech immunity, chunking, rates, G.711."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from streamserver import audio
from streamserver.core.dtmf import (
    DIGITS,
    ROW_FREQS,
    DtmfConfig,
    DtmfDetector,
    DtmfTone,
    digit_freqs,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPEECH = sorted(FIXTURES.glob("*.wav"))
RATE = 16000
AMP = 0.1  # per tone: -17 dBm0, a typical keypad level
DBM0 = 10 ** (-3.17 / 20)  # amplitude of a 0 dBm0 sine (G.711: full scale is +3.17 dBm0)
Signal = npt.NDArray[np.float64]


def ms(n: float, rate: int = RATE) -> int:
    return round(n * rate / 1000)


def dtmf(
    digit: str, n: int, rate: int = RATE, *, amp: float = AMP, dev: tuple[float, float] = (0, 0),
    twist_db: float = 0.0, at: int = 0,
) -> Signal:
    """``n`` samples of ``digit``; ``dev`` = relative frequency errors, ``twist_db`` =
    column level over row level. Phase follows the absolute index ``at`` (continuous)."""
    low, high = digit_freqs(digit)
    t = np.arange(at, at + n) / rate
    col_amp = amp * 10 ** (twist_db / 20)
    return (amp * np.sin(2 * np.pi * low * (1 + dev[0]) * t + 0.3)
            + col_amp * np.sin(2 * np.pi * high * (1 + dev[1]) * t + 1.1))


def keyed(digits: str, on_ms: list[float], gap_ms: float, rate: int = RATE,
          lead_ms: float = 100) -> tuple[Signal, list[tuple[int, int, str]]]:
    """Silence, then the digits with the given on-times and gaps; returns (signal, truth)."""
    parts, truth, pos = [np.zeros(ms(lead_ms, rate))], [], ms(lead_ms, rate)
    for digit, on in zip(digits, on_ms, strict=True):
        n = ms(on, rate)
        parts += [dtmf(digit, n, rate, at=pos), np.zeros(ms(gap_ms, rate))]
        truth.append((pos, pos + n, digit))
        pos += n + ms(gap_ms, rate)
    parts.append(np.zeros(ms(100, rate)))
    return np.concatenate(parts), truth


def detect(x: npt.ArrayLike, rate: int = RATE, chunk: int | None = None) -> list[DtmfTone]:
    """All reports, in order, feeding ``chunk`` samples at a time (None: all at once)."""
    det = DtmfDetector(rate)
    x = np.asarray(x)
    reports: list[DtmfTone] = []
    for i in range(0, len(x), chunk or max(len(x), 1)):
        reports += det.push(x[i : i + (chunk or len(x))])
    return reports + det.flush()


def finals(x: npt.ArrayLike, rate: int = RATE, chunk: int | None = None) -> list[DtmfTone]:
    return [t for t in detect(x, rate, chunk) if t.final]


def speech(path: Path) -> Signal:
    samples, rate = audio.read_wav(path)
    assert rate == RATE
    return samples[:, 0] / 32768.0


def assert_spans(found: list[DtmfTone], truth: list[tuple[int, int, str]], tol: int) -> None:
    assert [t.digit for t in found] == [d for _, _, d in truth]
    for tone, (start, end, _) in zip(found, truth, strict=True):
        assert abs(tone.start - start) <= tol and abs(tone.end - end) <= tol, (tone, start, end)


# --- config and API -----------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs",
    [{"min_tone_ratio": 0.0}, {"min_tone_ratio": 1.5}, {"max_freq_deviation": 0.06},
     {"block_ms": 2.0}, {"min_tone_ms": -1}, {"max_dropout_ms": -5}],
)
def test_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DtmfConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        DtmfDetector(4000)
    det = DtmfDetector()
    with pytest.raises(TypeError):  # int16 off the wire must be scaled first
        det.push(np.zeros(320, dtype=np.int16))
    with pytest.raises(ValueError):
        det.push(np.zeros((320, 2), dtype=np.float32))
    assert det.push(np.zeros(0, dtype=np.float32)) == []
    det.flush()
    with pytest.raises(RuntimeError):
        det.push(np.zeros(320, dtype=np.float32))
    assert det.flush() == []


def test_digit_freqs() -> None:
    assert digit_freqs("1") == (697, 1209)
    assert digit_freqs("0") == (941, 1336)
    assert digit_freqs("D") == (941, 1633)
    with pytest.raises(ValueError):
        digit_freqs("E")


# --- decoding -----------------------------------------------------------------------

@pytest.mark.parametrize("digit", list(DIGITS))
def test_every_digit_decodes_with_its_span(digit: str) -> None:
    x, truth = keyed(digit, [80], 100)
    det = DtmfDetector()
    assert_spans(finals(x), truth, tol=det.block)


def test_card_number_decodes_in_order_with_spans() -> None:
    rng = np.random.default_rng(7)
    number = "4111111111111111"
    on = rng.uniform(60, 100, len(number)).tolist()
    x, truth = keyed(number, on, 60)
    found = finals(x, chunk=ms(20))
    assert "".join(t.digit for t in found) == number
    assert_spans(found, truth, tol=DtmfDetector().block)
    # Early rather than late: the span starts at or before the true onset.
    assert all(t.start <= s for t, (s, _, _) in zip(found, truth, strict=True))


def test_ongoing_tone_is_reported_early_and_grows() -> None:
    onset = ms(100)
    x = np.concatenate([np.zeros(onset), dtmf("7", ms(500), at=onset), np.zeros(ms(200))])
    det = DtmfDetector()
    frame = ms(20)
    seen: list[tuple[int, DtmfTone]] = []  # (samples pushed when reported, report)
    for i in range(0, len(x), frame):
        seen += [(det.pushed, t) for t in det.push(x[i : i + frame])]
    seen += [(det.pushed, t) for t in det.flush()]
    first_pushed, first = seen[0]
    # Confirmed well inside the 300 ms output delay, with the true onset.
    assert first_pushed - onset <= ms(60)
    assert onset - det.block <= first.start <= onset and not first.final
    reports = [t for _, t in seen]
    assert {(t.start, t.digit) for t in reports} == {(first.start, "7")}
    ends = [t.end for t in reports]
    assert ends == sorted(ends) and len(ends) > 10
    assert all(t.end <= pushed for pushed, t in seen)
    assert [t.final for t in reports] == [False] * (len(reports) - 1) + [True]
    assert abs(reports[-1].end - (onset + ms(500))) <= det.block


def test_no_report_reaches_before_settled_until() -> None:
    x, _ = keyed("908#", [70, 45, 200, 60], 50)
    det = DtmfDetector()
    reported_end: dict[int, int] = {}
    for i in range(0, len(x), ms(10)):
        settled = det.settled_until
        assert det.pushed - ms(75) <= settled <= det.pushed
        for t in det.push(x[i : i + ms(10)]):
            new_from = reported_end.get(t.start, t.start)
            assert new_from >= settled
            reported_end[t.start] = t.end
    assert len(reported_end) == 4


def test_tone_running_into_end_of_stream_is_closed_by_flush() -> None:
    x = np.concatenate([np.zeros(ms(50)), dtmf("5", ms(90), at=ms(50))])
    det = DtmfDetector()
    assert [t.final for t in det.push(x)] == [False]
    (last,) = det.flush()
    assert last.final and last.digit == "5" and last.end == len(x)


# --- speech immunity and non-DTMF signals ------------------------------------------

@pytest.mark.parametrize("path", SPEECH, ids=lambda p: p.stem)
def test_speech_alone_gives_no_tones(path: Path) -> None:
    s = speech(path)
    assert detect(s, chunk=ms(20)) == []
    # Also 12 dB louder and clipped, as an overdriven line would be.
    assert detect(np.clip(4 * s, -1, 1)) == []


def test_speech_fixtures_are_present() -> None:
    # The parametrised test above must not pass by running on nothing.
    assert len(SPEECH) >= 7


def _active_starts(s: Signal, n: int) -> list[int]:
    """Starts of non-overlapping ``n``-sample stretches where every 20 ms frame is speech."""
    frame = ms(20)
    energy = (s[: len(s) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
    active = energy > 10 ** (-35 / 10)
    need = -(-n // frame)
    starts, i = [], 0
    while i + need <= len(active):
        if active[i : i + need].all():
            starts.append(i * frame)
            i += need + 15  # leave 300 ms of plain speech between tones
        else:
            i += 1
    return starts


@pytest.mark.parametrize("level_db", [20, 15])
def test_tones_over_speech_are_found(level_db: float) -> None:
    n = ms(70)
    total = 0
    for k, path in enumerate(SPEECH):
        s = speech(path)
        frame = ms(20)
        energy = (s[: len(s) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
        speech_rms = np.sqrt(energy[energy > 10 ** (-35 / 10)].mean())
        # Two tones of amplitude a have an RMS of a.
        amp = speech_rms * 10 ** (level_db / 20)
        y = s.copy()
        truth = []
        for j, start in enumerate(_active_starts(s, n)):
            digit = DIGITS[(k + j) % 16]
            y[start : start + n] += dtmf(digit, n, amp=amp, at=start)
            truth.append((start, start + n, digit))
        assert len(truth) >= 5, path.name
        assert_spans(finals(y, chunk=ms(20)), truth, tol=DtmfDetector().block)
        total += len(truth)
    assert total >= 60


def test_noise_and_single_tones_give_no_tones() -> None:
    rng = np.random.default_rng(3)
    n = ms(500)
    for level in (0.01, 0.1, 0.5):
        assert detect(level * rng.standard_normal(n)) == []
    t = np.arange(n) / RATE
    for freq in (1000.0, *ROW_FREQS, 1209.0, 1336.0, 1477.0, 1633.0):
        assert detect(0.3 * np.sin(2 * np.pi * freq * t)) == []
    # Two tones of the same group are not a digit either.
    assert detect(0.2 * np.sin(2 * np.pi * 697 * t) + 0.2 * np.sin(2 * np.pi * 852 * t)) == []
    assert detect(0.2 * np.sin(2 * np.pi * 1209 * t) + 0.2 * np.sin(2 * np.pi * 1477 * t)) == []
    # Tones must dominate the block: with as much noise power as tone power
    # (tones 3 dB under the total), a digit is not taken.
    assert detect(dtmf("8", n) + AMP * rng.standard_normal(n)) == []


def test_two_keys_at_once_are_rejected() -> None:
    # Two rows (the second 4 dB weaker) with one column: no single strong row.
    n = ms(200)
    t = np.arange(n) / RATE
    x = dtmf("1", n) + 0.63 * AMP * np.sin(2 * np.pi * 770 * t)
    assert detect(x) == []
    y = dtmf("6", n) + 0.63 * AMP * np.sin(2 * np.pi * 1633 * t)  # two columns
    assert detect(y) == []


def test_strong_second_harmonic_is_rejected() -> None:
    # A keypad makes almost no harmonics; an instrument or a voice does. Here
    # the tones still hold 80 % of the energy, so only the harmonic check bites.
    n = ms(200)
    t = np.arange(n) / RATE
    for digit, harmonic_of in (("9", 1477), ("D", 1633), ("*", 941), ("0", 941)):
        x = dtmf(digit, n) + 0.7 * AMP * np.sin(2 * np.pi * 2 * harmonic_of * t)
        assert detect(x) == [], digit
        clean = dtmf(digit, n) + 0.1 * AMP * np.sin(2 * np.pi * 2 * harmonic_of * t)
        assert [r.digit for r in finals(clean)] == [digit]


def test_tone_in_moderate_noise_is_found() -> None:
    rng = np.random.default_rng(4)
    x, truth = keyed("369", [60, 60, 60], 60)
    noisy = x + 0.02 * rng.standard_normal(len(x))  # tones 14 dB above white noise
    assert_spans(finals(noisy), truth, tol=DtmfDetector().block)


# --- Q.24 limits --------------------------------------------------------------------

def _single(digit: str, rate: int = RATE, *, on_ms: float = 60, offset: int = 0,
            amp: float = AMP, dev: tuple[float, float] = (0, 0),
            twist_db: float = 0.0) -> list[DtmfTone]:
    """Final reports for one tone between 50 ms silences (the lead shifted by ``offset``)."""
    lead = ms(50, rate) + offset
    tone = dtmf(digit, ms(on_ms, rate), rate, amp=amp, dev=dev, twist_db=twist_db, at=lead)
    return finals(np.concatenate([np.zeros(lead), tone, np.zeros(ms(50, rate))]), rate)


@pytest.mark.parametrize("dev", [0.015, -0.015])
@pytest.mark.parametrize("which", ["both", "row", "column", "opposite"])
def test_frequency_within_1_5_percent_is_accepted(dev: float, which: str) -> None:
    d = {"both": (dev, dev), "row": (dev, 0), "column": (0, dev), "opposite": (dev, -dev)}[which]
    for digit in DIGITS:
        assert [t.digit for t in _single(digit, dev=d)] == [digit], digit


@pytest.mark.parametrize("dev", [0.035, -0.035, 0.05])
@pytest.mark.parametrize("which", ["both", "row", "column"])
def test_frequency_3_5_percent_off_is_rejected(dev: float, which: str) -> None:
    d = {"both": (dev, dev), "row": (dev, 0), "column": (0, dev)}[which]
    for digit in DIGITS:
        assert _single(digit, dev=d) == [], digit


@pytest.mark.parametrize("twist_db", [-8.0, -4.0, 0.0, 2.0, 4.0])
def test_twist_within_limits_is_accepted(twist_db: float) -> None:
    for digit in DIGITS:
        assert [t.digit for t in _single(digit, twist_db=twist_db)] == [digit], digit


@pytest.mark.parametrize("twist_db", [-10.0, -14.0, 6.0, 9.0])
def test_twist_beyond_limits_is_rejected(twist_db: float) -> None:
    for digit in DIGITS:
        assert _single(digit, twist_db=twist_db) == [], digit


def test_level_threshold() -> None:
    for digit in "159D":
        assert len(_single(digit, amp=DBM0 * 10 ** (-25 / 20))) == 1  # Q.24 accept level
        assert len(_single(digit, amp=DBM0 * 10 ** (-3 / 20))) == 1  # loud: sum near full scale
        assert _single(digit, amp=DBM0 * 10 ** (-36 / 20)) == []


@pytest.mark.parametrize("rate", [8000, 16000])
def test_duration_40ms_accepted_23ms_rejected(rate: int) -> None:
    block = DtmfDetector(rate).block
    for digit in DIGITS:
        for offset in range(0, block, max(1, block // 5)):  # every alignment to the blocks
            assert len(_single(digit, rate, on_ms=40, offset=offset)) == 1, (digit, offset)
            # Also at the edge of the frequency and twist limits.
            edge = _single(digit, rate, on_ms=40, offset=offset, dev=(0.015, -0.015),
                           twist_db=-7.0)
            assert len(edge) == 1, (digit, offset)
            assert _single(digit, rate, on_ms=23, offset=offset) == [], (digit, offset)
            assert _single(digit, rate, on_ms=15, offset=offset) == [], (digit, offset)


def test_brief_dropout_does_not_split_a_tone() -> None:
    for digit in "2#":
        for gap in (5, 10):
            a, g = ms(60), ms(gap)
            x = np.concatenate([np.zeros(ms(50)), dtmf(digit, a), np.zeros(g),
                                dtmf(digit, a, at=a + g), np.zeros(ms(50))])
            found = finals(x)
            assert [t.digit for t in found] == [digit], (digit, gap)
            assert abs(found[0].end - found[0].start - (2 * a + g)) <= DtmfDetector().block


@pytest.mark.parametrize("pause_ms", [40, 60])
def test_pause_separates_repeated_digits(pause_ms: float) -> None:
    x, truth = keyed("55", [50, 50], pause_ms)
    assert_spans(finals(x), truth, tol=DtmfDetector().block)


def test_digit_change_without_pause_gives_two_tones() -> None:
    x = np.concatenate([np.zeros(ms(50)), dtmf("1", ms(60)), dtmf("9", ms(60)), np.zeros(ms(50))])
    assert [t.digit for t in finals(x)] == ["1", "9"]


# --- chunking, rates, telephone path ------------------------------------------------

def test_results_do_not_depend_on_chunking() -> None:
    rng = np.random.default_rng(11)
    x, truth = keyed("4111*0#D", rng.uniform(45, 100, 8).tolist(), 55)
    s = speech(SPEECH[1])[: len(x)]
    x = (x + 0.05 * s + 0.003 * rng.standard_normal(len(x))).astype(np.float32)
    whole = detect(x)
    reference = [t for t in whole if t.final]
    assert [t.digit for t in reference] == [d for _, _, d in truth]
    sizes = [1, 7, ms(20), ms(20) + 1, 4096]
    for size in sizes:
        reports = detect(x, chunk=size)
        assert [t for t in reports if t.final] == reference, size
        # Every interim report is a prefix of its tone's final span.
        by_start = {t.start: t for t in reference}
        for t in reports:
            assert t.digit == by_start[t.start].digit and t.end <= by_start[t.start].end
    # Random chunk sizes, including empty chunks.
    det = DtmfDetector()
    reports, i = [], 0
    while i < len(x):
        step = int(rng.integers(0, 700))
        reports += det.push(x[i : i + step])
        i += step
    reports += det.flush()
    assert [t for t in reports if t.final] == reference


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_other_rates(rate: int) -> None:
    x, truth = keyed("0123456789*#ABCD", [70] * 16, 60, rate=rate)
    det = DtmfDetector(rate)
    assert_spans(finals(x, rate, chunk=rate // 50), truth, tol=det.block)


def test_same_spans_at_8k_and_at_16k_after_resampling() -> None:
    x8, _ = keyed("2580", [60, 60, 60, 60], 60, rate=8000)
    x16 = audio.resample(x8, 8000, 16000)  # zero-phase: sample indices map by x2
    found8, found16 = finals(x8, 8000), finals(x16, 16000)
    assert [t.digit for t in found16] == [t.digit for t in found8] == list("2580")
    for a, b in zip(found8, found16, strict=True):
        assert abs(2 * a.start - b.start) <= DtmfDetector(16000).block
        assert abs(2 * a.end - b.end) <= DtmfDetector(16000).block


def test_mulaw_telephone_path() -> None:
    fmt = audio.AudioFormat("mulaw", 8000, 1)
    rng = np.random.default_rng(5)
    on = rng.uniform(50, 90, 16).tolist()
    x, truth = keyed("4111111111111111", on, 60, rate=8000)
    for level_dbm0 in (-5.0, -25.0):  # per tone
        wire = audio.encode(audio.to_int16(x * DBM0 * 10 ** (level_dbm0 / 20) / AMP), fmt)
        decoded = audio.to_mono_float(audio.decode(wire, fmt))
        assert_spans(finals(decoded, 8000, chunk=160), truth, tol=DtmfDetector(8000).block)
        # The server's analysis path: mu-law 8 kHz -> float -> 16 kHz.
        up = audio.resample(decoded, 8000, 16000)
        truth16 = [(2 * s, 2 * e, d) for s, e, d in truth]
        assert_spans(finals(up, 16000, chunk=320), truth16, tol=DtmfDetector(16000).block)


# --- cost -----------------------------------------------------------------------------


def test_batched_analysis_finds_the_same_tones_a_little_later() -> None:
    # The live session analyses 60 ms at a time; the tones (and their spans)
    # must not depend on it, and each is first reported at most 60 ms later.
    x, _ = keyed("4096#", [70, 45, 200, 60, 120], 50)
    frame = ms(20)

    def run(det: DtmfDetector) -> tuple[list[DtmfTone], dict[int, int]]:
        tones, first_seen, reported_end = [], {}, {}
        for i in range(0, len(x), frame):
            settled = det.settled_until
            for t in det.push(x[i : i + frame]):
                assert reported_end.get(t.start, t.start) >= settled  # no coverage before it
                reported_end[t.start] = t.end
                first_seen.setdefault(t.start, det.pushed)
                tones.append(t)
        tones += det.flush()
        return [t for t in tones if t.final], first_seen

    plain, plain_seen = run(DtmfDetector())
    batched, batched_seen = run(DtmfDetector(min_batch_ms=60))
    assert [(t.start, t.end, t.digit) for t in batched] == [
        (t.start, t.end, t.digit) for t in plain]
    assert "".join(t.digit for t in plain) == "4096#"
    assert plain_seen.keys() == batched_seen.keys()
    for start, seen in plain_seen.items():
        assert seen <= batched_seen[start] <= seen + ms(60) + frame
    with pytest.raises(ValueError, match="min_batch_ms"):
        DtmfDetector(min_batch_ms=-1)
