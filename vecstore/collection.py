"""A collection: ids, vectors, documents and metadata, searchable by similarity.

``Collection`` is the public face of one collection. It checks a call's arguments and hands
the work to its ``Reader`` (counts, gets and queries, each in one read transaction over a
consistent snapshot) or its ``Writer`` (inserts, changes, deletes and compaction, each one
durable transaction). Both share the store's engine (``store.Store``). Writes are wholly
visible or not at all, and durable when the call returns (``writes.py`` says how).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import inputs
from .config import METRICS, CollectionConfig
from .embedding import Embedder
from .encoders.base import Encoder, EncoderSpec
from .errors import InvalidInput
from .hybrid import Ranking, keywords
from .index import specs
from .reader import AnnOptions, Reader
from .results import GetResult, QueryResult
from .storage.catalog import CollectionRecord
from .store import Store
from .writes import Writer

if TYPE_CHECKING:
    import numpy as np

    from .audit import CollectionInfo
    from .ingest import IngestResult
    from .portable import ExportInfo

__all__ = ["METRICS", "Collection"]


class Collection:
    """A named set of rows ``(id, vector, document, metadata)`` of one dimension and metric.

    Get one from ``Database.create_collection`` or ``Database.get_collection``.
    """

    def __init__(self, store: Store, record: CollectionRecord):
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
    def metric(self) -> str:
        return self._record.metric

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
        return (
            f"<vecstore.Collection {self.name!r} dim={self.dim} metric={self.metric!r}{enc}{lang}>"
        )

    # -- writes -------------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
        images: Sequence[Any] | None = None,
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
        images : list, optional
            For a collection with a CLIP encoder, instead of ``vectors``: one image per id
            (a file path, a PIL image, or an array ``(height, width[, 3])``), embedded as
            the row's vector; the documents may hold the images' paths or captions.
        """
        vectors = self._image_vectors(ids, vectors, images)
        self._writer.insert(self._writer.rows(ids, vectors, documents, metadata), replace=False)

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

    def info(self) -> CollectionInfo:
        """Row count, dim, metric, encoder, index, segments and disk size."""
        from .audit import info

        return info(self.name, self._reader)

    # -- reads --------------------------------------------------------------------------

    def count(self, where: dict | None = None) -> int:
        """Number of rows, or of rows matching ``where``."""
        return self._reader.count(where)

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

    def peek(self, n: int = 10) -> GetResult:
        """The first ``n`` rows in insertion order."""
        return self.get(limit=n)

    def query(
        self,
        q: Any = None,
        *,
        image: Any = None,
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

        ``image`` (a path, PIL image or array), instead of ``q``: the rows most similar to
        that image, for a collection with a CLIP encoder (vector mode, or hybrid with
        ``text=``).
        """
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
        ann = AnnOptions.of(mode, nprobe, refine, exact)
        k = inputs.top_k(k)
        if mode == "text":
            return self._reader.ranked(None, texts, k, where, where_document, ranking)[0]
        xq = self._query_vectors([q]) if isinstance(q, str) else inputs.query_vector(q, self.dim)
        if mode == "hybrid":
            return self._reader.ranked(xq, texts, k, where, where_document, ranking, ann)[0]
        return self._reader.search(xq, k, where, where_document, ann)[0]

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
        ann = AnnOptions.of(mode, nprobe, refine, exact)
        k = inputs.top_k(k)
        if mode == "text":
            inputs.query_batch(len(texts), k)
            return self._reader.ranked(None, texts, k, where, where_document, ranking)
        if isinstance(queries, (list, tuple)) and queries and isinstance(queries[0], str):
            inputs.query_batch(len(queries), k)
            xq = self._query_vectors(queries)
        else:
            xq = inputs.matrix(queries, self.dim, what="queries")
            inputs.query_batch(len(xq), k)
        if mode == "hybrid":
            return self._reader.ranked(xq, texts, k, where, where_document, ranking, ann)
        return self._reader.search(xq, k, where, where_document, ann)

    def _query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder.queries(texts)

    # -- the ANN index ------------------------------------------------------------------

    @property
    def index(self) -> specs.Spec:
        """The collection's index spec (``Flat()``, ``IVF(...)`` or ``IVFPQ(...)``)."""
        return self._reader.index_spec()

    def index_info(self) -> dict:
        """The spec and, once trained, the model's resolved parameters: ``kind``,
        ``trained``, ``nlist``, ``nprobe``, ``m``, ``nbits``, ``refine``, ``train_rows`` and
        ``indexed_rows`` (rows in lists; the rest are searched exactly)."""
        return self._reader.index_info()

    def create_index(self, spec: specs.Spec) -> None:
        """Replace the collection's index spec, dropping any trained index.

        An IVF or IVFPQ spec is trained at once if the collection already holds its
        ``min_rows`` (this call then takes as long as training: seconds per 100k rows),
        else when it grows to them. ``Flat()`` returns the collection to exact search.
        Readers are never blocked: they search the old index until this commits.
        """
        self._writer.set_index(specs.check(spec, self.dim))


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch
