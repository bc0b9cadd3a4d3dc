"""A collection: ids, vectors, documents and metadata, searchable by exact top-k.

Writes follow the store's publish protocol: new segment files are written and fsynced first,
then one catalog transaction publishes them together with the rows, so a write is either
wholly visible or not at all, and is durable when the call returns. Small writes wait in the
catalog's ``pending`` table and are sealed into segments as they accumulate; segments of a
similar size are merged as they pile up. Reads run in one SQLite read transaction, against a
snapshot of the catalog version they began with.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import inputs
from .encoders.base import Encoder, EncoderSpec, cache_key_of, encoder_from_spec
from .errors import (
    CollectionNotFound,
    CorruptStoreError,
    IdNotFound,
    InvalidInput,
)
from .hybrid import HybridSearch, Ranking, keywords
from .index import flat, plan, specs
from .results import GetResult, QueryResult
from .storage import records
from .storage.buffers import text_hash
from .storage.catalog import Catalog, CollectionRecord
from .storage.filters import compile_filters
from .storage.intents import Intent
from .text import contains_terms
from .text import counts as text_counts
from .writes import Writes, _Publication

if TYPE_CHECKING:
    from .audit import CollectionInfo
    from .database import Database
    from .ingest import IngestResult
    from .portable import ExportInfo

METRICS = ("cosine", "dot", "l2")
SNAPSHOT_RETRIES = 5
EMBED_BATCH = 256  # texts per encoder call (the encoder batches further inside)


class Collection(Writes, HybridSearch):
    """A named set of rows ``(id, vector, document, metadata)`` of one dimension and metric.

    Get one from ``Database.create_collection`` or ``Database.get_collection``.
    """

    def __init__(self, db: Database, record: CollectionRecord):
        self._db = db
        self._record = record
        self._spec = self.stored_spec(record)

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def dim(self) -> int:
        return self._record.dim

    @property
    def metric(self) -> str:
        return self._record.metric

    @property
    def encoder(self) -> Encoder | None:
        """The encoder of an embedding collection (rebuilt from its stored spec on first
        use), or None for a collection of plain vectors."""
        enc = self._db._encoders.get(self._record.dir)
        if enc is None and self._spec is not None:
            enc = encoder_from_spec(self._spec)
            if enc is None:
                raise InvalidInput(
                    f"collection {self.name!r} embeds with the {self._spec.kind} encoder "
                    f"{self._spec.model!r}, which cannot be stored; pass it again: "
                    f"db.get_collection({self.name!r}, encoder=...)"
                )
            enc = self._db._encoders.setdefault(self._record.dir, enc)
        return enc

    @staticmethod
    def stored_spec(record: CollectionRecord) -> EncoderSpec | None:
        try:
            config = json.loads(record.config)
        except (TypeError, ValueError):  # not text, or not JSON: a damaged or doctored catalog
            config = None
        if not isinstance(config, dict):
            raise CorruptStoreError(
                f"collection {record.name!r}: its stored configuration is not a JSON object"
            )
        data = config.get("encoder")
        return EncoderSpec.from_json(data) if data else None

    def _embed(self, texts: Sequence[str], kind: str) -> np.ndarray:
        enc = self.encoder
        if enc is None:
            raise InvalidInput(
                f"collection {self.name!r} has no encoder: pass vectors, or create the "
                "collection with encoder="
            )
        if any(not isinstance(t, str) for t in texts):
            raise InvalidInput(f"texts to embed must be str; got {texts[:3]!r}...")
        return inputs.matrix(enc.encode(list(texts), kind), self.dim, n=len(texts))

    def __repr__(self) -> str:
        enc = f" encoder={self._spec.model!r}" if self._spec is not None else ""
        return f"<vecstore.Collection {self.name!r} dim={self.dim} metric={self.metric!r}{enc}>"

    # -- writes -------------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> None:
        """Add new rows. Raises ``DuplicateIdError`` (and adds nothing) if any id exists.

        Parameters
        ----------
        ids : list of str
            Unique, non-empty strings of at most 2,048 bytes; at most 1,000,000 of them
            (``inputs.MAX_BATCH``) per call, as for every call taking ids: split larger
            writes into several calls, or use ``add_batches``.
        vectors : array-like, float (n, dim)
            One finite vector per id (a single 1-D vector is accepted for one id).
        documents : list of str or None, optional
        metadata : list of dict or None, optional
            Values are str, int, float, bool, None, or lists of those.
        """
        rows = self._rows(ids, vectors, documents, metadata)
        if rows[0]:
            self._write(lambda cat, pub: self._insert(cat, pub, *rows, refuse_existing=True))

    def upsert(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> None:
        """Add rows, replacing whole any row whose id exists (vector, document and metadata)."""
        rows = self._rows(ids, vectors, documents, metadata)
        if rows[0]:
            self._write(lambda cat, pub: self._insert(cat, pub, *rows, refuse_existing=False))

    def update(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> None:
        """Replace the given fields of existing rows; fields not passed stay as they are.

        Metadata is replaced whole, not merged. Raises ``IdNotFound`` (and changes nothing)
        if any id does not exist.
        """
        ids = inputs.ids(ids)
        n = len(ids)
        if not n:
            return
        x = None if vectors is None else inputs.matrix(vectors, self.dim, n=n)
        docs = None if documents is None else inputs.documents(documents, n)
        counts = None if docs is None else [text_counts(d) for d in docs]
        if x is None and docs is not None and self._spec is not None:
            x = self._embed_documents(docs)
        metas = None if metadata is None else inputs.metadata(metadata, n)
        packed = None if metas is None else [records.pack(m) for m in metas]

        def apply(cat: Catalog, pub: _Publication) -> None:
            self._require(cat)
            found = cat.locate(self._record.id, ids)
            missing = [i for i in ids if i not in found]
            if missing:
                raise IdNotFound(
                    f"update: {len(missing)} ids do not exist in {self.name!r}: {missing[:5]}"
                )
            located = [found[i] for i in ids]
            self._change(cat, pub, located, x, docs, metas, packed, counts)

        self._write(apply)

    def delete(self, ids: Sequence[str] | None = None, *, where: dict | None = None) -> int:
        """Delete rows by id, by filter, or both (rows matching both); return how many.

        Ids that do not exist are ignored. ``where={}`` matches every row.
        """
        if ids is None and where is None:
            raise InvalidInput("delete() needs ids, a where filter, or both")
        ids = None if ids is None else inputs.ids(ids)
        sql, params = compile_filters(self._record.id, where)

        def apply(cat: Catalog, pub: _Publication) -> int:
            self._require(cat)
            if ids is not None:
                located = list(cat.locate(self._record.id, ids).values())
                if where is not None:
                    keep = {r[0] for r in cat.filtered(self._record.id, sql, params)}
                    located = [r for r in located if r[0] in keep]
            else:
                located = cat.filtered(self._record.id, sql, params)
            if located:
                cat.release_vectors(located)
                cat.delete_rows(self._record.id, [r[0] for r in located])
                cat.bump(self._record.id)
            return len(located)

        return self._write(apply)

    def add_batches(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 4096,
        replace: bool = True,
    ) -> int:
        """Write rows from any iterable (a generator over a corpus of any size) in batches.

        Each row is a mapping with ``"id"``, and ``"vector"`` or (for an embedding
        collection) ``"document"``, or both, and optionally ``"metadata"``. Each batch of
        ``batch_size`` rows is one atomic, durable ``upsert`` (``add`` if ``replace`` is
        False), so memory stays bounded by one batch whatever the number of rows; if a batch
        fails, the batches before it stay written (and re-running is cheap: embeddings are
        cached). Returns the number of rows written.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput(f"batch_size must be a positive int; got {batch_size!r}")
        write = self.upsert if replace else self.add
        total = len(rows) if hasattr(rows, "__len__") else None
        done = 0
        with self._db._progress(total or 0, "writing") as advance:
            for batch in _batched(rows, batch_size):
                for row in batch:
                    if not isinstance(row, Mapping) or "id" not in row:
                        raise InvalidInput(f"each row must be a mapping with an 'id'; got {row!r}")
                has_vectors = [r.get("vector") is not None for r in batch]
                if any(has_vectors) and not all(has_vectors):
                    raise InvalidInput("within a batch, give a vector for every row or for none")
                write(
                    [r["id"] for r in batch],
                    vectors=[r["vector"] for r in batch] if has_vectors[0] else None,
                    documents=[r.get("document") for r in batch],
                    metadata=[r.get("metadata") for r in batch],
                )
                done += len(batch)
                advance(len(batch))
        return done

    def compact(self) -> None:
        """Seal pending vectors and rewrite every segment into one, dropping deleted vectors.

        Afterwards no deleted or replaced vector remains on disk, no deleted document in
        the keyword index, and the embedding cache holds only texts of live rows (of any
        collection). Readers are never blocked; they switch to the new segment on their
        next query.
        """
        with self._db._writing() as cat:
            with cat.read():
                self._require(cat)
            self._seal(cat, force=True)
            with cat.read():
                records = cat.segments(self._record.id)
                dead = cat.dead_counts(self._record.id)
            if len(records) > 1 or dead:
                self._rewrite(cat, [r.id for r in records])
            with cat.write():
                cat.prune_terms(self._record.id)
                cat.prune_embeddings(cache_key_of)
            cat.checkpoint(truncate=True)  # the WAL's copies of deleted rows go too

    def ingest(
        self,
        paths: Any,
        *,
        chunk_size: int = 800,
        chunk_overlap: int = 100,
        chunk_unit: str = "chars",
        text_field: str = "text",
        id_field: str | None = None,
        metadata_fields: Sequence[str] | None = None,
        encoding: str = "utf-8",
        batch_size: int = 256,
    ) -> IngestResult:
        """Embed files, folders and globs: ``.txt``/``.md`` in overlapping chunks, ``.jsonl``/
        ``.csv`` a row per record. Unchanged files are skipped; a changed file's rows are
        replaced in the transaction that writes its new ones (docs/cli.md, "Ingesting")."""
        from .chunking import Chunking
        from .ingest import RecordFields, ingest

        keep = None if metadata_fields is None else tuple(metadata_fields)
        return ingest(
            self,
            paths,
            chunking=Chunking(chunk_size, chunk_overlap, chunk_unit),
            fields=RecordFields(text_field, id_field, keep),
            encoding=encoding,
            batch_size=batch_size,
        )

    def export(self, dest: Any, *, format: str | None = None) -> ExportInfo:
        """Write every row to ``dest`` (a path or binary file) as JSON Lines, or Parquet
        (``format="parquet"`` or a ``.parquet`` name), from one snapshot (docs/format.md)."""
        from .portable import export

        return export(self, dest, format=format)

    def info(self) -> CollectionInfo:
        """Row count, dim, metric, encoder, index, segments and disk size."""
        from .audit import info

        return info(self)

    # -- reads --------------------------------------------------------------------------

    def count(self, where: dict | None = None) -> int:
        """Number of rows, or of rows matching ``where``."""
        sql, params = compile_filters(self._record.id, where)
        with self._db._reading() as cat:
            self._require(cat)
            return cat.count(self._record.id, sql, params)

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: dict | None = None,
        where_document: dict | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_vectors: bool = False,
    ) -> GetResult:
        """Rows by id (in the order given; missing ids are skipped) or by filter.

        Without ids, rows come in insertion order, ``offset`` and ``limit`` paginate, and
        ``where={}`` or no filter means every row.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidInput(f"limit must be a non-negative int or None; got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"offset must be a non-negative int; got {offset!r}")
        ids = None if ids is None else inputs.ids(ids)
        sql, params = compile_filters(self._record.id, where, where_document, contains_terms)
        for _ in range(SNAPSHOT_RETRIES):
            with self._db._reading() as cat:
                self._require(cat)
                if ids is not None:
                    found = cat.rows_by_id(self._record.id, ids)
                    if where is not None or where_document is not None:
                        keep = {r[0] for r in cat.filtered(self._record.id, sql, params)}
                        found = {k: v for k, v in found.items() if v[0] in keep}
                    rows = [(i, *found[i]) for i in ids if i in found]
                    rows = rows[offset:] if limit is None else rows[offset : offset + limit]
                else:
                    rows = cat.rows_where(self._record.id, sql, params, limit, offset)
                vectors = None
                if include_vectors:
                    try:
                        snap = self._snapshot(cat)
                    except FileNotFoundError:
                        continue
                    vectors = snap.vectors_of([r[1:4] for r in rows], self.dim)
                return GetResult(
                    ids=[r[0] for r in rows],
                    documents=[r[4] for r in rows],
                    metadata=[records.unpack(r[5]) for r in rows],
                    vectors=vectors,
                )
        raise self._vanished()

    def peek(self, n: int = 10) -> GetResult:
        """The first ``n`` rows in insertion order."""
        return self.get(limit=n)

    def query(
        self,
        q: Any,
        *,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        mode: str = "vector",
        text: str | None = None,
        fusion: str | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
    ) -> QueryResult:
        """The ``k`` best rows for ``q``, best first.

        ``mode="vector"`` (default): the rows most similar to ``q``, a vector of the
        collection's dim or, for an embedding collection, a text (embedded as a query).
        ``mode="text"``: the rows whose documents best match the keywords ``q`` (a str),
        ranked by BM25; only rows containing at least one query term. ``mode="hybrid"``: both
        rankings fused (``fusion="rrf"`` with ``rrf_k=60`` by default, or ``"weighted"``;
        ``weight=0.5`` is the vector half's share); the keywords are ``text`` if given (so a
        plain-vector collection can pass ``q`` as a vector), else ``q``.

        With filters, both halves see the same matching rows, and vector and hybrid queries
        return exactly ``min(k, number of matching rows)`` results, with or without an ANN
        index. ``QueryResult.scores`` is higher-is-better; text and hybrid results also give
        each half's ranks and scores.

        ``nprobe`` (lists probed) and ``refine`` (IVF-PQ re-rank factor) override the
        index's values for this query (the vector half of a hybrid one too); ``exact=True``
        bypasses the index. Passing them where they do not apply (to a collection whose spec
        has no such parameter, or in text mode) raises ``InvalidInput``.
        """
        ranking = Ranking.of(mode, fusion, rrf_k, weight)
        texts = keywords(q, text, mode, many=False)
        ann = _ann(mode, nprobe, refine, exact)
        if mode == "text":
            return self._ranked(None, texts, k, where, where_document, ranking)[0]
        if isinstance(q, str):
            xq = self._embed([q], "query")
        else:
            xq = inputs.query_vector(q, self.dim)
        if mode == "hybrid":
            return self._ranked(xq, texts, k, where, where_document, ranking, ann)[0]
        return self._search(xq, k, where, where_document, ann)[0]

    def query_many(
        self,
        queries: Any,
        *,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        mode: str = "vector",
        text: Sequence[str] | None = None,
        fusion: str | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
    ) -> list[QueryResult]:
        """``query`` for each row of a 2-D ``(nq, dim)`` array, or each text of a list (for an
        embedding collection, or keywords in text mode); one ``QueryResult`` per query.
        ``text`` is a list of keyword queries, one per query (hybrid mode).

        One call takes at most 100,000 queries (``inputs.MAX_QUERIES``) and 10,000,000
        results (``nq * k``, ``inputs.MAX_RESULTS``); more raise ``InvalidInput``: split
        them into several calls.
        """
        ranking = Ranking.of(mode, fusion, rrf_k, weight)
        texts = keywords(queries, text, mode, many=True)
        ann = _ann(mode, nprobe, refine, exact)
        k = inputs.top_k(k)
        if mode == "text":
            inputs.query_batch(len(texts), k)
            return self._ranked(None, texts, k, where, where_document, ranking)
        if isinstance(queries, (list, tuple)) and queries and isinstance(queries[0], str):
            inputs.query_batch(len(queries), k)
            xq = self._embed(queries, "query")
        else:
            xq = inputs.matrix(queries, self.dim, what="queries")
            inputs.query_batch(len(xq), k)
        if mode == "hybrid":
            return self._ranked(xq, texts, k, where, where_document, ranking, ann)
        return self._search(xq, k, where, where_document, ann)

    # -- the ANN index ------------------------------------------------------------------

    @property
    def index(self) -> specs.Spec:
        """The collection's index spec (``Flat()``, ``IVF(...)`` or ``IVFPQ(...)``)."""
        with self._db._reading() as cat:
            self._require(cat)
            return self._index_spec(cat)

    def index_info(self) -> dict:
        """The spec and, once trained, the model's resolved parameters: ``kind``,
        ``trained``, ``nlist``, ``nprobe``, ``m``, ``nbits``, ``refine``, ``train_rows`` and
        ``indexed_rows`` (rows in lists; the rest are searched exactly)."""
        for _ in range(SNAPSHOT_RETRIES):
            with self._db._reading() as cat:
                self._require(cat)
                spec = self._index_spec(cat)
                try:
                    model = self._model(cat)
                except FileNotFoundError:
                    continue  # a retrain replaced the model after this transaction began
                _, lists = cat.index_files(self._record.id)
            break
        else:
            raise self._vanished()
        info = {"kind": spec.kind, "spec": spec.to_json(), "trained": model is not None}
        if model is not None:
            info.update(
                nlist=model.nlist,
                nprobe=model.nprobe,
                m=model.codebooks.shape[0],
                nbits=int(model.codebooks.shape[1]).bit_length() - 1 if model.codebooks.size else 0,
                refine=model.refine,
                train_rows=model.train_rows,
                indexed_rows=sum(r.nrows for r in lists.values()),
            )
        return info

    def create_index(self, spec: specs.Spec) -> None:
        """Replace the collection's index spec, dropping any trained index.

        An IVF or IVFPQ spec is trained at once if the collection already holds its
        ``min_rows`` (this call then takes as long as training: seconds per 100k rows),
        else when it grows to them. ``Flat()`` returns the collection to exact search.
        Readers are never blocked: they search the old index until this commits.
        """
        spec = specs.check(spec, self.dim)
        with self._db._writing() as cat:
            # fully synced: files are unlinked after this commit, which a power loss must
            # never undo while the unlinks survive it
            intent = Intent(self._db.path, cat)  # unlinks the old files after the commit
            with cat.fully_synced(), intent.transaction():
                self._require(cat)
                record = cat.collection_by_id(self._record.id)
                config = json.loads(record.config)
                config["index"] = spec.to_json()
                cat.set_config(self._record.id, json.dumps(config))
                old = cat.drop_index(self._record.id)
                cat.bump(self._record.id)
                intent.retiring(self._db._collection_dir(self._record), old)
            cache = self._db._segments.get(self._record.dir, {})
            for name in old:
                cache.pop(name, None)
            self._index_upkeep(cat)

    # -- internals: reading -------------------------------------------------------------

    def _require(self, cat: Catalog) -> None:
        if cat.version(self._record.id, self._record.dir) is None:
            raise CollectionNotFound(f"collection {self.name!r} was deleted")

    def _vanished(self) -> CorruptStoreError:
        return CorruptStoreError(
            f"collection {self.name!r}: a segment file named by the catalog is missing from "
            f"{self._db._collection_dir(self._record)}"
        )

    def _snapshot(self, cat: Catalog) -> flat.Snapshot:
        """The snapshot for the catalog version visible in the current read transaction."""
        coll = self._record.id
        version = cat.version(coll, self._record.dir)
        if version is None:
            raise CollectionNotFound(f"collection {self.name!r} was deleted")
        snap = self._db._snapshots.get(self._record.dir)
        if snap is None or snap.version != version:
            snap = flat.load_snapshot(
                cat,
                coll,
                self._db._collection_dir(self._record),
                self.dim,
                version,
                snap,
                self._db._segments.setdefault(self._record.dir, {}),
            )
            self._db._snapshots[self._record.dir] = snap
        return snap

    def _search(
        self, xq: np.ndarray, k: int, where: Any, where_document: Any, ann: AnnOptions
    ) -> list[QueryResult]:
        k = inputs.top_k(k)
        filtered = where is not None or where_document is not None
        sql, params = compile_filters(self._record.id, where, where_document, contains_terms)
        for _ in range(SNAPSHOT_RETRIES):
            with self._db._reading() as cat:
                try:
                    snap = self._snapshot(cat)
                except FileNotFoundError:
                    continue  # a compaction replaced a segment after our snapshot began
                allowed = None
                if filtered:
                    allowed = snap.allowed_rids(cat.filtered_rids(self._record.id, sql, params))
                scores, rids, counts = self._vector_topk(cat, snap, xq, k, allowed, ann)
                found = cat.records(list(set(rids[rids >= 0].tolist())))
            return [
                self._result(scores[i, : counts[i]], rids[i, : counts[i]], found)
                for i in range(len(xq))
            ]
        raise self._vanished()

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
            self._check_overrides(self._index_spec(cat), ann.nprobe, ann.refine)
        return plan.search(
            snap, xq, self.metric, k, allowed, nprobe=ann.nprobe, refine=ann.refine, exact=ann.exact
        )

    def _check_overrides(self, spec: specs.Spec, nprobe: Any, refine: Any) -> None:
        if nprobe is not None and isinstance(spec, specs.Flat):
            raise InvalidInput(
                f"collection {self.name!r} has a Flat index (exact search): nprobe does not "
                "apply; use create_index(vecstore.IVF()) or vecstore.IVFPQ() for an ANN index"
            )
        if refine is not None and not isinstance(spec, specs.IVFPQ):
            raise InvalidInput(
                f"refine applies to IVFPQ indexes; collection {self.name!r} has {spec.kind}"
            )

    def _result(self, scores: np.ndarray, rids: np.ndarray, found: dict) -> QueryResult:
        rows = [found[int(r)] for r in rids]
        return QueryResult(
            ids=[r[0] for r in rows],
            scores=np.ascontiguousarray(scores, dtype=np.float32),
            documents=[r[1] for r in rows],
            metadata=[records.unpack(r[2]) for r in rows],
            metric=self.metric,
        )

    # -- internals: writing -------------------------------------------------------------

    def _embed_documents(self, docs: list[str | None]) -> np.ndarray:
        """Embed documents through the store's embedding cache: a text this encoder has
        embedded before (in any collection of the store) is not embedded again. Callable
        encoders are not cached (their name does not identify what they compute)."""
        missing = [i for i, d in enumerate(docs) if d is None]
        if missing:
            raise InvalidInput(
                f"row {missing[0]} has no document to embed; pass a document for every row, "
                "or vectors"
            )
        key = self._spec.cache_key()  # None for a callable: never cached
        hashes = [text_hash(d) for d in docs]
        x = np.empty((len(docs), self.dim), dtype=np.float32)
        rows_of: dict[bytes, list[int]] = {}
        for i, h in enumerate(hashes):
            rows_of.setdefault(h, []).append(i)
        cacheable = key is not None
        if cacheable:
            with self._db._reading() as cat:
                for h, vec in cat.cached_embeddings(key, list(rows_of)).items():
                    x[rows_of.pop(h)] = np.frombuffer(vec, dtype="<f4")
        todo = list(rows_of)  # distinct texts not in the cache, each embedded once
        with self._db._progress(len(todo), "embedding") as advance:
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start : start + EMBED_BATCH]
                fresh = self._embed([docs[rows_of[h][0]] for h in batch], "document")
                for h, vec in zip(batch, fresh):
                    x[rows_of[h]] = vec
                if cacheable and not self._db.read_only:
                    with self._db._writing() as cat, cat.write():
                        cat.cache_embeddings(key, ((h, v.tobytes()) for h, v in zip(batch, fresh)))
                advance(len(batch))
        return x


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


@dataclass(frozen=True)
class AnnOptions:
    """Query-time ANN parameters: None keeps the index's own."""

    nprobe: int | None = None
    refine: int | None = None
    exact: bool = False


def _ann(mode: str, nprobe: Any, refine: Any, exact: Any) -> AnnOptions:
    for name, value in (("nprobe", nprobe), ("refine", refine)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidInput(f"{name} must be a positive int; got {value!r}")
    if not isinstance(exact, bool):
        raise InvalidInput(f"exact must be True or False; got {exact!r}")
    opts = AnnOptions(nprobe, refine, exact)
    if mode == "text" and opts != AnnOptions():
        raise InvalidInput("nprobe, refine and exact apply to vector and hybrid queries, not text")
    return opts
