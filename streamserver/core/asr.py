"""Streaming ASR state: utterance buffer, Whisper jobs and LocalAgreement-2.

No model here: :meth:`StreamingTranscriber.next_job` hands out a snapshot of
audio to transcribe, whoever runs the model gives the words back to
:meth:`StreamingTranscriber.complete_job`, and LocalAgreement-2 (commit the
longest common prefix of two consecutive hypotheses, as in ufal's
whisper_streaming) decides which words are stable.

Call order per stream: ``push_audio`` (any size) and the VAD edges
``start_utterance``/``end_utterance`` as they happen; whenever no job is in
flight, ``next_job``; after running it, ``complete_job``. One job at a time.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ..config import AsrConfig
from .pii import may_extend_entity
from .types import ANALYSIS_RATE, Word, ms_to_samples

# Words whose start lies this far before the last committed word's end are
# treated as repeats of it (Whisper re-transcribes the buffer every pass).
_OVERLAP_TOLERANCE = ANALYSIS_RATE // 10
_MAX_NGRAM_OVERLAP = 5
# Words ending this close to the end of the transcribed buffer are never committed.
_EDGE_GUARD = ANALYSIS_RATE * 3 // 10
# Speech this long after the last word heard still counts as analysed.
_UNHEARD_SLACK = ANALYSIS_RATE
_LOADED_HOLD = ANALYSIS_RATE * 10
# Whisper's word alignment has a 20 ms step: a word this short has no audio of its own.
_NO_AUDIO = ANALYSIS_RATE // 50
_NON_WORD = re.compile(r"[^\w]+")
_DIGIT = re.compile(r"\d")


def _key(text: str) -> str:
    """Comparison form of a word: case and punctuation do not break agreement."""
    return _NON_WORD.sub("", text.lower())


@dataclass(frozen=True, slots=True)
class AsrJob:
    """Audio ``[buffer_start, buffer_end)`` to transcribe, with its prompt."""

    job_id: int
    buffer_start: int
    buffer_end: int
    audio: np.ndarray = field(repr=False)
    prompt: str
    final: bool


@dataclass(frozen=True, slots=True)
class AsrUpdate:
    """What one job changed: newly stable words and the current unstable tail."""

    committed: list[Word]
    tentative: list[Word]
    analysed_until: int
    utterance_ended: bool


@dataclass(frozen=True, slots=True)
class TimedWord:
    """A word as the model returns it, offsets relative to the job's buffer."""

    text: str
    start: int
    end: int
    probability: float = 1.0


def drop_words_without_audio(
    words: list[TimedWord], context: Sequence[str] = ()
) -> list[TimedWord]:
    """Drop what Whisper wrote without audio: runs the alignment stacked on one instant.

    When tiny.en decodes on past the speech it was given (at the end of an
    utterance buffer) it writes again what it has just written ("... from here,
    sonny. Well, I wouldn't start from here, sonny."); it also echoes its prompt
    or runs ahead of the speech. The aligner has no audio for those tokens and
    stacks them at one instant with no duration (the last may take the audio
    that is left). Real words take time to say: a run of words starting at one
    instant, two or more of them without duration, is not speech and is dropped.
    Kept, a final pass (which commits without agreement) writes the sentence
    twice, and the prompt then seeds the next pass with the repeat.

    One exception: the last word really said can be pulled onto the instant of
    a loop that rewrites the text up to it ("555 | 0175. My number is 830 555
    0175."); that word is kept, with the audio the run took. ``context``: the
    words before these (the prompt), where a loop may start.
    """
    out: list[TimedWord] = []
    before = [_key(t) for t in context]
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and abs(words[j].start - words[i].start) <= _NO_AUDIO:
            j += 1
        run = words[i:j]
        if sum(1 for w in run if w.end - w.start <= _NO_AUDIO) >= 2:
            first = run[0]
            run = []
            if _loops_back_to_its_first_word(before, [_key(w.text) for w in words[i:j]]):
                end = max(w.end for w in words[i:j])
                run = [TimedWord(first.text, first.start, end, first.probability)]
        out.extend(run)
        before.extend(_key(w.text) for w in run)
        i = j
    return out


def _loops_back_to_its_first_word(before: list[str], run: list[str]) -> bool:
    """Whether ``run[1:]`` (three words or more) rewrites the text that ends with
    ``run[0]``: periodic with some period, ending on a copy of ``run[0]``."""
    if len(run) < 4 or run[-1] != run[0]:
        return False
    seq = before + run
    head = len(before) + 1
    return any(all(seq[k] == seq[k - period] for k in range(head, len(seq)))
               for period in range(1, head + 1))


class SampleStore:
    """Samples ``[start, end)`` of one stream in a reused, growing array.

    Appending 20 ms at a time to a numpy array by concatenation copies the whole
    buffer (up to ``max_buffer_ms``, 15 s) fifty times a second per session;
    here an append copies only the new samples, and the kept tail is moved to
    the front only when the array is full.
    """

    def __init__(self, capacity: int = ANALYSIS_RATE * 4) -> None:
        self._array = np.zeros(capacity, dtype=np.float32)
        self._lo = 0  # array index of sample ``start``
        self._hi = 0  # array index one past sample ``end - 1``
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + self._hi - self._lo

    def append(self, samples: np.ndarray) -> None:
        n = samples.size
        if self._hi + n > self._array.size:
            kept = self._hi - self._lo
            if kept + n > self._array.size * 3 // 4:  # grow: appends stay amortised O(n)
                bigger = np.zeros(max(2 * self._array.size, 2 * (kept + n)), np.float32)
                bigger[:kept] = self._array[self._lo : self._hi]
                self._array = bigger
            else:
                self._array[:kept] = self._array[self._lo : self._hi]
            self._lo, self._hi = 0, kept
        self._array[self._hi : self._hi + n] = samples
        self._hi += n

    def forget_before(self, sample: int) -> None:
        """Drop samples before ``sample`` (the array is reused, not shrunk)."""
        drop = min(sample - self.start, self._hi - self._lo)
        if drop > 0:
            self._lo += drop
            self.start += drop

    def copy(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``[lo, hi)`` as a new array (clipped to what is kept)."""
        a = self._lo + max(0, lo - self.start)
        b = self._lo + max(0, min(hi, self.end) - self.start)
        return self._array[a:b].copy()


class StreamingTranscriber:
    """Utterance buffer plus LocalAgreement-2 hypothesis buffer for one stream."""

    def __init__(
        self, cfg: AsrConfig, preroll: int = ANALYSIS_RATE // 2, fixed_steps: bool = False
    ) -> None:
        """``fixed_steps``: passes end every ``step_ms`` of audio, however fast it
        arrives (pace=asap: results do not depend on timing). Otherwise a pass
        takes all the audio there is (pace=realtime: the newest audio first)."""
        self.cfg = cfg
        self.fixed_steps = fixed_steps
        self._step = ms_to_samples(cfg.step_ms)
        self._min_step = ms_to_samples(min(cfg.min_step_ms, cfg.step_ms))
        self._max_buffer = ms_to_samples(cfg.max_buffer_ms)
        self._trim_after = ms_to_samples(cfg.trim_buffer_ms)
        self._trim_context = ms_to_samples(cfg.trim_context_ms)
        # Passes ending before this come under load (pace=realtime): see next_job.
        self._loaded_until = 0
        self._preroll = preroll
        # Audio store: samples [_store_start, frontier) at 16 kHz.
        self._samples = SampleStore()
        self._buffer_start: int | None = None  # open utterance buffer
        self._end_pending: int | None = None  # VAD said the utterance ended here
        # VAD edges that arrived while an utterance was still waiting for its
        # final pass, in order: ("start" | "end", sample).
        self._queued: deque[tuple[str, int]] = deque()
        self._last_job_end = 0
        self._job_seq = 0
        self._in_flight: AsrJob | None = None
        self._committed_tail: list[Word] = []  # recent committed words (prompt, overlap)
        self._hypothesis: list[Word] = []  # previous pass's uncommitted words
        self._last_committed_end = 0

    # -- input -----------------------------------------------------------------
    @property
    def frontier(self) -> int:
        return self._samples.end

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    @property
    def utterance_open(self) -> bool:
        return self._buffer_start is not None

    def push_audio(self, samples: np.ndarray) -> None:
        self._samples.append(samples)
        self._trim_store()

    def start_utterance(self, start: int) -> None:
        start = max(start, self._samples.start)
        if self._buffer_start is None and not self._queued:
            self._buffer_start = start
            self._last_job_end = start
        elif self._end_pending is not None or self._queued:
            self._queued.append(("start", start))

    def end_utterance(self, end: int) -> None:
        if self._end_pending is not None or self._queued:
            self._queued.append(("end", end))
        elif self._buffer_start is not None:
            self._end_pending = max(end, self._buffer_start)

    # -- jobs ------------------------------------------------------------------
    def next_job(self, end_of_stream: bool = False, eager: bool = False,
                 loaded: bool = False) -> AsrJob | None:
        """The next Whisper pass due, or None (nothing new, or one in flight).

        ``eager`` (the model has room now): ``min_step_ms`` of new audio is
        enough; ignored with ``fixed_steps``. ``loaded`` (the caller's sessions are
        near their deadlines): long buffers are trimmed, as after a late pass.
        """
        if self._in_flight is not None or self._buffer_start is None:
            return None
        final = self._end_pending is not None
        end = self._end_pending if final else self.frontier
        assert end is not None
        if end_of_stream and not final and not self._queued:
            final, end = True, self.frontier
        if self.fixed_steps and end - self._last_job_end > self._step:
            final, end = False, self._last_job_end + self._step
        step = self._min_step if eager and not self.fixed_steps else self._step
        if not final and end - self._last_job_end < step:
            return None
        audio = self._samples.copy(self._buffer_start, end)
        self._job_seq += 1
        job = AsrJob(self._job_seq, self._buffer_start, end, audio, self._prompt(), final)
        self._in_flight = job
        # A pass that comes late (over a step of new audio), or the caller saying
        # so, means the model pool is behind: for the next 10 s of audio long
        # buffers are trimmed.
        if loaded or end - self._last_job_end > self._step * 11 // 10:
            self._loaded_until = end + _LOADED_HOLD
        self._last_job_end = end
        return job

    def complete_job(self, job: AsrJob, words: list[TimedWord]) -> AsrUpdate:
        """LocalAgreement-2 over the job's words; returns what became stable."""
        if self._in_flight is None or job.job_id != self._in_flight.job_id:
            raise ValueError("complete_job for a job that is not in flight")
        self._in_flight = None
        new, shadow = self._absolute_new_words(job, words)
        if job.final:
            committed = new
            self._hypothesis = []
        else:
            n = 0
            while (
                n < len(new) and n < len(self._hypothesis)
                and _key(new[n].text) == _key(self._hypothesis[n].text)
                # A word running into the end of the buffer may be cut short
                # (a digit string still being spoken): it is not stable yet.
                and new[n].end <= job.buffer_end - _EDGE_GUARD
            ):
                n += 1
            # Whisper re-splits a digit string while it is being spoken ("8" ->
            # "880, 555" -> "880550175"), so two passes can agree on a piece of
            # it that the next pass swallows into a longer word, which then
            # starts inside committed text and is never committed itself. Digits
            # at the end of the agreed prefix wait until an agreed word follows
            # them (the number is over) or the final pass.
            while n > 0 and _DIGIT.search(new[n - 1].text):
                n -= 1
            committed, self._hypothesis = new[:n], new[n:]
        committed = [Word(w.text, w.start, w.end, w.probability, True) for w in committed]
        self._remember(committed)
        if job.final:
            self._close_utterance(job.buffer_end)
        else:
            forced = self._maybe_cut_buffer()
            self._remember(forced)
            committed += forced
        heard_until = job.buffer_end
        if not job.final:
            # Speech Whisper has not put words on yet is not analysed: the
            # frontier stops a little after the last word it heard.
            heard = (*committed, *self._hypothesis, *shadow)
            last_end = max([self._last_committed_end, *(w.end for w in heard)])
            heard_until = min(job.buffer_end, last_end + _UNHEARD_SLACK)
            heard_until = max(heard_until, job.buffer_start)
        tentative = [Word(w.text, w.start, w.end, w.probability) for w in shadow]
        return AsrUpdate(committed, tentative + list(self._hypothesis), heard_until, job.final)

    def abandon_job(self, job: AsrJob) -> None:
        """The model call failed: forget the job (its audio will fail closed)."""
        if self._in_flight is not None and job.job_id == self._in_flight.job_id:
            self._in_flight = None
            if job.final:
                self._hypothesis = []
                self._close_utterance(job.buffer_end)

    # -- internals -------------------------------------------------------------
    def _absolute_new_words(
        self, job: AsrJob, words: list[TimedWord]
    ) -> tuple[list[Word], list[Word]]:
        """(new words after the committed ones, *shadow* words).

        A shadow word starts inside committed text but runs well past it: a
        revision of a committed word that was cut short ("83055" that turns out
        to be "880550175"). It is never committed, but it is evidence for masking.
        """
        absolute = [
            Word(w.text, job.buffer_start + w.start, job.buffer_start + w.end, w.probability)
            for w in drop_words_without_audio([w for w in words if _key(w.text)],
                                              job.prompt.split())
        ]
        # Whisper sometimes stretches the last word past the audio it was given.
        absolute = [
            Word(w.text, w.start, min(w.end, job.buffer_end), w.probability)
            for w in absolute
            if w.start < job.buffer_end
        ]
        cutoff = self._last_committed_end - _OVERLAP_TOLERANCE
        fresh = [w for w in absolute if w.start >= cutoff]
        shadow = [
            w for w in absolute
            if w.start < cutoff and w.end > self._last_committed_end + _OVERLAP_TOLERANCE
        ]
        # Drop an n-gram that repeats the end of what is already committed.
        if fresh and self._committed_tail:
            tail = [_key(w.text) for w in self._committed_tail]
            for n in range(min(_MAX_NGRAM_OVERLAP, len(tail), len(fresh)), 0, -1):
                if tail[-n:] == [_key(w.text) for w in fresh[:n]]:
                    fresh = fresh[n:]
                    break
        return fresh, shadow

    def _remember(self, committed: list[Word]) -> None:
        if not committed:
            return
        self._committed_tail.extend(committed)
        del self._committed_tail[: -4 * _MAX_NGRAM_OVERLAP - 40]
        self._last_committed_end = max(self._last_committed_end, committed[-1].end)

    def _prompt(self) -> str:
        if self.cfg.prompt_chars <= 0 or self._buffer_start is None:
            return ""
        before = [w.text for w in self._committed_tail if w.end <= self._buffer_start]
        return "".join(before)[-self.cfg.prompt_chars :].strip()

    def _close_utterance(self, end: int) -> None:
        self._end_pending = None
        self._buffer_start = None
        while self._queued and self._end_pending is None:
            kind, sample = self._queued.popleft()
            if kind == "start" and self._buffer_start is None:
                self._buffer_start = max(sample, self._samples.start)
                self._last_job_end = self._buffer_start
            elif kind == "end" and self._buffer_start is not None:
                self._end_pending = max(sample, self._buffer_start)
        self._trim_store()

    def _maybe_cut_buffer(self) -> list[Word]:
        """Keep Whisper's input bounded: cut at the last committed word's end.

        Returns the words committed without agreement to make the cut (see below).
        """
        assert self._buffer_start is not None
        # Measured at the last pass's end, not the frontier: timing-independent.
        if self._last_job_end - self._buffer_start <= self._max_buffer:
            # Only under load: each pass is then cheaper, so passes come on time
            # again instead of growing longer and later. pace=asap steps are never
            # late, so offline results do not depend on timing.
            if self._last_job_end < self._loaded_until and self._trim_after \
                    and self._last_job_end - self._buffer_start > self._trim_after:
                self._trim_committed_start(self._trim_context)
            return []
        cut = self._last_committed_end
        forced: list[Word] = []
        if cut <= self._buffer_start:
            # Nothing committed in a full buffer (no agreement): keep the newest
            # part. No pass will hear the older part again, so the words the
            # last pass heard there are committed as they are, not dropped.
            cut = self._last_job_end - self._max_buffer // 2
            forced = [Word(w.text, w.start, w.end, w.probability, True)
                      for w in self._hypothesis if w.end <= cut]
            self._hypothesis = []
        self._buffer_start = min(cut, self._last_job_end)
        self._trim_store()
        return forced

    def _trim_committed_start(self, context: int) -> None:
        """Start the buffer in the widest pause between committed words that lies
        0.5-1.5 x ``context`` before the last committed word's end, between
        two plain words.

        The committed words before it are never needed again; the ones after it
        stay as context, so the words Whisper has not agreed on yet are not at the
        buffer's edge. Without such a pause (one long word, no gaps) it waits."""
        assert self._buffer_start is not None
        hi = self._last_committed_end - context // 2
        lo = self._last_committed_end - context * 3 // 2
        words = [w for w in self._committed_tail if w.start >= self._buffer_start]
        best: tuple[int, int] | None = None  # (gap, cut)
        for before, after in pairwise(words):
            # Never between words that may belong to a value ("is | 4111", "five |
            # five"): the first pass after a cut sometimes drops or rewrites the
            # words at the buffer's new edge, and a number must stay whole.
            if not lo <= after.start <= hi or may_extend_entity(before.text) \
                    or may_extend_entity(after.text):
                continue
            gap = after.start - before.end
            if best is None or gap > best[0]:
                best = (gap, after.start - min(max(gap, 0) // 2, ANALYSIS_RATE // 10))
        if best is not None and best[1] > self._buffer_start:
            self._buffer_start = best[1]
            self._trim_store()

    def _trim_store(self) -> None:
        keep_from = self.frontier - self._preroll
        marks = [self._buffer_start, *(s for kind, s in self._queued if kind == "start")]
        for mark in marks:
            if mark is not None:
                keep_from = min(keep_from, mark)
        if self._in_flight is not None:
            keep_from = min(keep_from, self._in_flight.buffer_start)
        self._samples.forget_before(keep_from)
