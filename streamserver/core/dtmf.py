"""Streaming DTMF (keypad tone) detection: pure numpy, no I/O.

Card numbers and PINs keyed on a phone keypad never reach the recogniser as
words, so the session masks keyed tones like spoken PII. This module only
detects: :class:`DtmfDetector` takes mono float samples and returns the sample
spans of confirmed tones; deciding what to do with them is the session's job.

Method
------
The signal is cut into blocks of ``block_ms`` (13.25 ms: the classic 106
samples at 8 kHz, scaled with the rate), one every quarter block. One matrix
product per batch of blocks gives the DFT value (a Goertzel filter's output) at
the eight DTMF frequencies (rows 697-941 Hz, columns 1209-1633 Hz) with a
rectangular and with a Hann window, and at their second harmonics. A block
holds digit ``d`` when all of these hold:

* one row and one column tone stand ``min_group_margin_db`` above the other
  three of their group (rectangular window: at this length its nulls fall
  ~75 Hz apart, on the neighbouring rows, so a row tone does not leak into them);
* each tone is at least ``min_tone_dbm0`` (Hann amplitude, flat across the
  accepted band, so a tone 1.5 % off is not read as quieter);
* the twist (level difference) is within ``max_normal_twist_db`` (high tone
  weaker, as line loss makes it) and ``max_reverse_twist_db`` (high tone
  stronger); Q.24 asks that 8 dB and 4 dB be accepted;
* the two tones hold ``min_tone_ratio`` of the block's energy and each second
  harmonic is ``max_harmonic_db`` below its fundamental: speech and music spread
  their energy over many frequencies and harmonics, a keypad does not.

Frequency tolerance (ITU-T Q.24: within 1.5 % must be accepted, 3.5 % or more
off must be rejected) cannot come from the filters' magnitudes: a 13.25 ms
filter is ~75 Hz wide, while 3.5 % of 697 Hz is 24 Hz. It comes from the phase:
from one block to the next a tone ``df`` Hz off turns the Hann-windowed DFT by
``2*pi*df*hop/rate`` more than a tone on frequency, unambiguous up to +-150 Hz
and precise to ~0.1 % (the Hann window keeps the other group's tone out). A
*hit* is a pair of consecutive blocks that hold the same digit with both tones
within ``max_freq_deviation`` (2.5 %, the middle of Q.24's don't-care band); it
covers the samples of both blocks.

Timing
------
Hits of one digit at most ``max_dropout_ms`` apart form one tone; since hits
overshoot a tone's edges, that bridges silences up to 18 ms and splits from
28 ms on (Q.24: interruptions of 10 ms must be bridged, pauses of 40 ms must
separate digits). A tone is confirmed once its hits cover ``min_tone_ms``:
23 ms tones cover at most 33 ms, 40 ms tones at least 39 ms (Q.24: >= 40 ms
accepted, < 23 ms rejected). ``start`` is the first sample of the first hit
and ``end`` one past the last sample of the last hit so far: for a clean tone,
1-6 ms before its onset and 1-7 ms after its end (early and late rather than
the reverse: masking errs closed). A tone is first reported 30-35 ms after
its onset, with that onset, then again as it grows.

Everything is decided per block and block ``b`` always covers samples
``[b * hop, b * hop + block)``, so the tones found do not depend on how the
input is chunked. Cost, measured on 20 ms frames of speech: ~40 us per frame
(about 2 ms per second of audio) at any rate, ~90 us while tones are keyed;
most blocks of speech or silence fail the first, cheapest checks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

ROW_FREQS = (697, 770, 852, 941)
COL_FREQS = (1209, 1336, 1477, 1633)
KEYPAD = ("123A", "456B", "789C", "*0#D")  # KEYPAD[row][col]
DIGITS = "".join(KEYPAD)

# G.711: a full-scale sine is +3.17 dBm0 (mu-law), so 0 dBm0 is this amplitude
# on the [-1, 1] scale.
_DBM0_AMPLITUDE = 10 ** (-3.17 / 20)
_FREQS = np.array(ROW_FREQS + COL_FREQS, dtype=np.float64)
_NO_DIGIT = -1
# Blocks start every quarter block: edges are found to ~3 ms, so 23 ms and
# 40 ms tones land on different sides of the confirmation threshold.
_HOPS_PER_BLOCK = 4

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DtmfConfig:
    """Detection thresholds. Defaults follow ITU-T Q.24; each says why."""

    # 106 samples at 8 kHz: rectangular nulls ~75 Hz apart fall on the
    # neighbouring rows (73-89 Hz apart), and a hit fits well inside a 23 ms
    # tone. The timing defaults below were measured for this length.
    block_ms: float = 13.25
    # Per tone. Q.24's administrations accept down to about -25 dBm0 per tone;
    # 5 dB of margin below that, and far above line noise.
    min_tone_dbm0: float = -30.0
    # Strongest tone of a group over the runner-up. A tone 1.5 % off leads its
    # neighbours by >= 13 dB alone, but the other group's leakage at 8 dB of
    # twist can take ~6 dB of that; two rows at once (speech, chords) fail.
    min_group_margin_db: float = 6.0
    # Q.24: up to 8 dB normal twist (high tone weaker) and 4 dB reverse must
    # be accepted (spandsp's convention). The limits sit 1 dB further out
    # because leakage and a 1.5 % offset misread the twist by up to ~0.5 dB;
    # 10 dB normal / 6 dB reverse are rejected.
    max_normal_twist_db: float = 9.0
    max_reverse_twist_db: float = 5.0
    # Share of the block's energy in the two tones (the main speech immunity).
    # Clean or G.711 tones give > 0.9 (1.5 % off: > 0.85); 1 % of blocks of
    # active speech exceed 0.7 (4 % exceed 0.5), and the other checks and the
    # confirmation time remove those. Tones >= 15 dB above speech pass while
    # it talks; quieter ones in its pauses.
    min_tone_ratio: float = 0.7
    # Second harmonic relative to its fundamental (a keypad makes almost none;
    # voiced sounds and music do). Skipped where the digit's other tone lies
    # within two filter widths of the harmonic (its leakage would fail it).
    max_harmonic_db: float = -10.0
    # Q.24: <= 1.5 % accepted, >= 3.5 % rejected; cut in the middle.
    max_freq_deviation: float = 0.025
    # Coverage needed to confirm, between the most a 23 ms tone covers (33 ms)
    # and the least a 40 ms tone does (39 ms).
    min_tone_ms: float = 36.0
    # Largest gap between hits still bridged (Q.24: 10 ms interruptions must
    # be bridged; 40 ms pauses must separate two digits).
    max_dropout_ms: float = 15.0

    def __post_init__(self) -> None:
        if not 5.0 <= self.block_ms <= 30.0:
            raise ValueError(f"DTMF block_ms must be in [5, 30], got {self.block_ms}")
        if not 0.0 < self.min_tone_ratio <= 1.0:
            raise ValueError(f"DTMF min_tone_ratio must be in (0, 1], got {self.min_tone_ratio}")
        if not 0.0 < self.max_freq_deviation < 0.05:
            raise ValueError(
                f"DTMF max_freq_deviation must be in (0, 0.05), got {self.max_freq_deviation}"
            )
        for name in ("min_group_margin_db", "max_normal_twist_db", "max_reverse_twist_db",
                     "min_tone_ms", "max_dropout_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"DTMF {name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class DtmfTone:
    """A confirmed keypad tone: samples ``[start, end)`` of the stream fed to ``push``.

    Reported again with a larger ``end`` while it lasts; ``final`` marks the
    last report (the tone has ended). ``digit`` is personal data: never log it.
    """

    start: int
    end: int
    digit: str
    final: bool = False


@dataclass(slots=True)
class _Run:
    """Hits of one digit so far (possibly not yet confirmed)."""

    digit: int
    start: int
    end: int
    confirmed: bool = False


class DtmfDetector:
    """Streaming DTMF detector: ``push`` samples, get confirmed tones back.

    Call :meth:`push` with consecutive float mono samples in [-1, 1] (any chunk
    size, including empty), then :meth:`flush` once at the end of the stream.
    Both return :class:`DtmfTone` reports, at most one per tone per call, in
    order of ``start``; the caller unions their spans. Not thread-safe.

    ``min_batch_ms`` > 0 analyses only once that much new audio is held: the same
    tones, reported up to that much later, for a third of the cost at 60 ms when
    fed 20 ms frames (the live path; benchmarks/cpu_costs.py).
    """

    def __init__(self, rate: int = 16000, cfg: DtmfConfig | None = None,
                 min_batch_ms: float = 0.0) -> None:
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 8000:
            raise ValueError(f"DTMF detection needs an integer rate >= 8000 Hz, got {rate!r}")
        self.rate = rate
        self.cfg = cfg = cfg or DtmfConfig()
        self.block = round(rate * cfg.block_ms / 1000)
        self.hop = round(self.block / _HOPS_PER_BLOCK)
        self._min_tone = round(cfg.min_tone_ms * rate / 1000)
        self._max_dropout = round(cfg.max_dropout_ms * rate / 1000)
        if not 0.0 <= min_batch_ms <= 200.0:
            raise ValueError(f"DTMF min_batch_ms must be in [0, 200], got {min_batch_ms}")
        # Unanalysed samples to wait for before analysing: the cost is mostly
        # per call (a few dozen small numpy operations), not per sample.
        self._min_batch = round(min_batch_ms * rate / 1000)
        self._basis, hann_gain = self._design()
        self._min_amplitude = _DBM0_AMPLITUDE * 10 ** (cfg.min_tone_dbm0 / 20)
        self._hann_to_amplitude = 2.0 / hann_gain  # |X| of a sine of amplitude A is A*gain/2
        self._margin = 10 ** (cfg.min_group_margin_db / 10)
        self._max_normal = 10 ** (cfg.max_normal_twist_db / 20)  # amplitude ratios
        self._max_reverse = 10 ** (cfg.max_reverse_twist_db / 20)
        self._harmonic = 10 ** (cfg.max_harmonic_db / 10)
        self._check_harmonic = self._harmonic_mask()
        # Phase a tone exactly on frequency turns through from one block to the next.
        self._hop_turn = np.exp(-2j * np.pi * _FREQS * self.hop / rate)
        self._max_turn = 2 * np.pi * cfg.max_freq_deviation * _FREQS * self.hop / rate
        if self._max_turn.max() >= np.pi / 2:
            raise ValueError("DTMF block_ms too long for max_freq_deviation (phase would wrap)")
        self._buf = np.zeros(0, dtype=np.float64)
        self._buf_start = 0  # stream index of _buf[0]
        self._pushed = 0
        self._next_block = 0  # index of the next block to analyse
        self._prev_digit = _NO_DIGIT  # previous block's candidate digit
        self._prev_hann = np.zeros(8, dtype=np.complex128)
        self._run: _Run | None = None
        self._flushed = False

    def _design(self) -> tuple[FloatArray, float]:
        """Columns: rect cos/sin (8+8), Hann cos/sin (8+8), 2nd-harmonic rect cos/sin (8+8)."""
        n = np.arange(self.block, dtype=np.float64)
        omega = 2 * np.pi * _FREQS[None, :] * n[:, None] / self.rate
        harm = 2 * omega
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / self.block)
        h = hann[:, None]
        basis = np.hstack([
            np.cos(omega), np.sin(omega), h * np.cos(omega), h * np.sin(omega),
            np.cos(harm), np.sin(harm),
        ])
        return np.ascontiguousarray(basis), float(hann.sum())

    def _harmonic_mask(self) -> npt.NDArray[np.bool_]:
        """(16 digits, 2): whether to test the row's / column's second harmonic."""
        width = self.rate / self.block  # filter width (first null), Hz
        # Column harmonics (2418-3266 Hz) are clear of every tone: always tested.
        mask = np.ones((16, 2), dtype=bool)
        for r, fr in enumerate(ROW_FREQS):
            for c, fc in enumerate(COL_FREQS):
                mask[4 * r + c, 0] = abs(2 * fr - fc) >= 2 * width
        return mask

    @property
    def pushed(self) -> int:
        """Samples pushed so far (the stream index of the next sample)."""
        return self._pushed

    @property
    def settled_until(self) -> int:
        """No future report adds coverage before this stream index.

        Audio before it can be released without waiting for this detector. It
        lags :attr:`pushed` by about 1.5 blocks (~20 ms), and by at most
        ``min_tone_ms + max_dropout_ms`` + 1.5 blocks (~70 ms) while a
        possible tone is being confirmed or a dropout bridged; plus up to
        ``min_batch_ms`` while audio waits for a batch.
        """
        settled = max(0, (self._next_block - 1) * self.hop)
        run = self._run
        if run is not None:
            settled = min(settled, run.end if run.confirmed else run.start)
        return settled

    def push(self, samples: npt.ArrayLike) -> list[DtmfTone]:
        """Feed the next mono samples (float in [-1, 1]); return tone reports.

        A tone is reported once confirmed, again whenever it grows, and a last
        time (``final=True``) once ended. Raises ``RuntimeError`` after
        :meth:`flush`.
        """
        if self._flushed:
            raise RuntimeError("push() after flush(): the stream has ended")
        x = np.asarray(samples)
        if not np.issubdtype(x.dtype, np.floating):
            # int16 straight off the wire would pass every level check.
            raise TypeError(f"DTMF detector expects float samples in [-1, 1], got {x.dtype}")
        x = x.astype(np.float64)  # a copy: the caller may reuse its buffer
        if x.ndim != 1:
            raise ValueError(f"DTMF detector expects mono (n,) samples, got shape {x.shape}")
        self._pushed += x.shape[0]
        self._buf = np.concatenate([self._buf, x]) if self._buf.shape[0] else x
        if self._pushed - self._next_block * self.hop < self._min_batch + self.block:
            return []  # batched: too few new blocks yet (the tones found do not change)
        return self._analyse()

    def flush(self) -> list[DtmfTone]:
        """End of stream: analyse the tail (zero-padded) and end any open tone."""
        if self._flushed:
            return []
        self._flushed = True
        # Zero-pad (silence after the stream) so every pushed sample lies in an
        # analysed block: blocks up to the last one starting before the end.
        last = -(-self._pushed // self.hop) - 1
        pad = last * self.hop + self.block - self._buf_start - self._buf.shape[0]
        if pad > 0:
            self._buf = np.concatenate([self._buf, np.zeros(pad)])
        reports = {t.start: t for t in self._analyse()}
        if self._run is not None and self._run.confirmed:
            reports[self._run.start] = self._tone(self._run, final=True)
        self._run = None
        # Coverage of the padded blocks stops at the end of the stream.
        return [
            replace(t, end=min(t.end, self._pushed))
            for t in sorted(reports.values(), key=lambda t: t.start)
        ]

    # --- analysis -------------------------------------------------------------------

    def _analyse(self) -> list[DtmfTone]:
        first_start = self._next_block * self.hop - self._buf_start
        available = self._buf.shape[0] - first_start
        count = (available - self.block) // self.hop + 1 if available >= self.block else 0
        if count <= 0:
            return []
        buf = self._buf[first_start:]
        step = buf.strides[0]
        frames = np.lib.stride_tricks.as_strided(
            buf, shape=(count, self.block), strides=(self.hop * step, step), writeable=False
        )
        digits, hann = self._classify(frames)
        if (digits == _NO_DIGIT).all():
            # The usual case (speech, silence): no pair can hit, nothing to pair with next.
            hits = np.zeros(count, dtype=bool)
            self._prev_digit = _NO_DIGIT
        else:
            hits = self._pair_hits(digits, hann)
        reports = self._track(hits, digits)
        self._next_block += count
        keep = self._next_block * self.hop - self._buf_start
        self._buf = self._buf[keep:].copy()
        self._buf_start += keep
        return reports

    def _classify(
        self, frames: FloatArray
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.complex128]]:
        """Per block: candidate digit (0-15 or -1) and the Hann DFT at the 8 tones."""
        out = frames @ self._basis
        hann = out[:, 16:24] - 1j * out[:, 24:32]
        amp = np.abs(hann) * self._hann_to_amplitude
        total = np.einsum("bn,bn->b", frames, frames)
        # Cheap necessary conditions first (level and energy share of the
        # loudest row and column); most blocks of speech or silence stop here.
        top_r, top_c = amp[:, :4].max(axis=1), amp[:, 4:].max(axis=1)
        maybe = (top_r >= self._min_amplitude) & (top_c >= self._min_amplitude)
        maybe &= 0.5 * (top_r**2 + top_c**2) * self.block >= self.cfg.min_tone_ratio * total
        if not maybe.any():
            return np.full(frames.shape[0], _NO_DIGIT, dtype=np.int64), hann
        rect = out[:, 0:8] ** 2 + out[:, 8:16] ** 2  # |X|^2
        harm = out[:, 32:40] ** 2 + out[:, 40:48] ** 2

        rows, cols = rect[:, :4], rect[:, 4:]
        r = rows.argmax(axis=1)
        c = cols.argmax(axis=1)
        idx = np.arange(frames.shape[0])
        best_r, best_c = rows[idx, r], cols[idx, c]
        second_r = np.partition(rows, 2, axis=1)[:, 2]
        second_c = np.partition(cols, 2, axis=1)[:, 2]
        amp_r, amp_c = amp[idx, r], amp[idx, 4 + c]
        digit = 4 * r + c
        harm_check = self._check_harmonic[digit]

        ok = (best_r >= self._margin * second_r) & (best_c >= self._margin * second_c)
        ok &= (amp_r >= self._min_amplitude) & (amp_c >= self._min_amplitude)
        ok &= (amp_r <= self._max_normal * amp_c) & (amp_c <= self._max_reverse * amp_r)
        # A sine of amplitude A puts A^2/2 per sample into the block. Hann
        # amplitudes, not the rectangular |X|^2: these lose 1.5 dB at 1.5 % off.
        ok &= 0.5 * (amp_r**2 + amp_c**2) * self.block >= self.cfg.min_tone_ratio * total
        ok &= ~harm_check[:, 0] | (harm[idx, r] <= self._harmonic * best_r)
        ok &= ~harm_check[:, 1] | (harm[idx, 4 + c] <= self._harmonic * best_c)
        return np.where(ok, digit, _NO_DIGIT), hann

    def _pair_hits(
        self, digits: npt.NDArray[np.int64], hann: npt.NDArray[np.complex128]
    ) -> npt.NDArray[np.bool_]:
        """Per block ``b``: blocks ``b-1`` and ``b`` hold one digit on frequency."""
        prev_digits = np.concatenate([[self._prev_digit], digits[:-1]])
        prev_hann = np.vstack([self._prev_hann[None, :], hann[:-1]])
        turn = np.abs(np.angle(hann * np.conj(prev_hann) * self._hop_turn))
        within = turn <= self._max_turn
        r = np.maximum(digits, 0) // 4
        c = np.maximum(digits, 0) % 4
        idx = np.arange(digits.shape[0])
        hits = (digits != _NO_DIGIT) & (digits == prev_digits)
        hits &= within[idx, r] & within[idx, 4 + c]
        self._prev_digit = int(digits[-1])
        self._prev_hann = hann[-1].copy()
        return hits

    def _track(
        self, hits: npt.NDArray[np.bool_], digits: npt.NDArray[np.int64]
    ) -> list[DtmfTone]:
        """Advance the tone state machine block by block; one report per touched tone."""
        reports: dict[int, DtmfTone] = {}
        hop, block = self.hop, self.block
        for i, (hit, digit) in enumerate(zip(hits.tolist(), digits.tolist(), strict=True)):
            b = self._next_block + i
            run = self._run
            if hit:
                start, end = (b - 1) * hop, b * hop + block
                if run is not None and run.digit == digit and start - run.end <= self._max_dropout:
                    run.end = end
                else:
                    self._close(reports)
                    run = self._run = _Run(digit, start, end)
                if not run.confirmed and run.end - run.start >= self._min_tone:
                    run.confirmed = True
                if run.confirmed:
                    reports[run.start] = self._tone(run, final=False)
            elif run is not None and b * hop - run.end > self._max_dropout:
                # Even a hit on the next pair (starting at this block) would be too late.
                self._close(reports)
        return sorted(reports.values(), key=lambda t: t.start)

    def _close(self, reports: dict[int, DtmfTone]) -> None:
        run, self._run = self._run, None
        if run is not None and run.confirmed:
            reports[run.start] = self._tone(run, final=True)

    @staticmethod
    def _tone(run: _Run, *, final: bool) -> DtmfTone:
        return DtmfTone(run.start, run.end, KEYPAD[run.digit // 4][run.digit % 4], final)


def digit_freqs(digit: str) -> tuple[int, int]:
    """The (row, column) frequencies in Hz of a keypad ``digit`` ("0"-"9", "*", "#", "A"-"D")."""
    for r, keys in enumerate(KEYPAD):
        if digit in keys and len(digit) == 1:
            return ROW_FREQS[r], COL_FREQS[keys.index(digit)]
    raise ValueError(f"not a DTMF digit: {digit!r}")


__all__ = ["COL_FREQS", "DIGITS", "KEYPAD", "ROW_FREQS", "DtmfConfig", "DtmfDetector",
           "DtmfTone", "digit_freqs"]
