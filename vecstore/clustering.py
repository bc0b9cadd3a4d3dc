"""Clustering a collection: k-means over its live rows, or the rows a filter keeps.

Spherical k-means for cosine collections, Lloyd's k-means under L2 for the others, seeded
by greedy k-means++ on a bounded uniform sample and then run over the rows block by block
(``Reader.live_rows``), so memory holds the centroids, a block and a few numbers per row,
never the vectors of a whole collection. Kernels in ``kernels/cluster.py``. Must not import
``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInput
from .reader import BLOCK_ROWS, LiveRows

#: k-means++ seeds from at most this many bytes of rows (a uniform sample beyond it): the
#: seeding holds its sample in memory and costs k x (2 + log k) passes over it.
SEED_SAMPLE_BYTES = 64 << 20
#: Lloyd's iterations stop once the centroids move less than this, summed over the squared
#: shifts and relative to the rows' mean variance per dimension (scikit-learn's ``tol``).
TOL = 1e-4


@dataclass(frozen=True, eq=False)
class Clustering:
    """The clusters of a collection's rows.

    Attributes
    ----------
    ids : list of str
        The rows clustered, segment by segment.
    labels : int64 ndarray (n,)
        Each row's cluster, 0 to k - 1.
    centroids : float32 ndarray (k, dim)
        Unit vectors for a cosine collection (spherical k-means), else the clusters' means.
    inertia : float
        Sum over the rows of 1 - cos(row, its centroid) (cosine), or of the squared L2
        distance to it.
    iterations : int
        Lloyd's iterations run.
    """

    ids: list[str]
    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    iterations: int

    @property
    def sizes(self) -> np.ndarray:
        """int64 (k,): rows per cluster."""
        return np.bincount(self.labels, minlength=len(self.centroids))

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """``(id, label)`` per row."""
        return iter(zip(self.ids, self.labels.tolist()))

    def members(self, label: int) -> list[str]:
        """The ids of cluster ``label``."""
        return [self.ids[i] for i in np.flatnonzero(self.labels == label)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "labels": self.labels.tolist(),
            "centroids": self.centroids.tolist(),
            "inertia": self.inertia,
            "iterations": self.iterations,
        }

    def __repr__(self) -> str:
        return (
            f"Clustering({len(self)} rows in {len(self.centroids)} clusters, "
            f"inertia={self.inertia:.4g}, iterations={self.iterations})"
        )


def cluster(rows: LiveRows, k: int, *, seed: int, max_iter: int) -> Clustering:
    """k-means of ``rows`` into ``k`` clusters (``Collection.cluster`` checked the
    arguments)."""
    from .kernels import cluster as kc

    n = len(rows)
    if k > n:
        raise InvalidInput(f"cluster: k={k} exceeds the {n} rows to cluster")
    spherical = rows.metric == "cosine"
    rng = np.random.default_rng(seed)
    # Seeding: greedy k-means++ on all rows, or on a uniform sample of a large collection.
    cap = max(k, SEED_SAMPLE_BYTES // (4 * rows.dim))
    picked = np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))
    sample, snorms = rows.take(picked)
    if spherical:
        _normalise(sample, snorms)
    centroids = sample[kc.kmeans_plus_plus(sample, k, seed=int(rng.integers(2**31)))].copy()
    # the mean variance per dimension, as E|x|^2 - |E x|^2 over d
    mean = sample.mean(axis=0, dtype=np.float64)
    spread = np.einsum("ij,ij->", sample, sample, dtype=np.float64) / len(sample) - mean @ mean
    tol = TOL * max(float(spread), 0.0) / rows.dim
    del sample

    labels = np.full(n, -1, dtype=np.int64)
    dist = np.empty(n, dtype=np.float32)
    sums = np.empty((k, rows.dim), dtype=np.float64)
    counts = np.empty(k, dtype=np.int64)
    scratch = np.empty(BLOCK_ROWS * k, dtype=np.float32)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        changed = _pass(rows, centroids, spherical, labels, dist, sums, counts, scratch)
        new = kc.centroids_from(sums, counts, centroids, spherical)
        _relocate_empty(rows, new, labels, dist, sums, counts, spherical)
        shift = float(np.sum((new.astype(np.float64) - centroids) ** 2))
        centroids = new
        if changed == 0:
            break  # the labels are those of the centroids they produced
        if shift <= tol:
            # give every row the label of the final centroids (the shift was small, not 0)
            _pass(rows, centroids, spherical, labels, dist, sums, counts, scratch)
            break
    return Clustering(rows.ids, labels, centroids, float(dist.sum(dtype=np.float64)), iterations)


def _pass(rows, centroids, spherical, labels, dist, sums, counts, scratch) -> int:
    from .kernels import cluster as kc

    sums[:] = 0.0
    counts[:] = 0
    changed = 0
    for start, x, norms in rows.blocks(BLOCK_ROWS):
        changed += kc.assign_block(
            x, norms, centroids, spherical, labels, dist, sums, counts, start, scratch
        )
    return changed


def _relocate_empty(rows, centroids, labels, dist, sums, counts, spherical) -> None:
    """Move each empty cluster onto the row farthest from its centroid among the rows not
    alone in their cluster (as scikit-learn does), taking the row out of its old cluster."""
    from .kernels import cluster as kc

    empty = np.flatnonzero(counts == 0).tolist()
    if not empty:
        return
    for row in np.argsort(dist, kind="stable")[::-1].tolist():
        if not empty:
            break
        old = labels[row]
        if counts[old] <= 1:
            continue
        x, norms = rows.take(np.array([row]))
        if spherical:
            _normalise(x, norms)
        j = empty.pop(0)
        sums[old] -= x[0]
        counts[old] -= 1
        sums[j] = x[0]
        counts[j] = 1
        labels[row] = j
        dist[row] = 0.0
    centroids[:] = kc.centroids_from(sums, counts, centroids, spherical)


def _normalise(x: np.ndarray, norms: np.ndarray) -> None:
    """Scale rows of ``x`` to unit length in place (zero rows stay zero)."""
    inv = np.zeros_like(norms)
    np.divide(1.0, norms, out=inv, where=norms > 0)
    x *= inv[:, None]
