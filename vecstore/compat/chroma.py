"""A drop-in subset of chromadb's client API over a vecstore store.

``from vecstore.compat import chroma as chromadb`` and a Chroma app runs unchanged:
``PersistentClient(path)``, its collections, Chroma's argument names (``n_results``,
``query_embeddings``, ``metadatas``, ``include=``...), its return shapes (lists per query,
``distances``) and ``embedding_function``. ``migrate`` copies a real Chroma persist
directory into a store (``vecstore import --from-chroma``). Uses vecstore's public API only;
chromadb itself is imported by ``migrate`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..collection import Collection as VecstoreCollection
from ..database import Database
from ..database import open as open_store
from ..encoders import CallableEncoder
from ..errors import CollectionNotFound, InvalidInput, MissingDependency

__all__ = ["PersistentClient", "Collection", "migrate"]

# Chroma's distance spaces and vecstore's metrics. Chroma's default space is l2.
SPACES = {"l2": "l2", "cosine": "cosine", "ip": "dot"}
METRIC_SPACES = {v: k for k, v in SPACES.items()}
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # Chroma's default model too
GET_FIELDS = {"documents", "metadatas", "embeddings"}
QUERY_FIELDS = GET_FIELDS | {"distances"}


def _space(metadata: dict | None) -> str:
    metadata = dict(metadata or {})
    space = metadata.pop("hnsw:space", "l2")
    if metadata:
        raise InvalidInput(
            f"vecstore collections carry no metadata but 'hnsw:space'; got {sorted(metadata)}"
        )
    if space not in SPACES:
        raise InvalidInput(f"hnsw:space must be one of {sorted(SPACES)}; got {space!r}")
    return space


def _include(include: Sequence[str] | None, allowed: set[str], default: list[str]) -> list[str]:
    fields = list(default if include is None else include)
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise InvalidInput(f"include= takes {sorted(allowed)}; got {unknown}")
    return fields


class Collection:
    """A Chroma-style collection. The vecstore collection behind it is made by the first
    write (Chroma collections learn their dim from their first embeddings)."""

    def __init__(
        self,
        db: Database,
        name: str,
        space: str,
        embedding_function: Callable[[list[str]], Any] | None,
    ) -> None:
        self.name = name
        self.space = space
        self.embedding_function = embedding_function
        self.db = db
        self.inner: VecstoreCollection | None = None
        if name in db.list_collections():
            self.inner = db.get_collection(name, encoder=self._encoder())

    def __repr__(self) -> str:
        return f"Collection(name={self.name!r}, space={self.space!r})"

    @property
    def metadata(self) -> dict:
        return {"hnsw:space": self.space}

    def _encoder(self) -> CallableEncoder | None:
        if self.embedding_function is None:
            return None
        return _probe(self.embedding_function)

    def _materialise(self, embeddings: Any) -> VecstoreCollection:
        if self.inner is None:
            metric = SPACES[self.space]
            if embeddings is not None:
                dim = np.asarray(embeddings[0] if len(embeddings) else []).shape[-1]
                self.inner = self.db.create_collection(self.name, dim=dim, metric=metric)
            else:
                encoder = self._encoder() or DEFAULT_MODEL
                self.inner = self.db.create_collection(self.name, encoder=encoder, metric=metric)
        return self.inner

    # -- writes -------------------------------------------------------------------------

    def add(self, ids: Any, embeddings: Any = None, metadatas: Any = None,
            documents: Any = None) -> None:  # fmt: skip
        coll = self._materialise(embeddings)
        coll.add(_ids(ids), vectors=embeddings, documents=documents, metadata=metadatas)

    def upsert(self, ids: Any, embeddings: Any = None, metadatas: Any = None,
               documents: Any = None) -> None:  # fmt: skip
        coll = self._materialise(embeddings)
        coll.upsert(_ids(ids), vectors=embeddings, documents=documents, metadata=metadatas)

    def update(self, ids: Any, embeddings: Any = None, metadatas: Any = None,
               documents: Any = None) -> None:  # fmt: skip
        """Chroma's update: metadata is merged into each row's (a None value drops the key);
        the read and the write are two transactions."""
        coll = self._materialise(embeddings)
        ids = _ids(ids)
        merged = None
        if metadatas is not None:
            old = {i: m for i, m in zip(*_pair(coll.get(ids)))}
            merged = []
            for i, new in zip(ids, metadatas):
                row = {**old.get(i, {}), **(new or {})}
                merged.append({k: v for k, v in row.items() if v is not None})
        coll.update(ids, vectors=embeddings, documents=documents, metadata=merged)

    def delete(self, ids: Any = None, where: dict | None = None,
               where_document: dict | None = None) -> None:  # fmt: skip
        if self.inner is None:
            return
        if where_document is not None:
            found = self.inner.get(None if ids is None else _ids(ids), where=where,
                                   where_document=where_document).ids  # fmt: skip
            ids, where = found, None
            if not found:
                return
        self.inner.delete(None if ids is None else _ids(ids), where=where)

    # -- reads --------------------------------------------------------------------------

    def count(self) -> int:
        return 0 if self.inner is None else self.inner.count()

    def get(self, ids: Any = None, where: dict | None = None, limit: int | None = None,
            offset: int | None = None, where_document: dict | None = None,
            include: Sequence[str] | None = None) -> dict:  # fmt: skip
        fields = _include(include, GET_FIELDS, ["metadatas", "documents"])
        out: dict[str, Any] = {"ids": [], "embeddings": None, "documents": None,
                               "uris": None, "data": None, "metadatas": None,
                               "included": fields}  # fmt: skip
        for f in fields:
            out[f] = np.zeros((0, 0), np.float32) if f == "embeddings" else []
        if self.inner is None:
            return out
        got = self.inner.get(None if ids is None else _ids(ids), where=where,
                             where_document=where_document, limit=limit, offset=offset or 0,
                             include_vectors="embeddings" in fields)  # fmt: skip
        out["ids"] = got.ids
        if "documents" in fields:
            out["documents"] = got.documents
        if "metadatas" in fields:
            out["metadatas"] = [m or None for m in got.metadata]  # Chroma: None, not {}
        if "embeddings" in fields:
            out["embeddings"] = got.vectors
        return out

    def peek(self, limit: int = 10) -> dict:
        return self.get(limit=limit, include=["embeddings", "documents", "metadatas"])

    def query(self, query_embeddings: Any = None, query_texts: Any = None, n_results: int = 10,
              where: dict | None = None, where_document: dict | None = None,
              include: Sequence[str] | None = None) -> dict:  # fmt: skip
        """Chroma's query: one list per query of ids, distances (Chroma's: squared L2,
        ``1 - cosine``, ``1 - dot``), documents and metadatas, best first."""
        fields = _include(include, QUERY_FIELDS, ["metadatas", "documents", "distances"])
        if (query_embeddings is None) == (query_texts is None):
            raise InvalidInput("give query_embeddings or query_texts (one of them)")
        queries = query_texts if query_texts is not None else query_embeddings
        if isinstance(queries, str) or (query_texts is None and np.ndim(queries) == 1):
            queries = [queries]
        n = len(queries)
        out: dict[str, Any] = {"ids": [[] for _ in range(n)], "embeddings": None,
                               "documents": None, "uris": None, "data": None,
                               "metadatas": None, "distances": None,
                               "included": fields}  # fmt: skip
        for f in fields:
            out[f] = [[] for _ in range(n)]
        if self.inner is None or not self.inner.count():
            return out
        if query_texts is not None:
            queries = list(queries)
        results = self.inner.query_many(queries, k=n_results, where=where,
                                        where_document=where_document)  # fmt: skip
        for i, r in enumerate(results):
            out["ids"][i] = r.ids
            if "distances" in fields:
                # Chroma's ip distance is 1 - dot; vecstore's scores are the dot products
                d = 1.0 - r.scores if self.space == "ip" else r.distances
                out["distances"][i] = [float(x) for x in d]
            if "documents" in fields:
                out["documents"][i] = r.documents
            if "metadatas" in fields:
                out["metadatas"][i] = [m or None for m in r.metadata]
            if "embeddings" in fields:
                out["embeddings"][i] = self.inner.get(r.ids, include_vectors=True).vectors
        return out


def _ids(ids: Any) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


def _pair(got: Any) -> tuple[list[str], list[dict]]:
    return got.ids, got.metadata


class PersistentClient:
    """Chroma's ``PersistentClient(path)``: a vecstore store in ``path``."""

    def __init__(self, path: Any = "./chroma", settings: Any = None) -> None:
        self.db = open_store(path)

    def __repr__(self) -> str:
        return f"PersistentClient({self.db!r})"

    def get_or_create_collection(self, name: str, metadata: dict | None = None,
                                 embedding_function: Any = None) -> Collection:  # fmt: skip
        if name in self.db.list_collections():
            return self.get_collection(name, embedding_function=embedding_function)
        return Collection(self.db, name, _space(metadata), embedding_function)

    def create_collection(self, name: str, metadata: dict | None = None,
                          embedding_function: Any = None,
                          get_or_create: bool = False) -> Collection:  # fmt: skip
        if get_or_create:
            return self.get_or_create_collection(name, metadata, embedding_function)
        if name in self.db.list_collections():
            from ..errors import CollectionExists

            raise CollectionExists(f"collection {name!r} already exists")
        return Collection(self.db, name, _space(metadata), embedding_function)

    def get_collection(self, name: str, embedding_function: Any = None) -> Collection:
        if name not in self.db.list_collections():
            raise CollectionNotFound(f"collection {name!r} does not exist")
        metric = self.db.get_collection(name, encoder=_probe(embedding_function)).metric
        return Collection(self.db, name, METRIC_SPACES[metric], embedding_function)

    def list_collections(self) -> list[Collection]:
        return [self.get_collection(n) for n in self.db.list_collections()]

    def delete_collection(self, name: str) -> None:
        self.db.delete_collection(name)

    def heartbeat(self) -> int:
        return 1


def _probe(embedding_function: Any) -> Any:
    if embedding_function is None:
        return None
    # Chroma versions no embedding function and checks none on reopening; the shim keeps
    # that contract: the function's class is its identity, at a fixed version.
    return CallableEncoder(lambda texts: embedding_function(list(texts)),
                           name=type(embedding_function).__name__, version="chroma")  # fmt: skip


# -- migrating a real Chroma directory ---------------------------------------------------


def migrate(source: Any, db: Database, *, upsert: bool = False, batch_size: int = 1000) -> dict:
    """Copy every collection of the Chroma persist directory ``source`` into ``db``: ids,
    embeddings, documents and metadata, with the collection's distance space as its metric.
    Returns ``{collection: rows}``. A collection that exists already is refused unless
    ``upsert``; a collection that fails part-way is dropped again if this call made it."""
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError:
        raise MissingDependency(
            "migrating from Chroma reads the directory with chromadb: pip install chromadb"
        ) from None
    client = chromadb.PersistentClient(str(source), Settings(anonymized_telemetry=False))
    done = {}
    for source_coll in client.list_collections():
        done[source_coll.name] = _copy(source_coll, db, upsert, batch_size)
    return done


def _copy(source: Any, db: Database, upsert: bool, batch_size: int) -> int:
    space = (source.metadata or {}).get("hnsw:space")
    config = getattr(source, "configuration_json", None) or {}
    space = space or (config.get("hnsw") or {}).get("space") or "l2"
    total = source.count()
    first = source.get(limit=1, include=["embeddings"])
    if not first["ids"]:
        return 0
    dim = len(first["embeddings"][0])
    made = source.name not in db.list_collections()
    if not made and not upsert:
        from ..errors import CollectionExists

        raise CollectionExists(f"collection {source.name!r} exists in the store: pass upsert")
    target = db.get_or_create_collection(source.name, dim=dim, metric=SPACES[space])
    try:
        for offset in range(0, total, batch_size):
            page = source.get(limit=batch_size, offset=offset,
                              include=["embeddings", "documents", "metadatas"])  # fmt: skip
            target.upsert(page["ids"], vectors=np.asarray(page["embeddings"], np.float32),
                          documents=page["documents"],
                          metadata=[m or {} for m in page["metadatas"]])  # fmt: skip
    except BaseException:
        if made:
            db.delete_collection(source.name)
        raise
    return total
