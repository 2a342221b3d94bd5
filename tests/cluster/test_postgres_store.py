"""Recording metadata in a real PostgreSQL, as several nodes use it.

Two "nodes" are two SplitStores, each with its own connection pool, on one
database and one blob directory. The store contract itself runs on PostgreSQL in
tests/storage/test_store.py.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from streamserver.config import ServerConfig, SessionConfig, hash_api_key
from streamserver.protocol import StorageUnavailable
from streamserver.server.recording import Archive
from streamserver.server.sessions_api import SESSION_ROUTES
from streamserver.server.state import ServerState
from streamserver.storage import (
    KIND_AUDIO,
    KIND_TRANSCRIPT,
    FileBlobs,
    KeyRing,
    OwnerMismatchError,
    SessionDeletedError,
    SplitStore,
    StoreError,
)
from streamserver.storage import postgres as pg_module
from streamserver.storage.metadata import EVENT_EXPIRED, EVENT_READY, Notice
from streamserver.storage.pg_migrations import MIGRATIONS, Migration, migrate
from streamserver.storage.postgres import PostgresMetadata
from streamserver.storage.split import NOTICE_LEASE_S
from tests.cluster.postgres import PostgresServer

T0 = 1_000_000.0
MARKER = "ZEBRA-MARKER-4111111111111111"
TRANSCRIPT = f'{{"text": "my card is {MARKER}"}}'.encode()
PATTERN = bytes(range(256)) * 2
AUDIO = PATTERN * 32
HOOK = "https://hooks.example.com/recordings?token=HOOK-TOKEN-0xfeed"
API_KEY = "owner-api-key-0123456789"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.parse(f"k1:{KeyRing.generate_key()}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(pg_url: str, tmp_path: Path, keyring: KeyRing,
          clock: Clock) -> Iterator[tuple[SplitStore, SplitStore]]:
    """Two nodes: a pool each, one database, one blob directory (a shared volume)."""
    made = [SplitStore(PostgresMetadata(pg_url), FileBlobs(tmp_path / "blobs"), keyring,
                       clock=clock) for _ in range(2)]
    yield made[0], made[1]
    for store in made:
        store.close()


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode()).fetchall()


# --- migrations ------------------------------------------------------------------

def test_migrations_are_versioned_idempotent_and_serialised(pg_url: str) -> None:
    # Four nodes start together on an empty database: one applies, none fails.
    barrier = threading.Barrier(4)

    def start_node(_: int) -> tuple[int, ...]:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            barrier.wait()
            return migrate(conn).applied

    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(start_node, range(4)))
    assert sorted(applied) == [(), (), (), (1,)]
    assert rows(pg_url, "SELECT version, name FROM schema_migrations") == [
        (1, "recording metadata")]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        again = migrate(conn)
        assert (again.applied, again.version, again.known) == ((), 1, 1)
        # A later release adds migration 2: only it runs.
        newer = (*MIGRATIONS, Migration(2, "a test column",
                                        "ALTER TABLE sessions ADD COLUMN test_x integer;"))
        assert migrate(conn, newer).applied == (2,)
        # This release on the migrated database: leaves it alone, says it is newer.
        back = migrate(conn)
        assert (back.applied, back.version, back.known) == ((), 2, 1)
    assert [v for (v,) in rows(pg_url, "SELECT version FROM schema_migrations ORDER BY 1")] \
        == [1, 2]


def test_a_failing_migration_leaves_the_schema_as_it_was(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    broken = (*MIGRATIONS, Migration(2, "broken", "ALTER TABLE no_such_table ADD x int;"))
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate(conn, broken)
        # One transaction: not even migration 1 or the bookkeeping table stayed.
        assert conn.execute("SELECT to_regclass('sessions'), to_regclass('schema_migrations')"
                            ).fetchone() == (None, None)
        assert migrate(conn).applied == (1,)


# --- sweeping on N nodes -----------------------------------------------------------

def _record(store: SplitStore, sid: str, expires: float, parts: int = 2) -> None:
    for i in range(parts):
        store.put(sid, f"audio_{i:05d}", AUDIO, expires, "owner-a")
    store.put(sid, KIND_TRANSCRIPT, TRANSCRIPT, expires, "owner-a")


def test_two_nodes_sweeping_together_delete_each_session_once_and_notice_it_once(
        nodes: tuple[SplitStore, SplitStore], pg_url: str, tmp_path: Path, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = nodes
    # Small batches: the nodes' claims interleave, also within one session.
    monkeypatch.setattr(pg_module, "PURGE_BATCH", 7)
    expired = [f"s{i:03d}" for i in range(60)]
    for i, sid in enumerate(expired):
        node = (a, b)[i % 2]
        _record(node, sid, T0 + 10)
        ready = node.announce(sid, EVENT_READY, HOOK)
        assert ready is not None
        node.settle(ready.event_id, "delivered")
    for sid in ("live1", "live2"):
        _record(a, sid, T0 + 1000)
    live_blobs = {n for (n,) in rows(pg_url, "SELECT blob FROM artefacts"
                                              " WHERE session_id LIKE 'live%'")}
    clock.t = T0 + 11
    sweepers = [a, b, a, b]  # two threads per node
    barrier = threading.Barrier(len(sweepers))

    def sweep(store: SplitStore) -> tuple[int, list[Notice]]:
        barrier.wait()
        purged, notices = 0, []
        for _ in range(20):  # until a round finds nothing more
            n, got = store.sweep(clock.t)
            purged += n
            notices += got
            if not n and not got:
                break
        return purged, notices

    with ThreadPoolExecutor(len(sweepers)) as pool:
        results = list(pool.map(sweep, sweepers))
    notices = [n for _, got in results for n in got]
    assert sum(p for p, _ in results) == 3 * len(expired)  # each artefact once
    assert collections.Counter(n.session_id for n in notices) == dict.fromkeys(expired, 1)
    assert {n.event for n in notices} == {EVENT_EXPIRED}
    assert len({n.event_id for n in notices}) == len(expired)
    assert sum(1 for _, got in results if got) >= 2  # both took a share
    # The webhook URL and owner travel sealed: the sender opens them.
    assert a.open_notice(notices[0]) == (HOOK, "owner-a")
    assert {s for (s,) in rows(pg_url, "SELECT session_id FROM sessions")} == {"live1", "live2"}
    assert set(FileBlobs(tmp_path / "blobs").names()) == live_blobs
    assert rows(pg_url, "SELECT count(*), count(DISTINCT session_id) FROM notices"
                        " WHERE event = 'expired'") == [(60, 60)]
    assert a.sweep(clock.t) == (0, []) and b.sweep(clock.t) == (0, [])


def test_a_notice_held_by_a_node_that_died_is_sent_again_under_the_same_id(
        nodes: tuple[SplitStore, SplitStore], clock: Clock) -> None:
    a, b = nodes
    _record(a, "s1", T0 + 5, parts=1)
    assert a.announce("s1", EVENT_READY, HOOK) is not None  # leased to a...
    assert a.announce("s1", EVENT_READY, HOOK) is None  # ...and only once
    clock.t = T0 + 6
    _, taken = a.sweep(clock.t)  # a purges s1: its expiry notice is a's
    assert [n.event for n in taken] == [EVENT_EXPIRED]
    # a dies without settling either: b finds nothing until the leases run out.
    assert b.sweep(clock.t + 10) == (0, [])
    _, again = b.sweep(clock.t + NOTICE_LEASE_S + 1)
    assert {(n.event, n.event_id) for n in again} >= {(EVENT_EXPIRED, taken[0].event_id)}
    assert {n.event for n in again} == {EVENT_READY, EVENT_EXPIRED}
    for notice in again:
        b.settle(notice.event_id, "delivered")
    assert a.sweep(clock.t + 3 * NOTICE_LEASE_S) == (0, [])
    # Given back (not sent: shutdown, queue full): claimable at once, by any node.
    _record(a, "s2", T0 + 1000, parts=1)
    ready = a.announce("s2", EVENT_READY, HOOK)
    assert ready is not None
    a.settle(ready.event_id, None)
    assert [n.event_id for n in b.sweep(clock.t)[1]] == [ready.event_id]


def test_a_deletion_through_one_node_stops_a_recording_on_another(
        nodes: tuple[SplitStore, SplitStore], pg_url: str, clock: Clock) -> None:
    a, b = nodes
    a.put("live", "audio_00000", AUDIO, T0 + 60, "owner-a")
    assert a.keep_live(["live"], 30) == []
    rec = b.record("live")  # b sees a live recording, not an interrupted one
    assert rec is not None and rec.live_until == T0 + 30 and rec.owner == "owner-a"
    with pytest.raises(OwnerMismatchError):
        b.put("live", "audio_00001", AUDIO, T0 + 60, "owner-b")
    assert b.delete("live", tombstone=True)
    with pytest.raises(SessionDeletedError):  # a's next part cannot bring it back
        a.put("live", "audio_00001", AUDIO, T0 + 60, "owner-a")
    assert a.keep_live(["live"], 30) == ["live"]  # a learns it, and stops
    assert "live" not in repr(rows(pg_url, "SELECT * FROM tombstones"))  # a digest only
    assert a.record("live") is None and b.get("live", "audio_00000") is None
    # A plain delete (the recorder's own clean-up) leaves no tombstone.
    a.put("s2", KIND_AUDIO, AUDIO, T0 + 60, "owner-a")
    assert a.delete("s2") and b.put("s2", KIND_AUDIO, AUDIO, T0 + 60, "owner-b") is None


def test_concurrent_first_writes_of_one_session_make_one_session(
        nodes: tuple[SplitStore, SplitStore], pg_url: str) -> None:
    a, b = nodes
    barrier = threading.Barrier(8)

    def put(i: int) -> str:
        barrier.wait()
        try:
            (a, b)[i % 2].put("race", f"k{i}", b"x", T0 + 60, f"owner-{i % 2}")
        except OwnerMismatchError:
            return "refused"
        return "stored"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(put, range(8)))
    rec = a.record("race")
    assert rec is not None
    winner = int(rec.owner[-1])
    assert outcomes == ["stored" if i % 2 == winner else "refused" for i in range(8)]
    assert rows(pg_url, "SELECT count(*) FROM artefacts") == [(4,)]
    assert rows(pg_url, "SELECT count(*) FROM loose_blobs") == [(0,)]  # refused blobs gone


def test_a_blob_left_by_a_node_that_died_mid_write_is_removed(
        nodes: tuple[SplitStore, SplitStore], tmp_path: Path, clock: Clock) -> None:
    a, _ = nodes
    blobs = FileBlobs(tmp_path / "blobs")
    meta = a._meta  # what put does before the row, then "the node dies"
    meta.reserve("dead0000.bin", clock.t)
    blobs.write("dead0000.bin", b"sealed bytes nobody names")
    a.sweep(clock.t + 60)
    assert "dead0000.bin" in set(blobs.names())  # maybe still being written
    a.sweep(clock.t + pg_module.LOOSE_BLOB_GRACE_S + 1)
    assert "dead0000.bin" not in set(blobs.names())


# --- privacy ---------------------------------------------------------------------

def test_postgres_holds_metadata_only(nodes: tuple[SplitStore, SplitStore],
                                      postgres: PostgresServer, pg_url: str) -> None:
    a, _ = nodes
    a.put("s1", KIND_AUDIO, AUDIO, T0 + 60, "owner-MARKER-hash")
    a.put("s1", KIND_TRANSCRIPT, TRANSCRIPT, T0 + 60, "owner-MARKER-hash")
    a.announce("s1", EVENT_READY, HOOK)
    dump = b"".join(repr(r).encode() for table in (
        "sessions", "artefacts", "notices", "loose_blobs", "tombstones", "schema_migrations")
        for r in rows(pg_url, f"SELECT * FROM {table}"))
    assert b"s1" in dump and b"transcript_json" in dump  # ids and kinds: yes
    for secret in (MARKER.encode(), PATTERN[:64], b"owner-MARKER-hash", b"HOOK-TOKEN",
                   b"hooks.example.com"):
        assert secret not in dump
    # Nor anywhere in the server's files (tables, WAL) once written out.
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    for path in postgres.data.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert MARKER.encode() not in data and b"HOOK-TOKEN" not in data, path


# --- the database down -----------------------------------------------------------

def test_database_down_refuses_recorded_sessions_then_recovers(
        postgres: PostgresServer, pg_url: str, tmp_path: Path, keyring: KeyRing) -> None:
    store = SplitStore(PostgresMetadata(pg_url, timeout_s=1.0), FileBlobs(tmp_path / "b"),
                       keyring)
    archive = Archive(ServerConfig(api_key_hashes=(hash_api_key(API_KEY),)), store, None)
    recorded = SessionConfig(record=True)

    def tend() -> None:
        asyncio.run(archive.tend())

    try:
        tend()
        assert archive.storage_ok and archive.plan(recorded) is not None
        postgres.stop("immediate")
        started = time.monotonic()
        with pytest.raises(StoreError) as err:
            store.put("s1", KIND_AUDIO, b"x", time.time() + 60, "o")
        assert time.monotonic() - started < 10  # bounded by the timeouts, no hang
        assert postgres.password not in str(err.value)
        tend()
        assert not archive.storage_ok
        with pytest.raises(StorageUnavailable):
            archive.plan(recorded)
        assert archive.plan(SessionConfig()) is None  # unrecorded sessions go on
        assert archive.describe()["ok"] is False
        # The REST API says "try later", not 500.
        app = Starlette(routes=SESSION_ROUTES)
        app.state.streamserver = ServerState(archive.cfg, archive=archive)
        with TestClient(app) as client:
            for method in ("GET", "DELETE"):
                answer = client.request(method, f"/v1/sessions/{'a' * 32}",
                                        headers={"Authorization": f"Bearer {API_KEY}"})
                assert answer.status_code == 503, method
                assert answer.json()["code"] == "storage_unavailable"
    finally:
        postgres.start()
    tend()  # back: the pool replaces its dead connections
    assert archive.storage_ok and archive.plan(recorded) is not None
    store.put("s1", KIND_AUDIO, b"x", time.time() + 60, "o")
    assert store.get("s1", KIND_AUDIO) == b"x"
    store.close()


def test_an_unreachable_or_refusing_database_is_reported_without_its_password(
        postgres: PostgresServer) -> None:
    wrong = postgres.url().replace(postgres.password, "not-the-Password-42")
    meta = PostgresMetadata(wrong, timeout_s=2.0)
    try:
        with pytest.raises(StoreError) as err:
            meta.check()
        assert "password authentication failed" in str(err.value)
        assert "not-the-Password-42" not in str(err.value)
        described = meta.describe()
        assert described["url"] == f"postgresql://streamserver:***@127.0.0.1:{postgres.port}/postgres"
        assert described["schema_version"] == 0
    finally:
        meta.close()
