"""A consistent copy of a live store, taken while writers keep writing.

Inside one catalog read transaction the segment files that snapshot names are opened (an
open file stays readable after a compaction unlinks it) and the catalog is copied with
SQLite's online backup API, which reads that same snapshot. The segment files, immutable,
are then copied outside the transaction, their checksums verified on the way, and the
catalog is published last: a backup folder without ``catalog.db`` is an unfinished one.
Imports only the standard library and the storage layer.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CorruptStoreError, InvalidInput, StoreIOError
from . import paths
from .arrays import HEADER_SIZE as INDEX_HEADER_SIZE
from .catalog import Catalog, translate_errors
from .files import TMP_SUFFIX, fsync_dir, write_durable
from .layout import CATALOG, COLLECTIONS, LOCK
from .segments import HEADER_SIZE

RETRIES = 5
BLOCK = 4 << 20


@dataclass(frozen=True)
class BackupInfo:
    """What ``Database.backup`` copied: the new store's path and its contents."""

    path: str
    collections: int
    segments: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "collections": self.collections,
            "segments": self.segments,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class _File:
    dir: str
    name: str
    size: int
    crc: int
    fd: int
    header: int = HEADER_SIZE  # bytes before the checksummed payload


def enclosing_store(path: Path) -> Path | None:
    """The store folder that ``path`` is or lies inside (a folder holding a catalog beside
    a collections folder), or None. Files written there could replace store files."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if (folder / CATALOG).is_file() and (folder / COLLECTIONS).is_dir():
            return folder
    return None


def copy_store(
    reading: Callable[[], AbstractContextManager[Catalog]], root: Path, dest: Path
) -> BackupInfo:
    """Copy the store at ``root`` to the new folder ``dest``.

    ``reading`` opens a read transaction on the store's catalog (``Database._reading``).
    ``dest`` must not exist or be an empty folder; on failure it is removed again.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"backup destination {dest} exists and is not an empty folder")
    if dest.resolve() == root.resolve() or root.resolve() in dest.resolve().parents:
        raise InvalidInput(f"backup destination {dest} is inside the store {root}")
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    files: list[_File] = []
    try:
        tmp = dest / f"{CATALOG}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        dirs, files = _snapshot(reading, root, tmp)
        (dest / COLLECTIONS).mkdir()
        for d in dirs:
            (dest / COLLECTIONS / d).mkdir()
        total = 0
        for f in files:
            reader = _Reader(f)
            total += write_durable(dest / COLLECTIONS / f.dir, f.name, reader.blocks())
            reader.check(root / COLLECTIONS / f.dir / f.name)
        fsync_dir(dest / COLLECTIONS)
        (dest / LOCK).touch()
        _fsync(tmp)
        os.rename(tmp, dest / CATALOG)
        fsync_dir(dest)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for entry in dest.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise
    finally:
        for f in files:
            os.close(f.fd)
    return BackupInfo(str(dest), len(dirs), len(files), total)


def _snapshot(
    reading: Callable[[], AbstractContextManager[Catalog]], root: Path, tmp: Path
) -> tuple[list[str], list[_File]]:
    """In one read transaction: open every segment file the catalog names, and copy the
    catalog to ``tmp``. Retried on a fresh snapshot if a file was already unlinked by a
    compaction that committed after this snapshot began."""
    for _ in range(RETRIES):
        with reading() as cat:
            dirs = [
                paths.plain_name(d, "a collection folder", cat.path)
                for (d,) in cat.conn.execute("SELECT dir FROM collections ORDER BY dir")
            ]
            listed = cat.conn.execute(
                f"SELECT c.dir, s.file, s.size, s.crc, {HEADER_SIZE} FROM segments s "
                "JOIN collections c ON c.id = s.coll "
                f"UNION ALL SELECT c.dir, i.file, i.size, i.crc, {INDEX_HEADER_SIZE} "
                "FROM ivf_files i JOIN collections c ON c.id = i.coll"
            ).fetchall()
            files: list[_File] = []
            try:
                for d, name, size, crc, header in listed:
                    paths.plain_name(name, "a segment or index file", cat.path)
                    path = paths.collection_dir(root, d) / name
                    fd = paths.open_regular(path, "store file")
                    files.append(_File(d, name, size, crc, fd, header))
            except FileNotFoundError:
                for f in files:
                    os.close(f.fd)
                continue
            except (CorruptStoreError, StoreIOError):
                for f in files:
                    os.close(f.fd)
                raise
            try:
                with translate_errors(cat.path):
                    target = sqlite3.connect(tmp, isolation_level=None)
                    try:
                        cat.conn.backup(target)  # reads this transaction's snapshot
                    finally:
                        target.close()
            except BaseException:
                for f in files:
                    os.close(f.fd)
                raise
            return dirs, files
    raise StoreIOError(
        f"could not take a backup of {root}: segment files kept changing under "
        f"{RETRIES} snapshots (is a compaction running in a loop?); retry"
    )


class _Reader:
    """Streams a segment file's bytes, computing its payload checksum on the way."""

    def __init__(self, f: _File):
        self.f = f
        self.crc = 0
        self.size = 0

    def blocks(self) -> Iterator[bytes]:
        while block := os.pread(self.f.fd, BLOCK, self.size):
            self.crc = zlib.crc32(block[max(0, self.f.header - self.size) :], self.crc)
            self.size += len(block)
            yield block

    def check(self, path: Path) -> None:
        """Refuse a copy that differs from the catalog's record of the file."""
        if self.size != self.f.size:
            what = f"{self.size} bytes; the catalog records {self.f.size}"
        elif self.crc != self.f.crc:
            what = "payload checksum mismatch"
        else:
            return
        raise CorruptStoreError(
            f"segment file {path} is corrupt ({what}); no backup was made: run "
            "`vecstore verify` on the store"
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
