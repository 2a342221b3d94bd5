"""The models a process loads once and shares between sessions."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import memory
from ..config import AsrConfig, SessionConfig
from ..core.asr import AsrJob
from ..core.session import DetectJob, Job, Session
from ..core.types import WordSpan
from ..core.vad import VadConfig
from .presidio import PresidioPiiDetector
from .silero import SileroVadModel
from .whisper import WhisperEngine

log = logging.getLogger(__name__)

# Silero windows (32 ms) scored per model call in a live session: see SileroVadStream.
VAD_WINDOWS_PER_CALL = 4


@dataclass
class Engines:
    asr: WhisperEngine
    vad: SileroVadModel
    detector: PresidioPiiDetector
    asr_cfg: AsrConfig
    vad_cfg: VadConfig

    @classmethod
    def load(cls, asr_cfg: AsrConfig | None = None, workers: int = 1) -> Engines:
        asr_cfg = asr_cfg or AsrConfig()
        if not asr_cfg.cpu_threads:
            # Split the cores between concurrent model calls instead of
            # oversubscribing them.
            from dataclasses import replace

            asr_cfg = replace(asr_cfg, cpu_threads=max(1, (os.cpu_count() or 1) // workers))
        t0 = time.perf_counter()
        with memory.freeing_at_once():  # what loading frees is not kept resident
            asr = WhisperEngine(asr_cfg, num_workers=workers)
            vad = SileroVadModel()
            # Every entity, every score: each session applies its own policy
            # (entities, score_threshold) to the shared detector's output.
            detector = PresidioPiiDetector(score_threshold=0.0)
            asr.warm_up()
            detector.warm_up()
        log.info("models loaded", extra={"load_s": round(time.perf_counter() - t0, 2)})
        return cls(asr, vad, detector, asr_cfg, VadConfig())

    def new_session(self, cfg: SessionConfig, session_id: str = "") -> Session:
        # A VAD stream per analysed channel (channel_roles) or one for the mix.
        streams = [self.vad.new_stream(min_windows=VAD_WINDOWS_PER_CALL)
                   for _ in range(cfg.channels if cfg.channel_roles else 1)]
        return Session(cfg, self.asr_cfg, streams, self.vad_cfg, session_id)

    def run_job(self, job: Job) -> Any:
        """Run one job synchronously (called from a worker thread)."""
        if isinstance(job, AsrJob):
            return self.asr.transcribe(job.audio, job.prompt)
        return self.detect(job)

    def detect(self, job: DetectJob) -> Sequence[WordSpan]:
        return self.detector.detect(job.texts)
