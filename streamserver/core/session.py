"""One redaction session, sans I/O: bytes and clock in, bytes and events out.

The session composes the stages (decode → VAD → streaming ASR → PII → masks →
delay line). It never calls Whisper or presidio itself: it hands out jobs and
takes their results, so the same code runs under the asyncio server (jobs in a
worker pool, wall-clock deadlines) and in-process for files (jobs inline,
audio-clock deadlines). The VAD is called inline: it is ~0.1 ms per window.

Driving it (see :mod:`streamserver.runtime` and :func:`run_offline`)::

    s.push_audio(data, now)                  # any number of bytes, whole frames
    while job := s.next_job():               # ASR or detection work that is due
        s.complete_job(job, run(job))        # results back (or s.fail_job(job))
    s.release(now)                           # audio due by the clock
    for out in s.take_outputs(): ...         # AudioOut / Event, in order
    s.finish(); ... drain jobs ...; s.release(now) until s.done

Time inside is the 16 kHz analysis sample index; the delay line works in the
client's own samples so output is bit-identical wherever nothing is masked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .. import audio as audio_mod
from ..config import AsrConfig, SessionConfig
from .asr import AsrJob, AsrUpdate, StreamingTranscriber
from .dialogue import CONTEXT_REASON, DialogueState
from .dtmf import DtmfDetector, DtmfTone
from .redact import DelayLine, MaskPlan, cover_words, ranges_to_mask
from .transcript import Transcript
from .types import ANALYSIS_RATE, Word, WordSpan, ms_to_samples, samples_to_seconds
from .vad import SpeechEnded, SpeechStarted, VadConfig, VadSegmenter

# Tones closer than this belong to one keyed sequence (one redaction event).
_KEYED_SEQUENCE_GAP = ms_to_samples(1500)
# Speech this close to a word Whisper put there is explained by it (word times are
# off by 0.1-0.5 s; gaps between words in one phrase are short), on top of the
# VAD's own padding around speech.
_WORD_SLACK = ms_to_samples(100)


class VadStream(Protocol):
    def push(self, samples: np.ndarray) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class AudioOut:
    data: bytes
    start: int  # first client sample in this block


@dataclass(frozen=True, slots=True)
class Event:
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DetectJob:
    """Words to run the PII detector over (committed context + unstable tail)."""

    job_id: int
    words: list[Word]
    first_index: int  # global index of words[0] among committed words
    n_committed: int  # words[:n_committed] are committed, the rest tentative
    texts: tuple[str, ...] = field(repr=False)


Job = AsrJob | DetectJob


@dataclass
class SessionStats:
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0
    speech_ms: float = 0.0
    masked_ms: float = 0.0
    deadline_masked_ms: float = 0.0
    # Speech the VAD heard and no word covers (Whisper dropped or missed it); masked
    # where a question armed the answer, or everywhere with mask_unexplained.
    unexplained_speech_ms: float = 0.0
    unexplained_masked_ms: float = 0.0
    requests_heard: int = 0  # questions for a value that armed the next answer
    redactions: int = 0
    final_words: int = 0
    asr_passes: int = 0
    failed_jobs: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in vars(self).items()}


class Session:
    """Composes the pipeline for one stream. Not thread-safe: one owner drives it."""

    def __init__(
        self,
        cfg: SessionConfig,
        asr_cfg: AsrConfig,
        vad_stream: VadStream,
        vad_cfg: VadConfig | None = None,
        session_id: str = "",
    ) -> None:
        self.cfg = cfg
        self.asr_cfg = asr_cfg
        self.session_id = session_id
        self.fmt = audio_mod.AudioFormat(cfg.encoding, cfg.sample_rate, cfg.channels)  # type: ignore[arg-type]
        self.fmt.validate()
        self.rate = cfg.sample_rate
        self._vad_stream = vad_stream
        self._vad_cfg = vad_cfg or VadConfig()
        self._vad = VadSegmenter(self._vad_cfg)
        # VAD reports a start only after min_speech; until then the newest
        # samples may still turn out to be speech. Treat them as undecided.
        self._vad_lag = (
            ms_to_samples(self._vad_cfg.speech_pad_ms + self._vad_cfg.min_speech_ms)
            + 2 * self._vad_cfg.window
        )
        self._resampler = audio_mod.StreamingResampler(self.rate, ANALYSIS_RATE)
        preroll = ms_to_samples(self._vad_cfg.speech_pad_ms) + self._vad_lag
        self._asr = StreamingTranscriber(asr_cfg, preroll=preroll, fixed_steps=cfg.pace == "asap")
        self._plan = MaskPlan(ms_to_samples(cfg.mask_padding_ms))
        self._line = DelayLine(self.rate, cfg.channels, cfg.audio_redaction)
        self._delay = ms_to_samples(cfg.delay_ms)  # analysis samples
        self._out_frame_bytes = self.fmt.bytes_per_frame * (self.rate // 5)
        self._arrivals: deque[tuple[int, float]] = deque()  # (client sample end, wall time)
        self._outbox: list[AudioOut | Event] = []
        self.stats = SessionStats()
        self._text = Transcript(cfg.text_substitution, asr_cfg.final_right_context_words)
        self._pending_detect: DetectJob | None = None
        self._pending_update: AsrUpdate | None = None
        self._last_detect: tuple[tuple[str, ...], list[WordSpan]] | None = None
        # What the words asked for arms the answer (only adds masks).
        self._dialogue = DialogueState(cfg.entities) if cfg.context_redaction else None
        # Speech covered by a word: committed words' ranges (kept until released)
        # and the latest hypothesis' (replaced every pass).
        self._word_slack = _WORD_SLACK + ms_to_samples(self._vad_cfg.speech_pad_ms)
        self._heard = MaskPlan(self._word_slack)
        self._heard_tentative: list[tuple[int, int]] = []
        self._unexplained_run: tuple[int, int, str, str] | None = None  # open event
        self._audio_only_redactions = 0  # redaction events with no words (tones, no-word speech)
        self._job_seq = 0
        # Keypad tones: found in the audio itself, masked like spoken PII.
        self._dtmf = DtmfDetector(ANALYSIS_RATE) if "DTMF" in cfg.entities else None
        self._keyed: tuple[int, int] | None = None  # tones of one keyed sequence so far
        self._decided = 0  # analysis samples decided (ASR + detection done)
        self._finished = False
        self._closed = False
        self._outbox.append(Event({"type": "session.begin", "session_id": session_id,
                                   "protocol": 1, "config": _public_config(cfg)}))

    def time_vad(self, observe: Callable[[float], None]) -> None:
        """Report the seconds of every VAD model call to ``observe`` (metrics)."""
        inner = self._vad_stream

        class Timed:
            def push(self, samples: np.ndarray) -> list[float]:
                t0 = time.perf_counter()
                try:
                    return inner.push(samples)
                finally:
                    observe(time.perf_counter() - t0)

        self._vad_stream = Timed()

    # -- input -------------------------------------------------------------------
    def push_audio(self, data: bytes, now: float = 0.0) -> None:
        """Accept whole frames of the client's encoding. Raises AudioFormatError."""
        if self._finished:
            raise RuntimeError("push_audio after finish")
        frames = audio_mod.decode(data, self.fmt)
        if frames.shape[0] == 0:
            return
        self._line.push(frames)
        self._arrivals.append((self._line.pushed, now))
        self.stats.audio_in_ms += 1000 * frames.shape[0] / self.rate
        mono16k = self._resampler.push(audio_mod.to_mono_float(frames))
        self._analyse(mono16k)

    def _analyse(self, mono16k: np.ndarray) -> None:
        if mono16k.size == 0:
            return
        if self._dtmf is not None:
            self._on_tones(self._dtmf.push(mono16k))
        self._asr.push_audio(mono16k)
        probs = self._vad_stream.push(mono16k)
        for ev in self._vad.push(probs):
            self._on_vad(ev)
        self._advance_silence_frontier()

    def _on_tones(self, tones: list[DtmfTone], end_of_input: bool = False) -> None:
        """Mask tones as soon as they are confirmed; one event per keyed sequence."""
        assert self._dtmf is not None
        for tone in tones:
            self._plan.add(tone.start, tone.end)
            if tone.final:
                if self._keyed and tone.start - self._keyed[1] > _KEYED_SEQUENCE_GAP:
                    self._emit_keyed()
                start = self._keyed[0] if self._keyed else tone.start
                self._keyed = (start, tone.end)
        if self._keyed and (
            end_of_input or self._dtmf.pushed - self._keyed[1] > _KEYED_SEQUENCE_GAP
        ):
            self._emit_keyed()

    def _emit_keyed(self) -> None:
        # Where and what only: the digits themselves are never reported or logged.
        assert self._keyed is not None
        start, end = self._keyed
        self._keyed = None
        self._count_redaction_without_words()
        self._emit({"type": "redaction", "entity": "DTMF", "start": samples_to_seconds(start),
                    "end": samples_to_seconds(end), "score": 1.0})

    def _on_vad(self, ev: SpeechStarted | SpeechEnded) -> None:
        if isinstance(ev, SpeechStarted):
            self._asr.start_utterance(ev.start)
            self._emit({"type": "speech.started", "start": samples_to_seconds(ev.start)})
        else:
            self._asr.end_utterance(ev.end)
            if self._dialogue is not None:
                self._dialogue.utterance_ended(ev.start, ev.end)
            self._emit({"type": "speech.ended", "start": samples_to_seconds(ev.start),
                        "end": samples_to_seconds(ev.end)})

    def _advance_silence_frontier(self) -> None:
        """With no utterance open or in flight, audio up to the VAD lag is decided."""
        if not self._asr.utterance_open and not self._asr.busy and self._pending_detect is None:
            self._decided = max(self._decided, self._vad.frontier - self._vad_lag)

    def flush(self) -> None:
        """Finalise what was said so far (a final ASR pass now); input may go on."""
        frontier = self._asr.frontier
        if self._asr.utterance_open:
            self._asr.end_utterance(frontier)
            if self._vad.in_speech:
                self._asr.start_utterance(frontier)

    def finish(self) -> None:
        """End of input: flush resampler and VAD so the last utterance gets a final pass."""
        if self._finished:
            return
        self._finished = True
        tail = self._resampler.flush()
        if tail.size:
            if self._dtmf is not None:
                self._on_tones(self._dtmf.push(tail))
            self._asr.push_audio(tail)
            for ev in self._vad.push(self._vad_stream.push(tail)):
                self._on_vad(ev)
        if self._dtmf is not None:
            self._on_tones(self._dtmf.flush(), end_of_input=True)
        for ev in self._vad.flush():
            self._on_vad(ev)

    # -- jobs --------------------------------------------------------------------
    def next_job(self, eager: bool = False) -> Job | None:
        """The work that is due now (at most one in flight per session).

        ``eager``: the caller's model pool has room, a Whisper pass may come
        sooner (pace=realtime only, see ``AsrConfig.min_step_ms``).
        """
        if self._pending_detect is not None or self._pending_update is not None:
            return None
        job = self._asr.next_job(end_of_stream=self._finished, eager=eager)
        if job is not None:
            self.stats.asr_passes += 1
        return job

    def complete_job(self, job: Job, result: Any) -> Job | None:
        """Feed a job's result back; returns a follow-up job that is due at once."""
        if isinstance(job, AsrJob):
            update = self._asr.complete_job(job, list(result))
            return self._after_asr(update)
        self._after_detect(job, result)
        return None

    def fail_job(self, job: Job) -> None:
        """A model call raised or timed out: the audio it covered is masked.

        Fail closed: nobody heard that audio (or checked its words), so it is
        masked even if a later pass over the same audio succeeds — model errors
        are rare and a leak is worse than a beep. Without this the frontier would
        move past it as if decided clean once the utterance is closed.
        """
        self.stats.failed_jobs += 1
        if isinstance(job, AsrJob):
            self._plan.add(job.buffer_start, job.buffer_end)
            self._asr.abandon_job(job)
        else:
            if job.words:
                self._plan.add(min(w.start for w in job.words), max(w.end for w in job.words))
            self._pending_detect = None
            self._pending_update = None
        self._advance_silence_frontier()

    def _after_asr(self, update: AsrUpdate) -> DetectJob | None:
        self._pending_update = update
        self._text.take(update)
        for w in update.committed:
            self._heard.add(w.start, max(w.end, w.start + 1))
        self._heard_tentative = [(w.start - self._word_slack, w.end + self._word_slack)
                                 for w in update.tentative]
        window, first, n_committed = self._text.window(self.cfg.use_hypothesis_evidence)
        texts = tuple(w.text for w in window)
        self._job_seq += 1
        job = DetectJob(self._job_seq, window, first, n_committed, texts)
        self._pending_detect = job
        if self._last_detect is not None and self._last_detect[0] == texts:
            # Same words as last time: same answer, no model call.
            self._after_detect(job, self._last_detect[1])
            return None
        return job

    def _after_detect(self, job: DetectJob, spans: Sequence[WordSpan]) -> None:
        update = self._pending_update
        self._pending_detect = None
        self._pending_update = None
        self._last_detect = (job.texts, list(spans))
        cfg = self.cfg
        spans = list(spans)
        if self._dialogue is not None:
            armed = self._dialogue.armed_count
            self._dialogue.observe(job.words)
            self.stats.requests_heard += self._dialogue.armed_count - armed
            spans += self._dialogue.answer_spans(job.words)
        wanted = [s for s in spans if s.entity in cfg.entities and s.last > s.first
                  and s.score >= cfg.score_threshold]
        for span in wanted:
            self._plan.add(*self._cover(job.words, span))
        self._text.relabel(job.first_index, job.n_committed, wanted)
        if update is not None:
            self._decided = max(self._decided, update.analysed_until)
            for payload in self._text.render(self._audio_masked):
                self._emit(payload)
            self.stats.final_words = self._text.final_words
            self.stats.redactions = self._text.redactions + self._audio_only_redactions
        self._advance_silence_frontier()

    @staticmethod
    def _cover(words: Sequence[Word], span: WordSpan) -> tuple[int, int]:
        """A span's audio: its words and the gaps to the words kept beside it."""
        inside = words[span.first : span.last]
        prev_end = words[span.first - 1].end if span.first > 0 else None
        next_start = words[span.last].start if span.last < len(words) else None
        return cover_words(inside[0].start, max(w.end for w in inside), prev_end, next_start)

    def _audio_masked(self, w: Word) -> bool:
        return bool(self._plan.ranges(w.start, w.end))

    # -- release -----------------------------------------------------------------
    def release(self, now: float | None = None) -> None:
        """Release what is due: by wall clock (realtime) or by decisions (asap).

        ``realtime``: client samples whose arrival + D has passed ``now``.
        ``asap``: samples up to the decided frontier minus D.
        After :meth:`finish` and once no work is left, everything is due.
        """
        if self._closed:
            return
        if self.cfg.pace == "realtime" and not self._all_decided_after_finish():
            assert now is not None, "realtime release needs the clock"
            deadline = now - self.cfg.delay_ms / 1000
            until = self._line.released
            while self._arrivals and self._arrivals[0][1] <= deadline:
                until = self._arrivals.popleft()[0]
        elif self._all_decided_after_finish():
            until = self._line.pushed
        else:
            decided = self._decided
            if self._dtmf is not None:  # tones, too, are decided only so far
                decided = min(decided, self._dtmf.settled_until)
            until = self._client_sample(decided - self._delay)
        self._release_until(until)

    def next_due(self) -> float | None:
        """Realtime: wall time at which the next held input block is due, if any."""
        if not self._arrivals:
            return None
        return self._arrivals[0][1] + self.cfg.delay_ms / 1000

    def _all_decided_after_finish(self) -> bool:
        return (
            self._finished
            and not self._asr.utterance_open
            and not self._asr.busy
            and self._pending_detect is None
        )

    @property
    def done(self) -> bool:
        """Finished, every pushed sample released and no ASR or detection work left.

        In ``realtime`` the clock releases the tail at arrival + D whether or not
        its final pass has run; ``session.end`` still waits for that pass, so every
        word heard reaches a ``transcript.final`` first.
        """
        return self._all_decided_after_finish() and self._line.released == self._line.pushed

    def _client_sample(self, analysis_sample: int) -> int:
        return max(0, analysis_sample) * self.rate // ANALYSIS_RATE

    def _analysis_sample(self, client_sample: int) -> int:
        return client_sample * ANALYSIS_RATE // self.rate

    def _release_until(self, until: int) -> None:
        start = self._line.released
        until = min(until, self._line.pushed)
        n = until - start
        if n <= 0:
            return
        a0, a1 = self._analysis_sample(start), self._analysis_sample(until) + 1
        # Everything in analysis samples first, then mapped to client samples.
        idx = (np.arange(start, until, dtype=np.int64) * ANALYSIS_RATE) // self.rate
        planned = ranges_to_mask(self._plan.ranges(a0, a1), a0, a1 - a0)[idx - a0]
        speech_ranges = self._vad.speech_intervals(a0, a1)
        speech = ranges_to_mask(speech_ranges, a0, a1 - a0)[idx - a0]
        undecided = speech & (idx >= self._decided) & ~planned
        if self._all_decided_after_finish():
            undecided[:] = False
        heard = self._heard.ranges(a0, a1) + self._heard_tentative
        unexplained = speech & ~undecided & ~ranges_to_mask(heard, a0, a1 - a0)[idx - a0]
        mask_unexplained = self._unexplained_policy(a0, a1)[idx - a0] & unexplained
        self._report_unexplained(start, mask_unexplained)
        mask = planned | undecided if self.cfg.on_deadline == "mask" else planned
        mask = mask | mask_unexplained
        released = self._line.release(until, mask)
        ms = 1000 / self.rate
        self.stats.audio_out_ms += n * ms
        self.stats.speech_ms += float(speech.sum()) * ms
        self.stats.masked_ms += float(mask.sum()) * ms
        self.stats.deadline_masked_ms += float(undecided.sum()) * ms
        self.stats.unexplained_speech_ms += float(unexplained.sum()) * ms
        self.stats.unexplained_masked_ms += float((mask_unexplained & ~planned).sum()) * ms
        # Bounded output frames (200 ms), whatever the size of the release.
        data, step = audio_mod.encode(released.samples, self.fmt), self._out_frame_bytes
        for i in range(0, len(data), step):
            sample = start + i // self.fmt.bytes_per_frame
            self._outbox.append(AudioOut(data[i : i + step], sample))
        self._plan.forget_before(a0 - self._delay)
        self._heard.forget_before(a0 - self._delay)
        self._vad.forget_before(a0 - self._delay)
        if self._dialogue is not None:
            self._dialogue.forget_before(a0 - self._delay)

    def _unexplained_policy(self, a0: int, a1: int) -> np.ndarray:
        """Where speech no word explains is masked: armed answers, or all of it."""
        if self.cfg.mask_unexplained:
            return np.ones(a1 - a0, dtype=bool)
        if self._dialogue is None:
            return np.zeros(a1 - a0, dtype=bool)
        armed = [(lo, hi) for lo, hi, entity in self._dialogue.armed_ranges(a0, a1)
                 if entity in self.cfg.entities]
        return ranges_to_mask(armed, a0, a1 - a0)

    def _report_unexplained(self, start: int, masked: np.ndarray) -> None:
        """One ``redaction`` event per run of masked wordless speech (runs span releases)."""
        idx = np.flatnonzero(masked)
        if idx.size:
            breaks = np.flatnonzero(np.diff(idx) > 1)
            for lo, hi in zip([idx[0], *idx[breaks + 1]], [*idx[breaks], idx[-1]], strict=True):
                s0 = self._analysis_sample(start + int(lo))
                s1 = self._analysis_sample(start + int(hi) + 1)
                run = self._unexplained_run
                if run is not None and s0 - run[1] <= self._word_slack:
                    self._unexplained_run = (run[0], s1, run[2], run[3])
                    continue
                self._close_unexplained_run()
                entity, reason = "UNEXPLAINED_SPEECH", "unexplained"
                if self._dialogue is not None:
                    for _lo, _hi, armed in self._dialogue.armed_ranges(s0, s1):
                        entity, reason = armed, CONTEXT_REASON
                self._unexplained_run = (s0, s1, entity, reason)
        run = self._unexplained_run
        if run is not None and (
                self._analysis_sample(start + masked.size) - run[1] > self._word_slack):
            self._close_unexplained_run()

    def _count_redaction_without_words(self) -> None:
        """A redaction event not from the transcript (keypad tones, wordless speech)."""
        self._audio_only_redactions += 1
        self.stats.redactions = self._text.redactions + self._audio_only_redactions

    def _close_unexplained_run(self) -> None:
        if self._unexplained_run is None:
            return
        s0, s1, entity, reason = self._unexplained_run
        self._unexplained_run = None
        self._count_redaction_without_words()
        self._emit({"type": "redaction", "entity": entity, "start": samples_to_seconds(s0),
                    "end": samples_to_seconds(s1), "score": 0.5, "reason": reason})

    # -- output ------------------------------------------------------------------
    def _emit(self, payload: dict[str, Any]) -> None:
        self._outbox.append(Event(payload))

    def take_outputs(self) -> list[AudioOut | Event]:
        out, self._outbox = self._outbox, []
        return out

    def close(self) -> None:
        """Emit ``session.end`` (once). Call after the last release."""
        if self._closed:
            return
        self._closed = True
        self._close_unexplained_run()
        self._emit({"type": "session.end", "session_id": self.session_id,
                    "stats": self.stats.as_dict()})

    def error_event(self, code: str, message: str) -> None:
        self._emit({"type": "error", "code": code, "message": message})

    @property
    def held_analysis_samples(self) -> int:
        """Input not yet released, in analysis samples (for backpressure)."""
        return self._analysis_sample(self._line.held)

    @property
    def decided_until(self) -> int:
        return self._decided

    @property
    def pushed_analysis_samples(self) -> int:
        return self._analysis_sample(self._line.pushed)


def _public_config(cfg: SessionConfig) -> dict[str, Any]:
    return {
        "encoding": cfg.encoding, "sample_rate": cfg.sample_rate, "channels": cfg.channels,
        "delay_ms": cfg.delay_ms, "entities": list(cfg.entities),
        "audio_redaction": cfg.audio_redaction, "text_substitution": cfg.text_substitution,
        "pace": cfg.pace, "on_deadline": cfg.on_deadline, "score_threshold": cfg.score_threshold,
        "context_redaction": cfg.context_redaction, "mask_unexplained": cfg.mask_unexplained,
        # Where the output goes besides the client; never the webhook URL itself
        # (its query may hold a token).
        "record": bool(cfg.record), "retention_s": cfg.retention_s if cfg.record else 0,
        "webhook": bool(cfg.webhook_url),
    }


def run_offline(
    session: Session,
    transcribe: Callable[[AsrJob], Any],
    detect: Callable[[DetectJob], Sequence[WordSpan]],
    data: bytes,
    chunk_bytes: int,
) -> list[AudioOut | Event]:
    """Drive a ``pace=asap`` session over a whole buffer, jobs inline, in order."""
    outputs: list[AudioOut | Event] = []

    def drain() -> None:
        while (job := session.next_job()) is not None:
            while job is not None:
                result = transcribe(job) if isinstance(job, AsrJob) else detect(job)
                job = session.complete_job(job, result)
        session.release()
        outputs.extend(session.take_outputs())

    for i in range(0, len(data), chunk_bytes):
        session.push_audio(data[i : i + chunk_bytes])
        drain()
    session.finish()
    drain()
    while not session.done:
        drain()
    session.close()
    outputs.extend(session.take_outputs())
    return outputs
