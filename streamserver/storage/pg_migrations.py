"""Versioned schema of the PostgreSQL metadata store.

Each migration is a number, a name and SQL; ``schema_migrations`` lists those
applied. :func:`migrate` applies the missing ones in order, all in one
transaction under an advisory lock, so nodes starting together wait for one
another instead of racing (the second finds the work done), and a failure leaves
the schema as it was. Never edit a migration that shipped: add the next one.
Migrations must keep working for the previous release (add, don't drop or rename
in the same release), since nodes of both run together during a rolling upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

# pg_advisory_xact_lock key: any constant 64-bit number that is ours ("strmsrvr").
MIGRATION_LOCK_KEY = 0x73_74_72_6D_73_72_76_72


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


# Times are Unix seconds (double precision) from the nodes' clocks, like the
# embedded store; owner and webhook URL are sealed (AES-GCM) by the server.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "recording metadata", """
CREATE TABLE sessions (
    session_id text PRIMARY KEY,
    created double precision NOT NULL,
    expires double precision NOT NULL,
    owner bytea NOT NULL,
    webhook bytea,
    live_until double precision NOT NULL DEFAULT 0
);
CREATE INDEX sessions_expires ON sessions (expires);
CREATE TABLE artefacts (
    session_id text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    kind text NOT NULL,
    blob text NOT NULL UNIQUE,
    expires double precision NOT NULL,
    size bigint NOT NULL,
    PRIMARY KEY (session_id, kind)
);
CREATE INDEX artefacts_expires ON artefacts (expires);
-- Blobs that may exist without a row: being written (since = when), or replaced
-- and about to be removed (since = 0). The sweeper removes those left behind.
CREATE TABLE loose_blobs (
    blob text PRIMARY KEY,
    since double precision NOT NULL
);
CREATE TABLE notices (
    event_id uuid PRIMARY KEY,
    session_id text NOT NULL,
    event text NOT NULL,
    url bytea NOT NULL,
    owner bytea NOT NULL,
    created double precision NOT NULL,
    lease_until double precision NOT NULL DEFAULT 0,
    settled double precision,
    outcome text,
    UNIQUE (session_id, event)
);
CREATE INDEX notices_due ON notices (lease_until) WHERE settled IS NULL;
-- A deleted session refuses writes until then; keyed by a digest of its id.
CREATE TABLE tombstones (
    session_digest text PRIMARY KEY,
    until double precision NOT NULL
);
"""),
)


@dataclass(frozen=True, slots=True)
class MigrationResult:
    applied: tuple[int, ...]  # by this call
    version: int  # the database's schema version now
    known: int  # the newest this code knows


def migrate(conn: psycopg.Connection[Any],
            migrations: tuple[Migration, ...] = MIGRATIONS) -> MigrationResult:
    """Bring the schema up to date; safe to call from any number of nodes at once.

    ``conn`` is in autocommit mode (each call is its own transaction). A database
    newer than this code (a later release migrated it) is left alone: the caller
    decides whether to warn.
    """
    applied: list[int] = []
    with conn.transaction():
        # DDL may take longer than an ordinary statement; it runs once.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        for m in sorted(migrations, key=lambda m: m.version):
            if m.version in done:
                continue
            conn.execute(m.sql.encode())  # several statements: no parameters, simple query
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (m.version, m.name))
            applied.append(m.version)
            done.add(m.version)
    known = max((m.version for m in migrations), default=0)
    return MigrationResult(tuple(applied), max(done, default=0), known)
