"""Signed webhooks: tell a session's owner that its redacted audio is ready.

Signing is Stripe-style: ``Streamserver-Signature: t=<unix s>,v1=<hex mac>`` where
the MAC is HMAC-SHA256(secret, f"{t}.{body}"). The timestamp is inside the MAC so a
captured request cannot be replayed later; receivers check it with :func:`verify`.
Every attempt of one delivery carries the same ``Streamserver-Delivery`` id, so a
receiver can drop duplicates when a response was lost and we retried.

:class:`WebhookSender` is the I/O adapter: a bounded queue (``submit`` never blocks;
it returns False when full), a few worker tasks, a timeout per attempt, retries with
exponential backoff and jitter on connection errors, timeouts, 5xx and 429.
Logs carry the session id, status codes and attempt numbers, never the URL (its
query may hold a token), the body or the secret.

Usage::

    sender = WebhookSender(secret)
    sender.start()                      # inside the running loop
    sender.submit(url, {"status": "redacted_audio_ready", "session_id": sid, ...})
    ...
    await sender.close()                # on shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fnmatch
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("streamserver.webhooks")

SIGNATURE_HEADER = "Streamserver-Signature"
DELIVERY_HEADER = "Streamserver-Delivery"
SIGNATURE_TOLERANCE_S = 300
_MAX_SIGNATURE_HEADER = 1024  # a few v1= entries (key rotation) fit; junk does not
_MAX_STATUS_LINE = 1024


class WebhookUrlError(ValueError):
    """The webhook URL is not acceptable. The message never repeats the URL."""


# --- signing (pure) ----------------------------------------------------------------


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes | Sequence[bytes], body: bytes, now: float) -> str:
    """The ``Streamserver-Signature`` header value for ``body`` sent at ``now``: one
    ``v1=`` per secret (during a rotation, the new and the old)."""
    t = int(now)
    secrets = [secret] if isinstance(secret, bytes) else list(secret)
    return f"t={t}," + ",".join(f"v1={_mac(s, t, body)}" for s in secrets)


def tenant_secret(server_secret: bytes, tenant: str) -> bytes:
    """The secret one tenant's webhooks are signed with (``tenant``: the SHA-256 hex
    of its API key, or ``anonymous``). Derived, so the operator stores one secret,
    and a body signed for one tenant does not verify at another tenant's receiver.
    ``streamserver webhook-secret`` prints it for a key."""
    mac = hmac.new(server_secret, b"streamserver-webhook-v1:" + tenant.encode(), hashlib.sha256)
    return mac.hexdigest().encode()


def verify(
    secret: bytes, body: bytes, header: str, now: float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s``
    away from ``now`` (either way). Malformed headers are False, never an exception."""
    if len(header) > _MAX_SIGNATURE_HEADER:
        return False
    timestamp: int | None = None
    macs: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
        # Unknown schemes are ignored so a future v2 can be added alongside v1.
    if timestamp is None or not macs or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    # Check every candidate so timing does not reveal which one matched.
    ok = False
    for candidate in macs:
        ok |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    return ok


def validate_url(url: str) -> str:
    """Return ``url`` if it is an http(s) URL with a host and no credentials.

    Raises :class:`WebhookUrlError` otherwise. Call it when a session is set up, so
    a bad URL is rejected there rather than failing silently later.
    """
    if not url or len(url) > 2048 or any(c <= " " or c == "\x7f" for c in url):
        raise WebhookUrlError("webhook_url must be a plain http(s) URL")
    if not url.isascii():
        # An HTTP request line is bytes: a non-ASCII URL cannot be sent as it is.
        raise WebhookUrlError("webhook_url must be ASCII: IDNA-encode the host "
                              "(xn--...) and percent-encode the path and query")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise WebhookUrlError("webhook_url is malformed") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError("webhook_url must use http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookUrlError("webhook_url must not contain credentials")
    if not parts.hostname:
        raise WebhookUrlError("webhook_url has no host")
    return url


def backoff_delay(attempt: int, base_s: float, cap_s: float, jitter: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Delay before attempt ``attempt + 1``: base * 2**(attempt-1), capped, ±jitter."""
    delay = min(cap_s, base_s * 2 ** (attempt - 1))
    return max(0.0, delay * (1 + jitter * (2 * rand() - 1)))


def is_retryable(status: int) -> bool:
    return status >= 500 or status == 429


# --- where a webhook may go (pure) ------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookDestinationError(Exception):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


def is_public_address(ip: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local (cloud metadata
    at 169.254.169.254), shared, multicast, reserved or unspecified — also when
    an IPv4 address hides inside IPv6 (mapped, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return (ip.is_global and not ip.is_multicast and not ip.is_reserved
            and not ip.is_unspecified and not ip.is_loopback and not ip.is_link_local)


@dataclass(frozen=True)
class DestinationPolicy:
    """Webhooks go to public addresses only, unless the operator allows more.

    ``allowed``: host names (``hooks.internal``), globs (``*.corp.example``) and
    addresses or networks (``10.1.2.3``, ``10.0.0.0/8``, ``::1``) that may be
    reached even though they are not public. A name is checked as written in the
    URL, an address after resolution; every address a name resolves to must pass.
    """

    allowed: tuple[str, ...] = ()
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), init=False, repr=False)
    _names: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        networks, names = [], []
        for entry in (e.strip().lower() for e in self.allowed):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not entry.replace("*", "a").replace("-", "a").replace(".", "a").isalnum():
                    raise ValueError(f"not a host name, glob or network: {entry[:60]!r}") \
                        from None
                names.append(entry)
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_names", tuple(names))

    def name_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(host, pattern) for pattern in self._names)

    def address_allowed(self, host: str, ip: IPAddress) -> bool:
        return (is_public_address(ip) or self.name_allowed(host)
                or any(ip in net for net in self._networks))

    def check_literal(self, url: str) -> None:
        """At set-up: a URL whose host is an address (or localhost) must pass now;
        names are checked on every delivery, after resolution."""
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                ip = ipaddress.ip_address("127.0.0.1")
            else:
                return
        if not self.address_allowed(host, ip):
            raise WebhookDestinationError(
                "webhook_url points to a loopback, private, link-local or reserved "
                "address (the operator may allow it: webhook_allowed_hosts)")


# (host, port) -> the host's addresses.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` (an address literal resolves to itself, no DNS)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def pinned_address(host: str, port: int, policy: DestinationPolicy,
                         resolve: Resolver = resolve_host) -> IPAddress:
    """The address to connect to: resolved once, every address checked, the first
    one used. Connecting to it (not to the name) means a second DNS answer cannot
    swap in a private address after the check (DNS rebinding)."""
    addresses = await resolve(host, port)
    if not addresses:
        raise WebhookDestinationError("the webhook host has no address")
    if not all(policy.address_allowed(host, ip) for ip in addresses):
        raise WebhookDestinationError("the webhook host resolves to an address webhooks "
                                      "may not reach")
    return addresses[0]


# --- transport -----------------------------------------------------------------------

# (url, body, headers, timeout_s) -> HTTP status. Raises OSError / TimeoutError /
# WebhookTransportError on failure, all of which are retried.
Post = Callable[[str, bytes, Mapping[str, str], float], Awaitable[int]]


class WebhookTransportError(Exception):
    """The receiver answered something that is not an HTTP response."""


async def post_http(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float,
                    *, policy: DestinationPolicy | None = None,
                    resolve: Resolver = resolve_host) -> int:
    """POST over asyncio streams (HTTP/1.1, one connection per request); only the status
    line is read, so redirects are never followed. Connects to the address
    :func:`pinned_address` checked against ``policy`` (default: public addresses
    only). Kept in the stdlib so the server needs no HTTP client dependency."""
    policy = policy if policy is not None else DestinationPolicy()
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}",
            f"Content-Length: {len(body)}", "Connection: close",
            "User-Agent: streamserver-webhooks"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    async with asyncio.timeout(timeout_s):
        ip = await pinned_address(host, port, policy, resolve)
        reader, writer = await asyncio.open_connection(
            str(ip), port, ssl=ssl.create_default_context() if secure else None,
            server_hostname=host if secure else None, limit=_MAX_STATUS_LINE,
        )
        try:
            writer.write(request)
            await writer.drain()
            try:
                line = await reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                raise WebhookTransportError("no HTTP status line") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].isdigit():
        raise WebhookTransportError("malformed HTTP status line")
    return int(fields[1])


# --- the sender ----------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookConfig:
    queue_size: int = 256         # pending deliveries; submit() returns False beyond
    workers: int = 4              # concurrent deliveries (one slow receiver cannot stall all)
    timeout_s: float = 5.0        # per attempt, connect to status line
    max_attempts: int = 6         # 1 + retries after 1, 2, 4, 8, 16 s
    backoff_base_s: float = 1.0
    backoff_max_s: float = 16.0
    jitter: float = 0.2           # ±20 %: receivers recovering from an outage are not stampeded
    close_grace_s: float = 5.0    # for in-flight and queued deliveries on close()

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.workers < 1 or self.max_attempts < 1:
            raise ValueError("queue_size, workers and max_attempts must be >= 1")
        if min(self.timeout_s, self.backoff_base_s, self.backoff_max_s, self.close_grace_s) < 0:
            raise ValueError("timeouts and delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")


class Outcome(enum.Enum):
    DELIVERED = "delivered"   # 2xx
    REJECTED = "rejected"     # other status that retrying cannot fix (4xx but 429, 3xx)
    EXHAUSTED = "exhausted"   # max_attempts reached
    ABANDONED = "abandoned"   # shutdown came first


@dataclass(frozen=True)
class DeliveryResult:
    delivery_id: str
    session_id: str | None
    outcome: Outcome
    attempts: int
    status: int | None  # last HTTP status, None if no response


@dataclass(frozen=True)
class _Delivery:
    delivery_id: str
    url: str
    body: bytes
    session_id: str | None
    secrets: tuple[bytes, ...] = field(repr=False)
    on_result: Callable[[DeliveryResult], None] | None = field(default=None, repr=False)


@dataclass
class WebhookStats:
    submitted: int = 0
    dropped_full: int = 0
    attempts: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))


class WebhookSender:
    """Delivers signed webhooks in the background. Not thread-safe: use from one loop.

    Call :meth:`start` inside the running loop, :meth:`submit` from anywhere on that
    loop (it never waits), and ``await`` :meth:`close` once on shutdown. ``on_result``
    is called once per accepted delivery with its final :class:`DeliveryResult`.
    """

    def __init__(
        self,
        secret: bytes | Sequence[bytes],
        config: WebhookConfig | None = None,
        *,
        policy: DestinationPolicy | None = None,
        post: Post | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        on_result: Callable[[DeliveryResult], None] | None = None,
    ) -> None:
        # The first secret is current; any others are being rotated out (still signed).
        self._secrets = (secret,) if isinstance(secret, bytes) else tuple(secret)
        if not self._secrets or not all(self._secrets):
            raise ValueError("webhook secret must not be empty")
        self.config = config or WebhookConfig()
        # Where deliveries may go (public addresses unless allowed); ``post`` replaces
        # the transport altogether (fault injection in tests).
        self.policy = policy if policy is not None else DestinationPolicy()
        self._post = post or functools.partial(post_http, policy=self.policy)
        self._clock = clock
        self._rand = rand
        self._on_result = on_result
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(self.config.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()  # no retries once set
        self._accepting = True
        self.stats = WebhookStats()

    def __repr__(self) -> str:  # the secret must not end up in a log via repr()
        return f"WebhookSender(pending={self._queue.qsize()}, workers={len(self._workers)})"

    def start(self) -> None:
        if self._workers:
            raise RuntimeError("WebhookSender already started")
        self._workers = [asyncio.create_task(self._work(), name=f"webhook-{i}")
                         for i in range(self.config.workers)]

    async def __aenter__(self) -> WebhookSender:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def submit(self, url: str, payload: Mapping[str, Any], tenant: str | None = None, *,
               delivery_id: str | None = None,
               on_result: Callable[[DeliveryResult], None] | None = None) -> bool:
        """Queue one delivery; False if the sender is full or closed. Never waits.

        ``tenant``: signed with that tenant's secrets (:func:`tenant_secret`), not the
        server's own. ``delivery_id``: the ``Streamserver-Delivery`` header (default a
        fresh one), kept when the same event is sent again, e.g. by another node.
        ``on_result``: called with this delivery's final result (besides the sender's).

        Raises :class:`WebhookUrlError` for a bad URL (validate it earlier with
        :func:`validate_url`), ``TypeError`` if ``payload`` is not JSON-serialisable.
        """
        validate_url(url)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        session_id = payload.get("session_id")
        secrets = (self._secrets if tenant is None
                   else tuple(tenant_secret(s, tenant) for s in self._secrets))
        delivery = _Delivery(delivery_id or str(uuid.uuid4()), url, body,
                             session_id if isinstance(session_id, str) else None, secrets,
                             on_result)
        if not self._accepting:
            return False
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.stats.dropped_full += 1
            log.warning("webhook queue full, delivery dropped", extra={"session": session_id})
            return False
        self.stats.submitted += 1
        return True

    async def close(self, grace_s: float | None = None) -> None:
        """Stop accepting, give queued and in-flight deliveries ``grace_s`` (default
        ``config.close_grace_s``) for one more attempt each, then cancel the rest.
        Pending retries are abandoned at once. Safe to call twice."""
        self._accepting = False
        self._closing.set()
        grace = self.config.close_grace_s if grace_s is None else grace_s
        if self._workers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._queue.join()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while not self._queue.empty():  # never started: not counted as attempts
            self._finish(self._queue.get_nowait(), Outcome.ABANDONED, 0, None)
        counts = {o.value: n for o, n in self.stats.outcomes.items()}
        log.info("webhook sender closed", extra={"stats": {**counts,
                 "dropped_full": self.stats.dropped_full, "attempts": self.stats.attempts}})

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception as exc:
                # Last resort: whatever one delivery raises, the worker lives on for
                # the others (the type only: an exception's text may quote the URL).
                log.error("webhook delivery failed: %s", type(exc).__name__,
                          extra={"session": delivery.session_id})
                self._finish(delivery, Outcome.REJECTED, 0, None)
            finally:
                self._queue.task_done()

    async def _deliver(self, d: _Delivery) -> None:
        cfg = self.config
        status: int | None = None
        attempt = 0
        try:
            while True:
                attempt += 1
                self.stats.attempts += 1
                # Re-signed per attempt, so a late retry is still within the tolerance.
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(d.secrets, d.body, self._clock()),
                    DELIVERY_HEADER: d.delivery_id,
                }
                error: str | None = None
                try:
                    status = await self._post(d.url, d.body, headers, cfg.timeout_s)
                except WebhookDestinationError:
                    log.warning("webhook destination refused (not a public address)",
                                extra={"session": d.session_id})
                    self._finish(d, Outcome.REJECTED, attempt, None)
                    return
                except (OSError, TimeoutError, WebhookTransportError) as exc:
                    status, error = None, type(exc).__name__
                except Exception as exc:  # not the network: a retry cannot fix it
                    log.error("webhook attempt failed: %s", type(exc).__name__,
                              extra={"session": d.session_id})
                    self._finish(d, Outcome.REJECTED, attempt, None)
                    return
                if status is not None and 200 <= status < 300:
                    self._finish(d, Outcome.DELIVERED, attempt, status)
                    return
                if status is not None and not is_retryable(status):
                    self._finish(d, Outcome.REJECTED, attempt, status)
                    return
                log.info("webhook attempt %d/%d failed (%s)", attempt, cfg.max_attempts,
                         error or status, extra={"session": d.session_id, "code": status})
                if attempt >= cfg.max_attempts:
                    self._finish(d, Outcome.EXHAUSTED, attempt, status)
                    return
                if self._closing.is_set():
                    self._finish(d, Outcome.ABANDONED, attempt, status)
                    return
                delay = backoff_delay(attempt, cfg.backoff_base_s, cfg.backoff_max_s,
                                      cfg.jitter, self._rand)
                # Sleep, but wake up at once when close() starts.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._closing.wait()
                if self._closing.is_set():
                    self._finish(d, Outcome.ABANDONED, attempt, status)
                    return
        except asyncio.CancelledError:
            self._finish(d, Outcome.ABANDONED, attempt, status)
            raise

    def _finish(self, d: _Delivery, outcome: Outcome, attempts: int, status: int | None) -> None:
        self.stats.outcomes[outcome] += 1
        level = logging.INFO if outcome is Outcome.DELIVERED else logging.WARNING
        log.log(level, "webhook %s after %d attempt(s)", outcome.value, attempts,
                extra={"session": d.session_id, "code": status})
        result = DeliveryResult(d.delivery_id, d.session_id, outcome, attempts, status)
        for callback in (self._on_result, d.on_result):
            if callback is None:
                continue
            try:
                callback(result)
            except Exception:  # a faulty callback must not kill a worker
                log.exception("webhook on_result callback failed")
