"""Reports about a store: ``Database.verify()`` (every checksum and catalog invariant) and
``Collection.info()`` (sizes and settings).

Composes the storage layer's checks (``storage/integrity.py``, where the SQL lives) over
consistent catalog snapshots; imports no kernels and must not import ``cli``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import CollectionConfig
from .errors import CorruptStoreError
from .reader import SNAPSHOT_RETRIES
from .storage import cleanup, integrity

if TYPE_CHECKING:
    from .reader import Reader
    from .storage.catalog import Catalog
    from .store import Store

# What a damaged catalog can raise part-way through a check: reported, never raised.
DAMAGE = (CorruptStoreError, sqlite3.DatabaseError, ValueError, TypeError, KeyError, IndexError)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``Database.verify()``.

    Attributes
    ----------
    problems : list of str
        One line per broken invariant or failed checksum; empty for a sound store.
    warnings : list of str
        Harmless findings: files no catalog row names that are provably the leftovers of
        an unacknowledged write (deleted by the next read-write open) or belong to a write
        in progress. Any other file no catalog row names, and any file in ``quarantine/``,
        is a problem: "catalog names fewer files than the store holds".
    collections, segments, rows : int
        How many were checked.
    bytes : int
        Segment bytes read and checksummed.
    """

    problems: list[str]
    warnings: list[str] = field(default_factory=list)
    collections: int = 0
    segments: int = 0
    rows: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "collections": self.collections,
            "segments": self.segments,
            "rows": self.rows,
            "bytes": self.bytes,
        }

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.problems)} problems"
        return (
            f"VerifyReport({state}: {self.collections} collections, {self.segments} segments, "
            f"{self.rows} rows, {self.bytes} bytes checked)"
        )


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's settings and size, from ``Collection.info()``.

    Attributes
    ----------
    name, metric : str
    count, dim : int
    encoder : dict or None
        The stored encoder spec (kind, model, dim, prefixes...), None for plain vectors.
    index : str
        The search index: ``"flat"`` (exact search) unless the collection's settings name
        another.
    segments : int
        Segment files.
    pending : int
        Vectors waiting in the catalog to be sealed into a segment.
    deleted : int
        Deleted or replaced vectors still in segment files (``compact()`` drops them).
    disk_bytes : int
        Bytes of the collection's vectors on disk: its segment files, plus the vectors
        pending in the catalog (documents and metadata live in the catalog too).
    """

    name: str
    count: int
    dim: int
    metric: str
    encoder: dict | None
    index: str
    segments: int
    pending: int
    deleted: int
    disk_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "dim": self.dim,
            "metric": self.metric,
            "encoder": None if self.encoder is None else dict(self.encoder),
            "index": self.index,
            "segments": self.segments,
            "pending": self.pending,
            "deleted": self.deleted,
            "disk_bytes": self.disk_bytes,
        }


def info(name: str, reader: Reader) -> CollectionInfo:
    """Sizes and settings of the collection ``reader`` reads, from one snapshot."""

    def read(cat: Catalog) -> tuple[CollectionConfig, integrity.CollectionStats]:
        # the current config, not the one the collection was opened with
        return reader.config(cat), integrity.collection_stats(cat, reader.record.id)

    config, stats = reader.consistent(read)
    return CollectionInfo(
        name=name,
        count=stats.rows,
        dim=config.dim,
        metric=config.metric,
        encoder=None if config.encoder is None else config.encoder.to_json(),
        index=config.index.kind,
        segments=stats.segments,
        pending=stats.pending,
        deleted=stats.deleted,
        disk_bytes=stats.segment_bytes + stats.pending_bytes,
    )


def verify(store: Store) -> VerifyReport:
    """Check the whole store; never raises for what it finds, only reports it."""
    root = store.collection_dir  # the folder of each collection, by its catalog record

    def named() -> dict[str, set[str]]:  # in a fresh snapshot each time
        with store.reading() as cat, cat.unchecked():
            return cat.segment_files()

    with store.reading() as cat, cat.unchecked():
        try:
            problems = integrity.store_problems(cat)
            records = cat.collections()
        except DAMAGE as exc:  # the catalog is too damaged to go through
            return VerifyReport([f"catalog {cat.path}: the check stopped: {exc}"])
    try:
        files = cleanup.survey(store.path, named)
    except DAMAGE as exc:
        return VerifyReport([*problems, f"catalog {store.path}: the check stopped: {exc}"])
    problems += files.problems(store.path)
    warnings = files.warnings(store.path)
    totals = {"segments": 0, "rows": 0, "bytes": 0}
    for rec in records:
        for attempt in range(SNAPSHOT_RETRIES):
            with store.reading() as cat, cat.unchecked():
                version = cat.version(rec.id, rec.dir)
                if version is None:
                    result = None  # deleted since the list was read
                    break
                try:
                    result = integrity.check_collection(
                        cat, rec, root(rec), CollectionConfig.of(rec).text.counts
                    )
                except DAMAGE as exc:
                    result = integrity.CollectionAudit()
                    result.problems.append(f"collection {rec.name!r}: the check stopped: {exc}")
            if not result.missing_files or attempt == SNAPSHOT_RETRIES - 1:
                break
            with store.reading() as cat:
                if cat.version(rec.id, rec.dir) == version:
                    break  # really missing, not removed by a compaction after our snapshot
        if result is None:
            continue
        problems += result.problems
        totals["segments"] += result.segments
        totals["rows"] += result.rows
        totals["bytes"] += result.bytes
    return VerifyReport(problems, warnings, collections=len(records), **totals)
