"""The Python client (streamserver.client) against a real server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streamserver import audio as audio_mod
from streamserver.client import (
    BadRequest,
    BufferOverflow,
    ClientError,
    Stream,
    Unauthorized,
    build_url,
    connect,
    listen,
    listen_url,
)
from streamserver.evaluation import Span, score_clip
from tests.conftest import FIXTURES, RunningServer, fixture_manifest, start_server, stop_server

pytestmark = pytest.mark.e2e

MANIFEST = fixture_manifest()
PII_DIGITS = {"dev_008.wav": "0175", "dev_014.wav": "2154"}
KEY = "client-key-0123456789"


def assert_masked(name: str, inp: np.ndarray, out: np.ndarray, rate: int) -> None:
    spans = [Span(p["entity"], p["start_s"], p["end_s"]) for p in MANIFEST[name]["pii"]]
    for entity, audible in score_clip(inp, out, rate, spans).entities:
        assert audible < 0.25, f"{name}: {entity} {audible:.0%} audible"


def assert_no_digits(events: list[dict[str, Any]], digits: str) -> None:
    texts = [e["text"] for e in events if "text" in e]
    texts += [w["text"] for e in events for w in e.get("words", ())]
    assert not any(digits in t.replace(" ", "").replace("-", "") for t in texts), texts


async def send_clip(s: Stream, samples: np.ndarray, rate: int, realtime: bool = False) -> None:
    """20 ms int16 frames (the client encodes arrays), then end of input."""
    frame = rate // 50
    t0 = asyncio.get_running_loop().time()
    for i in range(0, samples.shape[0], frame):
        await s.send(samples[i : i + frame])
        if realtime:
            due = t0 + (i + frame) / rate
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
    await s.close_input()


async def collect(it: Any) -> list[Any]:
    return [x async for x in it]


# --- pure: URLs and error types ------------------------------------------------------


def test_urls_carry_settings_as_query_parameters() -> None:
    url = build_url("ws://127.0.0.1:1/v1/stream?token=t",
                    {"delay_ms": 800, "entities": ["PERSON", "PHONE_NUMBER"], "record": True,
                     "bridge": None})
    assert url == ("ws://127.0.0.1:1/v1/stream?token=t&delay_ms=800"
                   "&entities=PERSON%2CPHONE_NUMBER&record=true")
    s = connect("ws://127.0.0.1:1/v1/stream", pace="asap", bridge="b1", role="agent")
    assert "bridge=b1" in s.url and "role=agent" in s.url and "pace=asap" in s.url
    assert "encoding=pcm_s16le" in s.url and "sample_rate=16000" in s.url
    assert listen_url("ws://127.0.0.1:1/v1/stream?x=1", "a/b") == \
        "ws://127.0.0.1:1/v1/sessions/a%2Fb/listen"


def test_nothing_listening_is_a_connection_failure() -> None:
    async def go() -> None:
        async with connect("ws://127.0.0.1:9/v1/stream"):
            pass

    with pytest.raises(ClientError) as err:
        asyncio.run(go())
    assert err.value.code == "connection_failed" and err.value.close_code is None


# --- a real server ---------------------------------------------------------------------


def test_pii_clip_comes_back_masked_with_events_and_audio_read_together(server) -> None:
    name = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."
    inp, rate = audio_mod.read_wav(FIXTURES / name)

    async def go() -> tuple[list[dict[str, Any]], list[bytes], Stream, str]:
        async with connect(server.url, sample_rate=rate, pace="asap", delay_ms=1500) as s:
            sending = asyncio.create_task(send_clip(s, inp[:, 0], rate))
            started = await s.started()
            events, chunks = await asyncio.gather(collect(s.events()), collect(s.audio()))
            await sending
        return events, chunks, s, started

    events, chunks, s, started = asyncio.run(go())
    out = audio_mod.decode(b"".join(chunks), audio_mod.AudioFormat("pcm_s16le", rate, 1))
    assert out.shape == inp.shape  # every sample back, aligned
    assert_masked(name, inp[:, 0], out[:, 0], rate)
    assert events[0]["type"] == "session.begin" and events[-1]["type"] == "session.end"
    assert s.session_id == started == events[0]["session_id"]
    assert s.config is not None and s.config["delay_ms"] == 1500
    assert s.end_stats == events[-1]["stats"]
    assert s.end_stats["audio_out_ms"] == pytest.approx(1000 * inp.shape[0] / rate, abs=1)
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert finals and any(w["redacted"] for e in finals for w in e["words"])
    assert_no_digits(events, PII_DIGITS[name])
    assert any(e["type"] == "redaction" for e in events)
    assert s.close_code == 1000


def test_bad_config_is_raised_wherever_the_user_looks(server) -> None:
    async def from_iterators() -> tuple[ClientError, ClientError, list[dict[str, Any]]]:
        async with connect(server.url, delay_ms=5) as s:
            seen: list[dict[str, Any]] = []
            with pytest.raises(ClientError) as from_events:
                async for e in s.events():
                    seen.append(e)
            with pytest.raises(ClientError) as from_audio:
                await collect(s.audio())
        return from_events.value, from_audio.value, seen

    ev_err, audio_err, seen = asyncio.run(from_iterators())
    for err in (ev_err, audio_err):
        assert isinstance(err, BadRequest)
        assert err.code == "bad_config" and err.close_code == 4400
    assert [e["type"] for e in seen] == ["error"]  # the event itself, then the raise

    async def unread() -> None:
        # Nothing iterated: leaving the block raises what the server said.
        async with connect(server.url, delay_ms=5) as s:
            await asyncio.sleep(0)
            await s.close_input()

    with pytest.raises(BadRequest) as err:
        asyncio.run(unread())
    assert err.value.code == "bad_config"


def test_an_unread_kind_does_not_hold_up_the_other(server) -> None:
    """Events only, with a tiny audio buffer: the events run to session.end, and
    audio() then says its buffer overflowed instead of handing back a gap."""
    name = "dev_014.wav"
    inp, rate = audio_mod.read_wav(FIXTURES / name)

    async def go() -> tuple[list[dict[str, Any]], list[bytes], BufferOverflow]:
        async with connect(server.url, sample_rate=rate, pace="asap",
                           audio_buffer_bytes=16_000) as s:
            sending = asyncio.create_task(send_clip(s, inp[:, 0], rate))
            events = await collect(s.events())
            await sending
            kept: list[bytes] = []
            with pytest.raises(BufferOverflow) as err:
                async for chunk in s.audio():
                    kept.append(chunk)
        return events, kept, err.value

    events, kept, err = asyncio.run(go())
    assert events[-1]["type"] == "session.end"
    assert_no_digits(events, PII_DIGITS[name])
    assert err.code == "audio_overflow"
    assert 0 < sum(map(len, kept)) < 2 * inp.shape[0]

    async def events_only() -> list[dict[str, Any]]:
        async with connect(server.url, sample_rate=rate, pace="asap", keep_audio=False) as s:
            sending = asyncio.create_task(send_clip(s, inp[:, 0], rate))
            events = await collect(s.events())
            await sending
            with pytest.raises(RuntimeError):
                await collect(s.audio())
        return events

    assert asyncio.run(events_only())[-1]["type"] == "session.end"


def test_listen_hears_a_running_sessions_redacted_audio(server) -> None:
    name = "dev_008.wav"
    inp, rate = audio_mod.read_wav(FIXTURES / name)

    async def go() -> tuple[bytes, list[dict[str, Any]], bytes, list[dict[str, Any]]]:
        async with connect(server.url, sample_rate=rate, pace="realtime", delay_ms=1000) as s:
            session_id = await s.started()
            async with listen(server.url, session_id) as heard:
                # Joined before any audio is sent: the listener hears it all.
                await asyncio.sleep(0.3)
                sending = asyncio.create_task(send_clip(s, inp[:, 0], rate, realtime=True))
                (events, chunks, heard_events, heard_chunks) = await asyncio.gather(
                    collect(s.events()), collect(s.audio()),
                    collect(heard.events()), collect(heard.audio()))
                await sending
                assert heard.session_id == session_id and heard.end_stats is not None
        return b"".join(chunks), events, b"".join(heard_chunks), heard_events

    main_audio, events, heard_audio, heard_events = asyncio.run(go())
    assert heard_events[0]["type"] == "session.begin"
    assert heard_events[0]["session_id"] == events[0]["session_id"]
    assert heard_events[-1]["type"] == "session.end"
    assert len(heard_audio) > 0 and heard_audio == main_audio
    assert_no_digits(heard_events, PII_DIGITS[name])
    assert "Linda" not in str(heard_events)

    async def unknown() -> None:
        async with listen(server.url, "0" * 32) as heard:
            await collect(heard.events())

    with pytest.raises(ClientError) as err:
        asyncio.run(unknown())
    assert err.value.code == "unknown_session" and err.value.close_code == 4404


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("client-keyed"),
                       env={"STREAMSERVER_API_KEYS": KEY})
    yield srv
    stop_server(srv)


def test_api_key_is_required_and_accepted(keyed: RunningServer) -> None:
    samples = np.zeros(16000, dtype=np.int16)  # one second of silence

    async def refused(api_key: str | None) -> None:
        async with connect(keyed.url, api_key=api_key, pace="asap") as s:
            await collect(s.events())

    async def session(api_key: str) -> list[dict[str, Any]]:
        # realtime: session.begin comes before any audio (in asap it may wait for some)
        async with connect(keyed.url, api_key=api_key, pace="realtime", delay_ms=500) as s:
            first = None
            async for first in s.events():  # noqa: B007
                break  # stop early, then carry on with a new iterator
            audio = asyncio.create_task(collect(s.audio()))
            await asyncio.sleep(0.05)  # nothing sent yet: that consumer is waiting
            with pytest.raises(RuntimeError):  # one consumer per kind at a time
                await collect(s.audio())
            sending = asyncio.create_task(send_clip(s, samples, 16000, realtime=True))
            events = [first, *await collect(s.events())]
            await sending
            assert len(b"".join(await audio)) == 2 * samples.size
        return events

    for wrong in (None, "not-the-key"):
        with pytest.raises(Unauthorized) as err:
            asyncio.run(refused(wrong))
        assert err.value.code == "unauthorized" and err.value.close_code == 4401
    events = asyncio.run(session(KEY))
    assert events[0]["type"] == "session.begin" and events[-1]["type"] == "session.end"
    assert KEY not in str(events)
