"""Command line: ``serve``, ``redact`` (a file, in-process) and ``stream`` (to a server).

``redact`` and the server run the same :class:`~streamserver.core.session.Session`;
``stream`` uses the protocol-v1 client, :mod:`streamserver.client`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_mod
from . import memory
from .client import ClientError, stream_file  # stream_file: imported from here too
from .config import (
    ALLOCATORS,
    COMPUTE_TYPES,
    DELAY_MS_DEFAULT,
    DEVICES,
    AsrConfig,
    ConfigError,
    ServerConfig,
    SessionConfig,
    hash_api_key,
    is_loopback_host,
)
from .logs import setup_logging

log = logging.getLogger("streamserver.cli")


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delay-ms", type=int, default=DELAY_MS_DEFAULT)
    p.add_argument("--audio-redaction", choices=("beep", "silence"), default="beep")
    p.add_argument("--text-substitution", choices=("hash", "entity_name"), default="hash")
    p.add_argument("--entities", default=None,
                   help="comma-separated entity types or aliases, 'default', 'all' "
                        "(docs/entities.md)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="ignore detections scoring below this (0..1, default 0.5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamserver", description=__doc__)
    parser.add_argument("--log-level", default="info")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--audiosocket-port", type=int, default=None,
                       help="also listen for Asterisk AudioSocket calls on this TCP port, "
                            "same host (env STREAMSERVER_AUDIOSOCKET_PORT; "
                            "docs/audiosocket.md)")
    serve.add_argument("--model", default=None, help="faster-whisper model name or path")
    serve.add_argument("--device", choices=DEVICES, default=None,
                       help="where Whisper runs: cpu (the default), cuda, or auto (cuda when "
                            "CTranslate2 sees a CUDA device) (env STREAMSERVER_DEVICE)")
    serve.add_argument("--compute-type", choices=COMPUTE_TYPES, default=None,
                       help="CTranslate2 compute type (default int8; on cuda e.g. float16 or "
                            "int8_float16) (env STREAMSERVER_COMPUTE_TYPE)")
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--max-sessions", type=int, default=None)
    serve.add_argument("--api-key", action="append", default=None,
                       help="require this key (development: prefer --api-key-file or "
                            "STREAMSERVER_API_KEYS; the server re-executes itself without "
                            "it in its command line)")
    serve.add_argument("--api-key-file", default=None,
                       help="require the keys in this file, one per line "
                            "(env STREAMSERVER_API_KEY_FILE)")
    serve.add_argument("--allow-anonymous", action="store_true", default=None,
                       help="with no API keys, serve everyone on a non-loopback address "
                            "(env STREAMSERVER_ALLOW_ANONYMOUS)")
    serve.add_argument("--log-level", default=argparse.SUPPRESS,
                       help="debug, info, warning or error (also before the command)")
    serve.add_argument("--certfile", default=None,
                       help="TLS certificate chain (PEM): serve https:// and wss:// "
                            "(with --keyfile; env STREAMSERVER_CERTFILE)")
    serve.add_argument("--keyfile", default=None,
                       help="the certificate's private key (PEM, unencrypted; "
                            "env STREAMSERVER_KEYFILE)")
    serve.add_argument("--allocator", choices=ALLOCATORS, default=None,
                       help="the process's malloc: auto (jemalloc when libjemalloc2 is "
                            "installed, else tuned glibc; the default), jemalloc or glibc "
                            "(env STREAMSERVER_ALLOCATOR)")
    serve.add_argument("--shutdown-grace", type=float, default=None, metavar="SECONDS",
                       help="on SIGTERM, how long running sessions may drain their delay "
                            "line before they are closed anyway (default 15)")
    rec = serve.add_argument_group(
        "recorded sessions (docs/privacy.md; need data keys: STREAMSERVER_DATA_KEYS "
        "or --data-key-file, made with `streamserver gen-data-key`)")
    rec.add_argument("--data-dir", default=None,
                     help="the local store (default ./streamserver-data)")
    rec.add_argument("--storage-url", default=None,
                     help="s3://bucket[/prefix] instead of --data-dir (AWS_* variables)")
    rec.add_argument("--database-url", default=None, metavar="URL",
                     help="postgresql://user@host[:port]/db: recording metadata in PostgreSQL, "
                          "shared by every node (with --storage-url s3://...: a cluster). "
                          "A password here shows in ps: prefer STREAMSERVER_DATABASE_URL(_FILE) "
                          "or PGPASSWORD")
    rec.add_argument("--data-key-file", default=None, help="key_id:base64 lines; first seals")
    rec.add_argument("--record-sessions", action="store_true", default=None,
                     help="record every session that does not ask record=false")
    rec.add_argument("--retention", type=int, default=None, metavar="SECONDS",
                     help="how long artefacts are kept, and the most a session may ask "
                          "(default 86400)")
    rec.add_argument("--sweep-interval", type=float, default=None, metavar="SECONDS",
                     help="how often expired artefacts are purged (default 60)")
    rec.add_argument("--public-url", default=None,
                     help="base of the URLs given in webhooks (default: as the client "
                          "connected)")
    rec.add_argument("--webhook-secret-file", default=None,
                     help="the webhook signing secret (or STREAMSERVER_WEBHOOK_SECRET)")
    rec.add_argument("--webhook-allowed-hosts", default=None, metavar="LIST",
                     help="comma list of hosts, globs and networks webhooks may reach besides "
                          "public addresses (or STREAMSERVER_WEBHOOK_ALLOWED_HOSTS)")
    clu = serve.add_argument_group(
        "Redis: session registry, cross-node listeners, cluster-wide limits (docs/deploy.md)")
    clu.add_argument("--redis-url", default=None, metavar="URL",
                     help="redis://[:password@]host:6379/0 (or STREAMSERVER_REDIS_URL[_FILE]); "
                          "needs the cluster secret")
    clu.add_argument("--cluster-secret-file", default=None,
                     help="the secret every node shares, >= 16 bytes (or "
                          "STREAMSERVER_CLUSTER_SECRET)")
    clu.add_argument("--node-id", default=None,
                     help="this node's name in the registry (default: host name and pid)")

    hk = sub.add_parser("hash-key", help="print the SHA-256 of an API key read from stdin "
                                         "(for STREAMSERVER_API_KEY_HASHES)")
    hk.set_defaults(command="hash-key")
    ws = sub.add_parser("webhook-secret", help="print the secret a tenant verifies its "
                        "webhooks with, for the API key read from stdin (server secret from "
                        "STREAMSERVER_WEBHOOK_SECRET or --webhook-secret-file)")
    ws.add_argument("--webhook-secret-file", default=None)
    ws.add_argument("--anonymous", action="store_true",
                    help="for a server without API keys (no key on stdin)")
    sub.add_parser("gen-data-key", help="print a new data key line (key_id:base64) for "
                                        "STREAMSERVER_DATA_KEYS or a --data-key-file")

    red = sub.add_parser("redact", help="redact a WAV file in-process (pace=asap)")
    red.add_argument("input", type=Path)
    red.add_argument("-o", "--output", type=Path, required=True)
    red.add_argument("--transcript", type=Path, default=None)
    red.add_argument("--model", default="", help="faster-whisper model name or path")
    _add_session_args(red)

    st = sub.add_parser("stream", help="stream a WAV file to a running server")
    st.add_argument("input", type=Path)
    st.add_argument("--url", default="ws://127.0.0.1:8080/v1/stream")
    st.add_argument("-o", "--output", type=Path, default=None)
    st.add_argument("--transcript", type=Path, default=None)
    st.add_argument("--pace", choices=("realtime", "asap"), default="realtime")
    st.add_argument("--api-key", default=None)
    st.add_argument("--frame-ms", type=int, default=20)
    _add_session_args(st)
    return parser


def _session_params(args: argparse.Namespace, rate: int, channels: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "encoding": "pcm_s16le",
        "sample_rate": rate,
        "channels": channels,
        "delay_ms": args.delay_ms,
        "audio_redaction": args.audio_redaction,
        "text_substitution": args.text_substitution,
    }
    if args.entities:
        params["entities"] = args.entities
    if args.score_threshold is not None:
        params["score_threshold"] = args.score_threshold
    return params


def transcript_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The CLI's transcript JSON: final text, words and redactions (seconds)."""
    # Two analysed channels (channel_roles) finalise independently: time order.
    finals = sorted((e for e in events if e.get("type") == "transcript.final"),
                    key=lambda e: e.get("start", 0.0))
    words = [
        {k: w[k] for k in ("text", "start", "end", "redacted", "entity")}
        | ({"role": e["role"]} if "role" in e else {})
        for e in finals
        for w in e["words"]
    ]
    redactions = [
        {k: e[k] for k in ("entity", "start", "end", "score", "reason") if k in e}
        for e in events
        if e.get("type") == "redaction"
    ]
    end = next((e for e in events if e.get("type") == "session.end"), None)
    return {
        "text": _text_by_speaker([e for e in finals if e["text"]]),
        "words": words,
        "redactions": redactions,
        "stats": end["stats"] if end else None,
    }


def _text_by_speaker(finals: list[dict[str, Any]]) -> str:
    """Final texts in order; with channel roles, "role: ..." where the speaker changes."""
    parts, speaker = [], None
    for e in finals:
        role = e.get("role")
        parts.append(f"{role}: {e['text']}" if role is not None and role != speaker
                     else e["text"])
        speaker = role
    return " ".join(parts)


def redact_file(
    path: Path, params: dict[str, Any] | None = None, engines: Any = None
) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Redact a WAV in-process: (output int16 (n, ch), rate, transcript dict)."""
    from .core.session import AudioOut, Event, run_offline
    from .engines.bundle import Engines

    samples, rate = audio_mod.read_wav(path)
    channels = samples.shape[1]
    cfg = SessionConfig.from_params(
        {"encoding": "pcm_s16le", "sample_rate": rate, "channels": channels,
         **(params or {}), "pace": "asap"}
    )
    engines = engines or Engines.load(AsrConfig())
    session = engines.new_session(cfg, "offline")
    fmt = audio_mod.AudioFormat("pcm_s16le", rate, channels)
    data = audio_mod.encode(samples, fmt)
    outputs = run_offline(session, engines.run_job, engines.detect, data,
                          chunk_bytes=fmt.bytes_per_frame * rate // 50)
    audio_out = b"".join(o.data for o in outputs if isinstance(o, AudioOut))
    events = [o.payload for o in outputs if isinstance(o, Event)]
    out = audio_mod.decode(audio_out, fmt)
    return out, rate, transcript_from_events(events)


def _cmd_redact(args: argparse.Namespace) -> int:
    from .engines.bundle import Engines

    try:
        _, rate = audio_mod.read_wav(args.input)
        engines = Engines.load(AsrConfig(model=args.model))
        params = _session_params(args, rate, 1)
        params.pop("encoding"), params.pop("sample_rate"), params.pop("channels")
        out, rate, transcript = redact_file(args.input, params, engines)
    except (ConfigError, audio_mod.AudioFormatError, OSError) as exc:
        print(f"streamserver redact: {exc}", file=sys.stderr)
        return 2
    audio_mod.write_wav(args.output, out, rate)
    if args.transcript:
        args.transcript.write_text(json.dumps(transcript, indent=1))
    stats = transcript["stats"] or {}
    print(f"wrote {args.output} ({out.shape[0] / rate:.2f} s, "
          f"{stats.get('redactions', 0)} redactions)", file=sys.stderr)
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    try:
        _, rate = audio_mod.read_wav(args.input)
        params = _session_params(args, rate, 1)
        params.pop("sample_rate"), params.pop("channels")
        out, rate, events = asyncio.run(
            stream_file(args.input, args.url, params, args.pace, args.api_key, args.frame_ms)
        )
    except (OSError, audio_mod.AudioFormatError) as exc:
        print(f"streamserver stream: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:  # no session, or it failed: nothing complete to write
        print(f"streamserver stream: {exc}", file=sys.stderr)
        return 2 if exc.code in ("connection_failed", "handshake_failed") else 1
    errors = [e for e in events if e.get("type") == "error"]
    for e in errors:
        print(f"server error {e['code']}: {e['message']}", file=sys.stderr)
    if args.output:
        audio_mod.write_wav(args.output, out, rate)
    if args.transcript:
        args.transcript.write_text(json.dumps(transcript_from_events(events), indent=1))
    return 1 if errors else 0


def _cmd_hash_key(args: argparse.Namespace) -> int:
    # From stdin, not argv: a key on the command line would end up in shell history.
    key = sys.stdin.readline().strip()
    if not key:
        print("streamserver hash-key: give the key on stdin", file=sys.stderr)
        return 2
    print(hash_api_key(key))
    return 0


def _cmd_webhook_secret(args: argparse.Namespace) -> int:
    """One line per server secret (current first): what the tenant's receiver checks."""
    from .server.auth import ANONYMOUS
    from .server.recording import webhook_secrets
    from .webhooks import tenant_secret

    if args.anonymous:
        tenant = ANONYMOUS
    else:
        key = sys.stdin.readline().strip()  # stdin, not argv (shell history, ps)
        if not key:
            print("streamserver webhook-secret: give the API key on stdin", file=sys.stderr)
            return 2
        tenant = hash_api_key(key)
    try:
        secrets = webhook_secrets(ServerConfig(webhook_secret_file=args.webhook_secret_file
                                               or ""), os.environ)
    except ConfigError as exc:
        print(f"streamserver webhook-secret: {exc}", file=sys.stderr)
        return 2
    if not secrets:
        print("streamserver webhook-secret: no webhook secret configured", file=sys.stderr)
        return 2
    for secret in secrets:
        print(tenant_secret(secret, tenant).decode())
    return 0


def check_tls_files(cfg: ServerConfig) -> None:
    """Raise ConfigError unless the TLS files (if any) are a readable cert and its key."""
    import ssl

    if not cfg.tls_certfile:
        return
    for what, path in (("certfile", cfg.tls_certfile), ("keyfile", cfg.tls_keyfile)):
        try:
            Path(path).open("rb").close()
        except OSError as exc:
            raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None

    def no_password() -> bytes:
        raise ConfigError("the keyfile is encrypted; give an unencrypted key")

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cfg.tls_certfile, cfg.tls_keyfile, password=no_password)
    except ssl.SSLError as exc:
        why = f" ({exc.reason})" if exc.reason else ""
        raise ConfigError(f"certfile and keyfile are not a PEM certificate and its private "
                          f"key{why}") from None


def without_api_keys(argv: list[str]) -> list[str]:
    """``argv`` with every ``--api-key KEY`` / ``--api-key=KEY`` left out."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--api-key":
            skip = True
        elif not arg.startswith("--api-key="):
            out.append(arg)
    return out


def reexec_server(cfg: ServerConfig) -> None:
    """Re-execute this command when jemalloc should be preloaded, or when API keys
    were given in argv or the environment: the new image has only their SHA-256
    hashes (STREAMSERVER_API_KEY_HASHES), so /proc/PID/cmdline and environ show
    no key. Does not return when it re-executes (same PID, so signals and
    supervisors are unaffected); raises ConfigError when ``allocator=jemalloc``
    cannot be had.
    """
    argv = list(sys.orig_argv[1:])
    env = (memory.jemalloc_environment(os.environ) if cfg.allocator != "glibc" else None)
    scrubbed = without_api_keys(argv)
    if env is not None or scrubbed != argv or os.environ.get("STREAMSERVER_API_KEYS"):
        env = dict(env if env is not None else os.environ)
        env.pop("STREAMSERVER_API_KEYS", None)
        env.pop("STREAMSERVER_API_KEY_FILE", None)  # read once: its hashes go along
        if cfg.api_key_hashes:
            env["STREAMSERVER_API_KEY_HASHES"] = ",".join(cfg.api_key_hashes)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *scrubbed], env)
    if cfg.allocator == "jemalloc" and not memory.jemalloc_active():
        tried = os.environ.get(memory.JEMALLOC_PRELOADED_ENV)
        raise ConfigError(f"allocator jemalloc: {tried} could not be preloaded" if tried else
                          "allocator jemalloc: libjemalloc.so.2 not found "
                          "(apt-get install libjemalloc2)")


def _cmd_serve(args: argparse.Namespace) -> int:
    from .engines.device import resolve_asr_device
    from .server.app import create_app
    from .server.recording import open_archive

    try:
        cfg = ServerConfig.from_env(
            host=args.host, port=args.port, audiosocket_port=args.audiosocket_port,
            workers=args.workers, max_sessions=args.max_sessions,
            api_keys=tuple(args.api_key) if args.api_key else None,
            api_key_file=args.api_key_file, allow_anonymous=args.allow_anonymous,
            asr_model=args.model, asr_device=args.device, asr_compute_type=args.compute_type,
            tls_certfile=args.certfile, tls_keyfile=args.keyfile,
            shutdown_grace_s=args.shutdown_grace,
            data_dir=args.data_dir, storage_url=args.storage_url, database_url=args.database_url,
            data_key_file=args.data_key_file, record_sessions=args.record_sessions,
            retention_s=args.retention, sweep_interval_s=args.sweep_interval,
            public_url=args.public_url, webhook_secret_file=args.webhook_secret_file,
            webhook_allowed_hosts=(tuple(h.strip() for h in args.webhook_allowed_hosts.split(",")
                                         if h.strip())
                                   if args.webhook_allowed_hosts is not None else None),
            allocator=args.allocator,
            redis_url=args.redis_url, node_id=args.node_id,
            cluster_secret=_read_secret_file(args.cluster_secret_file, "--cluster-secret-file"),
        )
        reexec_server(cfg)
        check_tls_files(cfg)
        resolve_asr_device(cfg.asr.device, cfg.asr.compute_type)  # before binding, too
        archive = open_archive(cfg)  # keys, store and secret checked before binding
    except ConfigError as exc:
        print(f"streamserver serve: {exc}", file=sys.stderr)
        return 2
    protect_process_memory()
    for name in _SECRET_ENV:  # read: children (and a debugger's view) need not see them
        os.environ.pop(name, None)
    if not cfg.api_key_hashes and not is_loopback_host(cfg.host):
        log.warning("no API keys and --allow-anonymous: anyone who reaches %s:%d may "
                    "stream, listen and read recordings", cfg.host, cfg.port)
    return _run_uvicorn(create_app(cfg, archive=archive), cfg)


# Secrets the server reads from its environment once, at start.
_SECRET_ENV = ("STREAMSERVER_API_KEYS", "STREAMSERVER_WEBHOOK_SECRET", "STREAMSERVER_DATA_KEYS",
               "STREAMSERVER_METRICS_TOKEN", "STREAMSERVER_CLUSTER_SECRET",
               "STREAMSERVER_REDIS_URL")


def _read_secret_file(path: str | None, flag: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError:
        raise ConfigError(f"cannot read {flag}") from None


def protect_process_memory() -> None:
    """No core dumps: a crash must not write raw audio, data keys or the webhook
    secret to disk (RLIMIT_CORE 0), and the process is not dumpable (no ptrace or
    /proc/PID/mem by other processes of the same user; PR_SET_DUMPABLE 0)."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):  # not Linux: the rlimit still holds
        log.warning("could not mark the process non-dumpable")


def _cmd_gen_data_key(args: argparse.Namespace) -> int:
    import time

    from .storage import KeyRing

    # A dated id: rotation is "prepend a newer line, drop old ones after the retention".
    print(f"k{time.strftime('%Y%m%d')}:{KeyRing.generate_key()}")
    return 0


def _run_uvicorn(app: Any, cfg: ServerConfig) -> int:
    """uvicorn, with sessions drained on SIGTERM/SIGINT before it closes connections.

    Plain uvicorn closes open WebSockets at once (1012) when it stops: the audio
    held in each delay line would be lost.
    """
    import signal
    import socket

    import uvicorn

    from .server.app import drain_sessions

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await drain_sessions(app)  # bounded by cfg.shutdown_grace_s
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        ws="websockets-sansio",
        loop=cfg.event_loop,  # "auto": uvloop when installed
        ws_max_size=cfg.max_message_bytes,
        ws_per_message_deflate=cfg.ws_per_message_deflate,
        log_config=None,
        # Sessions are drained already; this bounds the HTTP requests still open.
        timeout_graceful_shutdown=5,
        ssl_certfile=cfg.tls_certfile or None,
        ssl_keyfile=cfg.tls_keyfile or None,
    )
    server = DrainingServer(config)
    # Once stopped, uvicorn re-raises the signal it caught so that its default
    # action still happens; for SIGTERM that is death by signal (status -15). The
    # shutdown was the graceful one, so let that re-raised SIGTERM do nothing.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    except KeyboardInterrupt:  # the re-raised SIGINT
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    handler = {"serve": _cmd_serve, "redact": _cmd_redact, "stream": _cmd_stream,
               "hash-key": _cmd_hash_key, "gen-data-key": _cmd_gen_data_key,
               "webhook-secret": _cmd_webhook_secret}[args.command]
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
