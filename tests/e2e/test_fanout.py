"""Fan-out: listeners get a live session's redacted output, never its input."""

from __future__ import annotations

import asyncio
import json

import websockets

from streamserver import audio as audio_mod
from tests.conftest import FIXTURES


async def _session_with_listener(url: str) -> tuple[bytes, list[dict], bytes, list[dict]]:
    pcm, rate = audio_mod.read_wav(FIXTURES / "dev_008.wav")  # Linda Smith, 830-555-0175
    raw = pcm.tobytes()
    frame = rate // 50 * 2
    query = f"?encoding=pcm_s16le&sample_rate={rate}&delay_ms=1000&pace=realtime"
    main_audio, main_events = bytearray(), []
    heard_audio, heard_events = bytearray(), []
    async with websockets.connect(url + query) as ws:
        begin = json.loads(await ws.recv())
        listen_url = url.replace("/v1/stream", f"/v1/sessions/{begin['session_id']}/listen")
        main_events.append(begin)

        async def listener() -> None:
            async with websockets.connect(listen_url) as lw:
                async for msg in lw:
                    if isinstance(msg, bytes):
                        heard_audio.extend(msg)
                    else:
                        heard_events.append(json.loads(msg))

        listening = asyncio.create_task(listener())
        await asyncio.sleep(0.3)

        async def sender() -> None:
            for i in range(0, len(raw), frame):
                await ws.send(raw[i : i + frame])
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"type": "close"}))

        sending = asyncio.create_task(sender())
        async for msg in ws:
            if isinstance(msg, bytes):
                main_audio.extend(msg)
            else:
                main_events.append(json.loads(msg))
        await sending
        await asyncio.wait_for(listening, 10)
    return bytes(main_audio), main_events, bytes(heard_audio), heard_events


def test_listener_gets_the_redacted_stream(server) -> None:
    main_audio, main_events, heard_audio, heard_events = asyncio.run(
        _session_with_listener(server.url))
    # Joined before any audio: the listener hears exactly what the client hears.
    assert heard_events[0]["type"] == "session.begin"
    assert heard_events[0]["session_id"] == main_events[0]["session_id"]
    assert heard_audio == main_audio and len(heard_audio) > 0
    finals = [e["text"] for e in heard_events if e["type"] == "transcript.final"]
    assert finals == [e["text"] for e in main_events if e["type"] == "transcript.final"]
    assert any(e["type"] == "redaction" for e in heard_events)
    assert heard_events[-1]["type"] == "session.end"
    text = json.dumps(heard_events)
    assert "Linda" not in text and "0175" not in text


def test_unknown_session_is_refused(server) -> None:
    async def go() -> tuple[dict, int | None]:
        url = server.url.replace("/v1/stream", "/v1/sessions/nope/listen")
        async with websockets.connect(url) as lw:
            msg = json.loads(await lw.recv())
            await lw.wait_closed()
            return msg, lw.close_code

    msg, code = asyncio.run(go())
    assert msg["code"] == "unknown_session" and code == 4404
