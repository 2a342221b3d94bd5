"""The at-rest store for redacted artefacts: one small interface, two backends.

What is kept: redacted audio, redacted transcripts and session metadata, never
raw audio. Every artefact is sealed with the :class:`~.crypto.KeyRing` and bound
to its session and kind; every one has an expiry, after which :meth:`get`
no longer returns it and :meth:`purge_expired` removes it. :meth:`delete`
removes a whole session at once.

Backends: :class:`~.local.LocalStore` (SQLite + files), :class:`~.s3.S3Store`
(any S3-compatible API, metadata as objects: one node), and in general
:class:`~.split.SplitStore`, metadata rows (SQLite or PostgreSQL) beside sealed
blobs (files or S3) — the cluster's combination is PostgreSQL + S3. All methods
block: call them from a thread (``asyncio.to_thread``) in async code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

# Session ids are opaque server-issued ids; kinds name what is stored. Both end
# up in file/object keys and associated data, so both are kept to a safe alphabet.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")

# The kinds the server stores today; the backends accept any valid kind name.
KIND_AUDIO = "audio_wav"
KIND_TRANSCRIPT = "transcript_json"
KIND_METADATA = "metadata_json"

Status = Literal["active", "expired"]


class StoreError(Exception):
    """A storage operation failed; the message carries no user data."""


class InvalidKeyError(StoreError, ValueError):
    """A session id or kind is outside its allowed alphabet."""


class OwnerMismatchError(StoreError):
    """An artefact was put into a session that belongs to another owner."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What is stored for one session; times are Unix seconds."""

    session_id: str
    owner: str
    created: float
    expires: float  # the latest expiry of its artefacts
    kinds: tuple[str, ...]  # kinds not yet expired, sorted
    status: Status
    # A node is recording the session until then (renewed while it runs); 0 if none
    # said so. Lets any node tell a live recording from one whose node died.
    live_until: float = 0.0


class ArtefactStore(Protocol):
    def put(
        self, session_id: str, kind: str, data: bytes, expires_at: float, owner: str
    ) -> None:
        """Store (or replace) one artefact; the session is created on first put.

        Raises :class:`OwnerMismatchError` if the session belongs to another owner.
        """

    def get(self, session_id: str, kind: str) -> bytes | None:
        """The artefact's bytes, or None if absent or expired.

        Raises :class:`~.crypto.DecryptError` if the stored blob was tampered with.
        """

    def record(self, session_id: str) -> SessionRecord | None:
        """The session's metadata, or None if nothing is stored for it."""

    def set_expiry(self, session_id: str, expires_at: float) -> bool:
        """Give every artefact of a session the same expiry (retention counts from
        the session's end); False if nothing is stored for it."""

    def delete(self, session_id: str) -> bool:
        """Remove every artefact and the record of a session; False if there was none."""

    def purge_expired(self, now: float) -> int:
        """Remove artefacts expired at ``now`` (and emptied sessions); returns the count."""


def check_keys(session_id: str, kind: str | None = None) -> None:
    if not _SESSION_ID.fullmatch(session_id):
        raise InvalidKeyError("session id must be 1-128 characters of A-Z a-z 0-9 _ -")
    if kind is not None and not _KIND.fullmatch(kind):
        raise InvalidKeyError("kind must be 1-32 characters of a-z 0-9 _, starting with a letter")


def status_of(expires: float, now: float) -> Status:
    return "active" if expires > now else "expired"
