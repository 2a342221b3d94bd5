"""The command line, as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamserver import audio as audio_mod
from streamserver.evaluation import Span, score_clip
from tests.conftest import FIXTURES, fixture_manifest

pytestmark = pytest.mark.e2e


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamserver.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_redact_writes_aligned_masked_audio_and_transcript(tmp_path: Path) -> None:
    name = "dev_015.wav"  # an email spoken as Whisper hears it ("x.y.example.com")
    out_wav, out_json = tmp_path / "out.wav", tmp_path / "out.json"
    proc = cli("redact", str(FIXTURES / name), "-o", str(out_wav), "--transcript",
               str(out_json), "--text-substitution", "entity_name", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    out, out_rate = audio_mod.read_wav(out_wav)
    assert out_rate == rate and out.shape == inp.shape
    clip = fixture_manifest()[name]
    score = score_clip(inp[:, 0], out[:, 0], rate,
                       [Span(p["entity"], p["start_s"], p["end_s"]) for p in clip["pii"]])
    assert all(audible < 0.25 for _, audible in score.entities)
    transcript = json.loads(out_json.read_text())
    assert set(transcript) >= {"text", "words", "redactions"}
    assert "[EMAIL_ADDRESS]" in transcript["text"]
    assert "johnson" not in transcript["text"].lower()
    assert all(set(w) == {"text", "start", "end", "redacted", "entity"}
               for w in transcript["words"])
    assert [r["entity"] for r in transcript["redactions"]] == ["EMAIL_ADDRESS"]
    # Nothing else was written: no temp files, caches or logs of the audio.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.wav"]


def test_redact_rejects_unsupported_wav(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    proc = cli("redact", str(bad), "-o", str(tmp_path / "o.wav"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "streamserver redact:" in proc.stderr


def test_stream_command_against_running_server(server, tmp_path: Path) -> None:
    name = "dev_039.wav"  # a street address
    out_wav, out_json = tmp_path / "s.wav", tmp_path / "s.json"
    proc = cli("stream", str(FIXTURES / name), "--url", server.url, "-o", str(out_wav),
               "--transcript", str(out_json), "--pace", "asap", "--audio-redaction", "silence",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    out, _ = audio_mod.read_wav(out_wav)
    assert out.shape == inp.shape
    clip = fixture_manifest()[name]
    score = score_clip(inp[:, 0], out[:, 0], rate,
                       [Span(p["entity"], p["start_s"], p["end_s"]) for p in clip["pii"]])
    assert all(audible < 0.25 for _, audible in score.entities)
    transcript = json.loads(out_json.read_text())
    assert "pine" not in transcript["text"].lower()
    assert any(r["entity"] == "LOCATION" for r in transcript["redactions"])


def _cli(*args: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "streamserver.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, cwd=cwd)


def test_gen_data_key_makes_a_usable_key() -> None:
    from streamserver.storage import KeyRing

    line = _cli("gen-data-key").stdout.strip()
    ring = KeyRing.parse(line)
    assert ring.open(ring.seal(b"x", b"aad"), b"aad") == b"x"
    assert _cli("gen-data-key").stdout.strip() != line  # fresh every time


def test_serve_refuses_jemalloc_it_cannot_preload(tmp_path: Path) -> None:
    # As after a re-execution whose preload the dynamic loader ignored.
    done = _cli("serve", "--port", "1", "--allocator", "jemalloc",
                env={"STREAMSERVER_JEMALLOC_PRELOADED": "/nonexistent/libjemalloc.so.2"},
                cwd=tmp_path)
    assert done.returncode == 2
    assert "allocator jemalloc: /nonexistent/libjemalloc.so.2 could not be preloaded" \
        in done.stderr


def test_serve_on_auto_falls_back_to_glibc_when_the_preload_was_ignored(tmp_path: Path) -> None:
    from tests.conftest import start_server, stop_server

    srv = start_server(tmp_path, env={
        "STREAMSERVER_JEMALLOC_PRELOADED": "/nonexistent/libjemalloc.so.2"})
    try:
        assert "libjemalloc" not in Path(f"/proc/{srv.proc.pid}/maps").read_text()
        lines = [json.loads(line) for line in srv.log_text().splitlines()
                 if line.startswith("{")]
        assert any(e["level"] == "warning" and "could not be preloaded" in e["msg"]
                   for e in lines)
        said = [e for e in lines if e["msg"] == "allocator"]
        assert said and said[0]["allocator"] == "glibc"
    finally:
        stop_server(srv)


@pytest.mark.parametrize("args,env,words", [
    (["--record-sessions"], {}, "record_sessions needs data keys"),
    ([], {"STREAMSERVER_DATA_KEYS": "k1:not-base64!"}, "not valid base64"),
    (["--data-key-file", "/nonexistent/keys"], {}, "cannot read the data key file"),
    (["--storage-url", "ftp://x"], {}, "storage_url"),
    (["--retention", "0"], {}, "retention_s"),
    (["--database-url", "postgresql://u:not-base64@h/db"], {}, "recording needs data keys"),
])
def test_serve_refuses_a_bad_storage_config_before_loading(tmp_path: Path, args: list[str],
                                                          env: dict[str, str], words: str) -> None:
    done = _cli("serve", "--port", "1", *args, env={"STREAMSERVER_DATA_KEYS": "", **env},
                cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr
    assert "not-base64" not in done.stderr  # a key is never echoed
