"""HTTP + WebSocket server: one process, one port, many sessions.

Starlette routes under uvicorn; ``/v1/stream`` speaks protocol v1
(docs/protocol.md). Models load once in the lifespan and are shared; model
calls go through one bounded :class:`~streamserver.runtime.ModelPool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__
from ..audio import AudioFormatError
from ..config import ConfigError, ServerConfig, SessionConfig, hash_api_key
from ..core.session import AudioOut, Event
from ..engines.bundle import Engines
from ..metrics import Metrics
from ..protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    BadAudio,
    BadConfig,
    ConfigRequired,
    IdleTimeout,
    MessageTooBig,
    ProtocolError,
    TooManySessions,
    Unauthorized,
    dumps,
    parse_client_text,
)
from ..runtime import GIL_SWITCH_INTERVAL_S, ModelPool, SessionRunner, load_engines
from .demo import demo_routes
from .fanout import Relay, RelayHub
from .webrtc import WEBRTC_ROUTES, close_webrtc_sessions

log = logging.getLogger("streamserver.server")

# Query parameters that are not session settings.
_TRANSPORT_PARAMS = {"token"}


@dataclass
class ServerState:
    cfg: ServerConfig
    engines: Engines | None = None
    pool: ModelPool | None = None
    active: set[str] = field(default_factory=set)
    relays: RelayHub = field(default_factory=RelayHub)
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False
    shutting_down: bool = False


def create_app(cfg: ServerConfig, engines: Engines | None = None) -> Starlette:
    """The ASGI app. ``engines`` may be passed in (tests share one load)."""
    state = ServerState(cfg, engines)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.engines is None:
            state.engines = await asyncio.to_thread(load_engines, cfg.asr, cfg.workers)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        state.pool = ModelPool(state.engines, cfg.workers, metrics=state.metrics)
        state.metrics.track_active(lambda: len(state.active))
        state.metrics.track_asr_queue(lambda: state.pool.asr_waiting if state.pool else 0)
        state.ready = True
        log.info("ready", extra={"port": cfg.port, "workers": cfg.workers})
        try:
            yield
        finally:
            state.shutting_down = True
            await close_webrtc_sessions(app)
            state.pool.shutdown()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> JSONResponse:
        body = {"ready": state.ready, "sessions": len(state.active)}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    async def stream(ws: WebSocket) -> None:
        await StreamHandler(state, ws).run()

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.exposition(), media_type=state.metrics.content_type)

    async def listen(ws: WebSocket) -> None:
        await listen_to_session(state, ws, ws.path_params["session_id"])

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            WebSocketRoute("/v1/stream", stream),
            WebSocketRoute("/v1/sessions/{session_id}/listen", listen),
            *demo_routes(),
            *WEBRTC_ROUTES,
        ],
        lifespan=lifespan,
    )
    app.state.streamserver = state
    return app


def _authorized(cfg: ServerConfig, ws: WebSocket) -> bool:
    if not cfg.api_key_hashes:
        return True
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        offered = header[7:]
    else:
        offered = ws.query_params.get("token", "")
    # Hash, then a constant-time compare against every accepted hash (no early exit).
    digest = hash_api_key(offered).encode()
    ok = False
    for accepted in cfg.api_key_hashes:
        ok |= hmac.compare_digest(digest, accepted.encode())
    return ok


class StreamHandler:
    """One WebSocket connection: parse frames, feed the runner, send outputs."""

    def __init__(self, state: ServerState, ws: WebSocket) -> None:
        self.state = state
        self.ws = ws
        self.session_id = uuid.uuid4().hex
        self.runner: SessionRunner | None = None
        self.run_task: asyncio.Task[None] | None = None
        self.relay: Relay | None = None
        self.error_code: str | None = None

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
            await self._stop_runner()
            self.state.relays.close(self.session_id)
            self.state.active.discard(self.session_id)

    async def _serve(self) -> None:
        cfg = self.state.cfg
        if not _authorized(cfg, self.ws):
            raise Unauthorized("missing or invalid API key")
        if self.state.shutting_down or not self.state.ready:
            raise TooManySessions("server is not accepting sessions; try later")
        if len(self.state.active) >= cfg.max_sessions:
            raise TooManySessions("server is at capacity; try later")
        self.state.active.add(self.session_id)
        params = {k: v for k, v in self.ws.query_params.items() if k not in _TRANSPORT_PARAMS}
        if "encoding" in params and "sample_rate" in params:
            self._start(self._config(params))
        while True:
            if self.runner is not None and not self.runner.realtime:
                await self._wait_room()
            try:
                msg = await asyncio.wait_for(self.ws.receive(), cfg.idle_timeout_s)
            except TimeoutError:
                raise IdleTimeout("no message within the idle timeout") from None
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

    async def _wait_room(self) -> None:
        assert self.runner is not None and self.run_task is not None
        room = asyncio.ensure_future(self.runner.wait_for_room())
        await asyncio.wait({room, self.run_task}, return_when=asyncio.FIRST_COMPLETED)
        room.cancel()
        if self.run_task.done():
            self.run_task.result()  # re-raise a runner failure

    def _config(self, params: Mapping[str, object]) -> SessionConfig:
        try:
            return SessionConfig.from_params(params)
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None

    def _start(self, scfg: SessionConfig) -> None:
        state = self.state
        assert state.engines is not None and state.pool is not None
        session = state.engines.new_session(scfg, self.session_id)
        self.relay = state.relays.open(self.session_id)
        self.runner = SessionRunner(session, state.pool, state.cfg, self._send)
        state.metrics.sessions_started.labels("websocket").inc()
        self.run_task = asyncio.create_task(self.runner.run())
        log.info("session started", extra={"session": self.session_id, "pace": scfg.pace,
                                           "rate": scfg.sample_rate, "delay_ms": scfg.delay_ms})

    def _on_audio(self, data: bytes) -> None:
        if self.runner is None:
            raise ConfigRequired(
                "send the audio format (encoding, sample_rate) in the URL or a configure "
                "message before audio"
            )
        if len(data) > self.state.cfg.max_message_bytes:
            raise MessageTooBig("audio frame larger than max_message_bytes")
        if self.run_task is not None and self.run_task.done():
            self.run_task.result()
        try:
            self.runner.push_audio(data)
        except AudioFormatError as exc:
            raise BadAudio(str(exc)) from None

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
            self._start(self._config(merged))
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
        if self.relay is not None:
            self.relay.publish(out)  # redacted output only, never the input
        if isinstance(out, Event) and out.payload.get("type") == "redaction":
            self.state.metrics.redactions.labels(str(out.payload["entity"])).inc()
        if isinstance(out, AudioOut):
            await self.ws.send_bytes(out.data)
        else:
            await self.ws.send_text(dumps(out.payload))

    async def _stop_runner(self) -> None:
        if self.run_task is not None and not self.run_task.done():
            self.run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.run_task
        if self.run_task is not None and self.runner is not None:
            stats = self.runner.session.stats.as_dict()
            log.info("session ended", extra={"session": self.session_id, "stats": stats})
            self.state.metrics.session_ended("websocket", stats, self.error_code)
            self.runner = None

    async def _close_with_error(self, exc: ProtocolError) -> None:
        log.info("session error", extra={"session": self.session_id, "code": exc.code})
        self.error_code = exc.code
        if self.runner is None:  # refused before a session started
            self.state.metrics.session_errors.labels(exc.code).inc()
        await self._stop_runner()
        self.run_task = None
        with contextlib.suppress(Exception):
            await self.ws.send_text(dumps(exc.event()))
            await self.ws.close(exc.close_code)


async def listen_to_session(state: ServerState, ws: WebSocket, session_id: str) -> None:
    """``/v1/sessions/{id}/listen``: the session's redacted audio and events, live."""
    await ws.accept()
    listener = None
    relay = None
    try:
        if not _authorized(state.cfg, ws):
            raise Unauthorized("missing or invalid API key")
        relay = state.relays.get(session_id)
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


__all__ = ["CLOSE_GOING_AWAY", "ServerState", "create_app"]
