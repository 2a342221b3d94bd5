"""Two ``streamserver serve`` processes, one PostgreSQL (recording metadata) and one
S3-compatible bucket (moto, in server mode, on loopback): the cluster combination.

A session recorded through node A is fetched and deleted through node B, by its
owner only; its webhook is sent once; a recording that expires while both nodes
sweep is removed once and announced once.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from streamserver.client import TryLater, stream_file
from streamserver.storage import KeyRing
from tests.cluster.postgres import PostgresServer
from tests.cluster.webhook_receiver import Receiver
from tests.conftest import FIXTURES, RunningServer, _free_port, start_server, stop_server

ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"
SECRET = "whsec-cluster-e2e-secret"


def http(method: str, url: str, key: str | None = ALICE) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def record_clip(node: RunningServer, name: str, **params: Any,
                ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    out, _, events = asyncio.run(stream_file(
        FIXTURES / name, node.url, {"encoding": "pcm_s16le", "record": "true", **params},
        pace="asap", api_key=ALICE))
    return out, events


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[Any, dict[str, str]]]:
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket="calls")
    yield client, env
    moto.stop()


@dataclass
class Nodes:
    a: RunningServer  # the database URL from the environment
    b: RunningServer  # from --database-url
    cut_off: RunningServer  # its database unreachable from the start


@pytest.fixture(scope="module")
def nodes(postgres: PostgresServer, s3: tuple[Any, dict[str, str]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    """Three servers, started together (model loading dominates): A and B share a
    database and the bucket; the third's database URL points at a closed port (with
    the real password, so that a leak would show)."""
    url = postgres.create_database()
    keys = f"k1:{KeyRing.generate_key()}"
    plans = []
    for name in ("a", "b", "cut_off"):
        root = tmp_path_factory.mktemp(f"node-{name}")
        (root / "tmp").mkdir()
        env = {**s3[1], "STREAMSERVER_DATA_KEYS": keys,
               "STREAMSERVER_STORAGE_URL": "s3://calls/rec",
               "STREAMSERVER_DATA_DIR": str(root / "data"),  # must stay unused
               "STREAMSERVER_API_KEYS": f"{ALICE},{BOB}",
               "STREAMSERVER_WEBHOOK_SECRET": SECRET,
               "STREAMSERVER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
               "STREAMSERVER_PUBLIC_URL": "http://127.0.0.1:{port}",
               "STREAMSERVER_SWEEP_INTERVAL_S": "0.3", "TMPDIR": str(root / "tmp"),
               # No re-exec under jemalloc: it would load the models' imports twice.
               "STREAMSERVER_ALLOCATOR": "glibc"}
        args: tuple[str, ...] = ()
        if name == "a":
            env["STREAMSERVER_DATABASE_URL"] = url
        elif name == "b":
            args = ("--database-url", url)
        else:
            env["STREAMSERVER_DATABASE_URL"] = (f"postgresql://streamserver:{postgres.password}"
                                                f"@127.0.0.1:{_free_port()}/nowhere")
            env["STREAMSERVER_DATABASE_TIMEOUT_S"] = "1"
        plans.append((root, args, env))
    with ThreadPoolExecutor(len(plans)) as pool:
        started = [pool.submit(start_server, root, *args, env=env) for root, args, env in plans]
        try:
            servers = [f.result() for f in started]
        except BaseException:
            for f in started:
                if f.exception() is None:
                    stop_server(f.result())
            raise
        try:
            yield Nodes(*servers)
        finally:
            list(pool.map(stop_server, servers))


def _wait_for(receiver: Receiver, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)  # room for a duplicate (two sweeps of each node) to show up


def test_recorded_on_a_fetched_and_deleted_through_b_webhook_once(
        nodes: Nodes, s3: tuple[Any, dict[str, str]]) -> None:
    a, b = nodes.a, nodes.b
    receiver = Receiver()
    try:
        out, events = record_clip(a, "dev_009.wav", webhook_url=receiver.url)
        sid = events[0]["session_id"]
        assert [e["status"] for e in events if e["type"] == "recording"] == ["ready"]
        status, body = http("GET", f"{b.http}/v1/sessions/{sid}")
        assert status == 200 and json.loads(body)["status"] == "ready"
        status, wav_bytes = http("GET", f"{b.http}/v1/sessions/{sid}/redacted-audio")
        assert status == 200
        with wave.open(io.BytesIO(wav_bytes)) as w:
            stored = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(out.shape)
        np.testing.assert_array_equal(stored, out)  # what A's client received, via B
        assert http("GET", f"{b.http}/v1/sessions/{sid}/transcript")[0] == 200
        # Another key, or none, learns nothing through either node.
        for node in (a, b):
            assert http("GET", f"{node.http}/v1/sessions/{sid}", key=BOB)[0] == 404
            assert http("GET", f"{node.http}/v1/sessions/{sid}/redacted-audio",
                        key=BOB)[0] == 404
            assert http("GET", f"{node.http}/v1/sessions/{sid}", key=None)[0] == 401
        assert http("DELETE", f"{b.http}/v1/sessions/{sid}", key=BOB)[0] == 404
        _wait_for(receiver, 1)
        assert [(p["status"], p["session_id"]) for p in receiver.payloads()] == [
            ("redacted_audio_ready", sid)]
        assert receiver.payloads()[0]["redacted_audio_url"].startswith(a.http)
        assert s3[0].list_objects_v2(Bucket="calls", Prefix="rec/blobs/")["KeyCount"] > 0
        assert http("DELETE", f"{b.http}/v1/sessions/{sid}")[0] == 204
        for node in (a, b):
            assert http("GET", f"{node.http}/v1/sessions/{sid}")[0] == 404
        assert s3[0].list_objects_v2(Bucket="calls").get("KeyCount", 0) == 0
    finally:
        receiver.close()
    for node in (a, b):  # nothing went to the local disk
        assert not (node.log_path.parent / "data").exists()


def test_a_recording_expiring_while_both_nodes_sweep_is_removed_and_announced_once(
        nodes: Nodes, s3: tuple[Any, dict[str, str]]) -> None:
    a, b = nodes.a, nodes.b
    receiver = Receiver()
    try:
        sids = [record_clip(node, "dev_009.wav", webhook_url=receiver.url,
                            retention_s="1")[1][0]["session_id"] for node in (b, a)]
        _wait_for(receiver, 4)
        counts = collections.Counter((p["status"], p["session_id"]) for p in receiver.payloads())
        assert counts == {(status, sid): 1 for sid in sids
                          for status in ("redacted_audio_ready", "expired")}
        for sid in sids:
            assert http("GET", f"{a.http}/v1/sessions/{sid}")[0] == 404
        assert s3[0].list_objects_v2(Bucket="calls").get("KeyCount", 0) == 0
    finally:
        receiver.close()


def test_readyz_reports_the_metadata_database_without_its_password(
        nodes: Nodes, postgres: PostgresServer) -> None:
    for node in (nodes.a, nodes.b):
        status, body = http("GET", f"{node.http}/readyz", key=None)
        storage = json.loads(body)["storage"]
        assert status == 200 and storage["ok"] is True
        assert storage["metadata"]["backend"] == "postgresql"
        assert storage["metadata"]["schema_version"] >= 1
        assert storage["metadata"]["url"].startswith("postgresql://streamserver:***@127.0.0.1:")
        assert storage["blobs"] == "s3"
        assert postgres.password not in body.decode()


def test_a_node_whose_database_is_unreachable_redacts_but_refuses_recording(
        nodes: Nodes, postgres: PostgresServer) -> None:
    """Started while its database is unreachable: the node serves, /readyz is 200
    and says storage is not ok, a recorded session is refused (try later), an
    unrecorded one runs, the REST API says 503; the password is in no log."""
    node = nodes.cut_off
    status, body = http("GET", f"{node.http}/readyz", key=None)
    assert status == 200 and json.loads(body)["storage"]["ok"] is False
    with pytest.raises(TryLater) as refused:
        record_clip(node, "dev_009.wav")
    assert (refused.value.code, refused.value.close_code) == ("storage_unavailable", 1013)
    out, events = record_clip(node, "dev_009.wav", record="false")
    assert events[-1]["type"] == "session.end" and len(out) > 0
    assert http("GET", f"{node.http}/v1/sessions/{'a' * 32}")[0] == 503
    assert "storage unavailable" in node.log_text()
    for each in (nodes.a, nodes.b, node):
        assert postgres.password not in each.log_text()
