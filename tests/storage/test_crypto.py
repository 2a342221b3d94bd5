import base64

import pytest

from streamserver.storage.crypto import DecryptError, KeyRing, KeyRingError, artefact_aad


def _ring(*ids: str) -> KeyRing:
    return KeyRing.parse("\n".join(f"{i}:{KeyRing.generate_key()}" for i in ids))


def test_round_trip_and_fresh_nonces() -> None:
    ring = _ring("k1")
    aad = artefact_aad("s1", "transcript_json")
    a, b = ring.seal(b"hello", aad), ring.seal(b"hello", aad)
    assert a != b and b"hello" not in a
    assert ring.open(a, aad) == ring.open(b, aad) == b"hello"


@pytest.mark.parametrize("index", [0, 1, 3, 20, -1])
def test_flipped_byte_fails(index: int) -> None:
    ring = _ring("k1")
    blob = bytearray(ring.seal(b"secret transcript", b"aad"))
    blob[index] ^= 0x01
    with pytest.raises(DecryptError):
        ring.open(bytes(blob), b"aad")


def test_swapped_session_or_kind_fails() -> None:
    ring = _ring("k1")
    blob = ring.seal(b"x", artefact_aad("s1", "audio_wav"))
    with pytest.raises(DecryptError):
        ring.open(blob, artefact_aad("s2", "audio_wav"))
    with pytest.raises(DecryptError):
        ring.open(blob, artefact_aad("s1", "transcript_json"))


def test_truncated_and_unknown_key() -> None:
    ring = _ring("k1")
    blob = ring.seal(b"x", b"")
    for bad in (b"", blob[:5], blob[:-1]):
        with pytest.raises(DecryptError):
            ring.open(bad, b"")
    with pytest.raises(DecryptError):
        _ring("other").open(blob, b"")


def test_rotation_old_key_decrypts_new_key_encrypts() -> None:
    old_key = KeyRing.generate_key()
    old = KeyRing.parse(f"old:{old_key}")
    sealed_old = old.seal(b"before", b"a")
    rotated = KeyRing.parse(f"new:{KeyRing.generate_key()},old:{old_key}")
    assert rotated.primary_id == "new"
    assert rotated.open(sealed_old, b"a") == b"before"
    sealed_new = rotated.seal(b"after", b"a")
    assert b"new" in sealed_new[:8]
    with pytest.raises(DecryptError):
        old.open(sealed_new, b"a")


def test_from_file_and_env(tmp_path) -> None:
    key = KeyRing.generate_key()
    path = tmp_path / "keys"
    path.write_text(f"# data keys\nk2:{key}\n\nk1:{KeyRing.generate_key()}\n")
    assert KeyRing.from_file(path).key_ids == ("k2", "k1")
    env = {"STREAMSERVER_DATA_KEYS": f"a:{key}, b:{KeyRing.generate_key()}"}
    assert KeyRing.from_env(env).key_ids == ("a", "b")
    with pytest.raises(KeyRingError):
        KeyRing.from_env({})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nocolon",
        "k1:not*base64",
        "k1:" + base64.b64encode(b"short").decode(),
        "bad id:" + base64.b64encode(bytes(32)).decode(),
        "k:" + base64.b64encode(bytes(32)).decode() + ",k:" + base64.b64encode(bytes(32)).decode(),
    ],
)
def test_bad_keys_rejected_without_echo(text: str) -> None:
    with pytest.raises(KeyRingError) as info:
        KeyRing.parse(text)
    secret = text.partition(":")[2]
    assert not secret or secret not in str(info.value)


def test_repr_hides_keys() -> None:
    key = KeyRing.generate_key()
    ring = KeyRing.parse(f"k1:{key}")
    assert key not in repr(ring) and "k1" in repr(ring)
