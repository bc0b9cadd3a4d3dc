"""The store's layout on disk, and how its files are reached: a store folder may have been
crafted by someone else, so nothing it holds is trusted more than a user's input.

The catalog names collection folders and segment and index files; its checksums detect
accidents, not intent. Before a name becomes a path it must be a plain name; the folders it
leads to must resolve inside the store; files are opened without following a final symbolic
link and without blocking, and must be regular files. Imports only the standard library.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from ..errors import CorruptStoreError, StoreIOError

COLLECTIONS = "collections"
MAX_NAME = 255  # bytes: the longest file name of common file systems
# SQLite opens these beside its database (the journal only when one is left over).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_ADVICE = "do not use this store; restore it from a backup"


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a plain file name (one path component), or None if it is."""
    if not isinstance(name, str):
        return "is not text"
    if name in ("", ".", ".."):
        return "is not a file name"
    if "/" in name or "\\" in name or "\0" in name:
        return "is a path, not a plain name"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        return f"is longer than {MAX_NAME} bytes"
    return None


def plain_name(name: object, what: str, catalog: Path) -> str:
    """``name`` if it is a plain file name; else ``CorruptStoreError``. ``what`` says what
    the catalog ``catalog`` names by it ("a segment file", ...)."""
    problem = name_problem(name)
    if problem is not None:
        raise CorruptStoreError(
            f"catalog {catalog}: {what} is named {name!r}, which {problem}; a store names "
            f"only files inside it: {_ADVICE}"
        )
    return name


def outside(root: Path, path: Path) -> str | None:
    """Where ``path`` really leads if that is outside the store folder ``root`` (through a
    symbolic link, or ``..``), else None."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return real


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` if it resolves inside the store folder ``root``; else ``CorruptStoreError``."""
    real = outside(root, path)
    if real is not None:
        raise CorruptStoreError(
            f"{what} {path} leads outside the store {root} (to {real}) through a symbolic "
            f"link; {_ADVICE}"
        )
    return path


def collection_dir(root: Path, name: str) -> Path:
    """The folder of the collection whose catalog record names folder ``name``, checked:
    a plain name, reached without leaving the store folder ``root``."""
    plain_name(name, "a collection folder", root / "catalog.db")
    base = root / COLLECTIONS
    path = base / name
    if not _is_link(base) and not _is_link(path):
        return path  # plain names, no link: inside (two lstat calls, not a realpath)
    return inside(root, path, "collection folder")


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # let realpath decide


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return kind
    return "special"


def not_regular(path: Path, what: str, mode: int) -> CorruptStoreError:
    return CorruptStoreError(
        f"{what} {path} is {_kind(mode)}, not a regular file: a store holds only regular "
        f"files there; {_ADVICE}"
    )


def open_regular(path: Path, what: str, *, write: bool = False, hint: str = "") -> int:
    """Open a store file without blocking and without following a final symbolic link, and
    check that it is a regular file; returns the descriptor.

    ``write`` opens read-write, creating the file if missing (the writer lock). Raises
    ``FileNotFoundError`` if a file to read is missing (a compaction may have removed it),
    ``CorruptStoreError`` if it is a link, FIFO, directory or device, and ``StoreIOError``
    (its message ending in ``hint``) if the system refuses the open.
    """
    flags = os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW
    flags |= (os.O_RDWR | os.O_CREAT) if write else os.O_RDONLY
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        if write:
            raise StoreIOError(f"cannot create {what} {path}: its folder is missing") from None
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symbolic link
            raise not_regular(path, what, stat.S_IFLNK) from None
        if exc.errno == errno.EISDIR:
            raise not_regular(path, what, stat.S_IFDIR) from None
        raise StoreIOError(f"cannot open {what} {path}: {exc.strerror}{hint}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise not_regular(path, what, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_regular(path: Path, what: str) -> bool:
    """Whether ``path`` exists; ``CorruptStoreError`` if it exists and is not a regular
    file (a symbolic link counts as not regular). For files another library opens
    (SQLite's), which cannot be opened here first."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreIOError(f"cannot look at {what} {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise not_regular(path, what, mode)
    return True


def check_catalog_files(catalog: Path) -> bool:
    """Check the catalog and the files SQLite keeps beside it before SQLite opens them (a
    FIFO there would hang it, a directory give an error that names no file). Returns
    whether the catalog exists."""
    exists = check_regular(catalog, "catalog")
    for suffix in SQLITE_SIDE_FILES:
        check_regular(catalog.with_name(catalog.name + suffix), "catalog file")
    return exists


def writable(path: Path) -> bool:
    """Whether this process may write ``path`` (False on read-only media too)."""
    if os.access in os.supports_effective_ids:
        return os.access(path, os.W_OK, effective_ids=True)
    return os.access(path, os.W_OK)


def unsafe_names(keep: dict[str, set[str]]) -> list[str]:
    """The names in ``keep`` (collection folder -> its file names) that are not plain."""
    bad = [d for d in keep if name_problem(d)]
    bad += [f for fs in keep.values() for f in fs if name_problem(f)]
    return [repr(n) for n in bad]


def remove_orphans(root: Path, keep: dict[str, set[str]]) -> None:
    """Delete what no catalog row names under the store's ``collections`` folder: temp
    files and leftovers of interrupted writes. ``keep`` maps each collection folder the
    catalog names to its file names. Call under the writer lock, so no other process is
    between writing a file and publishing it.

    Deletes nothing if the catalog names a file that is missing or a name that is not
    plain (a damaged catalog must not cause deletions), and never looks into a folder
    reached through a symbolic link. Best effort: a file that cannot be removed stays
    (``verify`` lists it). Raises ``CorruptStoreError`` if the collections folder itself
    leads outside the store.
    """
    base = inside(root, root / COLLECTIONS, "the collections folder")
    if unsafe_names(keep):
        return
    for d, names in keep.items():
        folder = base / d
        if folder.is_symlink() or not folder.is_dir():
            return
        if not all(os.path.lexists(folder / f) for f in names):
            return  # reads of what is missing raise CorruptStoreError
    for entry in base.iterdir():
        try:
            if entry.name not in keep:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                continue
            for f in entry.iterdir():
                if f.name not in keep[entry.name]:
                    if f.is_dir() and not f.is_symlink():
                        shutil.rmtree(f, ignore_errors=True)
                    else:
                        f.unlink(missing_ok=True)
        except OSError:
            continue
