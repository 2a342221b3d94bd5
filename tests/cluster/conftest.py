"""A real ``redis-server`` (Debian's package) on a free loopback port, for the
cluster tests; restartable on the same port (Redis killed mid-call, then back).

No mocks: a missing redis-server fails these tests (scripts/test.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cluster.postgres import pg_url, postgres  # noqa: F401 - PostgreSQL fixtures
from tests.conftest import _free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/sbin/redis-server"
CLUSTER_SECRET = "test-cluster-secret-0123456789abcdef"


class RedisServer:
    """``redis-server`` in ``tmp``: no persistence (a restart starts empty, as a
    Redis that lost its data), loopback only. :meth:`kill` / :meth:`start` again
    keep the port, so nodes pointed at :attr:`url` reconnect by themselves."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            pytest.fail("redis-server not found: the cluster tests need Debian's "
                        "redis-server (apt-get install redis-server; scripts/test.sh "
                        "installs it)", pytrace=False)
        self.tmp = tmp
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.tmp),
             "--logfile", str(self.tmp / "redis.log"), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=str(self.tmp))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.tmp / "redis.log")
                raise RuntimeError("redis-server exited:\n" +
                                   (log.read_text(errors="replace") if log.exists() else ""))
            try:
                with self.client() as c:
                    if c.ping():
                        return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def kill(self) -> None:
        """SIGKILL: gone at once, everything it held lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:  # SIGSTOP: connected, answers nothing
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


def start_redis(tmp: Path) -> RedisServer:
    server = RedisServer(tmp)
    server.start()
    return server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis per test module; a test that kills it starts it again (same port)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The module's Redis, running and empty for this test."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    with redis_server.client() as c:
        c.flushall()
    yield redis_server
