"""Speech segments from a VAD model's per-window speech probabilities.

Pure logic (no model, no I/O): feed it the probabilities of consecutive windows
(Silero: one per 512 samples at 16 kHz) and it reports speech starts and ends as
sample indices, with hysteresis like silero-vad's ``VADIterator``:

* a segment starts at a window with ``prob >= threshold`` once speech (every
  window ``>= neg_threshold``) has lasted ``min_speech_ms``; the start is
  back-dated to that first window, minus ``speech_pad_ms`` of pre-roll;
* it ends once ``min_silence_ms`` of windows have all been ``< neg_threshold``;
  the end is the start of that silence plus ``speech_pad_ms``.

Lifecycle: ``push`` (any number of times) -> events; ``flush`` ends an open
segment at the frontier; ``forget_before`` keeps memory bounded on long streams.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from streamserver.core.redact import merge_ranges
from streamserver.core.types import ms_to_samples


@dataclass(frozen=True, slots=True)
class VadConfig:
    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech_ms: int = 120
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    window: int = 512  # samples per probability (Silero at 16 kHz)

    def __post_init__(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold <= 1.0:
            raise ValueError(
                "VAD thresholds must satisfy 0 < neg_threshold <= threshold <= 1, got "
                f"neg_threshold={self.neg_threshold}, threshold={self.threshold}"
            )
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAD {name} must be >= 0, got {getattr(self, name)}")
        if self.window <= 0:
            raise ValueError(f"VAD window must be a positive sample count, got {self.window}")

    @property
    def min_speech_samples(self) -> int:
        return ms_to_samples(self.min_speech_ms)

    @property
    def min_silence_samples(self) -> int:
        return ms_to_samples(self.min_silence_ms)

    @property
    def pad_samples(self) -> int:
        return ms_to_samples(self.speech_pad_ms)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech confirmed; ``start`` (sample, pre-roll included) may lie in the past."""

    start: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """A finished segment ``[start, end)``; ``end`` includes the trailing pad.

    ``end`` can exceed the frontier when ``speech_pad_ms > min_silence_ms``.
    """

    start: int
    end: int


VadEvent = SpeechStarted | SpeechEnded


class _State(Enum):
    SILENCE = "silence"
    CANDIDATE = "candidate"  # above threshold, not yet long enough to confirm
    SPEECH = "speech"


class VadSegmenter:
    """Turns per-window speech probabilities into padded speech segments.

    Probability ``i`` pushed over the segmenter's life covers samples
    ``[i * window, (i + 1) * window)``. Everything before :attr:`frontier` has
    been classified; samples from the frontier on are unknown.
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self._windows = 0
        self._state = _State.SILENCE
        self._candidate_start = 0  # first window >= threshold of the candidate
        self._segment_start = 0  # reported start of the open segment
        self._silence_start: int | None = None  # first sample of the current silence run
        self._last_end = 0  # new segments never start before this
        self._closed: deque[tuple[int, int]] = deque()
        self._forgotten = 0
        # Probabilities of the last windows a future start's pre-roll could reach.
        reach = math.ceil(self.config.pad_samples / self.config.window) + 1
        self._recent: deque[tuple[int, float]] = deque(maxlen=reach)

    @property
    def frontier(self) -> int:
        """Samples classified so far (a multiple of ``config.window``)."""
        return self._windows * self.config.window

    @property
    def in_speech(self) -> bool:
        """True while a confirmed segment is open (a ``SpeechStarted`` without its end)."""
        return self._state is _State.SPEECH

    @property
    def speech_start(self) -> int | None:
        """Start of the open segment, or None."""
        return self._segment_start if self._state is _State.SPEECH else None

    @property
    def segments(self) -> tuple[tuple[int, int], ...]:
        """Finished segments ``(start, end)`` still held (see :meth:`forget_before`)."""
        return tuple(self._closed)

    def push(self, probs: Sequence[float]) -> list[VadEvent]:
        """Classify the next ``len(probs)`` windows; return the events they cause."""
        cfg = self.config
        events: list[VadEvent] = []
        for prob in probs:
            window_start = self.frontier
            window_end = window_start + cfg.window
            if self._state is _State.SPEECH:
                if prob < cfg.neg_threshold:
                    if self._silence_start is None:
                        self._silence_start = window_start
                    if window_end - self._silence_start >= cfg.min_silence_samples:
                        events.append(self._close(self._silence_start + cfg.pad_samples))
                else:
                    # Any window that is not clearly silence keeps the segment open.
                    self._silence_start = None
            else:
                if self._state is _State.SILENCE and prob >= cfg.threshold:
                    self._state = _State.CANDIDATE
                    self._candidate_start = window_start
                elif self._state is _State.CANDIDATE and prob < cfg.neg_threshold:
                    self._state = _State.SILENCE  # too short: a click, not speech
                if (
                    self._state is _State.CANDIDATE
                    and window_end - self._candidate_start >= cfg.min_speech_samples
                ):
                    self._state = _State.SPEECH
                    self._segment_start = self._padded_start()
                    self._silence_start = None
                    events.append(SpeechStarted(self._segment_start))
            self._recent.append((window_start, float(prob)))
            self._windows += 1
        return events

    def flush(self) -> list[VadEvent]:
        """Settle everything up to the frontier (end of input, or a forced boundary).

        An open segment ends at the frontier; an unconfirmed candidate is dropped
        (shorter than ``min_speech_ms``). Segments found after a flush never
        reach back before it.
        """
        events: list[VadEvent] = []
        if self._state is _State.SPEECH:
            events.append(self._close(max(self.frontier, self._segment_start)))
        self._state = _State.SILENCE
        self._last_end = max(self._last_end, self.frontier)
        self._recent.clear()
        return events

    def speech_intervals(
        self, start: int, end: int, *, unknown_as_speech: bool = True
    ) -> list[tuple[int, int]]:
        """Sorted, merged speech intervals within ``[start, end)`` (clipped to it).

        Fails closed: besides finished segments this counts as speech the open
        segment up to the frontier, an unconfirmed candidate with its pre-roll,
        and recent windows with ``prob >= neg_threshold`` that a future start's
        pre-roll could still cover. Samples from the frontier on are unknown and
        count as speech unless ``unknown_as_speech`` is False.

        Raises ValueError for ``start`` before the point given to ``forget_before``.
        """
        if start < self._forgotten:
            raise ValueError(
                f"speech_intervals from {start}: samples before {self._forgotten} were forgotten"
            )
        cfg = self.config
        frontier = self.frontier
        spans = list(self._closed)
        if self._state is _State.SPEECH:
            spans.append((self._segment_start, frontier))
        elif self._state is _State.CANDIDATE:
            spans.append((self._padded_start(), frontier))
        else:
            reach = frontier - cfg.pad_samples
            spans.extend(
                (w, w + cfg.window)
                for w, prob in self._recent
                if prob >= cfg.neg_threshold and w + cfg.window > reach
            )
        if unknown_as_speech:
            spans.append((frontier, max(end, frontier)))
        return _clip_and_merge(spans, start, end)

    def forget_before(self, sample: int) -> None:
        """Drop finished segments that end at or before ``sample``; later queries
        must not start before it."""
        self._forgotten = max(self._forgotten, sample)
        while self._closed and self._closed[0][1] <= self._forgotten:
            self._closed.popleft()

    def _padded_start(self) -> int:
        return max(0, self._candidate_start - self.config.pad_samples, self._last_end)

    def _close(self, end: int) -> SpeechEnded:
        event = SpeechEnded(self._segment_start, end)
        self._closed.append((event.start, event.end))
        self._last_end = end
        self._state = _State.SILENCE
        self._silence_start = None
        return event


def _clip_and_merge(spans: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    return merge_ranges((max(lo, start), min(hi, end)) for lo, hi in spans)
