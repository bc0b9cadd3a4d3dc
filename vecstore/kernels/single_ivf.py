"""The single-query kernel of an IVF or IVF-PQ segment for the lean query path: one compiled
call takes one query vector through adc.py's probe (int8 centroids, the lists to probe, the
look-up table), its list scan and, with PQ codes, its exact re-rank, to the final best-first
scores and catalog row ids, checking the query's components on the way.

It calls adc.py's jitted helpers themselves (not copies), so the lists probed, the rows
scanned and their scores are those of ``ivf.search`` for the same query and nprobe. numpy +
numba only: pure functions over arrays, no I/O, no classes.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import numpy as np
from numba import njit

from .adc import COSINE, DOT, L2, probe_into, rerank_into, scan_into
from .heap import sort

JIT_SOURCES = {"adc": "80d8347d0b4c", "exact": "f41f649f7e2b", "heap": "e0cd3a2ed0e7"}

#: Status left in ``R[0]`` (with no scores returned) when a query is not answered here: its
#: vector is out of range (NaN, inf, too large or too small a component), or the probed lists
#: held fewer searchable rows than the heap needs (``ivf.search`` would probe more lists:
#: the caller takes that path). The values are kernels/single.py's.
BAD_QUERY = -2
TOO_FEW = -3


# fastmath: distance inner loop only (exact.py's ``_dot``, the same code for the same sum).
@njit(cache=True, nogil=True, fastmath=True)
def _dot(A, i, B, j):
    s = np.float32(0.0)
    for t in range(A.shape[1]):
        s += A[i, t] * B[j, t]
    return s


@njit(cache=True, nogil=True)
def _fits(q, lo, hi):
    """Whether the largest magnitude of q is within [lo, hi] (or q is all zeros); False for
    NaN and inf (``inputs.matrix``'s rule for one query)."""
    top = np.float32(0.0)
    for t in range(q.shape[0]):
        a = abs(q[t])
        if not a <= hi:  # NaN fails too
            return False
        if a > top:
            top = a
    return top == 0.0 or top >= lo


@njit(cache=True, nogil=True)
def _final(D, I, metric, xq, rids, R):
    """exact.finish of the heap D/I (k,), labels turned into rids: R[:c] = rids[label], and
    the scores (c,) returned best first (l2: -|x - q|^2 clamped to <= 0; cosine clamped to
    [-1, 1])."""
    sort(D, I)
    qq = _dot(xq, 0, xq, 0) if metric == L2 else np.float32(0.0)
    c = 0
    for j in range(D.shape[0]):
        if I[j] >= 0:
            if metric == L2:
                D[j] = min(D[j] - qq, np.float32(0.0))
            elif metric == COSINE:
                # float32 rounding can put a self-match a hair above 1
                D[j] = max(min(D[j], np.float32(1.0)), np.float32(-1.0))
            R[c] = rids[I[j]]
            c += 1
    return D[:c]


@njit(cache=True, nogil=True)
def ivf_one(xq, metric, C8, cs, cn2, cbt, width, offsets, codes, xb, norms, mask, has_mask,
            seen, kc, D, I, rids, R, lo, hi):  # fmt: skip
    """The best len(R) rows for the query xq (1, d) through one IVF segment's lists, on this
    thread: returns their scores, best first, and writes their rids into R.

    The segment's rows xb (n, d), norms (n,), CSR ``offsets`` (nlist + 1,) and PQ ``codes``
    (n, m; m = 0 for flat lists) are in list order; C8 int8 (nlist, d), cs (nlist,), cn2
    (nlist,) and cbt (m, dsub, ksub) are the model's (``ivf.Model``). ``mask`` bool (n,) of
    live rows when has_mask. D/I (k,) is a heap that may already hold rows scanned exactly
    (labels from n on, ``seen`` of them); ``rids`` maps every label to its rid. ``width``
    lists are probed; with codes, the best ``kc`` ADC estimates are re-ranked exactly.

    R[0] = BAD_QUERY (no scores) if xq is out of [lo, hi]; R[0] = TOO_FEW (no scores) if the
    probed lists and ``seen`` hold fewer than kc searchable rows while lists remain."""
    if not _fits(xq[0], lo, hi):
        R[0] = BAD_QUERY
        return np.empty(0, dtype=np.float32)
    q = xq[0]
    d = q.shape[0]
    nlist = C8.shape[0]
    m, ksub = cbt.shape[0], cbt.shape[2]
    qn = np.empty(d, dtype=np.float32)
    qc = np.empty(nlist, dtype=np.float32)
    order = np.empty(width, dtype=np.int64)
    T = np.empty((m, ksub), dtype=np.float32)
    probe_into(q, metric == COSINE, metric == DOT, C8, cs, cn2, cbt, qn, qc, order, T)
    pq = codes.shape[1] > 0
    if pq:
        CD = np.full(kc, -np.inf, dtype=np.float32)
        CI = np.full(kc, -1, dtype=np.int64)
    else:
        CD, CI = D, I
    total = seen + scan_into(qn, np.float32(1.0), qc, metric, order, 0, width, offsets, codes,
                             T, xb, norms, mask, has_mask, 0, CD, CI)  # fmt: skip
    if total < kc and width < nlist:
        R[0] = TOO_FEW
        return np.empty(0, dtype=np.float32)
    if pq:
        rerank_into(qn, np.float32(1.0), metric, xb, norms, CI, D, I, 0, 0)
    return _final(D, I, metric, xq, rids, R)


@njit(cache=True, nogil=True)
def finish_one(D, I, metric, xq, rids, R, lo, hi):
    """The last step of a query whose lists were scanned by adc.py's wrappers (several
    segments, or lists split over threads): returns the heap D/I (k,)'s scores best first
    and writes their rids into R, as ``ivf_one`` ends; R[0] = BAD_QUERY (no scores) if xq is
    out of [lo, hi]."""
    if not _fits(xq[0], lo, hi):
        R[0] = BAD_QUERY
        return np.empty(0, dtype=np.float32)
    return _final(D, I, metric, xq, rids, R)
