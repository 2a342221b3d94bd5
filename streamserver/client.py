"""An asyncio client for protocol v1 (docs/protocol.md, docs/client.md).

::

    async with connect("ws://127.0.0.1:8080/v1/stream", pace="asap") as s:
        ...  # s.send(pcm), s.flush(), s.close_input(); s.events(), s.audio()

One connection has one reader task. It reads every message off the socket and
puts it in one of two bounded buffers: JSON events (``events()``) and redacted
audio (``audio()``). How a buffer that is full is handled decides whether one
iterator can block the other, so it is spelled out here:

* While an iterator is being consumed (its ``async for`` has started and not
  ended), a full buffer makes the reader wait for room. The wait reaches the
  server as TCP backpressure (``asap``: it pauses; ``realtime``: a client that
  keeps up never fills the buffer, one that does not is ended with
  ``slow_consumer``). Read both iterators concurrently and nothing is ever lost.
* A buffer that fills while no one is iterating it is not waited on: it is
  marked *overflowed*, it keeps what it has, and everything of its kind that
  follows is discarded. Its iterator yields what was kept, then raises
  :class:`BufferOverflow` — never a gap in silence. So a kind that nobody reads
  cannot hold up the other one, nor the socket.
* ``keep_audio=False`` discards audio from the start (events-only clients);
  ``audio()`` then refuses to run.

Errors cannot be missed. A server ``error`` event is yielded like any other
event; when the connection then ends with an error close (or ends abnormally
with no event), :class:`ClientError` is raised — from ``events()`` and
``audio()`` once they have yielded everything received before it, from
``send()``/``flush()``/``close_input()``, and, if none of those raised it, from
leaving the ``async with`` block. Errors that do not end the session
(``model_error``, ``model_timeout``: the covered audio is masked) are events only.

The client logs nothing: audio and transcript text never reach a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from . import audio as audio_mod
from .protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHORIZED,
)

# Named defaults (one place).
MAX_MESSAGE_BYTES = 1 << 24  # the largest frame accepted from the server
AUDIO_BUFFER_BYTES = 8 << 20  # redacted audio held for audio(): ~4 min of 16 kHz mono
EVENT_BUFFER_SIZE = 4096  # events held for events()
SEND_ERROR_WAIT_S = 5.0  # after a failed send: how long to wait for the server's error event
END_WAIT_S = 60.0  # leaving `async with` after close_input(): wait this long for session.end
CLOSE_TIMEOUT_S = 10.0  # the WebSocket closing handshake

T = TypeVar("T")


# --- errors ----------------------------------------------------------------------------


class ClientError(Exception):
    """A session that failed: ``code`` is the server's ``error`` code (or one the
    client derived from the close, see below), ``message`` its text (never user
    data), ``close_code`` the WebSocket close code (None if there was no close).

    Client-side codes: ``connection_failed`` (no connection), ``handshake_failed``
    (HTTP refusal), ``audio_overflow`` / ``events_overflow`` (:class:`BufferOverflow`),
    and for a close with no ``error`` event before it: ``message_too_big`` (1009),
    ``invalid_data`` (1007), ``server_busy`` (1013), ``unauthorized`` (4401),
    ``going_away`` (1001 before ``session.end``: the server shut down), else
    ``connection_closed`` (1006: the TCP connection died).
    """

    def __init__(self, code: str, message: str, close_code: int | None = None):
        super().__init__(f"{code}: {message}" + (f" (close {close_code})"
                                                 if close_code is not None else ""))
        self.code = code
        self.message = message
        self.close_code = close_code


class BadRequest(ClientError):
    """The client sent something the server refuses: fix the request, do not retry as is."""


class Unauthorized(ClientError):
    """No key, a wrong key or token, or a refused origin or host."""


class TryLater(ClientError):
    """The server (or this key) is at capacity or shutting down: retry, maybe elsewhere."""


class BufferOverflow(ClientError):
    """A buffer filled while nobody iterated it; what followed was discarded."""


_ERROR_CLASSES: dict[str, type[ClientError]] = {
    **dict.fromkeys(("bad_config", "config_required", "invalid_json", "unknown_message",
                     "bad_audio", "message_too_big"), BadRequest),
    **dict.fromkeys(("unauthorized", "forbidden_origin", "untrusted_host"), Unauthorized),
    **dict.fromkeys(("server_busy", "key_busy", "storage_quota", "storage_unavailable",
                     "too_many_listeners", "going_away"), TryLater),
    **dict.fromkeys(("audio_overflow", "events_overflow"), BufferOverflow),
}

# What a close without an ``error`` event means (the WebSocket layer refused a frame,
# or the server went away).
_CLOSE_CODES = {CLOSE_TOO_BIG: "message_too_big", CLOSE_INVALID_DATA: "invalid_data",
                CLOSE_TRY_LATER: "server_busy", CLOSE_UNAUTHORIZED: "unauthorized",
                CLOSE_GOING_AWAY: "going_away"}
_HTTP_CODES = {401: "unauthorized", 403: "forbidden_origin", 429: "key_busy",
               503: "server_busy"}


def error_for(code: str, message: str, close_code: int | None = None) -> ClientError:
    """The ClientError (subclass) for a server error code."""
    return _ERROR_CLASSES.get(code, ClientError)(code, message, close_code)


# --- bounded buffers -------------------------------------------------------------------


class _Buffer(Generic[T]):
    """One kind of message between the reader task (one producer) and its iterator
    (one consumer at a time). Bounded by ``limit`` units of ``size(item)``; the
    policy when full is in the module docstring."""

    def __init__(self, kind: str, limit: int, size: Callable[[T], int], keep: bool = True):
        self.kind = kind
        self.limit = limit
        self.keep = keep
        self._size = size
        self._items: deque[T] = deque()
        self._used = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self.attached = False
        self.overflowed = False
        self.ended = False
        self.stopped = False  # the client is closing: never wait, keep nothing more
        self._owner: object | None = None  # the consuming iterator's token
        self._waiting = False  # its consumer is awaiting an item

    async def put(self, item: T) -> None:
        if not self.keep or self.overflowed or self.stopped:
            return
        n = self._size(item)
        while self._items and self._used + n > self.limit:  # one item always fits
            if self.stopped:
                return
            if not self.attached:
                self.overflowed = True
                self._readable.set()
                return
            self._writable.clear()
            await self._writable.wait()
        self._items.append(item)
        self._used += n
        self._readable.set()

    def end(self) -> None:
        self.ended = True
        self._readable.set()

    async def get(self, token: object) -> T | None:
        """The next item; None at the end (of the connection, or of what an
        overflowed buffer kept). ``token``: from :meth:`attach`."""
        while not self._items:
            if self._owner is not token:
                raise RuntimeError(f"a newer {self.kind}() iterator took over")
            if self.ended or self.overflowed:
                return None
            self._readable.clear()
            self._waiting = True
            try:
                await self._readable.wait()
            finally:
                self._waiting = False
        if self._owner is not token:
            raise RuntimeError(f"a newer {self.kind}() iterator took over")
        item = self._items.popleft()
        self._used -= self._size(item)
        self._writable.set()
        return item

    def stop_waiting(self) -> None:
        self.stopped = True
        self._writable.set()

    def attach(self) -> object:
        """Make a new iterator the consumer; its token. An earlier iterator that is
        not waiting for an item (abandoned after ``break``, not yet closed) is
        superseded; one that is waiting means two consumers: RuntimeError."""
        if self._waiting:
            raise RuntimeError(f"{self.kind}() is already being iterated")
        self._owner = token = object()
        self.attached = True
        return token

    def detach(self, token: object) -> None:
        if self._owner is token:
            self._owner = None
            self.attached = False
            self._writable.set()  # a reader waiting for room re-checks: it may overflow now


# --- connections -----------------------------------------------------------------------


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def build_url(url: str, params: dict[str, Any]) -> str:
    """``url`` with ``params`` added to its query (None values left out; booleans as
    ``true``/``false``; lists comma-joined). Given params override the URL's own."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: _query_value(v) for k, v in params.items() if v is not None})
    return urlunsplit(parts._replace(query=urlencode(query)))


def listen_url(url: str, session_id: str) -> str:
    """``ws(s)://HOST:PORT/v1/sessions/{session_id}/listen`` for a server given by any
    of its URLs (``ws://HOST:PORT`` or its ``/v1/stream`` URL); the query is dropped."""
    parts = urlsplit(url)
    path = f"/v1/sessions/{quote(session_id, safe='')}/listen"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class _Connection:
    """What a stream and a listener share: the socket, the reader task, the two
    buffers and the error that ended the connection. Use as ``async with``."""

    def __init__(self, url: str, api_key: str | None, keep_audio: bool,
                 audio_buffer_bytes: int, event_buffer_size: int):
        self.url = url
        self._api_key = api_key
        self._keep_audio = keep_audio
        self._audio_limit = audio_buffer_bytes
        self._event_limit = event_buffer_size
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: _Buffer[dict[str, Any]] | None = None
        self._audio: _Buffer[bytes] | None = None
        self._begun: asyncio.Event | None = None
        self._error: ClientError | None = None
        self._error_raised = False
        self._closing = False  # we close: the close code is ours, not an error
        self.session_id: str | None = None
        self.config: dict[str, Any] | None = None
        self.end_stats: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.audio_bytes_received = 0

    # -- lifecycle --

    async def __aenter__(self) -> _Connection:
        await self.open()
        return self

    async def open(self) -> None:
        """Connect and start the reader. Raises ClientError when no WebSocket comes
        up (refused connection, HTTP refusal, bad URL). Refusals the server gives
        in-band (``unauthorized``, ``bad_config``, ``server_busy``) arrive as an
        ``error`` event and close, and are raised like any other session error."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        try:
            self._ws = await websockets.connect(self.url, additional_headers=headers,
                                                max_size=MAX_MESSAGE_BYTES,
                                                close_timeout=CLOSE_TIMEOUT_S)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise error_for(_HTTP_CODES.get(status, "handshake_failed"),
                            f"the server refused the WebSocket (HTTP {status})") from None
        except InvalidURI:
            raise ClientError("connection_failed", "not a ws:// or wss:// URL") from None
        except InvalidHandshake as exc:
            raise ClientError("handshake_failed", type(exc).__name__) from None
        except OSError as exc:
            raise ClientError("connection_failed", exc.strerror or type(exc).__name__) \
                from None
        self._events = _Buffer("events", self._event_limit, lambda _e: 1)
        self._audio = _Buffer("audio", self._audio_limit, len, keep=self._keep_audio)
        self._begun = asyncio.Event()
        self._reader = asyncio.create_task(self._read(self._ws), name="streamserver-client")

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._exit(exc is None)

    async def _exit(self, clean: bool) -> None:
        await self.aclose()
        if clean and self._error is not None and not self._error_raised:
            self._raise_error()

    async def aclose(self) -> None:
        """Close the socket (1000) and stop the reader. Safe to call twice. Leaving
        ``async with`` does this; audio and events not read by then are dropped
        (an iterator still running elsewhere yields what it holds, then ends)."""
        if self._reader is None or self._ws is None:
            return
        self._closing = not self._reader.done()
        for buf in (self._events, self._audio):
            if buf is not None:
                buf.stop_waiting()
        await self._ws.close()
        # The reader gets to what arrived before the close (an error event, say).
        await asyncio.wait({self._reader}, timeout=CLOSE_TIMEOUT_S)
        await _cancel_and_wait(self._reader, CLOSE_TIMEOUT_S)

    # -- the reader --

    async def _read(self, ws: ClientConnection) -> None:
        assert self._events is not None and self._audio is not None and self._begun
        last_error: dict[str, Any] | None = None
        try:
            while True:
                try:
                    msg = await ws.recv()
                except ConnectionClosed as exc:
                    closed = exc
                    break
                if isinstance(msg, bytes):
                    self.audio_bytes_received += len(msg)
                    await self._audio.put(msg)
                    continue
                try:
                    event = json.loads(msg)
                except ValueError:
                    continue  # not protocol v1; nothing to act on
                if not isinstance(event, dict):
                    continue
                kind = event.get("type")
                if kind == "session.begin":
                    self.session_id = event.get("session_id")
                    self.config = event.get("config")
                    self._begun.set()
                elif kind == "session.end":
                    self.end_stats = event.get("stats")
                elif kind == "error":
                    last_error = event
                await self._events.put(event)
            rcvd = closed.rcvd  # the server's close frame; None if the TCP connection died
            self.close_code = rcvd.code if rcvd is not None else 1006
            self._error = self._error_from_close(last_error, rcvd.reason if rcvd else "")
        finally:
            self._events.end()
            self._audio.end()
            self._begun.set()

    def _error_from_close(self, last_error: dict[str, Any] | None,
                          reason: str) -> ClientError | None:
        code = self.close_code
        assert code is not None
        if code == CLOSE_NORMAL or (code == CLOSE_GOING_AWAY and self.end_stats is not None):
            return None  # error events before a normal close did not end the session
        if last_error is not None:  # even if we were closing: it came first
            return error_for(str(last_error.get("code", "error")),
                             str(last_error.get("message", "")), code)
        if self._closing:
            return None  # our own close went wrong (timeout): the user had left
        return error_for(_CLOSE_CODES.get(code, "connection_closed"),
                         reason or "the connection closed without an error event", code)

    def _raise_error(self) -> None:
        assert self._error is not None
        self._error_raised = True
        raise self._error

    # -- reading --

    async def started(self) -> str:
        """Wait for ``session.begin``; its ``session_id``. Raises ClientError if the
        connection ends first. Does not consume events: ``events()`` still yields it.
        The server sends it as soon as the session is configured (URL or
        ``configure``), in either pace."""
        if self._begun is None:
            raise RuntimeError("not connected: use `async with`")
        await self._begun.wait()
        if self.session_id is None:
            if self._error is not None:
                self._raise_error()
            raise ClientError("connection_closed", "closed before session.begin",
                              self.close_code)
        return self.session_id

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Every JSON event, in order (``session.begin`` first, ``session.end`` last),
        ``error`` events included. Ends when the connection ends; raises ClientError
        then if it ended with an error (after yielding all that came before it).

        One consumer at a time: a second one while the first awaits an item gets
        RuntimeError. After a ``break``, calling ``events()`` again carries on where
        the first stopped (the new iterator supersedes the old one). A consumer
        counts as reading (so a full buffer waits for it) until it ends, is
        closed, or is superseded."""
        if self._events is None:
            raise RuntimeError("not connected: use `async with`")
        return self._drain(self._events)

    def audio(self) -> AsyncIterator[bytes]:
        """The redacted audio, in order, as the server sent it (concatenated, it
        aligns sample for sample with the input). Same ending, errors and rules
        as ``events()``. Raises RuntimeError with ``keep_audio=False``."""
        if self._audio is None:
            raise RuntimeError("not connected: use `async with`")
        if not self._audio.keep:
            raise RuntimeError("audio() with keep_audio=False")
        return self._drain(self._audio)

    async def _drain(self, buf: _Buffer[T]) -> AsyncIterator[T]:
        token = buf.attach()
        try:
            while (item := await buf.get(token)) is not None:
                yield item
        finally:
            buf.detach(token)
        if buf.overflowed and self._error is None:
            self._error_raised = True  # the session may be fine; only this kind was cut
            raise BufferOverflow(f"{buf.kind}_overflow",
                                 f"{buf.kind} filled {buf.limit} while not iterated; "
                                 "the rest was discarded")
        if buf.ended and self._error is not None:
            self._raise_error()


class Stream(_Connection):
    """One protocol-v1 session (``/v1/stream``): made by :func:`connect`."""

    def __init__(self, url: str, api_key: str | None, encoding: str, sample_rate: int,
                 channels: int, keep_audio: bool, audio_buffer_bytes: int,
                 event_buffer_size: int):
        super().__init__(url, api_key, keep_audio, audio_buffer_bytes, event_buffer_size)
        self.format = audio_mod.AudioFormat(cast(audio_mod.Encoding, encoding), sample_rate,
                                            channels)
        self._input_closed = False

    async def __aenter__(self) -> Stream:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None and self._input_closed and self._reader is not None:
            # The server is draining: let it finish, so that an error it ends with
            # is raised here if nobody read it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), END_WAIT_S)
        await self._exit(exc is None)

    async def send(self, audio: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Send audio in the session's encoding: bytes as they are, or an int16
        array (``(n,)`` mono or ``(n, channels)`` interleaved), encoded here (so it
        is also right for mulaw/alaw). Raises ClientError once the session ended
        with an error. In ``realtime`` pace do not send faster than real time
        (``too_fast``); in ``asap`` this waits while the server catches up."""
        if isinstance(audio, np.ndarray):
            audio = self._encode(audio)
        await self._send(audio if isinstance(audio, bytes) else bytes(audio))

    def _encode(self, samples: np.ndarray) -> bytes:
        # TypeError for a non-int16 array, AudioFormatError (a ValueError) for a
        # shape or format that does not match the session's.
        return audio_mod.encode(samples, self.format)

    async def flush(self) -> None:
        """Finalise what was said so far (``{"type": "flush"}``); input may go on."""
        await self._send(json.dumps({"type": "flush"}))

    async def keepalive(self) -> None:
        """Keep an idle session open (the server's idle timeout is 60 s)."""
        await self._send(json.dumps({"type": "keepalive"}))

    async def close_input(self) -> None:
        """End of input (``{"type": "close"}``): the server releases every sample,
        sends ``session.end`` and closes. Keep reading the iterators to get them."""
        await self._send(json.dumps({"type": "close"}))
        self._input_closed = True

    async def _send(self, message: bytes | str) -> None:
        if self._ws is None or self._reader is None:
            raise RuntimeError("not connected: use `async with`")
        if self._error is not None:
            self._raise_error()
        try:
            await self._ws.send(message)
        except ConnectionClosed:
            # The error event, if any, came before the close: let the reader get to it.
            await asyncio.wait({self._reader}, timeout=SEND_ERROR_WAIT_S)
            if self._error is not None:
                self._raise_error()
            raise ClientError("connection_closed", "the session has ended",
                              self.close_code) from None


class Listener(_Connection):
    """A listener on another session (``/v1/sessions/{id}/listen``): made by
    :func:`listen`. Receives only: ``events()``, ``audio()``."""

    async def __aenter__(self) -> Listener:
        await self.open()
        return self


def connect(url: str, api_key: str | None = None, encoding: str = "pcm_s16le",
            sample_rate: int = 16000, channels: int = 1, *,
            bridge: str | None = None, role: str | None = None,
            keep_audio: bool = True, audio_buffer_bytes: int = AUDIO_BUFFER_BYTES,
            event_buffer_size: int = EVENT_BUFFER_SIZE, **policy: Any) -> Stream:
    """A session on ``url`` (``ws(s)://HOST:PORT/v1/stream``); use ``async with``.

    ``policy``: any session setting of docs/protocol.md (``delay_ms``, ``pace``,
    ``entities``, ``channel_roles``, ``audio_redaction``, ``record``, ...), sent as
    query parameters and validated by the server (``bad_config``). Lists are
    comma-joined, booleans ``true``/``false``, None is left out.
    ``bridge``/``role``: join bridge ``bridge`` as ``agent`` or ``caller`` (passed to
    the server as query parameters; the server decides what they mean).
    ``api_key``: sent as ``Authorization: Bearer KEY``, never in the URL.
    ``keep_audio=False``: discard the redacted audio (events only).
    ``audio_buffer_bytes``/``event_buffer_size``: the buffers' bounds (module docstring).
    """
    params = {"encoding": encoding, "sample_rate": sample_rate, "channels": channels,
              **policy, "bridge": bridge, "role": role}
    return Stream(build_url(url, params), api_key, encoding, sample_rate, channels,
                  keep_audio, audio_buffer_bytes, event_buffer_size)


def listen(url: str, session_id: str, api_key: str | None = None, *,
           keep_audio: bool = True, audio_buffer_bytes: int = AUDIO_BUFFER_BYTES,
           event_buffer_size: int = EVENT_BUFFER_SIZE) -> Listener:
    """Listen to the running session ``session_id`` on the server at ``url`` (its
    ``/v1/stream`` URL or ``ws://HOST:PORT``); use ``async with``. Yields what that
    session's client receives from now on: redacted audio and events, starting with
    ``session.begin`` and ending with ``session.end``. ``unknown_session`` (no such
    running session, or not this key's) and ``too_many_listeners`` are raised as
    ClientError like any session error."""
    return Listener(listen_url(url, session_id), api_key, keep_audio, audio_buffer_bytes,
                    event_buffer_size)


async def stream_file(
    path: Path,
    url: str,
    params: dict[str, Any],
    pace: str = "realtime",
    api_key: str | None = None,
    frame_ms: int = 20,
) -> tuple[np.ndarray, int, list[dict[str, Any]]]:
    """Stream a WAV to a server: (output samples, rate, every JSON event received).

    ``params``: session settings (as query parameters); ``sample_rate``, ``channels``
    and ``pace`` come from the file and ``pace``. Frames of ``frame_ms``, in real
    time for ``realtime``. Raises ClientError if the session ends with an error.
    """
    samples, rate = audio_mod.read_wav(path)
    settings = {"encoding": "pcm_s16le", **params, "sample_rate": rate,
                "channels": samples.shape[1], "pace": pace}
    fmt = audio_mod.AudioFormat("pcm_s16le", rate, samples.shape[1])
    frame = max(1, rate * frame_ms // 1000)
    async with connect(url, api_key=api_key, **settings) as s:

        async def sender() -> None:
            t0 = time.monotonic()
            for i in range(0, samples.shape[0], frame):
                await s.send(audio_mod.encode(samples[i : i + frame], fmt))
                if pace == "realtime":
                    due = t0 + (i + frame) / rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
            await s.close_input()

        events, chunks = await _all_or_none(sender(), _collect(s.events()),
                                            _collect(s.audio()))
    out = audio_mod.decode(b"".join(chunks), fmt)
    return out, rate, events


async def _collect(it: AsyncIterator[T]) -> list[T]:
    return [x async for x in it]


async def _all_or_none(send: Awaitable[None], events: Awaitable[list[dict[str, Any]]],
                       audio: Awaitable[list[bytes]]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Run the sender and both readers; the first failure cancels the rest and is raised.

    The readers' error wins over the sender's: both see the same session error, and
    the readers see it after everything the server sent before it."""
    sender = asyncio.ensure_future(send)
    readers = (asyncio.ensure_future(events), asyncio.ensure_future(audio))
    pending: set[asyncio.Future[Any]] = {sender, *readers}
    try:
        while not all(r.done() for r in readers):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                exc = t.exception()
                # A session error seen by the sender reaches the readers too.
                if exc is not None and not (t is sender and isinstance(exc, ClientError)):
                    raise exc
        return readers[0].result(), readers[1].result()
    finally:
        tasks = (sender, *readers)
        for t in tasks:
            await _cancel_and_wait(t, CLOSE_TIMEOUT_S)


async def _cancel_and_wait(task: asyncio.Future[Any], timeout: float) -> None:
    """Cancel ``task`` and wait for it (at most ``timeout``); its outcome is not raised.
    A cancellation of the caller itself still propagates."""
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning
        return
    task.cancel()
    await asyncio.wait({task}, timeout=timeout)
    if task.done() and not task.cancelled():
        task.exception()
