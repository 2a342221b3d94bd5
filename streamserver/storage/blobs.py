"""Where sealed artefact bytes live: a directory or an S3-compatible bucket.

A blob store knows nothing about sessions: it keeps opaque, already sealed bytes
under random names chosen by the caller (:func:`new_blob_name`), so neither a
file name nor an object key says whose recording it holds. The metadata store
(:mod:`.metadata`) maps sessions and kinds to these names. All methods block.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from .store import StoreError

_TMP_PREFIX = ".tmp-"
_S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


def new_blob_name() -> str:
    return f"{secrets.token_hex(16)}.bin"


class BlobStore(Protocol):
    def write(self, name: str, sealed: bytes) -> None:
        """Store ``sealed`` under ``name`` atomically (a reader never sees half of it)."""

    def read(self, name: str) -> bytes | None:
        """The blob, or None if there is none by that name."""

    def remove(self, names: Sequence[str]) -> None:
        """Remove these blobs; absent ones are fine. Raises StoreError if one stays."""

    def size(self, name: str) -> int | None:
        """The blob's size in bytes, or None if there is none."""

    def tidy(self, before: float) -> None:
        """Remove half-written leftovers of a crash older than ``before`` (Unix s)."""

    def describe(self) -> str:
        """What kind of store this is, for /readyz ("file" or "s3")."""


class FileBlobs:
    """Blobs as files in one directory (created 0700), each written to a temp name,
    fsynced and renamed, so a crash leaves a whole file or none (plus a temp file)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the blob directory ({type(exc).__name__})") \
                from None

    def write(self, name: str, sealed: bytes) -> None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(sealed)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.directory / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._fsync_dir()
        except OSError as exc:
            raise StoreError(f"cannot write an artefact ({type(exc).__name__})") from None

    def read(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read an artefact ({type(exc).__name__})") from None

    def remove(self, names: Sequence[str]) -> None:
        for name in names:
            try:
                (self.directory / name).unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot remove an artefact ({type(exc).__name__})") from None

    def size(self, name: str) -> int | None:
        try:
            return (self.directory / name).stat().st_size
        except OSError:
            return None

    def names(self) -> Iterator[str]:
        """Every file in the directory, temp files included."""
        return (p.name for p in self.directory.iterdir())

    def tidy(self, before: float) -> None:
        for path in self.directory.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < before:
                    path.unlink()

    def describe(self) -> str:
        return "file"

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class S3Blobs:
    """Blobs as objects ``<prefix>blobs/<name>`` in one bucket (a boto3 S3 client).

    A PUT is atomic in S3, so there are no temp objects; a blob written by a
    node that died before recording it in the metadata store is found and removed
    through the metadata store's record of blobs in flight.
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "") -> None:
        self._bucket = bucket
        self._s3 = client
        self._prefix = f"{prefix}blobs/"

    def _key(self, name: str) -> str:
        return self._prefix + name

    def write(self, name: str, sealed: bytes) -> None:
        self._call("put_object", Bucket=self._bucket, Key=self._key(name), Body=sealed)

    def read(self, name: str) -> bytes | None:
        try:
            resp = self._s3.get_object(Bucket=self._bucket, Key=self._key(name))
            body: bytes = resp["Body"].read()
            return body
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StoreError(f"object store read failed ({error_code(exc)})") from None

    def remove(self, names: Sequence[str]) -> None:
        for start in range(0, len(names), _S3_DELETE_BATCH):
            batch = [{"Key": self._key(n)} for n in names[start:start + _S3_DELETE_BATCH]]
            resp = self._call("delete_objects", Bucket=self._bucket,
                              Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                raise StoreError("object store delete failed for some objects")

    def size(self, name: str) -> int | None:
        try:
            resp = self._s3.head_object(Bucket=self._bucket, Key=self._key(name))
        except Exception:
            return None
        return int(resp["ContentLength"])

    def tidy(self, before: float) -> None:
        pass  # nothing half-written: a PUT is all or nothing

    def describe(self) -> str:
        return "s3"

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._s3, op)(**kwargs)
        except Exception as exc:
            raise StoreError(f"object store {op} failed ({error_code(exc)})") from None


def error_code(exc: Exception) -> str:
    # botocore's ClientError carries a code; anything else is named by its type only.
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__

