"""Staged partitions: segment files written by other processes, waiting to be adopted.

A distributed ingest (vecstore/dask.py, vecstore/staged.py) has workers embed partitions of
rows and write each as a staged partition into ``staging/<run>/`` of the store: a segment
file (segments.py, the format every collection uses), a rows file (ids, documents, packed
metadata) and, written last, a checksummed manifest naming both. A partition without a
readable manifest is half-written and is never adopted. Everything in a staging folder is
untrusted input: names, sizes and checksums are checked before anything is read, and the
segment's own checksum before its vectors are. A run's folder holds a ``LOCK`` that its
client holds; a run whose lock nobody holds is a leftover, swept at the next read-write open.
Imports numpy, msgpack and the standard library; never numba.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from ..errors import CorruptStoreError
from .files import fsync_dir, make_dir, remove_quietly, write_durable
from .paths import inside, name_problem, open_regular
from .segments import SUFFIX as SEGMENT_SUFFIX
from .segments import Segment, SegmentInfo, open_segment, write_segment

STAGING = "staging"  # beside catalog.db: staging/<run>/<token>.{vseg,rows,staged}
RUN_LOCK = "LOCK"
MANIFEST_SUFFIX = ".staged"
ROWS_SUFFIX = ".rows"
FORMAT = "vecstore-staged-1"
MAX_ROWS_BYTES = 4 << 30  # a rows file larger than this is refused unread
_TOKEN = re.compile(r"[0-9a-f]{32}")


def partition_token(
    collection: str, ids: Sequence[str], documents: Sequence, packed: Sequence
) -> str:
    """A deterministic token for a partition's content in one collection: a retried
    partition gets the same one, so it is adopted at most once."""
    h = hashlib.blake2b(digest_size=16)
    h.update(collection.encode())
    h.update(msgpack.packb([list(ids), list(documents), list(packed)], use_bin_type=True))
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class StagedPartition:
    """A staged partition read back and checked: its segment mapped read-only (vectors of
    rids ``rid_start ..``), and its rows' ids, documents and packed metadata."""

    token: str
    rid_start: int
    segment: Segment
    path: Path  # the segment file in the staging folder
    ids: list[str]
    documents: list[str | None]
    packed: list[bytes | None]

    def __len__(self) -> int:
        return len(self.ids)


def new_run(root: Path) -> tuple[Path, int]:
    """Create ``staging/<run>/`` and take its lock; returns the folder and the lock's file
    descriptor (held until ``end_run``)."""
    folder = root / STAGING
    make_dir(folder, exist_ok=True)
    inside(root, folder, "the staging folder")
    run = folder / uuid.uuid4().hex
    make_dir(run)
    fd = os.open(run / RUN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return run, fd


def end_run(run: Path, fd: int) -> None:
    """Remove a run's folder (its adopted files live on as hard links), then its lock."""
    shutil.rmtree(run, ignore_errors=True)
    os.close(fd)
    try:
        fsync_dir(run.parent)
    except OSError:
        pass


def sweep(root: Path) -> list[str]:
    """At a read-write open: remove the folders of runs whose lock no process holds (their
    client died); returns their names. A run being staged is left alone."""
    folder = root / STAGING
    if not folder.is_dir() or folder.is_symlink():
        return []
    removed = []
    for run in sorted(folder.iterdir()):
        if not _TOKEN.fullmatch(run.name) or run.is_symlink() or not run.is_dir():
            continue  # not something vecstore wrote: left for a person to look at
        try:
            fd = open_regular(run / RUN_LOCK, "a staging lock", write=True)
        except (OSError, CorruptStoreError):
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        shutil.rmtree(run, ignore_errors=True)
        if fd is not None:
            os.close(fd)
        removed.append(run.name)
    if removed:
        try:
            fsync_dir(folder)
        except OSError:
            pass
    return removed


def write_partition(
    run: Path,
    token: str,
    rid_start: int,
    vectors: np.ndarray,
    norms: np.ndarray,
    ids: list[str],
    documents: list[str | None],
    packed: list[bytes | None],
) -> None:
    """Write one partition into the run folder ``run``: segment, rows, then the manifest.
    Each file is written durably (temp, fsync, rename, fsync the folder), so a retried
    partition replaces its files whole with the same bytes, and a killed one leaves no
    manifest."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"partition token {token!r} is not 32 hex digits")
    n = len(ids)
    rids = np.arange(rid_start, rid_start + n, dtype=np.int64)
    seg = write_segment(run, f"{token}{SEGMENT_SUFFIX}", [vectors], norms, rids)
    body = msgpack.packb({"ids": ids, "documents": documents, "packed": packed}, use_bin_type=True)
    write_durable(run, f"{token}{ROWS_SUFFIX}", [body])
    manifest = {
        "format": FORMAT,
        "token": token,
        "rid_start": int(rid_start),
        "segment": {
            "file": seg.file,
            "count": seg.count,
            "dim": seg.dim,
            "size": seg.size,
            "crc": seg.crc,
        },
        "rows": {"file": f"{token}{ROWS_SUFFIX}", "size": len(body), "crc": zlib.crc32(body)},
    }
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    wrapped = json.dumps({"staged": manifest, "crc32": zlib.crc32(text.encode())})
    write_durable(run, f"{token}{MANIFEST_SUFFIX}", [wrapped.encode()])


def _bad(path: Path, what: str) -> CorruptStoreError:
    return CorruptStoreError(f"staged partition {path} is not adoptable: {what}")


def read_partition(run: Path, token: str, *, dim: int) -> StagedPartition | None:
    """The staged partition ``token`` of run folder ``run``, checked whole (manifest,
    names, sizes, both checksums, rids); None if it has no manifest (never finished).
    Raises ``CorruptStoreError`` if anything disagrees."""
    if not _TOKEN.fullmatch(token):
        raise _bad(run / token, "its token is not 32 hex digits")
    path = run / f"{token}{MANIFEST_SUFFIX}"
    if not os.path.lexists(path):
        return None
    fd = open_regular(path, "a staging manifest")
    try:
        if os.fstat(fd).st_size > 1 << 20:
            raise _bad(path, "the manifest is larger than 1 MiB")
        raw = os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
        m = data["staged"]
        text = json.dumps(m, sort_keys=True, separators=(",", ":"))
        if data["crc32"] != zlib.crc32(text.encode()) or m["format"] != FORMAT:
            raise _bad(path, "checksum or format mismatch")
        seg, rows, rid_start = m["segment"], m["rows"], m["rid_start"]
        info = SegmentInfo(seg["file"], seg["count"], seg["dim"], seg["size"], seg["crc"])
        rows_file, rows_size, rows_crc = rows["file"], rows["size"], rows["crc"]
    except (ValueError, TypeError, KeyError) as exc:
        raise _bad(path, f"malformed manifest ({exc!r})") from None
    if m["token"] != token:
        raise _bad(path, "the manifest names another partition")
    for name, want in ((info.file, SEGMENT_SUFFIX), (rows_file, ROWS_SUFFIX)):
        problem = name_problem(name)
        if problem or name != f"{token}{want}":
            raise _bad(path, f"file name {name!r} {problem or 'is not the partition’s own'}")
    ints = (info.count, info.dim, info.size, info.crc, rows_size, rows_crc, rid_start)
    if not all(type(v) is int and v >= 0 for v in ints):
        raise _bad(path, "a size, count or checksum is not a non-negative integer")
    if info.dim != dim:
        raise _bad(path, f"its vectors have dim {info.dim}; the collection has {dim}")
    if rows_size > MAX_ROWS_BYTES:
        raise _bad(path, f"its rows file declares {rows_size} bytes")
    segment = open_segment(run / info.file, info, verify=True)
    fd = open_regular(run / rows_file, "a staged rows file")
    try:
        if os.fstat(fd).st_size != rows_size:
            raise _bad(path, "the rows file's size disagrees with the manifest")
        body = os.pread(fd, rows_size, 0)
    finally:
        os.close(fd)
    if len(body) != rows_size or zlib.crc32(body) != rows_crc:
        raise _bad(path, "the rows file's checksum disagrees with the manifest")
    try:
        payload = msgpack.unpackb(body, raw=False, strict_map_key=True)
        ids, documents, packed = payload["ids"], payload["documents"], payload["packed"]
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise _bad(path, f"malformed rows file ({exc!r})") from None
    n = info.count
    if not (isinstance(ids, list) and isinstance(documents, list) and isinstance(packed, list)):
        raise _bad(path, "rows are not lists")
    if not (len(ids) == len(documents) == len(packed) == n):
        raise _bad(path, f"{len(ids)} ids for {n} vectors")
    if not all(isinstance(i, str) for i in ids):
        raise _bad(path, "an id is not text")
    if not all(d is None or isinstance(d, str) for d in documents):
        raise _bad(path, "a document is not text")
    if not all(p is None or isinstance(p, bytes) for p in packed):
        raise _bad(path, "a metadata record is not bytes")
    if n and not np.array_equal(segment.rids, np.arange(rid_start, rid_start + n)):
        raise _bad(path, "the segment's row ids are not the manifest's range")
    return StagedPartition(token, rid_start, segment, run / info.file, ids, documents, packed)


def staged_tokens(run: Path) -> list[str]:
    """Tokens of the partitions in ``run`` that have a manifest."""
    return sorted(
        p.name[: -len(MANIFEST_SUFFIX)]
        for p in run.iterdir()
        if p.name.endswith(MANIFEST_SUFFIX) and _TOKEN.fullmatch(p.name[: -len(MANIFEST_SUFFIX)])
    )


def discard_partition(run: Path, token: str) -> None:
    """Remove whatever a partition left in ``run`` (files and temp files)."""
    if not _TOKEN.fullmatch(token):
        return
    for p in run.iterdir():
        if p.name.startswith(token):
            remove_quietly(p)


def link_into(source: Path, directory: Path, name: str) -> None:
    """Publish a staged file into a collection folder under ``name`` without copying it:
    a hard link (the staging run's own name goes with the run), durable on return."""
    try:
        os.link(source, directory / name)
        fsync_dir(directory)
    except OSError as exc:
        from ..errors import DiskFullError, StoreIOError

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"could not link {source} into {directory}: the disk is full"
            ) from exc
        hint = "; the staging folder must be on the store's file system" * (
            exc.errno == errno.EXDEV
        )
        raise StoreIOError(
            f"could not link {source} into {directory}: {exc.strerror}{hint}"
        ) from exc
