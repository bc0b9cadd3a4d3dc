"""Training the quantizers of IVF and IVF-PQ: k-means (the coarse quantizer, and each PQ
sub-space), assignment of rows to their nearest centroid, PQ codebooks and PQ encoding.

numpy + numba only; imports no other kernels module. Compiled lazily on first use, cached on
disk. Searching with what is trained here is adc.py's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_ASSIGN_TILE = 4096  # rows per BLAS tile when assigning to centroids
_POINT_CHUNK = 1024  # rows per parallel chunk in the small-dimension PQ kernels


@njit(cache=True, nogil=True)
def _assign_tiles(x, c, cn, labels, best):
    """Nearest centroid (L2) of every row of x: argmax of 2 x.c - |c|^2, by BLAS tiles."""
    n = x.shape[0]
    ct = np.ascontiguousarray(c.T)
    for lo in range(0, n, _ASSIGN_TILE):
        hi = min(n, lo + _ASSIGN_TILE)
        S = np.dot(x[lo:hi], ct)
        for i in range(hi - lo):
            b = -np.inf
            bj = 0
            for j in range(c.shape[0]):
                v = 2.0 * S[i, j] - cn[j]
                if v > b:
                    b = v
                    bj = j
            labels[lo + i] = bj
            best[lo + i] = b


@njit(cache=True, nogil=True)
def _centroid_sums(x, labels, k, sums, counts):
    sums[:] = 0.0
    counts[:] = 0
    d = x.shape[1]
    for i in range(x.shape[0]):
        j = labels[i]
        counts[j] += 1
        for t in range(d):
            sums[j, t] += x[i, t]


@njit(cache=True, nogil=True, parallel=True)
def _nearest_small(x, cbt, cbn, labels):
    """Nearest of ksub centroids for rows of a low-dimensional x (a PQ sub-space).

    cbt is the codebook transposed, (dsub, ksub), so the inner loop runs across centroids
    (vectorised) instead of across a handful of dimensions.
    """
    n, dsub = x.shape
    ksub = cbt.shape[1]
    nchunks = (n + _POINT_CHUNK - 1) // _POINT_CHUNK
    for ch in prange(nchunks):
        acc = np.empty(ksub, dtype=np.float32)
        for i in range(ch * _POINT_CHUNK, min(n, (ch + 1) * _POINT_CHUNK)):
            for s in range(ksub):
                acc[s] = cbn[s]
            for t in range(dsub):
                v = np.float32(-2.0) * x[i, t]
                for s in range(ksub):
                    acc[s] += v * cbt[t, s]
            b = acc[0]
            bs = 0
            for s in range(1, ksub):
                if acc[s] < b:
                    b = acc[s]
                    bs = s
            labels[i] = bs


def _fix_empty(c, counts, rng):
    """Split the biggest clusters to refill empty ones (as faiss does): deterministic in rng."""
    for j in np.flatnonzero(counts == 0):
        big = int(np.argmax(counts))
        eps = np.float32(1e-4) * (1 + rng.standard_normal(c.shape[1]).astype(np.float32))
        c[j] = c[big] * (1 + eps)
        c[big] = c[big] * (1 - eps)
        counts[j] = counts[big] // 2
        counts[big] -= counts[j]


def kmeans(x, k, *, niter=10, seed=0):
    """Lloyd's k-means (L2) with a sampled initialisation; deterministic for a seed.

    Parameters
    ----------
    x : float32 (n, d), C-contiguous, n >= k
    k : int
        Number of centroids.

    Returns
    -------
    centroids : float32 (k, d)
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if k < 1 or n < k:
        raise ValueError(f"k-means needs 1 <= k <= n; got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    c = x[np.sort(rng.choice(n, k, replace=False))].copy()
    labels = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=np.float32)
    sums = np.empty((k, d), dtype=np.float64)
    counts = np.empty(k, dtype=np.int64)
    small = d <= 32
    for _ in range(niter):
        if small:
            _nearest_small(x, np.ascontiguousarray(c.T), (c * c).sum(1), labels)
        else:
            _assign_tiles(x, c, (c * c).sum(1), labels, best)
        _centroid_sums(x, labels, k, sums, counts)
        nonzero = counts > 0
        c[nonzero] = (sums[nonzero] / counts[nonzero, None]).astype(np.float32)
        _fix_empty(c, counts, rng)
    return c


def assign(x, centroids):
    """Index of the nearest centroid (L2) of each row: int64 (n,)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    labels = np.empty(x.shape[0], dtype=np.int64)
    best = np.empty(x.shape[0], dtype=np.float32)
    if x.shape[0]:
        _assign_tiles(x, c, (c * c).sum(1), labels, best)
    return labels


def train_pq(r, m, ksub, *, niter=12, seed=0):
    """Product-quantiser codebooks for residuals r: float32 (m, ksub, d // m)."""
    r = np.ascontiguousarray(r, dtype=np.float32)
    n, d = r.shape
    dsub = d // m
    cb = np.empty((m, ksub, dsub), dtype=np.float32)
    for j in range(m):
        sub = np.ascontiguousarray(r[:, j * dsub : (j + 1) * dsub])
        cb[j] = kmeans(sub, ksub, niter=niter, seed=seed + 1 + j)
    return cb


@njit(cache=True, nogil=True, parallel=True)
def _pq_encode(r, cbt, cbn, codes):
    n = r.shape[0]
    m, dsub, ksub = cbt.shape
    nchunks = (n + _POINT_CHUNK - 1) // _POINT_CHUNK
    for ch in prange(nchunks):
        acc = np.empty(ksub, dtype=np.float32)
        for i in range(ch * _POINT_CHUNK, min(n, (ch + 1) * _POINT_CHUNK)):
            for j in range(m):
                for s in range(ksub):
                    acc[s] = cbn[j, s]
                for t in range(dsub):
                    v = np.float32(-2.0) * r[i, j * dsub + t]
                    for s in range(ksub):
                        acc[s] += v * cbt[j, t, s]
                b = acc[0]
                bs = 0
                for s in range(1, ksub):
                    if acc[s] < b:
                        b = acc[s]
                        bs = s
                codes[i, j] = bs


def pq_encode(r, codebooks):
    """PQ codes of residuals r (n, d) under codebooks (m, ksub, dsub): uint8 (n, m)."""
    r = np.ascontiguousarray(r, dtype=np.float32)
    cb = np.ascontiguousarray(codebooks, dtype=np.float32)
    m, ksub, dsub = cb.shape
    if r.shape[1] != m * dsub:
        raise ValueError(f"residuals have dim {r.shape[1]}; codebooks cover {m * dsub}")
    codes = np.empty((r.shape[0], m), dtype=np.uint8)
    if r.shape[0]:
        cbt = np.ascontiguousarray(cb.transpose(0, 2, 1))
        _pq_encode(r, cbt, (cb * cb).sum(2), codes)
    return codes
