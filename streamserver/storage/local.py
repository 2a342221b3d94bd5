"""LocalStore: SQLite (WAL) for metadata, one sealed file per artefact.

Layout under ``directory`` (created 0700)::

    meta.sqlite3        sessions(session_id, created, expires, sealed owner)
                        artefacts(session_id, kind, file, expires)
    blobs/<random>.bin  one sealed artefact each; names carry no session data

Writes are atomic: the blob goes to a temp file in ``blobs/``, is fsynced and
renamed, then its row is committed. A crash between the two leaves an orphan
file, which the next open removes. Opening also purges whatever expired while
the process was down. One process per directory: a second one opening it
would take the first one's in-flight temp files for orphans.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .crypto import KeyRing, artefact_aad
from .store import (
    OwnerMismatchError,
    SessionRecord,
    StoreError,
    check_keys,
    status_of,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    owner BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS artefacts (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    kind TEXT NOT NULL,
    file TEXT NOT NULL UNIQUE,
    expires REAL NOT NULL,
    PRIMARY KEY (session_id, kind)
);
CREATE INDEX IF NOT EXISTS artefacts_expires ON artefacts(expires);
"""
_TMP_PREFIX = ".tmp-"


def _owner_aad(session_id: str) -> bytes:
    return f"streamserver/owner|{session_id}".encode()


class LocalStore:
    """An :class:`~.store.ArtefactStore` on the local disk; safe to share across threads.

    ``clock`` decides what counts as expired in :meth:`get` and :meth:`record`
    (tests pass a fake one). Call :meth:`close` when done.
    """

    def __init__(
        self, directory: str | Path, keyring: KeyRing, clock: Callable[[], float] = time.time
    ) -> None:
        self._dir = Path(directory)
        self._blobs = self._dir / "blobs"
        self._keyring = keyring
        self._clock = clock
        # One connection behind one lock: writes are serialised anyway by SQLite,
        # and the store's calls are short.
        self._lock = threading.Lock()
        try:
            self._blobs.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._dir, 0o700)
            self._db = sqlite3.connect(
                self._dir / "meta.sqlite3", isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a committed delete stays deleted
            # Deleted rows are overwritten with zeros, not left in free pages.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the local store ({type(exc).__name__})") from None
        self._remove_orphans()
        self.purge_expired(clock())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"metadata database error ({type(exc).__name__})") from None

    def put(
        self, session_id: str, kind: str, data: bytes, expires_at: float, owner: str
    ) -> None:
        check_keys(session_id, kind)
        name = self._write_blob(self._keyring.seal(data, artefact_aad(session_id, kind)))
        replaced: str | None = None
        try:
            with self._transaction() as db:
                row = db.execute(
                    "SELECT owner, expires FROM sessions WHERE session_id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    sealed_owner = self._keyring.seal(owner.encode(), _owner_aad(session_id))
                    db.execute(
                        "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                        (session_id, self._clock(), expires_at, sealed_owner),
                    )
                else:
                    stored = self._keyring.open(row[0], _owner_aad(session_id)).decode()
                    if not secrets.compare_digest(stored, owner):
                        raise OwnerMismatchError("session belongs to another owner")
                    db.execute(
                        "UPDATE sessions SET expires = MAX(expires, ?) WHERE session_id = ?",
                        (expires_at, session_id),
                    )
                old = db.execute(
                    "SELECT file FROM artefacts WHERE session_id = ? AND kind = ?",
                    (session_id, kind),
                ).fetchone()
                replaced = old[0] if old else None
                db.execute(
                    "INSERT OR REPLACE INTO artefacts VALUES (?, ?, ?, ?)",
                    (session_id, kind, name, expires_at),
                )
        except BaseException:
            self._unlink(name)
            raise
        if replaced:
            self._unlink(replaced)

    def get(self, session_id: str, kind: str) -> bytes | None:
        check_keys(session_id, kind)
        with self._lock:
            row = self._db.execute(
                "SELECT file, expires FROM artefacts WHERE session_id = ? AND kind = ?",
                (session_id, kind),
            ).fetchone()
            if row is None or row[1] <= self._clock():
                return None
            try:
                blob = (self._blobs / row[0]).read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise StoreError(f"cannot read an artefact ({type(exc).__name__})") from None
        return self._keyring.open(blob, artefact_aad(session_id, kind))

    def record(self, session_id: str) -> SessionRecord | None:
        check_keys(session_id)
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT created, expires, owner FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                return None
            kinds = [
                k for (k,) in self._db.execute(
                    "SELECT kind FROM artefacts WHERE session_id = ? AND expires > ?"
                    " ORDER BY kind",
                    (session_id, now),
                )
            ]
        owner = self._keyring.open(row[2], _owner_aad(session_id)).decode()
        return SessionRecord(
            session_id, owner, row[0], row[1], tuple(kinds), status_of(row[1], now)
        )

    def set_expiry(self, session_id: str, expires_at: float) -> bool:
        check_keys(session_id)
        with self._transaction() as db:
            db.execute("UPDATE artefacts SET expires = ? WHERE session_id = ?",
                       (expires_at, session_id))
            return db.execute("UPDATE sessions SET expires = ? WHERE session_id = ?",
                              (expires_at, session_id)).rowcount > 0

    def delete(self, session_id: str) -> bool:
        check_keys(session_id)
        with self._transaction() as db:
            files = [
                f for (f,) in db.execute(
                    "SELECT file FROM artefacts WHERE session_id = ?", (session_id,)
                )
            ]
            db.execute("DELETE FROM artefacts WHERE session_id = ?", (session_id,))
            found = db.execute(
                "DELETE FROM sessions WHERE session_id = ?", (session_id,)
            ).rowcount > 0
            # Unlinking inside the transaction: if a file cannot be removed the rows
            # stay (rolled back) and the caller sees the error, so nothing is half gone.
            for name in files:
                self._unlink(name, strict=True)
        self._scrub_log()
        return found

    def usage(self, now: float) -> dict[str, int]:
        """Bytes stored per owner (sealed sizes, unexpired sessions): for quotas."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.session_id, s.owner, a.file FROM sessions s"
                " JOIN artefacts a ON a.session_id = s.session_id WHERE s.expires > ?",
                (now,)).fetchall()
        owners: dict[str, str] = {}
        out: dict[str, int] = {}
        for session_id, sealed_owner, name in rows:
            owner = owners.get(session_id)
            if owner is None:
                owner = owners[session_id] = self._keyring.open(
                    sealed_owner, _owner_aad(session_id)).decode()
            try:
                size = (self._blobs / name).stat().st_size
            except OSError:
                continue
            out[owner] = out.get(owner, 0) + size
        return out

    @property
    def directory(self) -> Path:
        """Where the artefacts are (its file system's free space is checked)."""
        return self._blobs

    def purge_expired(self, now: float) -> int:
        with self._transaction() as db:
            files = [
                f for (f,) in db.execute("SELECT file FROM artefacts WHERE expires <= ?", (now,))
            ]
            db.execute("DELETE FROM artefacts WHERE expires <= ?", (now,))
            db.execute(
                "DELETE FROM sessions WHERE session_id NOT IN"
                " (SELECT session_id FROM artefacts)"
            )
            for name in files:
                self._unlink(name, strict=True)
        if files:
            self._scrub_log()
        return len(files)

    def _scrub_log(self) -> None:
        """Empty the write-ahead log: its old frames still hold the deleted rows."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise StoreError(f"metadata database error ({type(exc).__name__})") from None

    def _write_blob(self, sealed: bytes) -> str:
        name = f"{secrets.token_hex(16)}.bin"
        try:
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._blobs)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(sealed)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._blobs / name)
            except BaseException:
                self._unlink(Path(tmp).name)
                raise
            self._fsync_dir()
        except OSError as exc:
            raise StoreError(f"cannot write an artefact ({type(exc).__name__})") from None
        return name

    def _fsync_dir(self) -> None:
        fd = os.open(self._blobs, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _unlink(self, name: str, strict: bool = False) -> None:
        try:
            (self._blobs / name).unlink(missing_ok=True)
        except OSError as exc:
            if strict:
                raise StoreError(f"cannot remove an artefact ({type(exc).__name__})") from None

    def _remove_orphans(self) -> None:
        """Temp files and blobs without a row: left by a crash mid-write."""
        with self._lock:
            known = {f for (f,) in self._db.execute("SELECT file FROM artefacts")}
        for path in self._blobs.iterdir():
            if path.name not in known:
                self._unlink(path.name)

