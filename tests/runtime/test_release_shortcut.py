"""The release shortcut (interval arithmetic for blocks with nothing to mask) gives
exactly what the per-sample masks give: same audio, events and stats.

Real models, real clips with PII in them, real time with passes inline: each
session runs twice, once with the shortcut and once with it turned off.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamserver import audio as audio_mod
from streamserver.config import SessionConfig
from streamserver.core.session import AudioOut, Event, Session
from tests.conftest import FIXTURES


def _pcm16(clips: list[str]) -> np.ndarray:
    parts = []
    for name in clips:
        samples, rate = audio_mod.read_wav(FIXTURES / name)
        assert rate == 16000
        mono = samples.reshape(samples.shape[0], -1)[:, :1]
        parts += [mono, np.zeros((rate * 3 // 2, 1), dtype=np.int16)]  # a pause between
    return np.concatenate(parts)


def _run(engines, params: dict[str, object], pcm16: np.ndarray, shortcut: bool,
         monkeypatch: pytest.MonkeyPatch, pass_every: int) -> tuple[bytes, list[dict], dict]:
    """Stream in 20 ms frames on a simulated clock; a pass every ``pass_every``
    frames, inline."""
    if not shortcut:
        monkeypatch.setattr(Session, "_quiet_block", lambda self, *a: None)
    cfg = SessionConfig.from_params(params)
    session = engines.new_session(cfg, "t")
    fmt = audio_mod.AudioFormat(cfg.encoding, cfg.sample_rate, cfg.channels)  # type: ignore[arg-type]
    x = pcm16.astype(np.float32) / 32768
    if cfg.sample_rate != 16000:
        x = x[:: 16000 // cfg.sample_rate]  # crude decimation: the input only needs to be fixed
    x = np.repeat(x[:, :1], cfg.channels, axis=1)
    data = audio_mod.encode(np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16), fmt)
    step = fmt.bytes_per_frame * cfg.sample_rate // 50
    outs: list[AudioOut | Event] = []
    for k, i in enumerate(range(0, len(data), step)):
        now = k * 0.02
        session.push_audio(data[i : i + step], now)
        if k % pass_every == 0:
            job = session.next_job(eager=True)
            while job is not None:
                job = session.complete_job(job, engines.run_job(job)) or session.next_job()
        session.release(now)
        outs += session.take_outputs()
    session.finish()
    job = session.next_job()
    while job is not None:
        job = session.complete_job(job, engines.run_job(job)) or session.next_job()
    session.release(1e9)
    outs += session.take_outputs()
    monkeypatch.undo()
    audio = b"".join(o.data for o in outs if isinstance(o, AudioOut))
    events = [o.payload for o in outs if isinstance(o, Event) and o.payload["type"] != "stats"]
    return audio, events, session.stats.as_dict()


@pytest.mark.parametrize(("params", "pass_every"), [
    ({"encoding": "pcm_s16le", "sample_rate": 16000}, 15),
    ({"encoding": "mulaw", "sample_rate": 8000}, 15),
    ({"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 2,
      "channel_roles": "agent,caller"}, 15),
    ({"encoding": "pcm_s16le", "sample_rate": 16000, "mask_unexplained": "true"}, 15),
    # Passes every 2.6 s: some speech reaches its deadline undecided.
    ({"encoding": "mulaw", "sample_rate": 8000}, 130),
], ids=["pcm16k", "mulaw8k", "two-channels", "mask-unexplained", "starved"])
def test_shortcut_releases_what_the_masks_release(engines, params, pass_every,
                                                  monkeypatch) -> None:
    pcm16 = _pcm16(["dev_001.wav", "a02_fasterwhisper_stereo_diarization_left.wav", "dev_014.wav"])
    params = {**params, "pace": "realtime"}
    fast = _run(engines, params, pcm16, True, monkeypatch, pass_every)
    full = _run(engines, params, pcm16, False, monkeypatch, pass_every)
    audio, events, stats = fast
    assert stats["masked_ms"] > 0 and stats["speech_ms"] > 0  # PII was masked: both paths ran
    if pass_every > 100:
        assert stats["deadline_masked_ms"] > 0
    assert any(e["type"] == "redaction" for e in events)
    assert stats == full[2]
    assert events == full[1]
    assert audio == full[0]
