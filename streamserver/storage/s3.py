"""S3Store: the same interface over any S3-compatible API (boto3 client passed in).

Objects, all sealed with the key ring (names carry the session id, nothing else)::

    <prefix><session_id>/record        JSON {owner, created, artefacts: {kind: expires}}
    <prefix><session_id>/<kind>        one artefact

S3 has no transactions: the artefact object is written before the record that
names it, and deleted after the record is gone, so a reader never sees a kind
whose bytes are missing. Concurrent puts to one session are serialised by a
lock in this process; several processes writing the same session are not
supported. A bucket lifecycle rule is a sensible backstop to :meth:`purge_expired`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .blobs import error_code as _error_code
from .crypto import KeyRing, artefact_aad
from .store import OwnerMismatchError, SessionRecord, StoreError, check_keys, status_of

_RECORD = "record"  # reserved: no artefact kind may take this name (_check_kind)


def _record_aad(session_id: str) -> bytes:
    return f"streamserver/record|{session_id}".encode()


class S3Store:
    """An :class:`~.store.ArtefactStore` in one bucket; ``client`` is a boto3 S3 client."""

    def __init__(
        self,
        bucket: str,
        client: Any,
        keyring: KeyRing,
        prefix: str = "streamserver/",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bucket = bucket
        self._s3 = client
        self._keyring = keyring
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()

    def _key(self, session_id: str, leaf: str) -> str:
        return f"{self._prefix}{session_id}/{leaf}"

    def put(
        self, session_id: str, kind: str, data: bytes, expires_at: float, owner: str
    ) -> None:
        _check_kind(session_id, kind)
        sealed = self._keyring.seal(data, artefact_aad(session_id, kind))
        with self._lock:
            rec = self._load(session_id)
            if rec is None:
                rec = {"owner": owner, "created": self._clock(), "artefacts": {}}
            elif not secrets.compare_digest(rec["owner"], owner):
                raise OwnerMismatchError("session belongs to another owner")
            self._call("put_object", Bucket=self._bucket,
                       Key=self._key(session_id, kind), Body=sealed)
            rec["artefacts"][kind] = expires_at
            self._save(session_id, rec)

    def get(self, session_id: str, kind: str) -> bytes | None:
        _check_kind(session_id, kind)
        rec = self._load(session_id)
        if rec is None or rec["artefacts"].get(kind, 0.0) <= self._clock():
            return None
        blob = self._read(self._key(session_id, kind))
        return None if blob is None else self._keyring.open(blob, artefact_aad(session_id, kind))

    def record(self, session_id: str) -> SessionRecord | None:
        check_keys(session_id)
        rec = self._load(session_id)
        if rec is None:
            return None
        now = self._clock()
        arts: dict[str, float] = rec["artefacts"]
        expires = max(arts.values(), default=rec["created"])
        kinds = tuple(sorted(k for k, e in arts.items() if e > now))
        return SessionRecord(
            session_id, rec["owner"], rec["created"], expires, kinds, status_of(expires, now)
        )

    def set_expiry(self, session_id: str, expires_at: float) -> bool:
        check_keys(session_id)
        with self._lock:
            rec = self._load(session_id)
            if rec is None:
                return False
            rec["artefacts"] = dict.fromkeys(rec["artefacts"], expires_at)
            self._save(session_id, rec)
        return True

    def delete(self, session_id: str) -> bool:
        check_keys(session_id)
        with self._lock:
            keys = self._list(f"{self._prefix}{session_id}/")
            record_key = self._key(session_id, _RECORD)
            if record_key in keys:  # the record first: readers then see nothing at all
                self._call("delete_object", Bucket=self._bucket, Key=record_key)
            self._delete_keys([k for k in keys if k != record_key])
        return bool(keys)

    def purge_expired(self, now: float) -> int:
        purged = 0
        with self._lock:
            for key in self._list(self._prefix):
                session_id, _, leaf = key[len(self._prefix):].partition("/")
                if leaf != _RECORD:
                    continue
                rec = self._load(session_id)
                if rec is None:
                    continue
                gone = [k for k, e in rec["artefacts"].items() if e <= now]
                if not gone:
                    continue
                for kind in gone:
                    del rec["artefacts"][kind]
                if rec["artefacts"]:
                    self._save(session_id, rec)
                else:
                    self._call("delete_object", Bucket=self._bucket, Key=key)
                self._delete_keys([self._key(session_id, k) for k in gone])
                purged += len(gone)
        return purged

    def describe(self) -> dict[str, Any]:
        return {"metadata": {"backend": "s3"}, "blobs": "s3"}

    def _load(self, session_id: str) -> dict[str, Any] | None:
        blob = self._read(self._key(session_id, _RECORD))
        if blob is None:
            return None
        rec: dict[str, Any] = json.loads(self._keyring.open(blob, _record_aad(session_id)))
        return rec

    def _save(self, session_id: str, rec: dict[str, Any]) -> None:
        body = self._keyring.seal(json.dumps(rec).encode(), _record_aad(session_id))
        self._call("put_object", Bucket=self._bucket,
                   Key=self._key(session_id, _RECORD), Body=body)

    def _read(self, key: str) -> bytes | None:
        try:
            resp = self._s3.get_object(Bucket=self._bucket, Key=key)
            body: bytes = resp["Body"].read()
            return body
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StoreError(f"object store read failed ({_error_code(exc)})") from None

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            ):
                keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        except Exception as exc:
            raise StoreError(f"object store list failed ({_error_code(exc)})") from None
        return keys

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            resp = self._call("delete_objects", Bucket=self._bucket,
                              Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                raise StoreError("object store delete failed for some objects")

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._s3, op)(**kwargs)
        except Exception as exc:
            raise StoreError(f"object store {op} failed ({_error_code(exc)})") from None


def _check_kind(session_id: str, kind: str) -> None:
    check_keys(session_id, kind)
    if kind == _RECORD:
        raise StoreError("'record' is reserved for the session record")

