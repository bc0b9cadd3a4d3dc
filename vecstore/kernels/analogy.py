"""Word analogies by 3CosMul (Levy and Goldberg, 2014), for a batch of questions at once.

A question "a is to b as c is to ?" scores each row x by
``cos'(x, b) * cos'(x, c) / (cos'(x, a) + eps)`` with ``cos' = (1 + cos) / 2`` (so every factor
is in [0, 1]) and ``eps = 1e-6``, as gensim's ``most_similar_cosmul`` does. The cosines of a
tile of rows with all the questions come from three sgemm products; the kernel combines them
and feeds one top-k heap per question. 3CosAdd needs no kernel of its own: it is one cosine
query, ``b - a + c`` on unit vectors, through kernels/exact.py. numpy + numba only.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

from __future__ import annotations

import numpy as np
from numba import njit

from .heap import push

# The hashes of the kernels modules these kernels inline (tests/test_layout.py checks them).
JIT_SOURCES = {"heap": "e0cd3a2ed0e7"}

#: gensim's epsilon: keeps the quotient finite when cos(x, a) = -1.
EPS = 1e-6
#: Rows per tile: few, large sgemm calls (each call wakes BLAS's threads, which costs most
#: when the other core is busy); three (nq, TILE_ROWS) products are 48 MiB for nq = 1024.
TILE_ROWS = 4096


# Serial on purpose, as exact.py's _push_block: a numba parallel region between two
# multithreaded sgemm calls makes the OpenMP and OpenBLAS thread pools spin against each other
# on the 2 cores (a first parallel version took 10x longer on a busy machine).
@njit(cache=True, nogil=True)
def _cosmul_tile(SA, SB, SC, w, labels, eps, D, I):
    """Push a tile of rows into the heaps D/I (nq, k) by their 3CosMul scores.

    SA, SB, SC (nq, m) float32: the rows' dot products with the unit vectors of a, b and c;
    w (m,): 1/|x| (0 for a zero row); labels (m,) int64: what the heaps store.
    """
    nq, m = SA.shape
    for qi in range(nq):
        Dq = D[qi]
        Iq = I[qi]
        for j in range(m):
            wj = w[j]
            ca = np.float32(0.5) * (np.float32(1.0) + SA[qi, j] * wj)
            cb = np.float32(0.5) * (np.float32(1.0) + SB[qi, j] * wj)
            cc = np.float32(0.5) * (np.float32(1.0) + SC[qi, j] * wj)
            push(Dq, Iq, cb * cc / (ca + eps), labels[j])


def cosmul_into(qa, qb, qc, x, norms, labels, D, I):
    """Offer the rows ``x`` to each question's top-k heap by their 3CosMul scores, in place.

    Parameters
    ----------
    qa, qb, qc : float32 (nq, d), C-contiguous
        The unit vectors of each question's a, b and c.
    x : float32 (m, d)
        Rows (a read-only view of a mapped segment is fine).
    norms : float32 (m,)
        |x| of each row.
    labels : int64 (m,)
        What the heaps store for each row.
    D, I : float32 (nq, k), int64 (nq, k)
        Heaps from ``exact.new_heaps``, or from earlier calls.
    """
    nq, d = qa.shape
    m = x.shape[0]
    if qb.shape != qa.shape or qc.shape != qa.shape:
        raise ValueError(f"qa, qb, qc: expected one shape; got {qa.shape}, {qb.shape}, {qc.shape}")
    if x.ndim != 2 or x.shape[1] != d or norms.shape != (m,) or labels.shape != (m,):
        raise ValueError(f"rows {x.shape}, norms {norms.shape}, labels {labels.shape}; d={d}")
    if D.shape != I.shape or D.shape[0] != nq or D.dtype != np.float32 or I.dtype != np.int64:
        raise ValueError(f"D, I: expected float32 and int64 heaps of shape ({nq}, k)")
    if nq == 0 or m == 0:
        return
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    t = min(m, TILE_ROWS)
    buf = np.empty(3 * nq * t, dtype=np.float32)
    for lo in range(0, m, TILE_ROWS):
        hi = min(m, lo + TILE_ROWS)
        xt = x[lo:hi]
        # np.dot(out=) wants C-contiguous outputs of the exact shape: the last tile's too
        SA, SB, SC = buf[: 3 * nq * (hi - lo)].reshape(3, nq, hi - lo)
        np.dot(qa, xt.T, out=SA)
        np.dot(qb, xt.T, out=SB)
        np.dot(qc, xt.T, out=SC)
        w = np.zeros(hi - lo, dtype=np.float32)
        np.divide(1.0, norms[lo:hi], out=w, where=norms[lo:hi] > 0)
        _cosmul_tile(SA, SB, SC, w, labels[lo:hi], np.float32(EPS), D, I)
