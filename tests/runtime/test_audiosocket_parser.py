"""AudioSocket wire format and call policies, without sockets (server/audiosocket.py)."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamserver.protocol import BadConfig, ProtocolError
from streamserver.server.audiosocket import (
    ERROR_BYTES,
    HANGUP_FRAME,
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    KIND_UUID,
    MAX_PAYLOAD,
    AudioSocketError,
    AudioSocketParser,
    BadLength,
    BadUuid,
    Frame,
    PolicyConflict,
    PolicyStore,
    TooManyPolicies,
    Truncated,
    UnknownKind,
    UuidRepeated,
    UuidRequired,
    audio_frames,
    call_id_from_path,
    encode_frame,
    error_frame,
    policy_settings,
)

CALL = uuid.UUID("0c9a4f5e-2d1b-4c3a-9e8f-7a6b5c4d3e2f")
UUID_FRAME = encode_frame(KIND_UUID, CALL.bytes)


def test_header_is_kind_then_big_endian_length() -> None:
    assert UUID_FRAME[:3] == b"\x01\x00\x10" and UUID_FRAME[3:] == CALL.bytes
    assert encode_frame(KIND_AUDIO, b"\x01\x02" * 160)[:3] == b"\x10\x01\x40"
    assert HANGUP_FRAME == b"\x00\x00\x00"
    assert error_frame("bad_frame") == b"\xff\x00\x01\x10"
    assert error_frame("no_such_code") == b"\xff\x00\x01\x1f"
    assert len(set(ERROR_BYTES.values()) & {0x00, 0x01, 0x02, 0x04}) == 0  # not Asterisk's


def test_a_call_parses_in_order() -> None:
    audio = bytes(range(256)) + bytes(64)  # 320 bytes: 20 ms
    wire = UUID_FRAME + encode_frame(KIND_AUDIO, audio) + encode_frame(KIND_DTMF, b"5")
    wire += encode_frame(KIND_AUDIO, audio) + HANGUP_FRAME
    frames = AudioSocketParser().feed(wire)
    assert [f.kind for f in frames] == [KIND_UUID, KIND_AUDIO, KIND_DTMF, KIND_AUDIO, KIND_HANGUP]
    assert frames[0].call_id == CALL
    assert frames[1] == Frame(KIND_AUDIO, audio)


def test_any_split_gives_the_same_frames() -> None:
    wire = UUID_FRAME + b"".join(audio_frames(bytes(range(200)) * 4)) + HANGUP_FRAME
    whole = AudioSocketParser().feed(wire)
    for step in (1, 2, 3, 7, 319, 1000):
        parser = AudioSocketParser()
        got: list[Frame] = []
        for i in range(0, len(wire), step):
            got += parser.feed(wire[i:i + step])
        assert got == whole, step


def test_nothing_is_read_after_a_hangup() -> None:
    parser = AudioSocketParser()
    assert [f.kind for f in parser.feed(UUID_FRAME + HANGUP_FRAME + b"\x99junk")] == [
        KIND_UUID, KIND_HANGUP]
    assert parser.done and parser.feed(b"\x10\x00\x02ab") == []
    parser.eof()  # a close after the hang-up is no error


def test_hangup_before_the_uuid_ends_quietly() -> None:
    assert AudioSocketParser().feed(HANGUP_FRAME) == [Frame(KIND_HANGUP)]


@pytest.mark.parametrize(("wire", "error"), [
    (b"\x02\x00\x00", UnknownKind),  # not a kind we know
    (UUID_FRAME + b"\x42\x00\x01x", UnknownKind),
    (UUID_FRAME + struct.pack(">BH", KIND_AUDIO, MAX_PAYLOAD + 2), BadLength),  # oversized
    (UUID_FRAME + b"\x10\xff\xff", BadLength),  # a lying length, refused from the header
    (UUID_FRAME + b"\x10\x00\x03abc", BadLength),  # half a sample
    (UUID_FRAME + b"\x00\x00\x01x", BadLength),  # a hang-up with a payload
    (UUID_FRAME + b"\x03\x00\x02##", BadLength),  # a two-byte digit
    (b"\x01\x00\x0f" + bytes(15), BadUuid),
    (b"\x01\x00\x11" + bytes(17), BadUuid),
    (b"\x10\x00\x02ab", UuidRequired),  # audio before the UUID
    (b"\x03\x00\x011", UuidRequired),
    (UUID_FRAME + UUID_FRAME, UuidRepeated),
])
def test_bad_input_is_a_typed_error(wire: bytes, error: type[AudioSocketError]) -> None:
    parser = AudioSocketParser()
    with pytest.raises(error) as raised:
        parser.feed(wire)
    assert isinstance(raised.value, ProtocolError) and raised.value.code == "bad_frame"
    with pytest.raises(error):  # the parser stays failed
        parser.feed(UUID_FRAME)


def test_the_error_comes_from_the_header_not_after_the_payload() -> None:
    parser = AudioSocketParser()
    parser.feed(UUID_FRAME)
    with pytest.raises(BadLength):
        parser.feed(b"\x10\x00\x03")  # the 3 bytes of payload never need to arrive


def test_eof_inside_a_frame_is_truncated() -> None:
    parser = AudioSocketParser()
    parser.feed(UUID_FRAME + b"\x10\x01\x40" + bytes(100))
    with pytest.raises(Truncated):
        parser.eof()
    clean = AudioSocketParser()
    clean.feed(UUID_FRAME)
    clean.eof()
    assert clean.done


def test_asterisk_error_frames_parse() -> None:
    frames = AudioSocketParser().feed(UUID_FRAME + b"\xff\x00\x01\x02")
    assert frames[1] == Frame(KIND_ERROR, b"\x02")


def test_audio_frames_are_320_bytes() -> None:
    frames = audio_frames(bytes(1000) + b"\x01")  # an odd trailing byte is no sample
    assert [len(f) for f in frames] == [323, 323, 323, 43]
    assert all(f[0] == KIND_AUDIO for f in frames)
    assert b"".join(f.payload for f in AudioSocketParser().feed(UUID_FRAME + b"".join(frames))
                    [1:]) == bytes(1000)
    with pytest.raises(ValueError):
        encode_frame(0x42)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_bytes_give_frames_or_a_typed_error(chunks: list[bytes]) -> None:
    parser = AudioSocketParser()
    try:
        for chunk in chunks:
            for frame in parser.feed(chunk):
                assert len(frame.payload) <= MAX_PAYLOAD
                if frame.kind == KIND_AUDIO:
                    assert len(frame.payload) % 2 == 0
                if frame.kind == KIND_UUID:
                    assert len(frame.payload) == 16
        parser.eof()
    except AudioSocketError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=700).map(lambda b: b[:len(b) & ~1]), max_size=8),
       st.data())
def test_encoded_calls_round_trip_under_any_split(payloads: list[bytes],
                                                  data: st.DataObject) -> None:
    wire = UUID_FRAME + b"".join(encode_frame(KIND_AUDIO, p) for p in payloads) + HANGUP_FRAME
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    parser = AudioSocketParser()
    got: list[Frame] = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        got += parser.feed(wire[a:b])
    assert [f.payload for f in got[1:-1]] == payloads


# -- policies -----------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_policy_is_used_once_and_expires() -> None:
    clock = Clock()
    store = PolicyStore(ttl_s=600, per_key=2, clock=clock)
    store.put("a" * 32, "key1", {"delay_ms": 1000})
    policy = store.take("a" * 32)
    assert policy is not None and policy.owner == "key1" and policy.params == {"delay_ms": 1000}
    assert store.take("a" * 32) is None
    store.put("b" * 32, "key1", {})
    clock.now += 601
    assert store.take("b" * 32) is None and len(store) == 0


def test_policies_are_bound_to_their_key_and_bounded() -> None:
    store = PolicyStore(per_key=2, clock=Clock())
    store.put("a" * 32, "key1", {})
    store.put("a" * 32, "key1", {"delay_ms": 500})  # the same key replaces its own
    with pytest.raises(PolicyConflict):
        store.put("a" * 32, "key2", {})
    assert not store.delete("a" * 32, "key2")  # another key's looks like none
    store.put("b" * 32, "key1", {})
    with pytest.raises(TooManyPolicies):
        store.put("c" * 32, "key1", {})
    store.put("c" * 32, "key2", {})  # other keys are unaffected
    assert store.delete("a" * 32, "key1") and store.take("a" * 32) is None


def test_policy_settings_are_validated_and_the_format_is_fixed() -> None:
    settings_, bridge, role = policy_settings({"entities": "default", "delay_ms": 1500,
                                               "audio_redaction": "silence"})
    assert settings_["delay_ms"] == 1500 and bridge is None and role is None
    policy_settings({"sample_rate": 8000, "encoding": "pcm_s16le", "pace": "realtime"})
    policy_settings({"pace": "asap"})  # a replayed call (tests, recordings)
    for bad in ({"sample_rate": 16000}, {"encoding": "mulaw"},
                {"pace": "asap", "bridge": "call-1", "role": "agent"},  # legs are live
                {"channels": 2}, {"delay_ms": 5}, {"entities": "nonsense"},
                {"no_such_setting": 1}, {"role": "agent"}, {"role": "boss"},
                {"bridge": "call-1"}, {"bridge": "call-1", "role": "boss"}, {"bridge": 7}):
        with pytest.raises(BadConfig):
            policy_settings(bad)


def test_a_bridge_leg_policy_names_the_bridge_and_role() -> None:
    settings_, bridge, role = policy_settings({"bridge": "call-1", "role": "agent",
                                               "entities": "none"})
    assert (bridge, role) == ("call-1", "agent") and settings_ == {"entities": "none"}


def test_call_ids_accept_any_uuid_form() -> None:
    assert call_id_from_path(str(CALL)) == CALL.hex == call_id_from_path(CALL.hex.upper())
    with pytest.raises(ProtocolError):
        call_id_from_path("not-a-uuid")
