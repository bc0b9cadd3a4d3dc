"""The compressed codes' candidates with NumPy alone, no Numba: what the first queries of a
process run on a collection with ``vectors="float16" | "int8" | "binary"`` while the Numba
kernels load (``index/cold.py``). The same candidates as ``compressed.py``'s kernels (apart
from float32 rounding and the order of ties). Imports numpy only: pure functions over arrays.
"""

import numpy as np

#: rows decoded to float32 at a time (bounds the temporaries of an SQ8 or float16 scan)
BLOCK_ROWS = 16_384

# bit i of a byte value, as float32 (256, 8): the look-up tables of the binary rescoring
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.float32)


def _allowed(n, rows, mask):
    """Positions (int64) of the rows to score, or None for all n."""
    if rows is None and mask is None:
        return None
    pos = np.arange(n, dtype=np.int64) if rows is None else rows
    if mask is not None:
        pos = pos[mask.view(np.bool_)[pos]]
    return pos


def _best(s, pos, kc):
    """The ``kc`` best of scores ``s`` (rows ``pos``, or 0..n-1 when None), best first."""
    n = len(s)
    kk = min(kc, n)
    if kk <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-s, kk - 1)[:kk] if kk < n else np.arange(n)
    part = part[np.argsort(-s[part], kind="stable")]
    got = part.astype(np.int64) if pos is None else pos[part]
    return got, s[part].astype(np.float32)


def _metric(dot, norms, metric):
    if metric == "cosine":
        w = np.zeros(len(norms), dtype=np.float32)
        np.divide(np.float32(1.0), norms, out=w, where=norms > 0)
        return dot * w
    if metric == "l2":
        return np.float32(2.0) * dot - norms * norms
    return dot


#: dimensions an SQ8 score sums in int32 at a time (``sq8_query`` bounds the weights so that
#: 255 x SQ8_DIM_BLOCK of them cannot overflow it)
SQ8_DIM_BLOCK = 2048


def sq8_query(q, lo, scale):
    """A float32 query ``q`` (d,) against SQ8 codes (``lo``, ``scale``): ``(qi, fac, bias)``
    with ``q . (lo + scale * code) ~ bias + fac * (qi . code)``. ``qi`` (int16 (d,)) are the
    weights ``q * scale`` rounded on a grid of ``fac``, its largest at most 32767 and so that
    a sum of ``min(d, SQ8_DIM_BLOCK)`` products with codes (at most 255) fits an int32. The
    rounding moves a score by at most ``fac / 2`` a code unit: for d = 384, 1/44,000 of the
    largest weight, 1/170 of the codes' own rounding."""
    qs = q.astype(np.float64) * scale  # float64: no product of float32 values overflows
    bias = np.float32(np.dot(q, lo))
    top = float(np.max(np.abs(qs))) if qs.size else 0.0
    bound = min(32767, (2**31 - 1) // (255 * max(1, min(qs.size, SQ8_DIM_BLOCK))))
    if not top > 0:
        return np.zeros(qs.shape, dtype=np.int16), np.float32(0.0), bias
    fac = top / bound
    qi = np.clip(np.rint(qs / fac), -bound, bound).astype(np.int16)
    return qi, np.float32(fac), bias


def sq8_candidates(q, lo, scale, codes, norms, metric, kc, *, rows=None, mask=None):
    """``compressed.sq8_candidates`` with NumPy: ``(positions int64, scores float32)``.
    The same int16 query weights (``sq8_query``), summed in float32 by BLAS (each product
    exact, the sums rounded as any float32 sum; in float64 the first query of a fresh process
    on 115k x 384 codes took 70-80 ms, against 40 ms)."""
    pos = _allowed(codes.shape[0], rows, mask)
    qi, fac, bias = sq8_query(q, lo, scale)
    w = qi.astype(np.float32)
    src = codes if pos is None else None
    n = codes.shape[0] if pos is None else len(pos)
    s = np.empty(n, dtype=np.float32)
    for a in range(0, n, BLOCK_ROWS):
        block = src[a : a + BLOCK_ROWS] if pos is None else codes[pos[a : a + BLOCK_ROWS]]
        s[a : a + BLOCK_ROWS] = (block.astype(np.float32) @ w) * fac + bias
    return _best(_metric(s, norms if pos is None else norms[pos], metric), pos, kc)


def f16_candidates(q, codes, norms, metric, kc, *, rows=None, mask=None):
    """``compressed.f16_candidates`` with NumPy (``codes`` the uint16 bits of float16)."""
    pos = _allowed(codes.shape[0], rows, mask)
    half = codes.view(np.float16)
    n = codes.shape[0] if pos is None else len(pos)
    s = np.empty(n, dtype=np.float32)
    for a in range(0, n, BLOCK_ROWS):
        block = half[a : a + BLOCK_ROWS] if pos is None else half[pos[a : a + BLOCK_ROWS]]
        s[a : a + BLOCK_ROWS] = block.astype(np.float32) @ q
    return _best(_metric(s, norms if pos is None else norms[pos], metric), pos, kc)


def binary_candidates(q, mean, codes, kc, pool, *, rows=None, mask=None):
    """``compressed.binary_candidates`` with NumPy: the ``kc`` rows to re-rank, int64
    ascending (Hamming pool, then the query against the pool's sign bits)."""
    w, n = codes.shape
    pos = _allowed(n, rows, mask)
    bits = np.zeros(64 * w, dtype=bool)
    bits[: len(q)] = q > mean
    qc = np.packbits(bits, bitorder="little").view(np.uint64)
    x = codes if pos is None else codes[:, pos]
    dist = np.bitwise_count(x ^ qc[:, None]).sum(axis=0, dtype=np.int32)
    m = dist.shape[0]
    pool = min(max(pool, kc), m)
    if pool <= 0:
        return np.zeros(0, dtype=np.int64)
    if pool < m:  # every row nearer than the cut-off, then the first rows at it
        cut = np.partition(dist, pool - 1)[pool - 1]
        below = np.flatnonzero(dist < cut)
        near = np.concatenate([below, np.flatnonzero(dist == cut)[: pool - len(below)]])
    else:
        near = np.arange(m)
    near = near[np.argsort(dist[near], kind="stable")]  # nearest first, ties in row order
    at = near if pos is None else pos[near]
    if len(at) <= kc:
        return np.sort(at.astype(np.int64))
    qq = np.zeros(64 * w, dtype=np.float32)
    qq[: len(q)] = q
    T = qq.reshape(8 * w, 8) @ _BYTE_BITS.T  # (8w, 256): each byte's partial sums
    byte_codes = np.ascontiguousarray(codes[:, at].T).view(np.uint8)  # (pool, 8w)
    s = T[np.arange(8 * w), byte_codes].sum(axis=1)
    return np.sort(at[np.argsort(-s, kind="stable")[:kc]].astype(np.int64))
