"""Two call legs, each on its own clock, as one multi-channel stream (sans I/O).

The legs of a bridge arrive over separate connections: 20 ms frames with their
own jitter and clock drift, one leg possibly absent. :class:`LegAligner` turns
them into frames of one stream, one channel per leg, so one session hears the
conversation. A leg that is absent is silence. A leg that falls behind the other
by more than ``max_skew`` samples gets silence inserted (its later audio comes
after it): the leading leg never waits longer than that, so the release at
arrival + D stays within ``max_skew`` of the promise, and no sample of either
leg is dropped or repeated.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class LegAligner:
    def __init__(self, channels: int, max_skew: int) -> None:
        if channels < 1 or max_skew < 0:
            raise ValueError("channels >= 1 and max_skew >= 0")
        self.channels = channels
        self.max_skew = max_skew
        # Per channel: (samples, arrival time) per push, oldest first.
        self._pending: list[deque[tuple[np.ndarray, float]]] = [
            deque() for _ in range(channels)]
        self._held = [0] * channels
        self._present = [False] * channels
        self.padded = [0] * channels  # silence inserted per channel (absent or late)
        self.emitted = 0  # frames out so far
        # When the oldest sample of the frames last returned arrived: a frame is as
        # old as its oldest sample, so its release (arrival + D) does not wait for
        # the later leg (which then gets a little less than D of lookahead, <= skew).
        self.arrived = 0.0

    def join(self, channel: int) -> None:
        self._present[channel] = True

    def leave(self, channel: int) -> np.ndarray:
        """The leg is gone: what it had sent is flushed (the other leg padded)."""
        self._present[channel] = False
        return self._emit(flush=channel)

    def push(self, channel: int, samples: np.ndarray, arrived: float = 0.0) -> np.ndarray:
        """One leg's mono int16 samples (that arrived at ``arrived``); returns the
        frames now ready, ``(n, channels)``; :attr:`arrived` says how old they are."""
        if samples.ndim != 1:
            raise ValueError("one leg's samples are mono")
        if not self._present[channel]:
            raise ValueError(f"channel {channel} has not joined")
        if samples.size:
            self._pending[channel].append((samples.astype(np.int16, copy=False), arrived))
            self._held[channel] += samples.size
        return self._emit()

    def _emit(self, flush: int | None = None) -> np.ndarray:
        live = [c for c in range(self.channels) if self._present[c]]
        held = [self._held[c] for c in live]
        if flush is not None:
            n = self._held[flush]  # the leaving leg's rest, whatever the others have
        elif not live:
            n = 0
        else:
            lead = max(held)
            n = max(min(held), lead - self.max_skew)
        if n <= 0:
            return np.zeros((0, self.channels), dtype=np.int16)
        out = np.zeros((n, self.channels), dtype=np.int16)
        oldest = [self._pending[c][0][1] for c in range(self.channels) if self._held[c]]
        self.arrived = min(oldest, default=self.arrived)
        for c in range(self.channels):
            take = min(n, self._held[c])
            out[:take, c] = self._take(c, take)
            self.padded[c] += n - take
        self.emitted += n
        return out

    def _take(self, channel: int, n: int) -> np.ndarray:
        parts: list[np.ndarray] = []
        pending, need = self._pending[channel], n
        while need:
            block, arrived = pending[0]
            if block.size <= need:
                parts.append(pending.popleft()[0])
                need -= block.size
            else:
                parts.append(block[:need])
                pending[0] = (block[need:], arrived)
                need = 0
        self._held[channel] -= n
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
