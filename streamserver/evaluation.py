"""Redaction scoring, as ``shared/data/README.md`` defines it.

A 10 ms frame of the input above -45 dBFS is speech. It counts as masked where
the output no longer carries it: the energy of (output - input) is at least
half the input's. Leak = unmasked speech inside PII spans / speech inside PII
spans; over-redaction = masked speech more than 0.5 s away from any span /
such speech. An entity *leaks* when >= 25 % of its speech is audible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

FRAME_S = 0.01
SPEECH_DBFS = -45.0
AWAY_S = 0.5
ENTITY_AUDIBLE = 0.25


@dataclass(frozen=True, slots=True)
class Span:
    entity: str
    start_s: float
    end_s: float


@dataclass
class ClipScore:
    pii_speech: int = 0
    pii_leaked: int = 0
    away_speech: int = 0
    away_masked: int = 0
    entities: list[tuple[str, float]] = field(default_factory=list)  # (entity, audible share)


def frame_flags(inp: np.ndarray, out: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame: (is speech, is masked). Inputs mono int16 or float, same length."""
    if inp.shape != out.shape:
        raise ValueError(f"input {inp.shape} and output {out.shape} are not aligned")
    x = inp.astype(np.float64).reshape(-1)
    y = out.astype(np.float64).reshape(-1)
    if np.issubdtype(inp.dtype, np.integer):
        x, y = x / 32768.0, y / 32768.0
    n = int(rate * FRAME_S)
    frames = x.size // n
    xf = x[: frames * n].reshape(frames, n)
    yf = y[: frames * n].reshape(frames, n)
    energy = np.sum(xf**2, axis=1)
    rms = np.sqrt(energy / n)
    speech = 20 * np.log10(np.maximum(rms, 1e-10)) > SPEECH_DBFS
    masked = np.sum((yf - xf) ** 2, axis=1) >= 0.5 * energy
    return speech, masked & speech


def score_clip(inp: np.ndarray, out: np.ndarray, rate: int, spans: Sequence[Span]) -> ClipScore:
    speech, masked = frame_flags(inp, out, rate)
    frames = speech.size
    t = np.arange(frames) * FRAME_S + FRAME_S / 2
    near = np.zeros(frames, dtype=bool)
    score = ClipScore()
    for span in spans:
        inside = (t >= span.start_s) & (t < span.end_s)
        sp = inside & speech
        n = int(sp.sum())
        leaked = int((sp & ~masked).sum())
        score.pii_speech += n
        score.pii_leaked += leaked
        score.entities.append((span.entity, leaked / n if n else 0.0))
        near |= (t >= span.start_s - AWAY_S) & (t < span.end_s + AWAY_S)
    away = speech & ~near
    score.away_speech = int(away.sum())
    score.away_masked = int((away & masked).sum())
    return score


@dataclass
class Summary:
    audio_leak: float
    entity_leak: float
    over_redaction: float
    entities: int
    leaked_entities: int
    per_entity: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "audio_leak": round(self.audio_leak, 4),
            "entity_leak": round(self.entity_leak, 4),
            "over_redaction": round(self.over_redaction, 4),
            "entities": self.entities,
            "leaked_entities": self.leaked_entities,
            "per_entity_leak": {k: round(v, 4) for k, v in sorted(self.per_entity.items())},
        }


def summarise(scores: Sequence[ClipScore]) -> Summary:
    pii = sum(s.pii_speech for s in scores)
    leaked = sum(s.pii_leaked for s in scores)
    away = sum(s.away_speech for s in scores)
    away_masked = sum(s.away_masked for s in scores)
    ents = [e for s in scores for e in s.entities]
    per: dict[str, list[bool]] = {}
    for name, share in ents:
        per.setdefault(name, []).append(share >= ENTITY_AUDIBLE)
    n_leaked = sum(share >= ENTITY_AUDIBLE for _, share in ents)
    return Summary(
        audio_leak=leaked / pii if pii else 0.0,
        entity_leak=n_leaked / len(ents) if ents else 0.0,
        over_redaction=away_masked / away if away else 0.0,
        entities=len(ents),
        leaked_entities=n_leaked,
        per_entity={k: sum(v) / len(v) for k, v in per.items()},
    )


def masked_speech_share(inp: np.ndarray, out: np.ndarray, rate: int) -> tuple[int, int]:
    """(masked speech frames, speech frames) for a clip with no personal data."""
    speech, masked = frame_flags(inp, out, rate)
    return int(masked.sum()), int(speech.sum())
