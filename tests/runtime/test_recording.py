"""The recorder against a real LocalStore; faults injected by wrapping the store."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from streamserver import audio as audio_mod
from streamserver.config import ConfigError, ServerConfig, SessionConfig
from streamserver.core.session import AudioOut, Event
from streamserver.server.recording import (
    AUDIO_PART_BYTES,
    MAX_QUEUED_PARTS,
    Archive,
    RecordingPlan,
    plan_recording,
    wav_header,
)
from streamserver.storage import KIND_TRANSCRIPT, KeyRing, LocalStore, StoreError

PLAN = RecordingPlan(retention_s=60, webhook_url="")
FINAL = {"type": "transcript.final", "is_final": True, "text": "my number is ###-####",
         "start": 0.5, "end": 2.0, "words": []}
REDACTION = {"type": "redaction", "entity": "PHONE_NUMBER", "start": 1.2, "end": 2.0,
             "score": 0.85}


class FaultyStore:
    """A real LocalStore whose puts of audio parts fail or block on demand."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.fail_part: int | None = None
        self.gate = threading.Event()
        self.gate.set()

    def put(self, session_id: str, kind: str, data: bytes, expires_at: float,
            owner: str) -> None:
        if kind.startswith("audio_"):
            self.gate.wait(30)
            if self.fail_part is not None and kind == f"audio_{self.fail_part:05d}":
                raise StoreError("disk full (injected)")
        self.inner.put(session_id, kind, data, expires_at, owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    local = LocalStore(tmp_path / "data", KeyRing.parse(f"k1:{KeyRing.generate_key()}"))
    yield FaultyStore(local)
    local.close()


def _archive(store: Any) -> Archive:
    return Archive(ServerConfig(), store, None)


def _pcm(n_bytes: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(-3000, 3000, n_bytes // 2, "<i2").tobytes()


async def _record(archive: Archive, chunks: list[bytes], sid: str = "a" * 32,
                  ) -> tuple[dict[str, Any] | None, Any]:
    rec = archive.open(sid, "owner", SessionConfig(), PLAN, "http://h")
    for i, chunk in enumerate(chunks):
        await rec.output(AudioOut(chunk, i))
        if i == 1:
            await rec.output(Event(FINAL))
            await rec.output(Event(REDACTION))
        await asyncio.sleep(0)
    event = await rec.output(Event({"type": "session.end", "stats": {"audio_out_ms": 1.0}}))
    return event, rec


def test_audio_is_stored_in_parts_and_served_back_whole(store: FaultyStore) -> None:
    archive = _archive(store)
    pcm = _pcm(int(2.5 * AUDIO_PART_BYTES) + 640)

    async def go() -> tuple[Any, bytes, dict[str, Any], bytes | None]:
        event, _ = await _record(archive, [pcm[i:i + 640] for i in range(0, len(pcm), 640)])
        meta = await archive.metadata("a" * 32, "owner")
        assert meta is not None
        wav = b"".join([part async for part in archive.audio("a" * 32, meta)])
        return event, wav, meta, await archive.transcript("a" * 32)

    event, wav, meta, transcript = asyncio.run(go())
    assert event is not None and event["status"] == "ready"
    assert event["redacted_audio_url"] == f"http://h/v1/sessions/{'a' * 32}/redacted-audio"
    assert meta["status"] == "ready" and meta["audio"]["parts"] == 3
    assert meta["audio"]["bytes"] == len(pcm) and meta["complete"] is True
    with wave.open(io.BytesIO(wav)) as w:
        assert w.readframes(w.getnframes()) == pcm
    assert transcript is not None
    assert json.loads(transcript) == {"session_id": "a" * 32, "segments": [FINAL],
                                      "redactions": [REDACTION]}
    assert asyncio.run(archive.metadata("a" * 32, "someone else")) is None


def test_store_failure_abandons_the_recording_not_the_call(store: FaultyStore) -> None:
    store.fail_part = 1
    archive = _archive(store)
    pcm = _pcm(3 * AUDIO_PART_BYTES)

    async def go() -> tuple[Any, dict[str, Any] | None]:
        event, _ = await _record(archive, [pcm[i:i + 4096] for i in range(0, len(pcm), 4096)])
        return event, await archive.metadata("a" * 32, "owner")

    event, meta = asyncio.run(go())
    assert event is not None and event["status"] == "failed"
    assert meta is not None and meta["status"] == "failed"
    # Only the record that says so is left: no audio part, no transcript.
    rec = store.inner.record("a" * 32)
    assert rec is not None and rec.kinds == ("metadata_json",)


def test_a_stalled_disk_never_blocks_the_live_path_or_grows_memory(store: FaultyStore) -> None:
    store.gate.clear()  # every audio write blocks
    archive = _archive(store)

    async def go() -> tuple[Any, int, int]:
        rec = archive.open("b" * 32, "owner", SessionConfig(), PLAN, "http://h")
        part = _pcm(AUDIO_PART_BYTES)
        for i in range(MAX_QUEUED_PARTS + 4):
            await rec.output(AudioOut(part, i))  # returns at once though the disk is stuck
        queued = len(rec.recorder._ops)
        buffered = len(rec.recorder._buffer)
        store.gate.set()
        event = await rec.output(Event({"type": "session.end", "stats": {}}))
        return event, queued, buffered

    event, queued, buffered = asyncio.run(go())
    assert queued <= MAX_QUEUED_PARTS + 1 and buffered == 0
    assert event is not None and event["status"] == "failed"
    assert store.inner.record("b" * 32).kinds == ("metadata_json",)


def test_deleting_a_live_recording_leaves_nothing(store: FaultyStore, tmp_path: Path) -> None:
    archive = _archive(store)

    async def go() -> Any:
        rec = archive.open("c" * 32, "owner", SessionConfig(), PLAN, "http://h")
        for i in range(3):
            await rec.output(AudioOut(_pcm(AUDIO_PART_BYTES, i), i))
        await rec.output(Event(FINAL))
        while store.inner.record("c" * 32) is None:  # some of it is on disk by now
            await asyncio.sleep(0.01)
        assert await archive.delete("c" * 32) is True
        await rec.output(AudioOut(_pcm(AUDIO_PART_BYTES), 9))  # the call goes on
        return await rec.output(Event({"type": "session.end", "stats": {}}))

    assert asyncio.run(go()) is None  # nothing announced
    assert store.inner.record("c" * 32) is None
    assert store.inner.get("c" * 32, KIND_TRANSCRIPT) is None
    assert list((tmp_path / "data" / "blobs").iterdir()) == []


@pytest.mark.parametrize("encoding,rate,channels", [
    ("pcm_s16le", 16000, 1), ("pcm_s16le", 48000, 2), ("mulaw", 8000, 1), ("alaw", 8000, 1)])
def test_wav_header_is_read_back_by_a_real_decoder(tmp_path: Path, encoding: str, rate: int,
                                                   channels: int) -> None:
    fmt = audio_mod.AudioFormat(encoding, rate, channels)
    samples = (np.sin(np.arange(rate // 10 * channels + channels) * 0.05) * 8000).astype(np.int16)
    samples = samples[: samples.size // channels * channels].reshape(-1, channels)
    if encoding != "pcm_s16le":
        samples = samples[:-1]  # an odd byte count: the pad byte is needed
    data = audio_mod.encode(samples, fmt)
    path = tmp_path / "x.wav"
    path.write_bytes(wav_header(encoding, rate, channels, len(data)) + data
                     + b"\0" * (len(data) & 1))
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels) == (rate, channels)
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    expected = audio_mod.decode(data, fmt).reshape(-1)
    np.testing.assert_array_equal(decoded.astype(np.int16), expected)


def test_plan_rules() -> None:
    cfg = ServerConfig(retention_s=3600)
    assert plan_recording(SessionConfig(), cfg, True, True) is None
    assert plan_recording(SessionConfig(record=True), cfg, True, False) == RecordingPlan(3600, "")
    assert plan_recording(SessionConfig(record=True, retention_s=60), cfg, True,
                          False) == RecordingPlan(60, "")
    on = ServerConfig(record_sessions=True)
    assert plan_recording(SessionConfig(), on, True, False) is not None
    assert plan_recording(SessionConfig(record=False), on, True, False) is None  # opt-out
    for scfg, store_ok, hooks_ok, words in [
        (SessionConfig(record=True), False, False, "no data keys"),
        (SessionConfig(record=True, retention_s=7200), True, True, "may not exceed"),
        (SessionConfig(record=True, webhook_url="https://h/x"), True, False, "secret"),
        (SessionConfig(webhook_url="https://h/x"), True, True, "record=true"),
    ]:
        with pytest.raises(ConfigError, match=words):
            plan_recording(scfg, cfg, store_ok, hooks_ok)
    with pytest.raises(ConfigError, match="credentials"):
        SessionConfig.from_params({"webhook_url": "https://user:pw@h/x", "record": "true"})
    url = SessionConfig.from_params({"webhook_url": "https://H/Path?Token=AbC"}).webhook_url
    assert url == "https://H/Path?Token=AbC"  # case kept
