"""Authenticated encryption of stored artefacts: AES-256-GCM with key rotation.

A :class:`KeyRing` holds named 32-byte keys; the first one encrypts, every one
decrypts, so rotating is "prepend a new key, keep the old ones until their data
has expired". A sealed blob is::

    version (1 byte) | key id length (1 byte) | key id | nonce (12 bytes) | ciphertext+tag

The header is authenticated together with the caller's associated data, which
binds a blob to where it belongs (see :func:`artefact_aad`): a blob copied to
another session or kind fails to open. Nothing here logs, and no error message
or ``repr`` carries key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_VAR = "STREAMSERVER_DATA_KEYS"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12  # 96-bit random nonces: safe for well under 2**32 messages per key
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class KeyRingError(ValueError):
    """The key file or variable is malformed; the message never quotes a key."""


class DecryptError(Exception):
    """A blob is corrupt, tampered with, misplaced, or sealed with an unknown key."""


class KeyRing:
    """Named AES-256 keys; ``keys[0]`` seals, all of them open.

    Thread-safe: AESGCM objects are stateless and every seal draws a fresh nonce.
    """

    __slots__ = ("_aeads", "_primary")

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError("at least one data key is required")
        aeads: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise KeyRingError("key ids must be 1-64 characters of A-Z a-z 0-9 _ . -")
            if key_id in aeads:
                raise KeyRingError(f"duplicate key id {key_id!r}")
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} must be {KEY_BYTES} bytes")
            aeads[key_id] = AESGCM(key)
        self._aeads = aeads
        self._primary = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Keys from ``key_id:base64`` entries separated by newlines or commas.

        Blank lines and ``#`` comments are skipped; the first entry encrypts.
        """
        keys: list[tuple[str, bytes]] = []
        for number, raw in enumerate(re.split(r"[,\n]", text), start=1):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyRingError(f"key entry {number} is not key_id:base64")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                # Say which entry, never echo it: it is a secret.
                raise KeyRingError(f"key {key_id.strip()!r} is not valid base64") from None
            keys.append((key_id.strip(), key))
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise KeyRingError("cannot read the data key file") from None
        return cls.parse(text)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        value = (os.environ if environ is None else environ).get(ENV_VAR, "")
        if not value.strip():
            raise KeyRingError(f"{ENV_VAR} is not set")
        return cls.parse(value)

    @staticmethod
    def generate_key() -> str:
        """A fresh key, base64-encoded, for a ``key_id:...`` line."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")

    @property
    def primary_id(self) -> str:
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._aeads)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={self.key_ids!r})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt with the primary key; ``aad`` must be given again to open."""
        key_id = self._primary.encode("ascii")
        header = bytes((FORMAT_VERSION, len(key_id))) + key_id
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._aeads[self._primary].encrypt(nonce, plaintext, header + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a sealed blob; raises :class:`DecryptError` on any mismatch."""
        if len(blob) < 2 or blob[0] != FORMAT_VERSION:
            raise DecryptError("unknown blob format")
        end = 2 + blob[1]
        aead = self._aeads.get(blob[2:end].decode("ascii", "replace"))
        if aead is None:
            raise DecryptError("blob sealed with an unknown key")
        nonce, body = blob[end:end + NONCE_BYTES], blob[end + NONCE_BYTES:]
        if len(nonce) != NONCE_BYTES:
            raise DecryptError("blob truncated")
        try:
            return aead.decrypt(nonce, body, blob[:end] + aad)
        except InvalidTag:
            raise DecryptError("blob failed authentication") from None


def artefact_aad(session_id: str, kind: str) -> bytes:
    """Associated data that pins a blob to one session and kind."""
    # Ids and kinds are validated to exclude "|", so the encoding is unambiguous.
    return f"streamserver/artefact|{session_id}|{kind}".encode()
