"""Two servers' archives on one PostgreSQL: the real recorder, sweeper and webhook
sender of each, against a webhook receiver on loopback.

Each "node" is an :class:`Archive` (what a server process runs) with its own
connection pool; blobs are in one shared directory. Their sweepers run at the
same time, every 50 ms, on the wall clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from streamserver.config import ServerConfig, SessionConfig
from streamserver.core.session import AudioOut, Event
from streamserver.server import recording
from streamserver.server.recording import (
    STATUS_INTERRUPTED,
    STATUS_READY,
    STATUS_RECORDING,
    Archive,
    RecordingPlan,
)
from streamserver.storage import FileBlobs, KeyRing, SplitStore
from streamserver.storage.postgres import PostgresMetadata
from streamserver.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    DestinationPolicy,
    WebhookSender,
    tenant_secret,
    verify,
)
from tests.cluster.webhook_receiver import Receiver

SECRET = b"whsec-cluster-test-secret"
OWNER = "a" * 64  # the SHA-256 hex of an API key
PUBLIC = "https://redact.example.com"


def _archive(url: str, blobs: Path, keyring: KeyRing) -> Archive:
    cfg = ServerConfig(public_url=PUBLIC, sweep_interval_s=0.05,
                       webhook_allowed_hosts=("127.0.0.1",))
    store = SplitStore(PostgresMetadata(url), FileBlobs(blobs), keyring)
    sender = WebhookSender(SECRET, policy=DestinationPolicy(cfg.webhook_allowed_hosts))
    return Archive(cfg, store, sender)


@pytest.fixture
def receiver() -> Any:
    rx = Receiver()
    yield rx
    rx.close()


@contextlib.asynccontextmanager
async def two_nodes(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[Archive, Archive]]:
    keyring = KeyRing.parse(f"k1:{KeyRing.generate_key()}")
    a, b = (_archive(pg_url, tmp_path / "blobs", keyring) for _ in range(2))
    try:
        yield a, b
    finally:
        for node in (a, b):
            await node.close()


async def _record(node: Archive, sid: str, plan: RecordingPlan) -> dict[str, Any] | None:
    rec = node.open(sid, OWNER, SessionConfig(), plan, "http://ignored")
    await rec.output(AudioOut(b"\x01\x02" * 800, 0))
    await rec.output(Event({"type": "transcript.final", "text": "my card is ####"}))
    return await rec.output(Event({"type": "session.end", "stats": {}}))


def test_each_webhook_is_sent_once_by_one_of_two_sweeping_nodes(
        pg_url: str, tmp_path: Path, receiver: Receiver) -> None:
    sessions = [f"{i:032x}" for i in range(16)]

    async def scenario() -> None:
        async with two_nodes(pg_url, tmp_path) as (a, b):
            plan = RecordingPlan(retention_s=1, webhook_url=receiver.url)
            for i, sid in enumerate(sessions):  # recorded on either node
                event = await _record((a, b)[i % 2], sid, plan)
                assert event is not None and event["status"] == STATUS_READY
            a.start()  # now both sweep: everything expires within a second
            b.start()
            deadline = time.monotonic() + 15
            while len(receiver.received) < 2 * len(sessions) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # room for a duplicate to show up

    asyncio.run(scenario())
    counts = collections.Counter((p["status"], p["session_id"]) for p in receiver.payloads())
    assert counts == {**{("redacted_audio_ready", s): 1 for s in sessions},
                      **{("expired", s): 1 for s in sessions}}
    ids = [h[DELIVERY_HEADER.lower()] for h, _ in receiver.received]
    assert len(set(ids)) == len(ids)
    tenant = tenant_secret(SECRET, OWNER)
    for headers, body in receiver.received:
        assert verify(tenant, body, headers[SIGNATURE_HEADER.lower()], time.time())
        payload = json.loads(body)
        if payload["status"] == "redacted_audio_ready":
            assert payload["redacted_audio_url"] == (
                f"{PUBLIC}/v1/sessions/{payload['session_id']}/redacted-audio")
        else:
            assert set(payload) == {"status", "session_id"}
    with psycopg.connect(pg_url) as conn:  # each notice settled, under its delivery id
        notices = conn.execute("SELECT event_id::text, outcome FROM notices").fetchall()
        assert sorted(notices) == sorted((i, "delivered") for i in ids)
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    assert list(FileBlobs(tmp_path / "blobs").names()) == []


def test_a_recording_on_one_node_is_seen_and_deleted_through_the_other(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "LIVE_LEASE_S", 0.5)

    async def scenario() -> None:
        async with two_nodes(pg_url, tmp_path) as (a, b):
            plan = RecordingPlan(retention_s=60, webhook_url="")
            # Finished on a: b serves it to its owner only.
            assert (await _record(a, "1" * 32, plan) or {})["status"] == STATUS_READY
            meta = await b.metadata("1" * 32, OWNER)
            assert meta is not None and meta["status"] == STATUS_READY
            assert await b.metadata("1" * 32, "b" * 64) is None
            assert await b.transcript("1" * 32) is not None
            # Live on a: "recording" through b while a renews it, then "interrupted".
            live = a.open("2" * 32, OWNER, SessionConfig(), plan, "http://ignored")
            await live.output(AudioOut(b"\x00\x01" * 800, 0))
            for _ in range(100):
                meta = await b.metadata("2" * 32, OWNER)
                if meta is not None:
                    break
                await asyncio.sleep(0.01)
            assert meta is not None and meta["status"] == STATUS_RECORDING
            await asyncio.sleep(0.6)  # a's lease ran out: not renewed (a died?)
            assert (await b.metadata("2" * 32, OWNER) or {})["status"] == STATUS_INTERRUPTED
            await a.tend()  # a is alive: it renews
            assert (await b.metadata("2" * 32, OWNER) or {})["status"] == STATUS_RECORDING
            # Deleted through b while a records: a stops, nothing comes back.
            assert await b.delete("2" * 32)
            await a.tend()
            assert "2" * 32 not in a.recorders
            assert await live.output(Event({"type": "session.end", "stats": {}})) is None
            assert await a.metadata("2" * 32, OWNER) is None
            assert await b.delete("1" * 32)
            assert await a.metadata("1" * 32, OWNER) is None

    asyncio.run(scenario())
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    assert list(FileBlobs(tmp_path / "blobs").names()) == []
