"""HNSW search with NumPy alone, no Numba: what the first graph queries of a process run while
the Numba kernels load (``index/cold.py``), and the per-row terms a graph is opened with.
The walk is ``graph.py``'s (greedy descent of the upper layers, then a beam of width ef on
layer 0 with the same push rules), each expansion scoring its unvisited neighbours in one
NumPy call, so both paths visit the same rows apart from float32 rounding. Imports numpy
and heapq only: pure functions over arrays.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import heapq

import numpy as np

METRICS = ("cosine", "dot", "l2")


def row_terms(norms, metric):
    """Per-row ``(w, c)`` of the score ``qa * w[x] * dot(q, x) - c[x]`` for float32 ``norms``
    (n,): ``(1/|x|, 0)`` for cosine (0 for a zero row), ``(1, |x|^2)`` for l2, ``(1, 0)``
    for dot (``kernels.graph.row_terms``)."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    norms = np.asarray(norms, dtype=np.float32)
    n = norms.shape[0]
    if metric == "cosine":
        w = np.divide(1.0, norms, out=np.zeros(n, np.float32), where=norms > 0).astype(np.float32)
        return w, np.zeros(n, np.float32)
    if metric == "l2":
        return np.ones(n, np.float32), (norms * norms).astype(np.float32)
    return np.ones(n, np.float32), np.zeros(n, np.float32)


def upper_slots(levels):
    """``(slot, H)``: each node's row block in UP (-1 at level 0) and the layers above 0
    (``kernels.graph.upper_slots``)."""
    levels = np.asarray(levels)
    upper = levels > 0
    slot = np.full(levels.shape[0], -1, dtype=np.int32)
    slot[upper] = np.arange(int(upper.sum()), dtype=np.int32)
    H = int(levels.max()) if levels.shape[0] else 0
    return slot, H


def query_factor(q, metric):
    """qa of the score formula: 1/|q| for cosine (0 for a zero query), 2 for l2, 1 for dot."""
    if metric == "cosine":
        n = np.float32(np.sqrt(np.dot(q, q)))
        return np.float32(1.0) / n if n > 0 else np.float32(0.0)
    return np.float32(2.0) if metric == "l2" else np.float32(1.0)


def _links(L0, UP, slot, H, u, layer):
    nb = L0[u] if layer == 0 else UP[slot[u] * H + layer - 1]
    end = np.flatnonzero(nb < 0)
    return nb[: end[0]] if len(end) else nb


def search(q, metric, xb, w, c, slot_H, L0, UP, entry, top, ef, mask=None):
    """One query's beam search of one graph: the best ``ef`` searchable rows (``mask``'s, a
    bool (n,), when given; rows outside it are walked through but never returned), as heap
    scores float32 (r,) and rows int64 (r,), best first, r <= ef."""
    slot, H = slot_H
    qa = query_factor(q, metric)

    def score(rows):
        return qa * w[rows] * (xb[rows] @ q) - c[rows]

    ep = int(entry)
    s_ep = float(score(np.array([ep]))[0])
    for layer in range(int(top), 0, -1):  # greedy descent: the best neighbour while it gains
        while True:
            nb = _links(L0, UP, slot, H, ep, layer)
            if not len(nb):
                break
            s = score(nb)
            b = int(np.argmax(s))
            if not s[b] > s_ep:
                break
            ep, s_ep = int(nb[b]), float(s[b])
    seen = np.zeros(len(xb), dtype=bool)
    seen[ep] = True
    cand = [(-s_ep, ep)]  # max-heap of candidates to expand
    res = [] if mask is not None and not mask[ep] else [(s_ep, ep)]  # min-heap of results
    while cand:
        sc, u = cand[0]
        if len(res) >= ef and -sc < res[0][0]:
            break
        heapq.heappop(cand)
        nb = _links(L0, UP, slot, H, u, 0)
        nb = nb[~seen[nb]]
        if len(nb) > 1:  # a neighbour listed twice is visited once, as the kernel does
            _, first = np.unique(nb, return_index=True)
            nb = nb[np.sort(first)]
        if not len(nb):
            continue
        seen[nb] = True
        for s, j in zip(score(nb).tolist(), nb.tolist()):
            if len(res) < ef or s > res[0][0]:
                heapq.heappush(cand, (-s, j))
                if mask is None or mask[j]:
                    if len(res) < ef:
                        heapq.heappush(res, (s, j))
                    else:
                        heapq.heapreplace(res, (s, j))
    res.sort(reverse=True)
    D = np.array([s for s, _ in res], dtype=np.float32)
    I = np.array([j for _, j in res], dtype=np.int64)
    return D, I
