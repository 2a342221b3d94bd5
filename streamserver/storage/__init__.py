"""Encrypted, short-lived, deletable storage of redacted artefacts (never raw audio).

PostgreSQL (:mod:`.postgres`) is imported only when configured: it needs the
``cluster`` extra.
"""

from .blobs import BlobStore, FileBlobs, S3Blobs
from .crypto import DecryptError, KeyRing, KeyRingError
from .local import LocalStore
from .metadata import MetadataStore, Notice, SessionDeletedError
from .s3 import S3Store
from .split import SplitStore
from .sqlite_meta import SqliteMetadata
from .store import (
    KIND_AUDIO,
    KIND_METADATA,
    KIND_TRANSCRIPT,
    ArtefactStore,
    InvalidKeyError,
    OwnerMismatchError,
    SessionRecord,
    StoreError,
)
from .sweeper import sweep_forever

__all__ = [
    "KIND_AUDIO",
    "KIND_METADATA",
    "KIND_TRANSCRIPT",
    "ArtefactStore",
    "BlobStore",
    "DecryptError",
    "FileBlobs",
    "InvalidKeyError",
    "KeyRing",
    "KeyRingError",
    "LocalStore",
    "MetadataStore",
    "Notice",
    "OwnerMismatchError",
    "S3Blobs",
    "S3Store",
    "SessionDeletedError",
    "SessionRecord",
    "SplitStore",
    "SqliteMetadata",
    "StoreError",
    "sweep_forever",
]
