"""A store's folder: the names of what it holds, and making a folder ready to hold one.

``catalog.db`` (SQLite), ``LOCK`` (the writer lock), ``collections/<dir>/`` (segment and index
files), ``intents/`` (records of writes in flight, intents.py) and ``quarantine/`` (files no
catalog row named, cleanup.py). Imports only the standard library and ``errors``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import CorruptStoreError, StoreNotFound

CATALOG = "catalog.db"
LOCK = "LOCK"
#: The change counter (``changes.py``), made beside the writer lock.
CHANGES = "CHANGES"
COLLECTIONS = "collections"
INTENTS = "intents"
QUARANTINE = "quarantine"
# Kept beside a catalog that went missing: the open that follows refuses collection files
# without a catalog (CorruptStoreError), and a quarantine is never in the way of a new one.
KEPT = (INTENTS, QUARANTINE)


def prepare(path: Path) -> None:
    """Make ``path`` ready for a read-write open: create it (and ``collections/``) if missing.

    Refuses, with ``StoreNotFound`` and a message saying what to do, a path that is not a
    directory, a symbolic link to nowhere, a path under a regular file, a folder that cannot
    be created, and a non-empty folder that holds no catalog (it is someone else's data).
    """
    if path.is_symlink() and not path.exists():
        raise StoreNotFound(
            f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist; "
            "create the folder it points to, or pass another path"
        )
    if path.exists() and not path.is_dir():
        raise StoreNotFound(
            f"{path} exists and is not a directory; pass a new or empty folder for the store"
        )
    if path.is_dir() and not (path / CATALOG).exists():
        stray = [
            p.name for p in path.iterdir() if p.name not in (LOCK, CHANGES, COLLECTIONS, *KEPT)
        ]
        if stray:
            raise StoreNotFound(
                f"{path} is a non-empty directory without a vecstore catalog "
                f"(found {sorted(stray)[:3]}); open an empty or new directory"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreNotFound(_cannot_create(path, exc)) from None
    collections = path / COLLECTIONS
    if collections.exists() and not collections.is_dir():
        raise CorruptStoreError(
            f"{collections} is not a directory; the store is damaged (restore it from a backup)"
        )
    try:
        collections.mkdir(exist_ok=True)
    except OSError as exc:
        raise StoreNotFound(_cannot_create(collections, exc)) from None


def _cannot_create(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR:
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
        where = f"{blocker} is a file, not a directory" if blocker else "a parent is not a folder"
        return f"cannot create a store at {path}: {where}; pass a path inside a folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"cannot create a store at {path}: {exc.strerror}; pass a folder you can write to, "
            "or open the store with read_only=True"
        )
    return f"cannot create a store at {path}: {exc.strerror or exc}"
