"""Durable file primitives: write-then-publish, directory fsync, a writer lock.

Every byte vecstore writes outside SQLite goes through this module, so the rules live in one
place: write a temp file, fsync it, rename it, fsync the directory. Files are never written
through mmap and never truncated once published. Imports only the standard library.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import DiskFullError, LockTimeout, StoreIOError
from .paths import open_regular

TMP_SUFFIX = ".tmp"
FAULT_ENV = "VECSTORE_FAULT"

_steps = 0  # I/O steps taken by this process, for crash-point tests
# The steps that allocate space, where a full disk can strike (a catalog commit writes the WAL).
_ALLOCATING = frozenset({"create", "write", "write header", "fsync", "rename", "commit"})


def io_step(name: str, *, can_fail: bool = True) -> None:
    """Mark one step of the write path (file create, write, fsync, rename, directory fsync,
    catalog commit, unlink). For crash-point tests, ``VECSTORE_FAULT=kill@N`` ends the
    process with SIGKILL at its N-th step, ``eio@N`` fails that step with an I/O error and
    ``enospc@N`` with a full disk; unset, this only counts."""
    global _steps
    _steps += 1
    spec = os.environ.get(FAULT_ENV)
    if spec:
        mode, _, at = spec.partition("@")
        if at.isdigit() and int(at) == _steps:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "enospc":
                if can_fail and name in _ALLOCATING:
                    raise DiskFullError(f"injected full disk at step {_steps} ({name})")
            elif can_fail:
                raise StoreIOError(f"injected I/O error at step {_steps} ({name})")


def io_steps() -> int:
    """How many write-path steps this process has taken."""
    return _steps


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(
    directory: Path,
    name: str,
    chunks: Iterable[bytes | memoryview],
    *,
    header_size: int = 0,
    header: Callable[[], bytes] | None = None,
) -> int:
    """Write ``chunks`` to ``directory/name`` so that the file is durable once this returns.

    The data goes to a uniquely named temp file, which is fsynced, renamed into place, and
    the directory fsynced. If ``header`` is given, the chunks start at ``header_size`` and
    ``header()`` is called once they are all written (so it can hold checksums of the
    payload); its ``header_size`` bytes are stored at offset 0. Returns the number of bytes
    written. Raises ``DiskFullError`` if the disk fills up and ``StoreIOError`` if the
    operating system fails any other step; the temp file is then removed.
    """
    tmp = directory / f"{name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
    total = 0
    try:
        io_step("create")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            if header is not None:
                total = os.lseek(fd, header_size, os.SEEK_SET)
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                io_step("write")
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    total += n
            if header is not None:
                head = header()
                io_step("write header")
                if len(head) != header_size or os.pwrite(fd, head, 0) != header_size:
                    raise OSError(errno.EIO, "short header write")
            io_step("fsync")
            os.fsync(fd)
        finally:
            os.close(fd)
        io_step("rename")
        os.rename(tmp, directory / name)
        io_step("fsync directory")
        fsync_dir(directory)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, StoreIOError):
            raise
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"could not write {directory / name}: the disk is full") from exc
        raise StoreIOError(f"could not write {directory / name}: {exc.strerror}") from exc
    return total


def make_dir(path: Path, *, exist_ok: bool = False) -> None:
    """Create the folder ``path`` (and missing parents) durably: its parent is fsynced.
    Raises ``DiskFullError`` or ``StoreIOError`` naming the folder if the system refuses."""
    try:
        if exist_ok and path.is_dir():
            return
        path.mkdir(parents=True, exist_ok=exist_ok)
        fsync_dir(path.parent)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"could not create folder {path}: the disk is full") from exc
        raise StoreIOError(
            f"could not create folder {path}: {exc.strerror or exc}; check that this process "
            "may write its parent folder"
        ) from exc


def remove_quietly(path: Path) -> None:
    io_step("unlink", can_fail=False)  # best effort already: open() removes what remains
    try:
        path.unlink()
    except FileNotFoundError:
        pass


class WriterLock:
    """An exclusive, re-entrant-by-depth ``flock`` on a lock file beside the catalog.

    ``flock`` locks belong to the open file description, so they are not dropped when some
    other descriptor of the process is closed (unlike POSIX record locks), and two
    ``WriterLock`` objects in one process exclude each other as two processes would.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd = open_regular(
            path,
            "the writer lock",
            write=True,
            hint="; open the store with read_only=True to read it, or let this process write "
            "the file",
        )
        self._depth = 0

    def acquire(self, timeout: float) -> None:
        if self._depth:
            self._depth += 1
            return
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another writer held {self.path} for more than {timeout:g} s; "
                        "retry later or pass a larger lock_timeout to vecstore.open()"
                    ) from None
                time.sleep(pause)
                # A short cap: the holder may re-take the lock soon after releasing it, and a
                # waiter polling every 50 ms missed those gaps for seconds on end.
                pause = min(pause * 2, 0.002)
        self._depth = 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._depth = 0
