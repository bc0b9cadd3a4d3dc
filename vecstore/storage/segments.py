"""Immutable segment files: the on-disk format of a block of vectors.

A segment holds ``count`` float32 vectors of ``dim`` components, their L2 norms and the
catalog row ids they belong to, behind a checksummed 128-byte header (docs/format.md).
Files are written once through ``files.write_durable`` and then only mapped read-only.
Imports numpy and the standard library; never numba.
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CorruptStoreError
from .files import write_durable
from .mapping import FileMap
from .paths import open_regular

try:
    # zlib-ng computes the same CRC-32 as zlib with carry-less multiplication (PCLMULQDQ,
    # VPCLMULQDQ): 25 GB/s against zlib's 3.3 on this machine, so the checksum pass over a
    # 177 MB segment when it is first mapped takes 7 ms, not 53 (a fresh process's first
    # query waits for it). Without it, zlib's.
    from zlib_ng.zlib_ng import crc32
    from zlib_ng.zlib_ng import crc32_combine as _combine
except ImportError:  # pragma: no cover - an install without the wheel
    from zlib import crc32

    _combine = None

MAGIC = b"VECSTSEG"
FORMAT_VERSION = 1
HEADER_SIZE = 128
DTYPE_FLOAT32 = 1
ALIGN = 64
SUFFIX = ".vseg"

# magic, version, header size, dim, dtype, count, vectors/norms/rids offsets, file size,
# payload crc32; the header's own crc32 sits in its last four bytes.
_HEADER = struct.Struct("<8sIIIIQQQQQI")
_HEADER_CRC = struct.Struct("<I")
# serialises the first ``Segment.read_rows`` calls of threads, so a segment opens its file once
_OPENING = threading.Lock()


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Layout:
    """Byte offsets of a segment's regions; a pure function of (count, dim)."""

    count: int
    dim: int
    vectors: int
    norms: int
    rids: int
    size: int

    @classmethod
    def of(cls, count: int, dim: int) -> Layout:
        vectors = HEADER_SIZE
        norms = _align(vectors + count * dim * 4)
        rids = _align(norms + count * 4)
        size = rids + count * 8
        return cls(count, dim, vectors, norms, rids, size)


@dataclass(frozen=True)
class SegmentInfo:
    """What the catalog records about a published segment file."""

    file: str
    count: int
    dim: int
    size: int
    crc: int


def _pad(n: int) -> bytes:
    return b"\0" * n


def write_segment(
    directory: Path,
    name: str,
    vectors: Iterable[np.ndarray],
    norms: np.ndarray,
    rids: np.ndarray,
) -> SegmentInfo:
    """Write a new segment file durably and return its catalog record.

    vectors: float32 ``(rows, dim)`` blocks, streamed in order (so a merge never holds a
    whole segment in memory); norms: float32 ``(count,)``; rids: int64 ``(count,)``.
    """
    count = len(rids)
    blocks = iter(vectors)
    first = next(blocks, None)
    dim = first.shape[1] if first is not None else 0
    stream = itertools.chain([first] if first is not None else [], blocks)
    del first  # hold no block longer than the write needs it: a merge streams gigabytes
    lay = Layout.of(count, dim)
    crc = 0
    seen = 0

    def payload() -> Iterator[bytes | memoryview]:
        nonlocal crc, seen
        for block in stream:
            seen += block.shape[0]
            part = memoryview(np.ascontiguousarray(block, dtype="<f4")).cast("B")
            crc = crc32(part, crc)
            yield part
        for part in (
            _pad(lay.norms - lay.vectors - count * dim * 4),
            memoryview(np.ascontiguousarray(norms, dtype="<f4")).cast("B"),
            _pad(lay.rids - lay.norms - count * 4),
            memoryview(np.ascontiguousarray(rids, dtype="<i8")).cast("B"),
        ):
            crc = crc32(part, crc)
            yield part

    def header() -> bytes:
        if seen != count or len(norms) != count:
            raise ValueError(
                f"segment {name}: {seen} vectors and {len(norms)} norms for {count} rids"
            )
        head = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            HEADER_SIZE,
            dim,
            DTYPE_FLOAT32,
            count,
            lay.vectors,
            lay.norms,
            lay.rids,
            lay.size,
            crc,
        )
        head += _pad(HEADER_SIZE - _HEADER_CRC.size - len(head))
        return head + _HEADER_CRC.pack(zlib.crc32(head))

    write_durable(directory, name, payload(), header_size=HEADER_SIZE, header=header)
    return SegmentInfo(name, count, dim, lay.size, crc)


@dataclass(frozen=True, eq=False)
class Segment:
    """A segment file mapped read-only. Arrays are views into the map, which is unmapped when
    the last of them is garbage-collected (a running query may still hold them)."""

    info: SegmentInfo
    vectors: np.ndarray  # float32 (count, dim), read-only
    norms: np.ndarray  # float32 (count,)
    rids: np.ndarray  # int64 (count,)
    _map: FileMap | None
    path: Path | None = None
    # the payload checksum still to verify (``open_segment(..., defer=True)``), else None
    check: SegmentCheck | None = None
    # the descriptor ``read_rows`` keeps (or None: it could not open the file), once opened
    _held: list = field(default_factory=list, repr=False)

    def read_rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors of rows ``positions`` (int64, sorted) as a new float32 array, read
        with ``pread``, not through the map: a re-ranking that reads a few hundred random
        rows per query would otherwise fault in up to a page-cache folio (2 MiB) per row,
        the whole segment after one query. The file is opened on the first call and kept
        open while the segment lives (a binary query reads 50 rows: opening, checking and
        closing the file each time added 4 system calls to its 50). Falls back to the map
        when the file could not be opened as the one mapped (a compaction had unlinked it)."""
        count, dim = self.vectors.shape
        fd = self._descriptor()
        if fd is None:
            return self.vectors[positions]
        row = 4 * dim
        pos = positions.tolist()
        chunks = []
        i = 0
        while i < len(pos):  # runs of adjacent rows are read in one call
            j = i + 1
            while j < len(pos) and pos[j] == pos[j - 1] + 1:
                j += 1
            chunks.append(os.pread(fd, (j - i) * row, HEADER_SIZE + pos[i] * row))
            i = j
        data = bytearray().join(chunks)  # writable, unlike bytes
        if len(data) != len(pos) * row:
            return self.vectors[positions]
        return np.frombuffer(data, dtype="<f4").reshape(len(pos), dim)

    def _descriptor(self) -> int | None:
        """The segment file open for ``read_rows`` (opened once, closed when the segment is
        collected; an unlinked file stays readable through it, as through the map), or
        None when it cannot be opened as the file mapped."""
        held = self._held
        if held:
            return held[0]
        with _OPENING:
            if held:
                return held[0]
            fd = None
            if self.path is not None:
                try:
                    fd = open_regular(self.path, "segment file")
                    if os.fstat(fd).st_size != self.info.size:
                        os.close(fd)
                        fd = None
                except (OSError, CorruptStoreError):
                    fd = None
            if fd is not None:
                weakref.finalize(self, os.close, fd)
            held.append(fd)
        return fd

    def release_pages(self) -> None:
        """Unmap the file's pages from this process (they stay in the page cache, and fault
        back in when read): random reads of a few rows per query, as ANN re-ranking does,
        would otherwise leave the whole file resident, 64 KiB of fault-around at a time."""
        if self._map is not None:
            try:
                self._map.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass  # a hint; a closed map or a kernel without it changes nothing


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B), as zlib's crc32_combine computes it.

    Appending ``len2`` zero bytes to A is a linear map on its CRC; the map for 2**i bytes is
    found by repeated squaring of the one-zero-bit operator over GF(2).
    """
    if len2 <= 0:
        return crc1
    op = [0xEDB88320] + [1 << n for n in range(31)]  # the operator of one zero bit
    for _ in range(3):  # ... squared three times: one zero byte
        op = [_gf2_times(op, op[n]) for n in range(32)]
    while len2:  # op is now the operator of 2**i zero bytes
        if len2 & 1:
            crc1 = _gf2_times(op, crc1)
        len2 >>= 1
        if len2:
            op = [_gf2_times(op, op[n]) for n in range(32)]
    return crc1 ^ crc2


def pread_crc32(fd: int, start: int, end: int, *, block: int = 1 << 20) -> int:
    """CRC-32 of bytes ``[start, end)`` of an open file, read in blocks with ``pread`` in two
    threads: the check costs no resident memory, whatever the file size.

    Each thread reads into one anonymous map of ``block`` bytes, unmapped when it is done: a
    buffer from malloc (as ``os.pread`` returns) would stay in the thread's malloc arena after
    it is freed, 16 MB of the process's resident memory for good."""

    def crc_of(lo: int, hi: int) -> int:
        crc = 0
        buf = mmap.mmap(-1, min(block, hi - lo))
        try:
            with memoryview(buf) as view:
                for pos in range(lo, hi, block):
                    got = os.preadv(fd, [view[: min(block, hi - pos)]], pos)
                    crc = crc32(view[:got], crc)
        finally:
            buf.close()
        return crc

    if end <= start:
        return 0
    if end - start <= 2 * block:
        return crc_of(start, end)
    half = start + (end - start) // 2
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(crc_of, (start, half), (half, end))
    return (_combine or crc32_combine)(a, b, end - half)


class SegmentCheck:
    """The payload checksum of a segment mapped before it was verified: ``run`` verifies it,
    ``scan`` verifies it while a caller reads the vectors block by block. Either raises
    ``CorruptStoreError`` on a mismatch, and both are no-ops once it has passed; until then
    the segment's arrays must not be trusted. Thread-safe: one verification at a time."""

    def __init__(self, path: Path, view: memoryview, lay: Layout, crc: int):
        self._path, self._view, self._lay, self._crc = path, view, lay, crc
        self._lock = threading.Lock()
        self.done = False

    def run(self) -> None:
        """Verify the payload (``pread`` in two threads, as ``open_segment`` does; through the
        map when the file can no longer be opened, a compaction having unlinked it)."""
        with self._lock:
            if self.done:
                return
            try:
                fd = open_regular(self._path, "segment file")
            except (OSError, CorruptStoreError):
                got = crc32(self._view[HEADER_SIZE:])
            else:
                try:
                    got = pread_crc32(fd, HEADER_SIZE, self._lay.size)
                finally:
                    os.close(fd)
            self._finish(got)

    def scan(self, block: Callable[[int, int], object], rows: int, threads: int = 2) -> None:
        """Call ``block(lo, hi)`` on consecutive row ranges ``[lo, hi)`` of the vectors, at most
        ``rows`` each, covering them all, in ``threads`` threads (one contiguous share each),
        each range checksummed just before: its bytes are read once from memory and are
        still in the CPU cache when ``block`` scans them. Then verifies the whole payload and
        raises ``CorruptStoreError`` on a mismatch (the caller must not use what ``block``
        computed). ``block`` must be thread-safe; when the check has already passed (or
        another thread is running it) the ranges are scanned without it."""
        count, dim = self._lay.count, self._lay.dim
        if self.done or not self._lock.acquire(blocking=False):
            self.run()  # waits for a verification under way, then passes or raises
            for lo in range(0, count, rows):
                block(lo, min(count, lo + rows))
            return
        try:
            if self.done:
                for lo in range(0, count, rows):
                    block(lo, min(count, lo + rows))
                return
            row = 4 * dim
            view = self._view

            def share(lo: int, hi: int) -> int:
                crc = 0
                for a in range(lo, hi, rows):
                    b = min(hi, a + rows)
                    crc = crc32(view[HEADER_SIZE + a * row : HEADER_SIZE + b * row], crc)
                    block(a, b)
                return crc

            cuts = [count * t // threads for t in range(threads + 1)]
            if threads > 1 and count >= 2 * rows:
                with ThreadPoolExecutor(threads) as pool:
                    crcs = list(pool.map(share, cuts[:-1], cuts[1:]))
            else:
                crcs, cuts = [share(0, count)], [0, count]
            combine = _combine or crc32_combine
            got = crcs[0]
            for c, lo, hi in zip(crcs[1:], cuts[1:-1], cuts[2:]):
                got = combine(got, c, (hi - lo) * row)
            tail = view[HEADER_SIZE + count * row : self._lay.size]  # padding, norms, rids
            got = combine(got, crc32(tail), len(tail))
            self._finish(got)
        finally:
            self._lock.release()

    def _finish(self, got: int) -> None:
        if got != self._crc:
            raise _corrupt(self._path, "payload checksum mismatch")
        self.done = True


def _corrupt(path: Path, what: str) -> CorruptStoreError:
    return CorruptStoreError(f"segment file {path} is corrupt: {what}")


def open_segment(
    path: Path, expected: SegmentInfo, *, verify: bool = True, defer: bool = False
) -> Segment:
    """Map a segment read-only after checking it against its header and catalog record.

    Every size the header declares is checked against the real file size, and both against
    the catalog, before anything is mapped. With ``verify`` the payload checksum is checked
    too (CRC-32: 25 GB/s with zlib-ng, 3 with zlib), so flipped bytes surface as
    ``CorruptStoreError``; with ``defer`` as well, it is left to the segment's ``check``
    (``SegmentCheck``), which its reader must pass before trusting the arrays.
    Raises ``FileNotFoundError`` if the file is gone (a concurrent compaction removed it),
    and ``CorruptStoreError`` if it is not a regular file (never blocking on a FIFO). The
    map holds no file descriptor.
    """
    fd = open_regular(path, "segment file")
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            raise _corrupt(path, f"{size} bytes is shorter than the {HEADER_SIZE}-byte header")
        (stored_crc,) = _HEADER_CRC.unpack_from(head, HEADER_SIZE - _HEADER_CRC.size)
        if zlib.crc32(head[: HEADER_SIZE - _HEADER_CRC.size]) != stored_crc:
            if head[:8] != MAGIC:
                raise _corrupt(path, "not a vecstore segment (bad magic)")
            raise _corrupt(path, "header checksum mismatch")
        (magic, version, hsize, dim, dtype, count, vo, no, ro, fsize, crc) = _HEADER.unpack_from(
            head
        )
        if magic != MAGIC:
            raise _corrupt(path, "not a vecstore segment (bad magic)")
        if version != FORMAT_VERSION:
            raise _corrupt(path, f"format version {version}; this vecstore reads {FORMAT_VERSION}")
        if hsize != HEADER_SIZE or dtype != DTYPE_FLOAT32:
            raise _corrupt(path, "unknown header size or dtype")
        lay = Layout.of(count, dim)
        if (vo, no, ro, fsize) != (lay.vectors, lay.norms, lay.rids, lay.size):
            raise _corrupt(path, "header offsets disagree with its count and dim")
        if fsize != size:
            raise _corrupt(path, f"header declares {fsize} bytes but the file has {size}")
        got = (count, dim, size, crc)
        want = (expected.count, expected.dim, expected.size, expected.crc)
        if got != want:
            raise _corrupt(path, f"(count, dim, size, crc) {got} disagree with the catalog {want}")
        if verify and not defer and count and pread_crc32(fd, HEADER_SIZE, size) != crc:
            raise _corrupt(path, "payload checksum mismatch")
        mm = FileMap(fd, size) if count else None
    finally:
        os.close(fd)
    if mm is None:
        empty = np.zeros(0, dtype=np.float32)
        return Segment(expected, empty.reshape(0, dim), empty, np.zeros(0, np.int64), None)
    vectors = np.frombuffer(mm.view, dtype="<f4", count=count * dim, offset=vo)
    vectors = vectors.reshape(count, dim)
    norms = np.frombuffer(mm.view, dtype="<f4", count=count, offset=no)
    rids = np.frombuffer(mm.view, dtype="<i8", count=count, offset=ro)
    check = SegmentCheck(path, mm.view, lay, crc) if verify and defer else None
    return Segment(expected, vectors, norms, rids, mm, path, check)
