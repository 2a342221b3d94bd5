"""Silero VAD v6 (ONNX, as shipped inside faster-whisper) run with onnxruntime.

One :class:`SileroVadModel` per process holds the ONNX session (``run`` is
thread-safe, so workers share it); each audio stream owns a cheap
:class:`SileroVadStream` with its recurrent state. The pure segmentation logic
lives in :mod:`streamserver.core.vad`.
"""

from __future__ import annotations

import threading
from importlib.util import find_spec
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

WINDOW = 512  # samples of new audio per probability, at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees in front of each window
_STATE_SHAPE = (1, 1, 128)


def default_model_path() -> Path:
    """The ``silero_vad_v6.onnx`` bundled with faster-whisper."""
    # find_spec locates the package without importing it (and CTranslate2 with it).
    spec = find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("faster-whisper is not installed; it ships the Silero VAD model")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"


class SileroVadModel:
    """The loaded ONNX model; share one instance per process (see :meth:`shared`).

    Inputs are ``input[N, 576]`` (64 context + 512 new samples per row) and the
    LSTM state ``h``/``c`` ``[1, 1, 128]``. The N rows are consecutive windows of
    *one* stream (the state runs through them in order), so one call can score a
    whole backlog of a stream, but rows from different streams cannot be batched.
    """

    _shared: ClassVar[dict[Path, SileroVadModel]] = {}  # process-wide, keyed by model path
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str | Path | None = None) -> None:
        import onnxruntime  # local import: the pure core must not need onnxruntime

        self.path = Path(path) if path is not None else default_model_path()
        opts = onnxruntime.SessionOptions()
        # Parallelism comes from running many streams in the worker pool; one
        # thread per call avoids oversubscribing the cores.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    @classmethod
    def shared(cls, path: str | Path | None = None) -> SileroVadModel:
        """The process-wide instance for ``path`` (loaded on first use, thread-safe)."""
        key = Path(path) if path is not None else default_model_path()
        with cls._shared_lock:
            model = cls._shared.get(key)
            if model is None:
                model = cls._shared[key] = cls(key)
            return model

    def new_stream(self, min_windows: int = 1) -> SileroVadStream:
        """A fresh per-stream state bound to this model (see SileroVadStream)."""
        return SileroVadStream(self, min_windows)

    def run(
        self,
        rows: npt.NDArray[np.float32],
        h: npt.NDArray[np.float32],
        c: npt.NDArray[np.float32],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """One model call: ``rows[N, 576]`` -> (probabilities[N], h, c)."""
        probs, h_next, c_next = self._session.run(None, {"input": rows, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h_next, c_next


class SileroVadStream:
    """Speech probabilities for one 16 kHz mono stream, fed in chunks of any size.

    ``push`` returns one probability per *completed* 512-sample window, in order:
    probability ``i`` covers samples ``[512 * i, 512 * (i + 1))`` of the stream.
    The incomplete remainder, the 64-sample context and the LSTM state are kept
    between calls, so the result does not depend on how the audio is chunked
    (same as scoring the whole stream at once). Not thread-safe: one stream is
    driven by one worker at a time.

    ``min_windows``: score only once that many windows are complete, then all of
    them in one call (:meth:`drain` scores the rest). A call costs about as much
    for one window as for four, and a live session pushes 20 ms at a time: four
    windows per call cut the VAD's CPU for at most 96 ms more latency.
    """

    def __init__(self, model: SileroVadModel, min_windows: int = 1) -> None:
        if min_windows < 1:
            raise ValueError("min_windows must be >= 1")
        self._model = model
        self._min_windows = min_windows
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._windows = 0

    @property
    def frontier(self) -> int:
        """Samples covered by the probabilities returned so far (a multiple of 512)."""
        return self._windows * WINDOW

    @property
    def pending(self) -> int:
        """Samples received but not yet scored (fewer than ``min_windows`` windows)."""
        return int(self._pending.shape[0])

    def push(self, samples: npt.NDArray[np.floating]) -> list[float]:
        """Feed float samples in [-1, 1] at 16 kHz; return the new windows' probabilities."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        owned = self._pending.shape[0] > 0  # a new array, not the caller's
        if owned:
            x = np.concatenate([self._pending, x])
        if x.shape[0] // WINDOW < self._min_windows:
            self._pending = x if owned else x.copy()
            return []
        return self._score_complete(x)

    def drain(self) -> list[float]:
        """Score every complete window still held back by ``min_windows``."""
        return self._score_complete(self._pending)

    def _score_complete(self, x: npt.NDArray[np.float32]) -> list[float]:
        """Score ``x``'s complete windows; keep the remainder pending."""
        complete = x.shape[0] // WINDOW
        self._pending = x[complete * WINDOW :].copy()
        if complete == 0:
            return []
        return self._score(x[: complete * WINDOW].reshape(complete, WINDOW))

    def flush(self) -> list[float]:
        """Score the remainder zero-padded to a full window (end of stream).

        The returned probability (if any) covers a window that runs past the end
        of the audio, so :attr:`frontier` may then exceed the samples pushed.
        """
        if not self._pending.shape[0]:
            return []
        window = np.zeros(WINDOW, dtype=np.float32)
        window[: self._pending.shape[0]] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        return self._score(window.reshape(1, WINDOW))

    def _score(self, windows: npt.NDArray[np.float32]) -> list[float]:
        # Each row sees the last 64 samples of the row before it.
        contexts = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]])
        rows = np.ascontiguousarray(np.concatenate([contexts, windows], axis=1))
        probs, self._h, self._c = self._model.run(rows, self._h, self._c)
        self._context = windows[-1, -CONTEXT:].copy()
        self._windows += windows.shape[0]
        return [float(p) for p in probs]
