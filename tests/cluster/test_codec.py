"""The cluster's signed records, without Redis: relay messages, registry entries,
key derivation, and the cluster settings' validation."""

from __future__ import annotations

import pytest

from streamserver.cluster.codec import (
    KIND_AUDIO,
    KIND_END,
    KIND_EVENT,
    EntryCodec,
    Forged,
    RelayCodec,
    RelayMessage,
    SessionEntry,
    derive_key,
)
from streamserver.config import ConfigError, ServerConfig
from streamserver.core.session import AudioOut, Event

SECRET = b"0123456789abcdef-cluster"
SID = "5c1d" * 8


def relay_codec(secret: bytes = SECRET) -> RelayCodec:
    return RelayCodec(derive_key(secret, "relay"))


def test_outputs_round_trip() -> None:
    codec = relay_codec()
    audio = AudioOut(b"\x01\x02" * 320, 48_000)
    event = Event({"type": "transcript.final", "text": "my name is ##### #####"})
    for seq, out in enumerate([audio, event]):
        msg = codec.decode(SID, codec.encode(SID, RelayMessage.of(out, seq)))
        assert msg.seq == seq and not msg.after_loss
        assert msg.output() == out
    end = codec.decode(SID, codec.encode(SID, RelayMessage(KIND_END, 7, after_loss=True)))
    assert end.kind == KIND_END and end.seq == 7 and end.after_loss and end.output() is None


def test_every_altered_byte_is_refused() -> None:
    codec = relay_codec()
    data = codec.encode(SID, RelayMessage.of(AudioOut(b"\x10\x20\x30\x40", 160), 3))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01  # the kind, the after_loss flag, the seq, the audio, the MAC
        with pytest.raises(Forged):
            codec.decode(SID, bytes(bad))
    with pytest.raises(Forged):
        codec.decode(SID, data[:-1])
    with pytest.raises(Forged):
        codec.decode(SID, b"")


def test_a_message_is_good_for_its_session_and_secret_only() -> None:
    data = relay_codec().encode(SID, RelayMessage.of(Event({"type": "speech.started"}), 0))
    with pytest.raises(Forged):  # copied into another session's stream
        relay_codec().decode("f" * 32, data)
    with pytest.raises(Forged):  # made by someone without the cluster secret
        relay_codec(b"another secret, 16+ bytes").decode(SID, data)
    # A registry MAC is no relay MAC (one key per purpose).
    assert derive_key(SECRET, "relay") != derive_key(SECRET, "registry")
    with pytest.raises(Forged):
        RelayCodec(derive_key(SECRET, "registry")).decode(SID, data)


def test_a_verified_event_must_still_be_a_json_object() -> None:
    codec = relay_codec()
    for payload in (b"[1, 2]", b"not json"):
        msg = codec.decode(SID, codec.encode(SID, RelayMessage(KIND_EVENT, 0, payload)))
        with pytest.raises(Forged):
            msg.output()
    audio = codec.encode(SID, RelayMessage(KIND_AUDIO, 0, b"\x00"))  # no start
    with pytest.raises(Forged):
        codec.decode(SID, audio)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        derive_key(b"short", "relay")


def test_entries_round_trip_and_go_stale() -> None:
    codec = EntryCodec(derive_key(SECRET, "registry"))
    entry = SessionEntry(SID, "node-a", "ab" * 32, expires=1000.0, url="https://a.example")
    data = codec.encode(entry)
    assert codec.decode(SID, data, now=990.0) == entry
    assert codec.decode(SID, data, now=1004.0) == entry  # clock skew allowed
    with pytest.raises(Forged):  # an old entry written back: stale
        codec.decode(SID, data, now=1006.0)
    with pytest.raises(Forged):  # another session's entry under this id
        codec.decode("e" * 32, data, now=990.0)
    with pytest.raises(Forged):
        EntryCodec(derive_key(b"another secret, 16+ bytes", "registry")).decode(
            SID, data, now=990.0)
    forged_owner = data.replace(b"ab" * 32, b"cd" * 32)
    assert forged_owner != data
    with pytest.raises(Forged):
        codec.decode(SID, forged_owner, now=990.0)
    for junk in (b"", b"x" * 31, b"x" * 40):
        with pytest.raises(Forged):
            codec.decode(SID, junk, now=990.0)


def test_cluster_settings_are_validated() -> None:
    url = "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigError, match="shared secret"):
        ServerConfig(redis_url=url).validate()
    with pytest.raises(ConfigError, match="16 bytes"):
        ServerConfig(redis_url=url, cluster_secret="short").validate()
    with pytest.raises(ConfigError, match="redis://"):
        ServerConfig(redis_url="http://x", cluster_secret=SECRET.decode()).validate()
    with pytest.raises(ConfigError, match="heartbeat"):
        ServerConfig(redis_url=url, cluster_secret=SECRET.decode(), cluster_ttl_s=4,
                     cluster_heartbeat_s=3).validate()
    ServerConfig(redis_url=url, cluster_secret=SECRET.decode()).validate()
    ServerConfig().validate()  # no Redis: nothing needed
    assert "cluster_secret" not in repr(ServerConfig(cluster_secret=SECRET.decode()))
    assert SECRET.decode() not in repr(ServerConfig(redis_url=url,
                                                    cluster_secret=SECRET.decode()))


def test_tokens_are_good_on_every_node_sharing_the_secret() -> None:
    from streamserver.server.state import ServerState

    secret = SECRET.decode()
    a = ServerState(ServerConfig(cluster_secret=secret))
    b = ServerState(ServerConfig(cluster_secret=secret))
    alone = ServerState(ServerConfig())
    token = a.tokens.issue("owner-hash")
    assert alone.tokens.redeem(token) is None  # a per-process secret
    assert b.tokens.redeem(token) == "owner-hash"
    assert b.tokens.redeem(token) is None  # still single-use on a node
