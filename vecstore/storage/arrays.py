"""Immutable index files: a few named arrays and a small JSON record behind a checksummed header.

An ANN index keeps its trained model (centroids, PQ codebooks) and, per vector segment, its
inverted lists (offsets, codes) in such files. They follow the segment protocol exactly:
written once through ``files.write_durable``, published by a catalog transaction, mapped
read-only, every declared size checked against the real file size before mapping, and the
payload checksummed (docs/format.md). Imports numpy and the standard library; never numba.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptStoreError
from .files import write_durable
from .mapping import FileMap
from .paths import open_regular
from .segments import crc32, pread_crc32

MAGIC = b"VECSTIDX"
FORMAT_VERSION = 1
HEADER_SIZE = 4096
ALIGN = 64
SUFFIX = ".vidx"
MAX_ARRAYS = 16
MAX_META = 2048

_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<i8"), 3: np.dtype("u1"), 4: np.dtype("<i4")}
_CODES = {dt: code for code, dt in _DTYPES.items()}
# magic, version, header size, array count, meta length, file size, payload crc32
_HEAD = struct.Struct("<8sIIIIQI")
# name, dtype code, ndim, shape (2 dims), byte offset
_ENTRY = struct.Struct("<16sBB2xQQQ")
_HEADER_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class ArrayFileInfo:
    """What the catalog records about a published index file."""

    file: str
    size: int
    crc: int


@dataclass(frozen=True, eq=False)
class ArrayFile:
    """An index file mapped read-only: ``arrays`` are views into the map, and ``meta`` is its
    JSON record."""

    info: ArrayFileInfo
    meta: dict
    arrays: dict[str, np.ndarray]
    _map: FileMap | None


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _layout(arrays: dict[str, np.ndarray]) -> tuple[list[tuple], int]:
    entries, offset = [], HEADER_SIZE
    for name, a in arrays.items():
        if a.ndim not in (1, 2):
            raise ValueError(f"index array {name!r} must be 1-D or 2-D; got {a.ndim}-D")
        shape = a.shape if a.ndim == 2 else (a.shape[0], 1)
        entries.append((name, a, shape, offset))
        offset = _align(offset + a.nbytes)
    return entries, offset


def write_arrays(
    directory: Path, name: str, arrays: dict[str, np.ndarray], meta: dict
) -> ArrayFileInfo:
    """Write an index file durably and return its catalog record.

    ``arrays`` maps names (at most 16 bytes) to 1-D or 2-D arrays of float32, int64, int32 or
    uint8; ``meta`` is a JSON-serialisable dict of at most 2 KiB.
    """
    if len(arrays) > MAX_ARRAYS:
        raise ValueError(f"at most {MAX_ARRAYS} arrays per index file; got {len(arrays)}")
    meta_bytes = json.dumps(meta, sort_keys=True).encode()
    if len(meta_bytes) > MAX_META:
        raise ValueError(f"index file record is {len(meta_bytes)} bytes; the limit is {MAX_META}")
    arrays = {
        k: np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")) for k, v in arrays.items()
    }
    entries, size = _layout(arrays)
    crc = 0

    def payload():
        nonlocal crc
        pos = HEADER_SIZE
        for _, a, _, offset in entries:
            if offset > pos:
                pad = b"\0" * (offset - pos)
                crc = crc32(pad, crc)
                yield pad
            if a.nbytes:  # an empty array (say IVF's codes, m = 0) has no bytes to write
                view = memoryview(a.reshape(-1)).cast("B")
                crc = crc32(view, crc)
                yield view
            pos = offset + a.nbytes
        if size > pos:
            pad = b"\0" * (size - pos)
            crc = crc32(pad, crc)
            yield pad

    def header() -> bytes:
        head = _HEAD.pack(
            MAGIC, FORMAT_VERSION, HEADER_SIZE, len(entries), len(meta_bytes), size, crc
        )
        for key, a, shape, offset in entries:
            code = _CODES.get(a.dtype)
            if code is None or len(key.encode()) > 16:
                raise ValueError(f"index array {key!r}: unsupported name or dtype {a.dtype}")
            head += _ENTRY.pack(key.encode(), code, a.ndim, shape[0], shape[1], offset)
        head += meta_bytes
        head += b"\0" * (HEADER_SIZE - _HEADER_CRC.size - len(head))
        return head + _HEADER_CRC.pack(zlib.crc32(head))

    write_durable(directory, name, payload(), header_size=HEADER_SIZE, header=header)
    return ArrayFileInfo(name, size, crc)


def _corrupt(path: Path, what: str) -> CorruptStoreError:
    return CorruptStoreError(f"index file {path} is corrupt: {what}")


def _parse_header(path: Path, head: bytes, size: int) -> tuple[dict, list[tuple], int]:
    (stored,) = _HEADER_CRC.unpack_from(head, HEADER_SIZE - _HEADER_CRC.size)
    if head[:8] != MAGIC:
        raise _corrupt(path, "not a vecstore index file (bad magic)")
    if zlib.crc32(head[: HEADER_SIZE - _HEADER_CRC.size]) != stored:
        raise _corrupt(path, "header checksum mismatch")
    _, version, hsize, narrays, meta_len, fsize, crc = _HEAD.unpack_from(head)
    if version != FORMAT_VERSION:
        raise _corrupt(path, f"format version {version}; this vecstore reads {FORMAT_VERSION}")
    if hsize != HEADER_SIZE or narrays > MAX_ARRAYS or meta_len > MAX_META:
        raise _corrupt(path, "header size, array count or record length out of range")
    if fsize != size:
        raise _corrupt(path, f"header declares {fsize} bytes but the file has {size}")
    entries, end = [], HEADER_SIZE
    for i in range(narrays):
        raw, code, ndim, s0, s1, offset = _ENTRY.unpack_from(head, _HEAD.size + i * _ENTRY.size)
        dtype = _DTYPES.get(code)
        if dtype is None or ndim not in (1, 2) or (ndim == 1 and s1 != 1):
            raise _corrupt(path, f"array {i} has an unknown dtype or shape")
        # Python ints: a hostile shape cannot overflow into a small allocation.
        nbytes = s0 * s1 * dtype.itemsize
        if offset < end or offset % ALIGN or offset + nbytes > size:
            raise _corrupt(path, f"array {i} lies outside the file or overlaps another")
        end = offset + nbytes
        name = raw.rstrip(b"\0").decode("ascii", "replace")
        entries.append((name, dtype, (s0, s1) if ndim == 2 else (s0,), offset))
    start = _HEAD.size + narrays * _ENTRY.size
    try:
        meta = json.loads(head[start : start + meta_len])
    except ValueError:
        raise _corrupt(path, "unreadable record") from None
    if not isinstance(meta, dict):
        raise _corrupt(path, "unreadable record")
    return meta, entries, crc


def open_arrays(path: Path, expected: ArrayFileInfo, *, verify: bool = True) -> ArrayFile:
    """Map an index file read-only after checking it against its header and catalog record.

    With ``verify`` the payload checksum is checked too (read with ``pread``, so the pages
    checked are not charged to this process's resident memory). Raises
    ``FileNotFoundError`` if the file is gone (a concurrent retrain removed it), and
    ``CorruptStoreError`` if it is not a regular file. The map holds no file descriptor.
    """
    fd = open_regular(path, "index file")
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            raise _corrupt(path, f"{size} bytes is shorter than the {HEADER_SIZE}-byte header")
        meta, entries, crc = _parse_header(path, head, size)
        if (size, crc) != (expected.size, expected.crc):
            raise _corrupt(path, f"(size, crc) {(size, crc)} disagree with the catalog")
        if verify and pread_crc32(fd, HEADER_SIZE, size) != crc:
            raise _corrupt(path, "payload checksum mismatch")
        mm = FileMap(fd, size) if size > HEADER_SIZE else None
    finally:
        os.close(fd)
    arrays = {}
    for name, dtype, shape, offset in entries:
        count = math.prod(shape)
        if count == 0 or mm is None:
            arrays[name] = np.zeros(shape, dtype=dtype)
        else:
            arrays[name] = np.frombuffer(mm.view, dtype=dtype, count=count, offset=offset)
            arrays[name] = arrays[name].reshape(shape)
    return ArrayFile(expected, meta, arrays, mm)


def lists_fit(offsets: Any, codes: Any, count: int, nlist: int, m: int, ksub: int) -> bool:
    """Whether a segment's list arrays fit its ``count`` rows and a model of ``nlist`` lists
    and ``m`` codes a row from ``ksub`` centroids each (m = 0 for IVF). The scans index tables
    by these values without bounds checks, so arrays that do not fit (a checksum cannot tell a
    well-formed but wrong file) must never reach them."""
    return bool(
        isinstance(offsets, np.ndarray)
        and isinstance(codes, np.ndarray)
        and offsets.dtype == np.int64
        and offsets.shape == (nlist + 1,)
        and offsets[0] == 0
        and offsets[-1] == count
        and not np.any(np.diff(offsets) < 0)
        and codes.dtype == np.uint8
        and codes.shape == (count, m)
        and (ksub >= 256 or not codes.size or int(codes.max()) < ksub)
    )


#: Highest level an HNSW graph file may declare (the build caps levels at 15).
MAX_GRAPH_LEVEL = 15


def graph_problem(arrays: dict, meta: dict, count: int, M: int) -> str | None:
    """What is wrong with an HNSW graph file's arrays for a segment of ``count`` rows and
    ``M`` links a node (None if nothing). Searches follow these ids without bounds checks:
    every neighbour id must be -1 or a row, every link on layer l >= 1 must lead to a node
    whose level reaches l, and the entry node must sit on the top layer."""
    levels, L0, UP = arrays.get("levels"), arrays.get("L0"), arrays.get("UP")
    if not all(isinstance(a, np.ndarray) for a in (levels, L0, UP)):
        return "arrays missing"
    if levels.dtype != np.uint8 or L0.dtype != np.int32 or UP.dtype != np.int32:
        return "wrong dtypes"
    if levels.shape != (count,) or L0.shape != (count, 2 * M) or UP.ndim != 2 or UP.shape[1] != M:
        return f"shapes {levels.shape}, {L0.shape}, {UP.shape} do not fit {count} rows, M={M}"
    try:
        entry, top = int(meta["entry"]), int(meta["top"])
    except (KeyError, TypeError, ValueError):
        return "unreadable record"
    H = int(levels.max()) if count else 0
    nu = int(np.count_nonzero(levels)) if count else 0
    if H > MAX_GRAPH_LEVEL or UP.shape[0] != max(nu * H, 1):
        return "levels disagree with the upper-layer array"
    if count and not (0 <= entry < count and int(levels[entry]) == top == H):
        return "entry node out of range"
    if L0.size and (int(L0.min()) < -1 or int(L0.max()) >= count):
        return "a layer-0 neighbour id is out of range"
    if nu:
        U = UP.reshape(nu, H, M)
        if int(U.min()) < -1 or int(U.max()) >= count:
            return "an upper-layer neighbour id is out of range"
        for layer in range(1, H + 1):
            links = U[:, layer - 1, :]
            links = links[links >= 0]
            if links.size and int(levels[links].min()) < layer:
                return f"a layer-{layer} link leads to a node below that layer"
    return None
