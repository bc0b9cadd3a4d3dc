"""A collection: ids, vectors, documents and metadata, searchable by similarity.

``Collection`` is the public face of one collection. It checks a call's arguments and hands
the work to its ``Reader`` (counts, gets and queries, each in one read transaction over a
consistent snapshot) or its ``Writer`` (inserts, changes, deletes and compaction, each one
durable transaction). Both share the store's engine (``store.Store``). Writes are wholly
visible or not at all, and durable when the call returns (``writes.py`` says how).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import inputs
from .config import METRICS, CollectionConfig, Metric
from .embedding import Embedder
from .encoders.base import Encoder, EncoderSpec
from .errors import InvalidInput, ReadOnlyError
from .explain import Explanation
from .hybrid import Fusion, Mode, Ranking, keywords
from .index import specs
from .index.ivf import TrainedModel
from .index.trace import Trace, stage
from .reader import AnnOptions, Reader
from .results import GetResult, QueryResult
from .storage.catalog import CollectionRecord
from .store import Store
from .writes import Writer

if TYPE_CHECKING:
    from .analogies import AnalogyReport
    from .audit import CollectionInfo
    from .classification import Classification, ClassifierReport
    from .clustering import Clustering
    from .duplicates import Duplicates
    from .ingest import IngestResult
    from .maps import Projection
    from .portable import ExportInfo
    from .staged import StagedIngest

__all__ = ["METRICS", "Collection"]


class Collection:
    """A named set of rows ``(id, vector, document, metadata)`` of one dimension and metric.

    Get one from ``Database.create_collection`` or ``Database.get_collection``. A collection
    keeps its database open: ``vecstore.open(path).get_collection(name)`` stays usable until
    the database is closed.
    """

    def __init__(self, store: Store, record: CollectionRecord, *, owner: object = None):
        # ``owner``: the Database this came from, held so that garbage collection does not
        # close the store (Database.__del__) while the collection is in use
        self._owner = owner
        self._record = record
        self._config = CollectionConfig.of(record)
        self._embedder = Embedder(store, record, self._config.encoder)
        self._reader = Reader(store, record)
        self._writer = Writer(store, record, self._reader, self._embedder)
        self._store = store

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def dim(self) -> int:
        return self._record.dim

    @property
    def metric(self) -> Metric:
        return self._record.metric  # type: ignore[return-value]  # checked when made

    @property
    def vectors(self) -> str:
        """How exact queries read the vectors: "float32", or the compressed codes
        ("float16", "int8", "binary") re-ranked with the float32 originals."""
        return self._config.vectors

    @property
    def encoder(self) -> Encoder | None:
        """The encoder of an embedding collection (rebuilt from its stored spec on first
        use), or None for a collection of plain vectors."""
        return self._embedder.encoder

    @property
    def encoder_spec(self) -> EncoderSpec | None:
        """What the catalog records about the collection's encoder (model, dim, prefixes,
        revision), or None for a collection of plain vectors."""
        return self._config.encoder

    @property
    def language(self) -> str:
        """The language of the keyword index's stemmer and stopwords (``"english"`` unless
        the collection was created with another)."""
        return self._config.text.language

    def __repr__(self) -> str:
        spec = self._config.encoder
        enc = f" encoder={spec.model!r}" if spec is not None else ""
        lang = "" if self.language == "english" else f" language={self.language!r}"
        vec = "" if self.vectors == "float32" else f" vectors={self.vectors!r}"
        return (
            f"<vecstore.Collection {self.name!r} dim={self.dim} metric={self.metric!r}"
            f"{enc}{lang}{vec}>"
        )

    # -- writes -------------------------------------------------------------------------

    @inputs.chroma_names
    def add(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
        images: Sequence[Any] | None = None,
        skip_duplicates: float | None = None,
    ) -> list[str]:
        """Add new rows. Raises ``DuplicateIdError`` (and adds nothing) if any id exists.
        Returns the ids of the rows skipped as near-duplicates (none without
        ``skip_duplicates``).

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
        images : list, optional
            For a collection with a CLIP encoder, instead of ``vectors``: one image per id
            (a file path, a PIL image, or an array ``(height, width[, 3])``), embedded as
            the row's vector; the documents may hold the images' paths or captions.
        skip_duplicates : float, optional
            A score threshold (as ``QueryResult.scores``: cosine, inner product, or minus the
            squared L2 distance): a row scoring at least this against a stored row, or
            against an earlier row of this call that is added, is skipped. The check and
            the write are one transaction.
        """
        vectors = self._image_vectors(ids, vectors, images)
        rows = self._writer.rows(ids, vectors, documents, metadata)
        if skip_duplicates is None:
            self._writer.insert(rows, replace=False)
            return []
        return self._writer.insert_novel(rows, self._threshold(skip_duplicates))

    @inputs.chroma_names
    def upsert(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
        images: Sequence[Any] | None = None,
    ) -> None:
        """Add rows, replacing whole any row whose id exists (vector, document and metadata);
        ``images`` as for ``add``."""
        vectors = self._image_vectors(ids, vectors, images)
        self._writer.insert(self._writer.rows(ids, vectors, documents, metadata), replace=True)

    def _image_vectors(self, ids: Any, vectors: Any, images: Any) -> Any:
        """``vectors``, or the embeddings of ``images`` (checked against ``ids`` first)."""
        if images is None:
            return vectors
        if vectors is not None:
            raise InvalidInput("pass vectors or images, not both")
        n = len(inputs.ids(ids))
        if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
            raise InvalidInput(f"images must be a list, one per id; got {type(images).__name__}")
        if len(images) != n:
            raise InvalidInput(f"got {len(images)} images for {n} ids")
        return self._embedder.images(images)

    @inputs.chroma_names
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
        self._writer.update(self._writer.changes(ids, vectors, documents, metadata))

    @inputs.chroma_names
    def delete(self, ids: Sequence[str] | None = None, *, where: dict | None = None) -> int:
        """Delete rows by id, by filter, or both (rows matching both); return how many.

        Ids that do not exist are ignored. ``where={}`` matches every row.
        """
        if ids is None and where is None:
            raise InvalidInput("delete() needs ids, a where filter, or both")
        return self._writer.delete(None if ids is None else inputs.ids(ids), where)

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
        # A batch is one upsert, which takes at most MAX_BATCH ids.
        batch_size = inputs.integer("batch_size", batch_size, minimum=1, maximum=inputs.MAX_BATCH)
        write = self.upsert if replace else self.add
        total = len(rows) if hasattr(rows, "__len__") else None
        done = 0
        with self._store.progress(total or 0, "writing") as advance:
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

    def stage(self) -> StagedIngest:
        """A staged ingest into this collection (vecstore/staged.py): other processes embed
        and write partitions into the store's staging area, and ``adopt`` publishes them
        in one transaction. ``vecstore.dask.ingest`` runs one on a Dask cluster."""
        from .staged import StagedIngest

        if self._store.read_only:
            raise ReadOnlyError(f"store {self._store.path} was opened read-only")
        return StagedIngest(self._store, self._record, self._writer)

    def compact(self) -> None:
        """Seal pending vectors and rewrite every segment into one, dropping deleted vectors.

        Afterwards no deleted or replaced vector remains on disk. Readers are never blocked;
        they switch to the new segment on their next query.
        """
        self._writer.compact()

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
            self._writer,
            self._store,
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

        return export(self, self._reader, dest, format=format)

    def to_arrow(
        self,
        *,
        where: dict | None = None,
        where_document: dict | None = None,
        include_vectors: bool = True,
        flatten: bool = False,
    ) -> Any:
        """The rows (those matching the filters) as a ``pyarrow.Table`` from one snapshot, in
        storage order (insertion order until merges and upserts move rows): ``id``,
        ``document``, ``vector`` (fixed-size list of float32, over the mapped segments
        without a copy where no row of a segment is deleted or filtered out) and ``metadata``
        (JSON text, exact), or one column per key with ``flatten=True``. Needs the
        ``[arrow]`` extra."""
        from .integrations.arrow import table_of

        include_vectors = inputs.flag("include_vectors", include_vectors)
        flatten = inputs.flag("flatten", flatten)
        rows = self._reader.table_rows(where, where_document)
        return table_of(rows, include_vectors=include_vectors, flatten=flatten)

    def to_pandas(
        self,
        *,
        where: dict | None = None,
        where_document: dict | None = None,
        include_vectors: bool = True,
        flatten: bool = False,
    ) -> Any:
        """``to_arrow`` as a pandas DataFrame: vectors as float32 arrays, metadata as dicts
        (or a column per key with ``flatten=True``). Needs the ``[arrow]`` extra."""
        from .integrations.arrow import frame_of

        table = self.to_arrow(
            where=where,
            where_document=where_document,
            include_vectors=include_vectors,
            flatten=flatten,
        )
        return frame_of(table, self.dim, flatten=flatten)

    def add_arrow(
        self,
        table: Any,
        *,
        id: str = "id",
        text: str | None = "document",
        vector: str | None = "vector",
        metadata: str | Sequence[str] | None = "metadata",
        batch_size: int = 4096,
        replace: bool = True,
    ) -> int:
        """Write a ``pyarrow.Table``'s rows, naming its id, text, vector and metadata columns
        (one column of JSON text or dicts, or a list of columns, one key each); one atomic
        upsert (``add`` if not ``replace``) per ``batch_size`` rows. Returns the rows written.
        Needs the ``[arrow]`` extra."""
        from .integrations.arrow import add_arrow

        return add_arrow(
            self,
            table,
            id=id,
            text=text,
            vector=vector,
            metadata=metadata,
            batch_size=batch_size,
            replace=replace,
        )

    def add_dataframe(
        self,
        frame: Any,
        *,
        id: str = "id",
        text: str | None = "document",
        vector: str | None = "vector",
        metadata: str | Sequence[str] | None = "metadata",
        batch_size: int = 4096,
        replace: bool = True,
    ) -> int:
        """``add_arrow`` for a pandas DataFrame (a NaN in a metadata column leaves that key
        out, as pandas' missing value). Needs the ``[arrow]`` extra."""
        from .integrations.arrow import add_dataframe

        return add_dataframe(
            self,
            frame,
            id=id,
            text=text,
            vector=vector,
            metadata=metadata,
            batch_size=batch_size,
            replace=replace,
        )

    def info(self) -> CollectionInfo:
        """Row count, dim, metric, encoder, index, segments and disk size."""
        from .audit import info

        return info(self.name, self._reader)

    # -- reads --------------------------------------------------------------------------

    @inputs.chroma_names
    def count(self, where: dict | None = None) -> int:
        """Number of rows, or of rows matching ``where``."""
        return self._reader.count(where)

    @inputs.chroma_names
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
        limit = inputs.integer("limit", limit, optional=True)
        offset = inputs.integer("offset", offset)
        ids = None if ids is None else inputs.ids(ids)
        return self._reader.get(ids, where, where_document, limit, offset, include_vectors)

    @inputs.chroma_names
    def peek(self, n: int = 10) -> GetResult:
        """The first ``n`` rows in insertion order."""
        return self.get(limit=n)

    @inputs.chroma_names
    def query(
        self,
        q: Any = None,
        *,
        image: Any = None,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        mode: Mode = "vector",
        text: str | None = None,
        fusion: Fusion | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
        exclude_ids: Sequence[str] | None = None,
        ef: int | None = None,
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
        index's values for this query (the vector half of a hybrid one too), as ``ef`` (the
        beam width) does for an HNSW index; ``exact=True`` bypasses the index. Passing them
        where they do not apply (to a collection whose spec has no such parameter, or in text
        mode) raises ``InvalidInput``.

        ``image`` (a path, PIL image or array), instead of ``q``: the rows most similar to
        that image, for a collection with a CLIP encoder (vector mode, or hybrid with
        ``text=``).

        ``exclude_ids``: rows never returned (as if a filter left them out, so the result
        still has ``min(k, matching rows)`` rows); ids that do not exist are ignored.
        """
        if (
            type(q) is np.ndarray
            and where_document is None
            and exclude_ids is None
            and mode == "vector"
            and image is None
            and refine is None
            and exact is False
            and text is None
            and fusion is None
            and rrf_k is None
            and weight is None
        ):  # one vector, no option but k, ef, nprobe or a where filter
            got = None
            if where is None:  # the common query: one vector, nothing else
                got = self._reader.quick(q, k, ef, nprobe)
            elif type(where) is dict and ef is None:  # a filter the caches may answer
                got = self._reader.quick_filtered(q, k, where, nprobe)
            if got is not None:
                return got
        return self._query(
            q, image, k, where, where_document, mode, text, fusion, rrf_k, weight, nprobe,
            refine, exact, exclude_ids, ef, None,
        )  # fmt: skip

    @inputs.chroma_names
    def explain(
        self,
        q: Any = None,
        *,
        image: Any = None,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        mode: Mode = "vector",
        text: str | None = None,
        fusion: Fusion | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
        exclude_ids: Sequence[str] | None = None,
        ef: int | None = None,
    ) -> Explanation:
        """Run ``query`` with the same arguments and say how it was answered: the plan
        chosen (exact, filtered scan, IVF, IVF-PQ, HNSW, keyword or hybrid) and why, the filter's
        selectivity, the segments touched, the lists probed, the candidates scored and rows
        re-ranked, and the time of each stage. The query runs exactly as ``query`` runs it
        (the same code, recording as it goes); ``Explanation.result`` is its result.
        """
        trace = Trace()
        with trace.stage("total"):
            result = self._query(
                q, image, k, where, where_document, mode, text, fusion, rrf_k, weight, nprobe,
                refine, exact, exclude_ids, ef, trace,
            )  # fmt: skip
        return Explanation.of(trace, result, k=k, mode=mode)

    def _query(
        self, q, image, k, where, where_document, mode, text, fusion, rrf_k, weight, nprobe,
        refine, exact, exclude_ids, ef, trace,
    ) -> QueryResult:  # fmt: skip
        """``query``'s work, recording into ``trace`` if given (``explain``)."""
        if image is not None:
            if q is not None:
                raise InvalidInput("pass q or image, not both")
            if mode == "text":
                raise InvalidInput("an image query needs mode='vector' or 'hybrid'")
            q = self._embedder.images([image])[0]
        elif q is None:
            raise InvalidInput("query needs q (a vector or a text) or image=")
        ranking = Ranking.of(mode, fusion, rrf_k, weight)
        texts = keywords(q, text, mode, many=False)
        ann = AnnOptions.of(mode, nprobe, refine, exact, ef)
        k = inputs.top_k(k)
        skip = None if exclude_ids is None else inputs.ids(exclude_ids, what="exclude_ids")
        reader = self._reader
        if mode == "text":
            return reader.ranked(None, texts, k, where, where_document, ranking, None, skip, trace)[
                0
            ]
        with stage(trace, "embed" if isinstance(q, str) else "check input"):
            xq = (
                self._query_vectors([q]) if isinstance(q, str) else inputs.query_vector(q, self.dim)
            )
        if mode == "hybrid":
            return reader.ranked(xq, texts, k, where, where_document, ranking, ann, skip, trace)[0]
        return reader.search(xq, k, where, where_document, ann, skip, trace)[0]

    @inputs.chroma_names
    def query_many(
        self,
        queries: Any,
        *,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        mode: Mode = "vector",
        text: Sequence[str] | None = None,
        fusion: Fusion | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
        exclude_ids: Sequence[str] | None = None,
        ef: int | None = None,
    ) -> list[QueryResult]:
        """``query`` for each row of a 2-D ``(nq, dim)`` array, or each text of a list (for an
        embedding collection, or keywords in text mode); one ``QueryResult`` per query.
        ``text`` is a list of keyword queries, one per query (hybrid mode).

        One call takes at most 100,000 queries (``inputs.MAX_QUERIES``) and 10,000,000
        results (``nq * k``, ``inputs.MAX_RESULTS``); more raise ``InvalidInput``: split
        them into several calls. ``exclude_ids`` are left out of every query's results.
        """
        ranking = Ranking.of(mode, fusion, rrf_k, weight)
        texts = keywords(queries, text, mode, many=True)
        ann = AnnOptions.of(mode, nprobe, refine, exact, ef)
        k = inputs.top_k(k)
        skip = None if exclude_ids is None else inputs.ids(exclude_ids, what="exclude_ids")
        if mode == "text":
            inputs.query_batch(len(texts), k)
            return self._reader.ranked(None, texts, k, where, where_document, ranking, None, skip)
        if isinstance(queries, (list, tuple)) and queries and isinstance(queries[0], str):
            inputs.query_batch(len(queries), k)
            xq = self._query_vectors(queries)
        else:
            xq = inputs.matrix(queries, self.dim, what="queries")
            inputs.query_batch(len(xq), k)
        if mode == "hybrid":
            return self._reader.ranked(xq, texts, k, where, where_document, ranking, ann, skip)
        return self._reader.search(xq, k, where, where_document, ann, skip)

    def _query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder.queries(texts)

    # -- beyond search: docs/applications.md ---------------------------------------------

    def cluster(
        self,
        k: int,
        *,
        where: dict | None = None,
        seed: int = 0,
        max_iter: int = 300,
        write_to: str | None = None,
    ) -> Clustering:
        """k-means of the rows (those ``where`` keeps) into ``k`` clusters: spherical for a
        cosine collection, under L2 otherwise, seeded by k-means++ and streamed over the
        segments (memory holds the centroids and a block of rows, not the collection).

        ``write_to="field"`` stores each row's cluster number in its metadata under that key
        (other keys unchanged), for every clustered row in one transaction.
        """
        from .clustering import cluster

        k = inputs.integer("k", k, minimum=1, maximum=inputs.MAX_K)
        seed = inputs.integer("seed", seed)
        max_iter = inputs.integer("max_iter", max_iter, minimum=1)
        if write_to is not None:
            inputs.metadata([{write_to: 0}], 1)
            if self._store.read_only:  # before the work, not after it
                raise ReadOnlyError(f"store {self._store.path} was opened read-only: write_to")
        result = cluster(self._reader.live_rows(where), k, seed=seed, max_iter=max_iter)
        if write_to is not None:
            self._writer.set_field(result.ids, write_to, result.labels.tolist())
        return result

    def classify(
        self,
        queries: Any = None,
        *,
        ids: Sequence[str] | None = None,
        label: str,
        k: int = 10,
        weights: str = "distance",
        where: dict | None = None,
    ) -> Classification:
        """Predict metadata ``label`` by the votes of the ``k`` nearest rows that have one
        (a str, number or bool; among the rows ``where`` keeps).

        ``queries`` are texts (for an embedding collection: embedded as documents) or a 2-D
        ``(nq, dim)`` array; or classify stored rows by ``ids`` instead, each row left out
        of its own neighbours. ``weights="distance"`` weighs a vote by 1/distance (1 - cos,
        or the Euclidean distance; not for dot collections), ``"uniform"`` counts votes.
        """
        from .classification import classify

        k, weights = self._knn_args(label, k, weights)
        if (queries is None) == (ids is None):
            raise InvalidInput("classify() takes queries (texts or vectors) or ids, not both")
        xq = None
        if isinstance(queries, str):
            queries = [queries]
        if ids is not None:
            ids = inputs.ids(ids)
        elif isinstance(queries, (list, tuple)) and queries and isinstance(queries[0], str):
            xq = self._embedder.embed(list(queries), "document")
        else:
            xq = inputs.matrix(queries, self.dim, what="queries")
        return classify(self._reader, xq, ids, label=label, k=k, weights=weights, where=where)

    def evaluate_classifier(
        self,
        *,
        label: str,
        k: int = 10,
        weights: str = "distance",
        where: dict | None = None,
        holdout: float | None = None,
        seed: int = 0,
    ) -> ClassifierReport:
        """How well ``classify`` predicts ``label`` on the rows that have one: each row by
        all the others (leave-one-out), or with ``holdout`` (a share in (0, 1)) a random
        share of the rows (by ``seed``) by the rest."""
        from .classification import evaluate

        k, weights = self._knn_args(label, k, weights)
        if holdout is not None:
            holdout = inputs.number("holdout", holdout, minimum=0.0, maximum=1.0)
            if not 0.0 < holdout < 1.0:
                raise InvalidInput(f"holdout must be a share between 0 and 1; got {holdout}")
        seed = inputs.integer("seed", seed)
        return evaluate(
            self._reader, label=label, k=k, weights=weights, where=where, holdout=holdout,
            seed=seed,
        )  # fmt: skip

    def _knn_args(self, label: Any, k: Any, weights: Any) -> tuple[int, str]:
        from .classification import WEIGHTS

        inputs.metadata([{label: 0}], 1)
        if weights not in WEIGHTS:
            raise InvalidInput(f"weights must be one of {WEIGHTS}; got {weights!r}")
        if weights == "distance" and self.metric == "dot":
            raise InvalidInput(
                "weights='distance' needs a distance; a dot collection has none: use "
                "weights='uniform'"
            )
        return inputs.top_k(k), weights

    def recommend(
        self,
        positive: Sequence[Any] | None = None,
        negative: Sequence[Any] | None = None,
        *,
        k: int = 10,
        where: dict | None = None,
        strategy: str = "average",
    ) -> QueryResult:
        """Rows like the ``positive`` examples and unlike the ``negative`` ones, best first;
        examples are ids of stored rows or vectors, and never in the result.

        ``strategy="average"`` queries ``2 * mean(positive) - mean(negative)`` (Qdrant's
        average_vector); ``"best_score"`` scores each row by its best positive and best
        negative similarity (Qdrant's best_score, an exact scan; works with negatives
        alone): see docs/applications.md.
        """
        from .recommendation import STRATEGIES, recommend

        if strategy not in STRATEGIES:
            raise InvalidInput(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
        pos = self._examples("positive", positive)
        neg = self._examples("negative", negative)
        if not pos and (strategy == "average" or not neg):
            raise InvalidInput(
                "recommend() needs a positive example (best_score also takes negatives alone)"
            )
        k = inputs.top_k(k)
        return recommend(self._reader, pos, neg, k=k, where=where, strategy=strategy)

    def _examples(self, name: str, values: Any) -> list[str | np.ndarray]:
        if values is None:
            return []
        if isinstance(values, (str, np.ndarray)) or not isinstance(values, Sequence):
            raise InvalidInput(f"{name} must be a list of ids and vectors; got {values!r:.80}")
        out: list[str | np.ndarray] = []
        for v in values:
            if isinstance(v, str):
                out.append(inputs.ids([v], what=f"{name} ids")[0])
            else:
                out.append(inputs.matrix(v, self.dim, n=1, what=f"{name} vectors")[0])
        return out

    def duplicates(
        self, threshold: float, *, where: dict | None = None, k: int | None = None
    ) -> Duplicates:
        """Every pair of rows (those ``where`` keeps) scoring at least ``threshold``, found
        by an exact self-join: ``(id_a, id_b, score)``, best first, ``id_a`` the older.

        ``threshold`` is a score as ``QueryResult.scores`` gives it (cosine, inner product,
        or minus the squared L2 distance). With ``k``, a pair is kept only if it is among
        the ``k`` best pairs of one of its rows.
        """
        from .duplicates import find

        threshold = self._threshold(threshold)
        k = None if k is None else inputs.top_k(k)
        return find(self._reader.live_rows(where), threshold, k)

    def _threshold(self, value: Any) -> float:
        if self.metric == "l2":
            return inputs.number("threshold", value, minimum=-float("inf"), maximum=0.0)
        return inputs.number("threshold", value, minimum=-float("inf"))

    # -- word vectors: docs/applications.md#word-vectors-and-analogies ---------------------

    def analogy(
        self, a: str, b: str, c: str, *, k: int = 1, method: str = "3cosadd",
        where: dict | None = None,
    ) -> QueryResult:  # fmt: skip
        """The ``k`` best answers to "``a`` is to ``b`` as ``c`` is to ?" (ids of stored
        rows, typically words), never ``a``, ``b`` or ``c``, among the rows ``where`` keeps.

        ``method="3cosadd"`` ranks rows x by ``cos(x, b - a + c)`` on unit vectors (the
        scores are those cosines); ``"3cosmul"`` by ``cos'(x, b) cos'(x, c) / (cos'(x, a) +
        1e-6)`` with ``cos' = (1 + cos) / 2`` (Levy and Goldberg; the result's ``mode`` is
        ``"analogy"`` and its scores these values). Exact, and for a cosine collection only.
        """
        from .analogies import analogy

        words = [inputs.ids([w], what=name)[0] for name, w in (("a", a), ("b", b), ("c", c))]
        method = self._analogy_method(method)
        return analogy(self._reader, *words, k=inputs.top_k(k), method=method, where=where)

    def most_similar(
        self,
        positive: Sequence[Any] | None = None,
        negative: Sequence[Any] | None = None,
        *,
        k: int = 10,
        where: dict | None = None,
    ) -> QueryResult:
        """gensim's ``most_similar``: the ``k`` rows of highest cosine with the sum of the
        ``positive`` examples less the ``negative`` ones, where an example is an id (its
        stored vector at unit length) or a vector (as given); the ids given are never
        returned. ``most_similar(["king", "woman"], ["man"])`` is the 3CosAdd analogy
        "man is to king as woman is to ?". Exact, and for a cosine collection only.
        """
        from .analogies import most_similar

        self._analogy_method("3cosadd")
        pos = self._examples("positive", positive)
        neg = self._examples("negative", negative)
        if not pos and not neg:
            raise InvalidInput("most_similar() needs a positive or a negative example")
        words = [e for e in pos + neg if isinstance(e, str)]
        if len(set(words)) != len(words):
            raise InvalidInput(f"an id is given twice among the examples: {words}")
        return most_similar(self._reader, pos, neg, k=inputs.top_k(k), where=where)

    def evaluate_analogies(
        self,
        questions: Any = None,
        *,
        method: str = "3cosadd",
        where: dict | None = None,
        lowercase: bool = True,
    ) -> AnalogyReport:
        """Accuracy on an analogy test set, per section and overall: each question
        ``(section, a, b, c, expected)`` is right when ``analogy(a, b, c, k=1)`` is
        ``expected``. ``where`` restricts the vocabulary (the candidates, and the words a
        question may use: a question with a word outside it is skipped, as gensim's
        ``restrict_vocab`` does).

        ``questions``: a list of such tuples, the path of a file in ``questions-words.txt``'s
        format, or None for Google's set from gensim's test data (``pip install gensim``).
        ``lowercase`` looks the question words up in lower case (GloVe's vocabulary is
        uncased). The questions are answered in batches through the exact kernels.
        """
        from .analogies import evaluate
        from .corpora import google_analogies

        method = self._analogy_method(method)
        lowercase = inputs.flag("lowercase", lowercase)
        if questions is None or isinstance(questions, (str, os.PathLike)):
            questions = google_analogies(questions)
        questions = inputs.analogy_questions(questions)
        return evaluate(self._reader, questions, method=method, where=where, lowercase=lowercase)

    def _analogy_method(self, method: Any) -> str:
        from .analogies import METHODS

        if self.metric != "cosine":
            raise InvalidInput(
                f"analogies and most_similar rank by cosine; collection {self.name!r} has "
                f"metric {self.metric!r}: store the word vectors in a cosine collection"
            )
        if method not in METHODS:
            raise InvalidInput(f"method must be one of {METHODS}; got {method!r}")
        return method

    # -- a map of the space: docs/applications.md#a-map-of-the-space ----------------------

    def project(
        self,
        dims: int = 2,
        *,
        method: str = "pca",
        where: dict | None = None,
        sample: int | None = None,
        seed: int = 0,
    ) -> Projection:
        """The rows (those ``where`` keeps; a seeded uniform ``sample`` of them if given) in
        ``dims`` dimensions: ``Projection(ids, coords, method, explained)``.

        ``method="pca"``: principal components, in NumPy, streamed over the rows (memory
        holds the coordinates); ``"umap"``: UMAP (umap-learn, ``pip install
        'vecstore[umap]'``), which holds the rows in memory: pass ``sample`` for a large
        collection. A cosine collection is projected at unit length.
        """
        from .maps import project

        dims, method, sample, seed = self._map_args(dims, method, sample, seed)
        return project(self._reader.live_rows(where), dims, method, sample, seed)

    def _map_args(self, dims: Any, method: Any, sample: Any, seed: Any) -> tuple:
        from .maps import METHODS

        if method not in METHODS:
            raise InvalidInput(f"method must be one of {METHODS}; got {method!r}")
        dims = inputs.integer("dims", dims, minimum=1, maximum=self.dim)
        sample = inputs.integer("sample", sample, minimum=1, optional=True)
        return dims, method, sample, inputs.integer("seed", seed)

    def plot(
        self,
        path: Any,
        *,
        color_by: str | None = None,
        method: str = "pca",
        where: dict | None = None,
        sample: int | None = None,
        seed: int = 0,
        annotate: int = 10,
        label_by: str | None = None,
        title: str | None = None,
    ) -> Path:
        """Write a 2-D map of the rows (``project(2, ...)``) as a PNG or SVG scatter (by
        ``path``'s suffix; matplotlib, ``pip install 'vecstore[plot]'``).

        ``color_by``: a metadata field; its 19 most frequent values get a colour each (all
        of them if there are at most 20) and a legend entry with their count, the rest and
        rows without one share grey "other". ``annotate`` points are labelled by the
        metadata field ``label_by`` (default: the id), the most central of each of the
        largest groups. Returns the path written.
        """
        from .maps import plot

        path = Path(path)
        if path.suffix.lower() not in (".png", ".svg"):
            raise InvalidInput(f"plot writes .png or .svg files; got {str(path)!r}")
        annotate = inputs.integer("annotate", annotate)
        proj = self.project(2, method=method, where=where, sample=sample, seed=seed)
        meta = self._metadata_of(proj.ids) if color_by or label_by else {}
        colors = None if not color_by else [meta.get(i, {}).get(color_by) for i in proj.ids]
        names = proj.ids
        if label_by:
            names = [str(meta.get(i, {}).get(label_by, i)) for i in proj.ids]
        return plot(path, proj, colors, names, color_by=color_by, annotate=annotate, title=title)

    def export_projector(
        self,
        folder: Any,
        *,
        fields: Sequence[str] | None = None,
        where: dict | None = None,
        sample: int | None = None,
        seed: int = 0,
    ) -> dict:
        """Write the rows (those ``where`` keeps; a seeded ``sample`` of them) for the
        TensorFlow Embedding Projector (projector.tensorflow.org, "Load"): ``vectors.tsv``,
        ``metadata.tsv`` and ``projector_config.json`` in ``folder`` (created if missing).

        ``metadata.tsv`` has a header line, then per row its id and ``fields`` (metadata
        keys, or ``"document"``; default: every metadata key the rows use, and ``document``
        if any row has one); tabs and newlines inside values are written as ``\\t`` and
        ``\\n``. Returns the config written.
        """
        from .maps import sampled, write_projector

        if fields is not None:
            if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
                raise InvalidInput(f"fields must be a list of str; got {fields!r:.80}")
            fields = list(fields)
        sample = inputs.integer("sample", sample, minimum=1, optional=True)
        rows = self._reader.live_rows(where)
        picked = sampled(rows, sample, inputs.integer("seed", seed))
        ids = rows.ids if picked is None else [rows.ids[i] for i in picked.tolist()]
        got = self._metadata_of(ids, documents=True)
        if fields is None:
            keys = sorted({k for m, _ in got.values() for k in m})
            has_docs = any(d is not None for _, d in got.values())
            fields = keys + (["document"] if has_docs and "document" not in keys else [])
        table = []
        for i in ids:
            m, doc = got.get(i, ({}, None))
            table.append(
                [i, *(doc if f == "document" and f not in m else m.get(f) for f in fields)]
            )
        return write_projector(Path(folder), rows, picked, table, ["id", *fields], name=self.name)

    def _metadata_of(self, ids: list[str], *, documents: bool = False) -> dict:
        """Each of ``ids``'s metadata (with its document if ``documents``), read in batches."""
        out: dict = {}
        for lo in range(0, len(ids), inputs.MAX_BATCH):
            res = self.get(ids[lo : lo + inputs.MAX_BATCH])
            for i, m, d in zip(res.ids, res.metadata, res.documents):
                out[i] = (m, d) if documents else m
        return out

    # -- the ANN index ------------------------------------------------------------------

    @property
    def index(self) -> specs.Spec:
        """The collection's index spec (``Flat()``, ``IVF(...)``, ``IVFPQ(...)`` or
        ``HNSW(...)``)."""
        return self._reader.index_spec()

    def index_info(self) -> dict:
        """The spec and, once trained, the model's resolved parameters: ``kind``,
        ``trained``, ``nlist``, ``nprobe``, ``m``, ``nbits``, ``refine``, ``train_rows`` and
        ``indexed_rows`` (rows in lists; the rest are searched exactly). For HNSW: ``kind``,
        ``trained`` (the graphs exist), ``M``, ``ef_construction``, ``ef_search`` and
        ``indexed_rows`` (rows in segments with a graph)."""
        return self._reader.index_info()

    def install_index(self, spec: specs.Spec, model: TrainedModel) -> None:
        """Index with ``spec`` under a model trained elsewhere (``vecstore.sharded``
        trains one for all its shards): every row is listed under it in one transaction,
        and upkeep never retrains a shared model on its own."""
        if not isinstance(model, TrainedModel):
            raise InvalidInput(f"model must be a TrainedModel; got {type(model).__name__}")
        if model.meta.get("kind") != spec.kind or model.meta.get("metric") != self.metric:
            raise InvalidInput(
                f"the model is a {model.meta.get('kind')} model for metric "
                f"{model.meta.get('metric')!r}; the spec is {spec.kind}, the collection's "
                f"metric {self.metric!r}"
            )
        if model.arrays["centroids"].shape[1] != self.dim:
            raise InvalidInput(
                f"the model's centroids have dim {model.arrays['centroids'].shape[1]}; "
                f"collection {self.name!r} has dim {self.dim}"
            )
        self._writer.install_model(spec, model.arrays, model.meta)

    def create_index(self, spec: specs.Spec) -> None:
        """Replace the collection's index spec, dropping any trained index.

        An IVF or IVFPQ spec is trained at once if the collection already holds its
        ``min_rows`` (this call then takes as long as training: seconds per 100k rows),
        else when it grows to them; an HNSW spec builds a graph for every segment then (and
        for every segment written after). ``Flat()`` returns the collection to exact search.
        Readers are never blocked: they search the old index until this commits.
        """
        self._writer.set_index(specs.check(spec, self.dim))


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch
