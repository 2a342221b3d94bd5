"""Mask planning and the delay line: the latency contract lives here.

:class:`MaskPlan` keeps the sample ranges (analysis rate) that must not be
heard, padded and merged. :class:`DelayLine` holds the client's own samples
until they are released, and applies beep or silence with short fades where
the release mask says so. Neither knows about clocks: the session tells the
delay line how far to release and which samples to mask.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .types import ANALYSIS_RATE, SampleSpan


class MaskPlan:
    """Merged, padded ``[start, end)`` ranges to mask. Union only: never shrinks.

    Once a range is planned it stays (a later hypothesis that no longer sees
    the entity does not un-mask audio: union of evidence, fail closed).
    """

    def __init__(self, padding: int) -> None:
        self.padding = padding
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        start, end = max(0, start - self.padding), end + self.padding
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def add_spans(self, spans: list[SampleSpan]) -> None:
        for span in spans:
            self.add(span.start, span.end)

    def ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """The planned ranges overlapping ``[start, end)``, clipped to it."""
        i = bisect.bisect_right(self._ends, start)
        out = []
        while i < len(self._starts) and self._starts[i] < end:
            out.append((max(start, self._starts[i]), min(end, self._ends[i])))
            i += 1
        return out

    def forget_before(self, sample: int) -> None:
        """Drop ranges that end before ``sample`` (already released)."""
        i = bisect.bisect_right(self._ends, sample)
        del self._starts[:i]
        del self._ends[:i]

    def __len__(self) -> int:
        return len(self._starts)


# A redacted word's mask reaches into the gaps beside it (Whisper's word times are
# off by 0.1-0.5 s and sometimes zero-length) up to the neighbouring words, at most
# this far, and is never shorter than the minimum.
MAX_GAP_EXTENSION = ANALYSIS_RATE * 4 // 10  # 0.4 s
MIN_MASK = ANALYSIS_RATE * 3 // 10  # 0.3 s


def cover_words(
    start: int, end: int, prev_end: int | None, next_start: int | None
) -> tuple[int, int]:
    """Samples to mask for words ``[start, end)`` between their kept neighbours.

    The mask runs from the previous kept word's end to the next kept word's start
    (each gap bounded by ``MAX_GAP_EXTENSION``), so speech Whisper timed too short
    is covered; it lasts at least ``MIN_MASK``, centred on the words.
    """
    end = max(end, start)
    lo = start if prev_end is None else max(min(prev_end, start), start - MAX_GAP_EXTENSION)
    # Nothing known after the words yet: padding and later passes cover the rest.
    hi = end if next_start is None else min(max(next_start, end), end + MAX_GAP_EXTENSION)
    short = MIN_MASK - (hi - lo)
    if short > 0:
        lo, hi = lo - short // 2, hi + short - short // 2
    return max(0, lo), hi


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of ``[lo, hi)`` ranges; touching ranges join, empty ones go."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if lo >= hi:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def ranges_to_mask(ranges: list[tuple[int, int]], start: int, n: int) -> np.ndarray:
    """Boolean array for samples ``[start, start+n)`` true inside ``ranges``."""
    mask = np.zeros(n, dtype=bool)
    for lo, hi in ranges:
        mask[max(lo - start, 0) : max(min(hi - start, n), 0)] = True
    return mask


@dataclass(frozen=True, slots=True)
class Released:
    """A block of released output: samples ``[start, start+len)`` of the stream."""

    start: int
    samples: np.ndarray  # int16 (n, channels)
    masked: np.ndarray  # bool (n,), true where the output no longer carries the input


class DelayLine:
    """Holds input until release; every sample comes out exactly once, in order.

    ``push`` appends samples (client rate); ``release(until, mask)`` returns
    samples ``[released, until)`` with ``mask`` applied. Masked audio is
    replaced by a phase-continuous 1 kHz beep or by silence; the change is
    ramped over ``fade`` samples inside the masked range to avoid clicks.
    """

    def __init__(
        self,
        rate: int,
        channels: int,
        mode: str = "beep",
        fade: int = 0,
        beep_hz: float = 1000.0,
        beep_amplitude: float = 0.2,
    ) -> None:
        self.rate = rate
        self.channels = channels
        self.mode = mode
        self.fade = max(1, fade or rate // 200)  # 5 ms
        self._omega = 2 * np.pi * beep_hz / rate
        self._beep_amp = beep_amplitude * 32767
        self._pending: deque[np.ndarray] = deque()
        self.pushed = 0
        self.released = 0
        self._level = 0.0  # current mask level: 0 passes, 1 fully masked
        self._channel_levels = [0.0] * channels  # the same, for per-channel masks

    @property
    def held(self) -> int:
        """Samples pushed and not yet released."""
        return self.pushed - self.released

    def push(self, samples: np.ndarray) -> None:
        if samples.ndim != 2 or samples.shape[1] != self.channels:
            raise ValueError("samples must be shaped (n, channels)")
        if samples.shape[0]:
            self._pending.append(samples)
            self.pushed += samples.shape[0]

    def release(self, until: int, mask: np.ndarray) -> Released:
        """Release ``[released, until)``; ``mask`` has one bool per released sample
        (every channel), or one per sample and channel, shaped ``(n, channels)``
        (each channel masked on its own: the two legs of a bridge)."""
        until = min(until, self.pushed)
        n = max(0, until - self.released)
        if mask.shape not in ((n,), (n, self.channels)):
            raise ValueError(f"mask must have {n} entries (or {n} x {self.channels})")
        out = self._take(n)
        start = self.released
        self.released += n
        masked: np.ndarray = mask if mask.ndim == 1 else np.asarray(mask.any(axis=1))
        if n == 0:
            return Released(start, out, masked)
        if mask.ndim == 1:
            level = self._levels(mask)[:, None]
        else:
            level = np.stack([self._levels(mask[:, c], c) for c in range(self.channels)],
                             axis=1)
        if level.any():
            mixed = out.astype(np.float32) * (1.0 - level)
            if self.mode == "beep":
                t = np.arange(start, start + n, dtype=np.float64)
                tone = (np.sin(self._omega * t) * self._beep_amp).astype(np.float32)
                mixed += tone[:, None] * level
            out = np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
        return Released(start, out, masked)

    def _take(self, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, self.channels), dtype=np.int16)
        # Take whole blocks from the front and split at most one: a release
        # costs what it releases, not what is still held (D of audio).
        parts, need = [], n
        while need:
            block = self._pending[0]
            if block.shape[0] <= need:
                parts.append(self._pending.popleft())
                need -= block.shape[0]
            else:
                parts.append(block[:need])
                self._pending[0] = block[need:]
                need = 0
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _levels(self, mask: np.ndarray, channel: int | None = None) -> np.ndarray:
        """Slew-limited mask level, run by run (few runs per block); per channel
        when channels are masked on their own."""
        n = mask.shape[0]
        cur = self._level if channel is None else self._channel_levels[channel]
        if cur == 0.0 and not mask.any():
            return np.zeros(n, dtype=np.float32)  # the usual block: nothing masked or fading
        level = np.empty(n, dtype=np.float32)
        step = 1.0 / self.fade
        edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
        bounds = [0, *edges.tolist(), n]
        for lo, hi in itertools.pairwise(bounds):
            target = 1.0 if mask[lo] else 0.0
            k = np.arange(1, hi - lo + 1, dtype=np.float32)
            if target > cur:
                seg = np.minimum(cur + k * step, 1.0)
            elif target < cur:
                seg = np.maximum(cur - k * step, 0.0)
            else:
                seg = np.full(hi - lo, target, dtype=np.float32)
            level[lo:hi] = seg
            cur = float(seg[-1])
        if channel is None:
            self._level = cur
        else:
            self._channel_levels[channel] = cur
        return level
