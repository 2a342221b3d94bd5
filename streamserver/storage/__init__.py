"""Encrypted, short-lived, deletable storage of redacted artefacts (never raw audio)."""

from .crypto import DecryptError, KeyRing, KeyRingError
from .local import LocalStore
from .s3 import S3Store
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
    "DecryptError",
    "InvalidKeyError",
    "KeyRing",
    "KeyRingError",
    "LocalStore",
    "OwnerMismatchError",
    "S3Store",
    "SessionRecord",
    "StoreError",
    "sweep_forever",
]
