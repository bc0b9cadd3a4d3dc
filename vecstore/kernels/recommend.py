"""Recommendation by several examples: the top-k rows under Qdrant's ``best_score`` rule.

Each row is scored against every example (cosine, inner product, or minus the squared L2
distance, as the search kernels score); ``bp`` and ``bn`` are its best scores against the
positive and the negative examples. A row closer to a positive than to any negative scores
``sq(bp)`` in (0, 1), any other row ``-sq(bn)`` in (-1, 0), where
``sq(s) = (1 + s / (1 + |s|)) / 2`` is a monotone squash. numpy + numba only.
"""

# D and I are the faiss names the house style asks for.
# ruff: noqa: E741

from __future__ import annotations

import numpy as np
from numba import njit

from .heap import push, sort

# The hashes of the kernels modules these kernels inline (tests/test_layout.py checks them).
JIT_SOURCES = {"heap": "e0cd3a2ed0e7"}

METRICS = ("cosine", "dot", "l2")
_COSINE, _DOT, _L2 = 0, 1, 2
TILE_ROWS = 4096


@njit(cache=True, nogil=True)
def _squash(s):
    return 0.5 * (1.0 + s / (1.0 + abs(s)))


@njit(cache=True, nogil=True)
def _best_score_tile(S, npos, metric, wr, cr, we, ce, labels, D, I):
    """Push each row of a tile into the heap D/I under the best_score rule.

    S (m, ne) float32: the rows' raw dot products with the examples, positives first.
    wr, we: 1/|x| (cosine; 0 for a zero vector) else 1; cr, ce: |x|^2 (l2) else 0.
    labels (m,) int64: what the heap stores for each row.
    """
    m, ne = S.shape
    for i in range(m):
        bp = -np.inf
        bn = -np.inf
        for e in range(ne):
            s = S[i, e]
            if metric == _COSINE:
                s = s * wr[i] * we[e]
            elif metric == _L2:
                s = min(2.0 * s - cr[i] - ce[e], 0.0)
            if e < npos:
                bp = max(bp, s)
            else:
                bn = max(bn, s)
        push(D, I, _squash(bp) if bp > bn else -_squash(bn), labels[i])


def _terms(norms, metric):
    w = np.ones(len(norms), dtype=np.float32)
    c = np.zeros(len(norms), dtype=np.float32)
    if metric == "cosine":
        w[:] = 0.0
        np.divide(1.0, norms, out=w, where=norms > 0)
    elif metric == "l2":
        c = (norms * norms).astype(np.float32)
    return w, c


def best_score_into(x, norms, labels, examples, npos, metric, D, I):
    """Offer rows ``x`` to the top-k heap ``D``/``I`` under the best_score rule, in place.

    Parameters
    ----------
    x : float32 (m, d), C-contiguous (read-only views are fine)
    norms : float32 (m,)
        |x| of each row.
    labels : int64 (m,)
        What the heap stores for each row.
    examples : float32 (ne, d), C-contiguous, ne >= 1
        The positive examples, then the negative ones.
    npos : int
        How many of ``examples`` are positive.
    metric : {"cosine", "dot", "l2"}
    D, I : float32 (k,), int64 (k,)
        A heap from ``new_heap``, or from earlier calls.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    ne, d = examples.shape
    m = x.shape[0]
    if ne < 1 or not 0 <= npos <= ne:
        raise ValueError(f"expected at least one example and 0 <= npos <= {ne}; got {npos}")
    if x.ndim != 2 or x.shape[1] != d or norms.shape != (m,) or labels.shape != (m,):
        raise ValueError(f"rows {x.shape}, norms {norms.shape}, labels {labels.shape}; d={d}")
    if D.shape != I.shape or D.ndim != 1 or D.dtype != np.float32 or I.dtype != np.int64:
        raise ValueError("D, I: expected float32 and int64 heaps of one length")
    en = np.sqrt(np.einsum("ij,ij->i", examples, examples))
    we, ce = _terms(en, metric)
    code = METRICS.index(metric)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    S = np.empty((min(m, TILE_ROWS), ne), dtype=np.float32)
    for lo in range(0, m, TILE_ROWS):
        hi = min(m, lo + TILE_ROWS)
        Sb = S[: hi - lo]
        np.dot(x[lo:hi], examples.T, out=Sb)
        wr, cr = _terms(norms[lo:hi], metric)
        _best_score_tile(Sb, npos, code, wr, cr, we, ce, labels[lo:hi], D, I)


def new_heap(k):
    """An empty top-k heap: float32 (k,) of -inf and int64 (k,) of -1."""
    return np.full(k, -np.inf, dtype=np.float32), np.full(k, -1, dtype=np.int64)


def finish(D, I):
    """``(scores float32 (n,), labels int64 (n,))`` of a heap, best first, n <= k."""
    OD = D.copy()
    OI = I.copy()
    sort(OD, OI)
    n = int(np.count_nonzero(OI >= 0))  # empty entries (-inf, -1) sort last
    return OD[:n], OI[:n]
