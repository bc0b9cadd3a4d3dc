"""vecstore: an embedded vector database for Python.

    import vecstore
    with vecstore.open("my-store") as db:
        docs = db.get_or_create_collection("docs", dim=384)
        docs.add(["a", "b"], vectors=vectors, metadata=[{"lang": "en"}, {"lang": "de"}])
        hits = docs.query(q, k=5, where={"lang": "en"})

Importing vecstore is cheap: numba and the kernels load on the first search.
"""

from .collection import Collection
from .database import Database, open
from .errors import (
    CollectionExists,
    CollectionNotFound,
    CorruptStoreError,
    DimensionMismatch,
    DiskFullError,
    DuplicateIdError,
    EncoderMismatch,
    EndpointError,
    IdNotFound,
    InvalidFilter,
    InvalidInput,
    LockTimeout,
    MissingDependency,
    ReadOnlyError,
    StoreClosed,
    StoreIOError,
    StoreNotFound,
    VecstoreError,
)
from .index.specs import HNSW, IVF, IVFPQ, Flat, index_spec
from .results import GetResult, Hit, QueryResult

__version__ = "0.1.0"

__all__ = [
    "open",
    "Database",
    "Collection",
    "QueryResult",
    "GetResult",
    "Hit",
    "Flat",
    "IVF",
    "IVFPQ",
    "HNSW",
    "index_spec",
    "VecstoreError",
    "InvalidInput",
    "DimensionMismatch",
    "InvalidFilter",
    "DuplicateIdError",
    "EncoderMismatch",
    "EndpointError",
    "IdNotFound",
    "CollectionNotFound",
    "CollectionExists",
    "ReadOnlyError",
    "LockTimeout",
    "MissingDependency",
    "StoreNotFound",
    "CorruptStoreError",
    "StoreIOError",
    "DiskFullError",
    "StoreClosed",
]
