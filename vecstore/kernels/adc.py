"""Searching IVF and IVF-PQ inverted lists: probing (centroid products, the lists to scan, the
ADC look-up table), list scans (exact scores, or ADC estimates from PQ codes) and re-ranking.

Scores follow the exact kernels' heap convention (higher is better, see exact.py): cosine
rows are searched in the unit-normalised space, l2 as ``2 q.x - |x|^2`` (``exact.finish``
adds ``-|q|^2``), dot as ``q.x``. Inverted lists are CSR over one segment whose rows are
stored in list order: list ``L`` is rows ``offsets[L]:offsets[L+1]`` and their ``codes``.
numpy + numba only; compiled lazily on first use, cached on disk. Training is quantize.py's.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .exact import dot_rows8, new_heaps
from .heap import merge, push, replace_top

# The kernels modules whose jitted helpers this one calls, and their hashes: see exact.py.
JIT_SOURCES = {"exact": "f41f649f7e2b", "heap": "e0cd3a2ed0e7"}

#: Metric codes of the kernels (``METRICS[name]``).
COSINE = 0
DOT = 1
L2 = 2
METRICS = {"cosine": COSINE, "dot": DOT, "l2": L2}


@njit(cache=True, nogil=True, fastmath=True)
def lut(q, cbt, T):
    """T[j, s] = q_j . cb[j, s]: the inner product of the query's j-th sub-vector with every
    centroid of sub-quantiser j, from the transposed codebooks cbt (m, dsub, ksub) so the
    inner loop runs across the ksub centroids (vectorised; 4x faster here than across the
    few dimensions of a sub-vector). fastmath: short sums, order-insensitive.

    m x ksub float32: each code byte reads one 1 KiB row, and a row's 256 entries stay in L1
    while a list is scanned (48 KiB in all for m=48). Measured here, this beats a 24 KiB
    uint16 table (1.8x: widening the integers costs more than the smaller footprint saves)
    and a column-major code layout (1.3x)."""
    m, dsub, ksub = cbt.shape
    for j in range(m):
        for s in range(ksub):
            T[j, s] = np.float32(0.0)
        for t in range(dsub):
            v = q[j * dsub + t]
            for s in range(ksub):
                T[j, s] += v * cbt[j, t, s]


@njit(cache=True, nogil=True, fastmath=True)
def _adc(T, codes, i):
    # fastmath: a sum of table entries, order-insensitive
    acc = np.float32(0.0)
    for j in range(codes.shape[1]):
        acc += T[j, codes[i, j]]
    return acc


@njit(cache=True, nogil=True, fastmath=True)
def _dotv(q, xb, i):
    # fastmath: lets the dot product vectorise
    acc = np.float32(0.0)
    for t in range(q.shape[0]):
        acc += q[t] * xb[i, t]
    return acc


@njit(cache=True, nogil=True)
def _exact_score(q, qa, metric, xb, norms, i):
    """The exact heap score of row i of xb for query q (see the module docstring)."""
    return _dot_score(_dotv(q, xb, i), qa, metric, norms, i)


@njit(cache=True, nogil=True)
def _dot_score(dot, qa, metric, norms, i):
    """The heap score of row i from its inner product with the query."""
    if metric == COSINE:
        return dot * qa / norms[i] if norms[i] > 0 else np.float32(0.0)
    if metric == L2:
        return np.float32(2.0) * dot - norms[i] * norms[i]
    return dot


@njit(cache=True, nogil=True)
def _scan_lists(
    q,
    qa,
    qc,
    metric,
    order,
    lo,
    hi,
    offsets,
    codes,
    T,
    xb,
    norms,
    mask,
    has_mask,
    base,
    D,
    I,
):
    """Scan lists order[lo:hi] of one segment for one query, pushing into heap D/I.

    With PQ (codes has m > 0 columns) the score is the ADC estimate of the heap score; without,
    it is the exact heap score computed from the segment's vectors. Returns the number of
    rows seen that pass the mask.
    """
    seen = 0
    pq = codes.shape[1] > 0
    if pq and not has_mask:
        return _scan_codes(metric, qc, order, lo, hi, offsets, codes, T, norms, base, D, I)
    for o in range(lo, hi):
        L = order[o]
        base_score = qc[L]
        for i in range(offsets[L], offsets[L + 1]):
            if has_mask and not mask[i]:
                continue
            seen += 1
            if pq:
                ip = base_score + _adc(T, codes, i)
                if metric == L2:
                    s = np.float32(2.0) * ip - norms[i] * norms[i]
                else:
                    s = ip
            else:
                s = _exact_score(q, qa, metric, xb, norms, i)
            if s > D[0]:
                replace_top(D, I, s, base + i)
    return seen


@njit(cache=True, nogil=True)
def _scan_kept(q, qa, qc, metric, order, lo, hi, koff, rows, codes, T, xb, norms, base, D, I):
    """``_scan_lists`` over only the rows a filter keeps, without reading a mask: ``rows``
    holds their sorted positions and list L's are ``rows[koff[L]:koff[L+1]]`` (the lists
    being contiguous runs of positions, ``koff`` is ``searchsorted(rows, offsets)``). A probe
    under a filter keeping a tenth of the rows then touches a tenth of them, with no
    unpredictable branch per row. Returns the rows scored."""
    if codes.shape[1] > 0:
        return _scan_kept_codes(metric, qc, order, lo, hi, koff, rows, codes, T, norms, base, D, I)
    seen = 0
    for o in range(lo, hi):
        L = order[o]
        start, end = koff[L], koff[L + 1]
        seen += end - start
        for j in range(start, end):
            i = rows[j]
            s = _exact_score(q, qa, metric, xb, norms, i)
            if s > D[0]:
                replace_top(D, I, s, base + i)
    return seen


@njit(cache=True, nogil=True)
def _scan_kept_codes(metric, qc, order, lo, hi, koff, rows, codes, T, norms, base, D, I):
    """``_scan_kept`` with PQ codes: four kept rows at a time, as ``_scan_codes`` (four
    independent sums, and four rows' code bytes fetched at once: kept rows are scattered)."""
    m = codes.shape[1]
    seen = 0
    for o in range(lo, hi):
        L = order[o]
        b = qc[L]
        j, end = koff[L], koff[L + 1]
        seen += end - j
        while j + 4 <= end:
            i0 = rows[j]
            i1 = rows[j + 1]
            i2 = rows[j + 2]
            i3 = rows[j + 3]
            a0 = b
            a1 = b
            a2 = b
            a3 = b
            for t in range(m):
                a0 += T[t, codes[i0, t]]
                a1 += T[t, codes[i1, t]]
                a2 += T[t, codes[i2, t]]
                a3 += T[t, codes[i3, t]]
            offer(metric, a0, norms, i0, base, D, I)
            offer(metric, a1, norms, i1, base, D, I)
            offer(metric, a2, norms, i2, base, D, I)
            offer(metric, a3, norms, i3, base, D, I)
            j += 4
        while j < end:
            i = rows[j]
            offer(metric, b + _adc(T, codes, i), norms, i, base, D, I)
            j += 1
    return seen


@njit(cache=True, nogil=True)
def offer(metric, ip, norms, i, base, D, I):
    """Offer row i, label ``base + i``, to the heap D/I (k,) with the heap score of its ADC
    estimate ``ip`` (q.x): ``2 ip - |x|^2`` for l2, else ``ip``."""
    s = np.float32(2.0) * ip - norms[i] * norms[i] if metric == L2 else ip
    if s > D[0]:
        replace_top(D, I, s, base + i)


@njit(cache=True, nogil=True)
def _scan_codes(metric, qc, order, lo, hi, offsets, codes, T, norms, base, D, I):
    """``_scan_lists`` with PQ codes and no mask: four rows at a time, so four independent
    sums of table entries are in flight (one sum is bound by the add latency; measured here
    1.2-1.3x faster than one row at a time). Deliberately not fastmath: allowed to reorder
    the sums, LLVM vectorises them with AVX-512 gathers, which are 1.2x slower here than
    these scalar loads."""
    m = codes.shape[1]
    seen = 0
    for o in range(lo, hi):
        L = order[o]
        b = qc[L]
        i, end = offsets[L], offsets[L + 1]
        seen += end - i
        while i + 4 <= end:
            a0 = b
            a1 = b
            a2 = b
            a3 = b
            for j in range(m):
                a0 += T[j, codes[i, j]]
                a1 += T[j, codes[i + 1, j]]
                a2 += T[j, codes[i + 2, j]]
                a3 += T[j, codes[i + 3, j]]
            offer(metric, a0, norms, i, base, D, I)
            offer(metric, a1, norms, i + 1, base, D, I)
            offer(metric, a2, norms, i + 2, base, D, I)
            offer(metric, a3, norms, i + 3, base, D, I)
            i += 4
        while i < end:
            offer(metric, b + _adc(T, codes, i), norms, i, base, D, I)
            i += 1
    return seen


@njit(cache=True, nogil=True)
def _scan_query(
    q, qa, qc, metric, order, lo, hi, offsets, codes, cbt, xb, norms, mask, has_mask, base, D, I
):
    """``_scan_lists`` for one query, serially, building its look-up table first."""
    T = _table(q, cbt)
    return _scan_lists(
        q,
        qa,
        qc,
        metric,
        order,
        lo,
        hi,
        offsets,
        codes,
        T,
        xb,
        norms,
        mask,
        has_mask,
        base,
        D,
        I,
    )


@njit(cache=True, nogil=True)
def _table(q, cbt):
    m, ksub = cbt.shape[0], cbt.shape[2]
    T = np.empty((m, ksub), dtype=np.float32)
    if m > 0:
        lut(q, cbt, T)
    return T


@njit(cache=True, nogil=True, parallel=True)
def _scan_lists_batch(
    xq,
    qa,
    QC,
    metric,
    orders,
    lo,
    hi,
    offsets,
    codes,
    cbt,
    xb,
    norms,
    mask,
    has_mask,
    base,
    D,
    I,
    seen,
):
    """``_scan_query`` for every query, in parallel."""
    for qi in prange(xq.shape[0]):
        seen[qi] += _scan_query(
            xq[qi],
            qa[qi],
            QC[qi],
            metric,
            orders[qi],
            lo,
            hi,
            offsets,
            codes,
            cbt,
            xb,
            norms,
            mask,
            has_mask,
            base,
            D[qi],
            I[qi],
        )


@njit(cache=True, nogil=True, parallel=True)
def _scan_lists_threaded(
    q,
    qa,
    qc,
    metric,
    order,
    lo,
    hi,
    offsets,
    codes,
    T,
    xb,
    norms,
    mask,
    has_mask,
    base,
    CD,
    CI,
    seen,
):
    """``_scan_lists`` for one query with its table T, its lists split across threads (one
    heap per chunk)."""
    nchunks = CD.shape[0]
    step = (hi - lo + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        a = lo + ch * step
        b = min(hi, a + step)
        if a < b:
            seen[ch] = _scan_lists(
                q,
                qa,
                qc,
                metric,
                order,
                a,
                b,
                offsets,
                codes,
                T,
                xb,
                norms,
                mask,
                has_mask,
                base,
                CD[ch],
                CI[ch],
            )


@njit(cache=True, nogil=True)
def _rerank_query(q, qa, metric, xb, norms, cand, D, I, base, shift=0):
    """Exact heap scores of one query's candidate rows of one segment, pushed into D/I with
    label ``base + row``: row ``cand[c] - shift`` for each ``cand[c]`` that falls in xb
    (``cand`` holds positions in xb and -1 for none, or labels with ``shift = base``).

    Eight rows at a time (``exact.dot_rows8``): candidates are scattered rows of a large
    array, and interleaving eight rows' loads keeps eight cache misses in flight."""
    R = np.empty(8, dtype=np.int64)
    S = np.empty(8, dtype=np.float32)
    g = 0
    for c in range(cand.shape[0]):
        i = cand[c] - shift
        if 0 <= i < xb.shape[0]:
            R[g] = i
            g += 1
            if g == 8:
                dot_rows8(q, xb, R, S)
                _push_rows(qa, metric, norms, R, S, g, base, D, I)
                g = 0
    for j in range(g):
        S[j] = _dotv(q, xb, R[j])
    _push_rows(qa, metric, norms, R, S, g, base, D, I)


@njit(cache=True, nogil=True)
def _push_rows(qa, metric, norms, R, S, g, base, D, I):
    for j in range(g):
        s = _dot_score(S[j], qa, metric, norms, R[j])
        if s > D[0]:
            replace_top(D, I, s, base + R[j])


def rerank_one(q, metric, xb, norms, labels, base, D, I):
    """Re-rank one query's candidate labels (int64, -1 for none) that fall in the segment
    starting at label ``base``: their exact scores are pushed into heap D/I (k,)."""
    _rerank_query(q, np.float32(1.0), metric, xb, norms, labels, D, I, base, base)


@njit(cache=True, nogil=True, parallel=True)
def _rerank_batch(xq, qa, metric, xb, norms, cand, D, I, base):
    for qi in prange(xq.shape[0]):
        _rerank_query(xq[qi], qa[qi], metric, xb, norms, cand[qi], D[qi], I[qi], base)


def rerank(xq, qa, metric, xb, norms, cand, D, I, base):
    """Push the exact scores of candidate rows ``cand`` (nq, c) of ``xb`` into heaps D/I."""
    if xq.shape[0] == 1:
        _rerank_query(xq[0], qa[0], metric, xb, norms, cand[0], D[0], I[0], base)
    else:
        _rerank_batch(xq, qa, metric, xb, norms, cand, D, I, base)


@njit(cache=True, nogil=True, fastmath=True)
def _normalize(q, cosine, qn):
    # fastmath: a sum of squares, order-insensitive
    d = q.shape[0]
    inv = np.float32(1.0)
    if cosine:
        n2 = np.float32(0.0)
        for t in range(d):
            n2 += q[t] * q[t]
        if n2 > 0:
            inv = np.float32(1.0) / np.sqrt(n2)
    for t in range(d):
        qn[t] = q[t] * inv


@njit(cache=True, nogil=True)
def _select(qc, by_dot, cn2, order):
    """order[:] = the lists to probe, best rank first (inner product for dot, else L2 to the
    centroid, as rows were assigned); NaN ranks give way to the first unpicked lists."""
    width = order.shape[0]
    nlist = qc.shape[0]
    H = np.full(width, -np.inf, dtype=np.float32)
    L = np.full(width, -1, dtype=np.int64)
    for j in range(nlist):
        r = qc[j] if by_dot else np.float32(2.0) * qc[j] - cn2[j]
        push(H, L, r, j)
    ranked = np.argsort(H)
    for w in range(width):
        order[w] = L[ranked[width - 1 - w]]
    if L.min() < 0:  # a NaN rank was never pushed: probe the first unpicked lists instead
        picked = np.zeros(nlist, dtype=np.bool_)
        for w in range(width):
            if order[w] >= 0:
                picked[order[w]] = True
        j = 0
        for w in range(width):
            if order[w] < 0:
                while picked[j]:
                    j += 1
                order[w] = j
                picked[j] = True


@njit(cache=True, nogil=True, fastmath=True)
def _probe_one(q, cosine, by_dot, C8, cs, cn2, cbt, qn, qc, order, T):
    # fastmath: dot products, order-insensitive
    _normalize(q, cosine, qn)
    d = q.shape[0]
    nlist = C8.shape[0]
    n4 = nlist - nlist % 4
    for j in range(0, n4, 4):  # four centroids a pass: each query value loaded once for four
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        for t in range(d):
            v = qn[t]
            a0 += v * np.float32(C8[j, t])
            a1 += v * np.float32(C8[j + 1, t])
            a2 += v * np.float32(C8[j + 2, t])
            a3 += v * np.float32(C8[j + 3, t])
        qc[j] = a0 * cs[j]
        qc[j + 1] = a1 * cs[j + 1]
        qc[j + 2] = a2 * cs[j + 2]
        qc[j + 3] = a3 * cs[j + 3]
    for j in range(n4, nlist):
        acc = np.float32(0.0)
        for t in range(d):
            acc += qn[t] * np.float32(C8[j, t])
        qc[j] = acc * cs[j]
    _select(qc, by_dot, cn2, order)
    if cbt.shape[0] > 0:
        lut(qn, cbt, T)


def probe_one(q, metric, centroids_i8, centroid_scales, centroid_norms2, codebooks_t, width):
    """Everything one query needs before its lists are scanned, in one call.

    Returns the query in the index's space (unit-normalised for cosine), its inner products
    with every centroid (nlist,), the ``width`` lists to probe, nearest first (by inner
    product for dot, else by L2 to the centroid, as rows were assigned), and its ADC look-up
    table (``lut``; ``codebooks_t`` is ``Model.codebooks_t``, (m, dsub, ksub)).

    The centroids come as int8 rows with a float32 scale each (``Model.centroids_i8``): for one
    query, reading the float32 centroids (1.5 MB at nlist 1,024, 384-d) costs more than
    everything else but the scan, and a quarter of it is 45 us faster here. The products are
    within 0.5% of the row's largest value (measured: 99.7% of the 64 lists probed are the
    same); they rank lists and are the coarse term of the ADC estimates, whose candidates
    are then re-ranked exactly.
    """
    d = q.shape[0]
    m, ksub = codebooks_t.shape[0], codebooks_t.shape[2]
    qn = np.empty(d, dtype=np.float32)
    qc = np.empty(centroids_i8.shape[0], dtype=np.float32)
    order = np.empty(width, dtype=np.int64)
    T = np.empty((m, ksub), dtype=np.float32)
    _probe_one(
        q,
        metric == "cosine",
        metric == "dot",
        centroids_i8,
        centroid_scales,
        centroid_norms2,
        codebooks_t,
        qn,
        qc,
        order,
        T,
    )
    return qn, qc, order, T


@njit(cache=True, nogil=True, fastmath=True)
def _dots_group(QN, q0, q1, C, QC):
    """QC[q0:q1] = QN[q0:q1] . C^T for up to four queries, each centroid row read once for
    all of them (fastmath: dot products, order-insensitive)."""
    d = QN.shape[1]
    if q1 - q0 < 4:
        for qi in range(q0, q1):
            for j in range(C.shape[0]):
                acc = np.float32(0.0)
                for t in range(d):
                    acc += QN[qi, t] * C[j, t]
                QC[qi, j] = acc
        return
    for j in range(C.shape[0]):
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        for t in range(d):
            c = C[j, t]
            a0 += QN[q0, t] * c
            a1 += QN[q0 + 1, t] * c
            a2 += QN[q0 + 2, t] * c
            a3 += QN[q0 + 3, t] * c
        QC[q0, j] = a0
        QC[q0 + 1, j] = a1
        QC[q0 + 2, j] = a2
        QC[q0 + 3, j] = a3


@njit(cache=True, nogil=True, parallel=True)
def _probe_batch(xq, cosine, by_dot, C, cn2, QN, QC, orders):
    nq = xq.shape[0]
    for g in prange((nq + 3) // 4):
        q0 = 4 * g
        q1 = min(nq, q0 + 4)
        for qi in range(q0, q1):
            _normalize(xq[qi], cosine, QN[qi])
        _dots_group(QN, q0, q1, C, QC)
        for qi in range(q0, q1):
            _select(QC[qi], by_dot, cn2, orders[qi])


def probe_batch(xq, metric, centroids, centroid_norms2, width):
    """``probe_one`` for a batch of queries, in parallel, without the look-up tables and with
    the float32 centroids (a thread's queries share them from its cache): the queries in the
    index's space (nq, d), their centroid products (nq, nlist) and the ``width`` lists each
    probes first (nq, width).

    No BLAS here on purpose: after a multithreaded sgemm, OpenBLAS's idle threads spin for a
    while, and numba's threads scanning the lists next got half the cores (measured: 1.4x
    slower batches of 1,000 with 4-bit codes, 1.2x with 8-bit)."""
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    nq, d = xq.shape
    QN = np.empty((nq, d), dtype=np.float32)
    QC = np.empty((nq, centroids.shape[0]), dtype=np.float32)
    orders = np.empty((nq, width), dtype=np.int64)
    if nq:
        _probe_batch(
            xq, metric == "cosine", metric == "dot", centroids, centroid_norms2, QN, QC, orders
        )
    return QN, QC, orders


def scan_lists(q, qc, metric, order, lo, hi, offsets, codes, T, xb, norms, mask, base, D, I):
    """Scan lists ``order[lo:hi]`` of one segment for one query into heap D/I, serially;
    returns the rows seen that pass ``mask`` (None: all)."""
    has_mask = mask is not None
    m = mask if has_mask else np.zeros(0, dtype=np.bool_)
    return _scan_lists(
        q,
        np.float32(1.0),
        qc,
        metric,
        order,
        lo,
        hi,
        offsets,
        codes,
        T,
        xb,
        norms,
        m,
        has_mask,
        base,
        D,
        I,
    )


def scan_kept(q, qc, metric, order, lo, hi, koff, rows, codes, T, xb, norms, base, D, I):
    """``scan_lists`` over only the kept ``rows`` (sorted int64 positions) of the lists,
    ``koff`` (nlist + 1,) int64 giving list L's as ``rows[koff[L]:koff[L+1]]``; serially.
    Returns the rows scored."""
    return _scan_kept(q, np.float32(1.0), qc, metric, order, lo, hi, koff, rows, codes, T, xb,
                      norms, base, D, I)  # fmt: skip


def scan_lists_threaded(
    q, qc, metric, order, lo, hi, offsets, codes, T, xb, norms, mask, base, D, I
):
    """``scan_lists`` with the lists ``order[lo:hi]`` split across numba's threads, each
    chunk into its own heap, then merged into D/I; returns the rows seen that pass ``mask``."""
    nch = max(1, min(numba.get_num_threads(), hi - lo))
    PD, PI = new_heaps(nch, D.shape[0])
    seen = np.zeros(nch, dtype=np.int64)
    has_mask = mask is not None
    m = mask if has_mask else np.zeros(0, dtype=np.bool_)
    _scan_lists_threaded(q, np.float32(1.0), qc, metric, order, lo, hi, offsets, codes, T, xb,
                         norms, m, has_mask, base, PD, PI, seen)  # fmt: skip
    merge(PD, PI, D, I)
    return int(seen.sum())


def scan_lists_batch(xq, QC, metric, orders, lo, hi, offsets, codes, cbt, xb, norms, mask, base,
                     D, I, seen):  # fmt: skip
    """``scan_lists`` for a batch of queries (in the index's space), in parallel, each
    building its own look-up table from the transposed codebooks ``cbt`` (m, dsub, ksub):
    lists ``orders[qi, lo:hi]`` of query qi into heap ``D[qi]``/``I[qi]``; ``seen[qi]`` grows
    by the rows it saw that pass ``mask``."""
    has_mask = mask is not None
    m = mask if has_mask else np.zeros(0, dtype=np.bool_)
    qa = np.ones(xq.shape[0], dtype=np.float32)
    _scan_lists_batch(xq, qa, QC, metric, orders, lo, hi, offsets, codes, cbt, xb, norms, m,
                      has_mask, base, D, I, seen)  # fmt: skip


# The jitted helpers that kernels/single_ivf.py's one-call query composes, under public names
# so that it calls these very scans (and the numba cache record sees them: JIT_SOURCES).
probe_into = _probe_one
scan_into = _scan_lists
rerank_into = _rerank_query
