"""Every word the ASR heard reaches a ``transcript.final`` before ``session.end``.

The session core with a scripted VAD and scripted Whisper passes on a virtual
clock; the driver ends the session the way :class:`SessionRunner` does (close
as soon as ``session.done``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamserver.config import AsrConfig, SessionConfig
from streamserver.core.asr import AsrJob, TimedWord
from streamserver.core.session import AudioOut, Event, Session

RATE = 16000
WINDOW = 512
FRAME_S = 0.02
# "My number is 830 555 0175", spoken to the very end of the stream.
SCRIPT = [(" My", 0.6, 0.8), (" number", 0.8, 1.1), (" is", 1.1, 1.3), (" 830", 1.4, 1.9),
          (" 555", 2.0, 2.4), (" 0175.", 2.45, 2.9)]
SPEECH = (0.5, 3.0)
END_S = 3.0


class ScriptedVad:
    """Speech probability 1 inside the scripted speech, 0 outside, per 512-sample window."""

    def __init__(self, speech: tuple[float, float]) -> None:
        self.lo, self.hi = int(speech[0] * RATE), int(speech[1] * RATE)
        self.pushed = 0
        self.windows = 0

    def push(self, samples: np.ndarray) -> list[float]:
        self.pushed += samples.size
        probs = []
        while (self.windows + 1) * WINDOW <= self.pushed:
            mid = self.windows * WINDOW + WINDOW // 2
            probs.append(1.0 if self.lo <= mid < self.hi else 0.0)
            self.windows += 1
        return probs

    def drain(self) -> list[float]:
        return []


def transcribe(job: AsrJob) -> list[TimedWord]:
    """The scripted words whose audio the pass has (cut at the buffer's end)."""
    lo, hi = job.buffer_start, job.buffer_end
    return [TimedWord(t, int(a * RATE) - lo, min(int(b * RATE), hi) - lo)
            for t, a, b in SCRIPT if lo <= int(a * RATE) < hi]


def run_job(s: Session, job: Any) -> None:
    while job is not None:
        job = s.complete_job(job, transcribe(job) if isinstance(job, AsrJob) else [])


@pytest.mark.parametrize("model_late_s", [0.1, 3.0])
def test_realtime_session_end_waits_for_the_final_pass(model_late_s: float) -> None:
    """The stream ends mid-number; the final pass comes back after the clock has
    released the tail at arrival + D (a busy model). Before the fix the session
    counted as done once the audio was out, ``session.end`` went first and the
    end of the number never reached a final."""
    cfg = SessionConfig.from_params({"encoding": "pcm_s16le", "sample_rate": RATE,
                                     "pace": "realtime", "delay_ms": 500})
    s = Session(cfg, AsrConfig(), ScriptedVad(SPEECH), session_id="t")
    out: list[AudioOut | Event] = []
    frame = np.zeros(int(FRAME_S * RATE), dtype=np.int16).tobytes()
    now = 0.0
    for _ in range(round(END_S / FRAME_S)):
        s.push_audio(frame, now)
        while (job := s.next_job()) is not None:
            run_job(s, job)
        now += FRAME_S
        s.release(now)
        out += s.take_outputs()
    s.finish()
    final_pass = s.next_job()
    assert isinstance(final_pass, AsrJob) and final_pass.final
    # The model is busy: the clock ticks on and releases the tail meanwhile; the
    # driver ends the session as soon as it is done, as SessionRunner does.
    end, closed = now + model_late_s, False
    while now < end and not closed:
        now += FRAME_S
        s.release(now)
        if s.done:
            s.close()
            closed = True
        out += s.take_outputs()
    run_job(s, final_pass)
    while (job := s.next_job()) is not None:
        run_job(s, job)
    s.release(now)
    assert s.done
    s.close()
    out += s.take_outputs()
    events = [o.payload for o in out if isinstance(o, Event)]
    ended = next(i for i, e in enumerate(events) if e["type"] == "session.end")
    finals = [w["text"] for e in events[:ended] if e["type"] == "transcript.final"
              for w in e["words"]]
    assert len(finals) == len(SCRIPT)  # the last digits too (masked: "####.")
    assert ended == len(events) - 1
    released = sum(len(o.data) for o in out if isinstance(o, AudioOut)) // 2
    assert released == round(END_S * RATE)
