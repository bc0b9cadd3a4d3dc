"""k-means kernels for clustering a collection: k-means++ seeding and Lloyd passes over rows
that arrive block by block (a segment, or part of one), so no pass needs every row in memory.

Spherical k-means (cosine) works on unit vectors: a row is scaled by ``w = 1/|x|`` as it is
read (a zero row stays zero) and centroids are renormalised after each update. Otherwise it is
Lloyd's k-means under L2 (``w = 1``). Either way a row's squared distance to centroid j is
``q - 2 w x.c_j + |c_j|^2``, with ``q = |w x|^2``.

Passes after the first follow Hamerly (2010): each row keeps an upper bound on its distance to
its centroid and a lower bound on its distance to every other, moved by how far the centroids
moved; a row whose bounds settle its label is not measured again, so later passes measure a
shrinking share of the rows (half of them on average on WordNet embeddings, k = 45), and the
labels are Lloyd's. numpy + numba only: pure functions over arrays, no I/O.
"""

# ruff: noqa: E741

from __future__ import annotations

import numba
import numpy as np
from numba import njit

#: Bounds are widened by this share of ``q + |c|^2`` (in squared distance): float32 rounds a
#: squared distance computed as q - 2 w x.c + |c|^2 by a few units of that size.
_SLACK = np.float32(1e-6)


# fastmath: distance inner loop only (lets LLVM split the sum over SIMD accumulators).
@njit(cache=True, nogil=True, fastmath=True)
def _dot(x, i, c, j):
    s = np.float32(0.0)
    for t in range(x.shape[1]):
        s += x[i, t] * c[j, t]
    return s


# fastmath: distance inner loop only. Four centroids share each load of the row.
@njit(cache=True, nogil=True, fastmath=True)
def _dots4(x, i, c, j):
    s0 = s1 = s2 = s3 = np.float32(0.0)
    for t in range(x.shape[1]):
        v = x[i, t]
        s0 += v * c[j, t]
        s1 += v * c[j + 1, t]
        s2 += v * c[j + 2, t]
        s3 += v * c[j + 3, t]
    return s0, s1, s2, s3


@njit(cache=True, nogil=True)
def _nearest(x, i, w, q, c, cn2):
    """(squared distance to the nearest centroid, to the second nearest, the nearest's index)
    of row i of x."""
    k = c.shape[0]
    k4 = k - k % 4
    a = np.float32(2.0) * w[i]
    b1 = np.float32(np.inf)
    b2 = np.float32(np.inf)
    bj = 0
    for j in range(0, k, 4):
        if j < k4:
            s0, s1, s2, s3 = _dots4(x, i, c, j)
            vals = (s0, s1, s2, s3)
            for u in range(4):
                v = q[i] - a * vals[u] + cn2[j + u]
                if v < b1:
                    b2 = b1
                    b1 = v
                    bj = j + u
                elif v < b2:
                    b2 = v
        else:
            for jj in range(j, k):
                v = q[i] - a * _dot(x, i, c, jj) + cn2[jj]
                if v < b1:
                    b2 = b1
                    b1 = v
                    bj = jj
                elif v < b2:
                    b2 = v
    return b1, b2, bj


@njit(cache=True, nogil=True)
def _lloyd_rows(x, w, q, c, cn2, half_gap, bounded, lo, hi, labels, upper, lower, prev):
    """Rows lo..hi of a block: keep each row's label where its bounds settle it (``bounded``),
    else find its nearest centroid and set its bounds exactly; ``prev`` gets its old label.
    Returns how many labels changed."""
    changed = 0
    k = c.shape[0]
    for i in range(lo, hi):
        a = labels[i]
        prev[i] = a
        if bounded:
            bound = max(half_gap[a], lower[i])
            if upper[i] <= bound:
                continue
            v = q[i] - np.float32(2.0) * w[i] * _dot(x, i, c, a) + cn2[a]
            upper[i] = np.sqrt(max(v, np.float32(0.0)) + _SLACK * (q[i] + cn2[a]))
            if upper[i] <= bound:
                continue
        b1, b2, bj = _nearest(x, i, w, q, c, cn2)
        slack = _SLACK * (q[i] + cn2[bj])
        upper[i] = np.sqrt(max(b1, np.float32(0.0)) + slack)
        lower[i] = np.sqrt(max(b2 - slack, np.float32(0.0))) if k > 1 else np.float32(np.inf)
        if bj != a:
            labels[i] = bj
            changed += 1
    return changed


@njit(cache=True, nogil=True)
def _move_sums(x, w, prev, labels, sums, counts):
    """Move each row whose label changed from its old cluster's running sum (float64) to its
    new one's (a label of -1: in none yet)."""
    for i in range(x.shape[0]):
        old = prev[i]
        new = labels[i]
        if old == new:
            continue
        counts[new] += 1
        if old >= 0:
            counts[old] -= 1
        for t in range(x.shape[1]):
            v = x[i, t] * w[i]
            sums[new, t] += v
            if old >= 0:
                sums[old, t] -= v


@njit(cache=True, nogil=True)
def _move_bounds(labels, upper, lower, delta):
    """After centroid j moved by delta[j]: a row's distance to its own centroid grew by at
    most that, and to any other shrank by at most the largest other move."""
    k = delta.shape[0]
    top = 0
    for j in range(k):
        if delta[j] > delta[top]:
            top = j
    second = np.float32(0.0)
    for j in range(k):
        if j != top and delta[j] > second:
            second = delta[j]
    for i in range(labels.shape[0]):
        a = labels[i]
        upper[i] += delta[a]
        lower[i] -= second if a == top else delta[top]


@njit(cache=True, nogil=True)
def _half_gaps(c, cn2, out):
    k = c.shape[0]
    for a in range(k):
        best = np.float32(np.inf)
        for b in range(k):
            if b != a:
                best = min(best, cn2[a] + cn2[b] - np.float32(2.0) * _dot(c, a, c, b))
        out[a] = np.float32(0.5) * np.sqrt(max(best, np.float32(0.0)))


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


def row_terms(norms, spherical):
    """``(w, q)`` float32 per row: the scale that makes a row a point of the clustering
    (1/|x| for spherical k-means, 0 for a zero row; else 1) and that point's squared norm."""
    norms = np.asarray(norms, dtype=np.float32)
    if spherical:
        w = np.zeros(len(norms), dtype=np.float32)
        np.divide(1.0, norms, out=w, where=norms > 0)
        return w, (norms > 0).astype(np.float32)
    return np.ones(len(norms), dtype=np.float32), (norms * norms).astype(np.float32)


def threads():
    """How many blocks to run at once (numba's thread count)."""
    return numba.get_num_threads()


def assign_block(x, norms, centroids, spherical, labels, upper, lower, lo, *, half_gap=None):
    """One block of a Lloyd pass: rows ``x`` (rows ``lo:lo+m`` of the pass) to their nearest
    centroid, with exact bounds. With ``half_gap`` (``half_gaps`` of the centroids; the
    bounds moved by ``move_bounds`` since they were set), Hamerly's test skips the rows whose
    bounds settle their label. Writes only rows ``lo:lo+m`` of the arrays and releases the
    GIL, so blocks can run in threads; ``move_sums`` then accounts for the moves.

    Parameters
    ----------
    x : float32 (m, d), C-contiguous (read-only views are fine)
    norms : float32 (m,)
        |x| of each row.
    centroids : float32 (k, d), C-contiguous; unit vectors when ``spherical``
    labels : int64 (n,); upper, lower : float32 (n,)
        Each row's centroid (-1: none yet), and bounds on its distance to it and to every
        other.

    Returns int64 (m,): each row's label before the step.
    """
    m = x.shape[0]
    k, d = centroids.shape
    n = labels.shape[0]
    if x.ndim != 2 or x.shape[1] != d or norms.shape != (m,):
        raise ValueError(f"x {x.shape} and norms {norms.shape} do not fit centroids {k}x{d}")
    if not 0 <= lo <= n - m or upper.shape != (n,) or lower.shape != (n,):
        raise ValueError(f"rows {lo}..{lo + m} fall outside labels of {labels.shape}")
    prev = np.empty(m, dtype=np.int64)
    if m == 0:
        return prev
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    w, q = row_terms(norms, spherical)
    cn2 = np.einsum("ij,ij->i", c, c).astype(np.float32)
    bounded = half_gap is not None
    gap = half_gap if bounded else np.zeros(k, dtype=np.float32)
    hi = lo + m
    _lloyd_rows(
        x, w, q, c, cn2, gap, bounded, 0, m, labels[lo:hi], upper[lo:hi], lower[lo:hi], prev
    )
    return prev


def move_sums(x, norms, spherical, prev, labels, sums, counts, lo):
    """Move the block's rows whose label changed from ``prev`` (``assign_block``) between
    the running ``sums`` float64 (k, d) and ``counts`` int64 (k,); returns how many did."""
    m = x.shape[0]
    k, d = sums.shape
    if prev.shape != (m,) or counts.shape != (k,) or (m and x.shape[1] != d):
        raise ValueError(
            f"x {x.shape}, prev {prev.shape}, sums {sums.shape}, counts {counts.shape}"
        )
    moved = prev != labels[lo : lo + m]
    changed = int(np.count_nonzero(moved))
    if changed:
        w, _ = row_terms(norms, spherical)
        _move_sums(x, w, prev, labels[lo : lo + m], sums, counts)
    return changed


def half_gaps(centroids):
    """float32 (k,): half the distance from each centroid to its nearest other, shrunk a
    little against rounding (0 when k is over 4,096: the k x k distances would cost more than
    the test saves)."""
    k = centroids.shape[0]
    out = np.zeros(k, dtype=np.float32)
    if 2 <= k <= 4096:
        c = np.ascontiguousarray(centroids, dtype=np.float32)
        _half_gaps(c, np.einsum("ij,ij->i", c, c).astype(np.float32), out)
        out *= np.float32(1.0 - 1e-4)
        out -= np.float32(1e-4)
        np.maximum(out, 0.0, out=out)
    return out


def move_bounds(labels, upper, lower, old, new):
    """Move every row's bounds by how far each centroid moved from ``old`` to ``new``;
    returns the sum of the squared moves (float)."""
    diff = new.astype(np.float64) - old
    delta2 = np.einsum("ij,ij->i", diff, diff)
    delta = (np.sqrt(delta2) * (1.0 + 1e-6) + 1e-7).astype(np.float32)
    _move_bounds(labels, upper, lower, delta)
    return float(delta2.sum())


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
