"""HTTP + WebSocket server: one process, one port, many sessions.

Starlette routes under uvicorn; ``/v1/stream`` speaks protocol v1
(docs/protocol.md). Models load once in the lifespan and are shared; model
calls go through one bounded :class:`~streamserver.runtime.ModelPool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__, memory
from ..audio import AudioFormat
from ..config import ConfigError, ServerConfig, SessionConfig
from ..core.session import AudioOut, Event
from ..engines.bundle import Engines
from ..protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    BadConfig,
    ConfigRequired,
    ConfigTimeout,
    IdleTimeout,
    MessageTooBig,
    ProtocolError,
    SessionTooLong,
    Unauthorized,
    dumps,
    parse_client_text,
)
from ..runtime import GIL_SWITCH_INTERVAL_S, ModelPool, SessionRunner, load_engines
from . import bridge
from .audiosocket import AUDIOSOCKET_ROUTES, AudioSocketServer
from .auth import ANONYMOUS, caller, metrics_allowed
from .demo import demo_routes
from .guard import BrowserGuard
from .host import SessionHost
from .recording import Archive, open_archive
from .sessions_api import SESSION_ROUTES
from .state import ServerState
from .webrtc import WEBRTC_ROUTES, close_webrtc_sessions, use_host_addresses

log = logging.getLogger("streamserver.server")

# Query parameters that are not session settings.
_TRANSPORT_PARAMS = {"token"}


def create_app(cfg: ServerConfig, engines: Engines | None = None,
               archive: Archive | None = None) -> Starlette:
    """The ASGI app. ``engines`` may be passed in (tests share one load), and so may
    the ``archive`` (the CLI opens it first, to report a bad store before binding)."""
    state = ServerState(cfg, engines, archive=archive)
    use_host_addresses(cfg.webrtc_host_addresses)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if memory.jemalloc_active():
            log.info("allocator", extra={"allocator": "jemalloc",
                                         "malloc_conf": os.environ.get("MALLOC_CONF", "")})
        else:
            if os.environ.get(memory.JEMALLOC_PRELOADED_ENV):
                # allocator=auto, and the dynamic loader ignored the preload.
                log.warning("jemalloc could not be preloaded; running on glibc")
            # Before the model threads exist: arenas are made per thread on first use.
            if tuned := memory.tune_allocator(cfg.malloc_arena_max,
                                              cfg.malloc_mmap_threshold_bytes):
                log.info("allocator", extra={"allocator": "glibc", **tuned})
        if state.engines is None:
            state.engines = await asyncio.to_thread(load_engines, cfg.asr, cfg.workers)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        state.pool = ModelPool(state.engines, cfg.workers, metrics=state.metrics,
                               max_pressure=cfg.admission_max_pressure)
        state.metrics.track_active(lambda: len(state.active))
        state.metrics.track_asr_queue(lambda: state.pool.asr_waiting if state.pool else 0)
        if state.archive is None:
            state.archive = await asyncio.to_thread(open_archive, cfg)
        state.archive.metrics = state.metrics
        state.archive.start()
        lag_watch = asyncio.create_task(state.metrics.watch_loop_lag(), name="loop-lag")
        trim_every = (memory.default_trim_interval_s() if cfg.memory_trim_interval_s is None
                      else cfg.memory_trim_interval_s)
        trimmer = (asyncio.create_task(
            memory.trim_forever(trim_every, state.metrics.memory_trimmed_now),
            name="memory-trim") if trim_every and memory.trim_supported() else None)
        if cfg.redis_url:  # a cluster: before any session, so every one is registered
            from ..cluster.node import ClusterNode

            state.cluster = ClusterNode(cfg, state.metrics.registry)
            state.relays.outbound = state.cluster
            await state.cluster.start()
        audiosocket = None
        if cfg.audiosocket_port is not None:  # listening before /readyz says ready
            audiosocket = AudioSocketServer(app, cfg.host, cfg.audiosocket_port)
            await audiosocket.start()
        state.ready = True
        log.info("ready", extra={"port": cfg.port, "workers": cfg.workers})
        try:
            yield
        finally:
            state.shutting_down = True
            lag_watch.cancel()
            if trimmer is not None:
                trimmer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await trimmer
            await close_webrtc_sessions(app, cfg.shutdown_grace_s)
            if audiosocket is not None:  # drained already (drain_sessions); else cut
                await audiosocket.close(cfg.shutdown_grace_s)
            if state.cluster is not None:  # the last ends and deregistrations, briefly
                await state.cluster.close()
            state.pool.shutdown()
            if state.archive is not None:
                await state.archive.close()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> JSONResponse:
        # 503 whenever a new session would be refused: a load balancer (Kubernetes'
        # readiness probe) then sends new calls elsewhere; running ones go on.
        reason = ("draining" if state.shutting_down else "starting" if not state.ready
                  else "full" if len(state.active) >= state.cfg.max_sessions
                  else "busy" if not state.has_headroom(time.monotonic()) else "")
        body: dict[str, Any] = {"ready": not reason}
        if reason:
            body["reason"] = reason
        if metrics_allowed(state.cfg, request):  # counts are the operator's to see
            body["sessions"] = len(state.active)
            if state.archive is not None and state.archive.store is not None:
                # Never a reason for 503: a metadata database down refuses recorded
                # sessions only (storage_unavailable); live redaction goes on.
                body["storage"] = state.archive.describe()
            body["max_sessions"] = state.cfg.max_sessions
            # What runs the sessions' I/O ("uvloop" or "asyncio"): event_loop=auto.
            body["event_loop"] = type(asyncio.get_running_loop()).__module__.split(".")[0]
            asr = state.engines.asr if state.engines is not None else None
            if asr is not None and hasattr(asr, "device"):  # what CTranslate2 runs on
                body["asr"] = {"device": asr.device, "compute_type": asr.compute_type}
            if state.cluster is not None:
                # Never a reason for 503: without Redis sessions still run here (only
                # listeners on other nodes and cluster-wide counts need it).
                body["cluster"] = state.cluster.status()
        return JSONResponse(body, status_code=503 if reason else 200)

    async def stream(ws: WebSocket) -> None:
        await StreamHandler(state, ws).run()

    async def deepgram_listen(ws: WebSocket) -> None:
        from .deepgram import ListenHandler  # it subclasses StreamHandler: import here

        await ListenHandler(state, ws).run()

    async def twilio(ws: WebSocket) -> None:
        from .twilio import TwilioHandler  # it subclasses StreamHandler: import here

        await TwilioHandler(state, ws).run()

    async def metrics(request: Request) -> Response:
        if not metrics_allowed(state.cfg, request):
            return JSONResponse({"type": "error", "code": "unauthorized",
                                 "message": "/metrics needs the metrics token"}, status_code=401)
        return Response(state.metrics.exposition(), media_type=state.metrics.content_type)

    async def listen(ws: WebSocket) -> None:
        await listen_to_session(state, ws, ws.path_params["session_id"])

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            WebSocketRoute("/v1/stream", stream),
            WebSocketRoute("/v1/listen", deepgram_listen),  # Deepgram live API
            WebSocketRoute("/v1/twilio", twilio),  # Twilio Media Streams
            WebSocketRoute("/v1/sessions/{session_id}/listen", listen),
            *SESSION_ROUTES,
            *bridge.BRIDGE_ROUTES,
            *AUDIOSOCKET_ROUTES,
            *demo_routes(),
            *WEBRTC_ROUTES,
        ],
        lifespan=lifespan,
        middleware=[Middleware(BrowserGuard, cfg=cfg)],  # Host, Origin, JSON POSTs
    )
    app.state.streamserver = state
    return app


# After the deadline, how long sessions get to send their close before the ASGI
# server's own shutdown closes what is left.
DRAIN_CLOSE_S = 2.0


async def drain_sessions(app: Starlette) -> None:
    """Graceful shutdown; call on SIGTERM *before* the ASGI server closes connections.

    From here on new sessions are refused (``server_busy``, 1013) and ``/readyz``
    says 503. Every running session stops reading input, releases everything it
    accepted, sends ``session.end`` and closes (WebSocket: 1001). Returns once all
    have ended, or ``shutdown_grace_s`` (+ :data:`DRAIN_CLOSE_S`) after the call:
    at the deadline a session still draining closes 1001 without ``session.end``.
    Safe to call more than once.
    """
    state: ServerState = app.state.streamserver
    draining = state.drain_signal()
    if draining.done():
        return
    state.shutting_down = True
    state.ready = False
    state.drain_deadline = time.monotonic() + state.cfg.shutdown_grace_s
    draining.set_result(None)
    log.info("draining %d session(s), grace %.1f s", len(state.active),
             state.cfg.shutdown_grace_s)
    webrtc = asyncio.create_task(close_webrtc_sessions(app, state.cfg.shutdown_grace_s))
    while state.active and time.monotonic() < state.drain_deadline + DRAIN_CLOSE_S:
        await asyncio.sleep(0.05)
    await webrtc
    log.info("drained; %d session(s) left", len(state.active))


class StreamHandler:
    """One protocol v1 WebSocket: parse frames, feed the session, send outputs."""

    def __init__(self, state: ServerState, ws: WebSocket) -> None:
        self.state = state
        self.ws = ws
        self.host = SessionHost(state, ANONYMOUS, "websocket")
        self.session_id = self.host.session_id
        # The session's end of life (max_session_s), on the wall clock.
        self.expires_at = time.monotonic() + state.cfg.max_session_s
        # No configuration by then: the slot goes back (config_timeout).
        self.configure_by = time.monotonic() + state.cfg.configure_timeout_s

    @property
    def runner(self) -> SessionRunner | None:
        return self.host.runner

    @property
    def run_task(self) -> asyncio.Task[None] | None:
        return self.host.run_task

    async def run(self) -> None:
        await self.ws.accept()
        try:
            await self._serve()
        except ProtocolError as exc:
            await self._close_with_error(exc)
        except WebSocketDisconnect:
            log.info("client disconnected", extra={"session": self.session_id})
        except Exception:
            log.exception("session failed", extra={"session": self.session_id})
            await self._close_with_error(
                ProtocolError("internal error", "internal_error", CLOSE_INTERNAL)
            )
        finally:
            await self.host.stop()

    async def _serve(self) -> None:
        cfg = self.state.cfg
        owner = caller(cfg, self.ws, self.state.tokens)
        if owner is None:
            raise Unauthorized("missing or invalid API key")
        self.host.owner = owner
        await self.host.admit()
        params = {k: v for k, v in self.ws.query_params.items() if k not in _TRANSPORT_PARAMS}
        if (request := bridge.bridge_request(params)) is not None:
            await self._serve_bridge_leg(request, params)
            return
        if "encoding" in params and "sample_rate" in params:
            self._start(self.host.config(params))
        while True:
            if self.runner is not None and not self.runner.realtime:
                await self._wait_room()
            msg = await self._receive()
            if msg is None:
                await (self._end_too_long() if self.host.too_long else self._end_for_shutdown())
                return
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            data = msg.get("bytes")
            if data is not None:
                self._on_audio(data)
                continue
            if self._on_text(msg.get("text") or ""):
                break
        # Client said close: let the delay line drain, then end cleanly.
        assert self.runner is not None and self.run_task is not None
        await self.run_task
        await self.ws.close(CLOSE_NORMAL)

    async def _serve_bridge_leg(self, request: tuple[str, str],
                                params: dict[str, str]) -> None:
        """This connection is one leg of a bridge (server/bridge.py): its audio goes
        to the other leg, redacted by its policy; it gets the other leg's audio and
        every event of the call."""
        if "encoding" not in params or "sample_rate" not in params:
            raise BadConfig("a bridge leg sends its audio format (encoding, sample_rate) "
                            "in the URL")
        try:
            fmt_cfg = SessionConfig.from_params(
                {k: params[k] for k in ("encoding", "sample_rate", "channels") if k in params})
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None
        fmt = AudioFormat(fmt_cfg.encoding, fmt_cfg.sample_rate,  # type: ignore[arg-type]
                          fmt_cfg.channels)
        scheme = "https" if self.ws.url.scheme == "wss" else "http"
        leg = bridge.join(self.state, self.host.owner, request, params, fmt, _WsLeg(self.ws),
                          f"{scheme}://{self.ws.url.netloc}")
        self.configure_by = self.expires_at  # configured: the URL said it all
        try:
            await self.ws.send_text(dumps({"type": "bridge.joined", "bridge": request[0],
                                           "role": request[1],
                                           "waiting": leg.bridge.host is None}))
            while not leg.done.done():
                receive = asyncio.ensure_future(self._receive())
                waiters: set[asyncio.Future[Any]] = {receive, leg.done}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if not receive.done():
                    receive.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await receive
                    break
                msg = receive.result()
                if msg is None:  # draining or too long: end the call as a hang-up would
                    leg.hangup()
                    break
                if msg["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(msg.get("code", 1000))
                data = msg.get("bytes")
                if data is not None:
                    if len(data) > self.state.cfg.max_message_bytes:
                        raise MessageTooBig("audio frame larger than max_message_bytes")
                    leg.push(data)
                    continue
                kind = parse_client_text(msg.get("text") or "").type
                if kind == "close":
                    leg.end_input()
                elif kind == "configure":
                    raise BadConfig("a bridge leg is configured in its URL")
            left = max(0.0, self.state.drain_deadline - time.monotonic()) \
                if self.state.shutting_down else None
            await asyncio.wait({leg.done}, timeout=left)
            error = leg.done.result() if leg.done.done() else None
        finally:
            leg.hangup()
        if error is not None:
            raise error
        await self.ws.close(CLOSE_GOING_AWAY if self.state.shutting_down else CLOSE_NORMAL)

    async def _receive(self) -> Message | None:
        """The client's next message; None once the server drains or the session
        reached max_session_s (``too_long``): read no more then."""
        draining = self.state.drain_signal()
        left = self.expires_at - time.monotonic()
        self.host.too_long |= left <= 0
        if draining.done() or self.host.too_long:
            return None
        # Which limit ends the wait is decided here, not by re-reading the clock
        # after it: uvloop's timers have millisecond resolution and can wake a
        # hair before the deadline they were set for.
        timeout, reason = self.state.cfg.idle_timeout_s, "idle"
        if left <= timeout:
            timeout, reason = left, "too_long"
        if self.runner is None:
            self._check_configure_deadline()
            configure_left = self.configure_by - time.monotonic()
            if configure_left <= timeout:
                timeout, reason = configure_left, "configure"
        receive = asyncio.ensure_future(self.ws.receive())
        waiters: set[asyncio.Future[Any]] = {receive, draining}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receive.cancel()  # no-op once it has a message
        if receive.done() and not receive.cancelled():
            return receive.result()  # arrived before the drain: accepted
        if draining.done():
            return None
        if reason == "too_long":
            self.host.too_long = True
            return None
        if reason == "configure":
            raise self._config_timeout()
        raise IdleTimeout("no message within the idle timeout")

    def _check_configure_deadline(self) -> None:
        if time.monotonic() >= self.configure_by:
            raise self._config_timeout()

    def _config_timeout(self) -> ConfigTimeout:
        return ConfigTimeout(f"no configuration within "
                             f"{self.state.cfg.configure_timeout_s:g} s")

    async def _end_for_shutdown(self) -> None:
        """Server draining: end the input as a client ``close`` would, release all
        accepted audio and ``session.end``, then close 1001. At the drain deadline
        the runner is stopped and the socket closed 1001 without ``session.end``."""
        if self.runner is not None and self.run_task is not None:
            self.runner.finish()
            left = self.state.drain_deadline - time.monotonic()
            await asyncio.wait({self.run_task}, timeout=max(0.0, left))
            if self.run_task.done():
                self.run_task.result()  # re-raise a runner failure
            else:
                log.warning("drain deadline passed", extra={"session": self.session_id})
                await self.host.stop()
        await self.ws.close(CLOSE_GOING_AWAY, "server shutting down")

    async def _end_too_long(self) -> None:
        """max_session_s reached: say so, then end as a client ``close`` would
        (every accepted sample released, ``session.end``), then close 1008."""
        exc = SessionTooLong(f"the session reached the server's limit of "
                             f"{self.state.cfg.max_session_s:g} s; input closed")
        log.info("session too long", extra={"session": self.session_id, "code": exc.code})
        self.host.error_code = exc.code
        if self.runner is None or self.run_task is None:
            raise exc
        self.runner.fail(exc)  # the error event, in order with the output
        self.runner.finish()
        await self.run_task
        await self.ws.close(exc.close_code, "max_duration")

    async def _wait_room(self) -> None:
        assert self.runner is not None and self.run_task is not None
        room = asyncio.ensure_future(self.runner.wait_for_room())
        await asyncio.wait({room, self.run_task, self.state.drain_signal()},
                           return_when=asyncio.FIRST_COMPLETED)
        room.cancel()
        if self.run_task.done():
            self.run_task.result()  # re-raise a runner failure

    def _start(self, scfg: SessionConfig) -> None:
        scheme = "https" if self.ws.url.scheme == "wss" else "http"
        self.host.start(scfg, f"{scheme}://{self.ws.url.netloc}", self._send)

    def _on_audio(self, data: bytes) -> None:
        if self.runner is None:
            raise ConfigRequired(
                "send the audio format (encoding, sample_rate) in the URL or a configure "
                "message before audio"
            )
        self.host.push_audio(data)

    def _on_text(self, text: str) -> bool:
        """Handle a JSON message; True when the client closed its input."""
        msg = parse_client_text(text)
        if msg.type == "configure":
            if self.runner is not None:
                raise BadConfig("configure must come before the first audio frame")
            base = {k: v for k, v in self.ws.query_params.items() if k not in _TRANSPORT_PARAMS}
            merged = {**base, **msg.fields}
            if "encoding" not in merged or "sample_rate" not in merged:
                raise BadConfig("configure needs encoding and sample_rate")
            self._start(self.host.config(merged))
        elif msg.type == "flush":
            if self.runner is not None:
                self.runner.flush()
        elif msg.type == "close":
            if self.runner is None:
                raise ConfigRequired("close before the session was configured")
            self.runner.finish()
            return True
        return False  # keepalive: the receive itself reset the idle timer

    async def _send(self, out: AudioOut | Event) -> None:
        if isinstance(out, AudioOut):
            await self.ws.send_bytes(out.data)
        else:
            await self.ws.send_text(dumps(out.payload))

    async def _close_with_error(self, exc: ProtocolError) -> None:
        log.info("session error", extra={"session": self.session_id, "code": exc.code})
        self.host.refused(exc.code)
        await self.host.stop()
        with contextlib.suppress(Exception):
            await self.ws.send_text(dumps(exc.event()))
            await self.ws.close(exc.close_code)


class _WsLeg:
    """A protocol v1 connection as a bridge leg's output."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def play(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def event(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(dumps(payload))

    async def end(self, error: ProtocolError | None) -> None:
        pass  # the handler closes the socket once the leg is done


async def listen_to_session(state: ServerState, ws: WebSocket, session_id: str) -> None:
    """``/v1/sessions/{id}/listen``: the session's redacted audio and events, live."""
    await ws.accept()
    listener = None
    relay = None
    try:
        who = caller(state.cfg, ws, state.tokens)
        if who is None:
            raise Unauthorized("missing or invalid API key")
        # The owner's key only; a session on another node through the cluster.
        relay = await state.find_relay(session_id, who)
        listener = relay.subscribe()
        log.info("listener joined", extra={"session": session_id})
        state.metrics.listeners.inc()
        while (out := await listener.next()) is not None:
            if isinstance(out, AudioOut):
                await ws.send_bytes(out.data)
            else:
                await ws.send_text(dumps(out.payload))
        await ws.close(CLOSE_NORMAL)
    except ProtocolError as exc:
        log.info("listener error", extra={"session": session_id, "code": exc.code})
        with contextlib.suppress(Exception):
            await ws.send_text(dumps(exc.event()))
            await ws.close(exc.close_code)
    except WebSocketDisconnect:
        pass
    except Exception:  # the listener's socket broke mid-send: only this listener ends
        log.exception("listener failed", extra={"session": session_id})
    finally:
        if relay is not None and listener is not None:
            relay.unsubscribe(listener)
            state.metrics.listeners.dec()


__all__ = ["CLOSE_GOING_AWAY", "ServerState", "create_app", "drain_sessions"]
