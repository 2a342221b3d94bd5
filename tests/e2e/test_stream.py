"""End to end: a real server on loopback, real models, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from streamserver import audio as audio_mod
from streamserver.cli import stream_file, transcript_from_events
from streamserver.evaluation import Span, score_clip
from tests.conftest import FIXTURES, fixture_manifest

pytestmark = pytest.mark.e2e

MANIFEST = fixture_manifest()
PII_DIGITS = {"dev_001.wav": "0149", "dev_008.wav": "0175", "dev_014.wav": "2154"}


def spans(name: str) -> list[Span]:
    return [Span(p["entity"], p["start_s"], p["end_s"]) for p in MANIFEST[name]["pii"]]


def assert_masked(name: str, inp: np.ndarray, out: np.ndarray, rate: int) -> None:
    score = score_clip(inp, out, rate, spans(name))
    for entity, audible in score.entities:
        assert audible < 0.25, f"{name}: {entity} {audible:.0%} audible"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("name", ["dev_008.wav", "dev_014.wav"])
def test_asap_stream_masks_pii_audio_and_text(server, name: str) -> None:
    out, rate, events = run(stream_file(FIXTURES / name, server.url, {"encoding": "pcm_s16le"},
                                        pace="asap"))
    inp, _ = audio_mod.read_wav(FIXTURES / name)
    assert out.shape == inp.shape  # every sample comes back, aligned
    assert_masked(name, inp[:, 0], out[:, 0], rate)
    types = [e["type"] for e in events]
    assert types[0] == "session.begin" and types[-1] == "session.end"
    assert "speech.started" in types and "transcript.final" in types
    transcript = transcript_from_events(events)
    digits = PII_DIGITS[name]
    # Never readable, partial or final (texts only: a stat such as masked_ms may
    # hold the same digits by chance).
    texts = [e["text"] for e in events if "text" in e]
    texts += [w["text"] for e in events for w in e.get("words", ())]
    assert not any(digits in t.replace(" ", "").replace("-", "") for t in texts), texts
    assert any(w["redacted"] for w in transcript["words"])
    redactions = [e for e in events if e["type"] == "redaction"]
    assert redactions and all(set(r) == {"type", "entity", "start", "end", "score", "reason"}
                              for r in redactions)
    # Redaction events carry no original text, only where and what.
    assert all(isinstance(r["start"], float) for r in redactions)
    stats = events[-1]["stats"]
    assert stats["audio_out_ms"] == pytest.approx(1000 * inp.shape[0] / rate, abs=1)


def test_no_pii_clip_is_not_masked(server) -> None:
    name = "a02_fasterwhisper_stereo_diarization_left.wav"
    out, rate, events = run(stream_file(FIXTURES / name, server.url, {"encoding": "pcm_s16le"},
                                        pace="asap"))
    inp, _ = audio_mod.read_wav(FIXTURES / name)
    assert out.shape == inp.shape
    from streamserver.evaluation import masked_speech_share

    masked, speech = masked_speech_share(inp[:, 0], out[:, 0], rate)
    assert masked / speech < 0.05
    assert "wizard" in transcript_from_events(events)["text"].lower()


def test_realtime_release_is_at_t_plus_delay(server) -> None:
    """Every output sample arrives no earlier than its input + D (and not much later)."""
    name = "dev_001.wav"
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    delay_ms = 1000
    fmt = audio_mod.AudioFormat("pcm_s16le", rate, 1)
    frame = rate // 50
    sent_at: list[float] = []
    received: list[tuple[float, int]] = []  # (arrival, cumulative samples)
    events: list[dict] = []
    closed_at: list[float] = []

    async def go() -> None:
        url = f"{server.url}?encoding=pcm_s16le&sample_rate={rate}&delay_ms={delay_ms}"
        async with websockets.connect(url) as ws:
            async def sender() -> None:
                t0 = time.monotonic()
                for k, i in enumerate(range(0, inp.shape[0], frame)):
                    await asyncio.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
                    sent_at.append(time.monotonic())
                    await ws.send(audio_mod.encode(inp[i : i + frame], fmt))
                closed_at.append(time.monotonic())
                await ws.send(json.dumps({"type": "close"}))

            task = asyncio.create_task(sender())
            total = 0
            async for msg in ws:
                if isinstance(msg, bytes):
                    total += len(msg) // 2
                    received.append((time.monotonic(), total))
                else:
                    events.append(json.loads(msg))
            await task

    run(go())
    assert received[-1][1] == inp.shape[0]
    n_frames = len(sent_at)
    early, late = [], []
    for arrival, total in received:
        last_frame = min((total - 1) // frame, n_frames - 1)
        if arrival >= closed_at[0]:
            continue  # after "close" the decided tail is released at once, by design
        due = sent_at[last_frame] + delay_ms / 1000
        early.append(due - arrival)
        late.append(arrival - due)
    assert max(early) < 0.05, "audio released before t + D"
    assert np.median(late) < 0.25
    assert events[-1]["type"] == "session.end"


def test_two_sessions_at_once_both_complete(server) -> None:
    a, b = "dev_008.wav", "dev_001.wav"

    async def both():
        return await asyncio.gather(
            stream_file(FIXTURES / a, server.url, {"encoding": "pcm_s16le"}, pace="asap"),
            stream_file(FIXTURES / b, server.url, {"encoding": "pcm_s16le", "delay_ms": 1500},
                        pace="realtime"),
        )

    (out_a, rate, ev_a), (out_b, _, ev_b) = run(both())
    for name, out, ev in ((a, out_a, ev_a), (b, out_b, ev_b)):
        inp, _ = audio_mod.read_wav(FIXTURES / name)
        assert out.shape == inp.shape
        assert_masked(name, inp[:, 0], out[:, 0], rate)
        assert ev[-1]["type"] == "session.end"
    assert ev_a[0]["session_id"] != ev_b[0]["session_id"]


def _telephony(name: str) -> tuple[np.ndarray, bytes, audio_mod.AudioFormat]:
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    x8k = audio_mod.resample(inp[:, 0].astype(np.float32) / 32768, rate, 8000)
    fmt = audio_mod.AudioFormat("mulaw", 8000, 1)
    pcm = audio_mod.to_int16(x8k)[:, None]
    return pcm, audio_mod.encode(pcm, fmt), fmt


async def _raw_session(url: str, frames: list[bytes | str]) -> tuple[list[bytes], list[dict], Any]:
    audio_out: list[bytes] = []
    events: list[dict] = []
    async with websockets.connect(url) as ws:
        try:
            for f in frames:
                await ws.send(f)
            async for msg in ws:
                if isinstance(msg, bytes):
                    audio_out.append(msg)
                else:
                    events.append(json.loads(msg))
        except websockets.ConnectionClosedError:
            pass  # an error close: the code is what the test looks at
        return audio_out, events, ws.close_code


def test_mulaw_8k_telephony_path(server) -> None:
    name = "dev_008.wav"
    _pcm, data, fmt = _telephony(name)
    frame = 160  # 20 ms of 8 kHz mu-law
    frames: list[bytes | str] = [data[i : i + frame] for i in range(0, len(data), frame)]
    frames.append(json.dumps({"type": "close"}))
    url = f"{server.url}?encoding=mulaw&sample_rate=8000&pace=asap"
    audio_out, _events, code = run(_raw_session(url, frames))
    assert code == 1000
    out = audio_mod.decode(b"".join(audio_out), fmt)
    assert out.shape[0] == len(data)  # one mu-law byte per sample, all back
    # Compare against the mu-law round trip of the input (the codec is lossy).
    ref = audio_mod.decode(data, fmt)
    assert_masked(name, ref[:, 0], out[:, 0], 8000)


def test_stereo_48k_with_configure_message(server) -> None:
    name = "dev_014.wav"
    inp, rate = audio_mod.read_wav(FIXTURES / name)
    up = audio_mod.to_int16(audio_mod.resample(inp[:, 0].astype(np.float32) / 32768, rate, 48000))
    stereo = np.stack([up, up], axis=1)
    fmt = audio_mod.AudioFormat("pcm_s16le", 48000, 2)
    data = audio_mod.encode(stereo, fmt)
    step = fmt.bytes_per_frame * 960
    frames: list[bytes | str] = [json.dumps({"type": "configure", "encoding": "pcm_s16le",
                                             "sample_rate": 48000, "channels": 2, "pace": "asap",
                                             "audio_redaction": "silence"})]
    frames += [data[i : i + step] for i in range(0, len(data), step)]
    frames.append(json.dumps({"type": "close"}))
    audio_out, events, _code = run(_raw_session(server.url, frames))
    out = audio_mod.decode(b"".join(audio_out), fmt)
    assert out.shape == stereo.shape
    assert_masked(name, stereo[:, 0], out[:, 0], 48000)
    assert np.array_equal(out[:, 0], out[:, 1])
    assert events[0]["config"]["audio_redaction"] == "silence"


@pytest.mark.parametrize(
    ("query", "frames", "code", "close_code"),
    [
        ("?encoding=pcm_s16le&sample_rate=16000&pace=asap", [b"\x00\x01\x02"], "bad_audio", 1007),
        ("?encoding=pcm_s16le&sample_rate=16000", ['{"type": "dance"}'], "unknown_message", 4400),
        ("?encoding=pcm_s16le&sample_rate=16000", ["not json"], "invalid_json", 4400),
        ("", [b"\x00\x00" * 320], "config_required", 4400),
        ("?encoding=pcm_s16le&sample_rate=11025", [], "bad_config", 4400),
        ("?encoding=pcm_s16le&sample_rate=16000&delay_ms=50", [], "bad_config", 4400),
        ("?encoding=pcm_s16le&sample_rate=16000&colour=red", [], "bad_config", 4400),
        ("?encoding=pcm_s16le&sample_rate=16000&entities=person,shoe", [], "bad_config", 4400),
        # Roles on a mono stream, unknown roles: refused before any audio.
        ("?encoding=pcm_s16le&sample_rate=16000&channel_roles=agent,caller", [], "bad_config",
         4400),
        ("?encoding=pcm_s16le&sample_rate=16000&channels=2&channel_roles=agent,boss", [],
         "bad_config", 4400),
        ("?encoding=mulaw&sample_rate=8000&channel_roles=agent,caller", [], "bad_config", 4400),
    ],
)
def test_malformed_input_gets_typed_error(server, query: str, frames: list, code: str,
                                          close_code: int) -> None:
    _, events, got_close = run(_raw_session(server.url + query, frames))
    errors = [e for e in events if e["type"] == "error"]
    assert errors and errors[0]["code"] == code
    assert got_close == close_code


def test_policy_redacts_only_what_it_names(server) -> None:
    name = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."
    params = {"encoding": "pcm_s16le", "entities": "person_name",
              "text_substitution": "entity_name", "audio_redaction": "silence"}
    out, rate, events = run(stream_file(FIXTURES / name, server.url, params, pace="asap"))
    inp, _ = audio_mod.read_wav(FIXTURES / name)
    assert events[0]["config"]["entities"] == ["PERSON"]
    text = transcript_from_events(events)["text"]
    assert "[PERSON]" in text and "Linda" not in text and "Smith" not in text
    assert "0175" in text.replace("-", "").replace(" ", "")  # the phone is not in the policy
    assert {r["entity"] for r in events if r["type"] == "redaction"} == {"PERSON"}
    score = score_clip(inp[:, 0], out[:, 0], rate, spans(name))
    audible = dict(score.entities)
    assert audible["PERSON"] < 0.25 and audible["PHONE_NUMBER"] > 0.75
    # silence, not a beep: the name's audio is gone, not replaced by a tone
    person = next(p for p in MANIFEST[name]["pii"] if p["entity"] == "PERSON")
    a, b = int((person["start_s"] + 0.05) * rate), int((person["end_s"] - 0.05) * rate)
    assert np.abs(inp[a:b, 0]).max() > 1000 and np.abs(out[a:b, 0]).max() < 50


def test_unknown_entity_error_lists_the_valid_names(server) -> None:
    url = server.url + "?encoding=pcm_s16le&sample_rate=16000&entities=person_name,shoe_size"
    _, events, _ = run(_raw_session(url, []))
    message = next(e for e in events if e["type"] == "error")["message"]
    assert "shoe_size" in message and "CREDIT_CARD_CVV" in message


def test_bad_session_does_not_disturb_a_good_one(server) -> None:
    name = "dev_008.wav"

    async def scenario():
        good = asyncio.create_task(
            stream_file(FIXTURES / name, server.url, {"encoding": "pcm_s16le"}, pace="asap"))
        bad = []
        for frames, query in (([b"\x01"], "?encoding=pcm_s16le&sample_rate=16000"),
                              (['{"type":"nope"}'], "?encoding=pcm_s16le&sample_rate=16000"),
                              ([b"\x00\x00" * 100], "")):
            bad.append(await _raw_session(server.url + query, frames))
        return await good, bad

    (out, rate, events), bad = run(scenario())
    assert all(any(e["type"] == "error" for e in ev) for _, ev, _ in bad)
    inp, _ = audio_mod.read_wav(FIXTURES / name)
    assert out.shape == inp.shape
    assert_masked(name, inp[:, 0], out[:, 0], rate)
    assert not [e for e in events if e["type"] == "error"]


def test_health_and_readiness(server) -> None:
    import urllib.request

    with urllib.request.urlopen(server.http + "/readyz") as r:
        assert json.loads(r.read())["ready"] is True
    with urllib.request.urlopen(server.http + "/healthz") as r:
        assert json.loads(r.read())["status"] == "ok"


def test_server_logs_carry_no_transcript_text(server) -> None:
    run(stream_file(FIXTURES / "dev_008.wav", server.url, {"encoding": "pcm_s16le"}, pace="asap"))
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "session ended" for entry in lines)
    # Ids and timestamps are random hex/digits: look at everything else, with the
    # numbers the server chose itself (process id, ports: "[20555]", ":35551") and
    # the ids in request paths ("/sessions/55515fe8.../listen") out.
    content = json.dumps([{k: v for k, v in e.items() if k not in ("ts", "session")}
                          for e in lines])
    content = re.sub(r"process \[\d+\]|127\.0\.0\.1:\d+|[0-9a-f]{32}", "", content)
    for secret in ("Linda", "Smith", "0175", "555"):
        assert secret not in content


def test_api_key_required_when_configured(tmp_path: Path) -> None:
    import hashlib

    from tests.conftest import start_server, stop_server

    # One key given in plain (hashed at start-up), one only as its hash.
    vault_hash = hashlib.sha256(b"vault-key").hexdigest()
    srv = start_server(tmp_path, "--api-key", "s3cret-key",
                       env={"STREAMSERVER_API_KEY_HASHES": vault_hash})
    try:
        q = "?encoding=pcm_s16le&sample_rate=16000&pace=asap"
        _, events, close = run(_raw_session(srv.url + q, []))
        assert events[0]["code"] == "unauthorized" and close == 4401
        _, events, close = run(_raw_session(srv.url + q + "&token=wrong", []))
        assert events[0]["code"] == "unauthorized" and close == 4401
        for key in ("s3cret-key", "vault-key"):
            _, _, ev = run(stream_file(FIXTURES / "dev_009.wav", srv.url,
                                         {"encoding": "pcm_s16le"}, pace="asap", api_key=key))
            assert ev[-1]["type"] == "session.end"
        assert "s3cret-key" not in srv.log_text()
    finally:
        stop_server(srv)


def test_model_threads_yield_the_cores_to_the_event_loop(server) -> None:
    # Run a session first so every model thread exists and has worked.
    run(stream_file(FIXTURES / "dev_008.wav", server.url, {"encoding": "pcm_s16le"}, pace="asap"))
    pid = server.proc.pid
    threads = []  # (cpu ticks, nice, is the event loop's thread)
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        threads.append((int(fields[11]) + int(fields[12]), int(fields[16]), int(task.name) == pid))
    loop = [t for t in threads if t[2]]
    assert loop[0][1] == 0
    others = sorted((t for t in threads if not t[2]), reverse=True)
    # The busiest threads besides the loop run the models: they are niced.
    assert others[0][1] >= 10 and others[1][1] >= 10, others
    assert sum(t[1] >= 10 for t in others) >= 3


def _keyed(digits: str, rate: int) -> np.ndarray:
    """Keypad tones as a phone sends them: 80 ms per key, 70 ms apart."""
    from streamserver.core.dtmf import digit_freqs

    t = np.arange(int(0.08 * rate)) / rate
    gap = np.zeros(int(0.07 * rate))
    parts = []
    for d in digits:
        lo, hi = digit_freqs(d)
        parts += [0.25 * np.sin(2 * np.pi * lo * t) + 0.2 * np.sin(2 * np.pi * hi * t), gap]
    return np.concatenate(parts)


def _tones_in(samples: np.ndarray, rate: int) -> str:
    from streamserver.core.dtmf import DtmfDetector

    det = DtmfDetector(rate)
    found = [t for t in [*det.push(samples.astype(np.float32) / 32768), *det.flush()] if t.final]
    return "".join(t.digit for t in found)


@pytest.mark.parametrize("policy", ["default", "person_name,phone_number"])
def test_keyed_card_number_is_masked_as_dtmf(server, tmp_path: Path, policy: str) -> None:
    speech, rate = audio_mod.read_wav(FIXTURES / "dev_009.wav")  # no PII in the words
    card = "4111111111111111"
    tones = audio_mod.to_int16(_keyed(card, rate))
    clip = np.concatenate([speech[:, 0], np.zeros(rate // 2, np.int16), tones,
                           np.zeros(rate, np.int16)])
    path = tmp_path / "keyed.wav"
    audio_mod.write_wav(path, clip[:, None], rate)
    assert _tones_in(clip, rate) == card  # the input really carries the keys
    params = {"encoding": "pcm_s16le", "entities": policy}
    out, rate, events = run(stream_file(path, server.url, params, pace="asap"))
    keyed = [e for e in events if e["type"] == "redaction" and e["entity"] == "DTMF"]
    if policy == "default":
        assert _tones_in(out[:, 0], rate) == ""  # no key can be recovered from the output
        assert len(keyed) == 1  # one event for the whole keyed sequence
        start = speech.shape[0] / rate + 0.5
        assert keyed[0]["start"] <= start + 0.01
        assert keyed[0]["end"] >= start + len(card) * 0.15 - 0.08
        assert card not in json.dumps(events)
    else:  # DTMF not in the policy: tones pass untouched
        assert _tones_in(out[:, 0], rate) == card and not keyed


@pytest.mark.parametrize("pace", ["asap", "realtime"])
def test_session_begin_comes_before_any_audio(server, pace: str) -> None:
    """A client may wait for session.begin before it sends audio, in either pace."""
    import websockets

    async def go() -> str:
        async with websockets.connect(
                f"{server.url}?encoding=pcm_s16le&sample_rate=16000&pace={pace}") as ws:
            return str(json.loads(await asyncio.wait_for(ws.recv(), 20))["type"])

    assert run(go()) == "session.begin"


def test_websocket_compression_is_off_by_default(server) -> None:
    """A default client offers permessage-deflate; the server declines it (20 ms audio
    frames barely compress, and compressing them costs the event loop)."""
    import websockets

    async def go() -> str | None:
        async with websockets.connect(
                f"{server.url}?encoding=pcm_s16le&sample_rate=16000") as ws:
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert run(go()) is None
