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
from typing import Any, Protocol, cast

import numpy as np

from .. import audio as audio_mod
from ..config import AsrConfig, SessionConfig
from .asr import AsrJob, AsrUpdate, StreamingTranscriber
from .dialogue import CONTEXT_REASON, DialogueState
from .dtmf import DtmfDetector, DtmfTone
from .pii.entities import WORDS_ONLY
from .redact import DelayLine, MaskPlan, cover_words, merge_ranges, ranges_to_mask
from .transcript import Transcript, shown_masked_while_partial
from .types import ANALYSIS_RATE, Word, WordSpan, ms_to_samples, samples_to_seconds
from .vad import SpeechEnded, SpeechStarted, VadConfig, VadSegmenter

# Tones closer than this belong to one keyed sequence (one redaction event).
_KEYED_SEQUENCE_GAP = ms_to_samples(1500)
# A key press the transport reports lies within this much of the newest audio.
_KEYPAD_TONE = ms_to_samples(400)
# Keypad-tone analysis waits for this much audio (three 20 ms frames): a third of
# its per-frame cost, and a tone is still masked well inside the shortest delay
# (300 ms): confirmed at most ~100 ms after its onset.
_DTMF_BATCH_MS = 60.0
# Speech this close to a word Whisper put there is explained by it (word times are
# off by 0.1-0.5 s; gaps between words in one phrase are short), on top of the
# VAD's own padding around speech.
_WORD_SLACK = ms_to_samples(100)


class VadStream(Protocol):
    def push(self, samples: np.ndarray) -> list[float]: ...

    def drain(self) -> list[float]: ...


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
    # Of deadline_masked_ms: digits the latest pass heard at its end and had not
    # committed (a number still being said), held masked on purpose; the rest is
    # speech whose pass came too late.
    deadline_held_digits_ms: float = 0.0
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


class _Lane:
    """The analysis of one channel, or of the mono mix: VAD, ASR, transcript.

    With ``channel_roles`` each channel has a lane (a question on one arms the
    other); otherwise one lane hears the downmix. Masks from any lane apply to
    every channel of the output: on a phone line each party's voice leaks into the
    other's channel (line echo, speakerphones), and fail closed wins over the rare
    overlap of both parties talking.
    """

    def __init__(self, channel: int | None, role: str, vad_stream: VadStream,
                 vad_cfg: VadConfig, asr: StreamingTranscriber, text: Transcript,
                 rate: int, word_slack: int, entities: tuple[str, ...],
                 plan: MaskPlan) -> None:
        self.channel = channel  # None: the mono mix
        self.role = role
        self.entities = entities  # masked in this lane's speech
        self.plan = plan  # where its masks go: shared, or its channel's own (bridges)
        self.resampler = audio_mod.StreamingResampler(rate, ANALYSIS_RATE)
        self.vad_stream = vad_stream
        self.vad = VadSegmenter(vad_cfg)
        self.asr = asr
        self.text = text
        self.pending_detect: DetectJob | None = None
        self.pending_update: AsrUpdate | None = None
        self.last_detect: tuple[tuple[str, ...], list[WordSpan]] | None = None
        # Speech covered by a word: committed words' ranges (kept until released)
        # and the latest hypothesis' (replaced every pass).
        self.heard = MaskPlan(word_slack)
        self.heard_tentative: list[tuple[int, int]] = []
        # The words with a digit or '@' that end the latest hypothesis (the partial
        # shows them masked): speech under one is undecided until it is committed.
        self.unsure_values: list[tuple[int, int]] = []
        self.unexplained_run: tuple[int, int, str, str] | None = None  # open event
        self.decided = 0  # analysis samples decided (ASR + detection done)

    @property
    def idle(self) -> bool:
        return not self.asr.utterance_open and not self.asr.busy and self.pending_detect is None

    def label(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Who spoke, on events from a channel's own lane."""
        if self.channel is not None:
            payload["channel"] = self.channel
            payload["role"] = self.role
        return payload


class Session:
    """Composes the pipeline for one stream. Not thread-safe: one owner drives it."""

    def __init__(
        self,
        cfg: SessionConfig,
        asr_cfg: AsrConfig,
        vad_stream: VadStream | Sequence[VadStream],
        vad_cfg: VadConfig | None = None,
        session_id: str = "",
    ) -> None:
        self.cfg = cfg
        self.asr_cfg = asr_cfg
        self.session_id = session_id
        self.fmt = audio_mod.AudioFormat(cfg.encoding, cfg.sample_rate, cfg.channels)  # type: ignore[arg-type]
        self.fmt.validate()
        self.rate = cfg.sample_rate
        self._vad_cfg = vad_cfg or VadConfig()
        # VAD reports a start only after min_speech; until then the newest
        # samples may still turn out to be speech. Treat them as undecided.
        self._vad_lag = (
            ms_to_samples(self._vad_cfg.speech_pad_ms + self._vad_cfg.min_speech_ms)
            + 2 * self._vad_cfg.window
        )
        preroll = ms_to_samples(self._vad_cfg.speech_pad_ms) + self._vad_lag
        self._word_slack = _WORD_SLACK + ms_to_samples(self._vad_cfg.speech_pad_ms)
        streams: list[VadStream] = (
            [cast(VadStream, vad_stream)] if hasattr(vad_stream, "push")
            else list(cast(Sequence[VadStream], vad_stream)))
        channels: list[int | None] = (list(range(cfg.channels)) if cfg.channel_roles
                                      else [None])
        if len(streams) != len(channels):
            raise ValueError(f"{len(channels)} VAD stream(s) needed, got {len(streams)}")
        padding = ms_to_samples(cfg.mask_padding_ms)
        # Channels masked on their own (a bridge's legs), or one plan for every channel.
        self._isolated = bool(cfg.channel_entities)
        shared = MaskPlan(padding)
        self._lanes = [
            _Lane(ch, cfg.channel_roles[ch] if ch is not None else "", stream, self._vad_cfg,
                  StreamingTranscriber(asr_cfg, preroll=preroll, fixed_steps=cfg.pace == "asap"),
                  Transcript(cfg.text_substitution, asr_cfg.final_right_context_words),
                  self.rate, self._word_slack,
                  cfg.channel_entities[ch] if self._isolated and ch is not None
                  else cfg.entities,
                  MaskPlan(padding) if self._isolated else shared)
            for ch, stream in zip(channels, streams, strict=True)]
        # Keypad tones are heard on the mix (either party may key them).
        self._mix_resampler = (audio_mod.StreamingResampler(self.rate, ANALYSIS_RATE)
                               if cfg.channel_roles and "DTMF" in cfg.entities else None)
        self._job_lane: _Lane | None = None  # whose job is in flight (one at a time)
        self._next_lane = 0  # round robin over lanes with work
        self._line = DelayLine(self.rate, cfg.channels, cfg.audio_redaction)
        self._delay = ms_to_samples(cfg.delay_ms)  # analysis samples
        self._out_frame_bytes = self.fmt.bytes_per_frame * (self.rate // 5)
        self._arrivals: deque[tuple[int, float]] = deque()  # (client sample end, wall time)
        self._outbox: list[AudioOut | Event] = []
        self.stats = SessionStats()
        # What the words asked for arms the answer (only adds masks).
        self._dialogue = DialogueState(cfg.entities) if cfg.context_redaction else None
        self._audio_only_redactions = 0  # redaction events with no words (tones, no-word speech)
        self._job_seq = 0
        # Keypad tones: found in the audio itself, masked like spoken PII.
        self._dtmf = (DtmfDetector(ANALYSIS_RATE, min_batch_ms=_DTMF_BATCH_MS)
                      if "DTMF" in cfg.entities else None)
        self._keyed: tuple[int, int] | None = None  # tones of one keyed sequence so far
        self._finished = False
        self._closed = False
        self._outbox.append(Event({"type": "session.begin", "session_id": session_id,
                                   "protocol": 1, "config": _public_config(cfg)}))

    def time_vad(self, observe: Callable[[float], None]) -> None:
        """Report the seconds of every VAD model call to ``observe`` (metrics)."""

        class Timed:
            def __init__(self, inner: VadStream) -> None:
                self.inner = inner

            def push(self, samples: np.ndarray) -> list[float]:
                t0 = time.perf_counter()
                try:
                    return self.inner.push(samples)
                finally:
                    observe(time.perf_counter() - t0)

            def drain(self) -> list[float]:
                return self.inner.drain()

        for lane in self._lanes:
            lane.vad_stream = Timed(lane.vad_stream)

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
        heard = [lane.resampler.push(audio_mod.to_mono_float(
            frames if lane.channel is None else frames[:, lane.channel : lane.channel + 1]))
            for lane in self._lanes]
        self._hear_tones(heard[0] if self._mix_resampler is None
                         else self._mix_resampler.push(audio_mod.to_mono_float(frames)))
        for lane, mono16k in zip(self._lanes, heard, strict=True):
            self._analyse(lane, mono16k)

    def _hear_tones(self, mix16k: np.ndarray) -> None:
        """Keypad tones, on the mix (the mono lane's input, or the channels' downmix)."""
        if self._dtmf is not None and mix16k.size:
            self._on_tones(self._dtmf.push(mix16k))

    def _analyse(self, lane: _Lane, mono16k: np.ndarray) -> None:
        if mono16k.size == 0:
            return
        lane.asr.push_audio(mono16k)
        probs = lane.vad_stream.push(mono16k)
        for ev in lane.vad.push(probs):
            self._on_vad(lane, ev)
        self._advance_silence_frontier(lane)

    def _on_tones(self, tones: list[DtmfTone], end_of_input: bool = False) -> None:
        """Mask tones as soon as they are confirmed; one event per keyed sequence."""
        assert self._dtmf is not None
        for tone in tones:
            for plan in self._plans_for("DTMF"):
                plan.add(tone.start, tone.end)
            if tone.final:
                if self._keyed and tone.start - self._keyed[1] > _KEYED_SEQUENCE_GAP:
                    self._emit_keyed()
                start = self._keyed[0] if self._keyed else tone.start
                self._keyed = (start, tone.end)
        if self._keyed and (
            end_of_input or self._dtmf.pushed - self._keyed[1] > _KEYED_SEQUENCE_GAP
        ):
            self._emit_keyed()

    def keypad_pressed(self) -> None:
        """The transport was told a key was just pressed (Twilio's ``dtmf`` event):
        the newest audio holds its tone. Masked as DTMF when the policy has it;
        the digit itself is never known here."""
        if "DTMF" not in self.cfg.entities:
            return
        end = self._analysis_sample(self._line.pushed)
        start = max(0, end - _KEYPAD_TONE)
        for plan in self._plans_for("DTMF"):
            plan.add(start, end)
        self._count_redaction_without_words()
        self._emit({"type": "redaction", "entity": "DTMF", "start": samples_to_seconds(start),
                    "end": samples_to_seconds(end), "score": 1.0, "reason": "keypad_event"})

    def _emit_keyed(self) -> None:
        # Where and what only: the digits themselves are never reported or logged.
        assert self._keyed is not None
        start, end = self._keyed
        self._keyed = None
        self._count_redaction_without_words()
        self._emit({"type": "redaction", "entity": "DTMF", "start": samples_to_seconds(start),
                    "end": samples_to_seconds(end), "score": 1.0})

    def _on_vad(self, lane: _Lane, ev: SpeechStarted | SpeechEnded) -> None:
        if isinstance(ev, SpeechStarted):
            lane.asr.start_utterance(ev.start)
            self._emit(lane.label({"type": "speech.started",
                                   "start": samples_to_seconds(ev.start)}))
        else:
            lane.asr.end_utterance(ev.end)
            if self._dialogue is not None:
                self._dialogue.utterance_ended(ev.start, ev.end, lane.channel)
            self._emit(lane.label({"type": "speech.ended", "start": samples_to_seconds(ev.start),
                                   "end": samples_to_seconds(ev.end)}))

    def _advance_silence_frontier(self, lane: _Lane) -> None:
        """With no utterance open or in flight, audio up to the VAD lag is decided."""
        if lane.idle:
            lane.decided = max(lane.decided, lane.vad.frontier - self._vad_lag)

    @property
    def _decided(self) -> int:
        return min(lane.decided for lane in self._lanes)

    def flush(self) -> None:
        """Finalise what was said so far (a final ASR pass now); input may go on."""
        for lane in self._lanes:
            frontier = lane.asr.frontier
            if lane.asr.utterance_open:
                lane.asr.end_utterance(frontier)
                if lane.vad.in_speech:
                    lane.asr.start_utterance(frontier)

    def finish(self) -> None:
        """End of input: flush resampler and VAD so the last utterance gets a final pass."""
        if self._finished:
            return
        self._finished = True
        tails = [lane.resampler.flush() for lane in self._lanes]
        self._hear_tones(tails[0] if self._mix_resampler is None
                         else self._mix_resampler.flush())
        for lane, tail in zip(self._lanes, tails, strict=True):
            if tail.size:
                lane.asr.push_audio(tail)
            probs = lane.vad_stream.push(tail) if tail.size else []
            for ev in lane.vad.push(probs + lane.vad_stream.drain()):
                self._on_vad(lane, ev)
        if self._dtmf is not None:
            self._on_tones(self._dtmf.flush(), end_of_input=True)
        for lane in self._lanes:
            for ev in lane.vad.flush():
                self._on_vad(lane, ev)

    # -- jobs --------------------------------------------------------------------
    def next_job(self, eager: bool = False, loaded: bool = False) -> Job | None:
        """The work that is due now (at most one in flight per session).

        ``eager``: the caller's model pool has room, a Whisper pass may come
        sooner (pace=realtime only, see ``AsrConfig.min_step_ms``). ``loaded``:
        sessions are near their deadlines, long Whisper buffers are trimmed
        (``AsrConfig.trim_buffer_ms``).
        """
        if self._job_lane is not None:
            return None
        n = len(self._lanes)
        for k in range(n):  # round robin: one channel's long turn does not starve the other
            lane = self._lanes[(self._next_lane + k) % n]
            job = lane.asr.next_job(end_of_stream=self._finished, eager=eager, loaded=loaded)
            if job is not None:
                self._next_lane = (self._next_lane + k + 1) % n
                self._job_lane = lane
                self.stats.asr_passes += 1
                return job
        return None

    def complete_job(self, job: Job, result: Any) -> Job | None:
        """Feed a job's result back; returns a follow-up job that is due at once."""
        lane = self._job_lane
        assert lane is not None, "complete_job without a job in flight"
        if isinstance(job, AsrJob):
            update = lane.asr.complete_job(job, list(result))
            return self._after_asr(lane, update)
        self._after_detect(lane, job, result)
        return None

    def fail_job(self, job: Job) -> None:
        """A model call raised or timed out: the audio it covered is masked.

        Fail closed: nobody heard that audio (or checked its words), so it is
        masked even if a later pass over the same audio succeeds — model errors
        are rare and a leak is worse than a beep. Without this the frontier would
        move past it as if decided clean once the utterance is closed.
        """
        self.stats.failed_jobs += 1
        lane = self._job_lane
        assert lane is not None, "fail_job without a job in flight"
        self._job_lane = None
        if isinstance(job, AsrJob):
            if lane.entities:
                lane.plan.add(job.buffer_start, job.buffer_end)
            lane.asr.abandon_job(job)
        else:
            if job.words and lane.entities:
                lane.plan.add(min(w.start for w in job.words), max(w.end for w in job.words))
            lane.pending_detect = None
            lane.pending_update = None
        self._advance_silence_frontier(lane)

    def _after_asr(self, lane: _Lane, update: AsrUpdate) -> DetectJob | None:
        lane.pending_update = update
        lane.text.take(update)
        for w in update.committed:
            lane.heard.add(w.start, max(w.end, w.start + 1))
        lane.heard_tentative = [(w.start - self._word_slack, w.end + self._word_slack)
                                for w in update.tentative]
        lane.unsure_values = []
        if self.cfg.use_hypothesis_evidence and not WORDS_ONLY.issuperset(lane.entities):
            # Only at the hypothesis' end: a number still being said. One with a word
            # after it ("45 dollars") the detector has judged with its right context.
            for heard, w in zip(reversed(lane.heard_tentative), reversed(update.tentative),
                                strict=True):
                if not shown_masked_while_partial(w.text):
                    break
                lane.unsure_values.append(heard)
        window, first, n_committed = lane.text.window(self.cfg.use_hypothesis_evidence)
        texts = tuple(w.text for w in window)
        self._job_seq += 1
        job = DetectJob(self._job_seq, window, first, n_committed, texts)
        lane.pending_detect = job
        if lane.last_detect is not None and lane.last_detect[0] == texts:
            # Same words as last time: same answer, no model call.
            self._after_detect(lane, job, lane.last_detect[1])
            return None
        return job

    def _after_detect(self, lane: _Lane, job: DetectJob, spans: Sequence[WordSpan]) -> None:
        update = lane.pending_update
        lane.pending_detect = None
        lane.pending_update = None
        self._job_lane = None
        lane.last_detect = (job.texts, list(spans))
        cfg = self.cfg
        spans = list(spans)
        if self._dialogue is not None:
            armed = self._dialogue.armed_count
            self._dialogue.observe(job.words, lane.channel)
            self.stats.requests_heard += self._dialogue.armed_count - armed
            spans += self._dialogue.answer_spans(job.words, lane.channel)
        wanted = [s for s in spans if s.entity in lane.entities and s.last > s.first
                  and s.score >= cfg.score_threshold]
        for span in wanted:
            lane.plan.add(*self._cover(job.words, span))
        lane.text.relabel(job.first_index, job.n_committed, wanted, job.words)
        if update is not None:
            lane.decided = max(lane.decided, update.analysed_until)
            for payload in lane.text.render(lambda w: bool(lane.plan.ranges(w.start, w.end))):
                self._emit(lane.label(payload))
            self.stats.final_words = sum(ln.text.final_words for ln in self._lanes)
            self._count_redactions()
        self._advance_silence_frontier(lane)

    @staticmethod
    def _cover(words: Sequence[Word], span: WordSpan) -> tuple[int, int]:
        """A span's audio: its words and the gaps to the words kept beside it."""
        inside = words[span.first : span.last]
        prev_end = words[span.first - 1].end if span.first > 0 else None
        next_start = words[span.last].start if span.last < len(words) else None
        return cover_words(inside[0].start, max(w.end for w in inside), prev_end, next_start)

    def _plans_for(self, entity: str) -> list[MaskPlan]:
        """The mask plans of the lanes that redact ``entity`` (each plan once)."""
        plans: dict[int, MaskPlan] = {}
        for lane in self._lanes:
            if entity in lane.entities:
                plans[id(lane.plan)] = lane.plan
        return list(plans.values())

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
        return self._finished and all(lane.idle for lane in self._lanes)

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
        if self.rate == ANALYSIS_RATE:
            a1 -= 1  # at the analysis rate the map is the identity
        counts = self._quiet_block(start, until, a0, a1)
        if counts is not None:  # the usual 20 ms: nothing masked, late or wordless
            for lane in self._lanes:
                self._end_unexplained_run(lane, until)
            released = self._line.release(
                until, np.zeros((n, len(self._lanes)) if self._isolated else n, dtype=bool))
        else:
            mask, counts = self._block_masks(start, until, a0, a1)
            released = self._line.release(until, mask)
        ms = 1000 / self.rate
        self.stats.audio_out_ms += n * ms
        self.stats.speech_ms += counts.speech * ms
        self.stats.masked_ms += counts.masked * ms
        self.stats.deadline_masked_ms += counts.undecided * ms
        self.stats.deadline_held_digits_ms += counts.held_digits * ms
        self.stats.unexplained_speech_ms += counts.unexplained * ms
        self.stats.unexplained_masked_ms += counts.unexplained_masked * ms
        # Bounded output frames (200 ms), whatever the size of the release.
        data, step = audio_mod.encode(released.samples, self.fmt), self._out_frame_bytes
        for i in range(0, len(data), step):
            sample = start + i // self.fmt.bytes_per_frame
            self._outbox.append(AudioOut(data[i : i + step], sample))
        for lane in self._lanes:
            lane.plan.forget_before(a0 - self._delay)  # a shared plan: harmless twice
            lane.heard.forget_before(a0 - self._delay)
            lane.vad.forget_before(a0 - self._delay)
        if self._dialogue is not None:
            self._dialogue.forget_before(a0 - self._delay)

    def _quiet_block(self, start: int, until: int, a0: int, a1: int) -> _BlockCounts | None:
        """Client samples ``[start, until)`` when none is masked, late or wordless
        (no plan, every speech sample decided and under a word), else None.

        Interval arithmetic instead of :meth:`_block_masks`'s per-sample arrays:
        the same counts, at a fraction of the cost of a release per 20 ms frame.
        """
        all_decided = self._all_decided_after_finish()
        speech: list[tuple[int, int]] = []
        for lane in self._lanes:
            if lane.plan.ranges(a0, a1):
                return None
            heard = lane.vad.speech_intervals(a0, a1)
            if not heard:
                continue
            if lane.entities and not all_decided and (
                    lane.decided < a1 or _overlaps(lane.unsure_values, a0, a1)):
                return None
            if not _covers(lane.heard.ranges(a0, a1) + lane.heard_tentative, heard):
                return None
            speech += heard
        clipped = ((max(start, self._client_ceil(lo)), min(until, self._client_ceil(hi)))
                   for lo, hi in merge_ranges(speech))
        return _BlockCounts(speech=sum(max(0, hi - lo) for lo, hi in clipped))

    def _client_ceil(self, analysis_sample: int) -> int:
        """The first client sample whose analysis sample is at or after this one."""
        return -(-analysis_sample * self.rate // ANALYSIS_RATE)

    def _block_masks(self, start: int, until: int, a0: int,
                     a1: int) -> tuple[np.ndarray, _BlockCounts]:
        """Release masks for client samples ``[start, until)``, sample by sample."""
        n = until - start
        # Everything in analysis samples first, then mapped to client samples
        # (at the analysis rate the map is the identity: no index arrays).
        if self.rate == ANALYSIS_RATE:
            idx = None

            def at_client(m: np.ndarray) -> np.ndarray:
                return m
        else:
            idx = (np.arange(start, until, dtype=np.int64) * ANALYSIS_RATE) // self.rate

            def at_client(m: np.ndarray) -> np.ndarray:
                return m[idx - a0]
        all_decided = self._all_decided_after_finish()
        speech = np.zeros(n, dtype=bool)
        undecided = np.zeros(n, dtype=bool)
        held_digits = np.zeros(n, dtype=bool)
        unexplained = np.zeros(n, dtype=bool)
        unexplained_masked = np.zeros(n, dtype=bool)
        lane_masks: list[np.ndarray] = []
        for lane in self._lanes:  # each lane's own speech, decisions and words
            planned = at_client(ranges_to_mask(lane.plan.ranges(a0, a1), a0, a1 - a0))
            heard_lane = at_client(ranges_to_mask(lane.vad.speech_intervals(a0, a1), a0, a1 - a0))
            late = heard_lane & ~planned
            if idx is None:
                late[: max(0, min(n, lane.decided - a0))] = False
            else:
                late &= idx >= lane.decided
            held = np.zeros(n, dtype=bool)
            if lane.unsure_values:
                # A digit the latest pass heard but has not committed ("my number is
                # A3 -0", the number still being said) is not decided either: the
                # audio is never less masked than the partial transcript shows it.
                held = heard_lane & ~planned & ~late & at_client(
                    ranges_to_mask(lane.unsure_values, a0, a1 - a0))
                late |= held
            if all_decided or not lane.entities:  # nothing to redact: nothing is late
                late[:] = False
                held[:] = False
            worded = lane.heard.ranges(a0, a1) + lane.heard_tentative
            wordless = heard_lane & ~late & ~at_client(ranges_to_mask(worded, a0, a1 - a0))
            masked_wordless = at_client(self._unexplained_policy(lane, a0, a1)) & wordless
            self._report_unexplained(lane, start, masked_wordless)
            speech |= heard_lane
            undecided |= late
            held_digits |= held
            unexplained |= wordless
            unexplained_masked |= masked_wordless & ~planned
            lane_mask = planned | late if self.cfg.on_deadline == "mask" else planned
            lane_masks.append(lane_mask | masked_wordless)
        if self._isolated:  # each channel carries its own lane's masks only
            mask = np.stack(lane_masks, axis=1)
            any_masked = mask.any(axis=1)
        else:
            mask = any_masked = np.logical_or.reduce(lane_masks)
        return mask, _BlockCounts(
            speech=int(speech.sum()), masked=int(any_masked.sum()),
            undecided=int(undecided.sum()), held_digits=int(held_digits.sum()),
            unexplained=int(unexplained.sum()),
            unexplained_masked=int(unexplained_masked.sum()))

    def _unexplained_policy(self, lane: _Lane, a0: int, a1: int) -> np.ndarray:
        """Where speech no word explains is masked: armed answers, or all of it."""
        if self.cfg.mask_unexplained and lane.entities:
            return np.ones(a1 - a0, dtype=bool)
        if self._dialogue is None:
            return np.zeros(a1 - a0, dtype=bool)
        armed = [(lo, hi) for lo, hi, entity in self._dialogue.armed_ranges(a0, a1, lane.channel)
                 if entity in lane.entities]
        return ranges_to_mask(armed, a0, a1 - a0)

    def _report_unexplained(self, lane: _Lane, start: int, masked: np.ndarray) -> None:
        """One ``redaction`` event per run of masked wordless speech (runs span releases)."""
        idx = np.flatnonzero(masked)
        if idx.size:
            breaks = np.flatnonzero(np.diff(idx) > 1)
            for lo, hi in zip([idx[0], *idx[breaks + 1]], [*idx[breaks], idx[-1]], strict=True):
                s0 = self._analysis_sample(start + int(lo))
                s1 = self._analysis_sample(start + int(hi) + 1)
                run = lane.unexplained_run
                if run is not None and s0 - run[1] <= self._word_slack:
                    lane.unexplained_run = (run[0], s1, run[2], run[3])
                    continue
                self._close_unexplained_run(lane)
                entity, reason = "UNEXPLAINED_SPEECH", "unexplained"
                if self._dialogue is not None:
                    for _lo, _hi, armed in self._dialogue.armed_ranges(s0, s1, lane.channel):
                        entity, reason = armed, CONTEXT_REASON
                lane.unexplained_run = (s0, s1, entity, reason)
        self._end_unexplained_run(lane, start + masked.size)

    def _end_unexplained_run(self, lane: _Lane, until: int) -> None:
        """Close the lane's run of masked wordless speech once released past it."""
        run = lane.unexplained_run
        if run is not None and self._analysis_sample(until) - run[1] > self._word_slack:
            self._close_unexplained_run(lane)

    def _count_redaction_without_words(self) -> None:
        """A redaction event not from the transcript (keypad tones, wordless speech)."""
        self._audio_only_redactions += 1
        self._count_redactions()

    def _count_redactions(self) -> None:
        self.stats.redactions = (sum(lane.text.redactions for lane in self._lanes)
                                 + self._audio_only_redactions)

    def _close_unexplained_run(self, lane: _Lane) -> None:
        if lane.unexplained_run is None:
            return
        s0, s1, entity, reason = lane.unexplained_run
        lane.unexplained_run = None
        self._count_redaction_without_words()
        self._emit(lane.label({"type": "redaction", "entity": entity,
                               "start": samples_to_seconds(s0), "end": samples_to_seconds(s1),
                               "score": 0.5, "reason": reason}))

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
        for lane in self._lanes:
            self._close_unexplained_run(lane)
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
        "channel_roles": list(cfg.channel_roles),
        **({"channel_entities": [list(e) for e in cfg.channel_entities]}
           if cfg.channel_entities else {}),
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


@dataclass(frozen=True, slots=True)
class _BlockCounts:
    """Client samples of one release that were speech, masked, and so on."""

    speech: int = 0
    masked: int = 0
    undecided: int = 0
    held_digits: int = 0  # of undecided: digits still being said
    unexplained: int = 0
    unexplained_masked: int = 0


def _overlaps(ranges: list[tuple[int, int]], lo: int, hi: int) -> bool:
    """Whether any of ``ranges`` reaches into ``[lo, hi)``."""
    return any(a < hi and lo < b for a, b in ranges)


def _covers(ranges: list[tuple[int, int]], spans: list[tuple[int, int]]) -> bool:
    """Whether the union of ``ranges`` holds every ``[lo, hi)`` of ``spans``."""
    union = merge_ranges(ranges)
    return all(any(ulo <= lo and hi <= uhi for ulo, uhi in union)
               for lo, hi in spans if lo < hi)
