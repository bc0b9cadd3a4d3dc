"""Read-only maps of store files that hold no file descriptor.

CPython's ``mmap.mmap`` keeps a duplicate of the descriptor it maps for as long as the map
lives (until Python 3.13's ``trackfd=False``), so a reader that has mapped a thousand
segments holds a thousand descriptors and meets ``EMFILE``. A mapping does not need its
descriptor: this maps through libc's ``mmap`` (ctypes) and the caller closes the descriptor
at once. Imports only the standard library.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from functools import cache


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,  # off_t; always 0 here
    )
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.madvise.restype = ctypes.c_int
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc


_MAP_FAILED = ctypes.c_void_p(-1).value


class FileMap:
    """The first ``size`` bytes of the file open as ``fd``, mapped shared and read-only.

    ``view`` is a read-only byte memoryview of the map, for ``np.frombuffer``: arrays made
    from it cannot be made writable. The pages are unmapped when the last object using them
    (this map, the view, any array over it) is garbage-collected, never before, so a running
    query keeps its arrays valid. The descriptor may be closed as soon as this returns.
    """

    __slots__ = ("view", "_buffer", "_addr", "_size")

    def __init__(self, fd: int, size: int):
        if size <= 0:
            raise ValueError(f"cannot map {size} bytes")
        libc = _libc()
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._addr, self._size = addr, size
        self._buffer = (ctypes.c_char * size).from_address(addr)
        # Unmap when the buffer goes, which every view of it keeps alive. Not at exit: a
        # daemon thread may still be reading.
        weakref.finalize(self._buffer, libc.munmap, addr, size).atexit = False
        self.view = memoryview(self._buffer).cast("B").toreadonly()

    def madvise(self, advice: int) -> None:
        """``madvise(2)`` over the whole map (as ``mmap.mmap.madvise``)."""
        if _libc().madvise(self._addr, self._size, advice) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def __len__(self) -> int:
        return self._size
