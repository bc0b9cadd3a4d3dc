"""hnswlib (a library, not a store): HNSW with M=16, ef_construction=100, inner product,
written with save_index (+ fsync) and read back with load_index.

Filters go through knn_query's ``filter`` callable (a Python predicate over row ids, hnswlib's
only filter API); the filter fields are saved beside the index as .npy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter, fsync_tree

EFS = (10, 16, 32, 64, 128, 256)


class Hnswlib(Adapter):
    kind = "ann"
    knob_name = "ef"
    library = "hnswlib"
    modules = ("hnswlib",)
    notes = "M=16, ef_construction=100 (as Chroma), space='ip'; filters via a Python predicate"

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        import hnswlib  # noqa: F401

        return version("hnswlib")

    def knobs(self) -> tuple:
        return EFS

    def create(self, path: Path) -> None:
        import hnswlib

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.index = hnswlib.Index(space="ip", dim=self.d)
        self.index.init_index(max_elements=self.n, M=16, ef_construction=100, random_seed=1)
        self.index.set_num_threads(self.threads)
        self.fields = {"c100": [], "c10": []}

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        self.index.add_items(x, np.arange(start, start + len(x)), num_threads=self.threads)
        for name in self.fields:
            self.fields[name].append(fields[name])

    def finish(self) -> None:
        self.index.save_index(str(self.path / "index.hnsw"))
        for name, parts in self.fields.items():
            np.save(self.path / f"{name}.npy", np.concatenate(parts), allow_pickle=False)
        fsync_tree(self.path)

    def open(self, path: Path) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=self.d)
        self.index.load_index(str(path / "index.hnsw"), max_elements=self.n)
        self.index.set_num_threads(self.threads)
        self.columns = {n: np.load(path / f"{n}.npy") for n in ("c100", "c10")}

    def set_knob(self, value) -> None:
        if value is not None:
            self.index.set_ef(int(value))

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.index.knn_query(q, k=k, num_threads=1)[0][0].astype(np.int64)

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        labels = self.index.knn_query(xq, k=k, num_threads=self.threads)[0]
        return list(labels.astype(np.int64))

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        column = self.columns[field]
        try:
            labels, _ = self.index.knn_query(
                q, k=k, num_threads=1, filter=lambda i: column[i] == value
            )
        except RuntimeError:  # fewer than k reachable matches: hnswlib raises
            return np.empty(0, dtype=np.int64)
        return labels[0].astype(np.int64)
