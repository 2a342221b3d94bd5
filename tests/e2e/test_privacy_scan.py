"""Scan everything a real server wrote for the raw input and the PII it contained.

The server runs with recording on, webhooks, fan-out listeners and an abrupt
disconnect; afterwards every file in its data dir, its temp dir and its working
dir (its log) — and anything new in /dev/shm — is searched for every 1-second
window of the raw input audio (as the client sent it, and as the 16 kHz float
signal the models see) and for the clips' PII strings. Positive controls prove
the scanner finds them when they are there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.cli import stream_file
from streamserver.storage import KeyRing
from tests.conftest import FIXTURES, fixture_manifest, start_server, stop_server

pytestmark = pytest.mark.e2e

CLIPS = ["dev_008.wav", "dev_014.wav", "dev_015.wav", "dev_039.wav", "dev_001.wav"]
HOP_S = 0.25


def raw_fingerprints(name: str) -> list[bytes]:
    """Every 1 s window (0.25 s hop) of the clip's input bytes and of its float signal."""
    samples, rate = audio_mod.read_wav(FIXTURES / name)
    forms = [samples.astype("<i2").tobytes(), _float16k(samples, rate).tobytes()]
    prints = []
    for data, bytes_per_s in ((forms[0], rate * 2 * samples.shape[1]), (forms[1], 16000 * 4)):
        hop = int(bytes_per_s * HOP_S) // 4 * 4
        for start in range(0, len(data) - bytes_per_s + 1, hop):
            window = data[start:start + bytes_per_s]
            if any(window):  # digital silence says nothing about the input
                prints.append(window)
    return prints


def _float16k(samples: np.ndarray, rate: int) -> np.ndarray:
    mono = audio_mod.to_mono_float(samples)
    return audio_mod.resample(mono, rate, 16000).astype("<f4")


def pii_strings(name: str) -> list[bytes]:
    """The clip's PII as text, with digits also run together or spaced."""
    out: set[str] = set()
    for pii in fixture_manifest()[name]["pii"]:
        text = pii["text"]
        out.add(text)
        digits = "".join(c for c in text if c.isdigit())
        if len(digits) >= 7:
            out.update({digits, " ".join(digits), text.replace("-", " ")})
        out.update(w.strip(",.") for w in text.replace("@", " ").replace(".", " ").split()
                   if len(w) >= 5 and not w.isdigit() and w.lower() != "example")
    return sorted(s.lower().encode() for s in out)


def scan(paths: list[Path], prints: list[bytes], strings: list[bytes]) -> list[str]:
    hits = []
    for path in paths:
        data = path.read_bytes()
        lower = data.lower()
        hits += [f"{path}: raw audio" for p in prints if p in data][:1]
        hits += [f"{path}: {s!r}" for s in strings if s in lower]
    return hits


def files(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    root = tmp_path_factory.mktemp("scan")
    (root / "tmp").mkdir()
    shm_before = set(Path("/dev/shm").iterdir()) if Path("/dev/shm").exists() else set()
    env = {"STREAMSERVER_DATA_KEYS": f"k1:{KeyRing.generate_key()}",
           "STREAMSERVER_DATA_DIR": str(root / "data"),
           "STREAMSERVER_WEBHOOK_SECRET": "scan-secret", "TMPDIR": str(root / "tmp"),
           "STREAMSERVER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
           "STREAMSERVER_PUBLIC_URL": "http://127.0.0.1:{port}"}
    srv = start_server(root, "--log-level", "debug", env=env)
    try:
        asyncio.run(_traffic(srv.url))
    finally:
        stop_server(srv)
    shm_new = (set(Path("/dev/shm").iterdir()) - shm_before) if shm_before else set()
    yield files(root / "data", root / "tmp", root) + [p for p in shm_new if p.is_file()]


async def _traffic(url: str) -> None:
    # Recorded, with a webhook to nowhere (retried in the background) and a listener.
    hook = "http://127.0.0.1:9/hook"
    recorded = [stream_file(FIXTURES / n, url, {"encoding": "pcm_s16le", "record": "true",
                                                 "webhook_url": hook}, pace="asap")
                for n in CLIPS[:2]]
    plain = [stream_file(FIXTURES / n, url, {"encoding": "pcm_s16le"}, pace="asap")
             for n in CLIPS[2:4]]
    results = await asyncio.gather(*recorded, *plain)
    assert all(events[-1]["type"] == "session.end" for _, _, events in results)
    # Recorded, then the client vanishes mid-stream: a partial recording is kept.
    samples, rate = audio_mod.read_wav(FIXTURES / CLIPS[4])
    async with websockets.connect(
            f"{url}?encoding=pcm_s16le&sample_rate={rate}&record=true&pace=realtime") as ws:
        await ws.recv()
        for i in range(0, samples.shape[0] * 2 // 3, rate // 50):
            await ws.send(samples[i:i + rate // 50].tobytes())
            await asyncio.sleep(0.02)
        ws.transport.abort()  # no close frame


def test_scanner_finds_what_it_looks_for(tmp_path: Path) -> None:
    prints = raw_fingerprints(CLIPS[0])
    strings = pii_strings(CLIPS[0])
    assert len(prints) > 20 and b"linda smith" in strings and b"8305550175" in strings
    planted = tmp_path / "planted.bin"
    planted.write_bytes(b"\x00" * 999 + prints[7][:] + b"junk")
    assert scan([planted], prints, []) == [f"{planted}: raw audio"]
    # Float windows are there too (a copy of what the models see would be found).
    floats = tmp_path / "floats.bin"
    floats.write_bytes(prints[-1])
    assert scan([floats], prints, [])
    text = tmp_path / "log.txt"
    text.write_text('{"msg": "caller said Linda Smith"}')
    assert f"{text}: b'linda smith'" in scan([text], [], strings)


def test_no_raw_audio_or_pii_in_anything_the_server_wrote(written: list[Path]) -> None:
    names = {p.name for p in written}
    # The scan is not vacuous: the store, its blobs and the log were written.
    assert "meta.sqlite3" in names and any(n.endswith(".bin") for n in names)
    assert any(n.startswith("server-") and n.endswith(".log") for n in names)
    log = next(p for p in written if p.name.startswith("server-")).read_text()
    assert "recording stored" in log and "session ended" in log
    prints = [p for name in CLIPS for p in raw_fingerprints(name)]
    strings = [s for name in CLIPS for s in pii_strings(name)]
    assert len(prints) > 100 and len(strings) > 10
    assert scan(written, prints, strings) == []


def test_partial_recording_of_a_vanished_client_is_kept_redacted(written: list[Path]) -> None:
    log = next(p for p in written if p.name.startswith("server-")).read_text()
    ended = [json.loads(line) for line in log.splitlines()
             if line.startswith("{") and '"recording stored"' in line]
    assert len(ended) == 3  # two complete, one cut short — all stored, none raw
