import asyncio
import os
import socket
import sqlite3
import struct
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from streamserver.storage import (
    KIND_AUDIO,
    KIND_TRANSCRIPT,
    DecryptError,
    FileBlobs,
    InvalidKeyError,
    KeyRing,
    LocalStore,
    OwnerMismatchError,
    S3Blobs,
    S3Store,
    SessionDeletedError,
    SplitStore,
    StoreError,
    sweep_forever,
)
from streamserver.storage.crypto import artefact_aad
from streamserver.storage.split import owner_aad
from streamserver.storage.sqlite_meta import MIGRATIONS
from streamserver.storage.store import ArtefactStore

from .conftest import FakeClock

MARKER = "ZEBRA-MARKER-4111111111111111"
TRANSCRIPT = f'{{"text": "my card is {MARKER}"}}'.encode()
# A distinctive PCM pattern standing in for redacted audio samples.
AUDIO = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + bytes(range(256)) * 64
PATTERN = bytes(range(256)) * 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3", "postgres", "postgres+s3"])
def store(request, tmp_path: Path, keyring: KeyRing, clock: FakeClock) -> Iterator[ArtefactStore]:
    if request.param == "local":
        local = LocalStore(tmp_path / "store", keyring, clock=clock)
        yield local
        local.close()
        return
    if "s3" in request.param:
        client = request.getfixturevalue("s3_client")
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
    if request.param == "s3":
        yield S3Store(bucket, client, keyring, clock=clock)
        return
    # Metadata in a real PostgreSQL (a fresh database), blobs in files or the bucket.
    from streamserver.storage.postgres import PostgresMetadata

    blobs = FileBlobs(tmp_path / "blobs") if request.param == "postgres" \
        else S3Blobs(bucket, client, "streamserver/")
    shared = SplitStore(PostgresMetadata(request.getfixturevalue("pg_url")), blobs, keyring,
                        clock=clock)
    yield shared
    shared.close()


# --- every backend ---------------------------------------------------------------

def test_round_trip_and_record(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "owner-hash")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 120, "owner-hash")
    assert store.get("s1", KIND_AUDIO) == AUDIO
    assert store.get("s1", KIND_TRANSCRIPT) == TRANSCRIPT
    assert store.get("s1", "metadata_json") is None
    assert store.get("nope", KIND_AUDIO) is None
    rec = store.record("s1")
    assert rec is not None
    assert (rec.owner, rec.created, rec.expires) == ("owner-hash", clock.t, clock.t + 120)
    assert rec.kinds == (KIND_AUDIO, KIND_TRANSCRIPT) and rec.status == "active"
    assert store.record("nope") is None


def test_replace_artefact(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_TRANSCRIPT, b"v1", clock.t + 60, "o")
    store.put("s1", KIND_TRANSCRIPT, b"v2", clock.t + 60, "o")
    assert store.get("s1", KIND_TRANSCRIPT) == b"v2"


def test_owner_mismatch_and_bad_keys(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_AUDIO, b"a", clock.t + 60, "alice")
    with pytest.raises(OwnerMismatchError):
        store.put("s1", KIND_TRANSCRIPT, b"t", clock.t + 60, "mallory")
    assert store.get("s1", KIND_TRANSCRIPT) is None
    for sid, kind in (("../etc", KIND_AUDIO), ("s1", "Audio"), ("a|b", "k"), ("s1", "")):
        with pytest.raises(InvalidKeyError):
            store.put(sid, kind, b"x", clock.t + 60, "alice")


def test_delete(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "o")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 60, "o")
    store.put("s2", KIND_AUDIO, b"other", clock.t + 60, "o")
    assert store.delete("s1") is True
    assert store.get("s1", KIND_AUDIO) is None and store.record("s1") is None
    assert store.delete("s1") is False
    assert store.get("s2", KIND_AUDIO) == b"other"


def test_expiry_and_purge(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 10, "o")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 100, "o")
    store.put("s2", KIND_AUDIO, b"x", clock.t + 10, "o")
    clock.t += 10  # expiry is inclusive: at expires_at it is gone
    assert store.get("s1", KIND_AUDIO) is None
    assert store.get("s1", KIND_TRANSCRIPT) == TRANSCRIPT
    rec2 = store.record("s2")
    assert rec2 is not None and rec2.status == "expired" and rec2.kinds == ()
    assert store.purge_expired(clock.t) == 2
    assert store.record("s2") is None
    rec1 = store.record("s1")
    assert rec1 is not None and rec1.kinds == (KIND_TRANSCRIPT,)
    assert store.purge_expired(clock.t) == 0
    clock.t += 100
    assert store.purge_expired(clock.t) == 1
    assert store.record("s1") is None


def test_set_expiry_moves_every_artefact(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 10, "o")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 100, "o")
    assert store.set_expiry("s1", clock.t + 50) is True
    assert store.set_expiry("nobody", clock.t + 50) is False
    clock.t += 20  # past the audio's first expiry: extended
    assert store.get("s1", KIND_AUDIO) == AUDIO
    rec = store.record("s1")
    assert rec is not None and rec.expires == pytest.approx(clock.t + 30)
    clock.t += 30  # the transcript's was shortened to the same instant
    assert store.purge_expired(clock.t) == 2
    assert store.record("s1") is None


def test_concurrent_puts(store: ArtefactStore, clock: FakeClock) -> None:
    def put(i: int) -> None:
        store.put(f"s{i % 4}", f"k{i}", f"data-{i}".encode(), clock.t + 60, "o")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(40)))
    for i in range(40):
        assert store.get(f"s{i % 4}", f"k{i}") == f"data-{i}".encode()
    rec = store.record("s0")
    assert rec is not None and len(rec.kinds) == 10


def test_sweeper_purges_and_survives_errors(store: ArtefactStore, clock: FakeClock) -> None:
    store.put("s1", KIND_AUDIO, b"x", clock.t - 1, "o")

    class Flaky:
        calls = 0

        def purge_expired(self, now: float) -> int:
            self.calls += 1
            if self.calls == 1:
                raise StoreError("disk on fire")
            return store.purge_expired(now)

    flaky = Flaky()

    async def run() -> None:
        task = asyncio.create_task(sweep_forever(flaky, 0.01, now=clock))  # type: ignore[arg-type]
        while flaky.calls < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert store.record("s1") is None


# --- LocalStore ------------------------------------------------------------------

def _all_bytes(directory: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in directory.rglob("*") if p.is_file()]


def test_local_plaintext_never_on_disk(tmp_path: Path, keyring: KeyRing, clock: FakeClock) -> None:
    root = tmp_path / "store"
    store = LocalStore(root, keyring, clock=clock)
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "owner-MARKER-hash")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 60, "owner-MARKER-hash")
    store.close()  # checkpoint the WAL too, then look at every byte
    files = _all_bytes(root)
    assert len([p for p, _ in files if p.suffix == ".bin"]) == 2
    for path, data in files:
        assert MARKER.encode() not in data, path
        assert PATTERN not in data, path
        assert b"owner-MARKER-hash" not in data, path
        assert path.stat().st_mode & 0o077 == 0 or path.suffix != ".bin"
    assert (root.stat().st_mode & 0o777) == 0o700


def test_local_delete_removes_every_file(
    tmp_path: Path, keyring: KeyRing, clock: FakeClock
) -> None:
    root = tmp_path / "store"
    store = LocalStore(root, keyring, clock=clock)
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "o")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 60, "o")
    assert len(os.listdir(root / "blobs")) == 2
    assert store.delete("s1")
    assert os.listdir(root / "blobs") == []
    store.close()
    with sqlite3.connect(root / "meta.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM artefacts").fetchone() == (0,)


def test_local_reopen_sees_records_and_purges(
    tmp_path: Path, keyring: KeyRing, clock: FakeClock
) -> None:
    root = tmp_path / "store"
    store = LocalStore(root, keyring, clock=clock)
    store.put("short", KIND_AUDIO, AUDIO, clock.t + 10, "o")
    store.put("long", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 1000, "o")
    store.close()
    (root / "blobs" / ".tmp-crashed").write_bytes(b"half")  # a crash mid-write
    (root / "blobs" / "orphan.bin").write_bytes(b"no row")
    clock.t += 60  # the process was down meanwhile
    store = LocalStore(root, keyring, clock=clock)
    assert store.record("short") is None
    assert store.get("long", KIND_TRANSCRIPT) == TRANSCRIPT
    assert len(os.listdir(root / "blobs")) == 1
    store.close()


def test_local_rotation_across_reopen(tmp_path: Path, clock: FakeClock) -> None:
    old_key = KeyRing.generate_key()
    store = LocalStore(tmp_path, KeyRing.parse(f"old:{old_key}"), clock=clock)
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "o")
    store.close()
    rotated = KeyRing.parse(f"new:{KeyRing.generate_key()}\nold:{old_key}")
    store = LocalStore(tmp_path, rotated, clock=clock)
    assert store.get("s1", KIND_AUDIO) == AUDIO
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 60, "o")
    store.close()
    store = LocalStore(tmp_path, KeyRing.parse(f"old:{old_key}"), clock=clock)
    with pytest.raises(DecryptError):
        store.get("s1", KIND_TRANSCRIPT)
    store.close()


def test_local_swapped_blob_files_fail(tmp_path: Path, keyring: KeyRing, clock: FakeClock) -> None:
    store = LocalStore(tmp_path, keyring, clock=clock)
    store.put("victim", KIND_TRANSCRIPT, b"victim's", clock.t + 60, "o")
    store.put("attacker", KIND_TRANSCRIPT, b"attacker's", clock.t + 60, "o")
    files = sorted((tmp_path / "blobs").iterdir())
    a, b = files[0].read_bytes(), files[1].read_bytes()
    files[0].write_bytes(b)
    files[1].write_bytes(a)
    for sid in ("victim", "attacker"):
        with pytest.raises(DecryptError):
            store.get(sid, KIND_TRANSCRIPT)
    store.close()


# --- S3Store ---------------------------------------------------------------------

def test_s3_objects_sealed_and_deleted(s3_client: Any, keyring: KeyRing, clock: FakeClock) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    store = S3Store(bucket, s3_client, keyring, clock=clock)
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "owner-MARKER-hash")
    store.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, clock.t + 60, "owner-MARKER-hash")
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 3
    for key in keys:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert MARKER.encode() not in body and PATTERN not in body
        assert b"owner-MARKER-hash" not in body
    # Swap the two artefact objects: both must fail to open.
    audio = s3_client.get_object(Bucket=bucket, Key=f"streamserver/s1/{KIND_AUDIO}")
    s3_client.put_object(Bucket=bucket, Key=f"streamserver/s1/{KIND_TRANSCRIPT}",
                         Body=audio["Body"].read())
    with pytest.raises(DecryptError):
        store.get("s1", KIND_TRANSCRIPT)
    assert store.delete("s1")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
    with pytest.raises(StoreError):
        store.put("s1", "record", b"x", clock.t + 60, "o")



def test_local_store_of_an_earlier_release_is_migrated_in_place(
        tmp_path: Path, keyring: KeyRing, clock: FakeClock) -> None:
    """A data dir written before the schema was versioned (user_version 0) opens,
    is migrated to the current version, and keeps its recordings."""
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "old.bin").write_bytes(
        keyring.seal(TRANSCRIPT, artefact_aad("s1", KIND_TRANSCRIPT)))
    with sqlite3.connect(tmp_path / "meta.sqlite3") as db:  # that release's schema and rows
        db.executescript(MIGRATIONS[0][1])
        db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                   ("s1", clock.t, clock.t + 60, keyring.seal(b"o", owner_aad("s1"))))
        db.execute("INSERT INTO artefacts VALUES (?, ?, ?, ?)",
                   ("s1", KIND_TRANSCRIPT, "old.bin", clock.t + 60))
    store = LocalStore(tmp_path, keyring, clock=clock)
    assert store.get("s1", KIND_TRANSCRIPT) == TRANSCRIPT
    rec = store.record("s1")
    assert rec is not None and rec.owner == "o" and rec.kinds == (KIND_TRANSCRIPT,)
    assert store.usage(clock.t) == {"o": (tmp_path / "blobs" / "old.bin").stat().st_size}
    store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "o")
    assert store.delete("s1", tombstone=True)
    store.close()
    with sqlite3.connect(tmp_path / "meta.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (MIGRATIONS[-1][0],)
    store = LocalStore(tmp_path, keyring, clock=clock)  # opening again changes nothing
    with pytest.raises(SessionDeletedError):
        store.put("s1", KIND_AUDIO, AUDIO, clock.t + 60, "o")
    store.close()
