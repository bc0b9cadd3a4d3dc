"""vecstore through its public API only: vecstore.open, create_collection, add, create_index,
query and query_many. Exact search (the default Flat index), IVF-PQ, the HNSW graph index,
and exact search over int8 or binary codes re-ranked against the float32 vectors.

Imports vecstore and numpy; never its private modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter

NPROBES = (4, 8, 16, 32, 64, 128)
EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256)


class VecstoreFlat(Adapter):
    kind = "exact"
    library = "vecstore"
    modules = ("vecstore",)
    notes = "Flat (exact) index, cosine, durability='full' (fsync per commit)"

    @classmethod
    def version(cls) -> str:
        import vecstore

        return vecstore.__version__

    def create(self, path: Path) -> None:
        import vecstore

        self.db = vecstore.open(path, progress=False)
        self.col = self.db.create_collection(
            "bench", dim=self.d, metric="cosine", **self._collection_options()
        )

    def _collection_options(self) -> dict:
        return {}

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        ids = [str(i) for i in range(start, start + len(x))]
        meta = [{"c100": int(a), "c10": int(b)} for a, b in zip(fields["c100"], fields["c10"])]
        self.col.add(ids, vectors=x, metadata=meta)

    def finish(self) -> None:
        self.db.close()

    def open(self, path: Path) -> None:
        import vecstore

        self.db = vecstore.open(path, read_only=True, progress=False)
        self.col = self.db.get_collection("bench")

    def _params(self) -> dict:
        return {}

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        r = self.col.query(q, k=k, **self._params())
        return np.array([int(i) for i in r.ids], dtype=np.int64)

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        out = self.col.query_many(xq, k=k, **self._params())
        return [np.array([int(i) for i in r.ids], dtype=np.int64) for r in out]

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        r = self.col.query(q, k=k, where={field: value}, **self._params())
        return np.array([int(i) for i in r.ids], dtype=np.int64)

    def thread_options(self) -> tuple:
        return tuple(sorted({self.threads, 1}, reverse=True))  # as faiss: the faster is kept

    def set_threads(self, n: int) -> None:
        import numba  # vecstore's kernels split a scan over Numba's threads

        numba.set_num_threads(n)

    def close(self) -> None:
        self.db.close()


class VecstoreIVFPQ(VecstoreFlat):
    kind = "ann"
    knob_name = "nprobe"
    notes = (
        "IVFPQ() defaults (nlist 4*sqrt(N); 8-bit PQ re-ranked x10 against the float32 "
        "vectors, or flat float32 lists at d <= 64), created with create_index() after the "
        "bulk load, cosine"
    )
    nprobe: int | None = None

    def knobs(self) -> tuple:
        return NPROBES

    def finish(self) -> None:
        import vecstore

        self.col.create_index(vecstore.IVFPQ())  # trains once, over all rows
        self.db.close()

    def set_knob(self, value) -> None:
        self.nprobe = value

    def _params(self) -> dict:
        return {} if self.nprobe is None else {"nprobe": self.nprobe}

    def info(self) -> dict:
        return self.col.index_info()


class VecstoreHNSW(VecstoreFlat):
    kind = "ann"
    knob_name = "ef"
    notes = (
        "HNSW(M=16, ef_construction=100) (as hnswlib and Chroma here), one graph per segment "
        "built as the rows are written, cosine"
    )
    ef: int | None = None

    def _collection_options(self) -> dict:
        import vecstore

        return {"index": vecstore.HNSW(M=16, ef_construction=100)}

    def knobs(self) -> tuple:
        return EFS

    def set_knob(self, value) -> None:
        self.ef = value

    def _params(self) -> dict:
        return {} if self.ef is None else {"ef": self.ef}

    def info(self) -> dict:
        return self.col.index_info()


class VecstoreCompressed(VecstoreFlat):
    """Exact search over codes: the scan ranks by the codes, then the best ``k x refine``
    candidates are re-ranked against the float32 vectors (``refine`` is the knob)."""

    kind = "ann"
    knob_name = "refine"
    vectors = "int8"
    refine: int | None = None

    def _collection_options(self) -> dict:
        return {"vectors": self.vectors}

    def set_knob(self, value) -> None:
        self.refine = value

    def _params(self) -> dict:
        return {} if self.refine is None else {"refine": self.refine}


class VecstoreInt8(VecstoreCompressed):
    vectors = "int8"
    notes = (
        "Flat index, vectors='int8' (per-segment scalar quantisation), the code scan's best "
        "k x refine candidates re-ranked against float32, cosine"
    )

    def knobs(self) -> tuple:
        return (1, 2, 4)


class VecstoreBinary(VecstoreCompressed):
    vectors = "binary"
    notes = (
        "Flat index, vectors='binary' (1 bit per dimension, Hamming scan), the best "
        "k x refine candidates re-ranked against float32, cosine"
    )

    def knobs(self) -> tuple:
        return (5, 10, 20, 40)
