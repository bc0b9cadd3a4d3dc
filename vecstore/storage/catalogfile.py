"""How the catalog file is opened: checked before SQLite touches it, and readable from
read-only media.

SQLite opens ``catalog.db`` and the ``-wal``, ``-shm`` and ``-journal`` files beside it itself,
so they are checked to be regular files first (a FIFO would hang it). A read-write open
refuses a catalog or folder it could not write, naming it. A read-only open falls back to
SQLite's immutable mode where the folder cannot be written. Imports only the standard
library.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path

from ..errors import StoreIOError
from . import paths

#: (inode, size, mtime in ns) of a catalog opened immutable: it must not change.
Signature = tuple[int, int, int]


def connect(
    path: Path, *, read_only: bool, busy_timeout: float
) -> tuple[sqlite3.Connection, Signature | None]:
    """Open the catalog ``path``; returns the connection and, if it was opened immutable
    (from read-only media), the catalog's signature for ``check_unchanged``.

    Raises ``CorruptStoreError`` if the catalog or a file SQLite keeps beside it is not a
    regular file, ``StoreIOError`` naming what a read-write open could not write or a log
    that a read-only open cannot read, and SQLite's own errors otherwise (the caller
    translates them).
    """
    exists = paths.check_catalog_files(path)
    if not read_only:
        _check_writable(path, exists)
    conn = _connect(path, "ro" if read_only else "rwc", busy_timeout)
    if not read_only:
        return conn, None
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn, None
    except sqlite3.OperationalError:
        conn.close()
        if paths.writable(path.parent):
            raise  # not read-only media: the caller names what went wrong
    return _connect_frozen(path, busy_timeout)


def _connect(path: Path, mode: str, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(
        f"file:{urllib.parse.quote(str(path))}?mode={mode}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout,
    )


def _check_writable(path: Path, exists: bool) -> None:
    """Refuse a read-write open that could not write, naming what is not writable (SQLite
    would open the catalog read-only in silence and fail at the first write)."""
    if not paths.writable(path.parent):
        raise StoreIOError(
            f"the store folder {path.parent} is not writable by this process (SQLite keeps "
            f"{path.name}-wal and -shm there); open the store with read_only=True to read it"
        )
    if exists and not paths.writable(path):
        raise StoreIOError(
            f"catalog {path} is not writable by this process; open the store with "
            "read_only=True to read it"
        )


def _connect_frozen(path: Path, busy_timeout: float) -> tuple[sqlite3.Connection, Signature]:
    """The catalog opened from a folder this process cannot write (read-only media).

    SQLite reads a WAL-mode database only with its ``-shm`` index beside it, which it
    creates if it can; a plain read-only open works here only if a writer left ``-wal``
    and ``-shm`` behind. Otherwise, if no log holds commits, the catalog is opened
    ``immutable``: without locks or ``-shm``. That is safe only while nobody writes the
    catalog, so every read transaction first checks that it is unchanged and that no log
    has appeared (``check_unchanged``). A log with commits and no index cannot be read
    without writing: refused.
    """
    wal = path.with_name(path.name + "-wal")
    if os.path.lexists(wal) and os.lstat(wal).st_size > 0:
        raise StoreIOError(
            f"catalog {path} cannot be read from this read-only folder: its log {wal} holds "
            f"commits, which SQLite reads only with {path.name}-shm beside it. Open the store "
            "read-write once where it is writable, or copy it to writable storage"
        )
    before = _signature(path)
    conn = _connect(path, "ro&immutable=1", busy_timeout)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn, before


def _signature(path: Path) -> Signature:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def check_unchanged(path: Path, signature: Signature) -> None:
    """Refuse to go on reading a catalog opened immutable that a writer has touched: a
    ``-wal`` has appeared, or the file is not the one opened (inode, size, mtime). Costs two
    ``stat`` calls per read transaction, and only in that mode."""
    try:
        changed = os.path.lexists(path.with_name(path.name + "-wal"))
        changed = changed or _signature(path) != signature
    except OSError:
        changed = True
    if changed:
        raise StoreIOError(
            f"catalog {path} was opened from read-only media (SQLite's immutable mode, safe "
            "only while nobody writes), but a process has written to it since; reopen the "
            "store"
        )
