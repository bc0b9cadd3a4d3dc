"""How a collection's writes reach disk: rows in one catalog transaction, vectors in new
segment files published by it, then sealing and merging of segments.

A mixin of ``Collection``; it composes storage and kernels and must not import
``collection`` or ``database``.
"""

from __future__ import annotations

import json
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
from .errors import DiskFullError, DuplicateIdError, InvalidInput, StoreIOError, VecstoreError
from .storage import records
from .storage.annfiles import IndexFileRecord
from .storage.arrays import SUFFIX as INDEX_SUFFIX
from .storage.arrays import write_arrays
from .storage.catalog import Catalog
from .storage.intents import Intent
from .storage.segments import SUFFIX, write_segment

if TYPE_CHECKING:
    from .database import Database
    from .storage.catalog import CollectionRecord

MERGE_FACTOR = 4  # segments of one size tier merged together; bounds the segment count by log
WRITE_BLOCK_ROWS = 4096  # rows gathered at a time when a merge streams a new segment
RETRAIN_GROWTH = 4  # retrain an ANN index when the rows have grown this much since training
RETRAIN_DRIFT = 1.5  # ... or when new rows sit this much farther from their centroids


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
        """A write transaction that may publish new segment files and retire old ones.

        Files are written (possibly in a background thread, overlapping the catalog work)
        and fsynced before the transaction registers them and commits; an intent record
        (storage/intents.py) names them before they are written. If the transaction does
        not commit, they are removed, unless an I/O error makes the outcome uncertain: then
        the next open's cleanup decides, by the intent record and its token in the catalog.
        """
        intent = Intent(self._db.path, cat)
        pub = _Publication(cat, self._record.id, self._db._collection_dir(self._record), intent)
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
            self._index_upkeep(cat)
        except (VecstoreError, ValueError, MemoryError) as exc:
            if isinstance(exc, StoreIOError) and not isinstance(exc, DiskFullError):
                self._db._broken = str(exc)
            warnings.warn(
                f"collection {self.name!r}: the write succeeded, but tidying segments after "
                f"it failed: {exc}",
                RuntimeWarning,
                stacklevel=4,
            )

    def _place(
        self, cat: Catalog, pub: _Publication, rids: Sequence[int], x: np.ndarray
    ) -> tuple[int | None, Sequence[int] | None]:
        """Store vectors for rows ``rids``: a new segment if large, else the pending table.
        Returns the segment and each row's position in it (None, None if pending)."""
        if len(rids) >= self._seal_rows():
            return self._new_segment(cat, pub, np.asarray(rids, dtype=np.int64), x, background=True)
        cat.insert_pending(self._record.id, rids, (row.tobytes() for row in x))
        return None, None

    def _new_segment(
        self, cat: Catalog, pub: _Publication, rids: np.ndarray, x: np.ndarray, *, background=False
    ) -> tuple[int, Sequence[int]]:
        """Write rows into a new segment: in list order, with their list file, when the
        collection has an ANN model (so new rows are indexed at once)."""
        from .index import ivf
        from .kernels.exact import row_norms

        norms = row_norms(x)
        try:
            model = self._model(cat)
        except FileNotFoundError:  # nothing unlinks files while this writer holds the lock
            raise self._vanished() from None
        if model is None:
            return pub.segment([x], norms, rids, background=background), range(len(rids))
        lists, codes, err = ivf.encode(model, x, norms)
        order, offsets = ivf.list_order(lists, model.nlist)
        positions = np.empty(len(order), dtype=np.int64)
        positions[order] = np.arange(len(order))
        seg = pub.segment(
            [x[order]],
            norms[order],
            rids[order],
            background=background,
            lists=(model.file, offsets, codes[order], err),
        )
        return seg, positions

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
            existing = cat.locate(coll, ids)  # once: a lookup per id made this quadratic
            dup = [i for i in ids if i in existing]
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
            seg, positions = self._new_segment(cat, pub, np.asarray(rids, dtype=np.int64), x)
            cat.set_location(rids, seg, positions)
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
        from .index import ivf

        coll = self._record.id
        with cat.fully_synced(), self._publishing(cat) as pub:
            snap = self._snapshot(cat)
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
                lists = None
                if current is not None:
                    order, offsets, codes, err = self._list_rows(
                        current,
                        parts,
                        segs,
                        pos,
                        norms,
                        None if model else cat.index_files(coll)[1],
                    )
                    rids, segs, pos, norms = rids[order], segs[order], pos[order], norms[order]
                    lists = (current.file, offsets, codes[order], err)

                def blocks() -> Iterator[np.ndarray]:
                    for i in range(0, len(rids), WRITE_BLOCK_ROWS):
                        s_, p_ = segs[i : i + WRITE_BLOCK_ROWS], pos[i : i + WRITE_BLOCK_ROWS]
                        out = np.empty((len(p_), self.dim), dtype=np.float32)
                        for s in np.unique(s_):
                            sel = s_ == s
                            out[sel] = parts[int(s)].vectors[p_[sel]]
                        yield out

                seg = pub.segment(blocks(), norms, rids, lists=lists)
                cat.set_location(rids, seg, range(len(rids)))
            old_files += cat.drop_segments(seg_ids)
            cat.bump(coll)
            pub.retire(old_files)  # unlinked once the transaction commits
        cache = self._db._segments.get(self._record.dir, {})
        for name in old_files:
            cache.pop(name, None)

    def _list_rows(self, model, parts, segs, pos, norms, reuse: dict | None):
        """List order, CSR offsets, codes (in input order) and summed residual of the rows
        ``(segs, pos)``: taken from their segments' list files (``reuse``: records by
        segment) when those were written under ``model``, else encoded from the vectors, a
        block at a time."""
        from .index import ivf

        n = len(segs)
        lists = np.empty(n, dtype=np.int64)
        codes = np.empty((n, model.codebooks.shape[0]), dtype=np.uint8)
        err = 0.0
        for s in np.unique(segs):
            sel = np.flatnonzero(segs == s)
            part = parts[int(s)]
            rec = (reuse or {}).get(int(s))
            if rec is not None and part.offsets is not None:
                p = pos[sel]
                lists[sel] = np.searchsorted(part.offsets, p, side="right") - 1
                codes[sel] = part.codes[p]
                err += rec.err * len(sel) / max(rec.nrows, 1)
                continue
            for i in range(0, len(sel), 65_536):
                chunk = sel[i : i + 65_536]
                x = np.ascontiguousarray(part.vectors[pos[chunk]])
                lists[chunk], codes[chunk], e = ivf.encode(model, x, norms[chunk])
                err += e
        order, offsets = ivf.list_order(lists, model.nlist)
        return order, offsets, codes, err

    def _index_spec(self, cat: Catalog):
        from .index import specs

        record = cat.collection_by_id(self._record.id)
        return specs.from_json(json.loads(record.config).get("index")) if record else None

    def _index_upkeep(self, cat: Catalog) -> None:
        """Train the ANN index once the collection reaches its spec's ``min_rows``, and
        retrain it when the rows have grown ``RETRAIN_GROWTH``-fold since training or their
        coarse residuals have drifted ``RETRAIN_DRIFT``-fold above the training sample's."""
        from .index import specs

        with cat.read():
            spec = self._index_spec(cat)
            threshold = specs.min_rows(spec) if spec is not None else None
            if threshold is None:
                return
            nrows = cat.count(self._record.id, "1", [])
            model, lists = cat.index_files(self._record.id)
        if nrows < threshold:
            return
        if model is not None:
            grown = nrows >= RETRAIN_GROWTH * model.nrows
            indexed = sum(r.nrows for r in lists.values())
            mean_err = sum(r.err for r in lists.values()) / max(indexed, 1)
            drifted = indexed >= model.nrows // 2 and mean_err > RETRAIN_DRIFT * model.err
            if not (grown or drifted):
                return
        self._train(cat, spec, nrows)

    def _train(self, cat: Catalog, spec, nrows: int) -> None:
        """Train a model on a uniform sample of the live rows, then rewrite every segment
        under it in one transaction. Holds the writer lock, not a catalog transaction, while
        training: readers go on searching the old index (or exactly) meanwhile."""
        from .index import ivf, specs

        self._seal(cat, force=True)
        with cat.read():
            snap = self._snapshot(cat)
            seg_ids = [r.id for r in cat.segments(self._record.id)]
            live = cat.live_in_segments(self._record.id, seg_ids)
        nlist = spec.nlist or specs.default_nlist(nrows)
        want = nlist * specs.TRAIN_POINTS_PER_LIST + ivf.TUNE_QUERIES
        if isinstance(spec, specs.IVFPQ):
            want = max(want, specs.PQ_TRAIN_ROWS + ivf.TUNE_QUERIES)
        rng = np.random.default_rng(len(live))
        pick = rng.permutation(len(live))[: min(want, len(live))]
        parts = {p.seg: p for p in snap.parts}
        chosen = live[np.sort(pick)]
        del live
        sample = np.empty((len(chosen), self.dim), dtype=np.float32)
        for s in np.unique(chosen[:, 1]):
            sel = chosen[:, 1] == s
            sample[sel] = parts[int(s)].vectors[chosen[sel, 2]]
        sample = sample[rng.permutation(len(sample))]  # train() holds out its last rows
        arrays, meta = ivf.train(sample, self.metric, spec, nrows)
        self._rewrite(cat, seg_ids, model=(arrays, meta))

    def _model(self, cat: Catalog):
        """The collection's ANN model, or None (read inside the current transaction)."""
        from .index import flat

        return flat.load_model(
            cat,
            self._record.id,
            self._db._collection_dir(self._record),
            self._db._segments.setdefault(self._record.dir, {}),
        )


class _Publication:
    """The segment files one write transaction publishes, and those it retires.

    ``segment`` reserves the segment's catalog id at once (rows can point at it), names the
    file in the write's intent record and writes it, in a background thread if asked;
    ``finish`` waits for every file to be durable and registers them, just before the
    transaction commits. ``retire`` names files to unlink once it has committed.
    """

    def __init__(self, cat: Catalog, coll: int, directory: Path, intent: Intent):
        self._cat = cat
        self._coll = coll
        self._directory = directory
        self._intent = intent
        self._next_id: int | None = None
        self._jobs: list[tuple[int, Future]] = []
        self._models: list[IndexFileRecord] = []

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
    ) -> int:
        """Write a segment file, and with ``lists`` = (model file, offsets, codes, err) the
        list file of its rows (which must then be in list order)."""
        if self._next_id is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._next_id = self._cat.next_segment_id()
        seg = self._next_id
        self._next_id += 1
        name = uuid.uuid4().hex
        self._intent.publishing(
            self._directory, [f"{name}{SUFFIX}"] + [f"{name}{INDEX_SUFFIX}"] * (lists is not None)
        )
        job: Future = Future()
        args = (self._directory, name, blocks, norms, rids, lists)
        if background:
            threading.Thread(target=_run, args=(job, _write_files, args), daemon=True).start()
        else:
            _run(job, _write_files, args)
        self._jobs.append((seg, job))
        return seg

    def finish(self) -> None:
        for rec in self._models:
            self._cat.insert_index_file(self._coll, None, rec)
        for seg, job in self._jobs:
            info, lrec = job.result()
            self._cat.insert_segment(self._coll, info, seg)
            if lrec is not None:
                self._cat.insert_index_file(self._coll, seg, lrec)

    def settle(self) -> None:
        """Wait for background writes to end, whatever their outcome."""
        for _, job in self._jobs:
            job.exception()


def _write_files(directory, name, blocks, norms, rids, lists):
    info = write_segment(directory, f"{name}{SUFFIX}", blocks, norms, rids)
    if lists is None:
        return info, None
    model_file, offsets, codes, err = lists
    meta = {"model": model_file, "segment": info.file}
    linfo = write_arrays(
        directory, f"{name}{INDEX_SUFFIX}", {"offsets": offsets, "codes": codes}, meta
    )
    return info, IndexFileRecord(linfo, len(rids), err)


def _run(job: Future, fn: Callable, args: tuple) -> None:
    try:
        job.set_result(fn(*args))
    except BaseException as exc:
        job.set_exception(exc)
