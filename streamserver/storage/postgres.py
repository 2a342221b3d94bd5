"""PostgresMetadata: recording metadata in PostgreSQL, shared by every node.

Same rows as the embedded store (:mod:`.sqlite_meta`), in the schema of
:mod:`.pg_migrations`. What makes it safe with N nodes:

* **Sweeping** claims rows with ``FOR UPDATE SKIP LOCKED``: nodes sweeping at the
  same time take disjoint batches, so each expired artefact is removed by one node,
  and each emptied session is deleted — and its expiry notice inserted, in the same
  transaction — by exactly one. ``notices`` is unique per (session, event) besides.
* **Webhooks** are rows first (:class:`~.metadata.Notice`), leased to the node that
  sends them; a node that dies mid-delivery lets its lease run out and another
  node sends the same delivery id again.
* **Writes** lock the session row (``FOR UPDATE``) before checking its owner; a
  session deleted through any node leaves a tombstone that refuses later writes.
* **Blobs in flight** are noted in ``loose_blobs`` before they are written, so
  one left behind by a node that died is found without listing the bucket.

Connections come from a small pool (psycopg_pool), each statement has a timeout,
and every error becomes a :class:`~.store.StoreError` naming only its type: the
URL, its password and the server's message stay out of logs and responses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..config import redact_url, url_secrets
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
from .pg_migrations import migrate
from .store import OwnerMismatchError, StoreError

log = logging.getLogger("streamserver.storage")

PURGE_BATCH = 500  # rows claimed per sweeping transaction
LOOSE_BLOB_GRACE_S = 3600.0  # a blob noted this long ago without a row was left behind
SETTLED_NOTICE_KEEP_S = 7 * 86400  # a settled notice's row still blocks a duplicate
RECONNECT_WINDOW_S = 10.0  # the pool's background reconnection, before it starts over


class SchemaNotReadyError(StoreError):
    """The database has not been reached (or migrated) yet."""


class PostgresMetadata:
    """A :class:`~.metadata.MetadataStore` in PostgreSQL; safe across threads and nodes.

    Opening does not wait for the database. The first call (:meth:`check` at the
    server's start) reaches it and migrates the schema; until that succeeds every
    call tries again, waiting at most ``timeout_s``, and raises
    :class:`SchemaNotReadyError` saying why (down, or refusing: a wrong password).
    Call :meth:`close` when done.
    """

    def __init__(self, url: str, pool_size: int = 4, timeout_s: float = 5.0) -> None:
        self._url = url
        self._where = redact_url(url)
        self._secrets = url_secrets(url)
        self._schema_version = 0
        self._schema_lock = threading.Lock()
        self._kwargs: dict[str, Any] = {
            "autocommit": True, "connect_timeout": max(1, round(timeout_s)),
            "application_name": "streamserver",
            "options": f"-c statement_timeout={int(timeout_s * 1000)}"}
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._suspect = False  # the last check failed: try a connection of our own first
        self._pool = self._new_pool()

    def _new_pool(self) -> ConnectionPool[Any]:
        pool: ConnectionPool[Any] = ConnectionPool(
            self._url, min_size=1, max_size=self._pool_size, open=False,
            timeout=self._timeout_s, name="streamserver-metadata",
            check=ConnectionPool.check_connection,  # a connection that died is replaced
            reconnect_timeout=RECONNECT_WINDOW_S, kwargs=self._kwargs)
        pool.open(wait=False)  # connects in the background
        return pool

    # -- plumbing -----------------------------------------------------------------
    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._schema_version:
            self._migrate()
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreError(f"metadata database error ({type(exc).__name__})") from None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        with self._conn() as conn, conn.transaction():
            yield conn

    def _migrate(self) -> None:
        """Reach the database and bring its schema up to date (once per process).

        A connection of its own, not the pool's: its error says why it failed."""
        with self._schema_lock:
            if self._schema_version:
                return
            try:
                with psycopg.connect(self._url, **self._kwargs) as conn:
                    result = migrate(conn)
            except psycopg.Error as exc:
                raise SchemaNotReadyError(
                    f"{type(exc).__name__}: {self._reason(exc)}") from None
            if result.applied:
                log.info("metadata schema migrated",
                         extra={"stats": {"version": result.version,
                                          "applied": len(result.applied)}})
            if result.version > result.known:
                # A newer release migrated it; migrations stay compatible one release
                # back, so this node goes on (docs/deploy.md, rolling upgrades).
                log.warning("metadata schema is newer than this release",
                            extra={"stats": {"version": result.version,
                                             "known": result.known}})
            self._schema_version = result.version

    def _reason(self, exc: psycopg.Error) -> str:
        """libpq's first line (host, port, user, the server's complaint) for the
        operator's log; it never holds the password, which is scrubbed anyway."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = (lines[0] if lines else "")[-300:]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @property
    def schema_version(self) -> int:
        return self._schema_version

    def check(self) -> None:
        """Reach the database (migrating it the first time); the server calls this
        every few seconds. After a failed check it first connects on its own and,
        once that works, starts a fresh pool: the old one's reconnection may be
        waiting out a long backoff, which would keep recording off for no reason."""
        if self._suspect and self._schema_version:
            try:
                psycopg.connect(self._url, **self._kwargs).close()
            except psycopg.Error as exc:
                raise StoreError(f"metadata database unreachable ({type(exc).__name__})") \
                    from None
            old, self._pool = self._pool, self._new_pool()
            old.close(timeout=1.0)  # connections in use are closed as they come back
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1").fetchone()
        except StoreError:
            self._suspect = True
            raise
        self._suspect = False

    def describe(self) -> dict[str, Any]:
        return {"backend": "postgresql", "url": self._where,
                "schema_version": self._schema_version}

    def close(self) -> None:
        # Its workers may be inside a connection attempt: wait for them no longer
        # than one would take.
        self._pool.close(timeout=self._timeout_s)

    # -- artefacts ----------------------------------------------------------------
    def reserve(self, blob: str, now: float) -> None:
        with self._conn() as conn:
            conn.execute("INSERT INTO loose_blobs (blob, since) VALUES (%s, %s)", (blob, now))

    def release(self, blob: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM loose_blobs WHERE blob = %s", (blob,))

    def put(self, session_id: str, kind: str, blob: str, size: int, expires_at: float,
            owner: bytes, same_owner: SameOwner, now: float) -> str | None:
        with self._tx() as conn:
            stored = self._lock_or_create(conn, session_id, expires_at, owner, now)
            if stored is not None:
                if not same_owner(stored):
                    raise OwnerMismatchError("session belongs to another owner")
                conn.execute("UPDATE sessions SET expires = GREATEST(expires, %s)"
                             " WHERE session_id = %s", (expires_at, session_id))
            old = conn.execute("SELECT blob FROM artefacts WHERE session_id = %s AND kind = %s"
                               " FOR UPDATE", (session_id, kind)).fetchone()
            conn.execute(
                "INSERT INTO artefacts (session_id, kind, blob, expires, size)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (session_id, kind) DO UPDATE"
                " SET blob = EXCLUDED.blob, expires = EXCLUDED.expires, size = EXCLUDED.size",
                (session_id, kind, blob, expires_at, size))
            conn.execute("DELETE FROM loose_blobs WHERE blob = %s", (blob,))
            if old is not None:  # removed by the caller after the commit, or by a sweep
                conn.execute("INSERT INTO loose_blobs (blob, since) VALUES (%s, 0)"
                             " ON CONFLICT (blob) DO UPDATE SET since = 0", (old[0],))
        return str(old[0]) if old is not None else None

    @staticmethod
    def _lock_or_create(conn: psycopg.Connection[Any], session_id: str, expires_at: float,
                        owner: bytes, now: float) -> bytes | None:
        """Lock the session's row, creating it if there is none: the stored (sealed)
        owner, or None if this call created the row."""
        for _ in range(3):
            row = conn.execute("SELECT owner FROM sessions WHERE session_id = %s FOR UPDATE",
                               (session_id,)).fetchone()
            if row is not None:
                return bytes(row[0])
            if conn.execute("SELECT 1 FROM tombstones WHERE session_digest = %s"
                            " AND until > %s", (tombstone_key(session_id), now)).fetchone():
                raise SessionDeletedError("the session was deleted")
            # A concurrent creator makes this wait, then do nothing: lock it next round.
            if conn.execute("INSERT INTO sessions (session_id, created, expires, owner)"
                            " VALUES (%s, %s, %s, %s) ON CONFLICT (session_id) DO NOTHING"
                            " RETURNING 1", (session_id, now, expires_at, owner)).fetchone():
                return None
        raise StoreError("metadata database contention on one session")

    def artefact(self, session_id: str, kind: str) -> tuple[str, float] | None:
        with self._conn() as conn:
            row = conn.execute("SELECT blob, expires FROM artefacts"
                               " WHERE session_id = %s AND kind = %s",
                               (session_id, kind)).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def session(self, session_id: str, now: float) -> SessionRow | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT created, expires, owner, live_until, ARRAY(SELECT kind FROM artefacts"
                " a WHERE a.session_id = s.session_id AND a.expires > %s ORDER BY kind)"
                " FROM sessions s WHERE session_id = %s", (now, session_id)).fetchone()
        if row is None:
            return None
        return SessionRow(float(row[0]), float(row[1]), bytes(row[2]), tuple(row[4]),
                          float(row[3]))

    def set_expiry(self, session_id: str, expires_at: float) -> bool:
        with self._tx() as conn:
            # The session row first, as put takes them: no deadlock between the two.
            if not conn.execute("SELECT 1 FROM sessions WHERE session_id = %s FOR UPDATE",
                                (session_id,)).fetchone():
                return False
            conn.execute("UPDATE artefacts SET expires = %s WHERE session_id = %s",
                         (expires_at, session_id))
            conn.execute("UPDATE sessions SET expires = %s WHERE session_id = %s",
                         (expires_at, session_id))
        return True

    def delete(self, session_id: str, remove: RemoveBlobs,
               tombstone_until: float | None = None) -> bool:
        with self._tx() as conn:
            if not conn.execute("SELECT 1 FROM sessions WHERE session_id = %s FOR UPDATE",
                                (session_id,)).fetchone():
                return False
            blobs = [str(b) for (b,) in conn.execute(
                "SELECT blob FROM artefacts WHERE session_id = %s", (session_id,))]
            conn.execute("DELETE FROM artefacts WHERE session_id = %s", (session_id,))
            conn.execute("DELETE FROM sessions WHERE session_id = %s", (session_id,))
            if tombstone_until is not None:
                conn.execute("INSERT INTO tombstones (session_digest, until) VALUES (%s, %s)"
                             " ON CONFLICT (session_digest) DO UPDATE SET until = EXCLUDED.until",
                             (tombstone_key(session_id), tombstone_until))
            remove(blobs)  # inside the transaction: a blob that stays keeps its rows
        return True

    # -- sweeping -----------------------------------------------------------------
    def purge(self, now: float, remove: RemoveBlobs, lease_until: float) -> Purged:
        removed = 0
        notices: list[Notice] = []
        while True:
            with self._tx() as conn:
                rows = conn.execute(
                    "SELECT blob FROM artefacts WHERE expires <= %s ORDER BY expires"
                    " LIMIT %s FOR UPDATE SKIP LOCKED", (now, PURGE_BATCH)).fetchall()
                blobs = [str(b) for (b,) in rows]
                if blobs:
                    remove(blobs)
                    conn.execute("DELETE FROM artefacts WHERE blob = ANY(%s)", (blobs,))
                gone = self._delete_emptied(conn, now)
                notices += self._expiry_notices(conn, gone, now, lease_until)
            removed += len(blobs)
            if len(blobs) < PURGE_BATCH and len(gone) < PURGE_BATCH:
                break
        with self._tx() as conn:
            loose = [str(b) for (b,) in conn.execute(
                "SELECT blob FROM loose_blobs WHERE since <= %s LIMIT %s FOR UPDATE SKIP LOCKED",
                (now - LOOSE_BLOB_GRACE_S, PURGE_BATCH))]
            if loose:
                remove(loose)
                conn.execute("DELETE FROM loose_blobs WHERE blob = ANY(%s)", (loose,))
            conn.execute("DELETE FROM tombstones WHERE until <= %s", (now,))
            conn.execute("DELETE FROM notices WHERE settled <= %s",
                         (now - SETTLED_NOTICE_KEEP_S,))
        return Purged(removed, notices)

    @staticmethod
    def _delete_emptied(conn: psycopg.Connection[Any],
                        now: float) -> list[tuple[str, bytes, bytes | None]]:
        """Delete expired sessions with no artefact left, each claimed by one node.

        Two nodes that removed different artefacts of one session each still see
        the other's rows, so neither deletes it then: the next sweep does."""
        return [(str(s), bytes(o), None if w is None else bytes(w)) for s, o, w in conn.execute(
            "WITH doomed AS (SELECT session_id FROM sessions s WHERE s.expires <= %s"
            " AND NOT EXISTS (SELECT 1 FROM artefacts a WHERE a.session_id = s.session_id)"
            " ORDER BY s.expires LIMIT %s FOR UPDATE SKIP LOCKED)"
            " DELETE FROM sessions s USING doomed d WHERE s.session_id = d.session_id"
            " RETURNING s.session_id, s.owner, s.webhook", (now, PURGE_BATCH)).fetchall()]

    @staticmethod
    def _expiry_notices(conn: psycopg.Connection[Any],
                        gone: list[tuple[str, bytes, bytes | None]], now: float,
                        lease_until: float) -> list[Notice]:
        notices = []
        for session_id, owner, url in gone:
            if url is None:
                continue
            notice = Notice(str(uuid.uuid4()), session_id, EVENT_EXPIRED, url, owner)
            if conn.execute(
                    "INSERT INTO notices (event_id, session_id, event, url, owner, created,"
                    " lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (session_id, event) DO NOTHING RETURNING 1",
                    (notice.event_id, session_id, notice.event, url, owner, now,
                     lease_until)).fetchone():
                notices.append(notice)
        return notices

    # -- webhooks -----------------------------------------------------------------
    def announce(self, session_id: str, event: str, url: bytes, now: float,
                 lease_until: float) -> Notice | None:
        with self._tx() as conn:
            row = conn.execute("UPDATE sessions SET webhook = %s WHERE session_id = %s"
                               " RETURNING owner", (url, session_id)).fetchone()
            if row is None:
                return None
            notice = Notice(str(uuid.uuid4()), session_id, event, url, bytes(row[0]))
            inserted = conn.execute(
                "INSERT INTO notices (event_id, session_id, event, url, owner, created,"
                " lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (session_id, event) DO NOTHING RETURNING 1",
                (notice.event_id, session_id, event, url, notice.owner, now,
                 lease_until)).fetchone()
        return notice if inserted else None

    def claim_notices(self, now: float, lease_until: float, limit: int) -> list[Notice]:
        with self._conn() as conn:
            rows = conn.execute(
                "UPDATE notices SET lease_until = %s WHERE event_id IN (SELECT event_id"
                " FROM notices WHERE settled IS NULL AND lease_until <= %s ORDER BY created"
                " LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING event_id, session_id, event, url, owner",
                (lease_until, now, limit)).fetchall()
        return [Notice(str(e), str(s), str(ev), bytes(u), bytes(o)) for e, s, ev, u, o in rows]

    def settle(self, event_id: str, outcome: str | None, now: float) -> None:
        with self._conn() as conn:
            if outcome is None:
                conn.execute("UPDATE notices SET lease_until = 0"
                             " WHERE event_id = %s AND settled IS NULL", (event_id,))
            else:
                conn.execute("UPDATE notices SET settled = %s, outcome = %s"
                             " WHERE event_id = %s", (now, outcome, event_id))

    # -- live recordings, quotas --------------------------------------------------
    def keep_live(self, session_ids: Sequence[str], until: float) -> list[str]:
        digests = {tombstone_key(s): s for s in session_ids}
        with self._conn() as conn:
            conn.execute("UPDATE sessions SET live_until = %s WHERE session_id = ANY(%s)",
                         (until, list(session_ids)))
            return [digests[str(d)] for (d,) in conn.execute(
                "SELECT session_digest FROM tombstones WHERE session_digest = ANY(%s)",
                (list(digests),))]

    def usage(self, now: float) -> list[tuple[str, bytes, str, int | None]]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT s.session_id, s.owner, a.blob, a.size FROM sessions s"
                " JOIN artefacts a ON a.session_id = s.session_id WHERE s.expires > %s",
                (now,)).fetchall()
        return [(str(s), bytes(o), str(b), int(n)) for s, o, b, n in rows]
