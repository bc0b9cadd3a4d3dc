"""How a collection's writes reach disk: rows in one catalog transaction, vectors in new
segment files published by it, then sealing and merging of segments.

A mixin of ``Collection``; it composes storage and kernels and must not import
``collection`` or ``database``.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import inputs, text
from .errors import DuplicateIdError, InvalidInput, StoreIOError, VecstoreError
from .storage import records
from .storage.catalog import Catalog
from .storage.files import remove_quietly
from .storage.segments import SUFFIX, write_segment

if TYPE_CHECKING:
    from .database import Database
    from .storage.catalog import CollectionRecord

MERGE_FACTOR = 4  # segments of one size tier merged together; bounds the segment count by log
WRITE_BLOCK_ROWS = 4096  # rows gathered at a time when a merge streams a new segment


class Writes:
    """The write internals of ``Collection``."""

    _db: Database
    _record: CollectionRecord

    def _rows(self, ids: Any, vectors: Any, documents: Any, metadata: Any) -> tuple:
        ids = inputs.ids(ids)
        n = len(ids)
        docs = inputs.documents(documents, n)
        if not n:
            x = np.zeros((0, self.dim), np.float32)
        elif vectors is not None:
            x = inputs.matrix(vectors, self.dim, n=n)
        elif self._spec is not None and documents is not None:
            x = self._embed_documents(docs)
        elif self._spec is not None:
            raise InvalidInput(f"collection {self.name!r} needs documents to embed, or vectors")
        else:
            raise InvalidInput(f"collection {self.name!r} needs vectors for every row")
        metas = inputs.metadata(metadata, n)
        packed = [records.pack(m) for m in metas]
        return ids, x, docs, metas, packed, [text.counts(d) for d in docs]

    @contextmanager
    def _publishing(self, cat: Catalog) -> Iterator[_Publication]:
        """A write transaction that may publish new segment files.

        Files are written (possibly in a background thread, overlapping the catalog work)
        and fsynced before the transaction registers them and commits. If it does not
        commit, they are removed, unless an I/O error makes the outcome uncertain: then the
        next open's cleanup decides, by what the catalog names.
        """
        pub = _Publication(cat, self._record.id, self._db._collection_dir(self._record))
        try:
            with cat.write():
                yield pub
                pub.finish()
        except StoreIOError:
            pub.settle()
            raise
        except BaseException:
            pub.settle()
            for path in pub.files:
                remove_quietly(path)
            raise

    def _write(self, apply: Callable[[Catalog, _Publication], Any]) -> Any:
        """Run ``apply`` in one write transaction, then seal and merge if due."""
        with self._db._writing() as cat:
            with self._publishing(cat) as pub:
                result = apply(cat, pub)
            self._maintain(cat)
            return result

    def _maintain(self, cat: Catalog) -> None:
        """Seal and merge after an acknowledged write. The write has committed, so a failure
        here must not make it look failed: it becomes a warning (and after an I/O failure
        the store still refuses further writes)."""
        try:
            self._seal(cat, force=False)
            self._merge(cat)
        except VecstoreError as exc:
            if isinstance(exc, StoreIOError):
                self._db._broken = str(exc)
            warnings.warn(
                f"collection {self.name!r}: the write succeeded, but tidying segments after "
                f"it failed: {exc}",
                RuntimeWarning,
                stacklevel=4,
            )

    def _place(
        self, cat: Catalog, pub: _Publication, rids: Sequence[int], x: np.ndarray
    ) -> tuple[int | None, range | None]:
        """Store vectors for rows ``rids``: a new segment if large, else the pending table."""
        from .kernels.exact import row_norms

        if len(rids) >= self._seal_rows():
            seg = pub.segment([x], row_norms(x), np.asarray(rids, dtype=np.int64), background=True)
            return seg, range(len(rids))
        cat.insert_pending(self._record.id, rids, (row.tobytes() for row in x))
        return None, None

    def _insert(
        self,
        cat: Catalog,
        pub: _Publication,
        ids,
        x,
        docs,
        metas,
        packed,
        counts,
        *,
        refuse_existing: bool,
    ) -> None:
        self._require(cat)
        coll = self._record.id
        if not refuse_existing:
            found = cat.locate(coll, ids)
            if found:
                old = [j for j, i in enumerate(ids) if i in found]
                self._change(
                    cat,
                    pub,
                    [found[ids[j]] for j in old],
                    x[old],
                    [docs[j] for j in old],
                    [metas[j] for j in old],
                    [packed[j] for j in old],
                    [counts[j] for j in old],
                )
                new = [j for j, i in enumerate(ids) if i not in found]
                if not new:
                    return
                ids, x = [ids[j] for j in new], x[new]
                docs, metas = [docs[j] for j in new], [metas[j] for j in new]
                packed, counts = [packed[j] for j in new], [counts[j] for j in new]
        start = cat.next_rid()
        rids = range(start, start + len(ids))
        seg, positions = self._place(cat, pub, rids, x)
        try:
            cat.insert_rows(coll, rids, ids, seg, positions, docs, metas, packed, counts)
        except sqlite3.IntegrityError:
            # The unique index on (collection, id) is the duplicate check for add().
            dup = [i for i in ids if i in cat.locate(coll, ids)]
            raise DuplicateIdError(
                f"add: {len(dup)} ids already exist in {self.name!r}: {dup[:5]}; use upsert() "
                "to replace them"
            ) from None
        cat.bump(coll)

    def _change(
        self, cat: Catalog, pub: _Publication, located: list, x, docs, metas, packed, counts
    ) -> None:
        """Replace fields of existing rows ``(rid, seg, pos)``; None means leave as is.
        ``counts`` are the analysed ``docs`` (their keyword postings)."""
        rids = [r[0] for r in located]
        if x is not None:
            cat.release_vectors(located)
            seg, positions = self._place(cat, pub, rids, x)
            cat.set_location(rids, seg, positions)
        if docs is not None:
            cat.set_documents(self._record.id, rids, docs, counts)
        if metas is not None:
            cat.set_metadata(self._record.id, rids, metas, packed)
        cat.bump(self._record.id)

    def _seal_rows(self) -> int:
        # Cap pending bytes per collection at about 8 MiB whatever the dimension.
        return max(1, min(self._db.seal_rows, (8 << 20) // (4 * self.dim)))

    def _seal(self, cat: Catalog, *, force: bool) -> None:
        """Move pending vectors into a new segment once enough have accumulated."""
        from .kernels.exact import row_norms

        coll = self._record.id
        with cat.read():
            count = cat.pending_count(coll)
        if count == 0 or (count < self._seal_rows() and not force):
            return
        with self._publishing(cat) as pub:
            pending = cat.pending(coll)
            blobs = cat.pending_vectors([p for p, _ in pending])
            x = np.frombuffer(b"".join(blobs[p] for p, _ in pending), dtype="<f4")
            x = x.reshape(len(pending), self.dim)
            rids = [r for _, r in pending]
            seg = pub.segment([x], row_norms(x), np.asarray(rids, dtype=np.int64))
            cat.set_location(rids, seg, list(range(len(rids))))
            cat.clear_pending([p for p, _ in pending])
            cat.bump(coll)

    def _merge(self, cat: Catalog) -> None:
        """Merge segments of one size tier once ``MERGE_FACTOR`` of them exist, and rewrite
        segments that are mostly deleted: the segment count stays logarithmic in the rows."""
        base = self._seal_rows()
        for _ in range(64):
            with cat.read():
                records = cat.segments(self._record.id)
                dead = cat.dead_counts(self._record.id)
            tiers: dict[int, list[int]] = {}
            for rec in records:
                live = rec.info.count - dead.get(rec.id, 0)
                if live * 2 < rec.info.count:
                    tiers.setdefault(-1, []).append(rec.id)
                    continue
                tier = int(math.log(max(live, base) / base, MERGE_FACTOR))
                tiers.setdefault(tier, []).append(rec.id)
            due = tiers.get(-1) or next(
                (segs for segs in tiers.values() if len(segs) >= MERGE_FACTOR), None
            )
            if not due:
                return
            self._rewrite(cat, due)

    def _rewrite(self, cat: Catalog, seg_ids: list[int]) -> None:
        """Replace segments by one holding only their live rows, in one transaction; the old
        files are unlinked after the commit (readers that mapped them keep their view)."""
        coll = self._record.id
        directory = self._db._collection_dir(self._record)
        with cat.fully_synced(), self._publishing(cat) as pub:
            snap = self._snapshot(cat)
            parts = {p.seg: p for p in snap.parts}
            old_files = {r.id: r.info.file for r in cat.segments(coll)}
            live = cat.live_in_segments(coll, seg_ids)
            rids, segs, pos = live[:, 0].copy(), live[:, 1].copy(), live[:, 2].copy()
            del live
            if len(rids):
                norms = np.empty(len(rids), dtype=np.float32)
                for s in np.unique(segs):
                    sel = segs == s
                    norms[sel] = parts[int(s)].norms[pos[sel]]

                def blocks() -> Iterator[np.ndarray]:
                    for i in range(0, len(rids), WRITE_BLOCK_ROWS):
                        s_, p_ = segs[i : i + WRITE_BLOCK_ROWS], pos[i : i + WRITE_BLOCK_ROWS]
                        out = np.empty((len(p_), self.dim), dtype=np.float32)
                        for s in np.unique(s_):
                            sel = s_ == s
                            out[sel] = parts[int(s)].vectors[p_[sel]]
                        yield out

                seg = pub.segment(blocks(), norms, rids)
                cat.set_location(rids, seg, range(len(rids)))
            cat.drop_segments(seg_ids)
            cat.bump(coll)
        for sid in seg_ids:
            self._db._segments.get(self._record.dir, {}).pop(old_files[sid], None)
            remove_quietly(directory / old_files[sid])


class _Publication:
    """The segment files one write transaction publishes.

    ``segment`` reserves the segment's catalog id at once (rows can point at it) and writes
    the file, in a background thread if asked; ``finish`` waits for every file to be durable
    and registers them, just before the transaction commits.
    """

    def __init__(self, cat: Catalog, coll: int, directory: Path):
        self._cat = cat
        self._coll = coll
        self._directory = directory
        self._next_id: int | None = None
        self._jobs: list[tuple[int, Future]] = []
        self.files: list[Path] = []

    def segment(
        self,
        blocks: Iterable[np.ndarray],
        norms: np.ndarray,
        rids: np.ndarray,
        *,
        background: bool = False,
    ) -> int:
        if self._next_id is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._next_id = self._cat.next_segment_id()
        seg = self._next_id
        self._next_id += 1
        name = f"{uuid.uuid4().hex}{SUFFIX}"
        self.files.append(self._directory / name)
        job: Future = Future()
        args = (self._directory, name, blocks, norms, rids)
        if background:
            threading.Thread(target=_run, args=(job, write_segment, args), daemon=True).start()
        else:
            _run(job, write_segment, args)
        self._jobs.append((seg, job))
        return seg

    def finish(self) -> None:
        for seg, job in self._jobs:
            self._cat.insert_segment(self._coll, job.result(), seg)

    def settle(self) -> None:
        """Wait for background writes to end, whatever their outcome."""
        for _, job in self._jobs:
            job.exception()


def _run(job: Future, fn: Callable, args: tuple) -> None:
    try:
        job.set_result(fn(*args))
    except BaseException as exc:
        job.set_exception(exc)
