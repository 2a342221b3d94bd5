"""Signed webhooks: signing/verification, URL checks, and delivery to a real local
HTTP receiver (retries, give-up, queue bound, prompt shutdown)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from streamserver import webhooks
from streamserver.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    DeliveryResult,
    DestinationPolicy,
    Outcome,
    WebhookConfig,
    WebhookDestinationError,
    WebhookSender,
    WebhookUrlError,
    backoff_delay,
    is_public_address,
    pinned_address,
    post_http,
    resolve_host,
    sign,
    tenant_secret,
    validate_url,
    verify,
)

SECRET = b"whsec-test-0123456789"
PAYLOAD = {"status": "redacted_audio_ready", "session_id": "sess-1",
           "redacted_audio_url": "http://127.0.0.1/v1/sessions/sess-1/audio"}
# The receivers here listen on 127.0.0.1: allowed explicitly (the default refuses it).
LOOPBACK = DestinationPolicy(("127.0.0.1",))
# Tiny backoff so retry tests take milliseconds.
FAST = WebhookConfig(timeout_s=2.0, backoff_base_s=0.02, backoff_max_s=0.1, jitter=0.0,
                     close_grace_s=1.0)


@pytest.fixture(autouse=True)
def only_loopback_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the code under test does, no connection leaves 127.0.0.0/8 or ::1."""
    import ipaddress

    real = asyncio.open_connection

    async def guarded(host: str, port: int, **kw: object):  # type: ignore[no-untyped-def]
        assert ipaddress.ip_address(host).is_loopback, f"connection to {host} attempted"
        return await real(host, port, **kw)

    monkeypatch.setattr(webhooks.asyncio, "open_connection", guarded)


# --- signing (pure) -------------------------------------------------------------------


def test_sign_then_verify_round_trips() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, 1_700_000_000.7)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, body, header, now=1_700_000_010)


def test_verify_rejects_wrong_secret_and_tampered_body() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, 1000)
    assert not verify(b"other-secret", body, header, now=1000)
    assert not verify(SECRET, b'{"a":2}', header, now=1000)


def test_verify_rejects_old_and_future_timestamps() -> None:
    body = b"{}"
    header = sign(SECRET, body, 10_000)
    assert verify(SECRET, body, header, now=10_300)
    assert not verify(SECRET, body, header, now=10_301)
    assert not verify(SECRET, body, header, now=9_699)
    assert not verify(SECRET, body, header, now=10_100, tolerance_s=60)


def test_verify_rejects_a_replayed_mac_with_a_fresh_timestamp() -> None:
    body = b"{}"
    old_mac = sign(SECRET, body, 1000).split(",v1=")[1]
    assert not verify(SECRET, body, f"t=5000,v1={old_mac}", now=5000)


@pytest.mark.parametrize("header", [
    "", "garbage", "t=1000", "v1=abc", "t=abc,v1=abc", "t=-5,v1=abc", "t=1000,v1",
    "t=1000,t=1000,v1=abc", "t=１０００,v1=abc", "t=1000,v1=" + "a" * 2000,
])
def test_verify_rejects_malformed_headers(header: str) -> None:
    assert not verify(SECRET, b"{}", header, now=1000)


def test_verify_accepts_any_matching_v1_and_ignores_unknown_schemes() -> None:
    body = b"{}"
    good = sign(SECRET, body, 1000)
    t, mac = good.split(",")
    assert verify(SECRET, body, f"{t},v1={'0' * 64},{mac},v9=whatever", now=1000)


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    assert [backoff_delay(a, 1, 16, 0) for a in range(1, 7)] == [1, 2, 4, 8, 16, 16]
    assert backoff_delay(3, 1, 16, 0.25, rand=lambda: 0.0) == 3.0
    assert backoff_delay(3, 1, 16, 0.25, rand=lambda: 1.0) == 5.0


@pytest.mark.parametrize("url", [
    "https://example.com/hook?x=1", "http://127.0.0.1:8080/", "http://[::1]:9/h",
])
def test_validate_url_accepts_plain_http_urls(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize("url", [
    "", "ftp://example.com/", "javascript:alert(1)", "example.com/hook",
    "http://user:pw@example.com/", "https://token@example.com/", "http:///path",
    "http://example.com:99999/", "http://exa mple.com/", "http://h/\r\nX-Evil: 1",
    "http://127.0.0.1/\u20ac", "http://b\u00fccher.example/hook", "http://h/?q=\u00e9",
])
def test_validate_url_rejects_other_schemes_credentials_and_junk(url: str) -> None:
    with pytest.raises(WebhookUrlError) as info:
        validate_url(url)
    assert not url or url not in str(info.value)


# --- a real receiver ------------------------------------------------------------------


@dataclass
class Received:
    delivery_id: str
    content_type: str
    signature_ok: bool
    body: bytes


@dataclass
class Receiver:
    """HTTP/1.1 receiver on 127.0.0.1 that checks the signature like a customer would.
    Answers ``statuses`` in order, then ``default``; ``hang`` never answers."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/streamserver?tenant=7"

    async def start(self, port: int = 0) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            assert request_line == "POST /hooks/streamserver?tenant=7 HTTP/1.1"
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (ln.partition(":") for ln in lines if ln)}
            body = await reader.readexactly(int(headers["content-length"]))
            ok = verify(SECRET, body, headers[SIGNATURE_HEADER.lower()], now=time.time())
            self.requests.append(Received(headers[DELIVERY_HEADER.lower()],
                                          headers["content-type"], ok, body))
            if self.hang:
                await asyncio.Event().wait()
            status = (self.statuses.pop(0) if self.statuses else self.default) if ok else 401
            location = ("Location: http://169.254.169.254/latest/meta-data/\r\n"
                        if 300 <= status < 400 else "")
            writer.write(f"HTTP/1.1 {status} X\r\n{location}Content-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()
            self._handlers.discard(task)


async def _with_sender(
    config: WebhookConfig, body: Callable[[WebhookSender, asyncio.Queue[DeliveryResult]],
                                          Awaitable[None]],
) -> None:
    results: asyncio.Queue[DeliveryResult] = asyncio.Queue(64)
    async with WebhookSender(SECRET, config, policy=LOOPBACK,
                             on_result=results.put_nowait) as sender:
        await body(sender, results)


async def _next(results: asyncio.Queue[DeliveryResult]) -> DeliveryResult:
    return await asyncio.wait_for(results.get(), timeout=5)


def test_delivers_a_signed_json_post_to_an_accepting_receiver() -> None:
    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = await Receiver().start()
        assert sender.submit(rx.url, PAYLOAD)
        result = await _next(results)
        await rx.close()
        assert (result.outcome, result.attempts, result.status) == (Outcome.DELIVERED, 1, 200)
        assert result.session_id == "sess-1"
        [req] = rx.requests
        assert req.signature_ok and req.content_type == "application/json"
        assert json.loads(req.body) == PAYLOAD
        assert req.delivery_id == result.delivery_id

    asyncio.run(_with_sender(FAST, go))


@pytest.mark.parametrize("failures", [[500, 500], [503, 429]])
def test_retries_5xx_and_429_with_the_same_delivery_id(failures: list[int]) -> None:
    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = await Receiver(statuses=list(failures)).start()
        assert sender.submit(rx.url, PAYLOAD)
        result = await _next(results)
        await rx.close()
        assert (result.outcome, result.attempts, result.status) == (Outcome.DELIVERED, 3, 200)
        assert [r.delivery_id for r in rx.requests] == [result.delivery_id] * 3
        assert all(r.signature_ok for r in rx.requests)

    asyncio.run(_with_sender(FAST, go))


def test_a_receiver_that_is_down_at_first_gets_it_once_it_is_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = WebhookConfig(timeout_s=1.0, backoff_base_s=0.05, backoff_max_s=0.05, jitter=0.0,
                           max_attempts=40)

    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = Receiver()
        rx.port = port
        assert sender.submit(rx.url, PAYLOAD)
        while sender.stats.attempts < 2:  # refused at least twice
            await asyncio.sleep(0.01)
        await rx.start(port)
        result = await _next(results)
        await rx.close()
        assert result.outcome is Outcome.DELIVERED and result.attempts >= 3
        assert len(rx.requests) == 1 and rx.requests[0].signature_ok

    asyncio.run(_with_sender(config, go))


@pytest.mark.parametrize("status", [400, 404, 410, 301, 302, 307, 308])
def test_a_4xx_or_redirecting_receiver_is_not_retried_nor_followed(status: int) -> None:
    """A redirect (say, to http://169.254.169.254/) is a final answer: never followed
    (the guard fixture would fail any connection beyond loopback)."""
    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = await Receiver(default=status).start()
        assert sender.submit(rx.url, PAYLOAD)
        result = await _next(results)
        await asyncio.sleep(0.1)  # longer than the backoff: a retry would have arrived
        await rx.close()
        assert (result.outcome, result.attempts, result.status) == (Outcome.REJECTED, 1, status)
        assert len(rx.requests) == 1

    asyncio.run(_with_sender(FAST, go))


def test_gives_up_after_max_attempts() -> None:
    config = WebhookConfig(timeout_s=1.0, backoff_base_s=0.01, jitter=0.0, max_attempts=3)

    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = await Receiver(default=502).start()
        assert sender.submit(rx.url, PAYLOAD)
        result = await _next(results)
        await rx.close()
        assert (result.outcome, result.attempts, result.status) == (Outcome.EXHAUSTED, 3, 502)
        assert len(rx.requests) == 3

    asyncio.run(_with_sender(config, go))


def test_an_attempt_that_times_out_is_retried() -> None:
    config = WebhookConfig(timeout_s=0.2, backoff_base_s=0.01, jitter=0.0, max_attempts=2)

    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = await Receiver(hang=True).start()
        assert sender.submit(rx.url, PAYLOAD)
        result = await _next(results)
        await rx.close()
        assert (result.outcome, result.attempts, result.status) == (Outcome.EXHAUSTED, 2, None)
        assert len(rx.requests) == 2

    asyncio.run(_with_sender(config, go))


def test_submit_never_blocks_and_refuses_when_full_then_close_is_prompt() -> None:
    config = WebhookConfig(queue_size=2, workers=1, timeout_s=30.0)
    outcomes: list[Outcome] = []

    async def go() -> float:
        rx = await Receiver(hang=True).start()
        sender = WebhookSender(SECRET, config, policy=LOOPBACK,
                               on_result=lambda r: outcomes.append(r.outcome))
        sender.start()
        assert sender.submit(rx.url, PAYLOAD)
        while not rx.requests:  # the only worker is now stuck on the hanging receiver
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        accepted = [sender.submit(rx.url, PAYLOAD) for _ in range(5)]
        assert time.perf_counter() - t0 < 0.05
        assert accepted == [True, True, False, False, False]
        assert sender.stats.dropped_full == 3
        t0 = time.perf_counter()
        await sender.close(grace_s=0.2)
        took = time.perf_counter() - t0
        assert not sender.submit(rx.url, PAYLOAD)  # closed
        await rx.close()
        return took

    took = asyncio.run(go())
    assert took < 1.0
    assert outcomes == [Outcome.ABANDONED] * 3


def test_close_abandons_pending_retries_at_once_and_lets_in_flight_finish() -> None:
    config = WebhookConfig(timeout_s=2.0, backoff_base_s=30.0, jitter=0.0)
    results: list[DeliveryResult] = []

    async def go() -> float:
        failing = await Receiver(default=500).start()
        ok = await Receiver().start()
        sender = WebhookSender(SECRET, config, policy=LOOPBACK, on_result=results.append)
        sender.start()
        assert sender.submit(failing.url, PAYLOAD)
        while not failing.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # now sleeping 30 s before its retry
        assert sender.submit(ok.url, {**PAYLOAD, "session_id": "sess-2"})
        t0 = time.perf_counter()
        await sender.close()
        took = time.perf_counter() - t0
        await failing.close()
        await ok.close()
        return took

    took = asyncio.run(go())
    assert took < 1.0
    by_session = {r.session_id: r for r in results}
    assert by_session["sess-1"].outcome is Outcome.ABANDONED
    assert by_session["sess-2"].outcome is Outcome.DELIVERED


def test_logs_carry_no_secret_url_or_body(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="streamserver.webhooks")

    async def go(sender: WebhookSender, results: asyncio.Queue[DeliveryResult]) -> None:
        rx = await Receiver(statuses=[500]).start()
        assert sender.submit(rx.url, PAYLOAD)
        await _next(results)
        await rx.close()
        assert SECRET.decode() not in repr(sender)

    asyncio.run(_with_sender(FAST, go))
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert SECRET.decode() not in text
        assert "tenant=7" not in text and "redacted_audio_url" not in text
    assert any(getattr(r, "session", None) == "sess-1" for r in caplog.records)
    assert any("attempt 1/6" in r.getMessage() for r in caplog.records)


def test_submit_rejects_a_bad_url_before_queueing() -> None:
    sender = WebhookSender(SECRET, FAST)
    with pytest.raises(WebhookUrlError):
        sender.submit("http://user:pw@example.com/", PAYLOAD)
    assert sender.stats.submitted == 0


def test_a_delivery_that_raises_anything_leaves_every_worker_alive() -> None:
    """A post that raises what no network error is (a bug, an encoding error) ends
    that delivery only; with every worker hit once, the next delivery still goes."""
    config = WebhookConfig(workers=2, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.01)
    calls: list[str] = []

    async def post(url: str, body: bytes, headers: object, timeout_s: float) -> int:
        calls.append(url)
        if "boom" in url:
            raise UnicodeEncodeError("latin-1", "\u20ac", 0, 1, "cannot encode")
        return 200

    async def go() -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        async with WebhookSender(SECRET, config, post=post,
                                 on_result=results.append) as sender:
            for i in range(4):  # more failures than workers
                assert sender.submit(f"http://127.0.0.1:9/boom{i}", PAYLOAD)
            assert sender.submit("http://127.0.0.1:9/fine", PAYLOAD)
            for _ in range(100):
                if len(results) == 5:
                    break
                await asyncio.sleep(0.01)
        return results

    results = asyncio.run(go())
    outcomes = sorted((r.outcome.value, r.attempts) for r in results)
    assert outcomes == [("delivered", 1)] + [("rejected", 1)] * 4
    assert len(calls) == 5  # no retry of what a retry cannot fix


# --- destinations (SSRF): classified and resolved without touching the network ------


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("127.8.9.10", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("239.255.255.250", False), ("240.0.0.1", False),
    ("255.255.255.255", False), ("192.0.2.1", False), ("198.18.0.1", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fd00:ec2::254", False),
    ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),
    ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::808:808", True),
    ("8.8.8.8", True), ("93.184.216.34", True), ("2606:4700::1111", True),
])
def test_public_addresses_are_told_from_the_rest(address: str, public: bool) -> None:
    import ipaddress

    assert is_public_address(ipaddress.ip_address(address)) is public


def test_operator_allow_list_takes_names_globs_and_networks() -> None:
    import ipaddress

    policy = DestinationPolicy(("hooks.internal", "*.corp.example", "10.0.0.0/8", "[::1]"))
    ip = ipaddress.ip_address
    assert policy.address_allowed("x", ip("10.9.9.9"))
    assert policy.address_allowed("x", ip("::1"))
    assert not policy.address_allowed("x", ip("192.168.0.1"))
    assert policy.address_allowed("Hooks.Internal.", ip("192.168.0.1"))
    assert policy.address_allowed("a.b.corp.example", ip("172.16.0.1"))
    assert not policy.address_allowed("corp.example.evil", ip("172.16.0.1"))
    with pytest.raises(ValueError):
        DestinationPolicy(("http://x/",))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/h", "http://[::1]/h", "http://localhost:8080/", "http://LOCALHOST./",
    "http://api.localhost/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/",
    "http://[::ffff:7f00:1]/", "http://0.0.0.0:80/",
])
def test_addresses_in_the_url_are_refused_at_set_up(url: str) -> None:
    with pytest.raises(WebhookDestinationError):
        DestinationPolicy().check_literal(url)
    DestinationPolicy(("127.0.0.0/8", "::/0", "0.0.0.0/0", "localhost", "*.localhost")
                      ).check_literal(url)


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    import ipaddress

    async def resolve(host: str, port: int) -> list:  # type: ignore[type-arg]
        return [ipaddress.ip_address(a) for a in table[host]]

    return resolve


def test_every_resolved_address_must_pass_and_the_first_is_pinned() -> None:
    resolve = _resolver({"hooks.test": ["127.0.0.1"], "mixed.test": ["8.8.8.8", "10.0.0.1"],
                         "public.test": ["8.8.4.4", "8.8.8.8"], "none.test": []})

    async def go() -> None:
        for host in ("hooks.test", "mixed.test", "none.test"):
            with pytest.raises(WebhookDestinationError):
                await pinned_address(host, 80, DestinationPolicy(), resolve)
        assert str(await pinned_address("public.test", 80, DestinationPolicy(), resolve)) \
            == "8.8.4.4"
        allowed = DestinationPolicy(("hooks.test",))
        assert str(await pinned_address("hooks.test", 80, allowed, resolve)) == "127.0.0.1"

    asyncio.run(go())


def test_a_name_resolving_to_metadata_is_refused_before_any_connection() -> None:
    resolve = _resolver({"evil.test": ["169.254.169.254"]})

    async def go() -> None:
        with pytest.raises(WebhookDestinationError):
            await post_http("http://evil.test/latest", b"{}", {}, 2.0, resolve=resolve)

    asyncio.run(go())  # the guard fixture fails the test on any connection attempt


def test_the_real_resolver_maps_localhost_to_loopback_and_it_is_refused() -> None:
    async def go() -> None:
        addresses = await resolve_host("localhost", 80)
        assert addresses and all(a.is_loopback for a in addresses)
        with pytest.raises(WebhookDestinationError):
            await pinned_address("localhost", 80, DestinationPolicy())

    asyncio.run(go())


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host() -> None:
    """A name the operator allowed, resolved once to 127.0.0.1: the POST reaches the
    receiver there, whatever the name would resolve to later."""
    async def go() -> list[Received]:
        rx = await Receiver().start()
        calls = 0

        async def resolve(host: str, port: int) -> list:  # type: ignore[type-arg]
            nonlocal calls
            calls += 1
            import ipaddress
            return [ipaddress.ip_address("127.0.0.1")] if calls == 1 else []

        url = f"http://hooks.test:{rx.port}/hooks/streamserver?tenant=7"
        body = json.dumps(PAYLOAD).encode()
        headers = {SIGNATURE_HEADER: sign(SECRET, body, time.time()), DELIVERY_HEADER: "d1",
                   "Content-Type": "application/json"}
        status = await post_http(url, body, headers, 2.0,
                                 policy=DestinationPolicy(("hooks.test",)), resolve=resolve)
        await rx.close()
        assert status == 200 and calls == 1
        return rx.requests

    [req] = asyncio.run(go())
    assert req.signature_ok


def test_the_default_sender_refuses_a_loopback_receiver_without_retrying() -> None:
    async def go() -> tuple[list[DeliveryResult], int]:
        rx = await Receiver().start()
        results: list[DeliveryResult] = []
        async with WebhookSender(SECRET, FAST, on_result=results.append) as sender:
            assert sender.submit(rx.url, PAYLOAD)
            for _ in range(200):
                if results:
                    break
                await asyncio.sleep(0.01)
        await rx.close()
        return results, len(rx.requests)

    results, received = asyncio.run(go())
    assert received == 0
    assert [(r.outcome, r.attempts) for r in results] == [(Outcome.REJECTED, 1)]


def test_rotation_signs_with_every_secret_and_tenants_get_their_own() -> None:
    new, old = b"whsec-new-0123456789", b"whsec-old-0123456789"
    body = b'{"x":1}'
    header = sign([new, old], body, now=1000.0)
    assert header.count("v1=") == 2
    assert verify(new, body, header, now=1000.0) and verify(old, body, header, now=1000.0)
    a, b = tenant_secret(new, "a" * 64), tenant_secret(new, "b" * 64)
    assert a != b and len(a) == 64 and tenant_secret(new, "a" * 64) == a

    async def go() -> list[str]:
        seen: list[str] = []

        async def post(url: str, body: bytes, headers: dict, timeout_s: float) -> int:
            seen.append(headers[SIGNATURE_HEADER])
            return 200

        async with WebhookSender([new, old], FAST, post=post) as sender:
            assert sender.submit("http://127.0.0.1:9/h", PAYLOAD, tenant="a" * 64)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
        return seen

    [signed] = asyncio.run(go())
    sent = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    t = float(signed.split(",")[0][2:])
    assert verify(a, sent, signed, now=t)
    assert verify(tenant_secret(old, "a" * 64), sent, signed, now=t)
    assert not verify(b, sent, signed, now=t) and not verify(new, sent, signed, now=t)
