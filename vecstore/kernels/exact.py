"""Exact top-k search kernels: dot, cosine and l2 scores of float32 rows into per-query heaps.

A one-pass memory-bound scan serves a few queries; sgemm tiles serve batches.
Imports numpy and numba only: pure functions over arrays, no I/O, no classes.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import operator

import numba
import numpy as np
from numba import njit, prange

from .heap import replace_top, sort

# Numba's disk cache keys each kernel on its own file only: a kernel here that calls (and
# inlines) a helper of another file keeps running the old helper after that file changes.
# So every kernels module records the hashes of the kernels modules it calls into, and
# tests/test_layout.py fails until they match: editing heap.py forces an edit of this file,
# which invalidates its cached kernels.
JIT_SOURCES = {"heap": "e0cd3a2ed0e7"}

METRICS = ("cosine", "dot", "l2")

_COSINE = 0
_DOT = 1
_L2 = 2

# Up to this many queries, one pass over the rows serves all queries (each row is read from
# memory once and reused from L1 for every query): bandwidth-bound up to ~4 queries, then
# compute-bound at ~15 ns per 384-d dot per core.  Above it, tiles through multithreaded sgemm
# win.  Measured on 100k x 384 (2 cores): the two paths cross between 12 and 24 queries; 16 also
# leans towards the scan, which degrades far less than sgemm when a core is busy elsewhere.
SMALL_BATCH_MAX = 16

# Rows per sgemm tile: the nq x tile score block is kept near _TILE_SCORE_BYTES (so it is still
# in cache when the heaps consume it) within [_TILE_MIN_ROWS, _TILE_MAX_ROWS].  Throughput was
# flat within noise from 256 to 8192 rows for nq = 32 and nq = 1000.
_TILE_SCORE_BYTES = 1 << 21
_TILE_MIN_ROWS = 256
_TILE_MAX_ROWS = 4096

# A mask without `rows` that keeps less than this fraction of the rows is turned into a row
# list on the batch path: gathering the kept rows is cheaper than multiplying the dropped ones.
_MASK_GATHER_DENSITY = 0.5

# Scans over fewer vector elements than this run serially (see _num_chunks): a parallel
# region costs ~20 us to wake, and far more when the other core is busy.  Measured crossover
# of serial and 2-thread scans: 2-4e5 elements.
_PARALLEL_MIN_WORK = 1 << 18
# ... and scans of scattered rows (a filter's) over fewer than this. Such rows are never in
# cache and each thread keeps its own misses in flight: at 500 of 100k x 384 rows, two threads
# took a filtered query from 0.91 to 0.72 ms.
_PARALLEL_MIN_ROWS_WORK = 1 << 16

# Columns per block in the batch heap update (see _push_block).
_PUSH_BLOCK = 64


# ---------------------------------------------------------------------------------------------
# jitted helpers
#
# Every score is ``(qa[q] * w[x]) * dot(x, q) - c[x]``, with per-query qa and per-row (w, c):
#   dot     qa = 1        w = 1                       c = 0
#   cosine  qa = 1/|q|    w = 1/|x|                   c = 0      (qa or w is 0 for a zero vector)
#   l2      qa = 2        w = 1                       c = |x|^2  (finish() subtracts |q|^2)
# One formula for all metrics keeps the heap loops branch-free and both search paths identical.
# ---------------------------------------------------------------------------------------------


# fastmath: distance inner loop only; it lets LLVM split the sum over several SIMD accumulators.
# Rows are passed as (2-D array, index) rather than as row views: a view per call costs a
# reference-count round trip in the hot loop.
@njit(cache=True, nogil=True, fastmath=True)
def _dot(A, i, B, j):
    """A[i] . B[j]"""
    s = np.float32(0.0)
    for t in range(A.shape[1]):
        s += A[i, t] * B[j, t]
    return s


# fastmath: distance inner loop only.  Four queries share each load of the row, which matters
# once a handful of queries make the one-pass scan compute-bound rather than memory-bound.
@njit(cache=True, nogil=True, fastmath=True)
def _dot4(A, i, B, j):
    """A[i] . B[j], A[i] . B[j + 1], A[i] . B[j + 2], A[i] . B[j + 3]"""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    for t in range(A.shape[1]):
        v = A[i, t]
        s0 += v * B[j, t]
        s1 += v * B[j + 1, t]
        s2 += v * B[j + 2, t]
        s3 += v * B[j + 3, t]
    return s0, s1, s2, s3


# fastmath: distance inner loop only.  A single query's scan of scattered rows (a filter's
# thousand rows) waits on memory, not arithmetic: interleaving eight rows' loads keeps eight
# cache misses in flight instead of one: 1.6x faster than one row at a time at 500 rows.
@njit(cache=True, nogil=True, fastmath=True)
def dot_rows8(q, B, R, out):
    """out[g] = q . B[R[g]] for g in 0..7 (q a vector). Also re-ranks IVF-PQ candidates."""
    r0, r1, r2, r3, r4, r5, r6, r7 = R[0], R[1], R[2], R[3], R[4], R[5], R[6], R[7]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
    for t in range(q.shape[0]):
        v = q[t]
        s0 += v * B[r0, t]
        s1 += v * B[r1, t]
        s2 += v * B[r2, t]
        s3 += v * B[r3, t]
        s4 += v * B[r4, t]
        s5 += v * B[r5, t]
        s6 += v * B[r6, t]
        s7 += v * B[r7, t]
    out[0], out[1], out[2], out[3] = s0, s1, s2, s3
    out[4], out[5], out[6], out[7] = s4, s5, s6, s7


@njit(cache=True, nogil=True)
def _row_terms(metric, xn):
    """(w, c) of a row with norm xn (see the table above)."""
    if metric == _COSINE:
        if xn > 0.0:
            return np.float32(1.0) / xn, np.float32(0.0)
        return np.float32(0.0), np.float32(0.0)
    if metric == _L2:
        return np.float32(1.0), xn * xn
    return np.float32(1.0), np.float32(0.0)


@njit(cache=True, nogil=True)
def _query_terms(xq, metric, qa):
    for i in range(xq.shape[0]):
        if metric == _COSINE:
            qn = np.sqrt(_dot(xq, i, xq, i))
            qa[i] = np.float32(1.0) / qn if qn > 0.0 else np.float32(0.0)
        elif metric == _L2:
            qa[i] = np.float32(2.0)
        else:
            qa[i] = np.float32(1.0)


@njit(cache=True, nogil=True)
def _push(D, I, qi, s, label):
    """Offer (s, label) to heap qi; the guard makes the common no-push case nearly free."""
    if s > D[qi, 0]:
        replace_top(D[qi], I[qi], s, label)


@njit(cache=True, nogil=True)
def _any_above(S, W, C, a, top):
    """Whether any of the scores (a * W) * S - C exceeds top.

    No early exit and an OR instead of a count: both keep the loop a plain SIMD reduction.
    It loops from 0 over slices (not over j0..j1) so numba knows the index is non-negative
    and LLVM vectorises it instead of emitting gathers.
    """
    hit = False
    for j in range(S.shape[0]):
        hit |= (a * W[j]) * S[j] - C[j] > top
    return hit


# ---------------------------------------------------------------------------------------------
# kernels (write into preallocated outputs, never raise)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _rising(a):
    """Whether a 1-D array strictly increases (a compiled loop: NumPy's ``all`` of a comparison
    costs 3-4 us a call, a tenth of a filtered query's scan)."""
    for i in range(1, a.shape[0]):
        if a[i] <= a[i - 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def _row_norms_range(x, lo, hi, out):
    for i in range(lo, hi):
        out[i] = np.sqrt(_dot(x, i, x, i))


@njit(cache=True, nogil=True, parallel=True)
def _row_norms_chunks(x, nchunks, out):
    n = x.shape[0]
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        _row_norms_range(x, c * step, min(n, (c + 1) * step), out)


@njit(cache=True, nogil=True)
def _scan_range(xq, xb, norms, metric, qa, rows, has_rows, mask, has_mask, base, lo, hi, D, I):
    """Small-batch path: one pass over positions lo..hi serves every query.

    Position p is row ``rows[p]``, or ``p`` itself without `rows`.  The pass is memory-bound:
    each row is read from DRAM once and reused from L1 for all nq queries.  D/I (nq, k) heaps.
    """
    nq = xq.shape[0]
    if nq == 1 and has_rows:
        _scan_rows_one(xq, xb, norms, metric, qa, rows, mask, has_mask, base, lo, hi, D, I)
        return
    nq4 = nq - nq % 4
    for p in range(lo, hi):
        r = rows[p] if has_rows else p
        if has_mask and mask[r] == 0:
            continue
        w, cc = _row_terms(metric, norms[r])
        label = base + r
        for q0 in range(0, nq4, 4):
            s0, s1, s2, s3 = _dot4(xb, r, xq, q0)
            _push(D, I, q0, (qa[q0] * w) * s0 - cc, label)
            _push(D, I, q0 + 1, (qa[q0 + 1] * w) * s1 - cc, label)
            _push(D, I, q0 + 2, (qa[q0 + 2] * w) * s2 - cc, label)
            _push(D, I, q0 + 3, (qa[q0 + 3] * w) * s3 - cc, label)
        for qi in range(nq4, nq):
            _push(D, I, qi, (qa[qi] * w) * _dot(xb, r, xq, qi) - cc, label)


@njit(cache=True, nogil=True)
def _scan_rows_one(xq, xb, norms, metric, qa, rows, mask, has_mask, base, lo, hi, D, I):
    """`_scan_range` for one query over scattered ``rows``, eight at a time (`dot_rows8`).
    (Contiguous rows stream well one at a time: grouping them measured 8% slower there.)"""
    R = np.empty(8, dtype=np.int64)
    S = np.empty(8, dtype=np.float32)
    g = 0
    for p in range(lo, hi):
        r = rows[p]
        if has_mask and mask[r] == 0:
            continue
        R[g] = r
        g += 1
        if g == 8:
            dot_rows8(xq[0], xb, R, S)
            for j in range(8):
                w, cc = _row_terms(metric, norms[R[j]])
                _push(D, I, 0, (qa[0] * w) * S[j] - cc, base + R[j])
            g = 0
    for j in range(g):
        w, cc = _row_terms(metric, norms[R[j]])
        _push(D, I, 0, (qa[0] * w) * _dot(xb, R[j], xq, 0) - cc, base + R[j])


@njit(cache=True, nogil=True, parallel=True)
def _scan_chunks(xq, xb, norms, metric, qa, rows, has_rows, mask, has_mask, base, CD, CI):
    """`_scan_range` over nchunks contiguous ranges in parallel, each into its own heaps.

    CD/CI (nchunks, nq, k) must hold empty heaps; `_merge_chunks` folds them into D/I.
    """
    nchunks = CD.shape[0]
    n = rows.shape[0] if has_rows else xb.shape[0]
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = min(n, c * step)
        hi = min(n, lo + step)
        _scan_range(
            xq, xb, norms, metric, qa, rows, has_rows, mask, has_mask, base, lo, hi, CD[c], CI[c]
        )


@njit(cache=True, nogil=True)
def _merge_chunks(CD, CI, D, I):
    # heap.merge per query would take strided CD[:, qi] views: measured 1.1-1.5x slower
    for c in range(CD.shape[0]):
        for qi in range(CD.shape[1]):
            for j in range(CD.shape[2]):
                s = CD[c, qi, j]
                if CI[c, qi, j] >= 0 and s > D[qi, 0]:
                    replace_top(D[qi], I[qi], s, CI[c, qi, j])


@njit(cache=True, nogil=True)
def _push_block(S, labels, W, C, qa, D, I, base):
    """Push a (nq, m) block of raw dot products into the heaps.

    Column j is row labels[j] with terms W[j], C[j].  Each run of _PUSH_BLOCK columns is first
    tested with a vectorised `_any_above`; the scalar heap code only runs on the few runs that
    hold a candidate (a few dozen of ~1600 per query over 100k rows, k = 10).

    Serial on purpose: a numba parallel region between two multithreaded sgemm calls makes the
    OpenMP and OpenBLAS thread pools spin against each other on the 2 cores (measured 1.5x to
    20x slower overall than this serial loop, worst for small nq).
    """
    nq, m = S.shape
    for qi in range(nq):
        Sq = S[qi]
        Dq = D[qi]
        Iq = I[qi]
        a = qa[qi]
        top = Dq[0]
        for j0 in range(0, m, _PUSH_BLOCK):
            j1 = min(m, j0 + _PUSH_BLOCK)
            if not _any_above(Sq[j0:j1], W[j0:j1], C[j0:j1], a, top):
                continue
            for j in range(j0, j1):
                s = (a * W[j]) * Sq[j] - C[j]
                if s > top:
                    replace_top(Dq, Iq, s, base + labels[j])
                    top = Dq[0]


@njit(cache=True, nogil=True)
def _scan_tiles(
    xq, xb, norms, metric, qa, rows, has_rows, mask, has_mask, base, D, I, S, G, GW, GC, GL
):
    """Batch path: sgemm on tiles of rows, then heap pushes; never builds the nq x nb matrix.

    S (nq * T,) float32 scores; G (T, d) float32 gathered rows (only used with `rows`);
    GW, GC (T,) float32 row terms; GL (T,) int64 row indices; T is the tile height.
    """
    nq = xq.shape[0]
    nb = xb.shape[0]
    T = GL.shape[0]
    if has_rows:
        n = rows.shape[0]
        p = 0
        while p < n:
            # Gather allowed rows into a contiguous block so sgemm only sees useful rows.
            m = 0
            while p < n and m < T:
                r = rows[p]
                p += 1
                if has_mask and mask[r] == 0:
                    continue
                G[m, :] = xb[r]
                GW[m], GC[m] = _row_terms(metric, norms[r])
                GL[m] = r
                m += 1
            if m == 0:
                break
            Sb = S[: nq * m].reshape((nq, m))
            np.dot(xq, G[:m].T, Sb)
            _push_block(Sb, GL[:m], GW[:m], GC[:m], qa, D, I, base)
    else:
        for r0 in range(0, nb, T):
            r1 = min(nb, r0 + T)
            m = r1 - r0
            for j in range(m):
                r = r0 + j
                GL[j] = r
                GW[j], GC[j] = _row_terms(metric, norms[r])
                if has_mask and mask[r] == 0:
                    # +inf makes every score of this row -inf (or nan): never pushed.
                    GC[j] = np.inf
            Sb = S[: nq * m].reshape((nq, m))
            np.dot(xq, xb[r0:r1].T, Sb)
            _push_block(Sb, GL[:m], GW[:m], GC[:m], qa, D, I, base)


@njit(cache=True, nogil=True)
def _finish_into(D, I, metric, xq, OD, OI, counts):
    """Heap-sort each row best-first into OD/OI; l2 gets its |q|^2 back and is clamped to <= 0,
    cosine is clamped to [-1, 1].

    Serial: it is tiny, and a parallel region right after sgemm costs more than it saves.
    """
    nq, k = D.shape
    for qi in range(nq):
        Dq = OD[qi]
        Iq = OI[qi]
        for j in range(k):
            Dq[j] = D[qi, j]
            Iq[j] = I[qi, j]
        sort(Dq, Iq)  # heapifies first: any (D, I) pair sorts, not only well-formed heaps
        qq = _dot(xq, qi, xq, qi) if metric == _L2 else np.float32(0.0)
        c = 0
        for j in range(k):
            if Iq[j] >= 0:
                c += 1
                if metric == _L2:
                    Dq[j] = min(Dq[j] - qq, np.float32(0.0))
                elif metric == _COSINE:
                    # float32 rounding can put a self-match a hair above 1
                    Dq[j] = max(min(Dq[j], np.float32(1.0)), np.float32(-1.0))
        counts[qi] = c


# ---------------------------------------------------------------------------------------------
# public wrappers (validate, allocate, call a kernel)
# ---------------------------------------------------------------------------------------------


def _check_array(name, a, dtype, ndim):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        # str() shows byte order too: a big-endian '>f4' is not the float32 the kernels take.
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {a.dtype!s}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got strides {a.strides}")


def _metric_code(metric):
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    return METRICS.index(metric)


def _writable(a):
    # xq/rows/mask are small next to xb: copying a read-only one keeps the number of compiled
    # specialisations down.  xb and norms are never copied.
    return a if a.flags.writeable else a.copy()


def row_norms(x):
    """L2 norm of each row.

    Parameters
    ----------
    x : float32 (n, d), C-contiguous (read-only views are fine).

    Returns
    -------
    float32 (n,)
    """
    _check_array("x", x, np.float32, 2)
    n = x.shape[0]
    out = np.empty(n, dtype=np.float32)
    nchunks = _num_chunks(n * x.shape[1])
    if nchunks > 1:
        _row_norms_chunks(x, nchunks, out)
    elif n > 0:
        _row_norms_range(x, 0, n, out)
    return out


def new_heaps(nq, k):
    """Empty top-k heaps for `nq` queries.

    Returns
    -------
    D : float32 (nq, k) filled with -inf
    I : int64 (nq, k) filled with -1
    """
    nq = operator.index(nq)
    k = operator.index(k)
    if nq < 0:
        raise ValueError(f"nq: expected >= 0, got {nq}")
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    D = np.empty((nq, k), dtype=np.float32)
    D.fill(-np.inf)  # empty + fill: np.full's Python wrapper doubles a single query's cost
    I = np.empty((nq, k), dtype=np.int64)
    I.fill(-1)
    return D, I


def _num_chunks(work, scattered=False):
    """Parallel chunks for a scan over `work` vector elements (of `scattered` rows): 1
    (serial) when it is so small that waking the thread pool would cost more than it saves,
    else one per numba thread."""
    if work < (_PARALLEL_MIN_ROWS_WORK if scattered else _PARALLEL_MIN_WORK):
        return 1
    return max(1, numba.get_num_threads())


def _tile_rows(nq):
    t = _TILE_SCORE_BYTES // (4 * max(nq, 1))
    return int(min(_TILE_MAX_ROWS, max(_TILE_MIN_ROWS, t)))


def _checked_rows(rows, nb):
    """``search_into``'s ``rows``, checked: int64, C-contiguous, writable."""
    if not isinstance(rows, np.ndarray) or rows.dtype.kind not in "iu":
        got = rows.dtype.name if isinstance(rows, np.ndarray) else type(rows).__name__
        raise TypeError(f"rows: expected an int64 array, got {got}")
    if rows.ndim != 1:
        raise ValueError(f"rows: expected a 1-D array, got shape {rows.shape}")
    rows = _writable(np.ascontiguousarray(rows, dtype=np.int64))
    # The kernels do not bounds-check: an index out of range here would read stray memory.
    if not _rising(rows):
        raise ValueError("rows: expected sorted ascending unique indices, got unsorted ones")
    if rows.shape[0] > 0 and (rows[0] < 0 or rows[-1] >= nb):
        raise ValueError(f"rows: expected indices in range [0, {nb}), got {rows[0]}..{rows[-1]}")
    return rows


def _checked_mask(mask, nb):
    """``search_into``'s ``mask``, checked: uint8, C-contiguous, writable."""
    if not isinstance(mask, np.ndarray) or mask.dtype not in (np.bool_, np.uint8):
        got = mask.dtype.name if isinstance(mask, np.ndarray) else type(mask).__name__
        raise TypeError(f"mask: expected a bool or uint8 array, got {got}")
    if mask.shape != (nb,):
        raise ValueError(f"mask: expected shape ({nb},) to match xb, got {mask.shape}")
    # bool and uint8 share one compiled kernel: a bool array viewed as uint8 is free.
    return _writable(np.ascontiguousarray(mask).view(np.uint8))


def search_into(xq, xb, norms, metric, D, I, *, rows=None, mask=None, base=0):
    """Push the rows of `xb` into the per-query top-k heaps `D`/`I`, in place.

    Parameters
    ----------
    xq : float32 (nq, d), C-contiguous
        Queries.
    xb : float32 (nb, d), C-contiguous
        Database rows; may be a read-only view (np.memmap mode 'r', np.frombuffer); it is
        neither written nor copied.  nb may be 0.
    norms : float32 (nb,)
        L2 norm of each row of `xb` (see `row_norms`).
    metric : {"cosine", "dot", "l2"}
    D, I : float32 (nq, k), int64 (nq, k)
        Heaps from `new_heaps` or from earlier `search_into` calls (to accumulate segments).
    rows : int64 (m,), optional
        Allowed row indices into `xb`: sorted ascending, unique, in range.
    mask : bool or uint8 (nb,), optional
        A row is allowed only if `mask[row]` is true.  Combines with `rows` (both must pass).
    base : int
        Labels pushed into `I` are ``base + row``.
    """
    code = _metric_code(metric)
    _check_array("xq", xq, np.float32, 2)
    _check_array("xb", xb, np.float32, 2)
    _check_array("norms", norms, np.float32, 1)
    _check_array("D", D, np.float32, 2)
    _check_array("I", I, np.int64, 2)
    nq, d = xq.shape
    nb = xb.shape[0]
    if d < 1:
        raise ValueError(f"xq: expected dimension >= 1, got shape {xq.shape}")
    if xb.shape[1] != d:
        raise ValueError(f"xb: expected shape (nb, {d}) to match xq, got {xb.shape}")
    if norms.shape[0] != nb:
        raise ValueError(f"norms: expected shape ({nb},) to match xb, got {norms.shape}")
    if D.shape[0] != nq or D.shape[1] < 1:
        raise ValueError(f"D: expected shape ({nq}, k) with k >= 1, got {D.shape}")
    if I.shape != D.shape:
        raise ValueError(f"I: expected shape {D.shape} like D, got {I.shape}")
    if not (D.flags.writeable and I.flags.writeable):
        raise ValueError("D, I: expected writable arrays, got a read-only one")
    base = operator.index(base)
    if base < 0:
        raise ValueError(f"base: expected >= 0, got {base}")

    has_rows = rows is not None
    rows = _checked_rows(rows, nb) if has_rows else np.empty(0, dtype=np.int64)
    has_mask = mask is not None
    mask = _checked_mask(mask, nb) if has_mask else np.empty(0, dtype=np.uint8)

    if nq == 0 or nb == 0 or (has_rows and rows.shape[0] == 0):
        return
    xq = _writable(xq)
    k = D.shape[1]
    qa = np.empty(nq, dtype=np.float32)
    _query_terms(xq, code, qa)

    if nq <= SMALL_BATCH_MAX:
        n = rows.shape[0] if has_rows else nb
        nchunks = _num_chunks(n * d * nq, has_rows)
        if nchunks == 1:
            _scan_range(xq, xb, norms, code, qa, rows, has_rows, mask, has_mask, base, 0, n, D, I)
            return
        CD, CI = new_heaps(nchunks * nq, k)
        CD = CD.reshape((nchunks, nq, k))
        CI = CI.reshape((nchunks, nq, k))
        _scan_chunks(xq, xb, norms, code, qa, rows, has_rows, mask, has_mask, base, CD, CI)
        _merge_chunks(CD, CI, D, I)
        return

    # Sparse filters gather the kept rows (sgemm only sees useful rows); dense ones multiply
    # whole tiles in place, no copy, and drop the excluded columns while pushing.
    if has_rows and rows.shape[0] >= _MASK_GATHER_DENSITY * nb:
        keep = np.zeros(nb, dtype=np.uint8)
        keep[rows] = mask[rows] if has_mask else 1
        mask, has_mask, rows, has_rows = keep, True, np.empty(0, dtype=np.int64), False
    if has_mask and not has_rows:
        kept = int(np.count_nonzero(mask))
        if kept == 0:
            return
        if kept < _MASK_GATHER_DENSITY * nb:
            rows, has_rows, has_mask = np.flatnonzero(mask).astype(np.int64), True, False
    n = rows.shape[0] if has_rows else nb
    T = min(_tile_rows(nq), n)
    S = np.empty(nq * T, dtype=np.float32)
    G = np.empty((T if has_rows else 0, d), dtype=np.float32)
    GW = np.empty(T, dtype=np.float32)
    GC = np.empty(T, dtype=np.float32)
    GL = np.empty(T, dtype=np.int64)
    _scan_tiles(
        xq, xb, norms, code, qa, rows, has_rows, mask, has_mask, base, D, I, S, G, GW, GC, GL
    )


def finish(D, I, xq, metric):
    """Sort heaps best-first and turn heap scores into final scores.

    Parameters
    ----------
    D, I : float32 (nq, k), int64 (nq, k)
        Heaps filled by `search_into`; left unchanged.
    xq : float32 (nq, d)
        The queries that were searched (l2 needs |q|^2).
    metric : {"cosine", "dot", "l2"}

    Returns
    -------
    D : float32 (nq, k), descending per row; l2 scores are -|x - q|^2, clamped to <= 0.
    I : int64 (nq, k)
    counts : int64 (nq,)
        Valid entries per row; entries past it have I == -1 and D == -inf.
    """
    code = _metric_code(metric)
    _check_array("D", D, np.float32, 2)
    _check_array("I", I, np.int64, 2)
    _check_array("xq", xq, np.float32, 2)
    if I.shape != D.shape:
        raise ValueError(f"I: expected shape {D.shape} like D, got {I.shape}")
    if xq.shape[0] != D.shape[0]:
        raise ValueError(f"xq: expected {D.shape[0]} rows like D, got shape {xq.shape}")
    nq, k = D.shape
    OD = np.empty((nq, k), dtype=np.float32)
    OI = np.empty((nq, k), dtype=np.int64)
    counts = np.zeros(nq, dtype=np.int64)
    if nq > 0 and k > 0:
        _finish_into(D, I, code, _writable(xq), OD, OI, counts)
    return OD, OI, counts


def search(xq, xb, norms, metric, k, *, rows=None, mask=None):
    """Exact top-k of `xq` against `xb`: `new_heaps` + `search_into` + `finish`.

    Parameters are as in `search_into`; `k` >= 1.

    Returns
    -------
    D : float32 (nq, k), I : int64 (nq, k), counts : int64 (nq,)  (see `finish`)
    """
    _check_array("xq", xq, np.float32, 2)
    D, I = new_heaps(xq.shape[0], k)
    search_into(xq, xb, norms, metric, D, I, rows=rows, mask=mask)
    return finish(D, I, xq, metric)
