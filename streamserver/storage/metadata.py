"""Where recordings are described: which session has which artefacts, whose, until when.

A metadata store holds rows, never content: session ids, times, artefact kinds,
the random names of their blobs (:mod:`.blobs`) and sizes, and — sealed by the
caller, so the database cannot read them — the owner (a hash of an API key) and
a session's webhook URL. Two implementations: :class:`~.sqlite_meta.SqliteMetadata`
(embedded, one process) and :class:`~.postgres.PostgresMetadata` (shared by nodes).

Removing blobs is the caller's callback, run *inside* the transaction that
deletes their rows: if a blob cannot be removed the rows stay (rolled back), so
nothing is half gone. Times are Unix seconds from the caller's clock. All methods
block; errors are :class:`~.store.StoreError` with no user data in the message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .store import StoreError

# Removes blobs by name; raises StoreError if one stays (the transaction rolls back).
RemoveBlobs = Callable[[Sequence[str]], None]
# Whether a stored (sealed) owner is the caller's.
SameOwner = Callable[[bytes], bool]

# The webhook events kept in the notice table (payloads: server/recording.py).
EVENT_READY = "redacted_audio_ready"
EVENT_EXPIRED = "expired"


def tombstone_key(session_id: str) -> str:
    """What a tombstone keeps of a deleted session: a digest, not the id (a deleted
    session's id does not linger in the database; docs/privacy.md)."""
    return hashlib.sha256(f"streamserver/tombstone|{session_id}".encode()).hexdigest()


class SessionDeletedError(StoreError):
    """A write to a session its owner deleted (from any node): the recording stops."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    created: float
    expires: float
    owner: bytes  # sealed
    kinds: tuple[str, ...]  # kinds not expired at the time asked, sorted
    live_until: float  # a node is recording it until then (renewed while it runs)


@dataclass(frozen=True, slots=True)
class Notice:
    """One webhook to deliver. It is a row before it is sent, unique per (session,
    event) and claimed by one node at a time (a lease), so across any number of
    nodes an event is announced once, under one delivery id (``event_id``)."""

    event_id: str
    session_id: str
    event: str
    url: bytes  # sealed
    owner: bytes  # sealed


@dataclass(frozen=True, slots=True)
class Purged:
    artefacts: int  # artefacts removed
    notices: list[Notice]  # expiry webhooks now leased to the caller


class MetadataStore(Protocol):
    def reserve(self, blob: str, now: float) -> None:
        """Note a blob about to be written (before it is): if the writer dies before
        :meth:`put` commits, :meth:`purge` removes it later. Embedded stores that
        scan their directory at start may do nothing."""

    def put(self, session_id: str, kind: str, blob: str, size: int, expires_at: float,
            owner: bytes, same_owner: SameOwner, now: float) -> str | None:
        """Point (session, kind) at ``blob``, creating the session (owned by the
        sealed ``owner``) on first put. Returns the blob it replaced, which the
        caller removes and then :meth:`release`-s.

        Raises OwnerMismatchError (another owner's session) or SessionDeletedError.
        """

    def release(self, blob: str) -> None:
        """A replaced blob is removed: forget it."""

    def artefact(self, session_id: str, kind: str) -> tuple[str, float] | None:
        """(blob name, expiry) or None."""

    def session(self, session_id: str, now: float) -> SessionRow | None: ...

    def set_expiry(self, session_id: str, expires_at: float) -> bool: ...

    def delete(self, session_id: str, remove: RemoveBlobs,
               tombstone_until: float | None = None) -> bool:
        """Remove the session's rows and (through ``remove``) blobs. With
        ``tombstone_until`` a later put to this id fails until then: a recording
        still running on another node cannot bring it back."""

    def purge(self, now: float, remove: RemoveBlobs, lease_until: float) -> Purged:
        """Remove expired artefacts and emptied sessions; each expired session that
        had a webhook gets one expiry :class:`Notice`, leased to the caller until
        ``lease_until`` (0: to whoever claims it next)."""

    def announce(self, session_id: str, event: str, url: bytes, now: float,
                 lease_until: float) -> Notice | None:
        """Keep ``url`` (sealed) as the session's webhook and record ``event`` for it,
        leased to the caller; None if the session is gone or the event exists."""

    def claim_notices(self, now: float, lease_until: float, limit: int) -> list[Notice]:
        """Unsettled notices whose lease ran out (their node died or gave them back)."""

    def settle(self, event_id: str, outcome: str | None, now: float) -> None:
        """Delivered or given up (``outcome``), or with None: back to be claimed."""

    def keep_live(self, session_ids: Sequence[str], until: float) -> list[str]:
        """These sessions are being recorded until ``until`` (renewed); returns the
        ones deleted meanwhile (tombstoned), whose recordings should stop."""

    def usage(self, now: float) -> list[tuple[str, bytes, str, int | None]]:
        """(session id, sealed owner, blob, size or None) of unexpired sessions."""

    def check(self) -> None:
        """Raise StoreError unless the store answers (and its schema is current)."""

    def describe(self) -> dict[str, Any]:
        """Backend name, and where it is without credentials (for /readyz)."""

    def close(self) -> None: ...
