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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import inputs
from .config import CollectionConfig
from .errors import CollectionNotFound, CorruptStoreError, InvalidInput
from .hybrid import Ranking, fuse, text_only
from .index import bm25, flat, plan, specs
from .results import GetResult, QueryResult
from .storage import records, scan
from .storage.catalog import Catalog, CollectionRecord
from .storage.filters import compile_filters
from .storage.records import Record, StoredRow
from .store import SnapshotRace, Store

#: Fresh transactions a read tries before a vanishing file counts as damage.
SNAPSHOT_RETRIES = 5
#: Rows each half of a hybrid query contributes to the fusion (k if larger).
WINDOW = 100

T = TypeVar("T")


@dataclass(frozen=True)
class AnnOptions:
    """Query-time ANN parameters: None keeps the index's own."""

    nprobe: int | None = None
    refine: int | None = None
    exact: bool = False

    @classmethod
    def of(cls, mode: str, nprobe: Any, refine: Any, exact: Any) -> AnnOptions:
        opts = cls(
            inputs.integer("nprobe", nprobe, minimum=1, optional=True),
            inputs.integer("refine", refine, minimum=1, optional=True),
            inputs.flag("exact", exact),
        )
        if mode == "text" and opts != cls():
            raise InvalidInput(
                "nprobe, refine and exact apply to vector and hybrid queries, not text"
            )
        return opts


class Reader:
    """The read side of one collection."""

    def __init__(self, store: Store, record: CollectionRecord):
        self._store = store
        self._record = record
        # fixed at creation (no later change of the configuration touches it)
        self.analyzer = CollectionConfig.of(record).text

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
        self, xq: np.ndarray, k: int, where: Any, where_document: Any, ann: AnnOptions
    ) -> list[QueryResult]:
        """Vector queries: one result per row of ``xq``."""
        coll = self._record.id
        filtered = where is not None or where_document is not None
        sql, params = compile_filters(coll, where, where_document, self.analyzer.contains_terms)

        def read(cat: Catalog):
            snap = self.snapshot(cat)
            allowed = None
            if filtered:
                allowed = snap.allowed_rids(cat.filtered_rids(coll, sql, params))
            scores, rids, counts = self._vector_topk(cat, snap, xq, k, allowed, ann)
            return scores, rids, counts, cat.records(list(set(rids[rids >= 0].tolist())))

        scores, rids, counts, found = self.consistent(read)
        return [
            self._query_result(scores[i, : counts[i]], rids[i, : counts[i]], found)
            for i in range(len(xq))
        ]

    def ranked(
        self,
        xq: np.ndarray | None,
        texts: list[str],
        k: int,
        where: Any,
        where_document: Any,
        ranking: Ranking,
        ann: AnnOptions | None = None,
    ) -> list[QueryResult]:
        """Keyword (``xq`` None) or hybrid queries, one result per text."""
        coll = self._record.id
        filtered = where is not None or where_document is not None
        sql, params = compile_filters(coll, where, where_document, self.analyzer.contains_terms)
        hybrid = ranking.mode == "hybrid"
        window = max(k, WINDOW) if hybrid else k
        terms = [self.analyzer.query_terms(t) for t in texts]

        def read(cat: Catalog):
            allowed = cat.filtered_rids(coll, sql, params) if filtered else None
            cache, scope = self._store.text_cache, self._record.dir
            halves = [
                bm25.search(cat, coll, t, window, allowed=allowed, cache=cache, scope=scope)
                for t in terms
            ]
            if hybrid:
                snap = self.snapshot(cat)
                rows = None if allowed is None else snap.allowed_rids(allowed)
                vs, vr, vc = self._vector_topk(cat, snap, xq, window, rows, ann)
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

    def _vector_topk(
        self,
        cat: Catalog,
        snap: flat.Snapshot,
        xq: np.ndarray,
        k: int,
        allowed: list[np.ndarray] | None,
        ann: AnnOptions,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The vector half of every query: ``(scores, rids, counts)`` as ``flat.search``,
        through the ANN index unless ``ann.exact``."""
        if ann.nprobe is not None or ann.refine is not None:
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
        )

    def _check_overrides(self, spec: specs.Spec, ann: AnnOptions) -> None:
        name = self._record.name
        if ann.nprobe is not None and isinstance(spec, specs.Flat):
            raise InvalidInput(
                f"collection {name!r} has a Flat index (exact search): nprobe does not "
                "apply; use create_index(vecstore.IVF()) or vecstore.IVFPQ() for an ANN index"
            )
        if ann.refine is not None and not isinstance(spec, specs.IVFPQ):
            raise InvalidInput(
                f"refine applies to IVFPQ indexes; collection {name!r} has {spec.kind}"
            )

    def _query_result(
        self, scores: np.ndarray, rids: np.ndarray, found: dict[int, Record], **extra: Any
    ) -> QueryResult:
        rows = [found[int(r)] for r in rids]
        return QueryResult(
            ids=[r.id for r in rows],
            scores=np.ascontiguousarray(scores, dtype=np.float32),
            documents=[r.document for r in rows],
            metadata=[records.unpack(r.meta) for r in rows],
            metric=self._record.metric,
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
        if model is not None:
            cb = model.codebooks
            info.update(
                nlist=model.nlist,
                nprobe=model.nprobe,
                m=cb.shape[0],
                nbits=int(cb.shape[1]).bit_length() - 1 if cb.size else 0,
                refine=model.refine,
                train_rows=model.train_rows,
                indexed_rows=sum(r.nrows for r in lists.values()),
            )
        return info
