"""Exact top-k with NumPy and BLAS alone, no Numba: what the first queries of a process run
while the Numba kernels load (``index/cold.py``), since loading them costs far more than one
query. Scores follow ``exact.py``'s formula and ``finish``'s clamps, so both paths rank alike
(apart from float32 rounding). Imports numpy only: pure functions over arrays.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import numpy as np


def query_terms(xq, metric):
    """Per query: 1/|q| for cosine (0 for a zero vector), 2 for l2, 1 for dot; float32 (nq,)."""
    if metric == "cosine":
        n = np.sqrt(np.einsum("ij,ij->i", xq, xq, dtype=np.float32))
        out = np.zeros(len(xq), dtype=np.float32)
        np.divide(np.float32(1.0), n, out=out, where=n > 0)
        return out
    return np.full(len(xq), 2.0 if metric == "l2" else 1.0, dtype=np.float32)


def scores(xq, xb, norms, metric, qa):
    """Heap scores ``(qa[q] * w[x]) * dot(x, q) - c[x]`` of every row of ``xb`` (see
    ``exact.py``): float32 (nq, nb)."""
    s = xq @ xb.T
    s *= qa[:, None]
    if metric == "cosine":
        w = np.zeros(len(norms), dtype=np.float32)
        np.divide(np.float32(1.0), norms, out=w, where=norms > 0)
        s *= w[None, :]
    elif metric == "l2":
        s -= (norms * norms)[None, :]
    return s


def topk(S, labels, k):
    """The ``k`` best of each row of scores ``S`` (nq, n), with their ``labels`` (int64
    (n,)), best first: float32 (nq, k') and int64 (nq, k'), k' = min(k, n). Scores of -inf
    (rows left out) come last, with label -1."""
    nq, n = S.shape
    kk = min(k, n)
    if kk < n:
        part = np.argpartition(S, n - kk, axis=1)[:, n - kk :]
    else:
        part = np.broadcast_to(np.arange(n), (nq, n))
    D = np.take_along_axis(S, part, axis=1)
    order = np.argsort(-D, axis=1, kind="stable")
    D = np.take_along_axis(D, order, axis=1)
    I = labels[np.take_along_axis(part, order, axis=1)]
    I[np.isneginf(D)] = -1
    return D, I


def best(D, I, k):
    """The ``k`` best of candidate lists laid side by side (``topk`` outputs concatenated
    along axis 1), best first."""
    order = np.argsort(-D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


def finish(D, I, xq, metric, k):
    """``exact.finish`` for candidate lists: padded to ``k`` with -inf / -1, l2 given back
    its |q|^2 and clamped to <= 0, cosine clamped to [-1, 1]; returns ``(D, I, counts)``."""
    nq = len(xq)
    OD = np.full((nq, k), -np.inf, dtype=np.float32)
    OI = np.full((nq, k), -1, dtype=np.int64)
    c = min(k, D.shape[1])
    OD[:, :c] = D[:, :c]
    OI[:, :c] = I[:, :c]
    OI[np.isneginf(OD)] = -1
    counts = (OI >= 0).sum(axis=1).astype(np.int64)
    if c:
        head = OD[:, :c]
        if metric == "l2":
            qq = np.einsum("ij,ij->i", xq, xq, dtype=np.float32)
            np.minimum(head - qq[:, None], np.float32(0.0), out=head)
        elif metric == "cosine":
            np.clip(head, np.float32(-1.0), np.float32(1.0), out=head)
    return OD, OI, counts
