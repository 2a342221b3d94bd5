"""Fuzzing protocol v1 against a real server process: bad input ends only its own session.

Hypothesis draws sessions -- URL settings and a script of client actions: JSON of any
shape, wrong-typed settings, unknown message types, messages out of order, empty, odd
and oversized frames, text frames in other encodings, abrupt TCP aborts -- and a small
model of docs/protocol.md (:func:`predict`) says how each one must end. Every case is
checked against that; after every example the process is alive, ``/healthz`` answers
and no session is left running. The second test runs a good session alone, then again
while seeded random attackers hammer the server: its output must not change by a byte.

Run with ``-s`` to see how many cases ran (also in the JUnit report as ``fuzz_cases``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamserver import audio as audio_mod
from streamserver.config import ConfigError, ServerConfig, SessionConfig
from streamserver.server.recording import plan_recording
from tests.conftest import FIXTURES, ROOT, RunningServer, start_server, stop_server

pytestmark = pytest.mark.e2e

LIMIT = ServerConfig().max_message_bytes
MESSAGE_TYPES = ("configure", "flush", "close", "keepalive")
SETTINGS = ("encoding", "sample_rate", "channels", "delay_ms", "pace", "entities",
            "score_threshold", "audio_redaction", "text_substitution", "on_deadline",
            "mask_padding_ms", "use_hypothesis_evidence", "record", "retention_s",
            "webhook_url", "channel_roles", "context_redaction", "mask_unexplained")
FORMATS = (("pcm_s16le", 16000, 1), ("pcm_s16le", 8000, 1), ("pcm_s16le", 24000, 2),
           ("pcm_s16le", 48000, 2), ("mulaw", 8000, 1), ("alaw", 8000, 1))
CASE_TIMEOUT_S = 15.0  # a case that has not ended by then is a hung session


def read_speech() -> bytes:
    """dev_001.wav as 16 kHz mono s16le bytes."""
    samples, rate = audio_mod.read_wav(FIXTURES / "dev_001.wav")
    return audio_mod.encode(samples, audio_mod.AudioFormat("pcm_s16le", rate, 1))


SPEECH = read_speech()


def documented_close_codes() -> dict[str, int]:
    """The ``error`` code -> close code table of docs/protocol.md, the spec under test."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| `(\w+)` \| (\d{4}) \|", section, re.M)}


CLOSE_CODES = documented_close_codes()


# -- client actions --------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    """A text frame."""

    text: str

    def __repr__(self) -> str:  # oversized frames would flood a failure report
        return f"Text({self.text[:80]!r}{'...' if len(self.text) > 80 else ''}, " \
               f"len={len(self.text)})"


@dataclass(frozen=True)
class RawText:
    """A text frame carrying these bytes as they are (they may not be UTF-8)."""

    data: bytes


@dataclass(frozen=True)
class Binary:
    """A binary (audio) frame of ``size`` bytes: zeros, noise or real speech."""

    size: int
    source: str = "zeros"

    def data(self) -> bytes:
        if self.source == "noise":
            return random.Random(self.size).randbytes(self.size)
        if self.source == "speech":
            start = (self.size * 7919) % max(1, len(SPEECH) - self.size)
            return SPEECH[start : start + self.size]
        return bytes(self.size)


@dataclass(frozen=True)
class Abort:
    """Abrupt TCP close; ``mid_frame``: after the first bytes of a frame."""

    mid_frame: bool = False


Action = Text | RawText | Binary | Abort


@dataclass(frozen=True)
class Case:
    query: dict[str, str]
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Expect:
    """How a case must end. ``upto``: actions sent (the rest would never be read)."""

    kind: str  # "end" | "error" | "refused" (by the WebSocket layer) | "open" | "abort"
    upto: int
    code: str | None = None
    close_code: int | None = None
    audio_in: int = 0


def frame_bytes(cfg: SessionConfig) -> int:
    return 2 * cfg.channels if cfg.encoding == "pcm_s16le" else 1


# The fuzz server has no data keys, so it records nothing (see FUZZ_ENV).
FUZZ_ENV = {"STREAMSERVER_DATA_KEYS": "", "STREAMSERVER_RECORD_SESSIONS": "false"}


def accepted_config(params: dict[str, Any]) -> SessionConfig | None:
    """The config a session with these settings runs with; None: ``bad_config``."""
    try:
        cfg = SessionConfig.from_params(params)
        plan_recording(cfg, ServerConfig(), store_ready=False, webhooks_ready=False)
    except ConfigError:
        return None
    return cfg


def predict(case: Case) -> Expect:
    """docs/protocol.md as a function: the outcome the server must produce."""
    base = {k: v for k, v in case.query.items() if k != "token"}
    cfg: SessionConfig | None = None
    if "encoding" in base and "sample_rate" in base:
        cfg = accepted_config(base)
        if cfg is None:
            return Expect("error", 0, "bad_config")
    audio_in = 0
    for i, action in enumerate(case.actions):
        n = i + 1
        if isinstance(action, Abort):
            return Expect("abort", i)
        if isinstance(action, Binary):
            if action.size > LIMIT:
                return Expect("refused", n, close_code=1009)
            if cfg is None:
                return Expect("error", n, "config_required")
            if action.size % frame_bytes(cfg):
                return Expect("error", n, "bad_audio")
            audio_in += action.size
            continue
        if isinstance(action, RawText):
            try:
                text = action.data.decode("utf-8")
            except UnicodeDecodeError:  # RFC 6455: the connection fails with 1007
                return Expect("refused", n, close_code=1007)
        else:
            text = action.text
        if len(text.encode()) > LIMIT:
            return Expect("refused", n, close_code=1009)
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return Expect("error", n, "invalid_json")
        if not isinstance(msg, dict):
            return Expect("error", n, "invalid_json")
        kind = msg.get("type")
        if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
            return Expect("error", n, "unknown_message")
        if kind == "configure":
            merged = {**base, **{k: v for k, v in msg.items() if k != "type"}}
            if cfg is not None or "encoding" not in merged or "sample_rate" not in merged:
                return Expect("error", n, "bad_config")
            cfg = accepted_config(merged)
            if cfg is None:
                return Expect("error", n, "bad_config")
        elif kind == "close":
            if cfg is None:
                return Expect("error", n, "config_required")
            return Expect("end", n, close_code=1000, audio_in=audio_in)
    return Expect("open", len(case.actions), audio_in=audio_in)


# -- running a case against the server -------------------------------------------------
@dataclass
class Result:
    events: list[dict[str, Any]] = field(default_factory=list)
    audio_out: int = 0
    close_code: int | None = None
    timed_out: bool = False


# A masked client frame header (binary, 16-bit length 4096) with only a few payload
# bytes after it: the server is left waiting for the rest when the socket dies.
PARTIAL_FRAME = b"\x82\xfe\x10\x00" + b"\x11\x22\x33\x44" + b"\x00" * 10


async def run_case(url: str, case: Case, expect: Expect) -> Result:
    query = urlencode(case.query)
    ws = await websockets.connect(url + ("?" + query if query else ""), max_size=None,
                                  open_timeout=CASE_TIMEOUT_S, close_timeout=5)
    result = Result()

    async def reader() -> None:
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    result.audio_out += len(msg)
                else:
                    result.events.append(json.loads(msg))
        except websockets.ConnectionClosed:
            pass

    reading = asyncio.create_task(reader())
    try:
        for action in case.actions[: expect.upto]:
            if isinstance(action, Text):
                await ws.send(action.text)
            elif isinstance(action, RawText):
                await ws.send(action.data, text=True)
            elif isinstance(action, Binary):
                await ws.send(action.data())
        if expect.kind == "abort":
            if case.actions[expect.upto].mid_frame:  # type: ignore[union-attr]
                ws.transport.write(PARTIAL_FRAME)
            ws.transport.abort()
            reading.cancel()
            return result
        if expect.kind == "open":
            await ws.close()
    except websockets.ConnectionClosed:
        pass  # the server ended it early; the checks say whether it should have
    try:
        await asyncio.wait_for(reading, CASE_TIMEOUT_S)
    except TimeoutError:
        result.timed_out = True
        ws.transport.abort()
    result.close_code = ws.close_code
    return result


def check(case: Case, expect: Expect, result: Result) -> None:
    """The server's answer matches the prediction (assertion messages name the case)."""
    where = f"{case!r} expected {expect!r}, got close {result.close_code}, events " \
            f"{[e.get('code', e['type']) for e in result.events]}"
    if expect.kind == "abort":
        return  # only the server's health counts: checked after every example
    assert not result.timed_out, "session did not end: " + where
    errors = [e for e in result.events if e["type"] == "error"]
    if expect.kind == "error":
        assert errors and errors[-1] is result.events[-1], "no typed error last: " + where
        assert [e["code"] for e in errors] == [expect.code], where
        assert isinstance(errors[0]["message"], str) and errors[0]["message"], where
        assert result.close_code == CLOSE_CODES[expect.code or ""], where
        return
    assert not errors, where
    if expect.kind == "refused":
        assert result.close_code == expect.close_code, where
    elif expect.kind == "end":
        types = [e["type"] for e in result.events]
        assert types[:1] == ["session.begin"] and types[-1:] == ["session.end"], where
        assert result.close_code == 1000, where
        # Every input sample comes back exactly once.
        assert result.audio_out == expect.audio_in, where


def http_json(server: RunningServer, path: str) -> Any:
    with urllib.request.urlopen(server.http + path, timeout=5) as r:
        assert r.status == 200
        return json.loads(r.read())


def assert_server_healthy(server: RunningServer) -> None:
    """Alive, ``/healthz`` answers, and every session has ended (none leaked)."""
    assert server.proc.poll() is None, "server process died:\n" + server.log_text()[-3000:]
    assert http_json(server, "/healthz")["status"] == "ok"
    deadline = time.monotonic() + CASE_TIMEOUT_S
    while (left := http_json(server, "/readyz")["sessions"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == 0, f"{left} session(s) still running after their clients left"


# uvicorn logs this at error level when it fails a connection with 1007 (not our code).
EXPECTED_ERROR_LOGS = {"Invalid UTF-8 sequence received from client."}


def server_failures(server: RunningServer) -> list[str]:
    """Error-level log lines: crashed sessions, internal errors, failed model calls."""
    bad = []
    for line in server.log_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("msg") not in EXPECTED_ERROR_LOGS and (
            entry.get("level") in ("error", "critical") or entry.get("code") == "internal_error"
        ):
            bad.append(line[:500])
    return bad


# -- strategies ------------------------------------------------------------------------
def query_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value)


json_scalars = (st.none() | st.booleans() | st.integers()
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)


@st.composite
def good_settings(draw: st.DrawFn) -> dict[str, Any]:
    encoding, rate, channels = draw(st.sampled_from(FORMATS))
    out: dict[str, Any] = {"encoding": encoding, "sample_rate": rate, "channels": channels}
    # Mostly asap; realtime only with a short delay, so a case takes under a second.
    delay = draw(st.sampled_from([300, 1000, 2000]))
    out["delay_ms"] = delay
    out["pace"] = draw(st.sampled_from(["asap", "realtime"])) if delay == 300 else "asap"
    extra = st.fixed_dictionaries({}, optional={
        "entities": st.sampled_from(["default", "all", "person_name,phone_number",
                                     ["PERSON", "EMAIL_ADDRESS"]]),
        "audio_redaction": st.sampled_from(["beep", "silence"]),
        "text_substitution": st.sampled_from(["hash", "entity_name"]),
        "score_threshold": st.floats(0, 1),
        "mask_padding_ms": st.integers(0, 1000),
        "use_hypothesis_evidence": st.booleans(),
        "record": st.just(False),
    })
    out.update(draw(extra))
    return out


# Unknown, misspelt or known names with values of any JSON type.
wrong_settings = st.dictionaries(
    st.sampled_from([*SETTINGS, "colour", "", "Encoding", "type", "token"]) | st.text(max_size=8),
    json_values | st.sampled_from(["http://hook.invalid/x", "ftp://h/", "http://u:p@h/",
                                   "http://[::1", "true", "86400", "-1", "1e3",
                                   "agent,caller", "caller", "robot,agent", "st1.bm9uZQ.00"]),
    min_size=1, max_size=3,
)

queries = st.one_of(
    st.just({}),
    good_settings(),
    st.builds(lambda g, w: {**g, **w}, good_settings(), wrong_settings),
    good_settings().map(lambda g: {k: v for k, v in g.items() if k != "sample_rate"}),
    wrong_settings,
).map(lambda q: {k: query_value(v) for k, v in q.items()})


def message(kind: Any, fields: dict[str, Any]) -> str:
    return json.dumps({**fields, "type": kind})


texts = st.one_of(
    good_settings().map(lambda s: message("configure", s)),
    st.builds(lambda g, w: message("configure", {**g, **w}), good_settings(), wrong_settings),
    st.sampled_from(MESSAGE_TYPES).map(lambda k: message(k, {})),
    st.builds(message, json_values.filter(lambda v: v not in MESSAGE_TYPES),
              st.dictionaries(st.text(max_size=8), json_values, max_size=2)),
    json_values.map(json.dumps),  # arrays, numbers, strings, objects without a type
    st.text(max_size=200),  # mostly not JSON at all
    st.sampled_from(["", " ", "{", "null", "[]", '{"type": "flush"', ' {"type":"flush"} ',
                     '{"type": "FLUSH"}', '{"type": "flush", "type": 1}']),
    st.sampled_from(["configure", "keepalive"]).map(  # over the size limit
        lambda k: json.dumps({"type": k, "pad": "x" * LIMIT})),
).map(Text)

raw_texts = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([
        b"\xff\xfe" + '{"type":"flush"}'.encode("utf-16-le"),  # UTF-16 with a BOM
        '{"type":"flush"}'.encode("utf-16-le"),  # valid UTF-8 bytes, but NULs: not JSON
        '{"type":"configure","entities":"café"}'.encode("latin-1"),
        "\ufeff".encode() + b'{"type":"keepalive"}',  # a UTF-8 byte-order mark
        b'{"type":"flush","x":"\xed\xa0\x80"}',  # an encoded surrogate: not UTF-8
        b'{"type":"flush"}\xc3',  # truncated multi-byte sequence
    ]),
).map(RawText)

audio_sizes = st.one_of(st.integers(0, 16000),
                        st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 319, 639, 640, 641, 1279]))
binaries = st.one_of(
    st.builds(Binary, audio_sizes, st.sampled_from(["zeros", "noise", "speech"])),
    st.sampled_from([Binary(LIMIT + 1), Binary(LIMIT + 3, "noise"), Binary(2 * LIMIT)]),
)

actions = st.one_of(texts, binaries, raw_texts, st.builds(Abort, st.booleans()))
# Anything at all, in any order: most of these end at their first frame.
random_cases = st.builds(Case, queries, st.lists(actions, max_size=6).map(tuple))

# Sessions that get going first -- audio (some of odd length), flush, keepalive --
# then end with a close, a bad action, or by the client leaving.
benign = st.one_of(
    st.builds(Binary, audio_sizes, st.sampled_from(["zeros", "noise", "speech"])),
    st.sampled_from(["flush", "keepalive"]).map(lambda k: Text(message(k, {}))),
)
endings = st.one_of(st.just(Text(message("close", {}))), st.just(None), actions)


@st.composite
def started_cases(draw: st.DrawFn) -> Case:
    settings = draw(good_settings())
    in_query = draw(st.booleans())
    query = {k: query_value(v) for k, v in settings.items()} if in_query else {}
    script: list[Action] = [] if in_query else [Text(message("configure", settings))]
    script += draw(st.lists(benign, max_size=5))
    ending = draw(endings)
    return Case(query, (*script, *([ending] if ending is not None else [])))


# Sessions that skip configuring: audio, flush or close before any settings.
unconfigured_cases = st.builds(
    Case, st.just({}),
    st.lists(st.one_of(benign, st.just(Text(message("close", {})))), min_size=1,
             max_size=3).map(tuple))

cases = st.one_of(started_cases(), random_cases, unconfigured_cases)

# One case per outcome, run on every test run whatever Hypothesis draws, so a rare
# outcome is never left out by chance (CI once drew no ``config_required`` at all).
GOOD = {"encoding": "pcm_s16le", "sample_rate": "16000"}
PINNED_CASES = [
    Case(GOOD, (Binary(640, "speech"), Text(message("close", {})))),  # end
    Case(GOOD, (Binary(640, "speech"),)),  # open
    Case(GOOD, (Binary(640), Abort(mid_frame=True))),  # abort
    Case(GOOD, (Binary(LIMIT + 1),)),  # refused
    Case(GOOD, (Text("{"),)),  # invalid_json
    Case(GOOD, (Text(message("shout", {})),)),  # unknown_message
    Case({"encoding": "pcm_s16le", "sample_rate": "7"}, ()),  # bad_config
    Case({}, (Binary(640),)),  # config_required
    Case(GOOD, (Binary(641),)),  # bad_audio
]


# -- the tests -------------------------------------------------------------------------
class FuzzServers:
    """The fuzz target: a server of its own, so a crash cannot take other tests' down.

    A failed example may leave it dead or with a hung session; the next example then
    gets a fresh one, so Hypothesis shrinks to the case that broke it rather than to
    whatever ran after. Every server started is kept, for the log check at the end.
    """

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.started = [self._start()]

    def _start(self) -> RunningServer:
        return start_server(self.tmp.mktemp("fuzz"), "--max-sessions", "64", env=FUZZ_ENV)

    @property
    def current(self) -> RunningServer:
        return self.started[-1]

    def healthy(self) -> RunningServer:
        srv = self.current
        try:
            if srv.proc.poll() is None and http_json(srv, "/readyz")["sessions"] == 0:
                return srv
        except OSError:
            pass
        srv.proc.kill()  # dead or hung: no graceful drain to wait for
        srv.proc.wait(timeout=20)
        self.started.append(self._start())
        return self.current

    def failures(self) -> list[str]:
        return [line for srv in self.started for line in server_failures(srv)]

    def stop(self) -> None:
        stop_server(self.current)


@pytest.fixture(scope="module")
def fuzz_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServers]:
    servers = FuzzServers(tmp_path_factory)
    yield servers
    servers.stop()


def run_cases(url: str, batch: list[Case]) -> None:
    """Run the cases at once (concurrent bad sessions), then check each one."""
    expects = [predict(c) for c in batch]

    async def all_cases() -> list[Result]:
        return await asyncio.gather(*(run_case(url, c, e) for c, e in zip(batch, expects,
                                                                           strict=True)))

    for case, expect, result in zip(batch, expects, asyncio.run(all_cases()), strict=True):
        check(case, expect, result)


def test_bad_input_ends_only_its_own_session(fuzz_servers: FuzzServers,
                                             record_property: Any) -> None:
    counts = {"examples": 0, "cases": 0}
    outcomes: dict[str, int] = {}

    @settings(max_examples=300, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(cases, min_size=1, max_size=3))
    @example(PINNED_CASES)
    def one_example(batch: list[Case]) -> None:
        counts["examples"] += 1
        counts["cases"] += len(batch)
        for case in batch if batch is not PINNED_CASES else ():
            expect = predict(case)
            key = expect.code or expect.kind
            outcomes[key] = outcomes.get(key, 0) + 1
        server = fuzz_servers.healthy()
        run_cases(server.url, batch)
        assert_server_healthy(server)

    started = time.monotonic()
    one_example()
    took = time.monotonic() - started
    record_property("fuzz_cases", counts["cases"])
    print(f"\nfuzz: {counts['cases']} cases in {counts['examples']} examples, {took:.1f} s; "
          f"outcomes {dict(sorted(outcomes.items()))}")
    assert len(fuzz_servers.started) == 1, "the server had to be restarted"
    assert fuzz_servers.failures() == []
    # The strategies must reach every outcome on their own (the pinned cases are not
    # counted), or the fuzzing proves less than it says.
    assert {"end", "open", "abort", "refused", "invalid_json", "unknown_message",
            "bad_config", "config_required", "bad_audio"} <= set(outcomes)


# -- a good session, alone and under attack --------------------------------------------
def random_case(rng: random.Random) -> Case:
    """A bad (or odd) session for the attackers: seeded, so the run is repeatable."""
    encoding, rate, channels = rng.choice(FORMATS)
    good = {"encoding": encoding, "sample_rate": str(rate), "channels": str(channels),
            "pace": "asap"}
    script: list[Action] = []
    if rng.random() < 0.5:  # a session that runs (and loads the models) for a while
        query = good
        script += [Binary(rng.randrange(4000, 32000) & ~3, "speech")
                   for _ in range(rng.randint(1, 4))]
    else:
        query = rng.choice([{}, good, {**good, "delay_ms": "50"}, {"encoding": encoding},
                            {**good, "colour": "red"}, {"sample_rate": "[]", "encoding": "?"}])
    makers: list[Callable[[], Action]] = [
        lambda: Binary(rng.randrange(0, 8000), rng.choice(["zeros", "noise", "speech"])),
        lambda: Binary(rng.choice([1, 3, 641])),
        lambda: Binary(LIMIT + 1),
        lambda: Text(message("configure", {"encoding": encoding, "sample_rate": rate,
                                           "pace": "asap"})),
        lambda: Text(message("configure", {"sample_rate": rng.choice(["x", -1, [], None])})),
        lambda: Text(message(rng.choice(["dance", 7, None, ""]), {})),
        lambda: Text(rng.choice(["", "not json", "[1, 2]", '{"type": "flush"'])),
        lambda: Text(message(rng.choice(MESSAGE_TYPES), {})),
        lambda: Text("x" * (LIMIT + 1)),
        lambda: RawText(rng.choice([b"\xff", b'{"type":"flush"}\xc3', rng.randbytes(12)])),
        lambda: Abort(rng.random() < 0.5),
    ]
    script += [rng.choice(makers)() for _ in range(rng.randint(1, 5))]
    return Case(query, tuple(script))


async def attacker(url: str, seed: int, stop: asyncio.Event) -> int:
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        case = random_case(rng)
        expect = predict(case)
        check(case, expect, await run_case(url, case, expect))
        n += 1
    return n


async def good_session(url: str) -> tuple[bytes, list[dict[str, Any]]]:
    """dev_001.wav at pace=asap in 20 ms frames: (output audio, final transcript events)."""
    frames = [SPEECH[i : i + 640] for i in range(0, len(SPEECH), 640)]
    out: list[bytes] = []
    events: list[dict[str, Any]] = []
    async with websockets.connect(url + "?encoding=pcm_s16le&sample_rate=16000&pace=asap",
                                  max_size=None) as ws:

        async def sender() -> None:
            for f in frames:
                await ws.send(f)
            await ws.send(json.dumps({"type": "close"}))

        sending = asyncio.create_task(sender())
        async for msg in ws:
            if isinstance(msg, bytes):
                out.append(msg)
            else:
                events.append(json.loads(msg))
        await sending
        assert ws.close_code == 1000
    assert events[-1]["type"] == "session.end"
    assert not [e for e in events if e["type"] == "error"]
    finals = [e for e in events if e["type"] in ("transcript.final", "redaction")]
    return b"".join(out), finals


def test_good_session_is_byte_identical_under_attack(fuzz_servers: FuzzServers,
                                                     record_property: Any) -> None:
    server = fuzz_servers.healthy()
    url = server.url
    solo_audio, solo_finals = asyncio.run(good_session(url))
    assert len(solo_audio) == len(SPEECH)
    assert any(e["type"] == "transcript.final" and e["text"] for e in solo_finals)

    async def under_attack() -> tuple[tuple[bytes, list[dict[str, Any]]], int]:
        stop = asyncio.Event()
        attackers = [asyncio.create_task(attacker(url, seed, stop)) for seed in (1, 2, 3)]
        await asyncio.sleep(0.2)  # the attack is under way before the good session starts
        try:
            good = await good_session(url)
        finally:
            stop.set()
        return good, sum(await asyncio.gather(*attackers))

    (audio, finals), attacks = asyncio.run(under_attack())
    record_property("attack_cases", attacks)
    print(f"\nattack: {attacks} bad sessions during one good session")
    assert attacks >= 20, "the attack was too thin to show anything"
    assert audio == solo_audio
    assert finals == solo_finals
    assert_server_healthy(server)
    assert fuzz_servers.failures() == []


# -- the HTTP endpoints: tokens, offers, sessions — with hostile headers and bodies ----

HTTP_STATUSES = {200, 204, 400, 401, 403, 404, 405, 413, 415, 429, 503, 507}
http_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"type": st.sampled_from(["offer", "answer", 1]),
                           "sdp": st.text(max_size=200) | st.just("v=0\r\na=candidate:1 1 "
                                                                  "udp 1 10.0.0.1 9 typ host"),
                           "config": json_values,
                           "ttl_s": json_values}).map(lambda d: json.dumps(d).encode()),
)
http_requests = st.fixed_dictionaries({
    "path": st.sampled_from(["/v1/tokens", "/v1/webrtc/offer", "/v1/sessions/" + "0" * 32,
                             "/v1/sessions/" + "0" * 32 + "/listen/webrtc",
                             "/v1/sessions/x/transcript", "/readyz", "/metrics"]),
    "method": st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    "content_type": st.sampled_from(["application/json", "text/plain", "", "application/json; "
                                     "charset=utf-8", "multipart/form-data; boundary=x"]),
    "origin": st.sampled_from([None, "null", "http://evil.example", "http://127.0.0.1:1"]),
    "host": st.sampled_from([None, "evil.example", "localhost", "127.0.0.1:1", "[::1]", "\u00e9"]),
    "auth": st.sampled_from([None, "Bearer ", "Bearer x", "Basic eDp5", "bearer st1.x.y"]),
    "body": http_bodies,
})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(req=http_requests)
def test_http_endpoints_answer_typed_errors_and_never_fail(server: RunningServer,
                                                           req: dict[str, Any]) -> None:
    """Whatever a page or a client sends to the HTTP routes: a status from the
    documented set, JSON errors, and a healthy server afterwards."""
    import http.client

    host, port = server.http.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {k: v for k, v in (("Content-Type", req["content_type"]), ("Origin", req["origin"]),
                                 ("Authorization", req["auth"])) if v}
    if req["host"] is not None:
        headers["Host"] = req["host"]
    body = req["body"] if req["method"] in ("POST", "PUT") else None
    try:
        conn.putrequest(req["method"], req["path"], skip_host=req["host"] is not None)
        for k, v in headers.items():
            conn.putheader(k, v.encode("utf-8"))
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        resp = conn.getresponse()
        status, data = resp.status, resp.read()
    finally:
        conn.close()
    assert status in HTTP_STATUSES, (status, data[:200])
    if status >= 400 and status != 405:
        assert json.loads(data)["type"] == "error", data[:200]
    assert server.proc.poll() is None
    assert http_json(server, "/healthz")["status"] == "ok"
