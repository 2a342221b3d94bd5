"""SplitStore: an :class:`~.store.ArtefactStore` made of rows and bytes kept apart.

Rows go to a :class:`~.metadata.MetadataStore` (SQLite, or PostgreSQL for many
nodes), sealed bytes to a :class:`~.blobs.BlobStore` (files, or an S3-compatible
bucket). This class does what both need and neither should: sealing (every
artefact bound to its session and kind, the owner and webhook URL sealed too),
the order of writes, and expiry. The combinations::

    LocalStore           SQLite      + files     one node (the default)
    --database-url       PostgreSQL  + files     one node, or a shared volume
    --database-url + s3  PostgreSQL  + S3        a cluster

A put writes the blob, then commits the row that names it; a blob whose row never
came (a crash) is removed later. Beyond the store protocol it keeps webhook
notices (:meth:`announce`, :meth:`sweep`, :meth:`settle`) and which sessions are
being recorded (:meth:`keep_live`). All methods block: call them from a thread.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .blobs import BlobStore, FileBlobs, new_blob_name
from .crypto import KeyRing, artefact_aad
from .metadata import MetadataStore, Notice
from .store import SessionRecord, StoreError, check_keys, status_of

NOTICE_LEASE_S = 300.0  # > one delivery's attempts and backoff (webhooks.WebhookConfig)
NOTICE_CLAIM_LIMIT = 100  # notices taken over per sweep
TOMBSTONE_S = 86400.0  # a deleted session's id refuses writes this long (at least)
TEMP_FILE_AGE_S = 3600.0  # a temp file this old was left by a crash mid-write


def owner_aad(session_id: str) -> bytes:
    return f"streamserver/owner|{session_id}".encode()


def webhook_aad(session_id: str) -> bytes:
    return f"streamserver/webhook|{session_id}".encode()


class SplitStore:
    """Rows in ``meta``, sealed bytes in ``blobs``; safe to share across threads.

    ``clock`` decides what counts as expired in :meth:`get` and :meth:`record`
    (tests pass a fake one). ``tombstone_s``: how long a deleted session refuses
    writes (longer than a recording may run). Call :meth:`close` when done.
    """

    def __init__(self, meta: MetadataStore, blobs: BlobStore, keyring: KeyRing,
                 clock: Callable[[], float] = time.time,
                 tombstone_s: float = TOMBSTONE_S) -> None:
        self._meta = meta
        self._blobs = blobs
        self._keyring = keyring
        self._clock = clock
        self._tombstone_s = tombstone_s

    # -- the ArtefactStore protocol -------------------------------------------------
    def put(self, session_id: str, kind: str, data: bytes, expires_at: float,
            owner: str) -> None:
        check_keys(session_id, kind)
        sealed = self._keyring.seal(data, artefact_aad(session_id, kind))
        sealed_owner = self._keyring.seal(owner.encode(), owner_aad(session_id))

        def same_owner(stored: bytes) -> bool:
            return hmac.compare_digest(self._keyring.open(stored, owner_aad(session_id)),
                                       owner.encode())

        name = new_blob_name()
        now = self._clock()
        self._meta.reserve(name, now)
        try:
            self._blobs.write(name, sealed)
            replaced = self._meta.put(session_id, kind, name, len(sealed), expires_at,
                                      sealed_owner, same_owner, now)
        except BaseException:
            self._discard(name)
            raise
        if replaced:
            self._discard(replaced)

    def get(self, session_id: str, kind: str) -> bytes | None:
        check_keys(session_id, kind)
        row = self._meta.artefact(session_id, kind)
        if row is None or row[1] <= self._clock():
            return None
        blob = self._blobs.read(row[0])
        return None if blob is None else self._keyring.open(blob, artefact_aad(session_id, kind))

    def record(self, session_id: str) -> SessionRecord | None:
        check_keys(session_id)
        now = self._clock()
        row = self._meta.session(session_id, now)
        if row is None:
            return None
        owner = self._keyring.open(row.owner, owner_aad(session_id)).decode()
        return SessionRecord(session_id, owner, row.created, row.expires, row.kinds,
                             status_of(row.expires, now), row.live_until)

    def set_expiry(self, session_id: str, expires_at: float) -> bool:
        check_keys(session_id)
        return self._meta.set_expiry(session_id, expires_at)

    def delete(self, session_id: str, tombstone: bool = False) -> bool:
        """Remove the session at once. ``tombstone`` (its owner asked): writes to it
        fail from now on, also from a recording still running on another node."""
        check_keys(session_id)
        until = self._clock() + self._tombstone_s if tombstone else None
        return self._meta.delete(session_id, self._blobs.remove, until)

    def purge_expired(self, now: float) -> int:
        # Expiry notices made here wait for the next sweep to claim them.
        return self._meta.purge(now, self._blobs.remove, 0.0).artefacts

    # -- sweeping and webhooks ------------------------------------------------------
    def sweep(self, now: float, claim_notices: bool = True) -> tuple[int, list[Notice]]:
        """Purge what expired at ``now``; returns the count and the webhook notices
        this caller now holds (expiries it made, and unsettled ones whose lease ran
        out). Send each, then :meth:`settle` it."""
        lease = now + NOTICE_LEASE_S if claim_notices else 0.0
        purged = self._meta.purge(now, self._blobs.remove, lease)
        self._blobs.tidy(now - TEMP_FILE_AGE_S)
        notices = purged.notices
        if claim_notices:
            notices += self._meta.claim_notices(now, lease, NOTICE_CLAIM_LIMIT)
        return purged.artefacts, notices

    def announce(self, session_id: str, event: str, url: str) -> Notice | None:
        """Record ``event`` for the session (once: None if it was, or the session is
        gone) and keep ``url`` for its later events; the notice is the caller's to send."""
        check_keys(session_id)
        now = self._clock()
        return self._meta.announce(session_id, event,
                                   self._keyring.seal(url.encode(), webhook_aad(session_id)),
                                   now, now + NOTICE_LEASE_S)

    def open_notice(self, notice: Notice) -> tuple[str, str]:
        """(webhook URL, owner) of a notice."""
        sid = notice.session_id
        return (self._keyring.open(notice.url, webhook_aad(sid)).decode(),
                self._keyring.open(notice.owner, owner_aad(sid)).decode())

    def settle(self, event_id: str, outcome: str | None) -> None:
        """A notice was delivered or given up (``outcome``); None: not sent after
        all, back for the next sweep (of any node) to claim."""
        self._meta.settle(event_id, outcome, self._clock())

    def keep_live(self, session_ids: Sequence[str], lease_s: float) -> list[str]:
        """These sessions are being recorded here for ``lease_s`` more seconds, so
        any node reports them ``recording``; returns those deleted meanwhile."""
        if not session_ids:
            return []
        return self._meta.keep_live(session_ids, self._clock() + lease_s)

    # -- operations -----------------------------------------------------------------
    def usage(self, now: float) -> dict[str, int]:
        """Bytes stored per owner (sealed sizes, unexpired sessions): for quotas."""
        owners: dict[str, str] = {}
        out: dict[str, int] = {}
        for session_id, sealed_owner, name, size in self._meta.usage(now):
            owner = owners.get(session_id)
            if owner is None:
                owner = owners[session_id] = self._keyring.open(
                    sealed_owner, owner_aad(session_id)).decode()
            if size is None:  # a row from before sizes were kept
                size = self._blobs.size(name)
            out[owner] = out.get(owner, 0) + (size or 0)
        return out

    @property
    def directory(self) -> Path | None:
        """Where the blobs are if on a local file system (its free space is checked)."""
        return self._blobs.directory if isinstance(self._blobs, FileBlobs) else None

    def check(self) -> None:
        """Raise StoreError unless the metadata store answers."""
        self._meta.check()

    def describe(self) -> dict[str, Any]:
        return {"metadata": self._meta.describe(), "blobs": self._blobs.describe()}

    def close(self) -> None:
        self._meta.close()

    def _discard(self, name: str) -> None:
        """Best effort: a blob no row names (the sweep retries what stays)."""
        with contextlib.suppress(StoreError):
            self._blobs.remove([name])
            self._meta.release(name)
