"""Shared fixtures: the real models (loaded once) and a real server on loopback."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice.ice
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"


def fixture_manifest() -> dict[str, dict]:
    clips = json.loads((FIXTURES / "pii_dev_manifest.json").read_text())
    return {c["file"]: c for c in clips}


# Tests send traffic to loopback only, WebRTC included: test peers (aiortc, in this
# process) gather 127.0.0.1 alone, and servers started here do the same.
LOOPBACK_ICE_ENV = {"STREAMSERVER_WEBRTC_HOST_ADDRESSES": "127.0.0.1",
                    "STREAMSERVER_WEBRTC_PRIVATE_CANDIDATES": "true"}


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_only


@pytest.fixture(scope="session")
def engines():
    from streamserver.engines.bundle import Engines

    return Engines.load()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    http: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, *extra: str, env: dict[str, str] | None = None,
                 tls: ssl.SSLContext | None = None) -> RunningServer:
    """``streamserver serve`` on a free port; returns once ``/readyz`` says ready.

    ``tls``: the server serves TLS (pass ``--certfile``/``--keyfile`` in ``extra``);
    readiness is polled over https with this client context.
    """
    port = _free_port()
    # "{port}" in a value (e.g. STREAMSERVER_PUBLIC_URL) is the port chosen here.
    # WebRTC stays on loopback: the server gathers and accepts 127.0.0.1 only.
    # Admission from measured headroom is off unless a test asks for it
    # (tests/e2e/test_admission.py): a test of anything else must not be refused
    # because an earlier test, or other work on the machine, left the pressure high.
    env = {"STREAMSERVER_ADMISSION_MAX_PRESSURE": "0", **LOOPBACK_ICE_ENV, **(env or {})}
    env = {k: v.replace("{port}", str(port)) for k, v in env.items()}
    log_path = tmp / f"server-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamserver.cli", "serve", "--port", str(port), *extra],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp), env={**os.environ, **(env or {})},
    )
    http = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/v1/stream"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited:\n" + log_path.read_text(errors="replace"))
        try:
            with urllib.request.urlopen(http + "/readyz", timeout=1, context=tls) as r:
                if r.status == 200:
                    return RunningServer(url, http, proc, log_path)
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready:\n" + log_path.read_text(errors="replace"))


def stop_server(server: RunningServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    stop_server(srv)


async def read_all(ws: Any, audio: bytearray, events: list[dict[str, Any]]) -> None:
    """Every message until the server closes the WebSocket: audio into ``audio``,
    JSON events into ``events``, filled as they come (a reader beside the sender)."""
    async for msg in ws:
        if isinstance(msg, bytes):
            audio.extend(msg)
        else:
            events.append(json.loads(msg))


async def received(ws: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """Everything a WebSocket client receives until the server closes: (audio, events)."""
    audio: bytearray = bytearray()
    events: list[dict[str, Any]] = []
    await read_all(ws, audio, events)
    return bytes(audio), events


def scrape_metrics(http: str) -> str:
    """The server's Prometheus exposition (``GET /metrics``) as text."""
    with urllib.request.urlopen(http + "/metrics", timeout=5) as r:
        assert r.headers["content-type"].startswith("text/plain")
        return str(r.read().decode())


def metric_value(text: str, name: str) -> float:
    """One sample's value by its full name (labels included); 0.0 if absent."""
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def readyz(http: str) -> tuple[int, dict]:
    """``GET /readyz``: its status and JSON body, 503 included."""
    import json
    import urllib.error

    try:
        with urllib.request.urlopen(http + "/readyz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def session_token(ws_url: str, key: str) -> str:
    """A one-use token for ``?token=`` (what browsers do), from ``POST /v1/tokens``."""
    import json

    http = ws_url.replace("wss://", "https://").replace("ws://", "http://")
    req = urllib.request.Request(http.split("/v1/", 1)[0] + "/v1/tokens", data=b"{}",
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.loads(r.read())["token"])
