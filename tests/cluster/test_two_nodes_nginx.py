"""Two real server processes behind a real nginx (the shipped deploy/nginx config),
sharing a real redis-server: what a client of a cluster sees.

Sessions opened through nginx alternate between the nodes (which node runs one is
read from its signed registry entry in Redis). A PII clip streamed through nginx
is heard byte for byte, with the same events, by a listener on the session's node,
one through nginx and one on the other node. Node A, SIGTERM-ed mid-call, says
503 draining on ``/readyz`` while its session drains (every accepted sample
released, redacted, ``session.end`` to the client and to listeners on both
nodes); nginx keeps opening sessions on B, and A's registry entries are gone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import websockets

from streamserver.cluster.codec import EntryCodec, derive_key
from streamserver.evaluation import Span, score_clip
from tests.cluster.conftest import CLUSTER_SECRET, RedisServer
from tests.cluster.nginx import Nginx, start_nginx
from tests.cluster.test_two_nodes import (
    Heard,
    clip,
    finish,
    listen,
    pii_windows,
    read_all,
    readyz,
    send_clip,
)
from tests.conftest import RunningServer, fixture_manifest, start_server, stop_server

pytestmark = pytest.mark.e2e

KEY = "nginx-cluster-key-0123456789"
CLIP = "dev_008.wav"  # "My name is Linda Smith and my number is 830-555-0175."
SIGTERM_AFTER_S = 3.2  # of audio sent: the name (1.4-2.2 s) is in what was accepted


@dataclass
class Cluster:
    nodes: dict[str, RunningServer]  # by node id: "a", "b"
    nginx: Nginx
    redis: RedisServer

    def node_of(self, session_id: str, wait_s: float = 5.0) -> str | None:
        """The node id in the session's registry entry (MAC checked); None if there
        is none after ``wait_s`` (a node writes the entry just after
        ``session.begin``, from its Redis writer task)."""
        codec = EntryCodec(derive_key(CLUSTER_SECRET.encode(), "registry"))
        deadline = time.monotonic() + wait_s
        with self.redis.client() as c:
            while (raw := c.get(f"streamserver:session:{session_id}")) is None:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.02)
        return codec.decode(session_id, raw, time.time()).node

    def entries_of(self, node: str) -> list[str]:
        """The sessions the registry says ``node`` runs."""
        codec = EntryCodec(derive_key(CLUSTER_SECRET.encode(), "registry"))
        found = []
        with self.redis.client() as c:
            for key in c.scan_iter("streamserver:session:*"):
                sid = key.decode().rsplit(":", 1)[1]
                raw = c.get(key)
                if raw is not None and codec.decode(sid, raw, time.time()).node == node:
                    found.append(sid)
        return found


def port_of(node: RunningServer) -> int:
    port = urlsplit(node.http).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            redis_server: RedisServer) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("nginx-cluster")
    env = {"STREAMSERVER_REDIS_URL": redis_server.url,
           "STREAMSERVER_CLUSTER_SECRET": CLUSTER_SECRET, "STREAMSERVER_API_KEYS": KEY,
           "STREAMSERVER_MAX_SESSIONS_PER_KEY": "32", "STREAMSERVER_WORKERS": "1",
           "STREAMSERVER_CLUSTER_TTL_S": "3", "STREAMSERVER_CLUSTER_HEARTBEAT_S": "1"}
    for name in ("a", "b"):
        (tmp / name).mkdir()
    with ThreadPoolExecutor(2) as pool:  # the models load in parallel
        futures = {n: pool.submit(start_server, tmp / n, "--shutdown-grace", "15",
                                  env={**env, "STREAMSERVER_NODE_ID": n})
                   for n in ("a", "b")}
        nodes = {n: f.result() for n, f in futures.items()}
    (tmp / "nginx").mkdir()
    nginx = None
    try:
        nginx = start_nginx(tmp / "nginx", [port_of(nodes["a"]), port_of(nodes["b"])])
        yield Cluster(nodes, nginx, redis_server)
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes.values():
            stop_server(node)


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def stream_url(base: str, pace: str = "asap", delay_ms: int = 1000, rate: int = 16000) -> str:
    return (f"{base}/v1/stream?encoding=pcm_s16le&sample_rate={rate}"
            f"&delay_ms={delay_ms}&pace={pace}")


def listen_url(base: str, session_id: str) -> str:
    return f"{base}/v1/sessions/{session_id}/listen"


def ws_base(node: RunningServer) -> str:
    return node.http.replace("http://", "ws://")


async def open_session(url: str) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(url, additional_headers=headers())
    return ws, json.loads(await ws.recv())


def test_sessions_through_nginx_alternate_between_the_nodes(cluster: Cluster) -> None:
    async def go() -> list[str | None]:
        opened = [await open_session(stream_url(cluster.nginx.ws)) for _ in range(4)]
        assert [b["type"] for _, b in opened] == ["session.begin"] * 4, opened
        placed = [cluster.node_of(b["session_id"]) for _, b in opened]
        counts = {n: readyz(node).get("sessions") for n, node in cluster.nodes.items()}
        for ws, _ in opened:
            await finish(ws)
        assert counts == {"a": 2, "b": 2}, counts
        return placed

    placed = asyncio.run(go())
    # Round-robin: one node, the other, the first again, ...
    assert sorted(placed) == ["a", "a", "b", "b"], placed  # type: ignore[type-var]
    assert placed[0] != placed[1] and placed[0] == placed[2] and placed[1] == placed[3]


def test_a_clip_through_nginx_is_heard_the_same_on_every_node(cluster: Cluster) -> None:
    samples, rate = clip()

    async def go() -> tuple[str, bytes, list[dict[str, Any]], dict[str, Heard]]:
        ws, begin = await open_session(stream_url(cluster.nginx.ws, rate=rate))
        sid = begin["session_id"]
        home = cluster.node_of(sid)
        assert home in ("a", "b")
        other = "b" if home == "a" else "a"
        heard = {"home": Heard(), "other": Heard(), "nginx": Heard()}
        bases = {"home": ws_base(cluster.nodes[home]), "other": ws_base(cluster.nodes[other]),
                 "nginx": cluster.nginx.ws}
        tasks = [asyncio.create_task(listen(listen_url(bases[k], sid), KEY, heard[k]))
                 for k in heard]
        await asyncio.wait_for(asyncio.gather(*(h.begun.wait() for h in heard.values())), 10)
        audio, events = bytearray(), [begin]
        reading = asyncio.create_task(read_all(ws, audio, events))
        await send_clip(ws, samples, rate, realtime=False)
        await ws.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(reading, 30)
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        return home, bytes(audio), events, heard

    home, audio, events, heard = asyncio.run(go())
    assert len(audio) == samples.shape[0] * 2  # asap: the input's length
    assert events[-1]["type"] == "session.end"
    entities = {e["entity"] for e in events if e["type"] == "redaction"}
    assert {"PERSON", "PHONE_NUMBER"} <= entities, entities
    windows = pii_windows(samples, rate)
    assert len(windows) > 20
    assert len([w for w in windows if w in audio]) <= len(windows) // 10
    for where, h in heard.items():
        assert bytes(h.audio) == audio, f"listener {where} (session on {home}): audio differs"
        assert h.events == events, f"listener {where} (session on {home}): events differ"
        assert h.close_code == 1000, where


def test_a_sigterm_drains_node_a_while_nginx_opens_sessions_on_b(cluster: Cluster) -> None:
    """Last in this module: node A (whichever runs the session) is gone after it."""
    samples, rate = clip()
    cut = int(SIGTERM_AFTER_S * rate)

    async def go() -> dict[str, Any]:
        got: dict[str, Any] = {}
        ws, begin = await open_session(stream_url(cluster.nginx.ws, "realtime", 2000, rate))
        sid = begin["session_id"]
        a_id = cluster.node_of(sid)
        assert a_id in ("a", "b")
        b_id = "b" if a_id == "a" else "a"
        a, b = cluster.nodes[a_id], cluster.nodes[b_id]
        got.update(sid=sid, a=a, b_id=b_id)
        on_a, on_b = Heard(), Heard()
        listeners = [asyncio.create_task(listen(listen_url(ws_base(n), sid), KEY, h))
                     for n, h in ((a, on_a), (b, on_b))]
        await asyncio.wait_for(asyncio.gather(on_a.begun.wait(), on_b.begun.wait()), 10)
        audio, events = bytearray(), [begin]
        reading = asyncio.create_task(read_all(ws, audio, events))
        await send_clip(ws, samples, rate, realtime=True, stop=cut)
        a.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # /readyz on A: 503 draining, while its session is still draining.
        while (ready := await asyncio.to_thread(readyz, a)).get("ready", True):
            assert time.monotonic() - signalled < 5, "A never said 503"
            await asyncio.sleep(0.01)
        got["ready_draining"] = ready
        got["ended_before_503"] = any(e["type"] == "session.end" for e in events)
        # Meanwhile nginx still opens sessions: on B, or refused by the draining A.
        during = [await open_session(stream_url(cluster.nginx.ws)) for _ in range(4)]
        got["during"] = [("session.begin", cluster.node_of(b_["session_id"]))
                         if b_["type"] == "session.begin" else (b_.get("code"), None)
                         for _, b_ in during]
        for w, first in during:
            if first["type"] == "session.begin":
                await finish(w)
            else:
                await w.close()
        await asyncio.wait_for(reading, 20)
        await asyncio.wait_for(asyncio.gather(*listeners), 10)
        got.update(audio=bytes(audio), events=events, close=ws.close_code, on_a=on_a, on_b=on_b)
        got["returncode"] = await asyncio.to_thread(a.proc.wait, 30)
        got["a_entries"] = cluster.entries_of(a_id)
        # A has exited: nginx skips it, every new session runs on B and redacts.
        after: list[tuple[Any, ...]] = []
        for _ in range(3):
            w, first = await open_session(stream_url(cluster.nginx.ws, rate=rate))
            if first["type"] != "session.begin":
                after.append((first["type"], first.get("code")))
                await w.close()
                continue
            await send_clip(w, samples, rate, realtime=False)
            placed = cluster.node_of(first["session_id"])
            out, evs = await finish(w)
            after.append((first["type"], placed, len(out), evs[-1]["type"]))
        got["after"] = after
        return got

    got = asyncio.run(go())
    a_name = got["a"]
    # 503 with the reason while the session was still draining.
    assert got["ready_draining"]["reason"] == "draining" and not got["ended_before_503"]
    # The drained session: everything accepted released, then session.end, 1001.
    audio, events = got["audio"], got["events"]
    end = events[-1]
    assert end["type"] == "session.end" and got["close"] == 1001, (events[-3:], got["close"])
    stats = end["stats"]
    assert stats["audio_out_ms"] == stats["audio_in_ms"]
    assert len(audio) == pytest.approx(stats["audio_in_ms"] * rate / 1000 * 2, abs=4)
    sent = cut * 2
    assert sent - rate // 10 * 2 <= len(audio) <= sent
    # ... redacted: the name (1.4-2.2 s) was in the accepted audio.
    ref = samples[: len(audio) // 2, 0]
    got_samples = np.frombuffer(audio, "<i2")
    person = [Span(p["entity"], p["start_s"], p["end_s"])
              for p in fixture_manifest()[CLIP]["pii"] if p["entity"] == "PERSON"]
    for entity, audible in score_clip(ref, got_samples, rate, person).entities:
        assert audible < 0.25, f"{entity} {audible:.0%} audible"
    # Listeners on A and on B got the same drained call and its end.
    for where, h in (("A", got["on_a"]), ("B", got["on_b"])):
        assert bytes(h.audio) == audio, f"listener on {where}: audio differs"
        assert h.events == events, f"listener on {where}: events differ"
        assert h.close_code == 1000, (where, h.close_code)
    # While A drained, nginx's new sessions began on B or were refused by A.
    during = got["during"]
    assert all(d in (("session.begin", got["b_id"]), ("server_busy", None)) for d in during), during
    assert ("session.begin", got["b_id"]) in during, during
    # A exited cleanly and left nothing in the registry.
    assert got["returncode"] == 0, a_name.log_text()[-2000:]
    assert got["a_entries"] == []
    assert got["sid"] not in [s for n in ("a", "b") for s in cluster.entries_of(n)]
    # After A: every session through nginx runs on B, the whole clip, to its end.
    n = samples.shape[0] * 2
    assert got["after"] == [("session.begin", got["b_id"], n, "session.end")] * 3, got["after"]
