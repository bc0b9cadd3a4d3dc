"""Chroma with PersistentClient: its default HNSW (M=16, ef_construction=100), cosine space,
embeddings passed explicitly (embedding_function=None: nothing is downloaded), telemetry
off. The ef_search sweep goes through collection.modify(configuration=...) and a reopened
client (see set_knob).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter

EFS = (10, 20, 40, 80, 160, 320)


def _client(path: Path):
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


class Chroma(Adapter):
    batch_rows = 20_000
    kind = "ann"
    knob_name = "ef_search"
    library = "chromadb"
    modules = ("chromadb",)
    notes = (
        "PersistentClient, default HNSW (M=16, ef_construction=100), space 'cosine', "
        "adds in batches of get_max_batch_size(); ef_search set by modify() and then a new "
        "client, since modify() alone leaves an index already loaded at its old ef_search "
        "(recall did not move)"
    )

    @classmethod
    def version(cls) -> str:
        import chromadb

        return chromadb.__version__

    def knobs(self) -> tuple:
        return EFS

    def create(self, path: Path) -> None:
        self.client = _client(path)
        self.col = self.client.create_collection(
            "bench", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        self.max_batch = self.client.get_max_batch_size()

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        for s in range(0, len(x), self.max_batch):
            e = min(len(x), s + self.max_batch)
            self.col.add(
                ids=[str(i) for i in range(start + s, start + e)],
                embeddings=x[s:e],
                metadatas=[
                    {"c100": int(a), "c10": int(b)}
                    for a, b in zip(fields["c100"][s:e], fields["c10"][s:e])
                ],
            )

    def open(self, path: Path) -> None:
        self.path = path
        self.client = _client(path)
        self.col = self.client.get_collection("bench", embedding_function=None)

    def set_knob(self, value) -> None:
        """modify() stores the new ef_search, but an index already loaded in this process
        keeps searching with the old one (measured: recall does not move); a new client,
        after clearing chromadb's per-path system cache, loads the index with it."""
        import chromadb

        if value is None:
            return
        self.col.modify(configuration={"hnsw": {"ef_search": int(value)}})
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        self.open(self.path)

    @staticmethod
    def _ids(ids: list[str]) -> np.ndarray:
        return np.array([int(i) for i in ids], dtype=np.int64)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        r = self.col.query(query_embeddings=q[None, :], n_results=k, include=[])
        return self._ids(r["ids"][0])

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        r = self.col.query(query_embeddings=xq, n_results=k, include=[])
        return [self._ids(ids) for ids in r["ids"]]

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        r = self.col.query(
            query_embeddings=q[None, :], n_results=k, where={field: value}, include=[]
        )
        return self._ids(r["ids"][0])

    def info(self) -> dict:
        return {"configuration": str(self.col.configuration)}
