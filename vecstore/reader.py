"""How a collection is read: counts, gets, vector, keyword and hybrid queries, and pages of
rows for export, each inside one catalog read transaction.

A read takes the snapshot of the catalog version its transaction sees. A compaction or retrain
that commits meanwhile may unlink a file that snapshot names; the read then starts over in a
fresh transaction (``consistent``, the only retry loop). Both halves of a hybrid query run in
one transaction over the same filter matches (``hybrid.py`` says how they are fused). Queries
are planned by ``index.plan``; filters become SQL in ``storage.filters``. Must not import
``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import fieldeval, inputs
from .config import CollectionConfig
from .errors import CollectionNotFound, CorruptStoreError, IdNotFound, InvalidInput
from .hybrid import Ranking, fuse, text_only
from .index import bm25, cold, flat, plan, quick, specs
from .index.trace import Trace, stage
from .quickfilter import CompiledFilters, NeedsCatalog
from .results import GetResult, QueryResult
from .storage import fields, records, scan
from .storage.catalog import Catalog, CollectionRecord
from .storage.filters import compile_filters
from .storage.records import Record, StoredRow
from .store import Fresh, SnapshotRace, Store

#: Fresh transactions a read tries before a vanishing file counts as damage.
SNAPSHOT_RETRIES = 5
#: Rows each half of a hybrid query contributes to the fusion (k if larger).
WINDOW = 100
#: Rows ``LiveRows.blocks`` yields at a time by default.
BLOCK_ROWS = 4096

T = TypeVar("T")


@dataclass(frozen=True)
class AnnOptions:
    """Query-time ANN parameters: None keeps the index's own."""

    nprobe: int | None = None
    refine: int | None = None
    exact: bool = False
    ef: int | None = None

    @classmethod
    def of(cls, mode: str, nprobe: Any, refine: Any, exact: Any, ef: Any = None) -> AnnOptions:
        if nprobe is None and refine is None and exact is False and ef is None:
            return INDEX_DEFAULTS  # the common case, without building an object per query
        opts = cls(
            inputs.integer("nprobe", nprobe, minimum=1, optional=True),
            inputs.integer("refine", refine, minimum=1, optional=True),
            inputs.flag("exact", exact),
            inputs.integer("ef", ef, minimum=1, optional=True),
        )
        if opts.ef is not None and opts.ef > 65536:
            raise InvalidInput(f"ef must be at most 65536; got {opts.ef}")
        if mode == "text" and opts != INDEX_DEFAULTS:
            raise InvalidInput(
                "nprobe, refine, ef and exact apply to vector and hybrid queries, not text"
            )
        return opts


INDEX_DEFAULTS = AnnOptions()

# The float32 bounds of a query's largest component (``inputs.matrix``'s rule).
_LOW, _HIGH = float(np.float32(inputs.MIN_COMPONENT)), float(np.float32(inputs.MAX_COMPONENT))
# A kept snapshot without a single-query plan (``Fresh.plan``).
_NO_PLAN = object()


@dataclass(frozen=True, eq=False)
class LiveRows:
    """The live rows of one snapshot that a filter keeps, in a fixed order (part by part),
    with their ids, readable block by block after the read transaction has ended: the
    segments stay mapped while this object lives, whatever commits meanwhile.

    ``parts`` holds per part ``(vectors, norms, positions)``, positions None for every row
    of a part without tombstones.
    """

    ids: list[str]
    rids: np.ndarray
    metric: str
    dim: int
    parts: tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], ...]

    def __len__(self) -> int:
        return len(self.rids)

    def spans(self, size: int = BLOCK_ROWS) -> list[tuple[int, int]]:
        """``(start, stop)`` row ranges of at most ``size`` rows covering every row in order,
        none crossing from one part to the next."""
        out, base = [], 0
        for vectors, _, pos in self.parts:
            n = len(vectors) if pos is None else len(pos)
            out += [(base + lo, base + min(n, lo + size)) for lo in range(0, n, size)]
            base += n
        return out

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start, vectors, norms)`` of at most ``size`` rows at a time, in row order:
        float32 ``(m, dim)`` C-contiguous (a view of a mapped segment where the rows are
        contiguous, else a gathered copy) and ``(m,)``; ``start`` is the first row's number."""
        for start, stop in self.spans(size):
            yield (start, *self.block(start, stop))

    def block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The vectors and norms of rows ``start:stop``: views of a mapped segment when they
        lie in one part without gaps, else gathered copies."""
        base = 0
        for vectors, norms, pos in self.parts:
            n = len(vectors) if pos is None else len(pos)
            if base <= start and stop <= base + n:
                lo, hi = start - base, stop - base
                if pos is None:
                    return vectors[lo:hi], norms[lo:hi]
                return vectors[pos[lo:hi]], norms[pos[lo:hi]]
            base += n
        return self.take(np.arange(start, stop))

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors float32 ``(m, dim)`` and norms ``(m,)`` of row numbers ``rows``, in
        that order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        norms = np.empty(len(rows), dtype=np.float32)
        start = 0
        for vectors, pnorms, pos in self.parts:
            n = len(vectors) if pos is None else len(pos)
            sel = np.flatnonzero((rows >= start) & (rows < start + n))
            if len(sel):
                at = rows[sel] - start
                at = at if pos is None else pos[at]
                out[sel] = vectors[at]
                norms[sel] = pnorms[at]
            start += n
        return out, norms


@dataclass(frozen=True, eq=False)
class TableRows:
    """``LiveRows`` with the documents and metadata of its rows, in its order."""

    rows: LiveRows
    documents: list[str | None]
    metadata: list[dict]


_SCALARS = (str, int, float, bool, type(None))


def _metadata(kept: dict[int, dict], rids: list[int], found: list[Record]) -> list[dict]:
    """The unpacked metadata of records ``found`` (of rows ``rids``): a fresh dict each,
    copied from ``kept`` where a row's was unpacked before (only metadata of scalar values
    is kept there, so a shallow copy shares nothing a caller could change)."""
    out = []
    for rid, rec in zip(rids, found):
        if rec[2] is None:  # a row without metadata: nothing to unpack or keep
            out.append({})
            continue
        meta = kept.get(rid)
        if meta is None:
            meta = records.unpack(rec[2])
            if meta and all(type(v) in _SCALARS for v in meta.values()):
                kept[rid] = meta
                meta = dict(meta)
        else:
            meta = dict(meta)
        out.append(meta)
    return out


class _Rows:
    """The rows of a quick query's result as the query read them (``QueryResult.of_rows``
    makes its documents and metadata from them on first access): the records, whose values
    are immutable (strings and stored bytes), so a later commit cannot change what the
    result gives, and the kept entry's unpacked metadata (``_metadata``'s ``kept``)."""

    __slots__ = ("found", "rids", "kept")

    def __init__(self, found: list[Record], rids: list[int], kept: dict[int, dict]):
        self.found = found
        self.rids = rids
        self.kept = kept

    def fill(self) -> tuple[list[str | None], list[dict]]:
        found = self.found
        return [rec[1] for rec in found], _metadata(self.kept, self.rids, found)


def _catalog(cat: Catalog | None) -> Catalog:
    """``cat``, or ``NeedsCatalog`` on the lean path (no read transaction: SQL is needed)."""
    if cat is None:
        raise NeedsCatalog
    return cat


class Reader:
    """The read side of one collection."""

    def __init__(self, store: Store, record: CollectionRecord):
        self._store = store
        self._record = record
        # fixed at creation (no later change of the configuration touches it)
        config = CollectionConfig.of(record)
        self.analyzer = config.text
        self.vectors = config.vectors
        # ``where`` filters compiled to SQL, kept by shape (``quick_filtered``)
        self._compiled = CompiledFilters(
            lambda where: compile_filters(record.id, where, None, self.analyzer.contains_terms)
        )

    @property
    def record(self) -> CollectionRecord:
        """The catalog record the collection was opened with (its config may be stale: see
        ``config``)."""
        return self._record

    # -- transactions -------------------------------------------------------------------

    def require(self, cat: Catalog) -> None:
        """Raise ``CollectionNotFound`` if the collection no longer exists."""
        if cat.version(self._record.id, self._record.dir) is None:
            raise CollectionNotFound(f"collection {self._record.name!r} was deleted")

    def vanished(self) -> CorruptStoreError:
        return CorruptStoreError(
            f"collection {self._record.name!r}: a segment file named by the catalog is missing "
            f"from {self._store.collection_dir(self._record)}"
        )

    def consistent(self, read: Callable[[Catalog], T]) -> T:
        """``read(cat)`` in a read transaction on an existing collection, started over in a
        fresh one while a concurrent commit unlinks a file its snapshot names."""
        for _ in range(SNAPSHOT_RETRIES):
            with self._store.reading() as cat:
                self.require(cat)
                try:
                    return read(cat)
                except SnapshotRace:
                    continue
        raise self.vanished()

    def snapshot(self, cat: Catalog) -> flat.Snapshot:
        return self._store.snapshot(cat, self._record)

    def config(self, cat: Catalog) -> CollectionConfig:
        """The configuration as the catalog holds it now (``create_index`` in any process
        may have changed it since this object was made)."""
        record = cat.collection_by_id(self._record.id)
        if record is None:
            raise CollectionNotFound(f"collection {self._record.name!r} was deleted")
        return CollectionConfig.of(record)

    # -- rows ---------------------------------------------------------------------------

    def count(self, where: dict | None) -> int:
        sql, params = compile_filters(self._record.id, where)
        return self.consistent(lambda cat: cat.count(self._record.id, sql, params))

    def get(
        self,
        ids: list[str] | None,
        where: dict | None,
        where_document: dict | None,
        limit: int | None,
        offset: int,
        include_vectors: bool,
    ) -> GetResult:
        coll = self._record.id
        sql, params = compile_filters(coll, where, where_document, self.analyzer.contains_terms)

        def read(cat: Catalog) -> GetResult:
            if ids is not None:
                found = cat.rows_by_id(coll, ids)
                if where is not None or where_document is not None:
                    keep = {loc.rid for loc in cat.filtered(coll, sql, params)}
                    found = {k: v for k, v in found.items() if v.rid in keep}
                rows = [found[i] for i in ids if i in found]
                rows = rows[offset:] if limit is None else rows[offset : offset + limit]
            else:
                rows = cat.rows_where(coll, sql, params, limit, offset)
            snap = self.snapshot(cat) if include_vectors else None
            return self._get_result(rows, snap)

        return self.consistent(read)

    def pages(self, cat: Catalog, size: int) -> Iterator[GetResult]:
        """Every row with its vector, ``size`` at a time in insertion order, from the snapshot
        of the current transaction (for export: call inside ``consistent``). The snapshot is
        taken now, before the first page is asked for."""
        snap = self.snapshot(cat)

        def pages() -> Iterator[GetResult]:
            after = 0
            while rows := scan.rows_after(cat, self._record.id, after, size):
                yield self._get_result(rows, snap)
                after = rows[-1].rid

        return pages()

    def _get_result(self, rows: list[StoredRow], snap: flat.Snapshot | None) -> GetResult:
        vectors = None
        if snap is not None:
            vectors = snap.vectors_of([r.location for r in rows], self._record.dim)
        return GetResult(
            ids=[r.id for r in rows],
            documents=[r.document for r in rows],
            metadata=[records.unpack(r.meta) for r in rows],
            vectors=vectors,
        )

    # -- queries ------------------------------------------------------------------------

    def search(
        self,
        xq: np.ndarray,
        k: int,
        where: Any,
        where_document: Any,
        ann: AnnOptions,
        exclude: list[str] | None = None,
        trace: Trace | None = None,
    ) -> list[QueryResult]:
        """Vector queries: one result per row of ``xq``, never one of the ids ``exclude``.
        ``trace`` records the plan and the time of each stage (``Collection.explain``)."""

        narrowed = where is not None or where_document is not None or bool(exclude)
        if not narrowed:
            got = self._search_fresh(xq, k, ann, trace)
            if got is not None:
                with stage(trace, "results"):
                    return self.results(*got)

        def read(cat: Catalog):
            with stage(trace, "snapshot"):
                # an unfiltered query verifies new segments as it scans them (plan.search)
                snap = self._store.snapshot(cat, self._record, defer_checks=not narrowed)
            allowed = None
            if narrowed:
                with stage(trace, "filter"):
                    gone = self.rids_of(cat, exclude)
                    allowed = self.kept(cat, snap, where, where_document, gone)
                if trace is not None:
                    self._note_filter(trace, snap, allowed)
            with stage(trace, "search"):
                scores, rids, counts = self.topk(cat, snap, xq, k, allowed, ann, trace)
            with stage(trace, "fetch rows"):
                found = self.found(cat, rids)
            self._store.keep_fresh(cat, self._record, snap, found, lambda: self.config(cat).index)
            if trace is not None:
                trace.note(snapshot="read in a catalog transaction")
            return scores, rids, counts, found

        got = self.consistent(read)
        with stage(trace, "results"):
            return self.results(*got)

    @staticmethod
    def _note_filter(trace: Trace, snap: flat.Snapshot, allowed: list[np.ndarray]) -> None:
        live = sum(len(p.vectors) if p.alive is None else int(p.alive.sum()) for p in snap.parts)
        kept = sum(len(a) for a in allowed)
        share = kept / live if live else 0.0
        # The filter runs in SQL before the plan is chosen: the planner's estimate is the count.
        trace.note(filter_rows=kept, live_rows=live, selectivity=share, estimated_selectivity=share)

    def _search_fresh(
        self, xq: np.ndarray, k: int, ann: AnnOptions, trace: Trace | None = None
    ) -> tuple | None:
        """``search`` without filters on the snapshot the last query kept, while nothing has
        been committed since (``Store.fresh``): no read transaction, and SQL only for records
        not kept yet (per-query overrides are checked against the spec kept with it). None
        when the snapshot is stale (take the full path)."""
        with stage(trace, "snapshot"):
            entry = self._store.fresh(self._record)
        if entry is None:
            return None
        if ann is not INDEX_DEFAULTS and (
            ann.nprobe is not None or ann.refine is not None or ann.ef is not None
        ):
            self._check_overrides(entry.spec, ann)  # the spec at the entry's stamp
        if trace is not None:
            trace.note(snapshot="reused: nothing committed since the last query")
        with stage(trace, "search"):
            scores, rids, counts = self.topk(None, entry.snap, xq, k, None, ann, trace)
        found, missing = {}, []
        kept = entry.records
        for rid in rids.ravel().tolist():
            rec = kept.get(rid)
            if rec is not None:
                found[rid] = rec
            elif rid >= 0:
                missing.append(rid)
        if missing:
            with stage(trace, "fetch rows"), self._store.reading() as cat:
                if cat.stamp() != entry.stamp:
                    return None  # a commit landed after the check: start over
                got = cat.records(list(set(missing)))
                self._store.add_records(entry, got)
            found.update(got)
        if trace is not None:
            trace.note(rows_fetched=len(set(missing)), rows_cached=len(found) - len(missing))
        return scores, rids, counts, found

    def quick(self, q: np.ndarray, k: Any, ef: Any, nprobe: Any = None) -> QueryResult | None:
        """``search`` of one unfiltered vector query without overrides (but ``ef`` or
        ``nprobe``) on the snapshot the last query kept, in one compiled call
        (``index.quick``), while nothing has been committed since: the common query, with
        one check of each argument and SQL only for rows not kept yet. None where it does
        not apply or an argument is not plainly valid: the caller takes the full path (which
        raises the right error)."""
        record = self._record
        if (
            q.dtype != np.float32
            or q.ndim != 1
            or q.shape[0] != record.dim
            or type(k) is not int
            or not 1 <= k <= inputs.MAX_K
            or (ef is not None and (type(ef) is not int or not 1 <= ef <= 65536))
            or (nprobe is not None and (type(nprobe) is not int or nprobe < 1))
        ):
            return None
        entry = self._store.fresh(record)
        if entry is None:
            return None
        if ef is not None and not isinstance(entry.spec, specs.HNSW):
            return None
        if nprobe is not None and not isinstance(entry.spec, (specs.IVF, specs.IVFPQ)):
            return None
        how = entry.plan
        if how is None:
            if not cold.ready():
                # the full path answers with NumPy while the kernels load; a plan would
                # import numba here, on the caller's thread (0.3 s of a process's 2nd query)
                return None
            how = entry.plan = quick.prepare(entry.snap, record.metric) or _NO_PLAN
        if how is _NO_PLAN:
            return None
        xq = q.reshape(1, -1)
        if not (xq.flags.c_contiguous and xq.flags.writeable):
            xq = xq.copy()  # one compiled specialisation: C-contiguous and writable
        got = how.search(xq, k, ef, _LOW, _HIGH, nprobe)
        if not got:
            return None
        scores, rids = got
        return self._kept_result(entry, scores, rids)

    def _kept_result(self, entry: Fresh, scores: np.ndarray, rids: list[int]) -> QueryResult | None:
        """The result of a lean query on ``entry``: its rows' records from those the entry
        keeps, SQL (one SELECT) only for rows not read yet; None when a commit landed since
        (the caller takes the full path). Documents and metadata are made when first read,
        from the records read now."""
        kept = entry.records
        try:
            found = [kept[r] for r in rids]
        except KeyError:  # rows not read yet: one SELECT
            found = [kept.get(r) for r in rids]
            missing = list({r for r, rec in zip(rids, found) if rec is None})
            more = self._store.records_at(entry, missing)
            if more is None:
                return None
            found = [rec if rec is not None else more[r] for r, rec in zip(rids, found)]
        rows = _Rows(found, rids, entry.metas)
        return QueryResult.of_rows([rec[0] for rec in found], scores, rows, self._record.metric)

    def quick_filtered(
        self, q: np.ndarray, k: Any, where: Any, nprobe: Any = None
    ) -> QueryResult | None:
        """``search`` of one vector query with a ``where`` filter (no other option but
        ``nprobe``) on the snapshot the last query kept, while nothing has been committed
        since, when the filter cache or the per-field columns answer the filter: no read
        transaction, the filter compiled once per shape, SQL only for records not kept yet.
        The same plan (``plan.search``) and the same rows as the full path. None where it
        does not apply or an argument is not plainly valid: the caller takes the full path
        (which raises the right error, or reads the filter in SQL)."""
        record = self._record
        if (
            type(where) is not dict
            or q.dtype != np.float32
            or q.ndim != 1
            or q.shape[0] != record.dim
            or type(k) is not int
            or not 1 <= k <= inputs.MAX_K
            or (nprobe is not None and (type(nprobe) is not int or nprobe < 1))
        ):
            return None
        size = float(np.abs(q).max())  # NaN for a NaN; inputs.matrix's rule for the rest
        if not (size == 0.0 or _LOW <= size <= _HIGH):
            return None
        entry = self._store.fresh(record)
        if entry is None:
            return None
        spec = entry.spec
        if nprobe is not None and not isinstance(spec, (specs.IVF, specs.IVFPQ)):
            return None
        try:
            sql, params = self._compiled.get(where)
            allowed = self.kept_at(None, entry.stamp, entry.snap, where, None, sql, params)
        except (NeedsCatalog, InvalidInput):
            return None
        xq = q.reshape(1, -1)
        if not (xq.flags.c_contiguous and xq.flags.writeable):
            xq = xq.copy()
        scores, rids, counts = plan.search(
            entry.snap, xq, record.metric, k, allowed, nprobe=nprobe,
            pages=self._store.resident_pages(record),
        )  # fmt: skip
        n = int(counts[0])
        return self._kept_result(entry, scores[0, :n], rids[0, :n].tolist())

    def ranked(
        self,
        xq: np.ndarray | None,
        texts: list[str],
        k: int,
        where: Any,
        where_document: Any,
        ranking: Ranking,
        ann: AnnOptions | None = None,
        exclude: list[str] | None = None,
        trace: Trace | None = None,
    ) -> list[QueryResult]:
        """Keyword (``xq`` None) or hybrid queries, one result per text, never one of the
        ids ``exclude``; ``trace`` as for ``search``."""
        coll = self._record.id
        filtered = where is not None or where_document is not None or bool(exclude)
        sql, params = compile_filters(coll, where, where_document, self.analyzer.contains_terms)
        hybrid = ranking.mode == "hybrid"
        window = max(k, WINDOW) if hybrid else k
        terms = [self.analyzer.query_terms(t) for t in texts]

        def read(cat: Catalog):
            with stage(trace, "filter"):
                allowed = cat.filtered_rids(coll, sql, params) if filtered else None
                if exclude:
                    gone = self.rids_of(cat, exclude)
                    allowed = allowed[~np.isin(allowed, gone, assume_unique=True)]
            cache, scope = self._store.text_cache, self._record.dir
            with stage(trace, "keyword search"):
                halves = [
                    bm25.search(cat, coll, t, window, allowed=allowed, cache=cache, scope=scope)
                    for t in terms
                ]
            if trace is not None:
                trace.note(plan="keyword", reason="BM25 over the keyword index's postings")
                if allowed is not None:
                    live = cat.count(coll, "1", [])
                    share = len(allowed) / live if live else 0.0
                    trace.note(filter_rows=len(allowed), live_rows=live, selectivity=share)
                    trace.note(estimated_selectivity=share)
            if hybrid:
                with stage(trace, "snapshot"):
                    snap = self.snapshot(cat)
                rows = None if allowed is None else snap.allowed_rids(allowed)
                with stage(trace, "search"):
                    vs, vr, vc = self.topk(cat, snap, xq, window, rows, ann, trace)
                if trace is not None:
                    vector_plan = trace.facts["plan"]
                    trace.note(
                        plan=f"hybrid: keyword + {vector_plan}",
                        reason=f"{window} rows from each half fused; vector half: "
                        + trace.facts["reason"],
                    )
                fused = [
                    fuse(vs[i, : vc[i]], vr[i, : vc[i]], *halves[i], k, ranking)
                    for i in range(len(texts))
                ]
            else:
                fused = [text_only(s, r) for s, r in halves]
            wanted = np.concatenate([f[1] for f in fused]) if fused else []
            found = cat.records(list(set(np.asarray(wanted, dtype=np.int64).tolist())))
            return fused, found

        fused, found = self.consistent(read)
        out = []
        for scores, rids, vrank, trank, vscore, tscore in fused:
            out.append(
                self._query_result(
                    scores,
                    rids,
                    found,
                    mode=ranking.mode,
                    vector_ranks=vrank,
                    text_ranks=trank,
                    vector_scores=vscore,
                    text_scores=tscore,
                )
            )
        return out

    def kept(
        self,
        cat: Catalog,
        snap: flat.Snapshot,
        where: Any,
        where_document: Any = None,
        exclude: np.ndarray | None = None,
        within: np.ndarray | None = None,
    ) -> list[np.ndarray] | None:
        """Per part of ``snap``, the sorted positions of its live rows that the filters keep,
        among the rows ``within`` (sorted, distinct int64 rids) if given, less the rows
        ``exclude`` (int64 rids); None when nothing is filtered, narrowed or excluded (every
        live row). Call inside the read transaction ``snap`` belongs to."""
        has_filter = where is not None or where_document is not None
        excluding = exclude is not None and len(exclude) > 0
        if has_filter:
            if where_document is None:
                sql, params = self._compiled.get(where)  # compiled once per filter shape
            else:
                sql, params = compile_filters(
                    self._record.id, where, where_document, self.analyzer.contains_terms
                )
            stamp = cat.stamp()
            if within is None and not excluding:
                return self.kept_at(cat, stamp, snap, where, where_document, sql, params)
            cache, scope = self._store.filter_cache, self._record.dir
            rids = cache.rids(
                scope,
                stamp,
                sql,
                params,
                lambda: self.filtered_rids(cat, stamp, where, where_document, sql, params),
            )
            if within is not None:
                rids = rids[np.isin(rids, within, assume_unique=True)]
        elif within is not None:
            rids = within
        elif excluding:
            gone = snap.allowed_rids(np.unique(exclude))
            out = []
            for part, drop in zip(snap.parts, gone):
                keep = np.ones(len(part.rids), bool) if part.alive is None else part.alive.copy()
                keep[drop] = False
                out.append(np.flatnonzero(keep).astype(np.int64))
            return out
        else:
            return None
        if excluding:
            rids = rids[~np.isin(rids, exclude)]
        return snap.allowed_rids(rids)

    def kept_at(
        self,
        cat: Catalog | None,
        stamp: Any,
        snap: flat.Snapshot,
        where: Any,
        where_document: Any,
        sql: str,
        params: Any,
    ) -> list[np.ndarray]:
        """``kept`` for filters only (compiled to ``sql``, ``params``), at catalog ``stamp``,
        through the filter cache. ``cat`` None (no read transaction: ``quick_filtered``)
        raises ``quickfilter.NeedsCatalog`` where the filter needs SQL."""
        one: dict = {}  # a single-value filter answered from a column: its positions

        def compute() -> np.ndarray:
            return self.filtered_rids(cat, stamp, where, where_document, sql, params, one)

        def positions(rids: np.ndarray) -> list[np.ndarray]:
            if "column" not in one:
                return snap.allowed_rids(rids)
            col, code, universe = one["column"]
            out = []
            for part in snap.parts:
                if code is None:
                    out.append(np.zeros(0, dtype=np.int64))
                    continue
                pos = col.positions_of(code, part.seg, part.rids, universe)
                out.append(pos if part.alive is None else pos[part.alive[pos]])
            return out

        cache, scope = self._store.filter_cache, self._record.dir
        return cache.kept(scope, stamp, sql, params, snap, compute, positions)

    def filtered_rids(
        self,
        cat: Catalog | None,
        stamp: Any,
        where: Any,
        where_document: Any,
        sql: str,
        params: list,
        one: dict | None = None,
    ) -> np.ndarray:
        """The sorted rids the filters (compiled to ``sql``, ``params``) keep at ``stamp``:
        from the per-field columns when the fields' columns are read (or worth reading),
        else in SQL. A filter that is one equality answered from a column leaves
        ``(column, code, its rids)`` in ``one["column"]`` (for ``FieldColumn.positions_of``)."""
        coll, columns, scope = self._record.id, self._store.field_columns, self._record.dir
        keys = fieldeval.keys(where) if where_document is None and where is not None else None
        if keys:
            got = columns.columns(
                scope,
                stamp,
                keys,
                lambda: _catalog(cat).count(coll, "1", []),
                lambda: fields.row_ids(_catalog(cat), coll),
                lambda key: fields.field_groups(_catalog(cat), coll, key),
            )
            if got:
                n, rids, cols = got
                single = fieldeval.single_value(where, cols) if one is not None else None
                if single is not None:
                    key, code = single
                    one["column"] = (cols[key], code, rids)
                    if code is None:
                        return np.zeros(0, dtype=np.int64)
                    return rids[cols[key].rows_of(code)]
                try:
                    return rids.compress(fieldeval.evaluate(where, n, cols))  # 2x rids[mask]
                except fieldeval.Unsupported:
                    keys = None
        t0 = time.perf_counter()
        rids = _catalog(cat).filtered_rids(coll, sql, params)
        if keys:
            columns.charge(scope, stamp, keys, time.perf_counter() - t0)
        return rids

    def rids_of(self, cat: Catalog, ids: list[str] | None) -> np.ndarray | None:
        """The rids of those of ``ids`` that exist (int64, any order), or None for None."""
        if ids is None:
            return None
        found = cat.locate(self._record.id, ids)
        return np.fromiter((loc.rid for loc in found.values()), dtype=np.int64, count=len(found))

    def examples(
        self, cat: Catalog, snap: flat.Snapshot, ids: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rids, vectors)`` of existing rows ``ids`` (int64 ``(n,)``, float32
        ``(n, dim)``, in the order given); ``IdNotFound`` names the ids that do not exist."""
        found = cat.locate(self._record.id, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise IdNotFound(
                f"{len(missing)} ids do not exist in {self._record.name!r}: {missing[:5]}"
            )
        located = [found[i] for i in ids]
        rids = np.array([loc.rid for loc in located], dtype=np.int64)
        return rids, snap.vectors_of(located, self._record.dim)

    def live_rows(self, where: Any, where_document: Any = None) -> LiveRows:
        """The live rows the filters keep (every row without filters), with their ids, read
        in one transaction."""
        return self.consistent(lambda cat: self._live(cat, where, where_document))

    def table_rows(self, where: Any, where_document: Any = None) -> TableRows:
        """``live_rows`` with each row's document and metadata, all read in one
        transaction (for ``to_arrow``: the vectors stay views of the mapped segments)."""

        def read(cat: Catalog) -> TableRows:
            live = self._live(cat, where, where_document)
            rids = live.rids.tolist()
            found = cat.records(rids)
            rows = [found[r] for r in rids]
            return TableRows(
                live, [r.document for r in rows], [records.unpack(r.meta) for r in rows]
            )

        return self.consistent(read)

    def _live(self, cat: Catalog, where: Any, where_document: Any) -> LiveRows:
        snap = self.snapshot(cat)
        kept = self.kept(cat, snap, where, where_document)
        parts, rids = [], []
        for i, part in enumerate(snap.parts):
            pos = part.alive if kept is None else kept[i]
            if pos is not None and pos.dtype == np.bool_:
                pos = None if pos.all() else np.flatnonzero(pos)
            parts.append((part.vectors, part.norms, pos))
            rids.append(part.rids if pos is None else part.rids[pos])
        rids = np.concatenate(rids) if rids else np.zeros(0, dtype=np.int64)
        ids = fields.ids_of(cat, self._record.id, rids)
        return LiveRows(ids, rids, self._record.metric, self._record.dim, tuple(parts))

    def found(self, cat: Catalog, rids: np.ndarray) -> dict[int, Record]:
        """The records (id, document, metadata) of the rows ``rids`` names (-1 skipped), read
        in the current transaction, for ``results``."""
        return cat.records(list(set(rids[rids >= 0].tolist())))

    def results(
        self,
        scores: np.ndarray,
        rids: np.ndarray,
        counts: np.ndarray,
        found: dict[int, Record],
        *,
        mode: str = "vector",
    ) -> list[QueryResult]:
        """One ``QueryResult`` per row of ``(scores, rids, counts)`` (as ``topk`` returns
        them), from the records ``found`` read for them."""
        return [
            self._query_result(scores[i, : counts[i]], rids[i, : counts[i]], found, mode=mode)
            for i in range(len(scores))
        ]

    def topk(
        self,
        cat: Catalog | None,
        snap: flat.Snapshot,
        xq: np.ndarray,
        k: int,
        allowed: list[np.ndarray] | None,
        ann: AnnOptions,
        trace: Trace | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The vector half of every query: ``(scores, rids, counts)`` as ``flat.search``,
        through the ANN index unless ``ann.exact``; ``allowed`` as ``kept`` gives it. ``cat``
        (the current read transaction) is needed only when ``ann`` overrides nprobe, refine
        or ef."""
        overrides = ann.nprobe is not None or ann.refine is not None or ann.ef is not None
        if overrides and cat is not None:  # None: checked against the reused entry's spec
            self._check_overrides(self.config(cat).index, ann)
        return plan.search(
            snap,
            xq,
            self._record.metric,
            k,
            allowed,
            nprobe=ann.nprobe,
            refine=ann.refine,
            exact=ann.exact,
            pages=self._store.resident_pages(self._record),
            trace=trace,
            ef=ann.ef,
        )

    def _check_overrides(self, spec: specs.Spec, ann: AnnOptions) -> None:
        name = self._record.name
        if ann.ef is not None and not isinstance(spec, specs.HNSW):
            raise InvalidInput(f"ef applies to HNSW indexes; collection {name!r} has {spec.kind}")
        if ann.nprobe is not None and isinstance(spec, specs.HNSW):
            raise InvalidInput(
                f"collection {name!r} has an HNSW index: nprobe does not apply; use ef"
            )
        if ann.nprobe is not None and isinstance(spec, specs.Flat):
            raise InvalidInput(
                f"collection {name!r} has a Flat index (exact search): nprobe does not "
                "apply; use create_index(vecstore.IVF()) or vecstore.IVFPQ() for an ANN index"
            )
        compressed = self.vectors != "float32"
        if ann.refine is not None and not (isinstance(spec, specs.IVFPQ) or compressed):
            raise InvalidInput(
                f"refine applies to IVFPQ indexes and to collections with compressed vectors "
                f"(the candidates re-ranked are k x refine); collection {name!r} has "
                f"{spec.kind} over float32 vectors"
            )

    def _query_result(
        self, scores: np.ndarray, rids: np.ndarray, found: dict[int, Record], **extra: Any
    ) -> QueryResult:
        if not len(rids):
            ids, documents, metas = [], [], []
        else:
            ids, documents, metas = map(list, zip(*[found[r] for r in rids.tolist()]))
        unpack = records.unpack
        return QueryResult(
            ids,
            np.ascontiguousarray(scores, dtype=np.float32),
            documents,
            [unpack(m) for m in metas],
            self._record.metric,
            **extra,
        )

    # -- the index ----------------------------------------------------------------------

    def index_spec(self) -> specs.Spec:
        return self.consistent(lambda cat: self.config(cat).index)

    def index_info(self) -> dict:
        """The spec and, once trained, the model's resolved parameters."""

        def read(cat: Catalog):
            spec = self.config(cat).index
            model = self._store.model(cat, self._record)
            _, lists = cat.index_files(self._record.id)
            return spec, model, lists

        spec, model, lists = self.consistent(read)
        info = {"kind": spec.kind, "spec": spec.to_json(), "trained": model is not None}
        if model is not None and model.kind == "hnsw":
            info.update(
                M=model.M,
                ef_construction=model.ef_construction,
                ef_search=model.ef_search,
                indexed_rows=sum(r.nrows for r in lists.values()),
            )
        elif model is not None:
            cb = model.codebooks
            info.update(
                nlist=model.nlist,
                nprobe=model.nprobe,
                m=cb.shape[0],
                lists="pq" if cb.size else "flat",
                nbits=int(cb.shape[1]).bit_length() - 1 if cb.size else 0,
                refine=model.refine,
                train_rows=model.train_rows,
                shared=model.shared,
                indexed_rows=sum(r.nrows for r in lists.values()),
            )
        return info
