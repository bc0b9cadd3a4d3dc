"""LanceDB, an on-disk Lance table: brute force (no index) and its IVF-PQ index (nlist and m
as vecstore's, 8-bit, cosine) searched with refine_factor 10, as vecstore re-ranks k x 10.

Filters are SQL predicates with prefilter=True (filter first, then search), so a query is
not cut short by the filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter, nlist_for, pq_m

NPROBES = (2, 4, 8, 16, 32, 64, 128)
REFINE = 10


class LanceFlat(Adapter):
    kind = "exact"
    library = "lancedb"
    modules = ("lancedb", "pyarrow")
    notes = "Lance table without a vector index (brute force), distance 'cosine'"

    @classmethod
    def version(cls) -> str:
        import lancedb

        return lancedb.__version__

    def create(self, path: Path) -> None:
        import lancedb

        self.db = lancedb.connect(str(path))
        self.table = None

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        data = pa.table(
            {
                "id": pa.array(np.arange(start, start + len(x), dtype=np.int64)),
                "c100": pa.array(fields["c100"]),
                "c10": pa.array(fields["c10"]),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]),
            }
        )
        if self.table is None:
            self.table = self.db.create_table("bench", data)
        else:
            self.table.add(data)

    def open(self, path: Path) -> None:
        import lancedb

        self.db = lancedb.connect(str(path))
        self.table = self.db.open_table("bench")
        self.knob = self.default_knob()

    def _query(self, q):
        return (
            self.table.search(q).distance_type("cosine").limit(self._k).select(["id", "_distance"])
        )

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        self._k = k
        return self._query(q).to_arrow()["id"].to_numpy()

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        self._k = k
        t = self._query(xq).to_arrow()
        qi, ids = t["query_index"].to_numpy(), t["id"].to_numpy()
        return [ids[qi == j] for j in range(len(xq))]

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        self._k = k
        query = self._query(q).where(f"{field} = {int(value)}", prefilter=True)
        return query.to_arrow()["id"].to_numpy()

    def set_knob(self, value) -> None:
        self.knob = value


class LanceIVFPQ(LanceFlat):
    kind = "ann"
    knob_name = "nprobes"
    notes = (
        "IVF_PQ index (nlist and m as vecstore's, 8-bit codes, cosine) built by "
        "create_index after the load; refine_factor 10"
    )

    def knobs(self) -> tuple:
        return NPROBES

    def finish(self) -> None:
        from lancedb.index import IvfPq

        self.table.create_index(
            "vector",
            config=IvfPq(
                distance_type="cosine",
                num_partitions=nlist_for(self.n),
                num_sub_vectors=pq_m(self.d),
            ),
        )

    def _query(self, q):
        query = super()._query(q)
        if self.knob is not None:
            query = query.nprobes(int(self.knob))
        return query.refine_factor(REFINE)
