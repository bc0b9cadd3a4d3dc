"""IVF and IVF-PQ probing with NumPy and BLAS alone, no Numba: what the first ANN queries of a
process run while the Numba kernels load (``index/cold.py``). Each step follows ``adc.py``'s
formulas (the int8 centroids a single query probes with, the look-up table, the ADC estimate
``qc[L] + sum_j T[j, code_j]``, its heap score), so both paths pick the same lists and the
same candidates apart from float32 rounding. Imports numpy only: pure functions over arrays.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import numpy as np


def normalize(xq, metric):
    """The queries in the index's space: unit-normalised for cosine (a zero row stays zero),
    as given otherwise; float32 (nq, d)."""
    if metric != "cosine":
        return xq
    n = np.sqrt(np.einsum("ij,ij->i", xq, xq, dtype=np.float32))
    inv = np.ones(len(xq), dtype=np.float32)
    np.divide(np.float32(1.0), n, out=inv, where=n > 0)
    return (xq * inv[:, None]).astype(np.float32, copy=False)


def centroid_products(qn, centroids, centroids_i8=None, scales=None):
    """Inner products of the queries ``qn`` (nq, d) with every centroid: float32 (nq, nlist).
    With ``centroids_i8``/``scales`` (``Model.centroids_i8``/``centroid_scales``), from the
    int8 rows, as ``adc.probe_one`` computes them for a single query."""
    if centroids_i8 is None:
        return qn @ centroids.T
    return (qn @ centroids_i8.astype(np.float32).T) * scales[None, :]


def list_rank(qc, metric, centroid_norms2):
    """The probing rank of each list (higher first): the inner product for dot, else minus the
    L2 distance to the centroid up to a per-query constant (``2 q.c - |c|^2``)."""
    if metric == "dot":
        return qc
    return np.float32(2.0) * qc - centroid_norms2[None, :]


def list_order(rank):
    """Every list of each query, best rank first (stable on ties; NaN ranks last): int64
    (nq, nlist)."""
    r = np.where(np.isnan(rank), -np.inf, rank)
    return np.argsort(-r, axis=1, kind="stable")


def table(q, codebooks):
    """The ADC look-up table of one query (d,): T[j, s] = q_j . cb[j, s], float32 (m, ksub),
    from the codebooks (m, ksub, dsub)."""
    m, ksub, dsub = codebooks.shape
    if m == 0:
        return np.zeros((0, ksub), dtype=np.float32)
    return np.einsum("jt,jst->js", q.reshape(m, dsub), codebooks, dtype=np.float32)


def list_rows(offsets, lists):
    """The rows of the lists ``lists`` (int64) of one segment, list by list, and the list of
    each row: int64 (r,), int64 (r,)."""
    starts = offsets[lists]
    sizes = offsets[lists + 1] - starts
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(lists)), sizes)
    first = np.zeros(len(lists), np.int64)
    np.cumsum(sizes[:-1], out=first[1:])
    rows = starts[owner] + (np.arange(total, dtype=np.int64) - first[owner])
    return rows, lists[owner]


def adc_scores(T, codes, rows, row_lists, qc, metric, norms):
    """Heap scores of the ADC estimates of ``rows`` (whose lists are ``row_lists``) for one
    query: ``ip = qc[L] + sum_j T[j, codes[i, j]]``, then ``2 ip - |x|^2`` for l2, else
    ``ip`` (``adc.offer``): float32 (r,)."""
    m, ksub = T.shape
    shift = np.arange(m, dtype=np.intp) * ksub
    ip = np.take(T.ravel(), codes[rows].astype(np.intp) + shift).sum(axis=1, dtype=np.float32)
    ip += qc[row_lists]
    if metric == "l2":
        nr = norms[rows]
        return np.float32(2.0) * ip - nr * nr
    return ip
