"""The JSON log formatter: third-party messages are readable, their data is not kept."""

from __future__ import annotations

import json
import logging

from streamserver.logs import JsonFormatter


def _format(name: str, msg: str, args: tuple | dict) -> dict:  # type: ignore[type-arg]
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    return json.loads(JsonFormatter().format(record))


def test_third_party_templates_are_filled_with_plain_arguments() -> None:
    entry = _format("uvicorn.error", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
                    ("http", "127.0.0.1", 8080))
    assert entry["msg"] == "Uvicorn running on http://127.0.0.1:8080 (Press CTRL+C to quit)"


def test_third_party_arguments_that_could_carry_data_are_redacted() -> None:
    entry = _format("websockets.server", "got %s from %s",
                    ("my card is 4111 1111 1111 1111", "/v1/stream?token=secret"))
    assert entry["msg"] == "got <redacted> from <redacted>"
    assert "4111" not in json.dumps(entry) and "secret" not in json.dumps(entry)
    assert _format("aiortc", "%(peer)s said %(what)s",
                   {"peer": "10.0.0.1", "what": b"raw"})["msg"] == "10.0.0.1 said <redacted>"
    assert _format("x", "bad %d template", ("not a number",))["msg"] == "bad %d template"
