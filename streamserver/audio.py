"""Audio codecs, resampling and tone generation (pure numpy).

Wire audio is decoded to int16 frames of shape ``(n, channels)``; analysis works
on float32 mono at 16 kHz. Nothing here touches sockets or clocks; only
``read_wav`` / ``write_wav`` touch files (CLI, tests, benchmarks).
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from os import PathLike
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

Encoding = Literal["pcm_s16le", "mulaw", "alaw"]
ENCODINGS: tuple[str, ...] = get_args(Encoding)
PCM_RATES = (8000, 16000, 24000, 48000)
G711_RATE = 8000

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]


class AudioFormatError(ValueError):
    """Audio that does not fit its declared format.

    Messages name only format parameters and sizes, never audio content, so they
    are safe to send to a client.
    """


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How audio is laid out on the wire: interleaved little-endian frames."""

    encoding: Encoding
    sample_rate: int
    channels: int

    def validate(self) -> AudioFormat:
        """Raise :class:`AudioFormatError` unless the format is supported; return self."""
        if self.encoding not in ENCODINGS:
            raise AudioFormatError(
                f"unsupported encoding {self.encoding!r} (expected one of {', '.join(ENCODINGS)})"
            )
        if not _is_int(self.sample_rate) or not _is_int(self.channels):
            raise AudioFormatError("sample_rate and channels must be integers")
        if self.encoding == "pcm_s16le":
            if self.sample_rate not in PCM_RATES:
                rates = ", ".join(str(r) for r in PCM_RATES)
                raise AudioFormatError(
                    f"pcm_s16le sample_rate must be one of {rates} Hz, got {self.sample_rate}"
                )
            if self.channels not in (1, 2):
                raise AudioFormatError(
                    f"pcm_s16le channels must be 1 or 2, got {self.channels}"
                )
        else:
            # G.711 is telephony audio: narrowband and mono by definition.
            if self.sample_rate != G711_RATE:
                raise AudioFormatError(
                    f"{self.encoding} requires sample_rate {G711_RATE} Hz, got {self.sample_rate}"
                )
            if self.channels != 1:
                raise AudioFormatError(
                    f"{self.encoding} requires 1 channel, got {self.channels}"
                )
        return self

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm_s16le" else 1

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one sample instant across all channels."""
        return self.bytes_per_sample * self.channels


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- G.711 (ITU-T), the Sun/CCITT reference algorithm as in audioop ---------------
# Encoding tables are indexed by the int16 sample's bit pattern (viewed as uint16),
# so encoding is one gather with no branches.

def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _all_int16() -> npt.NDArray[np.int32]:
    # Index i holds the sample whose uint16 bit pattern is i.
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_int16() >> 2  # 14-bit magnitude domain
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21  # clip, then add the bias (0x84 >> 2)
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    uval = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_int16() >> 3  # 13-bit domain
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)
    aval = (seg << 4) | ((mag >> np.where(seg < 2, 1, seg)) & 0x0F)
    return (aval ^ mask).astype(np.uint8)


_ULAW_DECODE = _build_ulaw_decode()
_ALAW_DECODE = _build_alaw_decode()
_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()


def decode(data: bytes | bytearray | memoryview, fmt: AudioFormat) -> Int16Array:
    """Wire bytes -> int16 frames of shape ``(n, fmt.channels)`` (a fresh, writable array).

    Raises :class:`AudioFormatError` if ``data`` is not a whole number of frames:
    the caller must not split a frame across messages.
    """
    fmt.validate()
    if len(data) % fmt.bytes_per_frame:
        raise AudioFormatError(
            f"audio message of {len(data)} bytes is not a whole number of "
            f"{fmt.bytes_per_frame}-byte frames ({fmt.encoding}, {fmt.channels} ch)"
        )
    if fmt.encoding == "pcm_s16le":
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    else:
        table = _ULAW_DECODE if fmt.encoding == "mulaw" else _ALAW_DECODE
        samples = table[np.frombuffer(data, dtype=np.uint8)]
    return samples.reshape(-1, fmt.channels)


def encode(samples: npt.NDArray[np.int16], fmt: AudioFormat) -> bytes:
    """int16 frames ``(n, fmt.channels)`` (or 1-D for mono) -> wire bytes."""
    fmt.validate()
    if samples.dtype != np.int16:
        raise TypeError(f"encode expects int16 samples, got {samples.dtype}")
    if samples.ndim == 1 and fmt.channels == 1:
        samples = samples.reshape(-1, 1)
    if samples.ndim != 2 or samples.shape[1] != fmt.channels:
        raise AudioFormatError(
            f"samples of shape {samples.shape} do not match {fmt.channels} channel(s)"
        )
    if fmt.encoding == "pcm_s16le":
        return samples.astype("<i2", copy=False).tobytes()
    table = _ULAW_ENCODE if fmt.encoding == "mulaw" else _ALAW_ENCODE
    return table[np.ascontiguousarray(samples).view(np.uint16)].tobytes()


def to_mono_float(samples: npt.NDArray[np.generic]) -> Float32Array:
    """int16 ``(n, ch)`` or ``(n,)`` -> float32 mono in [-1, 1] (channels averaged).

    Float input is taken as already scaled to [-1, 1] and only downmixed.
    """
    x = np.asarray(samples)
    scale = 1.0 / 32768.0 if x.dtype == np.int16 else 1.0
    if x.ndim == 2:
        mono = x.mean(axis=1, dtype=np.float64) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim == 1:
        mono = x
    else:
        raise ValueError(f"expected (n,) or (n, channels) samples, got shape {x.shape}")
    return (np.asarray(mono, dtype=np.float64) * scale).astype(np.float32)


def to_int16(samples: npt.NDArray[np.floating]) -> Int16Array:
    """float in [-1, 1] -> int16, rounded and clipped (any shape)."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


# --- resampling ---------------------------------------------------------------------

class StreamingResampler:
    """Rational-ratio windowed-sinc (Kaiser) resampler for a stream of chunks.

    Output sample ``k`` is the band-limited input evaluated at input time
    ``k * from_rate / to_rate`` exactly (zero phase), so sample indices on both
    sides stay aligned: there is no group delay to correct for. The price is a
    look-ahead of :attr:`lookahead` input samples (1.6 ms at 48 kHz, 3.3 ms at
    8 kHz): ``push`` returns only the outputs whose input window is complete, and
    :meth:`flush` (end of stream, zero-padded) returns the rest, after which
    ``total_out == floor(total_in * to_rate / from_rate)`` exactly.

    Chunking does not change the result: every output is computed from the same
    inputs with the same taps, whatever the chunk boundaries. Rates equal: the
    input is passed through (as float32) with no look-ahead.

    The filter passes up to 80 % of the lower Nyquist frequency (6.4 kHz for
    16 kHz audio) and stops everything from the lower Nyquist up, by 80 dB, so
    nothing aliases when downsampling and no images survive upsampling.
    """

    _ATTENUATION_DB = 80.0
    _PASSBAND = 0.8  # passband edge as a fraction of the lower Nyquist frequency
    _BLOCK = 4096  # outputs computed per vectorised step; bounds temporary memory
    # Mono streams whose ratio has at most this many phases (8 -> 16 kHz: 2; 48 ->
    # 16 kHz: 1; 24 -> 16 kHz: 2) are filtered phase by phase (_emit_by_phase).
    _POLYPHASE_MAX_UP = 8

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if not (_is_int(from_rate) and _is_int(to_rate)) or from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"rates must be positive integers, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        g = math.gcd(from_rate, to_rate)
        self._up = to_rate // g  # L: output samples per M input samples
        self._down = from_rate // g  # M
        self._total_in = 0
        self._total_out = 0
        self._flushed = False
        self._channels: int | None = None
        self._mono = True
        if from_rate == to_rate:
            self.lookahead = 0
            self._bank = np.ones((1, 1))
        else:
            self.lookahead, self._bank = self._design()
        taps = self._bank.shape[1]
        # Absolute input index of _buf[0]; the K-1 zeros before sample 0 are the
        # stream's implicit silence before it starts.
        self._buf_start = -(taps // 2 - 1) if taps > 1 else 0
        self._buf = np.zeros((max(-self._buf_start, 0), 1))

    def _design(self) -> tuple[int, npt.NDArray[np.float64]]:
        nyquist = 0.5 * min(self.from_rate, self.to_rate)
        stop = nyquist / self.from_rate  # cycles per input sample
        width = stop * (1.0 - self._PASSBAND)
        cutoff = stop - width / 2.0
        a = self._ATTENUATION_DB
        beta = 0.1102 * (a - 8.7)
        # Kaiser's estimate of the length needed for `a` dB over this transition.
        half = math.ceil((a - 7.95) / (14.36 * width) / 2.0)
        phases = np.arange(self._up)[:, None] / self._up
        offsets = np.arange(-half + 1, half + 1)[None, :]
        x = phases - offsets  # distance (input samples) from output time to each tap
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (x / half) ** 2, 0.0, None))) / np.i0(beta)
        bank = 2.0 * cutoff * np.sinc(2.0 * cutoff * x) * window
        bank /= bank.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
        return half, bank

    @property
    def total_in(self) -> int:
        return self._total_in

    @property
    def total_out(self) -> int:
        return self._total_out

    def push(self, samples: npt.NDArray[np.generic]) -> Float32Array:
        """Feed ``(n,)`` or ``(n, channels)`` samples; return the outputs now complete.

        Values are not rescaled (int16 in gives int16-scale floats out). The shape
        (mono or channel count) must stay the same for the whole stream.
        """
        if self._flushed:
            raise RuntimeError("push() after flush(): the stream has ended")
        x = self._as_frames(samples)
        self._total_in += x.shape[0]
        if self._up == self._down:
            self._total_out += x.shape[0]
            return self._shape_out(x)
        self._buf = np.concatenate([self._buf, x]) if self._buf.shape[0] else x
        # Output k needs input up to k*M//L + K; emit every k whose window is in.
        last_needed = self._total_in - 1 - self.lookahead
        ready = -((-(last_needed + 1) * self._up) // self._down) if last_needed >= 0 else 0
        return self._emit(min(ready, self._final_count()))

    def flush(self) -> Float32Array:
        """End of stream: return the remaining outputs (input zero-padded past its end)."""
        if self._flushed:
            return self._shape_out(np.zeros((0, self._channels or 1)))
        self._flushed = True
        if self._up == self._down:
            return self._shape_out(np.zeros((0, self._channels or 1)))
        self._buf = np.concatenate([self._buf, np.zeros((self.lookahead + 1, self._buf.shape[1]))])
        return self._emit(self._final_count())

    def _final_count(self) -> int:
        return (self._total_in * self._up) // self._down

    def _as_frames(self, samples: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
        x = np.asarray(samples, dtype=np.float64)
        mono = x.ndim == 1
        if mono:
            x = x.reshape(-1, 1)
        elif x.ndim != 2:
            raise ValueError(f"expected (n,) or (n, channels) samples, got shape {x.shape}")
        if self._channels is None:
            self._channels, self._mono = x.shape[1], mono
            if self._buf.shape[1] != x.shape[1]:
                self._buf = np.zeros((self._buf.shape[0], x.shape[1]))
        elif x.shape[1] != self._channels or mono != self._mono:
            raise ValueError("channel layout changed in the middle of a stream")
        return x

    def _shape_out(self, y: npt.NDArray[np.float64]) -> Float32Array:
        out = y.astype(np.float32)
        return out[:, 0] if self._mono else out

    def _emit_by_phase(self, end: int) -> npt.NDArray[np.float64]:
        """Outputs ``[total_out, end)`` of a mono stream, one matrix-vector product
        per phase: the outputs ``k, k + L, k + 2L, ...`` share their taps and read
        input windows ``M`` samples apart, a strided view of the buffer (no copy).
        The same sums as the general path; a 20 ms frame costs a few
        microseconds instead of ~100 (gathered windows and ``einsum``)."""
        k0, n = self._total_out, end - self._total_out
        up, down, taps = self._up, self._down, self._bank.shape[1]
        buf = np.ascontiguousarray(self._buf[:, 0])
        step = buf.strides[0]
        out = np.empty((n, 1))
        for r in range(min(up, n)):
            k = k0 + r
            count = (n - r + up - 1) // up  # outputs k, k + up, ... before end
            first = (k * down) // up - self.lookahead + 1 - self._buf_start
            assert first >= 0 and first + (count - 1) * down + taps <= buf.shape[0]
            rows = np.lib.stride_tricks.as_strided(
                buf[first:], shape=(count, taps), strides=(down * step, step), writeable=False)
            out[r::up, 0] = rows @ self._bank[(k * down) % up]
        return out

    def _emit(self, end: int) -> Float32Array:
        taps = self._bank.shape[1]
        half = self.lookahead
        channels = self._buf.shape[1]
        if end <= self._total_out:
            return self._shape_out(np.zeros((0, channels)))
        if channels == 1 and self._up <= self._POLYPHASE_MAX_UP:
            out = self._emit_by_phase(end)
        else:
            out = np.empty((end - self._total_out, channels))
            windows = np.lib.stride_tricks.sliding_window_view(self._buf, taps, axis=0)
            for block in range(self._total_out, end, self._BLOCK):
                ks = np.arange(block, min(block + self._BLOCK, end), dtype=np.int64)
                first = (ks * self._down) // self._up - half + 1 - self._buf_start
                coeffs = self._bank[(ks * self._down) % self._up]
                out[block - self._total_out : ks[-1] + 1 - self._total_out] = np.einsum(
                    "bcj,bj->bc", windows[first], coeffs
                )
        self._total_out = end
        # Drop input no future output can reach.
        keep_from = (self._total_out * self._down) // self._up - half + 1
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._buf_start = keep_from
        return self._shape_out(out)


def resample(samples: npt.NDArray[np.generic], from_rate: int, to_rate: int) -> Float32Array:
    """One-shot resampling of a whole signal (same result as streaming it)."""
    resampler = StreamingResampler(from_rate, to_rate)
    head = resampler.push(samples)
    return np.concatenate([head, resampler.flush()])


# --- tones --------------------------------------------------------------------------

def beep(
    start_sample: int, n: int, rate: int, freq: float = 1000.0, amplitude: float = 0.2
) -> Float32Array:
    """``n`` samples of a sine tone starting at absolute sample ``start_sample``.

    The phase depends only on the absolute sample index, so consecutive chunks
    (``beep(0, a)``, ``beep(a, b)``) join without clicks.
    """
    idx = np.arange(start_sample, start_sample + n, dtype=np.int64)
    # Reduce the cycle count modulo 1 in exact-ish float64 before 2*pi, so the
    # phase stays precise hours into a stream.
    cycles = np.mod(idx * float(freq), float(rate)) / float(rate)
    return (amplitude * np.sin(2.0 * np.pi * cycles)).astype(np.float32)


# --- WAV files (edges only: CLI, tests, benchmarks) -------------------------------

def read_wav(path: str | PathLike[str]) -> tuple[Int16Array, int]:
    """Read a 16-bit PCM WAV file -> (int16 frames ``(n, channels)``, sample rate)."""
    try:
        with wave.open(str(path), "rb") as wav:
            width = wav.getsampwidth()
            if width != 2:
                raise AudioFormatError(
                    f"{path}: only 16-bit PCM WAV is supported (got {8 * width}-bit)"
                )
            channels, rate = wav.getnchannels(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a 16-bit PCM WAV file ({exc})") from exc
    usable = len(data) - len(data) % (2 * channels)  # tolerate a truncated last frame
    samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
    return samples.reshape(-1, channels), rate


def write_wav(path: str | PathLike[str], samples: npt.NDArray[np.int16], rate: int) -> None:
    """Write int16 frames ``(n, channels)`` (or 1-D mono) as a 16-bit PCM WAV file."""
    x = np.asarray(samples)
    if x.dtype != np.int16:
        raise AudioFormatError(f"write_wav expects int16 samples, got {x.dtype}")
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.ndim != 2:
        raise AudioFormatError(f"expected (n,) or (n, channels) samples, got shape {x.shape}")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(x.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(int(rate))
        wav.writeframes(x.astype("<i2", copy=False).tobytes())
