"""The interface every system of the peer comparison implements, the registry of systems,
and the measuring helpers they share (index sizes, fsync, disk use, resident memory).

Imports numpy and the standard library only: each adapter module imports its own library,
so a missing peer fails only its own adapter.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path

import numpy as np

# system -> (module in bench/peers, adapter class); the vecstore systems each peer is
# compared with are in report.COUNTERPARTS
SYSTEMS: dict[str, tuple[str, str]] = {
    "vecstore-flat": ("vecstore_sys", "VecstoreFlat"),
    "vecstore-ivfpq": ("vecstore_sys", "VecstoreIVFPQ"),
    "vecstore-hnsw": ("vecstore_sys", "VecstoreHNSW"),
    "vecstore-int8": ("vecstore_sys", "VecstoreInt8"),
    "vecstore-binary": ("vecstore_sys", "VecstoreBinary"),
    "faiss-flat": ("faiss_sys", "FaissFlat"),
    "faiss-ivfflat": ("faiss_sys", "FaissIVFFlat"),
    "faiss-ivfpq-refine": ("faiss_sys", "FaissIVFPQRefine"),
    "faiss-sq8-refine": ("faiss_sys", "FaissSQ8Refine"),
    "hnswlib": ("hnswlib_sys", "Hnswlib"),
    "chroma": ("chroma_sys", "Chroma"),
    "lancedb-flat": ("lance_sys", "LanceFlat"),
    "lancedb-ivfpq": ("lance_sys", "LanceIVFPQ"),
    "sqlite-vec": ("sqlitevec_sys", "SqliteVec"),
    "qdrant-local": ("qdrant_sys", "QdrantLocal"),
    "milvus-lite": ("milvus_sys", "MilvusLite"),
}


def adapter_class(system: str) -> type[Adapter]:
    module, cls = SYSTEMS[system]
    return getattr(importlib.import_module(f"peers.{module}"), cls)


def nlist_for(n: int) -> int:
    """IVF list count: 4*sqrt(n) rounded to a power of two, at most n / 8 (vecstore's default
    rule, used for every IVF system so that they partition alike)."""
    target = 4 * math.sqrt(n)
    p = 2 ** round(math.log2(max(target, 1)))
    return int(max(1, min(p, n // 8)))


def pq_m(d: int) -> int:
    """PQ sub-quantizers: the divisor of d nearest d/8 from 256-d up, d/4 from 64, d/2 below
    (one byte per 8, 4 or 2 dimensions; vecstore's default rule)."""
    want = d / 8 if d >= 256 else d / 4 if d >= 64 else d / 2
    return min((m for m in range(1, d + 1) if d % m == 0), key=lambda m: (abs(m - want), m))


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` and the folders holding them: what a library that
    writes with plain write() needs before its data is durable."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (st_blocks, so sparse files count as stored)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def rss_mb(pid: int | None = None) -> float:
    """Resident memory (VmRSS) of a process and all its descendants, in MiB: Milvus Lite
    serves from a child process, whose memory is the store's too."""
    todo, total = [pid or os.getpid()], 0.0
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
        todo += _children(p)
    return total


class Adapter:
    """One system under test. Row ``i`` of the dataset has id ``i``; every search returns
    an int64 array of row ids, best first (possibly fewer than k).

    Build: ``create``, ``add`` per batch of ``batch_rows`` (in row order), ``finish``
    (whatever makes the data durable and indexed). Query (in a fresh process): ``open``,
    then ``set_knob`` and the searches. ``knobs`` is the search-time sweep of an ANN system
    (its ``knob_name``), empty for exact ones; ``batch_api`` says whether the system answers
    many queries in one call.
    """

    kind = "exact"  # or "ann"
    knob_name: str | None = None
    batch_api = True
    batch_rows = 100_000  # rows per add() call while loading
    library = ""  # the package the system is
    modules: tuple[str, ...] = ()  # what a fresh process imports to use it
    notes = ""  # how it is configured, for the report

    def __init__(self, *, threads: int, n: int, d: int) -> None:
        self.threads, self.n, self.d = threads, n, d

    @classmethod
    def version(cls) -> str:
        """The library's version; raises ImportError when it is not installed."""
        raise NotImplementedError

    def knobs(self) -> tuple:
        return ()

    def import_modules(self) -> None:
        for name in self.modules:
            importlib.import_module(name)

    def default_knob(self):
        return None

    def create(self, path: Path) -> None:
        raise NotImplementedError

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def open(self, path: Path) -> None:
        raise NotImplementedError

    def set_knob(self, value) -> None:
        pass

    def thread_options(self) -> tuple:
        """Thread counts single queries are timed at (interleaved; the faster is kept), for
        systems whose pool can be set per call; empty: the system's own setting only."""
        return ()

    def set_threads(self, n: int) -> None:
        pass

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        raise NotImplementedError

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def info(self) -> dict:
        """Anything worth recording about the built index (e.g. an auto-tuned parameter)."""
        return {}
