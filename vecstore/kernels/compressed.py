"""Compressed vectors: scalar quantisation to 8 bits (SQ8), sign bits (binary), and the scans
that pick candidates from such codes for an exact float32 re-ranking.

SQ8 keeps, per dimension j, an offset ``lo[j]`` and a step ``scale[j]`` (trained on the rows
of one segment: their minimum and range / 255), and a row as uint8 codes with
``x[j] ~ lo[j] + scale[j] * code[j]``. A query's dot product with a row is then
``q.lo + sum_j (q[j] scale[j]) code[j]``: the scan reads 4x fewer bytes than a float32 scan.
The weights ``q[j] scale[j]`` are rounded to int16 (``blas_codes.sq8_query``), so the sum is
an integer dot product of the codes, accumulated in int32 (vpmaddwd: 32 codes an
instruction, against 16 for float32 widening and fma). float16 codes are widened to float32
(LLVM's fpext from half). Binary codes are the signs of ``x - mean`` packed into uint64 words, kept
word-major for the scan; a query is compared by Hamming distance (popcount of XOR).
numpy + numba (+ llvmlite) only; of the other kernels modules imports only ``blas_codes``'
query rounding (plain NumPy, not compiled); compiled lazily on first use, cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .blas_codes import SQ8_DIM_BLOCK, sq8_query

# the kernels modules whose source these kernels depend on (SQ8_DIM_BLOCK is frozen into
# _sq8_range), by hash: see tests/test_layout.py
JIT_SOURCES = {"blas_codes": "195b6a3458e4"}

METRICS = ("cosine", "dot", "l2")
_COSINE, _DOT, _L2 = 0, 1, 2
#: rows per parallel chunk of a scan; each chunk keeps its own top-kc heap
CHUNK_ROWS = 16_384
#: below this many bytes of codes an SQ8 or float16 scan runs on one thread; larger scans are
#: split over the threads, as the float32 exact scan is (from 1 MB of rows). Measured on 115k
#: x 384 int8 codes (44 MB, mapped from their file) on this 2-core machine, quiet: 2.7 ms on
#: one thread, 1.7 ms on two. Under load a parallel region waits for its slowest thread to be
#: scheduled (6.9 ms against 2.1 ms on one thread at a load of 12), as every parallel scan does
_PARALLEL_MIN_BYTES = 8 << 20
#: ... and a binary scan, whose one-thread path (``_binary_pick``: a running cut-off, no heap,
#: the rescoring in the same call) outruns the chunked one on 115k x 384 codes (5.6 MB)
_PARALLEL_MIN_BYTES_BINARY = 64 << 20
#: rows encoded at a time (bounds the float temporaries of an encode)
ENCODE_BLOCK = 16_384
#: rows whose Hamming distances ``_ham_select`` sums at a time (in L1). Measured on 115k x 384
#: codes, one query, codes not in cache: 215 us at 128 rows, 285 at 512, 350 at 8192; in
#: cache all take ~128 us
HAM_BLOCK = 128


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------


@intrinsic
def _popcount(typingctx, x_t):
    """Bits set in a uint64 (LLVM's ctpop: one popcnt instruction on x86-64)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return sig, codegen


@intrinsic
def _half(typingctx, h_t):
    """The float32 value of float16 bits (a uint16): LLVM's fpext from half, which becomes
    vcvtph2ps on x86-64 CPUs with F16C (numba has no float16 type)."""
    sig = types.float32(types.uint16)

    def codegen(context, builder, signature, args):
        half = builder.bitcast(args[0], ir.HalfType())
        return builder.fpext(half, ir.FloatType())

    return sig, codegen


@njit(cache=True, nogil=True)
def _replace_top(hs, hl, s, label):
    """Replace the root of the min-heap (hs, hl) by (s, label) and sift it down."""
    n = hs.shape[0]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        right = left + 1
        c = left
        if right < n and hs[right] < hs[left]:
            c = right
        if hs[c] >= s:
            break
        hs[i] = hs[c]
        hl[i] = hl[c]
        i = c
    hs[i] = s
    hl[i] = label


@njit(cache=True, nogil=True)
def _sq8_range(qi, fac, bias, codes, norms, metric, rows, has_rows, mask, has_mask, lo, hi, hs, hl):
    """Rows lo:hi (of ``rows`` if given) into the heap (hs, hl) by their SQ8 score: the int16
    weights ``qi`` (``blas_codes.sq8_query``) times the codes, summed in int32 over blocks of
    ``SQ8_DIM_BLOCK`` dimensions (which cannot overflow for weights within
    ``sq8_query``'s bound), times ``fac``, plus ``bias``."""
    d = codes.shape[1]
    for t in range(lo, hi):
        i = rows[t] if has_rows else t
        if has_mask and not mask[i]:
            continue
        tot = np.float32(0.0)
        for a in range(0, d, SQ8_DIM_BLOCK):
            b = min(d, a + SQ8_DIM_BLOCK)
            ci = codes[i, a:b]  # slices and a loop from 0: indexing codes[i, j] over a..b
            wa = qi[a:b]  # is not vectorised (20x slower)
            acc = np.int32(0)
            # each step cast back to int32: numba would widen the product and sum to int64,
            # and LLVM then matches nothing better than 64-bit multiplies
            for j in range(b - a):
                acc = np.int32(acc + np.int32(wa[j]) * np.int32(ci[j]))
            tot += np.float32(acc)
        dot = bias + tot * fac
        if metric == _COSINE:
            s = dot / norms[i] if norms[i] > 0 else np.float32(0.0)
        elif metric == _L2:
            s = np.float32(2.0) * dot - norms[i] * norms[i]
        else:
            s = dot
        if s > hs[0]:
            _replace_top(hs, hl, s, i)


@njit(cache=True, nogil=True, parallel=True)
def _sq8_chunks(qi, fac, bias, codes, norms, metric, rows, has_rows, mask, has_mask, CS, CL):
    n = rows.shape[0] if has_rows else codes.shape[0]
    nchunks = CS.shape[0]
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * step
        hi = min(n, lo + step)
        _sq8_range(
            qi,
            fac,
            bias,
            codes,
            norms,
            metric,
            rows,
            has_rows,
            mask,
            has_mask,
            lo,
            hi,
            CS[c],
            CL[c],
        )


@njit(cache=True, nogil=True, fastmath=True)  # fastmath: a reordered float sum is fine here
def _f16_range(q, codes, norms, metric, rows, has_rows, mask, has_mask, lo, hi, hs, hl):
    d = codes.shape[1]
    for t in range(lo, hi):
        i = rows[t] if has_rows else t
        if has_mask and not mask[i]:
            continue
        dot = np.float32(0.0)
        for j in range(d):
            dot += q[j] * _half(codes[i, j])
        if metric == _COSINE:
            s = dot / norms[i] if norms[i] > 0 else np.float32(0.0)
        elif metric == _L2:
            s = np.float32(2.0) * dot - norms[i] * norms[i]
        else:
            s = dot
        if s > hs[0]:
            _replace_top(hs, hl, s, i)


@njit(cache=True, nogil=True, parallel=True)
def _f16_chunks(q, codes, norms, metric, rows, has_rows, mask, has_mask, CS, CL):
    n = rows.shape[0] if has_rows else codes.shape[0]
    nchunks = CS.shape[0]
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * step
        hi = min(n, lo + step)
        _f16_range(q, codes, norms, metric, rows, has_rows, mask, has_mask, lo, hi, CS[c], CL[c])


@njit(cache=True, nogil=True)
def _ham_range(qc, codes, rows, has_rows, mask, has_mask, lo, hi, hs, hl):
    """Rows lo:hi (of ``rows`` if given) into the heap by Hamming distance. ``codes`` is
    word-major, (w, n): the loop over rows then runs over contiguous words, which LLVM
    vectorises (vpopcntq where the CPU has it); row-major codes leave a 6-word inner loop."""
    w = codes.shape[0]
    dist = np.zeros(hi - lo, dtype=np.int32)
    for j in range(w):
        qj = qc[j]
        if has_rows:
            for t in range(lo, hi):
                dist[t - lo] += np.int32(_popcount(qj ^ codes[j, rows[t]]))
        else:
            for t in range(lo, hi):
                dist[t - lo] += np.int32(_popcount(qj ^ codes[j, t]))
    for t in range(lo, hi):
        i = rows[t] if has_rows else t
        if has_mask and not mask[i]:
            continue
        s = -np.float32(dist[t - lo])
        if s > hs[0]:
            _replace_top(hs, hl, s, i)


@njit(cache=True, nogil=True)
def _ham_keep(bp, bd, m, kc, far):
    """Keep the ``kc`` nearest of the ``m`` buffered rows (positions bp, distances bd, in row
    order), ties going to the earlier row; returns ``(kept, cut)``: the buffer then holds
    every row nearer than ``cut`` and the first rows at ``cut``, still in row order, so a
    later row enters only when it is nearer than ``cut``."""
    hist = np.zeros(far + 1, dtype=np.int64)
    for i in range(m):
        hist[bd[i]] += 1
    cut = 0
    below = 0  # rows nearer than the cut-off
    while cut < far and below + hist[cut] < kc:
        below += hist[cut]
        cut += 1
    room = kc - below  # rows at the cut-off that stay
    out = 0
    for i in range(m):
        v = bd[i]
        if v < cut or (v == cut and room > 0):
            if v == cut:
                room -= 1
            bp[out] = bp[i]
            bd[out] = v
            out += 1
    return out, cut


@njit(cache=True, nogil=True)
def _ham_select(qc, codes, rows, has_rows, mask, has_mask, kc, out_pos, out_d):
    """The ``kc`` nearest rows by Hamming distance (ties to the first in row order), without
    a heap. Rows are taken a block of HAM_BLOCK at a time: their distances are summed word
    by word over contiguous words (a loop from 0 over a slice, which LLVM vectorises with
    vpopcntq where the CPU has it), then the rows nearer than the running cut-off are
    appended to a buffer; when the buffer holds 2 kc rows, a count of its distances (small
    integers) cuts it back to the kc nearest and lowers the cut-off. After the first blocks
    few rows pass, so the scan costs little more than the distances. Writes positions and
    distances, nearest first, into out_pos/out_d; returns how many.

    (A first version summed the distances of all rows, word by word, then counted them per
    distance: the count's increments of the same few bins wait on each other, and it cost
    more than the scan.)"""
    w = codes.shape[0]
    n = rows.shape[0] if has_rows else codes.shape[1]
    far = 64 * w + 1  # a distance no row reaches
    B = HAM_BLOCK
    bp = np.empty(2 * kc + B, dtype=np.int64)
    bd = np.empty(2 * kc + B, dtype=np.int32)
    dist = np.empty(B, dtype=np.int32)
    m = 0
    cut = far  # rows nearer than this enter the buffer
    for lo in range(0, n, B):
        hi = min(n, lo + B)
        nb = hi - lo
        dd = dist[:nb]
        if has_rows:
            rr = rows[lo:hi]
            for t in range(nb):
                dd[t] = np.int32(_popcount(qc[0] ^ codes[0, rr[t]]))
            for j in range(1, w):
                qj = qc[j]
                for t in range(nb):
                    dd[t] += np.int32(_popcount(qj ^ codes[j, rr[t]]))
        else:
            c0 = codes[0, lo:hi]
            q0 = qc[0]
            for t in range(nb):
                dd[t] = np.int32(_popcount(q0 ^ c0[t]))
            for j in range(1, w):
                qj = qc[j]
                cj = codes[j, lo:hi]
                for t in range(nb):
                    dd[t] += np.int32(_popcount(qj ^ cj[t]))
        for t in range(nb):
            if dd[t] < cut:
                i = rows[lo + t] if has_rows else lo + t
                if has_mask and not mask[i]:
                    continue
                bp[m] = i
                bd[m] = dd[t]
                m += 1
        if m >= 2 * kc:
            m, cut = _ham_keep(bp, bd, m, kc, far)
    if m > kc:
        m, cut = _ham_keep(bp, bd, m, kc, far)
    # nearest first: a stable counting sort of the buffer by distance
    start = np.zeros(far + 1, dtype=np.int64)
    for i in range(m):
        start[bd[i] + 1] += 1
    for v in range(1, far + 1):
        start[v] += start[v - 1]
    for i in range(m):
        v = bd[i]
        o = start[v]
        out_pos[o] = bp[i]
        out_d[o] = v
        start[v] = o + 1
    return m


@njit(cache=True, nogil=True, parallel=True)
def _ham_chunks(qc, codes, rows, has_rows, mask, has_mask, CS, CL):
    n = rows.shape[0] if has_rows else codes.shape[1]
    nchunks = CS.shape[0]
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * step
        hi = min(n, lo + step)
        _ham_range(qc, codes, rows, has_rows, mask, has_mask, lo, hi, CS[c], CL[c])


@njit(cache=True, nogil=True)
def _sq8_encode_into(x, lo, inv, out):
    n, d = x.shape
    for i in range(n):
        for j in range(d):
            v = (x[i, j] - lo[j]) * inv[j] + np.float32(0.5)
            if v < 0.0:
                v = 0.0
            elif v > 255.0:
                v = 255.0
            out[i, j] = np.uint8(v)


@njit(cache=True, nogil=True)
def _pack_signs_into(x, mean, out):
    n, d = x.shape
    w = out.shape[1]
    for i in range(n):
        for b in range(w):
            word = np.uint64(0)
            for t in range(64):
                j = b * 64 + t
                if j < d and x[i, j] > mean[j]:
                    word |= np.uint64(1) << np.uint64(t)
            out[i, b] = word


# ---------------------------------------------------------------------------------------------
# public wrappers (validate, allocate, call a kernel)
# ---------------------------------------------------------------------------------------------


def _check(name, a, dtype, ndim):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name}: expected a {ndim}-D {np.dtype(dtype).name} array, got {got}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array")


def sq8_train(x):
    """Per-dimension ``(lo, scale)`` float32 (d,) of SQ8 codes for the rows ``x``
    (float32 (n, d)): their minimum, and their range / 255 (1 where the range is 0)."""
    _check("x", x, np.float32, 2)
    if x.shape[0] == 0:
        d = x.shape[1]
        return np.zeros(d, dtype=np.float32), np.ones(d, dtype=np.float32)
    lo = np.full(x.shape[1], np.inf, dtype=np.float32)
    hi = np.full(x.shape[1], -np.inf, dtype=np.float32)
    for a in range(0, x.shape[0], ENCODE_BLOCK):
        block = x[a : a + ENCODE_BLOCK]
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
    scale = (hi - lo) / np.float32(255.0)
    scale[~(scale > 0)] = 1.0
    return lo, scale.astype(np.float32)


def sq8_encode(x, lo, scale):
    """uint8 (n, d) SQ8 codes of the float32 rows ``x`` (values outside the trained range are
    clipped to it)."""
    _check("x", x, np.float32, 2)
    out = np.empty(x.shape, dtype=np.uint8)
    inv = (np.float32(1.0) / scale).astype(np.float32)
    for a in range(0, x.shape[0], ENCODE_BLOCK):
        _sq8_encode_into(
            np.ascontiguousarray(x[a : a + ENCODE_BLOCK]), lo, inv, out[a : a + ENCODE_BLOCK]
        )
    return out


def sq8_decode(codes, lo, scale):
    """The float32 rows SQ8 ``codes`` stand for."""
    return lo + codes.astype(np.float32) * scale


def binary_words(d):
    """uint64 words a binary code of ``d`` dimensions takes."""
    return (d + 63) // 64


def binary_encode(x, mean):
    """uint64 (n, ceil(d / 64)) codes of the float32 rows ``x``: bit j of a row is set when
    ``x[j] > mean[j]``."""
    _check("x", x, np.float32, 2)
    out = np.zeros((x.shape[0], binary_words(x.shape[1])), dtype=np.uint64)
    mean = np.ascontiguousarray(mean, dtype=np.float32)
    for a in range(0, x.shape[0], ENCODE_BLOCK):
        _pack_signs_into(
            np.ascontiguousarray(x[a : a + ENCODE_BLOCK]), mean, out[a : a + ENCODE_BLOCK]
        )
    return out


@njit(cache=True, nogil=True, fastmath=True)  # fastmath: a reordered float sum is fine here
def _rescore(T, codes, pos, out):
    """out[c] = sum over the bytes p of row pos[c]'s codes of T[p, byte]."""
    w = codes.shape[0]
    for c in range(pos.shape[0]):
        i = pos[c]
        acc = np.float32(0.0)
        for j in range(w):
            word = codes[j, i]
            for b in range(8):
                acc += T[8 * j + b, (word >> np.uint64(8 * b)) & np.uint64(255)]
        out[c] = acc


@njit(cache=True, nogil=True)
def _byte_table(q, T):
    """T[p, v] = the sum of q[8p + b] over the bits b set in the byte value v (0 past the end
    of q): float32 (8w, 256), each entry one add to the entry without its top bit."""
    d = q.shape[0]
    for p in range(T.shape[0]):
        T[p, 0] = np.float32(0.0)
        for b in range(8):  # the values with top bit b: those below 2^b, plus q[8p + b]
            j = 8 * p + b
            qj = q[j] if j < d else np.float32(0.0)
            lo = 1 << b
            for v in range(lo):
                T[p, lo + v] = T[p, v] + qj


@njit(cache=True, nogil=True)
def _binary_pick(q, mean, codes, rows, has_rows, mask, has_mask, pool, out):
    """The rows of binary ``codes`` (word-major (w, n)) to re-rank for the float32 query q:
    its sign bits against ``mean``, the ``pool`` nearest rows by Hamming distance
    (``_ham_select``), and of those the len(out) best by q against their sign bits
    (``_rescore``'s scores; ties to the nearer in Hamming distance). Writes their positions,
    ascending, into out; returns how many."""
    w = codes.shape[0]
    d = q.shape[0]
    qc = np.zeros(w, dtype=np.uint64)
    for j in range(d):
        if q[j] > mean[j]:
            qc[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    pp = np.empty(pool, dtype=np.int64)
    pd = np.empty(pool, dtype=np.int32)
    m = _ham_select(qc, codes, rows, has_rows, mask, has_mask, pool, pp, pd)
    kc = out.shape[0]
    if m <= kc:
        out[:m] = np.sort(pp[:m])
        return m
    T = np.empty((8 * w, 256), dtype=np.float32)
    _byte_table(q, T)
    s = np.empty(m, dtype=np.float32)
    _rescore(T, codes, pp[:m], s)
    hs = np.full(kc, -np.inf, dtype=np.float32)
    hl = np.full(kc, -1, dtype=np.int64)
    for c in range(m):  # the pool comes nearest first: on equal scores the nearer stays
        if s[c] > hs[0]:
            _replace_top(hs, hl, s[c], pp[c])
    got = 0
    for c in range(kc):
        if hl[c] >= 0:
            out[got] = hl[c]
            got += 1
    out[:got] = np.sort(out[:got])
    return got


# bit i of a byte value, as float32 (256, 8): the look-up tables of ``binary_rescore``
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.float32)


def binary_rescore(q, codes, pos):
    """Asymmetric scores of rows ``pos`` (int64) of word-major binary ``codes`` (uint64 (w, n))
    for the float32 query ``q`` (d,): the sum of ``q[j]`` over the bits set in each row, so
    that ``2 s - sum(q) = q . (2b - 1)``, the inner product of the query with the row's sign
    vector (higher is closer; a finer rank than the Hamming distance, which sees the query's
    signs only). Per byte of the codes, a table of the 256 partial sums (as PQ look-up
    tables), so a row costs one look-up per 8 dimensions: float32 (len(pos),)."""
    _check("codes", codes, np.uint64, 2)
    w = codes.shape[0]
    qq = np.zeros(64 * w, dtype=np.float32)
    qq[: min(q.shape[0], 64 * w)] = q[: 64 * w]
    T = np.ascontiguousarray(qq.reshape(8 * w, 8) @ _BYTE_BITS.T)  # (8w, 256)
    out = np.empty(pos.shape[0], dtype=np.float32)
    _rescore(T, codes, np.ascontiguousarray(pos, dtype=np.int64), out)
    return out


def _chunks(n, row_bytes, least=None):
    """Chunks for a scan of ``n`` rows of ``row_bytes``: 1 (one thread) below ``least`` bytes
    (default ``_PARALLEL_MIN_BYTES``)."""
    if n * row_bytes < (_PARALLEL_MIN_BYTES if least is None else least):
        return 1
    return max(1, min(numba.get_num_threads() * 4, (n + CHUNK_ROWS - 1) // CHUNK_ROWS))


def _selection(rows, mask, n):
    has_rows = rows is not None
    if has_rows:
        _check("rows", rows, np.int64, 1)
    else:
        rows = np.empty(0, dtype=np.int64)
    has_mask = mask is not None
    if has_mask:
        mask = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
        _check("mask", mask, np.uint8, 1)
        if mask.shape[0] != n:
            raise ValueError(f"mask: expected ({n},), got {mask.shape}")
    else:
        mask = np.empty(0, dtype=np.uint8)
    return rows, has_rows, mask, has_mask


def _best(CS, CL):
    """Row positions of the chunk heaps' entries, best first, empty slots dropped."""
    s, lab = CS.reshape(-1), CL.reshape(-1)
    keep = lab >= 0
    s, lab = s[keep], lab[keep]
    order = np.argsort(-s, kind="stable")
    return lab[order], s[order]


def sq8_candidates(q, lo, scale, codes, norms, metric, kc, *, rows=None, mask=None):
    """The ``kc`` rows of SQ8 ``codes`` that score best for the query ``q`` (float32 (d,))
    under ``metric``, by their decoded approximation.

    ``norms`` are the rows' exact L2 norms (float32 (n,)); ``rows`` (sorted int64 positions)
    and ``mask`` (bool or uint8 (n,)) restrict the rows as in ``exact.search_into``.
    Returns ``(positions int64, scores float32)``, best first, at most ``kc`` of them.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    _check("codes", codes, np.uint8, 2)
    n, d = codes.shape
    _check("q", q, np.float32, 1)
    if q.shape[0] != d or norms.shape != (n,):
        raise ValueError(f"q, norms: expected ({d},), ({n},); got {q.shape}, {norms.shape}")
    rows, has_rows, mask, has_mask = _selection(rows, mask, n)
    qi, fac, bias = sq8_query(q, lo, scale)
    m = rows.shape[0] if has_rows else n
    nchunks = _chunks(m, d)
    CS = np.full((nchunks, max(kc, 1)), -np.inf, dtype=np.float32)
    CL = np.full((nchunks, max(kc, 1)), -1, dtype=np.int64)
    if m and kc > 0:
        code = METRICS.index(metric)
        args = (qi, fac, bias, codes, norms, code, rows, has_rows, mask, has_mask)
        if nchunks == 1:
            _sq8_range(*args, 0, m, CS[0], CL[0])
        else:
            _sq8_chunks(*args, CS, CL)
    pos, s = _best(CS, CL)
    return pos[:kc], s[:kc]


def f16_candidates(q, codes, norms, metric, kc, *, rows=None, mask=None):
    """As ``sq8_candidates``, for float16 ``codes`` given as their uint16 bits (n, d)."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    _check("codes", codes, np.uint16, 2)
    n, d = codes.shape
    _check("q", q, np.float32, 1)
    if q.shape[0] != d or norms.shape != (n,):
        raise ValueError(f"q, norms: expected ({d},), ({n},); got {q.shape}, {norms.shape}")
    rows, has_rows, mask, has_mask = _selection(rows, mask, n)
    m = rows.shape[0] if has_rows else n
    nchunks = _chunks(m, 2 * d)
    CS = np.full((nchunks, max(kc, 1)), -np.inf, dtype=np.float32)
    CL = np.full((nchunks, max(kc, 1)), -1, dtype=np.int64)
    if m and kc > 0:
        code = METRICS.index(metric)
        args = (q, codes, norms, code, rows, has_rows, mask, has_mask)
        if nchunks == 1:
            _f16_range(*args, 0, m, CS[0], CL[0])
        else:
            _f16_chunks(*args, CS, CL)
    pos, s = _best(CS, CL)
    return pos[:kc], s[:kc]


def hamming_candidates(qc, codes, kc, *, rows=None, mask=None):
    """The ``kc`` rows of binary ``codes`` nearest the binary query ``qc`` (uint64 (w,)) in
    Hamming distance. ``codes`` are word-major: uint64 (w, n), row i's words in column i
    (``binary_encode(x, mean).T``). ``rows``/``mask`` as in ``sq8_candidates``.
    Returns ``(positions int64, minus the distances float32)``, nearest first."""
    _check("codes", codes, np.uint64, 2)
    _check("qc", qc, np.uint64, 1)
    w, n = codes.shape
    if qc.shape[0] != w:
        raise ValueError(f"qc: expected ({w},), got {qc.shape}")
    rows, has_rows, mask, has_mask = _selection(rows, mask, n)
    m = rows.shape[0] if has_rows else n
    nchunks = _chunks(m, 8 * w, _PARALLEL_MIN_BYTES_BINARY)
    if nchunks == 1:  # one thread: a running cut-off and a count of distances, no heap
        pos = np.empty(max(kc, 0), dtype=np.int64)
        dist = np.empty(max(kc, 0), dtype=np.int32)
        got = 0
        if m and kc > 0:
            got = _ham_select(qc, codes, rows, has_rows, mask, has_mask, kc, pos, dist)
        return pos[:got], -dist[:got].astype(np.float32)
    CS = np.full((nchunks, max(kc, 1)), -np.inf, dtype=np.float32)
    CL = np.full((nchunks, max(kc, 1)), -1, dtype=np.int64)
    if m and kc > 0:
        _ham_chunks(qc, codes, rows, has_rows, mask, has_mask, CS, CL)
    pos, s = _best(CS, CL)
    return pos[:kc], s[:kc]


def binary_candidates(q, mean, codes, kc, pool, *, rows=None, mask=None):
    """The ``kc`` rows of binary ``codes`` (word-major uint64 (w, n), as ``hamming_candidates``)
    to re-rank exactly for the float32 query ``q`` (d,), in one compiled call: the query's
    sign bits against ``mean`` (float32 (d,), as ``binary_encode``), its ``pool`` nearest rows
    by Hamming distance, and of those the ``kc`` that score best by ``binary_rescore``.
    ``rows``/``mask`` as in ``sq8_candidates``. Returns their positions, int64 ascending
    (fewer than ``kc`` when fewer rows are allowed)."""
    _check("codes", codes, np.uint64, 2)
    _check("q", q, np.float32, 1)
    _check("mean", mean, np.float32, 1)
    w, n = codes.shape
    if q.shape[0] != mean.shape[0] or binary_words(q.shape[0]) != w:
        raise ValueError(
            f"q, mean: expected ({64 * w - 63}..{64 * w},) each; got {q.shape}, {mean.shape}"
        )
    rows, has_rows, mask, has_mask = _selection(rows, mask, n)
    m = rows.shape[0] if has_rows else n
    out = np.empty(max(kc, 0), dtype=np.int64)
    if not m or kc <= 0:
        return out[:0]
    if _chunks(m, 8 * w, _PARALLEL_MIN_BYTES_BINARY) > 1:
        # codes too large for one thread: the parallel Hamming scan
        qc = binary_encode(q[None, :], mean)[0]
        pos, _ = hamming_candidates(qc, codes, max(pool, kc), rows=rows if has_rows else None,
                                    mask=mask if has_mask else None)  # fmt: skip
        if len(pos) > kc:
            s = binary_rescore(q, codes, pos)
            pos = pos[np.argsort(-s, kind="stable")[:kc]]
        return np.sort(pos)
    got = _binary_pick(q, mean, codes, rows, has_rows, mask, has_mask, max(pool, kc), out)
    return out[:got]
