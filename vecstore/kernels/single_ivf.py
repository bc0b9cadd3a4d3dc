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

from .adc import COSINE, DOT, probe_into, rerank_into, scan_into
from .single import BAD_QUERY, TOO_FEW, finish, fits

JIT_SOURCES = {
    "adc": "80d8347d0b4c",
    "exact": "f41f649f7e2b",
    "graph": "38ed590c6b04",
    "heap": "e0cd3a2ed0e7",
    "single": "ff9a5172ffd3",
}

# The query check (``fits``), the final sort and rid mapping (``finish``) and the statuses
# left in ``R[0]`` (``BAD_QUERY``; ``TOO_FEW`` here when the probed lists held fewer
# searchable rows than the heap needs, so ``ivf.search`` would probe more) are single.py's.


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
    if not fits(xq[0], lo, hi):
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
    return finish(D, I, metric, xq, rids, R)


@njit(cache=True, nogil=True)
def finish_one(D, I, metric, xq, rids, R, lo, hi):
    """The last step of a query whose lists were scanned by adc.py's wrappers (several
    segments, or lists split over threads): returns the heap D/I (k,)'s scores best first
    and writes their rids into R, as ``ivf_one`` ends; R[0] = BAD_QUERY (no scores) if xq is
    out of [lo, hi]."""
    if not fits(xq[0], lo, hi):
        R[0] = BAD_QUERY
        return np.empty(0, dtype=np.float32)
    return finish(D, I, metric, xq, rids, R)
