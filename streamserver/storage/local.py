"""LocalStore: the embedded default, SQLite (WAL) for metadata, one sealed file per artefact.

Layout under ``directory`` (created 0700)::

    meta.sqlite3        sessions, artefacts (random file names, expiries, sealed
                        owner), webhook notices: :mod:`.sqlite_meta`
    blobs/<random>.bin  one sealed artefact each; names carry no session data

Writes are atomic: the blob goes to a temp file in ``blobs/``, is fsynced and
renamed, then its row is committed. A crash between the two leaves an orphan
file, which the next open removes. Opening also purges whatever expired while
the process was down. One process per directory: a second one opening it
would take the first one's in-flight temp files for orphans (several nodes
share metadata through PostgreSQL instead: :mod:`.postgres`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from .blobs import FileBlobs
from .crypto import KeyRing
from .split import SplitStore
from .sqlite_meta import SqliteMetadata
from .store import StoreError


class LocalStore(SplitStore):
    """A :class:`~.split.SplitStore` on the local disk; safe to share across threads.

    ``clock`` decides what counts as expired in :meth:`get` and :meth:`record`
    (tests pass a fake one). Call :meth:`close` when done.
    """

    def __init__(
        self, directory: str | Path, keyring: KeyRing, clock: Callable[[], float] = time.time
    ) -> None:
        root = Path(directory)
        files = FileBlobs(root / "blobs")
        try:
            os.chmod(root, 0o700)
        except OSError as exc:
            raise StoreError(f"cannot open the local store ({type(exc).__name__})") from None
        self._sqlite = SqliteMetadata(root / "meta.sqlite3")
        super().__init__(self._sqlite, files, keyring, clock)
        self._files = files
        self._remove_orphans()
        self.purge_expired(clock())

    @property
    def directory(self) -> Path:
        """Where the artefacts are (its file system's free space is checked)."""
        return self._files.directory

    def _remove_orphans(self) -> None:
        """Temp files and blobs without a row: left by a crash mid-write."""
        known = self._sqlite.blob_names()
        orphans = [name for name in self._files.names() if name not in known]
        with contextlib.suppress(StoreError):  # tried again at the next open
            self._files.remove(orphans)
