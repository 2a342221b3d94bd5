"""A real PostgreSQL (Debian's ``postgresql`` package) in a temporary directory.

``initdb`` + ``pg_ctl``, listening on 127.0.0.1 on a free port and on a unix
socket inside the directory, password (SCRAM) authentication. ``initdb`` refuses
to run as root, so as root (CI) the server runs as an unprivileged user
(``postgres`` if the package made it, else ``nobody``) that owns the directory.
No mocks: missing binaries fail these tests (scripts/test.sh installs them).

The fixture is imported by tests/cluster/conftest.py and tests/storage/conftest.py;
both get the same server (started once per test run, stopped after its last user).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "streamserver"


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory; fails the test if none."""
    found = [Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").exists()]
    if not found:
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN_GLOB}: the cluster tests "
                    "need Debian's postgresql package (apt-get install postgresql; "
                    "scripts/test.sh installs it)", pytrace=False)
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    pytest.fail("running as root and no unprivileged user (postgres, nobody) to run "
                "PostgreSQL as", pytrace=False)


@dataclass
class PostgresServer:
    bindir: Path
    root: Path  # owned by the server's user; data/, the socket, the log
    port: int
    password: str
    user: tuple[int, int] | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", password: bool = True) -> str:
        auth = f"{SUPERUSER}:{self.password}" if password else SUPERUSER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        uid_gid = self.user or (None, None)
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], cwd=self.root, timeout=timeout,
            user=uid_gid[0], group=uid_gid[1], extra_groups=[] if self.user else None,
            env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "TZ": "UTC"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode:
            log = self.root / "server.log"
            raise RuntimeError(f"{args[0]} failed:\n{result.stdout.decode(errors='replace')}"
                               + (log.read_text(errors="replace") if log.exists() else ""))

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port}"
                   f" -c unix_socket_directories={self.root}"
                   " -c fsync=off -c full_page_writes=off"  # a crash of the process loses nothing
                   " -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-w", "-t", "30", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop``; ``immediate`` is a crash (no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its URL (with the password)."""
        import psycopg

        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)


def start_postgres() -> PostgresServer:
    bindir = pg_bindir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="streamserver-pg-"))
    if user is not None:
        os.chown(root, *user)
    os.chmod(root, 0o700)
    password = secrets.token_urlsafe(18)
    server = PostgresServer(bindir, root, _free_port(), password, user)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if user is not None:
        os.chown(pwfile, *user)
    server._run("initdb", "-D", str(server.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
                "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync",
                "--no-instructions")
    pwfile.unlink()
    for attempt in range(3):  # the free port may be taken meanwhile: try another
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = _free_port()
            time.sleep(0.2)
    raise AssertionError("unreachable")


class _Shared:
    """The running server and how many session fixtures (one per conftest) use it."""

    server: PostgresServer | None = None
    users = 0


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole run (about 2 s to start), stopped after its last
    user; each test takes its own database (:meth:`PostgresServer.create_database`)."""
    if _Shared.server is None:
        _Shared.server = start_postgres()
    server = _Shared.server
    _Shared.users += 1
    try:
        yield server
    finally:
        _Shared.users -= 1
        if not _Shared.users:
            _Shared.server = None
            try:
                server.stop("immediate")
            finally:
                shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh database of the shared server, for one test."""
    return postgres.create_database()
