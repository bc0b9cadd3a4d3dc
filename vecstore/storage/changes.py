"""The change counter: a 16-byte file beside the catalog that every writer bumps around its
commits, so a reader can tell that nothing was committed since it last looked with one
``pread`` instead of an SQL statement.

Protocol (a seqlock across processes). A writer, holding the writer lock, sets the counter to
a new odd value before its first commit and to the next (even) value after its last one.
A reader may trust a result it read at stamp S (``Catalog.stamp``) for as long as the counter
stays at an even value V that it read *before* checking that the stamp was still S: any later
commit is preceded by an odd value, so the counter can only return to V by wrapping 2**64.
A writer killed mid-commit leaves the counter odd, which readers never trust (they go back
to SQL), and the next writer moves it on to a new odd, then even, value.

The file is untrusted: it is read with ``pread`` (never mapped, so a truncation cannot
SIGBUS a reader), holds the value and its bitwise complement (a torn or garbled read fails
the check and reads as "unknown"), and a descriptor whose file was unlinked or replaced reads
as "unknown" too. "Unknown" only ever costs a reader the SQL check. Imports only the standard
library, ``errors`` and ``storage.layout``/``paths``.
"""

from __future__ import annotations

import os
import secrets
import struct
from pathlib import Path

from ..errors import StoreIOError
from .layout import CHANGES
from .paths import open_regular

_MASK = (1 << 64) - 1
_PAIR = struct.Struct("<QQ")


def _decode(raw: bytes) -> int | None:
    if len(raw) != _PAIR.size:
        return None
    value, check = _PAIR.unpack(raw)
    return value if value ^ check == _MASK else None


class ChangeCounter:
    """A store's change counter, opened read-write (a writer) or read-only (a reader)."""

    def __init__(self, fd: int, *, writable: bool):
        self._fd = fd
        self.writable = writable
        self._depth = 0
        self._odd: int | None = None
        # the bytes ``read`` decoded last and their value: a reader mostly reads the same
        # 16 bytes again, and comparing them costs less than decoding them
        self._seen: tuple[bytes, int | None] = (b"", None)

    @classmethod
    def open(cls, folder: Path, *, write: bool) -> ChangeCounter | None:
        """The counter of the store in ``folder``: created if missing when ``write``; None
        for a reader when there is none (an older store: readers then always use SQL)."""
        try:
            fd = open_regular(folder / CHANGES, "the change counter", write=write)
        except FileNotFoundError:
            return None
        except OSError:
            if write:
                raise
            return None  # unreadable: a reader just checks with SQL
        return cls(fd, writable=write)

    def read(self) -> int | None:
        """The counter now, or None when it cannot be trusted (missing, torn, garbled, or a
        file unlinked since it was opened)."""
        try:
            raw = os.pread(self._fd, 16, 0)
            if os.fstat(self._fd).st_nlink == 0:
                return None
        except OSError:
            return None
        seen = self._seen
        if raw == seen[0]:
            return seen[1]
        value = _decode(raw)
        self._seen = (raw, value)
        return value

    @staticmethod
    def steady(value: int | None) -> bool:
        """Whether ``value`` (from ``read``) says no writer is between its commits."""
        return value is not None and not value & 1

    def begin(self) -> None:
        """Mark that commits may follow (the outermost call of nested ones counts): a new
        odd value. Call holding the writer lock; raises ``StoreIOError`` if it cannot be
        written (a commit readers could not see must not happen)."""
        self._depth += 1
        if self._depth > 1:
            return
        now = self.read()
        if now is None:  # new, garbled or replaced: start far from any value a reader holds
            now = secrets.randbits(62) << 1
        odd = (now + 1) & _MASK if not now & 1 else (now + 2) & _MASK
        try:
            self._write(odd)
        except BaseException:
            self._depth -= 1
            raise
        self._odd = odd

    def end(self) -> None:
        """Mark the commits done: the even value after ``begin``'s odd one. If it cannot be
        written the counter stays odd, which readers never trust: nothing goes stale."""
        self._depth -= 1
        if self._depth > 0 or self._odd is None:
            return
        odd, self._odd = self._odd, None
        try:
            self._write((odd + 1) & _MASK)
        except StoreIOError:
            pass

    def _write(self, value: int) -> None:
        try:
            wrote = os.pwrite(self._fd, _PAIR.pack(value, value ^ _MASK), 0)
        except OSError as exc:
            raise StoreIOError(f"cannot update the change counter: {exc.strerror}") from exc
        if wrote != _PAIR.size:
            raise StoreIOError("cannot update the change counter: short write")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
