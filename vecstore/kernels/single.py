"""Single-query kernels for the lean query path: one compiled call takes one query vector to
its final best-first scores and catalog row ids over one block of rows, exactly or through
the block's HNSW graph, and checks the query's components on the way.

The exact scan is exact.py's serial scan for one query, the same formula in the same order
(so a query gives the same rows and scores here as through ``exact.search``), kept here
rather than shared so that exact.py's kernels stay private to it; the graph search is
graph.py's. numpy + numba only: pure functions over arrays, no I/O, no classes.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import numpy as np
from numba import njit

from .graph import next_stamp, search_one
from .heap import replace_top, sort

JIT_SOURCES = {"graph": "38ed590c6b04", "heap": "e0cd3a2ed0e7"}

METRICS = ("cosine", "dot", "l2")
_COSINE = 0
_L2 = 2

#: exact.py scans fewer vector elements than this on the calling thread (its
#: ``_PARALLEL_MIN_WORK``); larger blocks it splits over threads, which this path does not.
SERIAL_WORK = 1 << 18

#: Status left in ``R[0]`` (with no scores returned) when a query is not answered here: its
#: vector is out of range (NaN, inf, too large or too small a component), or the graph search
#: found fewer rows than asked for (tombstones: the caller redoes it exactly).
BAD_QUERY = -2
TOO_FEW = -3


def serial(n, d):
    """Whether exact.py scans ``n`` rows of ``d`` dims for one query on the calling thread,
    as ``exact_one`` does."""
    return n * d < SERIAL_WORK


# fastmath: distance inner loop only (exact.py's ``_dot``, the same code for the same sums).
@njit(cache=True, nogil=True, fastmath=True)
def _dot(A, i, B, j):
    s = np.float32(0.0)
    for t in range(A.shape[1]):
        s += A[i, t] * B[j, t]
    return s


@njit(cache=True, nogil=True)
def fits(q, lo, hi):
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
def finish(D, I, metric, xq, rids, R):
    """exact.finish of the heap D/I (k,), labels turned into rids: R[:c] = rids, and the
    scores (c,) returned best first (l2: -|x - q|^2 clamped to <= 0; cosine clamped to
    [-1, 1])."""
    sort(D, I)
    qq = _dot(xq, 0, xq, 0) if metric == _L2 else np.float32(0.0)
    c = 0
    for j in range(D.shape[0]):
        if I[j] >= 0:
            if metric == _L2:
                D[j] = min(D[j] - qq, np.float32(0.0))
            elif metric == _COSINE:
                # float32 rounding can put a self-match a hair above 1
                D[j] = max(min(D[j], np.float32(1.0)), np.float32(-1.0))
            R[c] = rids[I[j]]
            c += 1
    return D[:c]


@njit(cache=True, nogil=True)
def exact_one(xq, xb, norms, metric, mask, has_mask, rids, R, lo, hi):
    """The best len(R) rows of xb (n, d) for the query xq (1, d), on this thread: returns
    their scores, best first, and writes their rids (``rids[row]``) into R. ``mask`` uint8
    (n,) of live rows when has_mask. R[0] = BAD_QUERY (no scores) if xq is out of [lo, hi].

    Scores are exact.py's ``(qa * w[x]) * dot(x, q) - c[x]``."""
    k = R.shape[0]
    if not fits(xq[0], lo, hi):
        R[0] = BAD_QUERY
        return np.empty(0, dtype=np.float32)
    D = np.full(k, -np.inf, dtype=np.float32)
    I = np.full(k, -1, dtype=np.int64)
    if metric == _COSINE:
        qn = np.sqrt(_dot(xq, 0, xq, 0))
        qa = np.float32(1.0) / qn if qn > 0.0 else np.float32(0.0)
    elif metric == _L2:
        qa = np.float32(2.0)
    else:
        qa = np.float32(1.0)
    for r in range(xb.shape[0]):
        if has_mask and mask[r] == 0:
            continue
        xn = norms[r]
        if metric == _COSINE:
            w = np.float32(1.0) / xn if xn > 0.0 else np.float32(0.0)
            cc = np.float32(0.0)
        elif metric == _L2:
            w = np.float32(1.0)
            cc = xn * xn
        else:
            w = np.float32(1.0)
            cc = np.float32(0.0)
        s = (qa * w) * _dot(xb, r, xq, 0) - cc
        if s > D[0]:
            replace_top(D, I, s, r)
    return finish(D, I, metric, xq, rids, R)


#: Header of a graph scratch buffer (``graph_scratch``): the capacities its regions were
#: carved for, and the visit stamp of the last search.
_HEAD = 4


def graph_scratch(n, ef, width):
    """One int32 buffer holding every scratch array of a single graph search over up to ``n``
    nodes with beams up to ``ef`` and ``width`` links a node (graph.py's VIS, CD/CI, WD/WI,
    NB), so the compiled call unboxes one array instead of seven. Its layout depends only on
    these capacities, kept in its header (a buffer grown for a larger graph is a new one)."""
    n, ef, width = max(int(n), 1), int(ef), int(width)
    S = np.zeros(_HEAD + n + 2 * (n + 1) + 2 * (ef + 1) + width, dtype=np.int32)
    S[0], S[1], S[2] = n, ef, width
    return S


@njit(cache=True, nogil=True)
def _carve(S):
    n = S[0]
    ef = S[1]
    width = S[2]
    at = _HEAD
    VIS = S[at : at + n]
    at += n
    CI = S[at : at + n + 1]
    at += n + 1
    CD = S[at : at + n + 1].view(np.float32)
    at += n + 1
    WI = S[at : at + ef + 1]
    at += ef + 1
    WD = S[at : at + ef + 1].view(np.float32)
    at += ef + 1
    NB = S[at : at + width]
    return VIS, CD, CI, WD, WI, NB


@njit(cache=True, nogil=True)
def graph_one(xq, metric, xb, w, c, G, UP, slot, H, entry, top, ef, mask, has_mask, need, S,
              rids, D, R, lo, hi):  # fmt: skip
    """``exact_one`` through the block's HNSW graph (graph.py's arrays; G its layer-0 walk
    block, ``walk_block``; S a ``graph_scratch`` buffer that fits), into preallocated
    outputs: the scores best first in D float32 (k,), their rids in R int64 (k,); returns
    how many (c: D[:c], R[:c]). An int, not an array: boxing a returned array costs a
    single query more than allocating it beforehand. Returns 0 with R[0] = BAD_QUERY when xq
    is out of [lo, hi], R[0] = TOO_FEW when the search offers fewer than ``need`` rows."""
    k = R.shape[0]
    if not fits(xq[0], lo, hi):
        R[0] = BAD_QUERY
        return 0
    D[:] = -np.inf
    I = np.full(k, -1, dtype=np.int64)
    VIS, CD, CI, WD, WI, NB = _carve(S)
    stamp = next_stamp(VIS, S[3])
    S[3] = stamp
    found = search_one(xq[0], metric, xb, w, c, G, UP, slot, H, entry, top, ef, mask,
                       has_mask, VIS, stamp, CD, CI, WD, WI, NB, D, I, 0)  # fmt: skip
    if found < need:
        R[0] = TOO_FEW
        return 0
    return finish(D, I, metric, xq, rids, R).shape[0]
