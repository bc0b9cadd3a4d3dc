"""Milvus Lite (pymilvus MilvusClient on a local .db path, served by the milvus-lite binary
in a child process): an IVF_FLAT index (nlist as vecstore's), COSINE, swept over nprobe.
Filters are boolean expressions (``c100 == 7``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter, nlist_for

NPROBES = (2, 4, 8, 16, 32, 64, 128)


class MilvusLite(Adapter):
    batch_rows = 20_000
    kind = "ann"
    knob_name = "nprobe"
    library = "milvus-lite"
    modules = ("pymilvus", "milvus_lite")
    notes = (
        "MilvusClient('<dir>/milvus.db'), IVF_FLAT (nlist as vecstore's), COSINE, inserts of "
        "5,000 rows, flush() before the load counts as done"
    )

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401

        return f"{version('milvus-lite')} (pymilvus {version('pymilvus')})"

    def knobs(self) -> tuple:
        return NPROBES

    def create(self, path: Path) -> None:
        from pymilvus import DataType, MilvusClient

        path.mkdir(parents=True, exist_ok=True)
        self.client = MilvusClient(str(path / "milvus.db"))
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.d)
        schema.add_field("c100", DataType.INT64)
        schema.add_field("c10", DataType.INT64)
        params = self.client.prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type="IVF_FLAT",
            metric_type="COSINE",
            params={"nlist": nlist_for(self.n)},
        )
        self.client.create_collection("bench", schema=schema, index_params=params)

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        for s in range(0, len(x), 5000):
            e = min(len(x), s + 5000)
            rows = [
                {"id": start + i, "vector": x[i], "c100": int(fields["c100"][i]),
                 "c10": int(fields["c10"][i])}
                for i in range(s, e)
            ]  # fmt: skip
            self.client.insert("bench", rows)

    def finish(self) -> None:
        self.client.flush("bench")
        self.client.close()

    def open(self, path: Path) -> None:
        from pymilvus import MilvusClient

        self.client = MilvusClient(str(path / "milvus.db"))
        self.client.load_collection("bench")
        self.knob = None

    def set_knob(self, value) -> None:
        self.knob = value

    def _params(self) -> dict:
        return {"params": {"nprobe": int(self.knob)}} if self.knob is not None else {}

    def _search(self, data, k: int, expr: str = "") -> list[np.ndarray]:
        res = self.client.search(
            "bench", data=data, limit=k, filter=expr, output_fields=[], search_params=self._params()
        )
        return [np.array([h["id"] for h in hits], dtype=np.int64) for hits in res]

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._search([q], k)[0]

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        return self._search(list(xq), k)

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        return self._search([q], k, f"{field} == {int(value)}")[0]

    def close(self) -> None:
        self.client.close()
