"""Structured JSON logs. Records carry ids, counts and timings, never user data.

Nothing in this codebase passes transcript text or audio to a logger; the
formatter below also drops the message arguments of third-party records (which
could interpolate anything) and keeps only whitelisted ``extra`` fields.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

_SAFE_EXTRAS = (
    "session", "code", "stats", "pace", "rate", "delay_ms", "port", "workers", "load_s",
    "batch", "audio_s", "wait_ms", "run_ms", "allocator", "malloc_conf", "arena_max",
    "mmap_threshold_bytes",
)


_PLAIN_ARG = re.compile(r"[\w.:\-/\[\]]{0,64}")


def _third_party_message(record: logging.LogRecord) -> str:
    """The message with its arguments, each kept only if it cannot carry user data:
    numbers, or short strings of name/host characters (no spaces, no ``?`` query)."""
    args = record.args
    if not args:
        return str(record.msg)

    def plain(arg: Any) -> Any:
        if isinstance(arg, bool | int | float) or arg is None:
            return arg
        return arg if isinstance(arg, str) and _PLAIN_ARG.fullmatch(arg) else "<redacted>"

    try:
        if isinstance(args, dict):
            return str(record.msg) % {k: plain(v) for k, v in args.items()}
        return str(record.msg) % tuple(plain(a) for a in args)
    except (TypeError, ValueError, KeyError):
        return str(record.msg)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        own = record.name.startswith("streamserver")
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Third-party messages may format arbitrary arguments: only plain ones
            # (numbers, short host/scheme-like strings) are filled in.
            "msg": record.getMessage() if own else _third_party_message(record),
        }
        for key in _SAFE_EXTRAS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info and own:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            # Where it happened (file:line per frame), never the message or locals,
            # which could carry user data.
            tb = record.exc_info[2]
            frames = traceback.extract_tb(tb)[-6:] if tb else []
            entry["exc_where"] = [f"{Path(f.filename).name}:{f.lineno}" for f in frames]
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would print query strings (which may hold a token).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
