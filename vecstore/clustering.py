"""Clustering a collection: k-means over its live rows, or the rows a filter keeps.

Spherical k-means for cosine collections, Lloyd's k-means under L2 for the others, seeded
by greedy k-means++ on a bounded uniform sample and then run over the rows block by block
(``Reader.live_rows``), so memory holds the centroids, a block and a few numbers per row,
never the vectors of a whole collection. Kernels in ``kernels/cluster.py``. Must not import
``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    upper = np.zeros(n, dtype=np.float32)
    lower = np.zeros(n, dtype=np.float32)
    sums = np.zeros((k, rows.dim), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    bounds = (labels, upper, lower, sums, counts)
    changed = _pass(rows, centroids, spherical, bounds)
    iterations = 1
    while True:
        new = kc.centroids_from(sums, counts, centroids, spherical)
        _relocate_empty(rows, new, bounds, spherical)
        shift = kc.move_bounds(labels, upper, lower, centroids, new)
        centroids = new
        # no label changed (the centroids are those of their own labels), or they barely moved
        if changed == 0 or shift <= tol or iterations == max_iter:
            break
        changed = _pass(rows, centroids, spherical, bounds, kc.half_gaps(centroids))
        iterations += 1
    # a last exact pass: every row's label and distance under the final centroids
    inertia = [0.0]
    _pass(rows, centroids, spherical, bounds, None, inertia)
    return Clustering(rows.ids, labels, centroids, inertia[0], iterations)


def _pass(rows, centroids, spherical, bounds, half_gap=None, inertia=None) -> int:
    """One pass over the rows, block by block: Lloyd's step for every row (``half_gap``
    None), else for the rows Hamerly's bounds leave in doubt. With ``inertia`` (a list of one
    float), a full pass adds the rows' inertia to it.

    Blocks run in a few threads (the kernels release the GIL); the sums are updated here, in
    block order. Threads that wait by blocking, not a parallel region whose workers spin,
    keep the pass fast when other processes hold the cores (a numba parallel region ran 3x
    slower than one thread on the busy 2-core machine)."""
    from .kernels import cluster as kc

    labels, upper, lower, sums, counts = bounds
    changed = 0
    window: deque = deque()

    def settle() -> int:
        start, x, norms, job = window.popleft()
        prev = job.result()
        if inertia is not None:
            # after a full step, upper is the distance to the row's centroid (float32, slack)
            d2 = upper[start : start + len(x)].astype(np.float64) ** 2
            if spherical:  # 1 - cos = (1 - q + d^2) / 2 for unit centroids, q = |x / |x||^2
                d2 = (1.0 - (norms > 0) + d2) / 2.0
            inertia[0] += float(d2.sum())
        return kc.move_sums(x, norms, spherical, prev, labels, sums, counts, start)

    with ThreadPoolExecutor(kc.threads()) as pool:
        for start, x, norms in rows.blocks(BLOCK_ROWS):
            job = pool.submit(
                kc.assign_block, x, norms, centroids, spherical, labels, upper, lower, start,
                half_gap=half_gap,
            )  # fmt: skip
            window.append((start, x, norms, job))
            if len(window) > 2 * kc.threads():  # bounds the gathered blocks held at once
                changed += settle()
        while window:
            changed += settle()
    return changed


def _relocate_empty(rows, centroids, bounds, spherical) -> None:
    """Move each empty cluster onto the row farthest from its centroid among the rows not
    alone in their cluster (as scikit-learn does), taking the row out of its old cluster."""
    from .kernels import cluster as kc

    labels, upper, lower, sums, counts = bounds
    empty = np.flatnonzero(counts == 0).tolist()
    if not empty:
        return
    for row in np.argsort(upper, kind="stable")[::-1].tolist():
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
        upper[row] = 0.0
        lower[row] = 0.0
    centroids[:] = kc.centroids_from(sums, counts, centroids, spherical)


def _normalise(x: np.ndarray, norms: np.ndarray) -> None:
    """Scale rows of ``x`` to unit length in place (zero rows stay zero)."""
    inv = np.zeros_like(norms)
    np.divide(1.0, norms, out=inv, where=norms > 0)
    x *= inv[:, None]
