"""What every transport does around one session: one place, whatever the wire.

A transport (protocol v1, Twilio Media Streams, Deepgram's ``/v1/listen``,
Asterisk AudioSocket, a bridge) only parses its own frames and moves bytes.
:class:`SessionHost` does the rest the same way for all of them: admission,
validated config, the recording, the relay to listeners, the runner, metrics
and logs — so the same clip gives the same masks whichever way it came in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from ..audio import AudioFormatError
from ..config import ConfigError, SessionConfig
from ..core.session import AudioOut, Event
from ..protocol import BadAudio, BadConfig, MessageTooBig
from ..runtime import SessionRunner
from .fanout import Relay
from .recording import RecordingPlan, SessionRecording
from .state import ServerState

log = logging.getLogger("streamserver.server")

Deliver = Callable[[AudioOut | Event], Awaitable[None]]


class SessionHost:
    """One session's life on the server, for any transport.

    ``admit`` (a slot, or TooManySessions) → ``config`` → ``start`` → ``push_audio``
    … ``runner.finish()`` → ``await run_task`` → ``stop`` (always, in ``finally``).
    Outputs go to the recording and the listeners first, then to ``deliver``.
    """

    def __init__(self, state: ServerState, owner: str, transport: str,
                 session_id: str | None = None) -> None:
        self.state = state
        self.owner = owner
        self.transport = transport
        self.session_id = session_id or uuid.uuid4().hex
        self.runner: SessionRunner | None = None
        self.run_task: asyncio.Task[None] | None = None
        self.relay: Relay | None = None
        self.recording: SessionRecording | None = None
        self.error_code: str | None = None
        self.too_long = False  # max_session_s of audio accepted: read no more
        self._deliver: Deliver | None = None
        self._admitted = False

    async def admit(self) -> None:
        await self.state.claim(self.session_id, self.owner)
        self._admitted = True

    def config(self, params: Mapping[str, object],
               base: SessionConfig | None = None) -> SessionConfig:
        """Validated settings with the operator's floor; BadConfig names the rule."""
        try:
            scfg = self.state.cfg.apply_floor(SessionConfig.from_params(params, base))
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None
        allowed = self.state.cfg.allowed_encodings
        if scfg.encoding not in allowed:
            raise BadConfig(f"encoding {scfg.encoding} is not allowed on this server; "
                            f"allowed: {', '.join(allowed)}")
        return scfg

    def start(self, scfg: SessionConfig, base_url: str, deliver: Deliver) -> SessionRunner:
        state = self.state
        assert state.engines is not None and state.pool is not None
        plan = self._recording_plan(scfg)
        if plan is not None and state.archive is not None:  # session.begin echoes it
            scfg = replace(scfg, record=True, retention_s=plan.retention_s)
            self.recording = state.archive.open(self.session_id, self.owner, scfg, plan,
                                                base_url)
        session = state.engines.new_session(scfg, self.session_id)
        self.relay = state.relays.open(self.session_id, self.owner)
        self._deliver = deliver
        self.runner = SessionRunner(session, state.pool, state.cfg, self._publish)
        state.metrics.sessions_started.labels(self.transport).inc()
        self.run_task = asyncio.create_task(self.runner.run())
        log.info("session started", extra={
            "session": self.session_id, "transport": self.transport, "pace": scfg.pace,
            "rate": scfg.sample_rate, "delay_ms": scfg.delay_ms})
        return self.runner

    def _recording_plan(self, scfg: SessionConfig) -> RecordingPlan | None:
        if self.state.archive is None:
            return None
        try:
            return self.state.archive.plan(scfg, self.owner)
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None

    async def _publish(self, out: AudioOut | Event) -> None:
        # Stored before session.end, so a client that saw it can fetch at once.
        if self.recording is not None and (done := await self.recording.output(out)):
            await self._publish(Event(done))
        if self.relay is not None:
            self.relay.publish(out)  # redacted output only, never the input
        if isinstance(out, Event) and out.payload.get("type") == "redaction":
            self.state.metrics.redactions.labels(str(out.payload["entity"])).inc()
        assert self._deliver is not None
        await self._deliver(out)

    def push_audio(self, data: bytes, arrived: float | None = None) -> None:
        """Raw input in the session's encoding; raises the transport-neutral errors.
        ``arrived``: its arrival time, when it waited before (bridges)."""
        assert self.runner is not None
        if len(data) > self.state.cfg.max_message_bytes:
            raise MessageTooBig("audio frame larger than max_message_bytes")
        if self.run_task is not None and self.run_task.done():
            self.run_task.result()  # re-raise a runner failure
        try:
            self.runner.push_audio(data, arrived)
        except AudioFormatError as exc:
            raise BadAudio(str(exc)) from None
        # asap sends audio faster than the clock: its length counts against the limit too.
        if self.runner.session.stats.audio_in_ms >= 1000 * self.state.cfg.max_session_s:
            self.too_long = True

    async def stop(self) -> None:
        """End of the connection, clean or not: stop the runner if it still runs,
        close the recording of a session that ended early, count, free the slot.
        Idempotent."""
        if self.run_task is not None and not self.run_task.done():
            self.run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.run_task
        if self.recording is not None and self.runner is not None:  # ended early
            await self.recording.end(self.runner.session.stats.as_dict(), complete=False,
                                     error_code=self.error_code)
        if self.run_task is not None and self.runner is not None:
            stats = self.runner.session.stats.as_dict()
            log.info("session ended", extra={"session": self.session_id,
                                             "transport": self.transport, "stats": stats})
            self.state.metrics.session_ended(self.transport, stats, self.error_code)
            self.runner = None
        if self.relay is not None:
            self.state.relays.close(self.session_id)
            self.relay = None
        if self._admitted:
            self.state.leave(self.session_id)
            self._admitted = False

    def refused(self, code: str) -> None:
        """Count an error that ended the connection before a session started."""
        self.error_code = code
        if self.runner is None:
            self.state.metrics.session_errors.labels(code).inc()
