"""Deepgram's live API (``/v1/listen``) against a real server on loopback.

The same clip through ``/v1/listen`` and through protocol v1 must give the same
masked words; Deepgram's own SDK (pointed at this server) must work with a key in
its ``Token`` header; bad input gets a typed ``Error`` and its close code, and
only its own session ends.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserver import audio as audio_mod
from streamserver.cli import stream_file
from tests.conftest import FIXTURES, RunningServer, fixture_manifest, start_server, stop_server

pytestmark = pytest.mark.e2e

MANIFEST = fixture_manifest()
# The spoken value of each clip's PII, as digits: never in any Results text.
PII_DIGITS = {"dev_001.wav": "0149", "dev_008.wav": "0175", "dev_014.wav": "2154"}
KEY = "deepgram-test-key-0123456789"
FRAME_MS = 20


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def base_url(server: RunningServer) -> str:
    return server.url.rsplit("/v1/", 1)[0]


def listen_url(server: RunningServer, **params: Any) -> str:
    items = [(k, v) for k, vs in params.items()
             for v in (vs if isinstance(vs, list) else [vs])]
    return f"{base_url(server)}/v1/listen?{urlencode(items)}"


def pcm16(name: str, channels: int = 1) -> tuple[bytes, int]:
    """The clip as s16le bytes; ``channels=2``: the speech left, silence right."""
    samples, rate = audio_mod.read_wav(FIXTURES / name)
    if channels == 2:
        samples = np.concatenate([samples[:, :1], np.zeros_like(samples[:, :1])], axis=1)
    return audio_mod.encode(samples, audio_mod.AudioFormat("pcm_s16le", rate, channels)), rate


def texts_of(messages: list[dict[str, Any]]) -> list[str]:
    """Every transcript and word text the client was sent (interim results included)."""
    out = []
    for m in messages:
        if m.get("type") == "Results":
            alt = m["channel"]["alternatives"][0]
            out.append(alt["transcript"])
            out += [w["punctuated_word"] for w in alt["words"]]
            out += [w["word"] for w in alt["words"]]
    return out


def assert_no_digits(name: str, messages: list[dict[str, Any]]) -> None:
    digits = PII_DIGITS[name]
    texts = texts_of(messages)
    assert texts, "no Results at all"
    assert not any(digits in t.replace(" ", "").replace("-", "") for t in texts), texts


class Session:
    """What a raw Deepgram client saw: messages, close code and reason, headers."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.binary = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.request_id: str | None = None
        self.subprotocol: str | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.of_type("Results") if m["is_final"]]


async def deepgram_session(url: str, script: list[bytes | str], *,
                           headers: dict[str, str] | None = None,
                           subprotocols: list[str] | None = None,
                           realtime: bool = False) -> Session:
    """Send ``script`` (audio frames and text messages) and read until the close."""
    out = Session()
    async with websockets.connect(url, additional_headers=headers,
                                  subprotocols=subprotocols,  # type: ignore[arg-type]
                                  max_size=None, close_timeout=10) as ws:
        out.request_id = ws.response.headers.get("dg-request-id")
        out.subprotocol = ws.subprotocol

        async def send() -> None:
            t0 = time.monotonic()
            try:
                for k, item in enumerate(script):
                    if realtime and isinstance(item, bytes):
                        await asyncio.sleep(max(0.0, t0 + k * FRAME_MS / 1000 - time.monotonic()))
                    await ws.send(item)
            except websockets.ConnectionClosed:
                pass  # the server ended the session early (an error): the test says if ok

        sender = asyncio.create_task(send())
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    out.binary += len(msg)
                else:
                    out.messages.append(json.loads(msg))
        except websockets.ConnectionClosed:
            pass
        await sender
    out.close_code = ws.close_code
    out.close_reason = ws.close_reason or ""
    return out


def frames(pcm: bytes, rate: int, channels: int = 1) -> list[bytes | str]:
    step = rate * FRAME_MS // 1000 * 2 * channels
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


CLOSE = json.dumps({"type": "CloseStream"})
FINALIZE = json.dumps({"type": "Finalize"})
KEEPALIVE = json.dumps({"type": "KeepAlive"})


def assert_clean_end(s: Session) -> None:
    assert s.messages[-1]["type"] == "Metadata", [m["type"] for m in s.messages[-3:]]
    assert s.close_code == 1000
    assert not s.of_type("Error"), s.of_type("Error")
    assert s.binary == 0  # redacted audio is not part of Deepgram's protocol


def assert_results_shape(s: Session, n_channels: int = 1) -> None:
    for m in s.of_type("Results"):
        assert set(m) >= {"type", "channel_index", "duration", "start", "is_final",
                          "speech_final", "from_finalize", "channel", "metadata"}
        assert m["channel_index"][1] == n_channels and 0 <= m["channel_index"][0] < n_channels
        assert m["metadata"]["request_id"] == s.request_id
        assert set(m["metadata"]) >= {"request_id", "model_info", "model_uuid"}
        alt = m["channel"]["alternatives"][0]
        for w in alt["words"]:
            assert set(w) == {"word", "start", "end", "confidence", "punctuated_word"}
        if not m["is_final"]:
            assert not m["speech_final"] and not m["from_finalize"]
    meta = s.messages[-1]
    assert meta["request_id"] == s.request_id and meta["transaction_key"] == "deprecated"
    assert {"sha256", "created", "duration", "channels"} <= set(meta)


# -- the same masks as protocol v1 -------------------------------------------------------
@pytest.mark.parametrize("name", ["dev_008.wav", "dev_014.wav"])
def test_masked_transcript_equals_protocol_v1(server: RunningServer, name: str) -> None:
    pcm, rate = pcm16(name)
    dg = run(deepgram_session(
        listen_url(server, encoding="linear16", sample_rate=rate, pace="asap",
                   interim_results="true", vad_events="true", utterance_end_ms=1000,
                   model="nova-3", language="en-US", smart_format="true", punctuate="true"),
        [*frames(pcm, rate), CLOSE]))
    _, _, events = run(stream_file(FIXTURES / name, server.url, {"encoding": "pcm_s16le"},
                                   pace="asap"))
    assert_clean_end(dg)
    assert_results_shape(dg)
    assert dg.request_id and len(dg.request_id) == 32
    v1_finals = [e for e in events if e["type"] == "transcript.final"]
    v1_words = [w["text"] for e in v1_finals for w in e["words"]]
    dg_words = [w["punctuated_word"] for m in dg.finals for w in m["channel"]["alternatives"][0]
                ["words"]]
    assert dg_words == v1_words  # the same words, the same '#' in the same places
    assert any("#" in w for w in dg_words)
    dg_text = " ".join(t for m in dg.finals if (t := m["channel"]["alternatives"][0]["transcript"]))
    assert dg_text == " ".join(e["text"] for e in v1_finals)
    assert_no_digits(name, dg.messages)
    assert dg.of_type("Results") != dg.finals, "interim_results=true gave no interim Results"
    assert dg.of_type("SpeechStarted")  # vad_events=true
    assert any(m["speech_final"] for m in dg.finals)
    assert dg.of_type("UtteranceEnd")  # utterance_end_ms set
    meta = dg.messages[-1]
    assert meta["duration"] == pytest.approx(len(pcm) / 2 / rate, abs=0.01)
    assert meta["channels"] == 1


def test_defaults_send_no_interim_no_vad_events(server: RunningServer) -> None:
    pcm, rate = pcm16("dev_001.wav")
    s = run(deepgram_session(listen_url(server, encoding="linear16", sample_rate=rate,
                                        pace="asap"), [*frames(pcm, rate), CLOSE]))
    assert_clean_end(s)
    assert s.finals and s.of_type("Results") == s.finals
    assert not s.of_type("SpeechStarted") and not s.of_type("UtteranceEnd")
    assert_no_digits("dev_001.wav", s.messages)


def test_redact_narrows_to_the_asked_entities(server: RunningServer) -> None:
    """``redact=ssn`` masks the SSN only; ``redact=pci`` (cards) leaves an SSN readable,
    as Deepgram does — so the mapping is really applied, not ignored."""
    pcm, rate = pcm16("dev_014.wav")
    ssn = run(deepgram_session(listen_url(server, encoding="linear16", sample_rate=rate,
                                          pace="asap", redact="ssn"),
                               [*frames(pcm, rate), CLOSE]))
    pci = run(deepgram_session(listen_url(server, encoding="linear16", sample_rate=rate,
                                          pace="asap", redact=["pci"]),
                               [*frames(pcm, rate), CLOSE]))
    assert_clean_end(ssn)
    assert_clean_end(pci)
    assert_no_digits("dev_014.wav", ssn.messages)
    assert not any("#" in t for t in texts_of(pci.messages))


def test_multichannel_results_carry_the_channel(server: RunningServer) -> None:
    pcm, rate = pcm16("dev_008.wav", channels=2)
    s = run(deepgram_session(listen_url(server, encoding="linear16", sample_rate=rate,
                                        channels=2, multichannel="true", pace="asap"),
                             [*frames(pcm, rate, channels=2), CLOSE]))
    assert_clean_end(s)
    assert_results_shape(s, n_channels=2)
    assert {tuple(m["channel_index"]) for m in s.finals} == {(0, 2)}  # speech is on the left
    assert s.messages[-1]["channels"] == 2
    assert_no_digits("dev_008.wav", s.messages)


# -- Finalize, CloseStream, realtime ------------------------------------------------------
def test_realtime_finalize_then_close_stream(server: RunningServer) -> None:
    """Live pace (the default): Finalize mid-stream and after the audio, KeepAlive,
    then CloseStream: from_finalize Results, Metadata last, close 1000."""
    pcm, rate = pcm16("dev_001.wav")
    audio = frames(pcm, rate)
    half = len(audio) // 2
    script = [*audio[:half], FINALIZE, *audio[half:], KEEPALIVE, FINALIZE]
    s = run(deepgram_session(listen_url(server, encoding="linear16", sample_rate=rate),
                             [*script, CLOSE], realtime=True))
    assert_clean_end(s)
    assert_results_shape(s)
    assert any(m["from_finalize"] for m in s.finals)
    assert all(m["is_final"] for m in s.of_type("Results"))
    assert_no_digits("dev_001.wav", s.messages)


def test_empty_binary_frame_closes_the_stream(server: RunningServer) -> None:
    pcm, rate = pcm16("dev_009.wav")
    s = run(deepgram_session(listen_url(server, encoding="linear16", sample_rate=rate,
                                        pace="asap"), [*frames(pcm, rate), b""]))
    assert_clean_end(s)
    assert s.finals


# -- Deepgram's SDK, with a key --------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("deepgram-keyed"),
                       env={"STREAMSERVER_API_KEYS": KEY})
    yield srv
    stop_server(srv)


def test_deepgram_sdk_with_token_header(keyed: RunningServer) -> None:
    """deepgram-sdk, its URL pointed here, its key sent as ``Authorization: Token``."""
    deepgram = pytest.importorskip("deepgram")
    from deepgram.environment import DeepgramClientEnvironment
    from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

    pcm, rate = pcm16("dev_014.wav")
    env = DeepgramClientEnvironment(base=keyed.http, production=base_url(keyed),
                                    agent=base_url(keyed), agent_rest=keyed.http)
    client = deepgram.AsyncDeepgramClient(api_key=KEY, environment=env)
    received: list[Any] = []

    async def go() -> int | None:
        async with client.listen.v1.connect(
                model="nova-3", encoding="linear16", sample_rate=rate, redact="pii",
                interim_results="true",
                request_options={"additional_query_parameters": {"pace": "asap"}}) as conn:
            for chunk in frames(pcm, rate):
                assert isinstance(chunk, bytes)
                await conn.send_media(chunk)
            await conn.send_finalize()
            await conn.send_keep_alive()
            await conn.send_close_stream()
            async for msg in conn:
                received.append(msg)
            return conn._websocket.close_code  # type: ignore[no-any-return]

    close_code = run(go())
    assert close_code == 1000
    assert isinstance(received[-1], ListenV1Metadata)
    results = [m for m in received if isinstance(m, ListenV1Results)]
    finals = [m for m in results if m.is_final]
    assert finals and any(m.from_finalize for m in finals)
    texts = [m.channel.alternatives[0].transcript for m in results]
    assert any("#" in t for t in texts)
    assert not any(PII_DIGITS["dev_014.wav"] in t.replace(" ", "").replace("-", "")
                   for t in texts)
    assert {m.metadata.request_id for m in results} == {received[-1].request_id}


def test_key_in_subprotocol_and_bearer(keyed: RunningServer) -> None:
    pcm, rate = pcm16("dev_009.wav")
    url = listen_url(keyed, encoding="linear16", sample_rate=rate, pace="asap")
    script = [*frames(pcm, rate)[:50], CLOSE]
    sub = run(deepgram_session(url, script, subprotocols=["token", KEY]))
    assert sub.subprotocol == "token"
    assert_clean_end(sub)
    bearer = run(deepgram_session(url, script, headers={"Authorization": f"Bearer {KEY}"}))
    assert_clean_end(bearer)
    token = run(deepgram_session(url, script, headers={"Authorization": f"token {KEY}"}))
    assert_clean_end(token)


@pytest.mark.parametrize("auth", [
    {}, {"headers": {"Authorization": "Token wrong-key-0123456789"}},
    {"subprotocols": ["token", "wrong-key-0123456789"]},
    {"headers": {"Authorization": "Basic " + KEY}},
])
def test_missing_or_wrong_key_is_refused(keyed: RunningServer, auth: dict[str, Any]) -> None:
    url = listen_url(keyed, encoding="linear16", sample_rate=16000)
    s = run(deepgram_session(url, [CLOSE], **auth))
    assert [m["type"] for m in s.messages] == ["Error"]
    assert s.messages[0]["variant"] == "unauthorized"
    assert s.close_code == 4401 and s.close_reason == "unauthorized"
    assert KEY not in keyed.log_text() and "wrong-key" not in keyed.log_text()


# -- bad input: typed errors, other sessions unaffected ---------------------------------------
GOOD = {"encoding": "linear16", "sample_rate": 16000, "pace": "asap"}
BAD_CASES = [
    # (query, script, error code, close code)
    ({**GOOD, "encoding": "opus"}, [], "unsupported_encoding", 4400),
    ({**GOOD, "encoding": "flac"}, [], "unsupported_encoding", 4400),
    ({"sample_rate": 16000}, [], "config_required", 4400),
    ({"encoding": "linear16"}, [], "config_required", 4400),
    ({**GOOD, "sample_rate": 11025}, [], "bad_config", 4400),
    ({**GOOD, "redact": "everything"}, [], "bad_config", 4400),
    ({**GOOD, "interim_results": "perhaps"}, [], "bad_config", 4400),
    ({**GOOD, "no_such_setting": "1"}, [], "bad_config", 4400),
    (GOOD, ["{not json"], "invalid_json", 4400),
    (GOOD, ["[1, 2]"], "invalid_json", 4400),
    (GOOD, [json.dumps({"type": "Shout"})], "unknown_message", 4400),
    (GOOD, [json.dumps({"type": "close"})], "unknown_message", 4400),  # v1's, not Deepgram's
    (GOOD, [b"\x00\x01\x02"], "bad_audio", 1007),
]


def test_bad_input_gets_typed_errors_and_spares_other_sessions(server: RunningServer) -> None:
    pcm, rate = pcm16("dev_001.wav")

    async def all_at_once() -> tuple[Session, list[Session]]:
        good = asyncio.create_task(deepgram_session(
            listen_url(server, encoding="linear16", sample_rate=rate, pace="asap"),
            [*frames(pcm, rate), CLOSE]))
        bad = await asyncio.gather(*(
            deepgram_session(listen_url(server, **query), [*script, KEEPALIVE])
            for query, script, _, _ in BAD_CASES))
        return await good, list(bad)

    good, bad = run(all_at_once())
    for (query, script, code, close_code), s in zip(BAD_CASES, bad, strict=True):
        where = f"{query} {script}: {s.messages} {s.close_code}"
        assert [m["type"] for m in s.messages] == ["Error"], where
        err = s.messages[0]
        assert err["variant"] == code and err["code"] == code, where
        assert err["description"] and err["message"] == err["description"], where
        assert s.close_code == close_code and s.close_reason == code, where
        # An error names the rule, never echoes what was sent.
        assert "everything" not in err["description"] and "Shout" not in err["description"]
    assert "opus" in bad[0].messages[0]["description"]  # a Deepgram encoding we lack: named
    assert_clean_end(good)
    assert_no_digits("dev_001.wav", good.messages)
    assert sessions_left(server) == 0


def sessions_left(server: RunningServer) -> int:
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(server.http + "/readyz", timeout=5) as r:
            left = int(json.loads(r.read())["sessions"])
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


# -- a small fuzz: any text frame is either a known message or a typed error -----------------
KNOWN = ("KeepAlive", "Finalize", "CloseStream")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)
text_frames = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.builds(lambda t, extra: json.dumps({"type": t, **extra}),
              st.sampled_from([*KNOWN, "keepalive", "Configure", "", "Results"]),
              st.dictionaries(st.sampled_from(["a", "type2"]), json_values, max_size=2)),
)


def expected(frame: str) -> str:
    try:
        obj = json.loads(frame)
    except ValueError:
        return "invalid_json"
    if not isinstance(obj, dict):
        return "invalid_json"
    kind = obj.get("type")
    if kind not in KNOWN:
        return "unknown_message"
    return "end"  # a known message; the CloseStream after it ends the session


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(frame=text_frames)
def test_any_text_frame_is_handled_or_refused_with_a_type(server: RunningServer,
                                                          frame: str) -> None:
    s = run(deepgram_session(listen_url(server, **GOOD), [bytes(640), frame, CLOSE]))
    outcome = expected(frame)
    if outcome == "end":
        assert s.messages[-1]["type"] == "Metadata" and s.close_code == 1000, s.messages
    else:
        errors = s.of_type("Error")
        assert len(errors) == 1 and s.messages[-1] is errors[0], (frame, s.messages)
        assert errors[0]["variant"] == outcome and s.close_code == 4400, (frame, s.messages)


def test_docs_name_every_error_code() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "deepgram.md").read_text()
    for _, _, code, close_code in BAD_CASES:
        assert f"`{code}`" in text and str(close_code) in text, code


# -- the mapping itself, without a server (fast) ----------------------------------------------
def _final(text: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    words = [{"text": t, "start": start, "end": end, "redacted": "#" in t,
              "entity": "PHONE_NUMBER" if "#" in t else None, "confidence": 0.9}
             for t in text.split()]
    return {"type": "transcript.final", "is_final": True, "text": text, "start": start,
            "end": end, "words": words, **extra}


def _partial(text: str, start: float, end: float) -> dict[str, Any]:
    return {"type": "transcript.partial", "is_final": False, "text": text, "start": start,
            "end": end}


def _mapper(realtime: bool = False, **opts: Any) -> Any:
    from streamserver.server.deepgram import ListenOptions, ResultsMapper

    return ResultsMapper("sid", ListenOptions(**opts), n_channels=1, audio_channels=1,
                         realtime=realtime)


def _feed(mapper: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for e in events for m in mapper.event(e)]


def test_only_final_events_become_final_results() -> None:
    """A partial word that a later pass changed (``4 1 2`` → ``for one too``) is sent
    as an interim only; is_final Results are exactly the final events."""
    m = _mapper(interim_results=True)
    out = _feed(m, [_partial("call me at ###", 0.0, 1.0), _final("call me at", 0.0, 0.8),
                    _partial("for one too", 0.8, 1.5), _final("for one too", 0.8, 1.5),
                    {"type": "session.end", "stats": {}}])
    finals = [r["channel"]["alternatives"][0]["transcript"] for r in out
              if r["type"] == "Results" and r["is_final"]]
    assert finals == ["call me at", "for one too"]
    assert out[-1]["type"] == "Metadata"


def test_speech_final_on_the_final_that_completes_the_utterance() -> None:
    m = _mapper(utterance_end_ms=1000)
    out = _feed(m, [{"type": "speech.started", "start": 0.0},
                    _final("my number is", 0.1, 1.0), _partial("###", 1.0, 2.0),
                    {"type": "speech.ended", "start": 0.0, "end": 2.5},
                    _final("###-####", 1.0, 2.0), {"type": "redaction", "entity": "X"},
                    {"type": "session.end", "stats": {}}])
    results = [r for r in out if r["type"] == "Results"]
    assert [r["speech_final"] for r in results] == [False, True]
    assert [r["type"] for r in out] == ["Results", "Results", "UtteranceEnd", "Metadata"]
    assert out[2]["last_word_end"] == 2.0


def test_an_utterance_whose_last_pass_adds_nothing_still_ends() -> None:
    m = _mapper()
    out = _feed(m, [_final("hello there", 0.0, 1.0), _partial("uh", 1.0, 1.2),
                    {"type": "speech.ended", "start": 0.0, "end": 1.5},
                    _final("next one", 3.0, 4.0)])
    assert m.held is not None  # "next one" waits for what follows it
    out += m.audio()  # audio after it: no more words in its batch
    results = [r for r in out if r["type"] == "Results"]
    assert [(r["channel"]["alternatives"][0]["transcript"], r["speech_final"])
            for r in results] == [("hello there", False), ("", True), ("next one", False)]


def test_finalize_marks_the_next_complete_final() -> None:
    m = _mapper()
    out = _feed(m, [_partial("one two", 0.0, 1.0)])
    assert m.finalize() == []  # words pending: their final will say it
    out = _feed(m, [_final("one two", 0.0, 1.0), {"type": "session.end", "stats": {}}])
    assert [r.get("from_finalize") for r in out] == [True, None]
    idle = _mapper(realtime=True)
    (empty,) = idle.finalize()  # nothing pending: answered at once
    assert empty["from_finalize"] and empty["is_final"]


def test_redact_values_map_to_entities() -> None:
    from streamserver.server.deepgram import NUMBER_ENTITIES, translate_params

    base = [("encoding", "linear16"), ("sample_rate", "8000")]
    params, _ = translate_params([*base, ("redact", "pci"), ("redact", "ssn")])
    assert params["entities"] == ["CREDIT_CARD", "CREDIT_CARD_EXPIRATION", "CREDIT_CARD_CVV",
                                  "DTMF", "US_SSN"]
    params, _ = translate_params([*base, ("redact", "numbers")])
    assert params["entities"] == list(NUMBER_ENTITIES)
    params, _ = translate_params([*base, ("redact", "name,phone_number"), ("model", "nova-3")])
    assert params == {"encoding": "pcm_s16le", "sample_rate": "8000",
                      "entities": ["PERSON", "PHONE_NUMBER"]}
    params, _ = translate_params([*base, ("multichannel", "true"), ("channels", "2")])
    assert params["channel_roles"] == "caller,agent"
