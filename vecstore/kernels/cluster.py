"""k-means kernels for clustering a collection: k-means++ seeding and Lloyd passes over rows
that arrive block by block (a segment, or part of one), so no pass needs every row in memory.

Spherical k-means (cosine) works on unit vectors: a row is scaled by ``1/|x|`` as it is read
(a zero row stays zero) and centroids are renormalised after each update. Otherwise it is
Lloyd's k-means under squared L2. numpy + numba only: pure functions over arrays, no I/O.
"""

# D and I are the faiss names the house style asks for.
# ruff: noqa: E741

from __future__ import annotations

import numpy as np
from numba import njit

# The nearest-centroid search of a block runs through one sgemm of (rows x k) scores; the
# caller passes the scores, so a block is read once per pass whatever its origin (a mapped
# segment, or rows a filter gathered).


@njit(cache=True, nogil=True)
def _assign_block(S, w, cn2, spherical, labels, dist, sums, counts, x, lo):
    """Assign the block's rows to their nearest centroid and add them to the running sums.

    S (m, k) float32: the rows' raw dot products with the centroids. w (m,) float32: 1/|x|
    (spherical; 0 for a zero row) or |x|^2 (L2). cn2 (k,) float32: |c|^2 (unused when
    spherical: the centroids are unit vectors). labels, dist (n,): written at lo..lo+m;
    labels must hold the previous pass's labels (-1 before the first). sums (k, d) float64
    and counts (k,) int64 accumulate. x (m, d) float32: the rows. Returns the number of rows
    whose label changed.
    """
    m, k = S.shape
    d = x.shape[1]
    changed = 0
    for i in range(m):
        best = -np.inf
        bj = 0
        if spherical:
            for j in range(k):
                if S[i, j] > best:
                    best = S[i, j]
                    bj = j
            di = 1.0 - best * w[i]  # 1 - cos
            scale = w[i]
        else:
            for j in range(k):
                v = 2.0 * S[i, j] - cn2[j]
                if v > best:
                    best = v
                    bj = j
            di = max(w[i] - best, 0.0)  # |x|^2 - 2 x.c + |c|^2, rounded up to >= 0
            scale = 1.0
        if labels[lo + i] != bj:
            changed += 1
        labels[lo + i] = bj
        dist[lo + i] = di
        counts[bj] += 1
        for t in range(d):
            sums[bj, t] += x[i, t] * scale
    return changed


@njit(cache=True, nogil=True)
def _trial_potentials(Dt, closest, pots):
    """pots[t] = sum(min(closest, Dt[:, t])): the potential k-means++ would have after
    taking candidate t (Dt (n, t) float32 squared distances). float64 sums: n reaches
    millions."""
    pots[:] = 0.0
    for i in range(Dt.shape[0]):
        c = closest[i]
        for t in range(Dt.shape[1]):
            pots[t] += min(c, Dt[i, t])


@njit(cache=True, nogil=True)
def _take_min(closest, Dt, t):
    for i in range(closest.shape[0]):
        if Dt[i, t] < closest[i]:
            closest[i] = Dt[i, t]


# fastmath: distance inner loop only (lets LLVM split the sum over SIMD accumulators).
@njit(cache=True, nogil=True, fastmath=True)
def _sq_dists_into(x, xn2, c, cn2, D):
    """D[i, t] = max(|x_i|^2 - 2 x_i.c_t + |c_t|^2, 0) for a handful of rows c: one pass
    over x, each row read once for every candidate (sgemm runs such a thin product at a
    fraction of its speed)."""
    d = x.shape[1]
    for i in range(x.shape[0]):
        for t in range(c.shape[0]):
            s = np.float32(0.0)
            for j in range(d):
                s += x[i, j] * c[t, j]
            D[i, t] = max(xn2[i] - np.float32(2.0) * s + cn2[t], np.float32(0.0))


def _sq_dists(x, xn2, c):
    """Squared L2 distances float32 (n, t) of rows x (n, d) to rows c (t, d)."""
    D = np.empty((x.shape[0], c.shape[0]), dtype=np.float32)
    c = np.ascontiguousarray(c, dtype=np.float32)
    _sq_dists_into(x, xn2, c, np.einsum("ij,ij->i", c, c), D)
    return D


def kmeans_plus_plus(x, k, *, seed=0, trials=None):
    """Greedy k-means++ seeding (Arthur and Vassilvitskii; ``trials`` candidates per pick
    as scikit-learn does, default ``2 + int(log(k))``): indices of ``k`` rows of ``x``.

    Parameters
    ----------
    x : float32 (n, d), C-contiguous, n >= k >= 1
        Rows to seed from (unit vectors for spherical k-means).
    k : int
    seed : int

    Returns
    -------
    int64 (k,) row indices, distinct unless ``x`` holds fewer than ``k`` distinct rows.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n; got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    trials = 2 + int(np.log(k)) if trials is None else int(trials)
    xn2 = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(n)
    closest = np.ascontiguousarray(_sq_dists(x, xn2, x[chosen[:1]])[:, 0])
    pot = float(closest.sum(dtype=np.float64))
    pots = np.empty(trials, dtype=np.float64)
    for c in range(1, k):
        if pot <= 0.0:
            # every row sits on a chosen one (fewer distinct rows than k): pick uniformly
            cand = rng.integers(n, size=trials)
        else:
            cum = np.cumsum(closest, dtype=np.float64)
            cand = np.searchsorted(cum, rng.random(trials) * cum[-1])
            np.minimum(cand, n - 1, out=cand)
        Dt = _sq_dists(x, xn2, x[cand])
        _trial_potentials(Dt, closest, pots)
        best = int(np.argmin(pots))
        chosen[c] = cand[best]
        _take_min(closest, Dt, best)
        pot = float(pots[best])
    return chosen


def assign_block(x, norms, centroids, spherical, labels, dist, sums, counts, lo, S):
    """One block of a Lloyd pass: nearest centroids of rows ``x`` into ``labels[lo:lo+m]``
    and ``dist`` (1 - cos, or squared L2), their sum into ``sums``/``counts``.

    Parameters
    ----------
    x : float32 (m, d), C-contiguous (read-only views are fine)
    norms : float32 (m,)
        |x| of each row.
    centroids : float32 (k, d), C-contiguous; unit vectors when ``spherical``
    labels : int64 (n,), dist : float32 (n,)
    sums : float64 (k, d), counts : int64 (k,)
    S : float32 scratch of at least m * k elements

    Returns the number of rows whose label changed.
    """
    m = x.shape[0]
    k, d = centroids.shape
    if x.ndim != 2 or x.shape[1] != d or norms.shape != (m,):
        raise ValueError(f"x {x.shape} and norms {norms.shape} do not fit centroids {k}x{d}")
    if not 0 <= lo <= labels.shape[0] - m or dist.shape != labels.shape:
        raise ValueError(f"rows {lo}..{lo + m} fall outside labels of {labels.shape}")
    if m == 0:
        return 0
    Sb = S[: m * k].reshape(m, k)
    np.dot(x, centroids.T, out=Sb)
    if spherical:
        w = np.zeros(m, dtype=np.float32)
        np.divide(1.0, norms, out=w, where=norms > 0)
        cn2 = np.zeros(k, dtype=np.float32)
    else:
        w = (norms * norms).astype(np.float32)
        cn2 = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
    return int(_assign_block(Sb, w, cn2, spherical, labels, dist, sums, counts, x, lo))


def centroids_from(sums, counts, previous, spherical):
    """New centroids float32 (k, d): each cluster's mean (renormalised when spherical); a
    cluster without rows keeps ``previous`` (the caller relocates it)."""
    c = previous.copy()
    nz = counts > 0
    c[nz] = (sums[nz] / counts[nz, None]).astype(np.float32)
    if spherical:
        n = np.sqrt(np.einsum("ij,ij->i", c, c))
        ok = n > 0
        c[ok] /= n[ok, None]
    return np.ascontiguousarray(c, dtype=np.float32)
