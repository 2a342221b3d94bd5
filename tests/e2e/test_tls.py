"""End to end: ``streamserver serve --certfile --keyfile`` with a self-signed cert."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from streamserver import audio as audio_mod
from tests.conftest import FIXTURES, RunningServer, start_server, stop_server

pytestmark = pytest.mark.e2e

API_KEY = "tls-test-key"
CLIP = FIXTURES / "dev_001.wav"


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for localhost and 127.0.0.1: (cert, key) PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def trusted(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path],
               trusted: ssl.SSLContext) -> Iterator[RunningServer]:
    cert, key = tls_files
    srv = start_server(tmp_path_factory.mktemp("tls-server"),
                       "--certfile", str(cert), "--keyfile", str(key),
                       env={"STREAMSERVER_API_KEYS": API_KEY}, tls=trusted)
    yield srv
    stop_server(srv)


async def _session(url: str, ctx: ssl.SSLContext, api_key: str | None,
                   frames: list[bytes] | None) -> tuple[bytes, list[dict[str, Any]], int | None]:
    """Send the frames and ``close`` (None: send nothing); (audio out, events, close code)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    out: list[bytes] = []
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, ssl=ctx, additional_headers=headers) as ws:
        try:
            if frames is not None:
                for f in frames:
                    await ws.send(f)
                await ws.send(json.dumps({"type": "close"}))
            async for msg in ws:
                if isinstance(msg, bytes):
                    out.append(msg)
                else:
                    events.append(json.loads(msg))
        except websockets.ConnectionClosedError:
            pass  # an error close: the code says why
        return b"".join(out), events, ws.close_code


def _clip_frames() -> list[bytes]:
    samples, rate = audio_mod.read_wav(CLIP)
    data = audio_mod.encode(samples, audio_mod.AudioFormat("pcm_s16le", rate, 1))
    step = rate // 50 * 2  # 20 ms of 16-bit mono
    return [data[i : i + step] for i in range(0, len(data), step)]


def _query() -> str:
    _, rate = audio_mod.read_wav(CLIP)
    return f"?encoding=pcm_s16le&sample_rate={rate}&pace=asap"


def test_https_healthz_with_the_cert_trusted(tls_server: RunningServer,
                                             trusted: ssl.SSLContext) -> None:
    assert tls_server.http.startswith("https://")
    with urllib.request.urlopen(tls_server.http + "/healthz", context=trusted) as r:
        assert json.loads(r.read())["status"] == "ok"


def test_wss_session_returns_all_audio(tls_server: RunningServer,
                                       trusted: ssl.SSLContext) -> None:
    frames = _clip_frames()
    out, events, code = asyncio.run(
        _session(tls_server.url + _query(), trusted, API_KEY, frames))
    types = [e["type"] for e in events]
    assert types[0] == "session.begin" and types[-1] == "session.end"
    assert len(out) == sum(map(len, frames))
    assert code == 1000


def test_wss_without_api_key_is_unauthorized(tls_server: RunningServer,
                                             trusted: ssl.SSLContext) -> None:
    out, events, code = asyncio.run(
        _session(tls_server.url + _query(), trusted, None, None))
    assert out == b""
    assert events[0]["code"] == "unauthorized" and code == 4401


def test_plaintext_connections_to_the_tls_port_fail(tls_server: RunningServer) -> None:
    plain_http = tls_server.http.replace("https://", "http://")
    with pytest.raises(OSError):  # the server drops a connection that is not TLS
        urllib.request.urlopen(plain_http + "/healthz", timeout=5)

    async def plain_ws() -> None:
        url = tls_server.url.replace("wss://", "ws://")
        async with websockets.connect(url + _query(), open_timeout=5):
            pass

    with pytest.raises(websockets.InvalidHandshake):  # no HTTP response comes back
        asyncio.run(plain_ws())


def test_untrusted_client_fails_verification(tls_server: RunningServer) -> None:
    untrusted = ssl.create_default_context()  # system CAs only
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(tls_server.http + "/healthz", context=untrusted, timeout=5)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)

    async def wss() -> None:
        async with websockets.connect(tls_server.url + _query(), ssl=untrusted,
                                      additional_headers={"Authorization": f"Bearer {API_KEY}"},
                                      open_timeout=5):
            pass

    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(wss())


def _serve_fails(tmp_path: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "streamserver.cli", "serve", "--port", "1", *args],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
    )
    assert proc.returncode == 2
    return proc.stderr


def test_serve_refuses_incomplete_or_unreadable_tls_files(
        tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    assert "both certfile and keyfile" in _serve_fails(tmp_path, "--certfile", str(cert))
    missing = tmp_path / "missing.pem"
    err = _serve_fails(tmp_path, "--certfile", str(cert), "--keyfile", str(missing))
    assert "cannot read keyfile" in err
    err = _serve_fails(tmp_path, "--certfile", str(key), "--keyfile", str(key))
    assert "not a PEM certificate" in err
