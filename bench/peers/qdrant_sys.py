"""Qdrant's local mode (QdrantClient(path=...)): the pure-Python engine qdrant-client ships
for tests and prototypes, persisted in SQLite. Exact search (it has no index), cosine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter


class QdrantLocal(Adapter):
    batch_rows = 1_000
    kind = "exact"
    library = "qdrant-client"
    modules = ("qdrant_client",)
    notes = "local mode (path=...), Distance.COSINE, upsert of Batch(1,000 points)"

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        import qdrant_client  # noqa: F401

        return version("qdrant-client")

    def create(self, path: Path) -> None:
        from qdrant_client import QdrantClient, models

        self.client = QdrantClient(path=str(path))
        self.client.create_collection(
            "bench",
            vectors_config=models.VectorParams(size=self.d, distance=models.Distance.COSINE),
        )

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        from qdrant_client import models

        for s in range(0, len(x), 1000):
            e = min(len(x), s + 1000)
            self.client.upsert(
                "bench",
                points=models.Batch(
                    ids=list(range(start + s, start + e)),
                    vectors=x[s:e].tolist(),
                    payloads=[
                        {"c100": int(a), "c10": int(b)}
                        for a, b in zip(fields["c100"][s:e], fields["c10"][s:e])
                    ],
                ),
                wait=True,
            )

    def finish(self) -> None:
        self.client.close()

    def open(self, path: Path) -> None:
        from qdrant_client import QdrantClient

        self.client = QdrantClient(path=str(path))

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        pts = self.client.query_points("bench", query=q, limit=k, with_payload=False).points
        return np.array([p.id for p in pts], dtype=np.int64)

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        from qdrant_client import models

        reqs = [models.QueryRequest(query=q.tolist(), limit=k) for q in xq]
        out = self.client.query_batch_points("bench", requests=reqs)
        return [np.array([p.id for p in r.points], dtype=np.int64) for r in out]

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        from qdrant_client import models

        f = models.Filter(
            must=[models.FieldCondition(key=field, match=models.MatchValue(value=int(value)))]
        )
        pts = self.client.query_points(
            "bench", query=q, limit=k, query_filter=f, with_payload=False
        ).points
        return np.array([p.id for p in pts], dtype=np.int64)

    def close(self) -> None:
        self.client.close()
