"""Exact similarity joins: every pair of rows scoring at or above a threshold, block by block.

A pair's score follows the search kernels' convention (higher is better): the cosine, the
inner product, or minus the squared L2 distance. Blocks of rows are multiplied by sgemm and
the product is scanned for hits, so memory holds two blocks and their product, never the
n x n matrix; a self-join multiplies only the blocks on and above the diagonal.
numpy + numba only: pure functions over arrays, no I/O.
"""

# ruff: noqa: E741

from __future__ import annotations

import numpy as np
from numba import njit

METRICS = ("cosine", "dot", "l2")
_COSINE, _DOT, _L2 = 0, 1, 2
#: Rows per block: the 2,048 x 2,048 float32 product (16 MiB) keeps sgemm near its peak.
BLOCK_ROWS = 2048
_RUN = 64  # columns tested at once before the scalar loop looks at them


@njit(cache=True, nogil=True)
def _run_above(S, i, j0, j1, a, W, cb, threshold):
    """Whether any column j0..j1 of row i may reach the threshold: a vectorisable OR over
    ``a * W[j] * S[i, j] - cb[j]`` (no early exit, so LLVM keeps it a SIMD reduction)."""
    hit = False
    for j in range(j0, j1):
        hit |= a * W[j] * S[i, j] - cb[j] >= threshold
    return hit


@njit(cache=True, nogil=True)
def _scan_block(S, metric, wa, wb, ca, cb, threshold, same, base_a, base_b, PA, PB, PS, n):
    """Append to PA/PB/PS (from index n) every pair (base_a + i, base_b + j) of the block
    whose score reaches ``threshold``; with ``same`` (a block against itself) only j > i.

    S (ma, mb) float32 raw dot products. wa, wb: 1/|x| (cosine; 0 for a zero row), else 1.
    ca, cb: |x|^2 (l2), else 0. Writes while the outputs have room and returns the number
    of pairs found in all; a caller whose outputs were too small grows them and scans again.
    """
    ma, mb = S.shape
    cap = PA.shape[0]
    # For l2 the test 2s - ca - cb >= t is run as (2s) - cb >= t + ca, one FMA per column.
    Wb = np.empty(mb, dtype=np.float32)
    Cb = np.empty(mb, dtype=np.float32)
    for j in range(mb):
        Wb[j] = wb[j] * (2.0 if metric == _L2 else 1.0)
        Cb[j] = cb[j] if metric == _L2 else 0.0
    for i in range(ma):
        a = wa[i] if metric == _COSINE else np.float32(1.0)
        ti = threshold + (ca[i] if metric == _L2 else 0.0)
        j_start = i + 1 if same else 0
        for j0 in range(j_start, mb, _RUN):
            j1 = min(mb, j0 + _RUN)
            if not _run_above(S, i, j0, j1, a, Wb, Cb, ti):
                continue
            for j in range(j0, j1):
                # the very expression _run_above tested, so both agree to the last bit
                v = a * Wb[j] * S[i, j] - Cb[j]
                if v >= ti:
                    if n < cap:
                        PA[n] = base_a + i
                        PB[n] = base_b + j
                        if metric == _L2:
                            PS[n] = min(v - ca[i], 0.0)
                        elif metric == _COSINE:
                            # float32 rounding can put a copy's cosine a hair above 1
                            PS[n] = max(min(v, 1.0), -1.0)
                        else:
                            PS[n] = v
                    n += 1
    return n


def _metric_code(metric):
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    return METRICS.index(metric)


def row_terms(norms, metric):
    """``(w, c)`` float32 per row for ``join_blocks``: 1/|x| (cosine) or 1, and |x|^2 (l2)
    or 0."""
    norms = np.asarray(norms, dtype=np.float32)
    w = np.ones(len(norms), dtype=np.float32)
    c = np.zeros(len(norms), dtype=np.float32)
    if metric == "cosine":
        w[:] = 0.0
        np.divide(1.0, norms, out=w, where=norms > 0)
    elif metric == "l2":
        c = (norms * norms).astype(np.float32)
    return w, c


def new_pairs(capacity=1 << 12):
    """Empty pair arrays ``(a int64, b int64, scores float32)`` of ``capacity``, for
    ``join_blocks``."""
    return (
        np.empty(capacity, dtype=np.int64),
        np.empty(capacity, dtype=np.int64),
        np.empty(capacity, dtype=np.float32),
    )


def _grown(pairs, n, need):
    cap = max(need, 2 * len(pairs[0]))
    out = []
    for old in pairs:
        new = np.empty(cap, dtype=old.dtype)
        new[:n] = old[:n]
        out.append(new)
    return tuple(out)


def join_blocks(
    xa, ta, xb, tb, metric, threshold, pairs, n, *, same=False, base_a=0, base_b=0, S=None
):
    """Append every pair of a row of ``xa`` and a row of ``xb`` scoring at least
    ``threshold`` to ``pairs`` from index ``n``; returns ``(pairs, n)``, the arrays grown
    (new ones) if they were too small.

    Parameters
    ----------
    xa, xb : float32 (ma, d), (mb, d), C-contiguous (read-only views are fine)
    ta, tb : (w, c) row terms of each block (``row_terms``)
    metric : {"cosine", "dot", "l2"}
    threshold : float
        Scores are higher-is-better: cosine, inner product, or -|a - b|^2 (so at most 0).
    pairs : (a int64, b int64, scores float32) arrays of one length (``new_pairs``)
    n : int
        Pairs already in ``pairs``.
    same : bool
        ``xa`` and ``xb`` are the same block: only pairs (i, j) with j > i.
    base_a, base_b : int
        Added to the row numbers stored in ``pairs``.
    S : float32 scratch of at least ma * mb elements, optional
    """
    code = _metric_code(metric)
    if metric == "l2" and threshold > 0:
        raise ValueError(f"threshold: l2 scores are -|a - b|^2 <= 0; got {threshold}")
    ma, d = xa.shape
    mb = xb.shape[0]
    if xb.shape[1] != d:
        raise ValueError(f"xb: expected (mb, {d}) rows to match xa, got {xb.shape}")
    if ma == 0 or mb == 0:
        return pairs, n
    if S is None or S.size < ma * mb:
        S = np.empty(ma * mb, dtype=np.float32)
    Sb = S[: ma * mb].reshape(ma, mb)
    np.dot(xa, xb.T, out=Sb)
    args = (Sb, code, ta[0], tb[0], ta[1], tb[1], np.float32(threshold), same, base_a, base_b)
    total = _scan_block(*args, *pairs, n)
    if total > len(pairs[0]):
        pairs = _grown(pairs, n, total)
        total = _scan_block(*args, *pairs, n)
    return pairs, total
