"""Tenant isolation against a real server on loopback (issue 15).

Two API keys are two tenants. A session id is no capability: only the key that
started a session may listen to it, over WebSocket or WebRTC; any other key gets
exactly the answer an unknown id gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from tests.conftest import FIXTURES, RunningServer, session_token, start_server, stop_server

pytestmark = pytest.mark.e2e

KEY_A, KEY_B = "tenant-a-0123456789", "tenant-b-0123456789"
RATE = 16000
FRAME = RATE // 50


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("tenants"),
                       env={"STREAMSERVER_API_KEYS": f"{KEY_A},{KEY_B}"})
    yield srv
    stop_server(srv)


async def _listen_ws(url: str) -> tuple[list[dict[str, Any]], int, int | None]:
    """(events, audio bytes, close code) of one listener, until the server closes."""
    events: list[dict[str, Any]] = []
    audio = 0
    async with websockets.connect(url) as ws:
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    audio += len(msg)
                else:
                    events.append(json.loads(msg))
        except websockets.ConnectionClosed:
            pass
        return events, audio, ws.close_code


def _post(url: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def _webrtc_listen(srv: RunningServer, session_id: str, key: str) -> tuple[int, dict]:
    """A listener's real offer; refused before any ICE, so no packet is ever sent."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": "offer"}
        url = f"{srv.http}/v1/sessions/{session_id}/listen/webrtc"
        return await asyncio.to_thread(_post, url, body, key)
    finally:
        await pc.close()


def test_only_the_owner_may_listen(tenants: RunningServer) -> None:
    samples, rate = audio_mod.read_wav(FIXTURES / "dev_008.wav")
    assert rate == RATE
    speech = samples[:, 0]

    async def go() -> dict[str, Any]:
        url = f"{tenants.url}?encoding=pcm_s16le&sample_rate={RATE}&pace=realtime"
        seen: dict[str, Any] = {}
        async with websockets.connect(url, additional_headers=bearer(KEY_A)) as ws:
            begin = json.loads(await ws.recv())
            session_id = begin["session_id"]
            listen = tenants.url.replace("/v1/stream", "/v1/sessions/{}/listen?token={}")

            async def token(key: str) -> str:  # as a browser listens: a one-use token
                return await asyncio.to_thread(session_token, tenants.url, key)

            async def probes() -> None:
                seen["b"] = await _listen_ws(listen.format(session_id, await token(KEY_B)))
                seen["b_unknown"] = await _listen_ws(listen.format("0" * 32, await token(KEY_B)))
                seen["b_webrtc"] = await _webrtc_listen(tenants, session_id, KEY_B)
                seen["a"] = await _listen_ws(listen.format(session_id, await token(KEY_A)))

            probe = asyncio.create_task(probes())
            t0 = time.monotonic()
            for i in range(0, speech.size, FRAME):
                await ws.send(speech[i:i + FRAME].tobytes())
                await asyncio.sleep(max(0.0, t0 + (i + FRAME) / RATE - time.monotonic()))
            await ws.send(json.dumps({"type": "close"}))
            async for _ in ws:
                pass
            await asyncio.wait_for(probe, timeout=30)
        seen["id"] = session_id
        return seen

    seen = asyncio.run(go())
    b_events, b_audio, b_code = seen["b"]
    # Key B hears nothing, not even that the session exists.
    assert b_audio == 0 and [e["type"] for e in b_events] == ["error"]
    assert b_events == seen["b_unknown"][0] and b_code == seen["b_unknown"][2] == 4404
    assert b_events[0]["code"] == "unknown_session"
    status, body = seen["b_webrtc"]
    assert status == 404 and body["code"] == "unknown_session"
    # The owner's key listens as before.
    a_events, a_audio, _ = seen["a"]
    assert a_events[0]["type"] == "session.begin" and a_events[0]["session_id"] == seen["id"]
    assert a_audio > 0 and a_events[-1]["type"] == "session.end"


def test_webhooks_to_loopback_or_private_addresses_are_refused(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """No allow-list: a webhook_url naming loopback, localhost, link-local metadata or
    a private address is refused with bad_config before any audio (nothing is sent)."""
    from streamserver.storage.crypto import KeyRing
    from tests.e2e.test_stream import _raw_session

    root = tmp_path_factory.mktemp("hooks")
    srv = start_server(root, env={
        "STREAMSERVER_API_KEYS": KEY_A, "STREAMSERVER_DATA_KEYS": f"k1:{KeyRing.generate_key()}",
        "STREAMSERVER_DATA_DIR": str(root / "data"), "STREAMSERVER_WEBHOOK_SECRET": "s3cret",
        "STREAMSERVER_PUBLIC_URL": "http://127.0.0.1:{port}"})
    try:
        q = "?encoding=pcm_s16le&sample_rate=16000&pace=asap&record=true&token={}"
        for hook in ("http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x",
                     "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/x"):
            url = srv.url + q.format(session_token(srv.url, KEY_A)) + f"&webhook_url={hook}"
            _, events, close = asyncio.run(_raw_session(url, []))
            assert [e["type"] for e in events] == ["error"], hook
            assert events[0]["code"] == "bad_config" and close == 4400
            assert "webhook_allowed_hosts" in events[0]["message"]
            assert hook not in events[0]["message"]
    finally:
        stop_server(srv)


def test_webhook_links_never_come_from_the_host_header(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With webhooks on, the server needs public_url: without it, it does not start."""
    import os
    import subprocess
    import sys

    from streamserver.storage.crypto import KeyRing

    env = {**os.environ, "STREAMSERVER_DATA_KEYS": f"k1:{KeyRing.generate_key()}",
           "STREAMSERVER_DATA_DIR": str(tmp_path / "data"),
           "STREAMSERVER_WEBHOOK_SECRET": "s3cret", "STREAMSERVER_API_KEYS": KEY_A}
    env.pop("STREAMSERVER_PUBLIC_URL", None)
    done = subprocess.run([sys.executable, "-m", "streamserver.cli", "serve", "--port", "9"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 2 and "public_url" in done.stderr, done.stderr


def test_webhook_secret_command_prints_the_tenants_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    from streamserver.config import hash_api_key
    from streamserver.webhooks import tenant_secret

    secret_file = tmp_path / "secret"
    secret_file.write_text("new-secret\nold-secret\n")
    done = subprocess.run([sys.executable, "-m", "streamserver.cli", "webhook-secret",
                           "--webhook-secret-file", str(secret_file)], input=KEY_A + "\n",
                          capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [tenant_secret(s, hash_api_key(KEY_A)).decode()
                                   for s in (b"new-secret", b"old-secret")]
    assert KEY_A not in done.stdout


def _serve(tmp_path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """``streamserver serve`` that is expected to refuse before binding anything."""
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVER_")}
    return subprocess.run([sys.executable, "-m", "streamserver.cli", "serve", *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**base, **(env or {})})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.internal"])
def test_without_keys_only_loopback_is_served(tmp_path, host: str) -> None:  # type: ignore[no-untyped-def]
    """Checked before binding: nothing ever listens on these addresses here."""
    done = _serve(tmp_path, "--host", host, "--port", "9")
    assert done.returncode == 2 and "--allow-anonymous" in done.stderr, done.stderr


def test_keys_are_not_in_the_servers_command_line_or_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``--api-key`` and STREAMSERVER_API_KEYS work, but the running server's argv and
    environment hold only their hashes; core dumps are off."""
    import os
    from pathlib import Path

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVER_")},
           "STREAMSERVER_API_KEYS": KEY_B}
    srv = start_server(tmp_path, "--api-key", KEY_A, env=env)
    try:
        pid = srv.proc.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        for key in (KEY_A, KEY_B):
            assert key.encode() not in cmdline and key.encode() not in environ
        limits = Path(f"/proc/{pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"], core
        # Both keys still open a session.
        for key in (KEY_A, KEY_B):
            async def begin(key: str = key) -> str:
                url = f"{srv.url}?encoding=pcm_s16le&sample_rate=16000"
                async with websockets.connect(url, additional_headers=bearer(key)) as ws:
                    return json.loads(await ws.recv())["type"]
            assert asyncio.run(begin()) == "session.begin"
    finally:
        stop_server(srv)


def test_a_socket_that_never_configures_gives_its_slot_back(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """One slot; a connection that only sends keepalives is cut at the configure
    deadline with config_timeout, and another tenant gets the slot."""
    srv = start_server(tmp_path_factory.mktemp("squat"), "--max-sessions", "1",
                       env={"STREAMSERVER_API_KEYS": f"{KEY_A},{KEY_B}",
                            "STREAMSERVER_CONFIGURE_TIMEOUT_S": "1.5"})

    async def squat() -> tuple[list[dict[str, Any]], int | None, float]:
        events: list[dict[str, Any]] = []
        t0 = time.monotonic()
        async with websockets.connect(srv.url, additional_headers=bearer(KEY_A)) as ws:
            try:
                while True:
                    await ws.send(json.dumps({"type": "keepalive"}))
                    with contextlib.suppress(TimeoutError):
                        events.append(json.loads(await asyncio.wait_for(ws.recv(), 0.3)))
            except websockets.ConnectionClosed:
                pass
            return events, ws.close_code, time.monotonic() - t0

    async def newcomer() -> str:
        url = f"{srv.url}?encoding=pcm_s16le&sample_rate=16000"
        async with websockets.connect(url, additional_headers=bearer(KEY_B)) as ws:
            return json.loads(await ws.recv())["type"]

    try:
        events, code, took = asyncio.run(squat())
        assert [e["code"] for e in events] == ["config_timeout"] and code == 4408
        assert 1.0 <= took < 10
        assert asyncio.run(newcomer()) == "session.begin"
    finally:
        stop_server(srv)


def test_with_several_tenants_one_key_cannot_take_every_slot() -> None:
    from streamserver.config import ServerConfig, hash_api_key

    one = ServerConfig(max_sessions=8, api_key_hashes=(hash_api_key("a"),))
    two = ServerConfig(max_sessions=8, api_key_hashes=(hash_api_key("a"), hash_api_key("b")))
    assert one.sessions_per_key == 0 and two.sessions_per_key == 6
    assert ServerConfig(max_sessions=8, max_sessions_per_key=2,
                        api_key_hashes=two.api_key_hashes).sessions_per_key == 2


# --- browsers: Origin, Host, JSON POSTs, tokens instead of keys in URLs -------------


async def _ws_first(url: str, headers: dict[str, str] | None = None,
                    origin: str | None = None) -> tuple[dict[str, Any], int | None]:
    """The first event a WebSocket gets and how it was closed."""
    async with websockets.connect(url, additional_headers=headers,
                                  origin=origin) as ws:  # type: ignore[arg-type]
        first = json.loads(await ws.recv())
        await ws.close()
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in ws:
                pass
        return first, ws.close_code


def _http(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_cross_origin_sockets_and_rebinding_hosts_are_refused(server: RunningServer) -> None:
    """A keyless loopback server (anyone local may use it) still refuses what a web
    page in a browser would send: a foreign Origin, a foreign Host, a form POST."""
    q = "?encoding=pcm_s16le&sample_rate=16000"
    own = server.http  # http://127.0.0.1:PORT

    begin, _ = asyncio.run(_ws_first(server.url + q))  # no Origin: not a browser
    assert begin["type"] == "session.begin"
    begin, _ = asyncio.run(_ws_first(server.url + q, origin=own))  # the demo page's own
    assert begin["type"] == "session.begin"
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null", own.replace("127.0.0.1",
                                                                                   "localhost")):
        error, code = asyncio.run(_ws_first(server.url + q, origin=origin))
        assert (error["code"], code) == ("forbidden_origin", 4403), origin
    # DNS rebinding: the page's own name now resolves to 127.0.0.1.
    status, body = _http(own + "/readyz", headers={"Host": "evil.example"})
    assert (status, body["code"]) == (400, "untrusted_host")
    assert _http(own + "/readyz", headers={"Host": "localhost"})[0] == 200
    # A form (or no-preflight fetch) cannot post JSON across origins.
    status, body = _http(own + "/v1/webrtc/offer", "POST", {"Content-Type": "text/plain"},
                         b'{"sdp": "v=0", "type": "offer"}')
    assert (status, body["code"]) == (415, "unsupported_media_type")


def test_keys_stay_out_of_urls_and_tokens_are_one_use(tenants: RunningServer) -> None:
    q = "?encoding=pcm_s16le&sample_rate=16000"
    error, code = asyncio.run(_ws_first(f"{tenants.url}{q}&token={KEY_A}"))
    assert (error["code"], code) == ("unauthorized", 4401)  # a long-lived key in a URL
    token = session_token(tenants.url, KEY_A)
    assert KEY_A not in token
    begin, _ = asyncio.run(_ws_first(f"{tenants.url}{q}&token={token}"))
    assert begin["type"] == "session.begin"
    error, _ = asyncio.run(_ws_first(f"{tenants.url}{q}&token={token}"))
    assert error["code"] == "unauthorized"  # used once already
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    error, _ = asyncio.run(_ws_first(f"{tenants.url}{q}&token={forged}"))
    assert error["code"] == "unauthorized"
    tokens = tenants.http + "/v1/tokens"
    json_type = {"Content-Type": "application/json"}
    status, body = _http(tokens, "POST", {**json_type, **bearer(KEY_A)}, b'{"ttl_s": 1}')
    assert status == 200 and body["expires_in"] == 1
    time.sleep(2.1)
    error, _ = asyncio.run(_ws_first(f"{tenants.url}{q}&token={body['token']}"))
    assert error["code"] == "unauthorized"  # expired
    assert _http(tokens, "POST", json_type, b"{}")[0] == 401  # no key, no token
    assert _http(tokens, "POST", {**json_type, **bearer(KEY_A)}, b'{"ttl_s": 9999}')[0] == 400


def test_a_cross_origin_page_in_chromium_cannot_open_a_session(
        server: RunningServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A page from another origin (a second loopback port) tries what a malicious
    site would: a WebSocket to the keyless server and a token request. Both fail."""
    import http.server
    import threading

    from tests.e2e.test_demo_page import chrome, fake_mic_wav

    page = tmp_path / "evil.html"
    page.write_text(f"""<!doctype html><title>start</title><script>
    const log = [];
    const done = () => {{ document.title = 'done:' + log.join('|'); }};
    fetch('{server.http}/v1/tokens', {{method: 'POST', body: '{{}}',
           headers: {{'Content-Type': 'application/json', 'Authorization': 'Bearer x'}}}})
      .then(r => log.push('fetch-status:' + r.status), () => log.push('fetch-blocked'))
      .finally(() => {{
        const ws = new WebSocket('{server.url}?encoding=pcm_s16le&sample_rate=16000');
        ws.onmessage = (e) => {{ const m = JSON.parse(e.data);
                                log.push('msg:' + (m.code || m.type)); }};
        ws.onclose = (e) => {{ log.push('close:' + e.code); done(); }};
      }});
    </script>""")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    driver = chrome(fake_mic_wav(tmp_path / "mic.wav"))
    try:
        driver.get(f"http://127.0.0.1:{site.server_address[1]}/evil.html")
        deadline = time.monotonic() + 30
        while not driver.title.startswith("done:") and time.monotonic() < deadline:
            time.sleep(0.2)
        outcome = driver.title.split(":", 1)[1].split("|")
    finally:
        driver.quit()
        site.shutdown()
    assert "fetch-blocked" in outcome  # CORS preflight never granted
    assert "msg:forbidden_origin" in outcome and "close:4403" in outcome
    assert "msg:session.begin" not in outcome


def test_metrics_and_session_counts_can_be_kept_to_the_operator(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(tmp_path_factory.mktemp("metrics"),
                       env={"STREAMSERVER_METRICS_TOKEN": "scrape-me-0123"})
    try:
        assert _http(srv.http + "/metrics")[0] == 401
        assert _http(srv.http + "/metrics", headers=bearer("wrong"))[0] == 401
        req = urllib.request.Request(srv.http + "/metrics", headers=bearer("scrape-me-0123"))
        with urllib.request.urlopen(req, timeout=10) as r:
            assert b"streamserver_" in r.read()
        status, body = _http(srv.http + "/readyz")
        assert status == 200 and body == {"ready": True}  # no cross-tenant counts
        assert "sessions" in _http(srv.http + "/readyz", headers=bearer("scrape-me-0123"))[1]
        # Third-party log lines are formatted (their plain arguments filled in).
        port = srv.http.rsplit(":", 1)[1]
        assert f"Uvicorn running on http://127.0.0.1:{port}" in srv.log_text()
        assert "%s://%s:%d" not in srv.log_text()
    finally:
        stop_server(srv)


def test_the_operators_floor_holds_whatever_a_client_asks(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(tmp_path_factory.mktemp("floor"), env={
        "STREAMSERVER_MIN_ENTITIES": "credit_card,US_SSN",
        "STREAMSERVER_ALLOW_ON_DEADLINE_PASS": "false",
        "STREAMSERVER_MAX_SCORE_THRESHOLD": "0.7", "STREAMSERVER_MIN_MASK_PADDING_MS": "200"})
    try:
        q = f"{srv.url}?encoding=pcm_s16le&sample_rate=16000"
        begin, _ = asyncio.run(_ws_first(q + "&entities=person"))
        assert begin["config"]["entities"] == ["PERSON", "CREDIT_CARD", "US_SSN"]
        for weaker, words in (("on_deadline=pass", "on_deadline"),
                              ("score_threshold=1", "score_threshold"),
                              ("mask_padding_ms=0", "mask_padding_ms")):
            error, code = asyncio.run(_ws_first(f"{q}&{weaker}"))
            assert (error["code"], code) == ("bad_config", 4400) and words in error["message"]
        status, body = _http(srv.http + "/v1/webrtc/offer", "POST",
                             {"Content-Type": "application/json"},
                             json.dumps({"sdp": "v=0", "type": "offer",
                                         "config": {"on_deadline": "pass"}}).encode())
        assert (status, body["code"]) == (400, "bad_config")
    finally:
        stop_server(srv)


# --- WebRTC: what an offer can make the server do -------------------------------------


async def _offer_sdp(recvonly: bool = False) -> str:
    """A real aiortc offer (its candidates: 127.0.0.1 only, see conftest)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly" if recvonly else "sendrecv")
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def _dead_candidates(sdp: str, port: int) -> str:
    """The offer's candidates moved to ``port``: a loopback socket nobody answers on."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            fields[5] = str(port)
            line = " ".join(fields)
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _post_offer(url: str, sdp: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return _http(url, "POST", {"Content-Type": "application/json"},
                 json.dumps({"sdp": sdp, "type": "offer", **extra}).encode())


def test_offers_may_not_make_the_server_probe_or_flood(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(tmp_path_factory.mktemp("offers"), env={
        "STREAMSERVER_WEBRTC_PRIVATE_CANDIDATES": "false",  # the production default
        "STREAMSERVER_WEBRTC_OFFERS_PER_MINUTE": "3"})
    try:
        offer_url = srv.http + "/v1/webrtc/offer"
        sdp = asyncio.run(_offer_sdp())
        status, body = _post_offer(offer_url, sdp)  # candidates: 127.0.0.1 only
        assert (status, body["code"]) == (400, "bad_offer") and "private" in body["message"]
        first = next(line for line in sdp.splitlines() if line.startswith("a=candidate:"))
        many = sdp.replace(first, "\r\n".join([first] * 17))
        status, body = _post_offer(offer_url, many)
        assert (status, body["code"]) == (400, "bad_offer") and "16" in body["message"]
        assert _post_offer(offer_url, sdp)[0] == 400  # the 3rd: still heard
        status, body = _post_offer(offer_url, sdp)
        assert (status, body["code"]) == (429, "too_many_offers")  # the 4th this minute
    finally:
        stop_server(srv)


def test_peers_that_never_connect_are_closed(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A session and a listener whose candidates nobody answers (no
    end-of-candidates either): both are closed at the connect deadline, the slot
    and the listener count come back, the session being listened to goes on."""
    import socket

    from tests.conftest import metric_value, scrape_metrics

    srv = start_server(tmp_path_factory.mktemp("ice"),
                       env={"STREAMSERVER_WEBRTC_CONNECT_TIMEOUT_S": "2"})
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        port = dead.getsockname()[1]
        status, body = _post_offer(srv.http + "/v1/webrtc/offer",
                                   _dead_candidates(asyncio.run(_offer_sdp()), port))
        assert status == 200, body
        assert _http(srv.http + "/readyz")[1]["sessions"] == 1

        async def listened_session() -> tuple[float, float, str]:
            url = f"{srv.url}?encoding=pcm_s16le&sample_rate={RATE}&pace=realtime"
            async with websockets.connect(url) as ws:
                begin = json.loads(await ws.recv())
                sdp = _dead_candidates(await _offer_sdp(recvonly=True), port)
                listen = f"{srv.http}/v1/sessions/{begin['session_id']}/listen/webrtc"
                status, _ = await asyncio.to_thread(_post_offer, listen, sdp)
                assert status == 200
                silence = np.zeros(FRAME, dtype=np.int16).tobytes()
                during = after = -1.0
                for i in range(int(5 / 0.02)):  # 5 s of audio in real time
                    await ws.send(silence)
                    await asyncio.sleep(0.02)
                    if i == 25:
                        during = metric_value(await asyncio.to_thread(scrape_metrics, srv.http),
                                              "streamserver_listeners")
                after = metric_value(await asyncio.to_thread(scrape_metrics, srv.http),
                                     "streamserver_listeners")
                await ws.send(json.dumps({"type": "close"}))
                last = ""
                async for msg in ws:
                    if isinstance(msg, str):
                        last = json.loads(msg)["type"]
                return during, after, last

        during, after, last = asyncio.run(listened_session())
        assert (during, after) == (1.0, 0.0)
        assert last == "session.end"  # the session itself went on to its end
        assert _http(srv.http + "/readyz")[1]["sessions"] == 0  # the WebRTC slot came back
    finally:
        dead.close()
        stop_server(srv)


def test_candidate_filter_keeps_public_addresses_only_by_default() -> None:
    from streamserver.server.webrtc import filter_candidates

    sdp = "\r\n".join([
        "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=candidate:1 1 udp 2130706431 8.8.8.8 50000 typ host",
        "a=candidate:2 1 udp 2130706431 10.0.0.5 50000 typ host",
        "a=candidate:3 1 udp 2130706431 169.254.169.254 80 typ host",
        "a=candidate:4 1 udp 2130706431 4f1c2d9e.local 50000 typ host",
        "a=candidate:5 1 udp 2130706431 ::1 50000 typ host",
    ]) + "\r\n"
    kept = [line.split()[4] for line in filter_candidates(sdp, False).splitlines()
            if line.startswith("a=candidate:")]
    assert kept == ["8.8.8.8"]
    assert len([line for line in filter_candidates(sdp, True).splitlines()
                if line.startswith("a=candidate:")]) == 5


# --- storage quotas -------------------------------------------------------------------


def _recording_server(root, **env: str) -> RunningServer:  # type: ignore[no-untyped-def]
    from streamserver.storage.crypto import KeyRing

    return start_server(root, env={
        "STREAMSERVER_API_KEYS": f"{KEY_A},{KEY_B}",
        "STREAMSERVER_DATA_KEYS": f"k1:{KeyRing.generate_key()}",
        "STREAMSERVER_DATA_DIR": str(root / "data"), "STREAMSERVER_SWEEP_INTERVAL_S": "0.3",
        **env})


def _record(srv: RunningServer, key: str) -> list[dict[str, Any]]:
    from streamserver.cli import stream_file

    _, _, events = asyncio.run(stream_file(
        FIXTURES / "dev_014.wav", srv.url, {"encoding": "pcm_s16le", "record": "true"},
        pace="asap", api_key=key))
    return events


def _record_refusal(srv: RunningServer, key: str) -> tuple[str, int | None]:
    first, code = asyncio.run(_ws_first(
        f"{srv.url}?encoding=pcm_s16le&sample_rate=16000&record=true", headers=bearer(key)))
    return first.get("code", first["type"]), code


def test_a_key_past_its_recording_quota_gets_no_new_recording(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # dev_014: 6.8 s of 16 kHz PCM, ~217 kB of audio: one recording passes 100 kB.
    srv = _recording_server(tmp_path_factory.mktemp("quota"),
                            STREAMSERVER_RECORDING_QUOTA_BYTES_PER_KEY="100000")
    try:
        first = _record(srv, KEY_A)
        assert next(e for e in first if e["type"] == "recording")["status"] == "ready"
        time.sleep(1.0)  # a sweep measures what key A stored
        assert _record_refusal(srv, KEY_A) == ("storage_quota", 1013)
        other = _record(srv, KEY_B)  # another key has its own quota
        assert next(e for e in other if e["type"] == "recording")["status"] == "ready"
        plain = asyncio.run(_ws_first(f"{srv.url}?encoding=pcm_s16le&sample_rate=16000",
                                      headers=bearer(KEY_A)))
        assert plain[0]["type"] == "session.begin"  # unrecorded sessions are not affected
    finally:
        stop_server(srv)


def test_a_recording_past_the_session_cap_stops_and_the_session_goes_on(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = _recording_server(tmp_path_factory.mktemp("cap"),
                            STREAMSERVER_MAX_RECORDING_BYTES_PER_SESSION="150000")
    try:
        events = _record(srv, KEY_A)
        assert next(e for e in events if e["type"] == "recording")["status"] == "failed"
        assert events[-1]["type"] == "session.end"
        assert events[-1]["stats"]["audio_out_ms"] > 6000  # all of it came back
    finally:
        stop_server(srv)


def test_a_disk_near_full_takes_no_new_recordings(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = _recording_server(tmp_path_factory.mktemp("disk"),
                            STREAMSERVER_MIN_FREE_DISK_BYTES=str(1 << 60))  # never this free
    try:
        time.sleep(1.0)  # the first sweep has measured the disk
        assert _record_refusal(srv, KEY_A) == ("storage_quota", 1013)
    finally:
        stop_server(srv)
