"""Deepgram's live API (``/v1/listen``) over the same session core.

Existing Deepgram live clients — the SDKs, LiveKit Agents, pipecat — get our
masked transcripts unchanged: point their Deepgram URL at this server. Two parts:

* :func:`translate_params` and :class:`ResultsMapper` are pure (no I/O): query
  parameters → our session settings, and our protocol v1 events → Deepgram's
  ``Results`` / ``SpeechStarted`` / ``UtteranceEnd`` / ``Metadata`` messages.
* :class:`ListenHandler` is the socket: protocol v1's
  :class:`~streamserver.server.app.StreamHandler` (same admission, idle timeout,
  ``max_session_s``, drain and backpressure, through
  :class:`~streamserver.server.host.SessionHost`) with Deepgram's auth, messages
  and errors. Redacted audio is not part of Deepgram's protocol and is not sent
  here: ``/v1/sessions/{request_id}/listen`` or the recording has it.

docs/deepgram.md lists what is mapped and what differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__
from ..config import DEFAULT_ENTITIES, ConfigError, SessionConfig, parse_entities
from ..core.pii import entities as ent
from ..core.session import AudioOut, Event
from ..protocol import (
    CLOSE_BAD_REQUEST,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    BadConfig,
    ConfigRequired,
    ProtocolError,
    Unauthorized,
    parse_client_text,
)
from .app import StreamHandler
from .auth import ANONYMOUS, caller, key_owner
from .host import SessionHost
from .state import ServerState

log = logging.getLogger("streamserver.server")

TRANSPORT = "deepgram"
# A final transcript is held this long at most, to learn whether more words of its
# utterance follow (a partial in the same batch) before speech_final is decided.
# Normally the next output decides at once; this only bounds the wait.
FINAL_HOLD_S = 0.1
# After speech.ended, how long its last pass may take before the end is sent
# without it (an empty final Results with speech_final; that pass added no words).
UTTERANCE_END_WAIT_S = 1.5

# Deepgram encoding names → ours. Ours are accepted as well.
ENCODINGS = {"linear16": "pcm_s16le", "pcm_s16le": "pcm_s16le", "mulaw": "mulaw",
             "alaw": "alaw"}
# Deepgram's other encodings: named in the refusal (anything else is not echoed).
UNSUPPORTED_ENCODINGS = ("linear32", "flac", "amr-nb", "amr-wb", "opus", "ogg-opus",
                         "speex", "g729", "webm")
# Deepgram parameters that do not change what is redacted: accepted, ignored.
IGNORED_PARAMS = frozenset({
    "model", "language", "language_hint", "detect_language", "punctuate", "smart_format",
    "diarize", "diarize_model", "diarize_version", "tag", "keywords", "keyterm", "numerals",
    "profanity_filter", "search", "replace", "version", "tier", "alternatives", "callback",
    "callback_method", "dictation", "filler_words", "measurements", "mip_opt_out", "extra",
    "no_delay", "detect_entities", "endpointing",
})
# Parameters that are not session settings (ours).
_TRANSPORT_PARAMS = {"token"}

# Deepgram's ``redact`` values → our entities (other values: our names and aliases).
NUMBER_ENTITIES: tuple[str, ...] = (
    ent.PHONE_NUMBER, ent.CREDIT_CARD, ent.CREDIT_CARD_EXPIRATION, ent.CREDIT_CARD_CVV,
    ent.US_SSN, ent.ACCOUNT_NUMBER, ent.BANKING_INFORMATION, ent.DRIVERS_LICENSE,
    ent.PASSPORT_NUMBER, ent.TAX_ID, ent.HEALTHCARE_NUMBER, ent.IP_ADDRESS, ent.ZIP_CODE,
    ent.PIN, ent.VEHICLE_ID, ent.NUMBER_SEQUENCE, ent.DTMF,
)
REDACT_GROUPS: dict[str, tuple[str, ...]] = {
    "pci": (ent.CREDIT_CARD, ent.CREDIT_CARD_EXPIRATION, ent.CREDIT_CARD_CVV, ent.DTMF),
    "ssn": (ent.US_SSN,),
    "numbers": NUMBER_ENTITIES,
    "pii": DEFAULT_ENTITIES,
    "true": DEFAULT_ENTITIES,
    "false": (),  # the server always redacts: this asks for nothing more
}
# With ``multichannel=true`` and two channels, unless ``channel_roles`` says otherwise.
DEFAULT_CHANNEL_ROLES = "caller,agent"

MODEL_INFO = {"name": "streamserver-redact", "version": __version__, "arch": "whisper"}
MODEL_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "streamserver-redact/" + __version__))

CLIENT_MESSAGE_TYPES = ("KeepAlive", "Finalize", "CloseStream")


class UnsupportedEncoding(ProtocolError):
    """An encoding Deepgram takes and we do not (compressed or container audio)."""

    code = "unsupported_encoding"
    close_code = CLOSE_BAD_REQUEST


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """The Deepgram options that shape the messages (not the redaction)."""

    interim_results: bool = False
    vad_events: bool = False
    utterance_end_ms: int | None = None


def translate_params(items: Iterable[tuple[str, str]]) -> tuple[dict[str, Any], ListenOptions]:
    """Deepgram query parameters → (our session settings, message options).

    ``items`` keeps repeated keys (``redact=pci&redact=ssn``). Our own session
    settings pass through to :meth:`SessionConfig.from_params` (which rejects
    unknown names). Raises :class:`UnsupportedEncoding`, :class:`ConfigRequired`
    or :class:`BadConfig`; messages never echo what the client sent.
    """
    params: dict[str, Any] = {}
    redact: list[str] = []
    flags: dict[str, str] = {}
    for name, value in items:
        if name == "redact":
            redact.append(value)
        elif name in ("interim_results", "vad_events", "utterance_end_ms", "multichannel"):
            flags[name] = value
        elif name in IGNORED_PARAMS or name in _TRANSPORT_PARAMS:
            continue
        else:
            params[name] = value  # ours; the last one wins, like a query parser
    if "encoding" not in params or "sample_rate" not in params:
        raise ConfigRequired("encoding and sample_rate are required: only raw audio "
                             "(linear16, mulaw, alaw) is taken, containers are not detected")
    encoding = str(params["encoding"]).strip().lower()
    if encoding not in ENCODINGS:
        named = f"encoding {encoding}" if encoding in UNSUPPORTED_ENCODINGS else "this encoding"
        raise UnsupportedEncoding(f"{named} is not supported; use linear16, mulaw or alaw")
    params["encoding"] = ENCODINGS[encoding]
    if _flag(flags, "multichannel") and "channel_roles" not in params:
        with contextlib.suppress(ValueError):
            if int(params.get("channels", 1)) == 2:
                params["channel_roles"] = DEFAULT_CHANNEL_ROLES
    wanted = _redact_entities(redact)
    if wanted:
        try:
            own = list(parse_entities(params["entities"])) if "entities" in params else []
        except ConfigError as exc:
            raise BadConfig(str(exc)) from None
        params["entities"] = list(dict.fromkeys([*own, *wanted]))
    end_ms = flags.get("utterance_end_ms")
    utterance_end: int | None = None
    if end_ms is not None:
        try:
            utterance_end = int(end_ms)
        except ValueError:
            raise BadConfig("invalid value for utterance_end_ms") from None
        if utterance_end < 0:
            raise BadConfig("invalid value for utterance_end_ms")
    options = ListenOptions(interim_results=_flag(flags, "interim_results"),
                            vad_events=_flag(flags, "vad_events"),
                            utterance_end_ms=utterance_end)
    return params, options


def _flag(flags: dict[str, str], name: str) -> bool:
    raw = flags.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise BadConfig(f"invalid value for {name}")


def _redact_entities(values: list[str]) -> list[str]:
    out: list[str] = []
    for raw in values:
        for value in raw.split(","):
            key = value.strip().lower()
            if not key:
                continue
            if key in REDACT_GROUPS:
                out.extend(REDACT_GROUPS[key])
                continue
            try:
                out.extend(parse_entities(key))  # our names and aliases (name, phone_number…)
            except ConfigError:
                raise BadConfig("unknown redact value; use pci, ssn, numbers, pii, true or "
                                "entity names (docs/deepgram.md)") from None
    return list(dict.fromkeys(out))


def plain_word(text: str) -> str:
    """Deepgram's ``word``: lower case, no surrounding punctuation (masks kept)."""
    return text.strip(".,!?;:\"'()…").lower() or text


@dataclass(slots=True)
class _Channel:
    in_speech: bool = False
    pending_words: bool = False  # a partial since the last complete final
    words_in_utterance: bool = False  # final words sent since the last utterance end
    last_word_end: float = 0.0
    # speech.ended seen, the utterance's end not sent yet: (its end time, its number).
    ends: deque[tuple[float, int]] = field(default_factory=deque)
    ends_seen: int = 0
    # Finalize asked: finals held after this sequence number are its result.
    finalize_after: int | None = None


@dataclass(slots=True)
class ResultsMapper:
    """Our events → Deepgram messages. Pure (no clock, no I/O): feed every output
    in order, send what it returns, and run what :meth:`take_timers` asks for.

    Only our final events become ``is_final`` Results, so a retracted word never
    is one. ``speech_final`` marks the final Results that completes an utterance
    the VAD ended (``speech.ended``): a ``transcript.final`` is *held* until the
    next output says whether more words of its batch follow (a
    ``transcript.partial`` right after it). If the utterance's last pass adds no
    words, its end is sent as an empty final Results with ``speech_final``
    (Deepgram does the same): once words of a later utterance are final, at the
    end of the session, or (``realtime`` only: in ``asap`` the VAD runs far ahead
    of the ASR) :data:`UTTERANCE_END_WAIT_S` after ``speech.ended``.
    """

    request_id: str
    options: ListenOptions
    n_channels: int  # Results channels: the audio's with channel_roles, else 1
    audio_channels: int
    realtime: bool = True
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z"))
    held: tuple[int, dict[str, Any]] | None = None
    held_seq: int = 0
    recording_url: str | None = None
    # (seconds, "held" | "utterance", channel, sequence): wake-ups the caller runs.
    _timers: list[tuple[float, str, int, int]] = field(default_factory=list)
    _channels: list[_Channel] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._channels = [_Channel() for _ in range(self.n_channels)]

    def _ch(self, payload: dict[str, Any]) -> int:
        ch = payload.get("channel", 0)
        return ch if isinstance(ch, int) and 0 <= ch < self.n_channels else 0

    def take_timers(self) -> list[tuple[float, str, int, int]]:
        """Wake-ups to schedule: after ``seconds``, call :meth:`timer` with the rest."""
        out, self._timers = self._timers, []
        return out

    def timer(self, kind: str, ch: int, seq: int) -> list[dict[str, Any]]:
        """A wake-up from :meth:`take_timers` is due; stale ones return nothing."""
        if kind == "held":
            return self.release_held() if self.held is not None and self.held_seq == seq else []
        if kind == "finalize":
            state = self._channels[ch]
            if state.finalize_after is None or state.finalize_after != seq:
                return []
            state.finalize_after = None
            return [self._empty_final(ch, from_finalize=True)]
        out: list[dict[str, Any]] = []
        ends = self._channels[ch].ends
        while ends and ends[0][1] <= seq:
            out += self._end_utterance(ch)
        return out

    # -- input -------------------------------------------------------------------
    def audio(self) -> list[dict[str, Any]]:
        """Redacted audio went by (not sent): the batch that had a final is over."""
        return self.release_held()

    def event(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        kind = payload.get("type")
        out: list[dict[str, Any]] = []
        if self.held is not None and kind != "redaction":
            more = kind == "transcript.partial" and self._ch(payload) == self.held[0]
            out += self.release_held(complete=not more)
        ch = self._ch(payload)
        state = self._channels[ch]
        if kind == "speech.started":
            state.in_speech = True
            if self.options.vad_events:
                out.append({"type": "SpeechStarted", "channel": [ch, self.n_channels],
                            "timestamp": payload["start"]})
        elif kind == "speech.ended":
            state.in_speech = False
            state.ends_seen += 1
            state.ends.append((float(payload["end"]), state.ends_seen))
            if self.realtime:
                self._timers.append((UTTERANCE_END_WAIT_S, "utterance", ch, state.ends_seen))
        elif kind == "transcript.partial":
            state.pending_words = True
            if self.options.interim_results:
                out.append(self._results(ch, payload, is_final=False))
        elif kind == "transcript.final":
            self.held = (ch, payload)
            self.held_seq += 1
            self._timers.append((FINAL_HOLD_S, "held", ch, self.held_seq))
        elif kind == "error":
            out.append(error_message(str(payload["code"]), str(payload["message"])))
        elif kind == "recording" and payload.get("status") == "ready":
            self.recording_url = str(payload.get("redacted_audio_url") or "") or None
        elif kind == "session.end":
            out += self._end(payload.get("stats") or {})
        # session.begin, redaction: nothing in Deepgram's protocol
        return out

    def finalize(self) -> list[dict[str, Any]]:
        """The client sent ``Finalize``: the next complete final Results says
        ``from_finalize``. ``realtime``: with nothing pending, an empty one says it
        at once, and one after :data:`UTTERANCE_END_WAIT_S` if the final pass
        found no words. (``asap``: the outputs lag the input, so it waits for the
        next complete final, or the end of the session.)"""
        pending = not self.realtime
        for ch, state in enumerate(self._channels):
            if pending or state.pending_words or state.in_speech or state.ends:
                state.finalize_after = self.held_seq  # a final held now came before
                pending = True
                if self.realtime:
                    self._timers.append((UTTERANCE_END_WAIT_S, "finalize", ch, self.held_seq))
        return [] if pending else [self._empty_final(0, from_finalize=True)]

    def release_held(self, complete: bool = True) -> list[dict[str, Any]]:
        """Send the held final; ``complete``: no more words of its batch follow."""
        if self.held is None:
            return []
        ch, payload = self.held
        self.held = None
        state = self._channels[ch]
        out: list[dict[str, Any]] = []
        start = float(payload.get("start", 0.0))
        while state.ends and start >= state.ends[0][0]:
            out += self._end_utterance(ch)  # a later utterance: the ended one had no more
        from_finalize = (complete and state.finalize_after is not None
                         and self.held_seq > state.finalize_after)
        speech_final = complete and bool(state.ends)
        if complete:
            state.pending_words = False
        if from_finalize:
            state.finalize_after = None
        words = payload.get("words") or []
        if words:
            state.words_in_utterance = True
            state.last_word_end = float(words[-1]["end"])
        out.append(self._results(ch, payload, is_final=True, speech_final=speech_final,
                                 from_finalize=from_finalize))
        if speech_final:
            out += self._utterance_end(ch)
        return out

    # -- messages ----------------------------------------------------------------
    def _results(self, ch: int, payload: dict[str, Any], is_final: bool,
                 speech_final: bool = False, from_finalize: bool = False) -> dict[str, Any]:
        words = _deepgram_words(payload.get("words") or []) if is_final else []
        confidence = (round(sum(w["confidence"] for w in words) / len(words), 3)
                      if words else 0.0)
        start = float(payload.get("start", 0.0))
        return {
            "type": "Results", "channel_index": [ch, self.n_channels],
            "duration": round(float(payload.get("end", start)) - start, 3), "start": start,
            "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": str(payload.get("text", "")),
                                          "confidence": confidence, "words": words}]},
            "metadata": self._metadata(),
        }

    def _empty_final(self, ch: int, at: float = 0.0, speech_final: bool = False,
                     from_finalize: bool = False) -> dict[str, Any]:
        return self._results(ch, {"text": "", "start": at, "end": at, "words": []},
                             is_final=True, speech_final=speech_final,
                             from_finalize=from_finalize)

    def _metadata(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "model_info": MODEL_INFO,
                "model_uuid": MODEL_UUID}

    def _end_utterance(self, ch: int) -> list[dict[str, Any]]:
        """The first ended utterance's last pass added no words: say it ended, empty."""
        state = self._channels[ch]
        end = state.ends[0][0]
        if not (state.words_in_utterance or state.pending_words):
            state.ends.popleft()  # nothing was said: Deepgram sends no end either
            return []
        state.pending_words = False
        return [self._empty_final(ch, end, speech_final=True), *self._utterance_end(ch)]

    def _utterance_end(self, ch: int) -> list[dict[str, Any]]:
        state = self._channels[ch]
        state.ends.popleft()
        if not state.words_in_utterance:
            return []
        state.words_in_utterance = False
        if self.options.utterance_end_ms is None:
            return []
        return [{"type": "UtteranceEnd", "channel": [ch, self.n_channels],
                 "last_word_end": state.last_word_end}]

    def _end(self, stats: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for ch, state in enumerate(self._channels):
            while state.ends:
                out += self._end_utterance(ch)
            if state.finalize_after is not None:  # the flush found no words
                state.finalize_after = None
                out.append(self._empty_final(ch, from_finalize=True))
        meta: dict[str, Any] = {
            "type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
            "sha256": "", "created": self.created,
            "duration": round(float(stats.get("audio_in_ms", 0.0)) / 1000, 3),
            "channels": self.audio_channels, "models": [MODEL_UUID],
            "model_info": {MODEL_UUID: MODEL_INFO},
        }
        if self.recording_url:
            meta["redacted_audio_url"] = self.recording_url
        out.append(meta)
        return out


def _deepgram_words(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our final words → Deepgram's; a run of ``[ENTITY]`` words is one word, as
    in the transcript text."""
    out: list[dict[str, Any]] = []
    prev_entity: str | None = None
    for w in words:
        text = str(w["text"])
        entity = w.get("entity")
        conf = float(w.get("confidence", 0.0))
        if entity and entity == prev_entity and text.startswith("[") and out:
            out[-1]["end"] = w["end"]
            out[-1]["confidence"] = min(out[-1]["confidence"], conf)
            continue
        prev_entity = entity
        out.append({"word": plain_word(text), "start": w["start"], "end": w["end"],
                    "confidence": conf, "punctuated_word": text})
    return out


def error_message(code: str, message: str) -> dict[str, Any]:
    """Deepgram's ``Error`` shape; ``variant`` and ``code`` carry our error code.
    Never the client's own data (Deepgram echoes a bad message in ``message``)."""
    return {"type": "Error", "variant": code, "code": code, "description": message,
            "message": message}


def _dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()


def offered_key(ws: WebSocket) -> tuple[str | None, str | None]:
    """(the key from ``Authorization: Token KEY`` or ``Sec-WebSocket-Protocol:
    token, KEY``, the subprotocol to accept). (None, …) leaves the check to
    :func:`~streamserver.server.auth.caller` (``Bearer``, ``?token=``)."""
    protocols = [p.strip() for p in ws.scope.get("subprotocols") or []]
    subprotocol = "token" if "token" in protocols else None
    header = ws.headers.get("authorization", "")
    if header[:6].lower() == "token ":
        return header[6:].strip(), subprotocol
    if subprotocol and len(protocols) >= 2:
        keys = [p for p in protocols if p != "token"]
        if keys:
            return keys[0], subprotocol
    return None, subprotocol


class ListenHandler(StreamHandler):
    """One ``/v1/listen`` WebSocket: Deepgram's wire, protocol v1's session life.

    Inherited from :class:`StreamHandler` unchanged: the receive loop's idle
    timeout and ``max_session_s``, the drain on shutdown (close 1001 after
    Metadata), asap backpressure and the ``max_duration`` ending.
    """

    def __init__(self, state: ServerState, ws: WebSocket) -> None:
        super().__init__(state, ws)
        self.host = SessionHost(state, ANONYMOUS, TRANSPORT)
        self.session_id = self.host.session_id
        self.mapper: ResultsMapper | None = None
        self._send_lock = asyncio.Lock()  # the runner's sender and the wake-ups
        self._timers: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        key, subprotocol = offered_key(self.ws)
        # Deepgram's own header; the id is also every Results' metadata.request_id.
        await self.ws.accept(subprotocol=subprotocol,
                             headers=[(b"dg-request-id", self.session_id.encode())])
        try:
            await self._serve_listen(key)
        except ProtocolError as exc:
            await self._close_with_error(exc)
        except WebSocketDisconnect:
            log.info("client disconnected", extra={"session": self.session_id})
        except Exception:
            log.exception("session failed", extra={"session": self.session_id})
            await self._close_with_error(
                ProtocolError("internal error", "internal_error", CLOSE_INTERNAL))
        finally:
            for task in list(self._timers):
                task.cancel()
            await self.host.stop()

    async def _serve_listen(self, key: str | None) -> None:
        cfg = self.state.cfg
        if not cfg.api_key_hashes:
            owner: str | None = ANONYMOUS
        elif key is not None:
            owner = key_owner(cfg, key)
        else:
            owner = caller(cfg, self.ws, self.state.tokens)
        if owner is None:
            raise Unauthorized("missing or invalid API key")
        self.host.owner = owner
        await self.host.admit()
        params, options = translate_params(self.ws.query_params.multi_items())
        params.setdefault("pace", "realtime")
        scfg: SessionConfig = self.host.config(params)
        self.mapper = ResultsMapper(self.session_id, options,
                                    n_channels=scfg.channels if scfg.channel_roles else 1,
                                    audio_channels=scfg.channels,
                                    realtime=scfg.pace == "realtime")
        self._start(scfg)
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
                if not data:  # Deepgram's older way to say CloseStream
                    break
                self.host.push_audio(data)
                continue
            if await self._on_listen_text(msg.get("text") or ""):
                break
        assert self.runner is not None and self.run_task is not None
        self.runner.finish()
        await self.run_task  # every Results, then Metadata
        await self.ws.close(CLOSE_NORMAL)

    async def _on_listen_text(self, text: str) -> bool:
        """A control message; True on CloseStream."""
        kind = parse_client_text(text, CLIENT_MESSAGE_TYPES).type
        assert self.runner is not None and self.mapper is not None
        if kind == "CloseStream":
            return True
        if kind == "Finalize":
            self.runner.flush()
            async with self._send_lock:
                await self._send_messages(self.mapper.finalize())
        return False  # KeepAlive: the receive itself reset the idle timer

    async def _send(self, out: AudioOut | Event) -> None:
        # Redacted audio is not in Deepgram's protocol: it only tells the mapper
        # that a batch of outputs ended. Listeners and the recording still get it.
        assert self.mapper is not None
        async with self._send_lock:
            msgs = (self.mapper.audio() if isinstance(out, AudioOut)
                    else self.mapper.event(out.payload))
            await self._send_messages(msgs)

    async def _send_messages(self, msgs: list[dict[str, Any]]) -> None:
        """Send (the caller holds ``_send_lock``), then schedule the mapper's wake-ups."""
        assert self.mapper is not None
        for msg in msgs:
            await self.ws.send_text(_dumps(msg))
        for delay, kind, ch, seq in self.mapper.take_timers():
            task = asyncio.create_task(self._wake(delay, kind, ch, seq))
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)

    async def _wake(self, delay: float, kind: str, ch: int, seq: int) -> None:
        await asyncio.sleep(delay)
        assert self.mapper is not None
        async with self._send_lock:
            with contextlib.suppress(Exception):  # a gone client ends in the receive loop
                await self._send_messages(self.mapper.timer(kind, ch, seq))

    async def _close_with_error(self, exc: ProtocolError) -> None:
        log.info("session error", extra={"session": self.session_id, "code": exc.code})
        self.host.refused(exc.code)
        await self.host.stop()
        with contextlib.suppress(Exception):
            await self.ws.send_text(_dumps(error_message(exc.code, exc.message)))
            await self.ws.close(exc.close_code, exc.code)

