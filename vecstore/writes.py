"""How a collection's writes reach disk: rows in one catalog transaction, vectors in new
segment files published by it, then sealing and merging of segments.

Every write is one transaction under the store's writer lock: new segment files are written
and fsynced first, then the transaction registers them with the rows and commits, so a write
is wholly visible or not at all, and durable when it returns. Small writes wait in the
catalog's ``pending`` table and are sealed into segments as they accumulate; segments of a
similar size are merged as they pile up. What the ANN index needs (when to train, on which
sample, how rows enter its lists) is decided in ``index.upkeep``; this module runs the
transactions and publishes the files. Must not import ``collection`` or ``database``.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import duplicates, inputs
from .config import CollectionConfig, cache_key
from .embedding import Embedder
from .errors import (
    DiskFullError,
    DuplicateIdError,
    IdNotFound,
    InvalidInput,
    StoreIOError,
    VecstoreError,
)
from .index import compressed, ivf, specs, upkeep
from .index import graph as graphs
from .reader import Reader
from .storage import records
from .storage.annfiles import IndexFileRecord
from .storage.arrays import SUFFIX as INDEX_SUFFIX
from .storage.arrays import write_arrays
from .storage.buffers import text_hash
from .storage.catalog import Catalog, CollectionRecord
from .storage.filters import compile_filters
from .storage.intents import Intent
from .storage.records import Location, RowBatch
from .storage.segments import SUFFIX, SegmentInfo, open_segment, write_segment
from .storage.staging import StagedPartition, link_into
from .store import SnapshotRace, Store

# Upkeep (seals, merges, compaction, training) reports here with timings; queries log nothing.
log = logging.getLogger(__name__)

MERGE_FACTOR = 4  # segments of one size tier merged together; bounds the segment count by log
WRITE_BLOCK_ROWS = 4096  # rows gathered at a time when a merge streams a new segment


class Writer:
    """The write side of one collection: each public method is one durable transaction."""

    def __init__(self, store: Store, record: CollectionRecord, reader: Reader, embedder: Embedder):
        self._store = store
        self._record = record
        self._reader = reader
        self._embedder = embedder
        # fixed at creation: every segment gets codes of this encoding (none for float32)
        self._vectors = CollectionConfig.of(record).vectors

    # -- batches ------------------------------------------------------------------------

    def rows(self, ids: Any, vectors: Any, documents: Any, metadata: Any) -> RowBatch:
        """Whole rows from a user's arguments, validated, with documents embedded where the
        collection embeds and no vectors are given."""
        ids = inputs.ids(ids)
        n = len(ids)
        docs = inputs.documents(documents, n)
        embeds = self._embedder.spec is not None
        if not n:
            x = np.zeros((0, self._record.dim), np.float32)
        elif vectors is not None:
            x = inputs.matrix(vectors, self._record.dim, n=n)
        elif embeds and documents is not None:
            x = self._embedder.documents(docs)
        elif embeds:
            raise InvalidInput(
                f"collection {self._record.name!r} needs documents to embed, or vectors"
            )
        else:
            raise InvalidInput(f"collection {self._record.name!r} needs vectors for every row")
        metas = inputs.metadata(metadata, n)
        return RowBatch(
            ids,
            x,
            docs,
            metas,
            [records.pack(m) for m in metas],
            [self._reader.analyzer.counts(d) for d in docs],
        )

    def embed_images(self, images: Any) -> np.ndarray:
        """The vectors of images (paths, PIL images or arrays), through the collection's
        encoder (a CLIP one)."""
        return self._embedder.images(images)

    def changes(self, ids: Any, vectors: Any, documents: Any, metadata: Any) -> RowBatch:
        """The fields an update replaces (None: left as they are), validated."""
        ids = inputs.ids(ids)
        n = len(ids)
        x = None if vectors is None else inputs.matrix(vectors, self._record.dim, n=n)
        docs = None if documents is None else inputs.documents(documents, n)
        if x is None and docs is not None and self._embedder.spec is not None and n:
            x = self._embedder.documents(docs)
        metas = None if metadata is None else inputs.metadata(metadata, n)
        return RowBatch(
            ids,
            x,
            docs,
            metas,
            None if metas is None else [records.pack(m) for m in metas],
            None if docs is None else [self._reader.analyzer.counts(d) for d in docs],
        )

    # -- the public writes --------------------------------------------------------------

    def insert(self, rows: RowBatch, *, replace: bool) -> None:
        """Add ``rows``; an existing id raises ``DuplicateIdError`` unless ``replace``."""
        if len(rows):
            self._write(lambda cat, pub: self._insert(cat, pub, rows, replace=replace))

    def insert_novel(self, rows: RowBatch, threshold: float) -> list[str]:
        """Add the rows of ``rows`` that score below ``threshold`` against every live row
        and every earlier row of the batch that is added, in one transaction (so no other
        writer can add a duplicate between the check and the write). Returns the ids of the
        rows skipped; an added id that exists raises ``DuplicateIdError`` (nothing added)."""
        if not len(rows):
            return []

        def apply(cat: Catalog, pub: _Publication) -> list[str]:
            self._reader.require(cat)
            try:
                snap = self._reader.snapshot(cat)
            except SnapshotRace:  # nothing unlinks files while this writer holds the lock
                raise self._reader.vanished() from None
            keep = duplicates.novel(snap, rows.vectors, self._record.metric, threshold)
            if keep.any():
                self._insert(cat, pub, rows.take(np.flatnonzero(keep)), replace=False)
            return [i for i, kept in zip(rows.ids, keep.tolist()) if not kept]

        return self._write(apply)

    def set_field(self, ids: list[str], key: str, values: Sequence[Any]) -> int:
        """Set metadata ``key`` of rows ``ids`` to ``values`` (validated), keeping their other
        keys, in one transaction; ids that no longer exist are skipped. Returns how many rows
        changed."""
        coll = self._record.id

        def apply(cat: Catalog, pub: _Publication) -> int:
            self._reader.require(cat)
            found = cat.rows_by_id(coll, ids)
            rids, metas = [], []
            for id_, value in zip(ids, values):
                row = found.get(id_)
                if row is not None:
                    meta = records.unpack(row.meta)
                    meta[key] = value
                    rids.append(row.rid)
                    metas.append(meta)
            if rids:
                cat.set_metadata(coll, rids, metas, [records.pack(m) for m in metas])
                cat.bump(coll)
            return len(rids)

        return self._write(apply)

    def update(self, rows: RowBatch) -> None:
        """Replace the fields ``rows`` gives of existing rows; ``IdNotFound`` if one is
        missing (and nothing changes)."""
        if not len(rows):
            return

        def apply(cat: Catalog, pub: _Publication) -> None:
            self._reader.require(cat)
            found = cat.locate(self._record.id, rows.ids)
            missing = [i for i in rows.ids if i not in found]
            if missing:
                raise IdNotFound(
                    f"update: {len(missing)} ids do not exist in {self._record.name!r}: "
                    f"{missing[:5]}"
                )
            self._change(cat, pub, [found[i] for i in rows.ids], rows)

        self._write(apply)

    def delete(self, ids: list[str] | None, where: dict | None) -> int:
        """Delete rows by id, by filter, or both (rows matching both); return how many."""
        coll = self._record.id
        sql, params = compile_filters(coll, where)

        def apply(cat: Catalog, pub: _Publication) -> int:
            self._reader.require(cat)
            if ids is not None:
                located = list(cat.locate(coll, ids).values())
                if where is not None:
                    keep = {loc.rid for loc in cat.filtered(coll, sql, params)}
                    located = [loc for loc in located if loc.rid in keep]
            else:
                located = cat.filtered(coll, sql, params)
            self._remove(cat, located)
            return len(located)

        return self._write(apply)

    def replace_where(self, rows: RowBatch | None, stale: dict) -> int:
        """Upsert ``rows`` and delete the rows matching ``stale`` that remain, in one
        transaction (ingest replaces a changed file's rows so: a kill leaves its old rows or
        its new ones, never a mix and never neither). Returns how many were deleted."""
        coll = self._record.id
        sql, params = compile_filters(coll, stale)

        def apply(cat: Catalog, pub: _Publication) -> int:
            self._reader.require(cat)
            if rows is not None and len(rows):
                self._insert(cat, pub, rows, replace=True)
            old = cat.filtered(coll, sql, params)
            self._remove(cat, old)
            return len(old)

        return self._write(apply)

    def adopt(self, staged: Sequence[StagedPartition]) -> int:
        """Publish staged partitions (storage/staging.py) in one transaction: their segment
        files are linked into the collection folder as they are (no vector is rewritten),
        their rows inserted under the row ids the segments hold, their documents indexed
        and their embeddings cached. Partitions adopted before are skipped, so a retried
        one is published once. Rows are checked as ``add`` checks them; an id that exists
        raises ``DuplicateIdError`` (nothing adopted). Returns how many rows were added."""
        parts = []
        for part in staged:
            n = len(part)
            ids = inputs.ids(part.ids) if n else []
            docs = inputs.documents(part.documents, n)
            metas = inputs.metadata([records.unpack(b) for b in part.packed], n)
            packed = [records.pack(m) for m in metas]
            counts = [self._reader.analyzer.counts(d) for d in docs]
            parts.append((part, RowBatch(ids, None, docs, metas, packed, counts)))
        key = self._embedder.spec.cache_key() if self._embedder.spec is not None else None
        coll = self._record.id

        def apply(cat: Catalog, pub: _Publication) -> int:
            self._reader.require(cat)
            try:
                model = self._store.model(cat, self._record)
            except SnapshotRace:  # nothing unlinks files while this writer holds the lock
                raise self._reader.vanished() from None
            graph = model if graphs.is_graph(model) else None
            done = cat.adopted([part.token for part, _ in parts])
            added = 0
            for part, rows in parts:
                if part.token in done or not len(rows):
                    continue
                done.add(part.token)
                seg = pub.adopt(part.path, part.segment.info)
                if graph is not None:  # an HNSW collection: the segment gets its graph
                    pub.graph(seg, part.segment.vectors, part.segment.norms, graph)
                rids = range(part.rid_start, part.rid_start + len(rows))
                try:
                    cat.insert_rows(coll, rids, rows, seg, range(len(rows)))
                except sqlite3.IntegrityError:
                    existing = cat.locate(coll, rows.ids)
                    dup = [i for i in rows.ids if i in existing] or rows.ids
                    raise DuplicateIdError(
                        f"ingest: {len(dup)} ids already exist in {self._record.name!r} or "
                        f"repeat in the input: {dup[:5]}; nothing was added"
                    ) from None
                if key is not None:
                    vecs = part.segment.vectors
                    cat.cache_embeddings(
                        key,
                        (
                            (text_hash(d), vecs[j].tobytes())
                            for j, d in enumerate(rows.documents)
                            if d is not None
                        ),
                    )
                added += len(rows)
            cat.record_adopted([part.token for part, _ in parts])
            if added:
                cat.bump(coll)
            return added

        return self._write(apply)

    def compact(self) -> None:
        """Seal pending vectors and rewrite every segment into one, dropping deleted vectors,
        deleted documents' postings and cached embeddings no live row has."""
        start = time.perf_counter()
        with self._store.writing() as cat:
            with cat.read():
                self._reader.require(cat)
            self._seal(cat, force=True)
            with cat.read():
                segments = cat.segments(self._record.id)
                dead = cat.dead_counts(self._record.id)
            if len(segments) > 1 or dead:
                self._rewrite(cat, [r.id for r in segments])
            with cat.write():
                cat.prune_terms(self._record.id)
                cat.prune_embeddings(cache_key)  # texts no live row of any collection has
            cat.checkpoint(truncate=True)  # the WAL's copies of deleted rows go too
        log.info(
            "compacted %r (%d segments, %d deleted vectors dropped) in %.3f s",
            self._record.name,
            len(segments),
            sum(dead.values()),
            time.perf_counter() - start,
        )

    def set_index(self, spec: specs.Spec) -> None:
        """Replace the index spec, dropping any trained index, then train if due."""
        with self._store.writing() as cat:
            # fully synced: files are unlinked after this commit, which a power loss must
            # never undo while the unlinks survive it
            intent = Intent(self._store.path, cat)  # unlinks the old files after the commit
            with cat.fully_synced(), intent.transaction():
                config = self._reader.config(cat)
                cat.set_config(self._record.id, config.with_index(spec).to_json())
                old = cat.drop_index(self._record.id)
                cat.bump(self._record.id)
                intent.retiring(self._store.collection_dir(self._record), old)
            self._store.forget_files(self._record, old)
            self._index_upkeep(cat)

    def install_model(self, spec: specs.Spec, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Make ``spec`` the index spec and an ANN model trained elsewhere (``ivf.train``'s
        arrays and record) its model, rewriting every segment under it in one transaction,
        as training here would. A model whose record says ``shared`` is never retrained by
        upkeep (sharded collections install one model in every shard)."""
        with self._store.writing() as cat:
            with cat.write():
                self._reader.require(cat)
                config = self._reader.config(cat)
                cat.set_config(self._record.id, config.with_index(spec).to_json())
                cat.bump(self._record.id)
            self._seal(cat, force=True)
            with cat.read():
                seg_ids = [r.id for r in cat.segments(self._record.id)]
            self._rewrite(cat, seg_ids, model=(arrays, meta))

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def _publishing(self, cat: Catalog) -> Iterator[_Publication]:
        """A write transaction that may publish new segment files and retire old ones.

        Files are written (possibly in a background thread, overlapping the catalog work)
        and fsynced before the transaction registers them and commits; an intent record
        (storage/intents.py) names them before they are written. If the transaction does
        not commit, they are removed, unless an I/O error makes the outcome uncertain: then
        the next open's cleanup decides, by the intent record and its token in the catalog.
        """
        intent = Intent(self._store.path, cat)
        directory = self._store.collection_dir(self._record)
        pub = _Publication(cat, self._record.id, directory, intent, self._vectors)
        try:
            with cat.write():
                yield pub
                pub.finish()
                intent.seal()
        except StoreIOError as exc:
            pub.settle()
            if not isinstance(exc, DiskFullError):
                raise  # the outcome is uncertain: the next open's cleanup decides
            intent.abandoned()  # nothing committed: give the space back at once
            raise
        except BaseException:
            pub.settle()
            intent.abandoned()
            raise
        intent.committed()

    def _write(self, apply: Callable[[Catalog, _Publication], Any]) -> Any:
        """Run ``apply`` in one write transaction, then seal and merge if due."""
        with self._store.writing() as cat:
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
            self._index_upkeep(cat)
        except (VecstoreError, ValueError, MemoryError) as exc:
            if isinstance(exc, StoreIOError):
                self._store.mark_broken(exc)
            warnings.warn(
                f"collection {self._record.name!r}: the write succeeded, but tidying segments "
                f"after it failed: {exc}",
                RuntimeWarning,
                stacklevel=5,
            )

    # -- rows ---------------------------------------------------------------------------

    def _insert(self, cat: Catalog, pub: _Publication, rows: RowBatch, *, replace: bool) -> None:
        self._reader.require(cat)
        coll = self._record.id
        changed = False
        if replace:
            found = cat.locate(coll, rows.ids)
            if found:
                old = [j for j, i in enumerate(rows.ids) if i in found]
                self._change(cat, pub, [found[rows.ids[j]] for j in old], rows.take(old))
                # the replaced rows may go into a segment this write adds, which the graph
                # of _first_graph would not cover: upkeep publishes the index after it
                changed = True
                new = [j for j, i in enumerate(rows.ids) if i not in found]
                if not new:
                    return
                rows = rows.take(new)
        start = cat.next_rid()
        rids = range(start, start + len(rows))
        first = None if changed else self._first_graph(cat, pub, rows.ids)
        seg, positions = self._place(cat, pub, rids, rows.vectors, graph=first)
        try:
            cat.insert_rows(coll, rids, rows, seg, positions)
        except sqlite3.IntegrityError:
            # The unique index on (collection, id) is the duplicate check for add().
            existing = cat.locate(coll, rows.ids)  # once: a lookup per id made this quadratic
            raise self._duplicates(rows.ids, existing) from None
        cat.bump(coll)

    def _duplicates(self, ids: Sequence[str], existing: Container[str]) -> DuplicateIdError:
        dup = [i for i in ids if i in existing]
        return DuplicateIdError(
            f"add: {len(dup)} ids already exist in {self._record.name!r}: {dup[:5]}; use "
            "upsert() to replace them"
        )

    def _change(
        self, cat: Catalog, pub: _Publication, located: list[Location], rows: RowBatch
    ) -> None:
        """Replace the fields ``rows`` gives (None: leave as is) of the located rows."""
        rids = [loc.rid for loc in located]
        if rows.vectors is not None:
            cat.release_vectors(located)
            seg, positions = self._place(cat, pub, rids, rows.vectors)
            cat.set_location(rids, seg, positions)
        if rows.documents is not None:
            cat.set_documents(self._record.id, rids, rows.documents, rows.counts)
        if rows.metadata is not None:
            cat.set_metadata(self._record.id, rids, rows.metadata, rows.packed)
        cat.bump(self._record.id)

    def _remove(self, cat: Catalog, located: list[Location]) -> None:
        if located:
            cat.release_vectors(located)
            cat.delete_rows(self._record.id, [loc.rid for loc in located])
            cat.bump(self._record.id)

    # -- segments -----------------------------------------------------------------------

    def _seal_rows(self) -> int:
        # Cap pending bytes per collection at about 8 MiB whatever the dimension.
        return max(1, min(self._store.seal_rows, (8 << 20) // (4 * self._record.dim)))

    def _place(
        self,
        cat: Catalog,
        pub: _Publication,
        rids: Sequence[int],
        x: np.ndarray,
        *,
        graph: graphs.GraphModel | None = None,
    ) -> tuple[int | None, Sequence[int] | None]:
        """Store vectors for rows ``rids``: a new segment if large, else the pending table.
        Returns the segment and each row's position in it (None, None if pending). ``graph``:
        an HNSW model this write publishes (``_first_graph``), which the segment is built
        under."""
        if len(rids) >= self._seal_rows():
            rids = np.asarray(rids, dtype=np.int64)
            return self._new_segment(cat, pub, rids, x, background=True, graph=graph)
        cat.insert_pending(self._record.id, rids, (row.tobytes() for row in x))
        return None, None

    def _first_graph(
        self, cat: Catalog, pub: _Publication, ids: Sequence[str]
    ) -> graphs.GraphModel | None:
        """The HNSW model to publish with a write of the new rows ``ids``, when that write
        makes the first segment of an HNSW collection without a model and brings it to
        ``min_rows``; else None. Upkeep would build the same graph after the write commits,
        in a second transaction and after the rows' catalog work; published with the write,
        the segment's graph is built in the background while the rows are inserted (one
        core runs the catalog work, the build has the rest), and the write commits once.

        Rows already waiting in the pending table may hold some of ``ids``: those are looked
        up first, so that such an add fails at once, not after the build it would start
        (which cannot be stopped: 30 s at 116k x 384)."""
        count = len(ids)
        if count < self._seal_rows():
            return None  # the rows wait in the pending table: no segment to build on
        coll = self._record.id
        spec = self._reader.config(cat).index
        if not isinstance(spec, specs.HNSW):
            return None
        nrows = cat.count(coll, "1", []) + count
        if nrows < specs.min_rows(spec) or cat.segments(coll):
            return None  # not due yet, or upkeep builds every segment's graph at once
        if cat.index_files(coll)[0] is not None:
            return None
        if nrows > count and (existing := cat.locate(coll, ids)):
            raise self._duplicates(ids, existing)
        arrays, meta = graphs.model_file(spec, self._record.metric, nrows)
        name = pub.model(arrays, meta)
        return graphs.GraphModel.from_file(name, meta, arrays)

    def _new_segment(
        self,
        cat: Catalog,
        pub: _Publication,
        rids: np.ndarray,
        x: np.ndarray,
        *,
        background=False,
        graph: graphs.GraphModel | None = None,
    ) -> tuple[int, Sequence[int]]:
        """Write rows into a new segment: in list order, with their list file, when the
        collection has an ANN model (so new rows are indexed at once); with its graph under
        ``graph`` (an HNSW model this transaction publishes) when given."""
        from .kernels.exact import row_norms

        norms = row_norms(x)
        if graph is not None:
            model = graph
        else:
            try:
                model = self._store.model(cat, self._record)
            except SnapshotRace:  # nothing unlinks files while this writer holds the lock
                raise self._reader.vanished() from None
        if model is None:
            return pub.segment([x], norms, rids, background=background), range(len(rids))
        if graphs.is_graph(model):
            # In the background only for the model this write publishes (``_first_graph``:
            # its build's threads overlap the rows' catalog work, and no other kernel of the
            # write runs meanwhile); any other graph is built in this thread, so that two
            # builds (an upsert's replaced and new rows), or a build and ``row_norms``, never
            # launch parallel kernels at once, which aborts the process under Numba's
            # workqueue threading layer.
            ahead = background and graph is not None
            seg = pub.segment([x], norms, rids, background=ahead, graph=model)
            return seg, range(len(rids))
        listed = upkeep.list_new_rows(model, x, norms)
        order = listed.order
        positions = np.empty(len(order), dtype=np.int64)
        positions[order] = np.arange(len(order))
        seg = pub.segment(
            [x[order]],
            norms[order],
            rids[order],
            background=background,
            lists=(model.file, listed.offsets, listed.codes[order], listed.err),
        )
        return seg, positions

    def _seal(self, cat: Catalog, *, force: bool) -> None:
        """Move pending vectors into a new segment once enough have accumulated."""
        coll = self._record.id
        with cat.read():
            count = cat.pending_count(coll)
        if count == 0 or (count < self._seal_rows() and not force):
            return
        start = time.perf_counter()
        with self._publishing(cat) as pub:
            pending = cat.pending(coll)
            blobs = cat.pending_vectors([p for p, _ in pending])
            x = np.frombuffer(b"".join(blobs[p] for p, _ in pending), dtype="<f4")
            x = x.reshape(len(pending), self._record.dim)
            rids = [r for _, r in pending]
            seg, positions = self._new_segment(cat, pub, np.asarray(rids, dtype=np.int64), x)
            cat.set_location(rids, seg, positions)
            cat.clear_pending([p for p, _ in pending])
            cat.bump(coll)
        log.info(
            "sealed %d pending vectors of %r into a segment in %.3f s",
            len(rids),
            self._record.name,
            time.perf_counter() - start,
        )

    def _merge(self, cat: Catalog) -> None:
        """Merge segments of one size tier once ``MERGE_FACTOR`` of them exist, and rewrite
        segments that are mostly deleted: the segment count stays logarithmic in the rows."""
        base = self._seal_rows()
        for _ in range(64):
            with cat.read():
                segments = cat.segments(self._record.id)
                dead = cat.dead_counts(self._record.id)
            tiers: dict[int, list[int]] = {}
            for rec in segments:
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
            start = time.perf_counter()
            self._rewrite(cat, due)
            log.info(
                "merged %d segments of %r into one in %.3f s",
                len(due),
                self._record.name,
                time.perf_counter() - start,
            )

    def _rewrite(
        self, cat: Catalog, seg_ids: list[int], *, model: tuple[dict, dict] | None = None
    ) -> None:
        """Replace segments by one holding only their live rows, in one transaction; the old
        files are unlinked after the commit (readers that mapped them keep their view).

        Under an ANN model the new segment is written in list order with its list file,
        reusing the old segments' lists and codes where they have them. ``model`` (arrays and
        record of a newly trained model) replaces the current one: then ``seg_ids`` must be
        every segment, and all rows are encoded afresh.
        """
        coll = self._record.id
        with cat.fully_synced(), self._publishing(cat) as pub:
            snap = self._reader.snapshot(cat)
            parts = {p.seg: p for p in snap.parts}
            old_files = [r.info.file for r in cat.segments(coll) if r.id in set(seg_ids)]
            if model is not None:
                old_files += cat.drop_index(coll)
                name = pub.model(*model)
                current = ivf.Model.from_file(name, model[1], model[0])
            else:
                current = snap.model
            live = cat.live_in_segments(coll, seg_ids)
            rids, segs, pos = live[:, 0].copy(), live[:, 1].copy(), live[:, 2].copy()
            del live
            if len(rids):
                norms = np.empty(len(rids), dtype=np.float32)
                for s in np.unique(segs):
                    sel = segs == s
                    norms[sel] = parts[int(s)].norms[pos[sel]]
                lists = graph = None
                if graphs.is_graph(current):
                    graph = current  # rows stay in segment order; the new segment gets a graph
                elif current is not None:
                    reuse = None if model else cat.index_files(coll)[1]
                    listed = upkeep.list_stored_rows(current, parts, segs, pos, norms, reuse)
                    order = listed.order
                    rids, segs, pos, norms = rids[order], segs[order], pos[order], norms[order]
                    lists = (current.file, listed.offsets, listed.codes[order], listed.err)
                blocks = _gather(parts, segs, pos, self._record.dim)
                seg = pub.segment(blocks, norms, rids, lists=lists, graph=graph)
                cat.set_location(rids, seg, range(len(rids)))
            old_files += cat.drop_segments(seg_ids)
            cat.bump(coll)
            pub.retire(old_files)  # unlinked once the transaction commits
        self._store.forget_files(self._record, old_files)

    # -- the ANN index ------------------------------------------------------------------

    def _index_upkeep(self, cat: Catalog) -> None:
        """Train the ANN index when ``index.upkeep`` says it is due."""
        with cat.read():
            spec = self._reader.config(cat).index
            if isinstance(spec, specs.Flat):
                return
            nrows = cat.count(self._record.id, "1", [])
            model, lists = cat.index_files(self._record.id)
        if isinstance(spec, specs.HNSW):
            if model is None and nrows >= specs.min_rows(spec):
                start = time.perf_counter()
                self._index_graphs(cat, spec, nrows)
                log.info(
                    "built the HNSW graphs of %r over %d rows in %.2f s",
                    self._record.name,
                    nrows,
                    time.perf_counter() - start,
                )
            return
        if model is not None and self._shared_model(cat):
            return  # installed for a sharded collection: retrained by it, for every shard
        if upkeep.training_due(spec, nrows, model, lists):
            start = time.perf_counter()
            self._train(cat, spec, nrows)
            log.info(
                "%s the %s index of %r over %d rows in %.2f s",
                "retrained" if model is not None else "trained",
                spec.to_json()["kind"],
                self._record.name,
                nrows,
                time.perf_counter() - start,
            )

    def _shared_model(self, cat: Catalog) -> bool:
        try:
            model = self._store.model(cat, self._record)
        except SnapshotRace:  # nothing unlinks files while this writer holds the lock
            raise self._reader.vanished() from None
        return model is not None and model.shared

    def _train(self, cat: Catalog, spec: specs.Spec, nrows: int) -> None:
        """Train a model on a uniform sample of the live rows, then rewrite every segment
        under it in one transaction. Holds the writer lock, not a catalog transaction, while
        training: readers go on searching the old index (or exactly) meanwhile."""
        self._seal(cat, force=True)
        with cat.read():
            snap = self._reader.snapshot(cat)
            seg_ids = [r.id for r in cat.segments(self._record.id)]
            live = cat.live_in_segments(self._record.id, seg_ids)
        sample = upkeep.training_sample(spec, nrows, {p.seg: p for p in snap.parts}, live)
        del live
        arrays, meta = ivf.train(sample, self._record.metric, spec, nrows)
        self._rewrite(cat, seg_ids, model=(arrays, meta))

    def _index_graphs(self, cat: Catalog, spec: specs.HNSW, nrows: int) -> None:
        """Publish an HNSW model file and a graph for every segment, in one transaction.
        Segments written later get their graph as they are written (sealed or merged);
        pending rows stay pending, scanned exactly."""
        arrays, meta = graphs.model_file(spec, self._record.metric, nrows)
        with self._publishing(cat) as pub:
            snap = self._reader.snapshot(cat)
            name = pub.model(arrays, meta)
            model = graphs.GraphModel.from_file(name, meta, arrays)
            for part in snap.parts:
                if part.seg is not None:
                    pub.graph(part.seg, part.vectors, part.norms, model)
            cat.bump(self._record.id)


def _gather(parts: dict, segs: np.ndarray, pos: np.ndarray, dim: int) -> Iterator[np.ndarray]:
    """The vectors of rows ``(segs, pos)``, ``WRITE_BLOCK_ROWS`` at a time."""
    for i in range(0, len(segs), WRITE_BLOCK_ROWS):
        s_, p_ = segs[i : i + WRITE_BLOCK_ROWS], pos[i : i + WRITE_BLOCK_ROWS]
        out = np.empty((len(p_), dim), dtype=np.float32)
        for s in np.unique(s_):
            sel = s_ == s
            out[sel] = parts[int(s)].vectors[p_[sel]]
        yield out


class _Publication:
    """The segment files one write transaction publishes, and those it retires.

    ``segment`` reserves the segment's catalog id at once (rows can point at it), names the
    file in the write's intent record and writes it, in a background thread if asked;
    ``finish`` waits for every file to be durable and registers them, just before the
    transaction commits. ``retire`` names files to unlink once it has committed.
    """

    def __init__(
        self, cat: Catalog, coll: int, directory: Path, intent: Intent, vectors: str = "float32"
    ):
        self._cat = cat
        self._vectors = vectors
        self._coll = coll
        self._directory = directory
        self._intent = intent
        self._next_id: int | None = None
        self._jobs: list[tuple[int, Future]] = []
        self._models: list[IndexFileRecord] = []
        self._graphs: list[tuple[int, IndexFileRecord]] = []

    def retire(self, names: Iterable[str]) -> None:
        """Files of the collection this transaction unpublishes: unlinked after the commit."""
        self._intent.retiring(self._directory, names)

    def model(self, arrays: dict[str, np.ndarray], meta: dict) -> str:
        """Write an ANN model file now; it is registered with the segments."""
        self._directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}{INDEX_SUFFIX}"
        self._intent.publishing(self._directory, [name])
        info = write_arrays(self._directory, name, arrays, meta)
        self._models.append(IndexFileRecord(info, meta["train_rows"], meta["train_err"]))
        return name

    def segment(
        self,
        blocks: Iterable[np.ndarray],
        norms: np.ndarray,
        rids: np.ndarray,
        *,
        background: bool = False,
        lists: tuple[str, np.ndarray, np.ndarray, float] | None = None,
        graph: graphs.GraphModel | None = None,
    ) -> int:
        """Write a segment file, and with ``lists`` = (model file, offsets, codes, err) the
        list file of its rows (which must then be in list order), or with ``graph`` (an HNSW
        model) the graph file of its rows, built over the written, mapped segment; in a
        collection with compressed vectors, its code file too."""
        if self._next_id is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._next_id = self._cat.next_segment_id()
        seg = self._next_id
        self._next_id += 1
        name = uuid.uuid4().hex
        indexed = lists is not None or graph is not None
        coded = self._vectors != "float32"
        self._intent.publishing(
            self._directory,
            [f"{name}{SUFFIX}"]
            + [f"{name}{INDEX_SUFFIX}"] * indexed
            + [compressed.code_file_name(name)] * coded,
        )
        job: Future = Future()
        args = (
            self._directory,
            name,
            blocks,
            norms,
            rids,
            lists if graph is None else graph,
            self._vectors,
        )
        if background:
            threading.Thread(target=_run, args=(job, _write_files, args), daemon=True).start()
        else:
            _run(job, _write_files, args)
        self._jobs.append((seg, job))
        return seg

    def adopt(self, source: Path, info: SegmentInfo) -> int:
        """Publish a segment file written elsewhere (a staged partition), linked under a
        new name; its catalog id is reserved at once, as ``segment`` does."""
        if self._next_id is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._next_id = self._cat.next_segment_id()
        seg = self._next_id
        self._next_id += 1
        name = uuid.uuid4().hex
        coded = self._vectors != "float32"
        self._intent.publishing(
            self._directory, [f"{name}{SUFFIX}"] + [compressed.code_file_name(name)] * coded
        )
        link_into(source, self._directory, f"{name}{SUFFIX}")
        linked = SegmentInfo(f"{name}{SUFFIX}", info.count, info.dim, info.size, info.crc)
        crec = None
        if coded:  # the codes are derived here, from the linked (already checked) vectors
            code_file = compressed.code_file_name(name)
            crec = compressed.encode_segment(self._directory, code_file, linked, self._vectors)
        job: Future = Future()
        job.set_result((linked, None, crec))
        self._jobs.append((seg, job))
        return seg

    def graph(
        self, seg: int, vectors: np.ndarray, norms: np.ndarray, model: graphs.GraphModel
    ) -> None:
        """Build and write the graph file of the published segment ``seg``; it is registered
        with the rest."""
        name = f"{uuid.uuid4().hex}{INDEX_SUFFIX}"
        self._intent.publishing(self._directory, [name])
        arrays, meta = graphs.build(model, vectors, norms)
        meta["model"] = model.file
        info = write_arrays(self._directory, name, arrays, meta)
        self._graphs.append((seg, IndexFileRecord(info, len(vectors), 0.0)))

    def finish(self) -> None:
        for rec in self._models:
            self._cat.insert_index_file(self._coll, None, rec)
        for seg, rec in self._graphs:
            self._cat.insert_index_file(self._coll, seg, rec)
        for seg, job in self._jobs:
            info, lrec, crec = job.result()
            self._cat.insert_segment(self._coll, info, seg)
            if lrec is not None:
                self._cat.insert_index_file(self._coll, seg, lrec)
            if crec is not None:
                self._cat.insert_index_file(self._coll, seg, crec)

    def settle(self) -> None:
        """Wait for background writes to end, whatever their outcome. A KeyboardInterrupt
        ends the wait (an HNSW build can take a minute): the write's intent record then stays
        for the next open to clear, as after a kill."""
        for _, job in self._jobs:
            job.exception()


def _write_files(directory, name, blocks, norms, rids, lists, vectors="float32"):
    # not with codes: encoding them runs parallel kernels, and two threads launching
    # parallel kernels at once abort the process under Numba's workqueue threading layer
    in_memory = isinstance(blocks, list) and len(blocks) == 1 and vectors == "float32"
    if isinstance(lists, graphs.GraphModel) and in_memory:
        return _write_with_graph(directory, name, blocks[0], norms, rids, lists, vectors)
    info = write_segment(directory, f"{name}{SUFFIX}", blocks, norms, rids)
    crec = None
    if vectors != "float32":
        crec = compressed.encode_segment(directory, compressed.code_file_name(name), info, vectors)
    if lists is None:
        return info, None, crec
    if isinstance(lists, graphs.GraphModel):
        seg = open_segment(directory / info.file, info, verify=False)  # just written
        arrays, meta = graphs.build(lists, seg.vectors, seg.norms)
        meta.update(model=lists.file, segment=info.file)
        ginfo = write_arrays(directory, f"{name}{INDEX_SUFFIX}", arrays, meta)
        return info, IndexFileRecord(ginfo, len(rids), 0.0), crec
    model_file, offsets, codes, err = lists
    meta = {"model": model_file, "segment": info.file}
    linfo = write_arrays(
        directory, f"{name}{INDEX_SUFFIX}", {"offsets": offsets, "codes": codes}, meta
    )
    return info, IndexFileRecord(linfo, len(rids), err), crec


def _write_with_graph(directory, name, x, norms, rids, model, vectors):
    """The files of a segment of rows held in memory (an add's, a seal's) and its graph:
    the graph is built over ``x`` while another thread writes the segment file, whose fsync
    alone took 0.2-2 s for 116k x 384 rows on this shared disk, and its file is written once
    both are done. ``x`` holds the same float32 values as the file (so the same graph as one
    built over the mapped segment)."""
    job: Future = Future()
    args = (directory, name, [x], norms, rids, None, vectors)
    threading.Thread(target=_run, args=(job, _write_files, args), daemon=True).start()
    try:
        arrays, meta = graphs.build(model, x, norms)
    finally:
        wait_through_interrupts(job)  # the segment's write has ended, whatever the build's outcome
    info, _, crec = job.result()
    meta.update(model=model.file, segment=info.file)
    ginfo = write_arrays(directory, f"{name}{INDEX_SUFFIX}", arrays, meta)
    return info, IndexFileRecord(ginfo, len(rids), 0.0), crec


def wait_through_interrupts(job: Future) -> None:
    """Wait for ``job`` to end, whatever its outcome; a KeyboardInterrupt meanwhile is raised
    once it has. ``_write_with_graph`` waits so for the segment file a thread writes beside
    the build (a second or two): an interrupt that escaped would reach the write's clean-up
    (``Intent.abandoned``), which would unlink the file's name while the thread still wrote
    it, and the file would stay behind, outside any record."""
    interrupted = None
    while True:
        try:
            job.exception()
            break
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def _run(job: Future, fn: Callable, args: tuple) -> None:
    try:
        job.set_result(fn(*args))
    except BaseException as exc:
        job.set_exception(exc)
