"""SqliteMetadata: the embedded metadata store (one process; WAL, secure_delete).

Tables (schema version in ``PRAGMA user_version``, migrations below, applied in
one transaction at open)::

    sessions(session_id, created, expires, owner, webhook, live_until)
    artefacts(session_id, kind, file, expires, size)
    notices(event_id, session_id, event, url, owner, created, lease_until, settled, outcome)
    tombstones(session_digest, until)

One connection behind one lock: SQLite serialises writes anyway and the calls are
short. After a delete or purge the write-ahead log is truncated, since its old
frames still hold the deleted rows.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .metadata import (
    EVENT_EXPIRED,
    Notice,
    Purged,
    RemoveBlobs,
    SameOwner,
    SessionDeletedError,
    SessionRow,
    tombstone_key,
)
from .store import OwnerMismatchError, StoreError

SETTLED_NOTICE_KEEP_S = 7 * 86400  # a settled notice's row still blocks a duplicate

# Numbered migrations: never edit one that shipped, add the next. 1 is the schema
# from before versioning (IF NOT EXISTS: databases of that time already have it).
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
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
CREATE INDEX IF NOT EXISTS artefacts_expires ON artefacts(expires)
"""),
    (2, """
ALTER TABLE sessions ADD COLUMN webhook BLOB;
ALTER TABLE sessions ADD COLUMN live_until REAL NOT NULL DEFAULT 0;
ALTER TABLE artefacts ADD COLUMN size INTEGER;
CREATE TABLE notices (
    event_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url BLOB NOT NULL,
    owner BLOB NOT NULL,
    created REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    settled REAL,
    outcome TEXT,
    UNIQUE (session_id, event)
);
CREATE TABLE tombstones (
    session_digest TEXT PRIMARY KEY,
    until REAL NOT NULL
)
"""),
)


class SqliteMetadata:
    """A :class:`~.metadata.MetadataStore` in one SQLite file; safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a committed delete stays deleted
            # Deleted rows are overwritten with zeros, not left in free pages.
            self._db.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the metadata database ({type(exc).__name__})") \
                from None
        self._migrate()

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in MIGRATIONS:
                if number <= version:
                    continue
                for statement in script.split(";"):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number:d}")  # part of the transaction

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

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

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StoreError(f"metadata database error ({type(exc).__name__})") from None

    def reserve(self, blob: str, now: float) -> None:
        pass  # LocalStore removes unknown files when it opens (one process per directory)

    def release(self, blob: str) -> None:
        pass

    def put(self, session_id: str, kind: str, blob: str, size: int, expires_at: float,
            owner: bytes, same_owner: SameOwner, now: float) -> str | None:
        with self._transaction() as db:
            row = db.execute("SELECT owner FROM sessions WHERE session_id = ?",
                             (session_id,)).fetchone()
            if row is None:
                if db.execute("SELECT 1 FROM tombstones WHERE session_digest = ?"
                              " AND until > ?", (tombstone_key(session_id), now)).fetchone():
                    raise SessionDeletedError("the session was deleted")
                db.execute("INSERT INTO sessions (session_id, created, expires, owner)"
                           " VALUES (?, ?, ?, ?)", (session_id, now, expires_at, owner))
            else:
                if not same_owner(row[0]):
                    raise OwnerMismatchError("session belongs to another owner")
                db.execute("UPDATE sessions SET expires = MAX(expires, ?) WHERE session_id = ?",
                           (expires_at, session_id))
            old = db.execute("SELECT file FROM artefacts WHERE session_id = ? AND kind = ?",
                             (session_id, kind)).fetchone()
            db.execute("INSERT OR REPLACE INTO artefacts (session_id, kind, file, expires, size)"
                       " VALUES (?, ?, ?, ?, ?)", (session_id, kind, blob, expires_at, size))
        return old[0] if old else None

    def artefact(self, session_id: str, kind: str) -> tuple[str, float] | None:
        with self._reading() as db:
            row = db.execute("SELECT file, expires FROM artefacts"
                             " WHERE session_id = ? AND kind = ?", (session_id, kind)).fetchone()
        return (row[0], row[1]) if row else None

    def session(self, session_id: str, now: float) -> SessionRow | None:
        with self._reading() as db:
            row = db.execute("SELECT created, expires, owner, live_until FROM sessions"
                             " WHERE session_id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            kinds = tuple(k for (k,) in db.execute(
                "SELECT kind FROM artefacts WHERE session_id = ? AND expires > ? ORDER BY kind",
                (session_id, now)))
        return SessionRow(row[0], row[1], row[2], kinds, row[3])

    def set_expiry(self, session_id: str, expires_at: float) -> bool:
        with self._transaction() as db:
            db.execute("UPDATE artefacts SET expires = ? WHERE session_id = ?",
                       (expires_at, session_id))
            found = db.execute("UPDATE sessions SET expires = ? WHERE session_id = ?",
                               (expires_at, session_id)).rowcount > 0
        return found

    def delete(self, session_id: str, remove: RemoveBlobs,
               tombstone_until: float | None = None) -> bool:
        with self._transaction() as db:
            files = [f for (f,) in db.execute(
                "SELECT file FROM artefacts WHERE session_id = ?", (session_id,))]
            db.execute("DELETE FROM artefacts WHERE session_id = ?", (session_id,))
            found = db.execute("DELETE FROM sessions WHERE session_id = ?",
                               (session_id,)).rowcount > 0
            if found and tombstone_until is not None:
                db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?)",
                           (tombstone_key(session_id), tombstone_until))
            remove(files)
        self._scrub_log()
        return found

    def purge(self, now: float, remove: RemoveBlobs, lease_until: float) -> Purged:
        notices: list[Notice] = []
        with self._transaction() as db:
            files = [f for (f,) in db.execute(
                "SELECT file FROM artefacts WHERE expires <= ?", (now,))]
            db.execute("DELETE FROM artefacts WHERE expires <= ?", (now,))
            emptied = "SELECT session_id FROM artefacts"
            for session_id, url, owner in db.execute(
                    f"SELECT session_id, webhook, owner FROM sessions WHERE expires <= ?"
                    f" AND webhook IS NOT NULL AND session_id NOT IN ({emptied})",
                    (now,)).fetchall():
                notice = Notice(str(uuid.uuid4()), session_id, EVENT_EXPIRED, url, owner)
                if db.execute("INSERT OR IGNORE INTO notices (event_id, session_id, event, url,"
                              " owner, created, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (notice.event_id, session_id, notice.event, url, owner, now,
                               lease_until)).rowcount:
                    notices.append(notice)
            db.execute(f"DELETE FROM sessions WHERE session_id NOT IN ({emptied})")
            db.execute("DELETE FROM tombstones WHERE until <= ?", (now,))
            db.execute("DELETE FROM notices WHERE settled <= ?", (now - SETTLED_NOTICE_KEEP_S,))
            remove(files)
        if files:
            self._scrub_log()
        return Purged(len(files), notices)

    def announce(self, session_id: str, event: str, url: bytes, now: float,
                 lease_until: float) -> Notice | None:
        with self._transaction() as db:
            row = db.execute("SELECT owner FROM sessions WHERE session_id = ?",
                             (session_id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE sessions SET webhook = ? WHERE session_id = ?", (url, session_id))
            notice = Notice(str(uuid.uuid4()), session_id, event, url, row[0])
            inserted = db.execute(
                "INSERT OR IGNORE INTO notices (event_id, session_id, event, url, owner, created,"
                " lease_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (notice.event_id, session_id, event, url, row[0], now, lease_until)).rowcount
        return notice if inserted else None

    def claim_notices(self, now: float, lease_until: float, limit: int) -> list[Notice]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT event_id, session_id, event, url, owner FROM notices"
                " WHERE settled IS NULL AND lease_until <= ? ORDER BY created LIMIT ?",
                (now, limit)).fetchall()
            db.executemany("UPDATE notices SET lease_until = ? WHERE event_id = ?",
                           [(lease_until, r[0]) for r in rows])
        return [Notice(*r) for r in rows]

    def settle(self, event_id: str, outcome: str | None, now: float) -> None:
        with self._transaction() as db:
            if outcome is None:
                db.execute("UPDATE notices SET lease_until = 0 WHERE event_id = ?", (event_id,))
            else:
                db.execute("UPDATE notices SET settled = ?, outcome = ? WHERE event_id = ?",
                           (now, outcome, event_id))

    def keep_live(self, session_ids: Sequence[str], until: float) -> list[str]:
        with self._transaction() as db:
            db.executemany("UPDATE sessions SET live_until = ? WHERE session_id = ?",
                           [(until, s) for s in session_ids])
            digests = {tombstone_key(s): s for s in session_ids}
            marks = ",".join("?" * len(digests))
            return [digests[d] for (d,) in db.execute(
                f"SELECT session_digest FROM tombstones WHERE session_digest IN ({marks})",
                tuple(digests))]

    def usage(self, now: float) -> list[tuple[str, bytes, str, int | None]]:
        with self._reading() as db:
            return [tuple(r) for r in db.execute(  # type: ignore[misc]
                "SELECT s.session_id, s.owner, a.file, a.size FROM sessions s"
                " JOIN artefacts a ON a.session_id = s.session_id WHERE s.expires > ?", (now,))]

    def blob_names(self) -> set[str]:
        with self._reading() as db:
            return {f for (f,) in db.execute("SELECT file FROM artefacts")}

    def check(self) -> None:
        with self._reading() as db:
            db.execute("SELECT 1").fetchone()

    def describe(self) -> dict[str, Any]:
        return {"backend": "sqlite"}

    def _scrub_log(self) -> None:
        with self._reading() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
