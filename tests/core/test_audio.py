"""Codecs, resampling, tones and WAV helpers in streamserver.audio (pure, fast)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from streamserver.audio import (
    AudioFormat,
    AudioFormatError,
    StreamingResampler,
    beep,
    decode,
    encode,
    read_wav,
    resample,
    to_int16,
    to_mono_float,
    write_wav,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
VALID_FORMATS = [
    AudioFormat("pcm_s16le", rate, ch) for rate in (8000, 16000, 24000, 48000) for ch in (1, 2)
] + [AudioFormat("mulaw", 8000, 1), AudioFormat("alaw", 8000, 1)]


def _fmt_id(fmt: AudioFormat) -> str:
    return f"{fmt.encoding}-{fmt.sample_rate}-{fmt.channels}"


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _amplitude(x: np.ndarray) -> float:
    middle = x[len(x) // 4 : 3 * len(x) // 4]  # away from the stream's edges
    return float(np.sqrt(2 * np.mean(np.square(middle, dtype=np.float64))))


def _peak_freq(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


# --- formats -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", VALID_FORMATS, ids=_fmt_id)
def test_valid_formats(fmt: AudioFormat) -> None:
    assert fmt.validate() is fmt
    assert fmt.bytes_per_frame == (2 if fmt.encoding == "pcm_s16le" else 1) * fmt.channels


@pytest.mark.parametrize(
    ("fmt", "needle"),
    [
        (AudioFormat("pcm_s16le", 44100, 1), "44100"),
        (AudioFormat("pcm_s16le", 16000, 3), "channels"),
        (AudioFormat("pcm_s16le", 16000, 0), "channels"),
        (AudioFormat("mulaw", 16000, 1), "8000"),
        (AudioFormat("alaw", 8000, 2), "1 channel"),
        (AudioFormat("flac", 16000, 1), "encoding"),  # type: ignore[arg-type]
        (AudioFormat("pcm_s16le", 16000.0, 1), "integer"),  # type: ignore[arg-type]
    ],
)
def test_invalid_formats(fmt: AudioFormat, needle: str) -> None:
    with pytest.raises(AudioFormatError, match=needle):
        fmt.validate()
    with pytest.raises(AudioFormatError):
        decode(b"\x00\x00", fmt)


# --- decode / encode -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", VALID_FORMATS, ids=_fmt_id)
def test_round_trip_bytes(fmt: AudioFormat) -> None:
    # Every byte pattern is a valid code in all three encodings, and re-encoding
    # a decoded code gives the same code back (G.711 decode values are exact).
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=fmt.bytes_per_frame * 1000, dtype=np.uint8).tobytes()
    samples = decode(data, fmt)
    assert samples.dtype == np.int16
    assert samples.shape == (1000, fmt.channels)
    if fmt.encoding == "mulaw":
        # mu-law has two zeros (0xFF, 0x7F "negative zero"); 0 encodes as 0xFF.
        data = data.replace(b"\x7f", b"\xff")
    assert encode(samples, fmt) == data


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_round_trip_samples_and_layout(channels: int) -> None:
    fmt = AudioFormat("pcm_s16le", 16000, channels)
    columns = [ALL_INT16, ALL_INT16[::-1]][:channels]
    samples = np.stack(columns, axis=1)
    data = encode(samples, fmt)
    # Little-endian, interleaved: -32768 then (stereo) 32767, then -32767.
    assert data[:4] == (b"\x00\x80\xff\x7f" if channels == 2 else b"\x00\x80\x01\x80")
    np.testing.assert_array_equal(decode(data, fmt), samples)


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_round_trip_samples(encoding: str) -> None:
    fmt = AudioFormat(encoding, 8000, 1)  # type: ignore[arg-type]
    decoded = decode(encode(ALL_INT16, fmt), fmt)[:, 0].astype(np.int32)
    error = np.abs(decoded - ALL_INT16)
    # Logarithmic companding: error grows with magnitude, stays within one step.
    rel = error / np.maximum(np.abs(ALL_INT16.astype(np.int32)), 256)
    assert rel.max() < 0.07
    assert np.all(np.diff(decoded) >= 0)  # monotonic


def test_g711_known_values() -> None:
    mulaw = AudioFormat("mulaw", 8000, 1)
    alaw = AudioFormat("alaw", 8000, 1)
    # ITU-T G.711 reference points (16-bit linear scale).
    assert decode(bytes([0xFF, 0x7F, 0x80, 0x00, 0xFE, 0x7E]), mulaw)[:, 0].tolist() == [
        0, 0, 32124, -32124, 8, -8,
    ]
    assert decode(bytes([0xD5, 0x55, 0xAA, 0x2A, 0xD4, 0x54]), alaw)[:, 0].tolist() == [
        8, -8, 32256, -32256, 24, -24,
    ]
    pcm = np.array([0, -1, 32767, -32768, 1000, -1000], dtype=np.int16)
    assert encode(pcm, mulaw) == bytes([0xFF, 0x7E, 0x80, 0x00, 0xCE, 0x4E])
    assert encode(pcm, alaw) == bytes([0xD5, 0x55, 0xAA, 0x2A, 0xFA, 0x7A])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_matches_audioop_exhaustively(encoding: str) -> None:
    try:  # stdlib up to Python 3.12: the reference implementation
        audioop = importlib.import_module("audioop")
    except ImportError:
        pytest.skip("audioop is not available (Python >= 3.13)")
    fmt = AudioFormat(encoding, 8000, 1)  # type: ignore[arg-type]
    lin2x = audioop.lin2ulaw if encoding == "mulaw" else audioop.lin2alaw
    x2lin = audioop.ulaw2lin if encoding == "mulaw" else audioop.alaw2lin
    pcm = ALL_INT16.astype("<i2").tobytes()
    assert encode(ALL_INT16, fmt) == lin2x(pcm, 2)
    codes = bytes(range(256))
    assert decode(codes, fmt)[:, 0].astype("<i2").tobytes() == x2lin(codes, 2)


@pytest.mark.parametrize(
    ("fmt", "n_bytes"),
    [
        (AudioFormat("pcm_s16le", 16000, 1), 3),
        (AudioFormat("pcm_s16le", 48000, 2), 6),
        (AudioFormat("pcm_s16le", 48000, 2), 1),
    ],
)
def test_partial_frame_is_an_error(fmt: AudioFormat, n_bytes: int) -> None:
    with pytest.raises(AudioFormatError, match="whole number"):
        decode(b"\x01" * n_bytes, fmt)


def test_empty_input() -> None:
    fmt = AudioFormat("pcm_s16le", 48000, 2)
    assert decode(b"", fmt).shape == (0, 2)
    assert encode(np.zeros((0, 2), np.int16), fmt) == b""


def test_encode_checks_shape_and_dtype() -> None:
    with pytest.raises(AudioFormatError, match="channel"):
        encode(np.zeros((4, 2), np.int16), AudioFormat("pcm_s16le", 16000, 1))
    with pytest.raises(TypeError):
        encode(np.zeros((4, 1), np.float32), AudioFormat("pcm_s16le", 16000, 1))  # type: ignore[arg-type]


def test_to_mono_float_downmixes_and_scales() -> None:
    stereo = np.array([[32767, -32768], [16384, 16384], [-32768, -32768]], dtype=np.int16)
    mono = to_mono_float(stereo)
    assert mono.dtype == np.float32
    np.testing.assert_allclose(mono, [-0.5 / 32768, 0.5, -1.0], atol=1e-7)
    np.testing.assert_allclose(to_mono_float(stereo[:, :1]), [32767 / 32768, 0.5, -1.0])
    assert to_int16(np.array([1.5, -1.5, 0.5])).tolist() == [32767, -32768, 16384]


# --- resampling -----------------------------------------------------------------------

RATE_PAIRS = [(48000, 16000), (24000, 16000), (8000, 16000), (16000, 48000), (16000, 8000),
              (16000, 24000), (16000, 16000), (44100, 16000)]


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_resampler_chunking_invariance_and_exact_length(src: int, dst: int) -> None:
    rng = np.random.default_rng(src + dst)
    x = rng.standard_normal(src + 12345)
    whole = resample(x, src, dst)
    assert len(whole) == len(x) * dst // src
    r = StreamingResampler(src, dst)
    outs, i = [], 0
    while i < len(x):
        n = int(rng.integers(0, 1500))
        out = r.push(x[i : i + n])
        i += n
        outs.append(out)
        # Never ahead of the exact count, never behind it by more than the look-ahead.
        assert r.total_out <= r.total_in * dst // src
        assert r.total_out >= (r.total_in - r.lookahead - 1) * dst // src
    outs.append(r.flush())
    chunked = np.concatenate(outs)
    assert chunked.dtype == np.float32
    assert r.total_out == len(chunked) == len(x) * dst // src
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_resampler_length_has_no_drift_over_many_odd_chunks() -> None:
    r = StreamingResampler(44100, 16000)
    total = 0
    for _ in range(2000):
        total += len(r.push(np.zeros(441 - 1)))
    total += len(r.flush())
    assert total == 2000 * 440 * 16000 // 44100


def test_resampler_stereo_and_identity() -> None:
    x = np.stack([_tone(1000, 48000), _tone(2000, 48000)], axis=1)
    y = resample(x, 48000, 16000)
    assert y.shape == (16000, 2)
    assert _peak_freq(y[:, 0], 16000) == pytest.approx(1000, abs=2)
    assert _peak_freq(y[:, 1], 16000) == pytest.approx(2000, abs=2)
    same = StreamingResampler(16000, 16000)
    np.testing.assert_array_equal(same.push(x[:100, 0]), x[:100, 0].astype(np.float32))
    with pytest.raises(ValueError, match="channel"):
        same.push(x[:10])
    assert same.lookahead == 0 and len(same.flush()) == 0


def test_resampler_push_after_flush_is_an_error() -> None:
    r = StreamingResampler(8000, 16000)
    r.push(np.zeros(100))
    r.flush()
    with pytest.raises(RuntimeError):
        r.push(np.zeros(10))


@pytest.mark.parametrize("src", [48000, 24000])
def test_resampled_sine_keeps_frequency_and_amplitude(src: int) -> None:
    y = resample(0.5 * _tone(1000, src, 2.0), src, 16000)
    assert _peak_freq(y, 16000) == pytest.approx(1000, abs=1)
    assert _amplitude(y) == pytest.approx(0.5, rel=1e-3)
    # Zero phase: sample k of the output is the tone at time k / 16000.
    np.testing.assert_allclose(y[8000:8100], 0.5 * _tone(1000, 16000, 2.0)[8000:8100], atol=1e-3)


def test_upsampling_telephone_audio() -> None:
    y = resample(0.5 * _tone(1000, 8000, 2.0), 8000, 16000)
    assert len(y) == 32000
    assert _peak_freq(y, 16000) == pytest.approx(1000, abs=1)
    assert _amplitude(y) == pytest.approx(0.5, rel=1e-3)
    # No image at 8000 - 1000 Hz.
    spectrum = np.abs(np.fft.rfft(y[8000:24000] * np.hanning(16000)))
    assert spectrum[7000] < 1e-3 * spectrum[1000]


def test_downsampling_attenuates_high_frequencies() -> None:
    # Above 80 % of the new Nyquist the filter rolls off: 7 kHz is in the
    # transition band (softened), 7.5 kHz mostly gone.
    assert _amplitude(resample(_tone(7000, 48000), 48000, 16000)) < 0.85
    assert _amplitude(resample(_tone(7500, 48000), 48000, 16000)) < 0.2
    # What would alias (above 8 kHz) is stopped: at least 60 dB down.
    for freq in (8500, 9000, 12000, 17000, 20000):
        assert _amplitude(resample(_tone(freq, 48000), 48000, 16000)) < 1e-3, freq
    assert _amplitude(resample(_tone(5000, 16000), 16000, 8000)) < 1e-3
    # Speech band untouched.
    for freq in (300, 3000, 6000):
        assert _amplitude(resample(_tone(freq, 48000), 48000, 16000)) == pytest.approx(1, abs=0.01)


# --- beep -----------------------------------------------------------------------------

def test_beep_is_continuous_across_chunks() -> None:
    whole = beep(1000, 4800, 48000)
    parts = np.concatenate([beep(1000, 1234, 48000), beep(2234, 3566, 48000)])
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    assert whole.dtype == np.float32
    assert np.abs(whole).max() == pytest.approx(0.2, abs=1e-4)
    assert _peak_freq(whole, 48000) == pytest.approx(1000, abs=10)
    # No jump at the seam bigger than the tone's own slope.
    step = np.abs(np.diff(parts)).max()
    assert step <= 2 * np.pi * 1000 / 48000 * 0.2 + 1e-6


def test_beep_phase_far_into_a_stream() -> None:
    start = 16000 * 3600 * 5  # five hours in
    chunk = beep(start, 16, 16000, freq=1000.0, amplitude=1.0)
    # 1 kHz at 16 kHz repeats every 16 samples, whatever the absolute index.
    np.testing.assert_allclose(chunk, beep(0, 16, 16000, amplitude=1.0), atol=1e-6)


# --- WAV ------------------------------------------------------------------------------

def test_wav_round_trip(tmp_path: Path) -> None:
    samples = np.stack([ALL_INT16[::7], ALL_INT16[::-7]], axis=1)
    write_wav(tmp_path / "x.wav", samples, 24000)
    back, rate = read_wav(tmp_path / "x.wav")
    assert rate == 24000
    np.testing.assert_array_equal(back, samples)
    write_wav(tmp_path / "m.wav", ALL_INT16[:10], 8000)
    assert read_wav(tmp_path / "m.wav")[0].shape == (10, 1)


def test_wav_rejects_other_sample_widths(tmp_path: Path) -> None:
    import wave

    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * 10)
    with pytest.raises(AudioFormatError, match="16-bit"):
        read_wav(tmp_path / "u8.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(AudioFormatError):
        read_wav(tmp_path / "junk.wav")
    with pytest.raises(AudioFormatError, match="int16"):
        write_wav(tmp_path / "f.wav", np.zeros(4, np.float32), 16000)  # type: ignore[arg-type]


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (48000, 16000), (24000, 16000),
                                          (16000, 8000), (16000, 48000)])
def test_phase_by_phase_filtering_matches_the_general_path(
        src: int, dst: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mono streams are filtered one phase at a time (the live path's resampler);
    the result is the general path's, bit for bit, whatever the chunking."""
    rng = np.random.default_rng(src * 3 + dst)
    x = 3000 * rng.standard_normal(src * 3)

    def stream(chunks: list[int]) -> np.ndarray:
        r, outs, i = StreamingResampler(src, dst), [], 0
        for n in chunks:
            outs.append(r.push(x[i : i + n]))
            i += n
        return np.concatenate([*outs, r.flush()])

    odd = [int(n) for n in rng.integers(1, 900, size=len(x))]
    by_phase = stream(odd)
    monkeypatch.setattr(StreamingResampler, "_POLYPHASE_MAX_UP", 0)  # the general path
    general = stream([src // 50] * (len(x) // (src // 50) + 1))
    np.testing.assert_array_equal(by_phase, general)
