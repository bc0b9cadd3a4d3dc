"""LangChain's ``VectorStore`` over a vecstore collection (the extra ``[langchain]``).

``VecstoreVectorStore`` turns LangChain calls into ``Collection`` calls: texts are embedded by
a LangChain ``Embeddings`` object, or by the collection's own encoder when it has one;
``filter=`` is a vecstore ``where`` filter. Imports langchain-core and vecstore's public API
only, and is never imported by ``import vecstore``.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..database import open as open_store
from ..errors import CollectionNotFound, InvalidInput
from .deps import need

need("langchain_core", "langchain")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from langchain_core.vectorstores.utils import maximal_marginal_relevance  # noqa: E402

__all__ = ["VecstoreVectorStore"]

DEFAULT_COLLECTION = "langchain"


def _no_extras(method: str, kwargs: dict[str, Any]) -> None:
    # LangChain's signatures end in **kwargs; vecstore ignores no argument silently.
    if kwargs:
        raise InvalidInput(
            f"{method}() got unexpected keyword arguments {sorted(kwargs)}: vecstore's "
            "LangChain store takes filter= (a vecstore where filter) and where_document="
        )


class VecstoreVectorStore(VectorStore):
    """A LangChain vector store backed by a vecstore ``Collection``.

    Parameters
    ----------
    collection : vecstore.Collection
        The rows live here: LangChain ids are vecstore ids, ``page_content`` the document,
        ``metadata`` the metadata (vecstore's rules: flat values, no nested dicts).
    embedding : langchain_core.embeddings.Embeddings, optional
        Embeds texts and queries. Leave it out for a collection that embeds text itself
        (one made with ``encoder=``); giving both is refused, so vectors of two models never
        mix in one collection.
    database : vecstore.Database, optional
        The store to close with ``close()`` (``from_texts`` and ``open`` pass their own).

    Scores from ``similarity_search_with_score`` are distances, lower is better (``1 -
    cosine``, ``-dot``, squared L2), as the collection's ``QueryResult.distances`` gives them.
    """

    def __init__(
        self,
        collection: Any,
        *,
        embedding: Embeddings | None = None,
        database: Any = None,
        cleanup: Any = None,
    ) -> None:
        if embedding is None and collection.encoder_spec is None:
            raise InvalidInput(
                f"collection {collection.name!r} stores plain vectors: pass embedding= (a "
                "LangChain Embeddings), or use a collection made with encoder="
            )
        if embedding is not None and collection.encoder_spec is not None:
            raise InvalidInput(
                f"collection {collection.name!r} embeds text with its own encoder "
                f"({collection.encoder_spec.model}); do not pass embedding= as well"
            )
        self.collection = collection
        self.embedding = embedding
        self.database = database
        self.cleanup = cleanup  # a TemporaryDirectory that from_texts made, removed on close

    # -- opening and closing ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Any,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        embedding: Embeddings | None = None,
        metric: str = "cosine",
        encoder: Any = None,
    ) -> VecstoreVectorStore:
        """Open (or create) the store at ``path`` and its collection ``collection_name``.

        A new collection takes its dim from ``embedding`` (one probe query) or from
        ``encoder`` (a vecstore encoder, model name or callable: a collection that embeds
        itself). ``close()`` closes the store.
        """
        db = open_store(path)
        try:
            try:
                collection = db.get_collection(collection_name, encoder=encoder)
            except CollectionNotFound:
                dim = None if embedding is None else len(embedding.embed_query("dimension"))
                collection = db.create_collection(
                    collection_name, dim=dim, metric=metric, encoder=encoder
                )
            return cls(collection, embedding=embedding, database=db)
        except BaseException:
            db.close()
            raise

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        path: Any = None,
        collection_name: str = DEFAULT_COLLECTION,
        metric: str = "cosine",
        encoder: Any = None,
        **kwargs: Any,
    ) -> VecstoreVectorStore:
        """A store holding ``texts``: at ``path`` (created if missing), or, without a path,
        in a temporary folder removed by ``close()``."""
        _no_extras("from_texts", kwargs)
        cleanup = None
        if path is None:
            cleanup = tempfile.TemporaryDirectory(prefix="vecstore-langchain-")
            path = cleanup.name
        store = cls.open(path, collection_name, embedding=embedding, metric=metric, encoder=encoder)
        store.cleanup = cleanup
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def close(self) -> None:
        """Close the store this object opened (nothing if it was given a collection)."""
        if self.database is not None:
            self.database.close()
        if self.cleanup is not None:
            self.cleanup.cleanup()
            self.cleanup = None

    def __enter__(self) -> VecstoreVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VecstoreVectorStore over {self.collection!r}>"

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding

    # -- writes -------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert ``texts``: an existing id is replaced, as LangChain expects.
        Ids that are missing (or None) are new UUIDs."""
        _no_extras("add_texts", kwargs)
        texts = list(texts)
        if ids is None:
            ids = [None] * len(texts)
        if len(ids) != len(texts):
            raise InvalidInput(f"got {len(texts)} texts but {len(ids)} ids")
        filled = [i if i is not None else uuid.uuid4().hex for i in ids]
        if self.embedding is None:
            self.collection.upsert(filled, documents=texts, metadata=metadatas)
        else:
            vectors = self.embedding.embed_documents(texts) if texts else None
            self.collection.upsert(filled, vectors=vectors, documents=texts, metadata=metadatas)
        return filled

    def delete(
        self, ids: list[str] | None = None, *, filter: dict | None = None, **kwargs: Any
    ) -> bool:
        """Delete rows by id, by ``filter``, or both (rows matching both). Missing ids are
        ignored. Unlike LangChain's default, no argument is refused rather than deleting
        everything: pass ``filter={}`` for that."""
        _no_extras("delete", kwargs)
        if ids is None and filter is None:
            raise InvalidInput("delete() needs ids, filter=, or both; filter={} deletes every row")
        self.collection.delete(None if ids is None else list(ids), where=filter)
        return True

    # -- reads --------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in their order; missing ids are skipped."""
        got = self.collection.get(list(dict.fromkeys(ids)))
        return [
            Document(page_content=d or "", metadata=m, id=i)
            for i, d, m in zip(got.ids, got.documents, got.metadata)
        ]

    def query_vector(self, query: str) -> np.ndarray:
        """``query`` embedded as a query, by the Embeddings object or the collection's encoder."""
        if self.embedding is not None:
            return np.asarray(self.embedding.embed_query(query), dtype=np.float32)
        return self.collection.encoder.encode([query], "query")[0]

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        *,
        filter: dict | None = None,
        where_document: dict | None = None,
    ) -> list[tuple[Document, float]]:
        """The ``k`` rows nearest ``embedding`` with their distances, nearest first."""
        result = self.collection.query(
            np.asarray(embedding, dtype=np.float32),
            k=k,
            where=filter,
            where_document=where_document,
        )
        return [
            (Document(page_content=d or "", metadata=m, id=i), float(dist))
            for i, d, m, dist in zip(
                result.ids, result.documents, result.metadata, result.distances
            )  # fmt: skip
        ]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        filter: dict | None = None,
        where_document: dict | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        _no_extras("similarity_search_with_score", kwargs)
        return self.similarity_search_with_score_by_vector(
            self.query_vector(query), k, filter=filter, where_document=where_document
        )

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: dict | None = None,
        where_document: dict | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extras("similarity_search", kwargs)
        hits = self.similarity_search_with_score(
            query, k, filter=filter, where_document=where_document
        )
        return [doc for doc, _ in hits]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        *,
        filter: dict | None = None,
        where_document: dict | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extras("similarity_search_by_vector", kwargs)
        hits = self.similarity_search_with_score_by_vector(
            embedding, k, filter=filter, where_document=where_document
        )
        return [doc for doc, _ in hits]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: dict | None = None,
        where_document: dict | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` rows chosen by maximal marginal relevance among the ``fetch_k`` nearest:
        ``lambda_mult`` 1 is plain similarity, 0 the most diverse."""
        _no_extras("max_marginal_relevance_search_by_vector", kwargs)
        xq = np.asarray(embedding, dtype=np.float32)
        hits = self.collection.query(
            xq, k=max(k, fetch_k), where=filter, where_document=where_document
        )
        if not len(hits):
            return []
        # The candidates' vectors come from a second read; a row deleted in between is
        # simply not a candidate any more.
        rows = self.collection.get(hits.ids, include_vectors=True)
        chosen = maximal_marginal_relevance(xq, rows.vectors, lambda_mult=lambda_mult, k=k)
        return [
            Document(
                page_content=rows.documents[j] or "", metadata=rows.metadata[j], id=rows.ids[j]
            )  # fmt: skip
            for j in chosen
        ]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: dict | None = None,
        where_document: dict | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extras("max_marginal_relevance_search", kwargs)
        return self.max_marginal_relevance_search_by_vector(
            self.query_vector(query).tolist(),
            k,
            fetch_k,
            lambda_mult,
            filter=filter,
            where_document=where_document,
        )

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Distances back to LangChain's relevance scale (1 is best); for l2 the distance is
        # squared, so its root goes through LangChain's unit-vector formula.
        metric = self.collection.metric
        if metric == "cosine":
            return lambda d: 1.0 - d
        if metric == "dot":
            return lambda d: 1.0 - d if d > 0 else -d
        return lambda d: 1.0 - math.sqrt(max(d, 0.0)) / math.sqrt(2)
