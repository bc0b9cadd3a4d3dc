"""HNSW graph kernels: building a layered proximity graph over float32 rows in parallel
batches, and searching it (greedy descent on the upper layers, a beam search of width ef on
layer 0), optionally under a mask of searchable rows.

numpy + numba only: pure functions over arrays, no I/O, no classes.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import math
import operator

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

METRICS = ("cosine", "dot", "l2")

# A graph is a struct of arrays over the n rows of one segment:
#   levels  uint8 (n,)          the top layer of each node (0 for most)
#   L0      int32 (n, M0)       layer-0 neighbours, -1 padded (M0 = 2M)
#   slot    int32 (n,)          a node's row in UP, or -1 when its level is 0
#   UP      int32 (nu * H, M)   layer l >= 1 of node u at row slot[u] * H + l - 1, -1 padded
#   entry, top                  the entry node and its level (the highest of any node)
#
# Scores are exact.py's: ``qa * w[x] * dot(q, x) - c[x]`` with per-row (w, c):
#   cosine  w = 1/|x|  c = 0       dot  w = 1  c = 0       l2  w = 1  c = |x|^2 (qa = 2)
# Between two rows i and j the same formula with q = x_i, qa = a * w[i] (a = 2 for l2), less
# c[i], is symmetric, which the neighbour-selection heuristic needs.

#: Fraction of the rows inserted at most in one parallel batch: the rows of one batch do not
#: see each other while they search, so a batch must stay small next to the graph (ParlayANN
#: uses 2%).
BATCH_FRACTION = 0.02


@intrinsic
def _prefetch_row(typingctx, xb_t, j_t):
    """Ask the CPU to start loading row j of the C-contiguous 2-D array xb into cache (a
    hint, llvm.prefetch: no fault even on a bad address). A beam search reads ~1,000 rows of
    1.5 KB at random per query; issuing their loads ahead overlaps the memory latency."""
    sig = types.void(xb_t, j_t)

    def codegen(context, builder, signature, args):
        xb, j = args
        arr = context.make_array(xb_t)(context, builder, xb)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch"
        )
        stride = builder.extract_value(arr.strides, 0)
        base = builder.bitcast(arr.data, i8p)
        start = builder.gep(base, [builder.mul(builder.sext(j, stride.type), stride)])
        ncol = builder.extract_value(arr.shape, 1)
        nbytes = builder.mul(ncol, ir.Constant(ncol.type, 4))
        line = ir.Constant(ncol.type, 64)
        nlines = builder.udiv(builder.add(nbytes, ir.Constant(ncol.type, 63)), line)
        with cgutils.for_range(builder, nlines) as loop:
            at = builder.gep(start, [builder.mul(loop.index, line)])
            builder.call(fn, [at, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


# fastmath: distance inner loop only; it lets LLVM split the sum over SIMD accumulators.
@njit(cache=True, nogil=True, fastmath=True)
def _dot(A, i, B, j):
    s = np.float32(0.0)
    for t in range(A.shape[1]):
        s += A[i, t] * B[j, t]
    return s


@njit(cache=True, nogil=True, fastmath=True)
def _dotq(q, B, j):
    s = np.float32(0.0)
    for t in range(q.shape[0]):
        s += q[t] * B[j, t]
    return s


@njit(cache=True, nogil=True)
def _sim(xb, w, c, a, i, j):
    """The symmetric score of rows i and j (higher is closer)."""
    return a * w[i] * w[j] * _dot(xb, i, xb, j) - c[i] - c[j]


# -- heaps: a min-heap (worst on top) of results and a max-heap (best on top) of candidates --


@njit(cache=True, nogil=True)
def _min_push(D, I, n, s, label):
    """Push (s, label) onto the min-heap D/I[:n]; returns n + 1."""
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if D[p] <= s:
            break
        D[i] = D[p]
        I[i] = I[p]
        i = p
    D[i] = s
    I[i] = label
    return n + 1


@njit(cache=True, nogil=True)
def _min_replace(D, I, n, s, label):
    """Replace the minimum of the min-heap D/I[:n] by (s, label)."""
    i = 0
    while True:
        ch = 2 * i + 1
        if ch >= n:
            break
        r = ch + 1
        if r < n and D[r] < D[ch]:
            ch = r
        if D[ch] >= s:
            break
        D[i] = D[ch]
        I[i] = I[ch]
        i = ch
    D[i] = s
    I[i] = label


@njit(cache=True, nogil=True)
def _max_push(D, I, n, s, label):
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if D[p] >= s:
            break
        D[i] = D[p]
        I[i] = I[p]
        i = p
    D[i] = s
    I[i] = label
    return n + 1


@njit(cache=True, nogil=True)
def _max_pop(D, I, n):
    """Remove the maximum of the max-heap D/I[:n]; returns n - 1."""
    n -= 1
    s = D[n]
    label = I[n]
    i = 0
    while True:
        ch = 2 * i + 1
        if ch >= n:
            break
        r = ch + 1
        if r < n and D[r] > D[ch]:
            ch = r
        if D[ch] <= s:
            break
        D[i] = D[ch]
        I[i] = I[ch]
        i = ch
    if n > 0:
        D[i] = s
        I[i] = label
    return n


@njit(cache=True, nogil=True)
def _sort_heap_desc(D, I, n):
    """Sort the min-heap D/I[:n] best first, in place (heapsort: each pop of the minimum
    lands at the end). An insertion sort cost O(n^2) here, since a min-heap's array is
    nearly ascending: about 6% of a build's time at ef_construction = 200."""
    for k in range(n - 1, 0, -1):
        s = D[k]
        label = I[k]
        D[k] = D[0]
        I[k] = I[0]
        _min_replace(D, I, k, s, label)


# -- search -----------------------------------------------------------------------------------

#: Rows whose loads are kept in flight ahead of the one being scored.
_AHEAD = 2


@njit(cache=True, nogil=True)
def _links(L0, UP, slot, H, u, layer):
    if layer == 0:
        return L0[u]
    return UP[slot[u] * H + layer - 1]


@njit(cache=True, nogil=True)
def _greedy(q, qa, xb, w, c, L0, UP, slot, H, ep, s_ep, layer):
    """Hill-climb from ep on one layer; returns the local best and its score."""
    changed = True
    while changed:
        changed = False
        nb = _links(L0, UP, slot, H, ep, layer)
        for t in range(min(nb.shape[0], _AHEAD)):
            if nb[t] >= 0:
                _prefetch_row(xb, nb[t])
        for t in range(nb.shape[0]):
            j = nb[t]
            if j < 0:
                break
            if t + _AHEAD < nb.shape[0] and nb[t + _AHEAD] >= 0:
                _prefetch_row(xb, nb[t + _AHEAD])
            s = qa * w[j] * _dotq(q, xb, j) - c[j]
            if s > s_ep:
                s_ep = s
                ep = j
                changed = True
    return ep, s_ep


@njit(cache=True, nogil=True)
def _beam(q, qa, xb, w, c, L0, UP, slot, H, ep, s_ep, layer, ef, mask, has_mask, VIS, stamp,
          CD, CI, WD, WI, NB):  # fmt: skip
    """Beam search of width ef on one layer from ep: the best ef searchable rows (the mask's,
    when has_mask) are left in the min-heap WD/WI, whose size is returned. Rows outside the
    mask are traversed but never returned. NB is scratch for one neighbour list."""
    nc = 0
    nw = 0
    VIS[ep] = stamp
    nc = _max_push(CD, CI, nc, s_ep, ep)
    if not has_mask or mask[ep]:
        nw = _min_push(WD, WI, nw, s_ep, ep)
    while nc > 0:
        sc = CD[0]
        u = CI[0]
        if nw >= ef and sc < WD[0]:
            break
        nc = _max_pop(CD, CI, nc)
        nb = _links(L0, UP, slot, H, u, layer)
        cnt = 0
        for t in range(nb.shape[0]):
            j = nb[t]
            if j < 0:
                break
            if VIS[j] != stamp:
                VIS[j] = stamp
                NB[cnt] = j
                cnt += 1
        for t in range(min(cnt, _AHEAD)):
            _prefetch_row(xb, NB[t])
        for t in range(cnt):
            if t + _AHEAD < cnt:
                _prefetch_row(xb, NB[t + _AHEAD])
            j = NB[t]
            s = qa * w[j] * _dotq(q, xb, j) - c[j]
            if nw < ef or s > WD[0]:
                nc = _max_push(CD, CI, nc, s, j)
                if not has_mask or mask[j]:
                    if nw < ef:
                        nw = _min_push(WD, WI, nw, s, j)
                    else:
                        _min_replace(WD, WI, nw, s, j)
    return nw


@njit(cache=True, nogil=True)
def _beam0(q, qa, xb, G, GF, scale, ep, s_ep, ef, mask, has_mask, VIS, stamp, CD, CI, WD, WI,
           NB):  # fmt: skip
    """``_beam`` on layer 0 over the walk block G (``walk_block``; GF its float32 view): a
    node's links and its neighbours' score terms come in one contiguous row, so scoring a
    neighbour reads its vector and nothing else at random. The same scores as ``_beam``
    (``scale``: cosine's ``qa * w * dot``, else ``qa * dot - c``), so the same results."""
    W = G.shape[1] // 2
    nc = 0
    nw = 0
    VIS[ep] = stamp
    nc = _max_push(CD, CI, nc, s_ep, ep)
    if not has_mask or mask[ep]:
        nw = _min_push(WD, WI, nw, s_ep, ep)
    while nc > 0:
        sc = CD[0]
        u = CI[0]
        if nw >= ef and sc < WD[0]:
            break
        nc = _max_pop(CD, CI, nc)
        if nc > 0:
            _prefetch_row(G, CI[0])  # likely the next node expanded
        cnt = 0
        for t in range(W):
            j = G[u, t]
            if j < 0:
                break
            if VIS[j] != stamp:
                VIS[j] = stamp
                NB[cnt] = t
                cnt += 1
        for t in range(min(cnt, _AHEAD)):
            _prefetch_row(xb, G[u, NB[t]])
        for t in range(cnt):
            if t + _AHEAD < cnt:
                _prefetch_row(xb, G[u, NB[t + _AHEAD]])
            p = NB[t]
            j = G[u, p]
            e = GF[u, W + p]
            if scale:
                s = qa * e * _dotq(q, xb, j)
            else:
                s = qa * _dotq(q, xb, j) - e
            if nw < ef or s > WD[0]:
                nc = _max_push(CD, CI, nc, s, j)
                if not has_mask or mask[j]:
                    if nw < ef:
                        nw = _min_push(WD, WI, nw, s, j)
                    else:
                        _min_replace(WD, WI, nw, s, j)
    return nw


@njit(cache=True, nogil=True)
def next_stamp(VIS, stamp):
    """The visit stamp of the next search using VIS (VIS cleared when the stamp wraps)."""
    if stamp >= 2147483000:
        VIS[:] = 0
        return 1
    return stamp + 1


@njit(cache=True, nogil=True)
def _search_into(q, qa, xb, w, c, G, GF, scale, UP, slot, H, entry, top, ef, mask, has_mask,
                 VIS, stamp, CD, CI, WD, WI, NB, D, I, base):  # fmt: skip
    """One query: descend, beam-search layer 0 (over the walk block G), offer the results to
    the heap D/I (k,) with labels offset by base. Returns the number of results offered."""
    ep = entry
    s_ep = qa * w[ep] * _dotq(q, xb, ep) - c[ep]
    for layer in range(top, 0, -1):
        # layer 0 is never read here (layer >= 1), so the walk block stands in for L0
        ep, s_ep = _greedy(q, qa, xb, w, c, G, UP, slot, H, ep, s_ep, layer)
    nw = _beam0(q, qa, xb, G, GF, scale, ep, s_ep, ef, mask, has_mask, VIS, stamp, CD, CI, WD,
                WI, NB)  # fmt: skip
    for t in range(nw):
        if WD[t] > D[0]:
            _min_replace(D, I, D.shape[0], WD[t], WI[t] + base)
    return nw


@njit(cache=True, nogil=True)
def _query_factor(q, metric):
    """qa of the score formula: 1/|q| for cosine (0 for a zero query), 2 for l2, 1 for dot."""
    if metric == 0:
        qn = np.sqrt(_dotq(q, q.reshape(1, q.shape[0]), 0))
        return np.float32(1.0) / qn if qn > 0.0 else np.float32(0.0)
    if metric == 2:
        return np.float32(2.0)
    return np.float32(1.0)


@njit(cache=True, nogil=True)
def search_one(q, metric, xb, w, c, G, UP, slot, H, entry, top, ef, mask, has_mask, VIS, stamp,
               CD, CI, WD, WI, NB, D, I, base):  # fmt: skip
    """One query q (d,) of metric code ``metric`` (see METRICS) offered to the heap D/I (k,):
    returns the number of rows offered. G is layer 0's walk block (``walk_block``); VIS/stamp
    from ``next_stamp``; the other scratch as ``Scratch`` allocates it."""
    qa = _query_factor(q, metric)
    return _search_into(q, qa, xb, w, c, G, G.view(np.float32), metric == 0, UP, slot, H,
                        entry, top, ef, mask, has_mask, VIS, stamp, CD, CI, WD, WI, NB, D, I,
                        base)  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def _search_batch(xq, metric, xb, w, c, G, UP, slot, H, entry, top, ef, mask, has_mask, VIS,
                  CD, CI, WD, WI, NB, D, I, base, found):  # fmt: skip
    """Every query of xq, in one chunk of queries per thread (each with its own scratch)."""
    nq = xq.shape[0]
    T = VIS.shape[0]
    GF = G.view(np.float32)
    for t in prange(T):
        lo = nq * t // T
        hi = nq * (t + 1) // T
        stamp = 0
        for qi in range(lo, hi):
            stamp = next_stamp(VIS[t], stamp)
            qa = _query_factor(xq[qi], metric)
            found[qi] = _search_into(xq[qi], qa, xb, w, c, G, GF, metric == 0, UP, slot, H,
                                     entry, top, ef, mask, has_mask, VIS[t], stamp, CD[t],
                                     CI[t], WD[t], WI[t], NB[t], D[qi], I[qi],
                                     base)  # fmt: skip


@njit(cache=True, nogil=True)
def _scan_rows_one(q, metric, xb, w, c, rows, D, I, base):
    """Exact scores of the rows ``rows`` of xb for one query, offered to the heap D/I (k,)."""
    qa = _query_factor(q, metric)
    n = rows.shape[0]
    for t in range(min(n, _AHEAD)):
        _prefetch_row(xb, rows[t])
    for t in range(n):
        if t + _AHEAD < n:
            _prefetch_row(xb, rows[t + _AHEAD])
        j = rows[t]
        s = qa * w[j] * _dotq(q, xb, j) - c[j]
        if s > D[0]:
            _min_replace(D, I, D.shape[0], s, j + base)


# -- build ------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _select(xb, w, c, a, SD, SI, n, m, out):
    """HNSW's neighbour heuristic over candidates SD/SI[:n] sorted best first (scores to the
    node being linked): keep a candidate only if it is closer to the node than to every
    candidate kept before it, up to m. Writes the kept ids to out (padded with -1); returns
    how many."""
    kept = 0
    for t in range(n):
        j = SI[t]
        good = True
        for r in range(kept):
            if _sim(xb, w, c, a, j, out[r]) > SD[t]:
                good = False
                break
        if good:
            out[kept] = j
            kept += 1
            if kept >= m:
                break
    for r in range(kept, out.shape[0]):
        out[r] = -1
    return kept


@njit(cache=True, nogil=True)
def _link_node(u, xb, w, c, a, levels, L0, UP, slot, H, entry, top, efc, M, VIS, stamp,
               CD, CI, WD, WI, NB, SEL):  # fmt: skip
    """Phase 1 of a batch for node u: search the graph as it was before the batch and write
    u's own neighbour lists (no other thread writes them, and none reads them yet)."""
    qa = a * w[u]
    q = xb[u]
    ep = entry
    s_ep = qa * w[ep] * _dotq(q, xb, ep) - c[ep]
    lu = levels[u]
    for layer in range(top, lu, -1):
        ep, s_ep = _greedy(q, qa, xb, w, c, L0, UP, slot, H, ep, s_ep, layer)
    for layer in range(min(lu, top), -1, -1):
        stamp = next_stamp(VIS, stamp)
        nw = _beam(q, qa, xb, w, c, L0, UP, slot, H, ep, s_ep, layer, efc, levels, False, VIS,
                   stamp, CD, CI, WD, WI, NB)  # fmt: skip
        _sort_heap_desc(WD, WI, nw)
        ep = WI[0]
        s_ep = WD[0]
        row = _links(L0, UP, slot, H, u, layer)
        _select(xb, w, c, a, WD, WI, nw, M, SEL)
        for t in range(row.shape[0]):
            row[t] = SEL[t] if t < SEL.shape[0] else -1
    return stamp


#: Nodes a thread takes from a batch at a time: small chunks keep both cores busy to the
#: end of a batch even when one of them is slowed by other work.
_CHUNK = 8


@njit(cache=True, nogil=True, parallel=True)
def _phase1(nodes, xb, w, c, a, levels, L0, UP, slot, H, entry, top, efc, M, VIS, STAMP,
            CD, CI, WD, WI, NB, SEL):  # fmt: skip
    nb = nodes.shape[0]
    nchunks = (nb + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunks):  # the wrapper sets a parallel chunk size of 1
        t = numba.get_thread_id()  # each thread owns row t of the scratch arrays
        for b in range(ch * _CHUNK, min(nb, (ch + 1) * _CHUNK)):
            u = nodes[b]
            if u == entry:
                continue
            STAMP[t] = _link_node(u, xb, w, c, a, levels, L0, UP, slot, H, entry, top, efc,
                                  M, VIS[t], STAMP[t], CD[t], CI[t], WD[t], WI[t], NB[t],
                                  SEL[t])  # fmt: skip


@njit(cache=True, nogil=True)
def _reverse_pairs(nodes, levels, L0, UP, slot, H, n):
    """(key, source) of every edge the batch's nodes made, key = layer * n + target."""
    count = 0
    for b in range(nodes.shape[0]):
        u = nodes[b]
        for layer in range(levels[u] + 1):
            row = _links(L0, UP, slot, H, u, layer)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                count += 1
    keys = np.empty(count, dtype=np.int64)
    srcs = np.empty(count, dtype=np.int32)
    p = 0
    for b in range(nodes.shape[0]):
        u = nodes[b]
        for layer in range(levels[u] + 1):
            row = _links(L0, UP, slot, H, u, layer)
            for t in range(row.shape[0]):
                v = row[t]
                if v < 0:
                    break
                keys[p] = layer * n + v
                srcs[p] = u
                p += 1
    return keys, srcs


@njit(cache=True, nogil=True, parallel=True)
def _phase2(keys, srcs, starts, xb, w, c, a, L0, UP, slot, H, n):
    """Add the batch's reverse edges, one target per iteration (so no two threads write one
    list): append while there is room, else keep the heuristic's choice of old and new."""
    for g in prange(starts.shape[0] - 1):
        lo = starts[g]
        hi = starts[g + 1]
        layer = keys[lo] // n
        v = keys[lo] - layer * n
        row = _links(L0, UP, slot, H, v, layer)
        cap = row.shape[0]
        have = 0
        while have < cap and row[have] >= 0:
            have += 1
        total = have
        for e in range(lo, hi):
            dup = False
            for t in range(have):
                if row[t] == srcs[e]:
                    dup = True
                    break
            if not dup:
                total += 1
        if total <= cap:
            for e in range(lo, hi):
                dup = False
                for t in range(have):
                    if row[t] == srcs[e]:
                        dup = True
                        break
                if not dup:
                    row[have] = srcs[e]
                    have += 1
            continue
        SD = np.empty(total, dtype=np.float32)
        SI = np.empty(total, dtype=np.int32)
        m = 0
        for t in range(have):
            SI[m] = row[t]
            m += 1
        for e in range(lo, hi):
            dup = False
            for t in range(have):
                if row[t] == srcs[e]:
                    dup = True
                    break
            if not dup:
                SI[m] = srcs[e]
                m += 1
        for t in range(m):
            SD[t] = _sim(xb, w, c, a, v, SI[t])
        order = np.argsort(-SD)
        SD2 = SD[order]
        SI2 = SI[order]
        out = np.empty(cap, dtype=np.int32)
        _select(xb, w, c, a, SD2, SI2, m, cap, out)
        for t in range(cap):
            row[t] = out[t]


@njit(cache=True, nogil=True)
def _group_starts(keys):
    n = keys.shape[0]
    count = 1 if n else 0
    for i in range(1, n):
        if keys[i] != keys[i - 1]:
            count += 1
    starts = np.empty(count + 1, dtype=np.int64)
    g = 0
    for i in range(n):
        if i == 0 or keys[i] != keys[i - 1]:
            starts[g] = i
            g += 1
    starts[count] = n
    return starts


def _row_terms(norms, metric):
    """(w, c, a) of exact.py's scores for rows with these norms."""
    n = norms.shape[0]
    if metric == "cosine":
        w = np.divide(1.0, norms, out=np.zeros(n, np.float32), where=norms > 0).astype(np.float32)
        return w, np.zeros(n, np.float32), np.float32(1.0)
    if metric == "l2":
        return np.ones(n, np.float32), (norms * norms).astype(np.float32), np.float32(2.0)
    return np.ones(n, np.float32), np.zeros(n, np.float32), np.float32(1.0)


def row_terms(norms, metric):
    """Per-row ``(w, c)`` of the score formula for float32 ``norms`` (n,) under ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    w, c, _ = _row_terms(np.asarray(norms, dtype=np.float32), metric)
    return w, c


def levels_for(n, M, seed):
    """Random HNSW levels for n nodes: floor(-ln U / ln M), capped at 15."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    ml = 1.0 / math.log(max(M, 2))
    lv = np.floor(-np.log(np.maximum(u, 1e-300)) * ml)
    return np.minimum(lv, 15).astype(np.uint8)


def upper_slots(levels):
    """``(slot, H)``: each node's row block in UP (-1 at level 0) and the layers above 0."""
    levels = np.asarray(levels)
    upper = levels > 0
    slot = np.full(levels.shape[0], -1, dtype=np.int32)
    slot[upper] = np.arange(int(upper.sum()), dtype=np.int32)
    H = int(levels.max()) if levels.shape[0] else 0
    return slot, H


def _scratch(T, n, ef, width):
    NB = np.empty((T, width), dtype=np.int32)
    VIS = np.zeros((T, max(n, 1)), dtype=np.int32)
    CD = np.empty((T, max(n, 1) + 1), dtype=np.float32)
    CI = np.empty((T, max(n, 1) + 1), dtype=np.int32)
    WD = np.empty((T, ef + 1), dtype=np.float32)
    WI = np.empty((T, ef + 1), dtype=np.int32)
    return VIS, CD, CI, WD, WI, NB


def build(xb, norms, metric, M, ef_construction, *, seed=0, threads=None):
    """Build an HNSW graph over the rows of ``xb``.

    Rows are inserted in parallel batches (prefix doubling up to ``BATCH_FRACTION`` of n):
    each thread links its share of the batch into the graph as it stood before the batch,
    writing only those nodes' own lists; then the reverse edges are grouped by target and
    each target's list is updated by one thread. No locks, no atomics, and the result
    depends only on the seed and the thread count.

    Parameters
    ----------
    xb : float32 (n, d), C-contiguous (a read-only map is fine)
    norms : float32 (n,), the rows' L2 norms
    metric : {"cosine", "dot", "l2"}
    M : int, links per node on the upper layers (2M on layer 0)
    ef_construction : int, beam width while linking

    Returns
    -------
    dict with ``levels`` uint8 (n,), ``L0`` int32 (n, 2M), ``UP`` int32 (nu * H, M), and
    ints ``entry``, ``top``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    if xb.dtype != np.float32 or xb.ndim != 2 or not xb.flags.c_contiguous:
        raise ValueError("xb: expected a C-contiguous float32 (n, d) array")
    M = operator.index(M)
    efc = max(operator.index(ef_construction), M)
    n = xb.shape[0]
    w, c, a = _row_terms(np.ascontiguousarray(norms, dtype=np.float32), metric)
    levels = levels_for(n, M, seed)
    slot, H = upper_slots(levels)
    nu = int((levels > 0).sum())
    L0 = np.full((n, 2 * M), -1, dtype=np.int32)
    UP = np.full((max(nu * H, 1), M), -1, dtype=np.int32)
    if n == 0:
        return {"levels": levels, "L0": L0, "UP": UP, "entry": 0, "top": 0}
    entry = int(np.argmax(levels))
    top = int(levels[entry])
    order = np.random.default_rng(seed + 1).permutation(n).astype(np.int32)
    order = np.concatenate([[entry], order[order != entry]]).astype(np.int32)
    old_threads = numba.get_num_threads()
    T = max(1, min(threads or old_threads, numba.config.NUMBA_NUM_THREADS))
    # scratch row t belongs to the thread numba.get_thread_id() numbers t (< T)
    VIS, CD, CI, WD, WI, NB = _scratch(T, n, efc, 2 * M)
    SEL = np.empty((T, M), dtype=np.int32)
    STAMP = np.zeros(T, dtype=np.int32)
    cap = max(1, int(math.ceil(BATCH_FRACTION * n)))
    numba.set_num_threads(T)
    old_chunk = numba.set_parallel_chunksize(1)  # prange hands out chunks as threads free up
    try:
        _insert_all(xb, w, c, a, levels, L0, UP, slot, H, entry, top, efc, M, VIS, STAMP,
                    CD, CI, WD, WI, NB, SEL, order, cap)  # fmt: skip
    finally:
        numba.set_parallel_chunksize(old_chunk)
        numba.set_num_threads(old_threads)
    return {"levels": levels, "L0": L0, "UP": UP, "entry": entry, "top": top}


def _insert_all(xb, w, c, a, levels, L0, UP, slot, H, entry, top, efc, M, VIS, STAMP,
                CD, CI, WD, WI, NB, SEL, order, cap):  # fmt: skip
    n = xb.shape[0]
    done = 1
    while done < n:
        b = min(done, cap, n - done)
        nodes = order[done : done + b]
        _phase1(nodes, xb, w, c, a, levels, L0, UP, slot, H, entry, top, efc, M, VIS, STAMP,
                CD, CI, WD, WI, NB, SEL)  # fmt: skip
        keys, srcs = _reverse_pairs(nodes, levels, L0, UP, slot, H, n)
        perm = np.argsort(keys, kind="stable")
        keys, srcs = keys[perm], srcs[perm]
        _phase2(keys, srcs, _group_starts(keys), xb, w, c, a, L0, UP, slot, H, n)
        done += b


def scan_rows_into(xq, metric, xb, w, c, rows, D, I, *, base=0):
    """Exactly score the rows ``rows`` (int64, each in range) of ``xb`` for the single query
    ``xq`` (1, d) and offer them to the heap D/I (1, k), labels offset by ``base``.

    One thread, the rows' loads issued a few rows ahead: a filter's kept rows of one segment
    are scattered reads, which a second thread speeds up little (about 1.3x at 500 rows of
    100k) and which wait for it whenever the other core is busy (15 ms a query measured on
    this shared machine, against 0.2 ms on one thread for 2,000 rows)."""
    if xq.shape[0] != 1 or rows.dtype != np.int64:
        raise ValueError("scan_rows_into: expected one query and int64 rows")
    if rows.shape[0] and (rows.min() < 0 or rows.max() >= xb.shape[0]):
        raise ValueError("scan_rows_into: a row is out of range")
    _scan_rows_one(xq[0], METRICS.index(metric), xb, w, c, rows, D[0], I[0], base)


def walk_block(L0, w, c, metric):
    """Layer 0 as a search walks it: int32 (n, 2W) for ``L0`` int32 (n, W), row u holding u's
    W links (-1 padded) then, as float32 bits, each link's score term (cosine: ``w`` of the
    neighbour; dot and l2: its ``c``). hnswlib keeps a node's links beside its vector for the
    same reason: one expansion then reads one contiguous row (4 cache lines at W = 32)
    instead of the links plus two scattered loads per neighbour. Built in memory when a
    graph is first searched (no file holds it): 256 bytes a row at W = 32, 20-40 ms for
    116k rows measured here."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    L0 = np.asarray(L0)
    n, W = L0.shape
    G = np.empty((n, 2 * W), dtype=np.int32)
    G[:, :W] = L0
    term = np.asarray(w if metric == "cosine" else c, dtype=np.float32)
    if len(term):
        G.view(np.float32)[:, W:] = term[np.maximum(L0, 0)]
    else:
        G[:, W:] = 0
    return G


class Scratch:
    """Per-thread search buffers for graphs of up to ``n`` nodes and beams up to ``ef``."""

    def __init__(self, n, ef, width, threads=1):
        self.n = n
        self.ef = ef
        self.width = width
        self.VIS, self.CD, self.CI, self.WD, self.WI, self.NB = _scratch(threads, n, ef, width)
        self.stamp = 0


_NO_MASK = np.zeros(1, dtype=np.bool_)


def search_into(xq, metric, xb, w, c, levels_slot_H, L0, UP, entry, top, ef, D, I, *, mask=None,
                base=0, scratch=None, walk=None):  # fmt: skip
    """Search one graph for every query of ``xq`` and offer the best ``ef`` of each to the
    heaps D/I (nq, k), labels offset by ``base``.

    ``metric`` is one of METRICS; ``w``/``c`` come from ``row_terms``; ``levels_slot_H`` is
    ``(slot, H)`` of ``upper_slots``; ``mask`` a bool (n,) of searchable rows (None: all).
    ``scratch`` is a ``Scratch`` (single queries only; reused across calls). ``walk`` is
    ``walk_block(L0, w, c, metric)``, kept by the caller between calls (built here when
    None, which costs more than a single query). Returns int64 (nq,): results found per
    query (fewer than ef when few rows are searchable).
    """
    slot, H = levels_slot_H
    n = xb.shape[0]
    nq = xq.shape[0]
    found = np.zeros(nq, dtype=np.int64)
    if n == 0 or nq == 0:
        return found
    ef = max(int(ef), D.shape[1])
    has_mask = mask is not None
    m = mask if has_mask else _NO_MASK
    code = METRICS.index(metric)
    G = walk_block(L0, w, c, metric) if walk is None else walk
    if G.shape != (n, 2 * L0.shape[1]) or G.dtype != np.int32 or not G.flags.c_contiguous:
        raise ValueError("walk: expected walk_block(L0, w, c, metric) of this graph")
    if nq == 1:
        if scratch is None or scratch.n < n or scratch.ef < ef or scratch.width < L0.shape[1]:
            scratch = Scratch(n, ef, L0.shape[1])
        scratch.stamp = int(next_stamp(scratch.VIS[0], scratch.stamp))
        found[0] = search_one(xq[0], code, xb, w, c, G, UP, slot, H, entry, top, ef, m,
                               has_mask, scratch.VIS[0], scratch.stamp, scratch.CD[0],
                               scratch.CI[0], scratch.WD[0], scratch.WI[0], scratch.NB[0],
                               D[0], I[0], base)  # fmt: skip
        return found
    T = max(1, min(numba.get_num_threads(), nq))
    VIS, CD, CI, WD, WI, NB = _scratch(T, n, ef, L0.shape[1])
    _search_batch(xq, code, xb, w, c, G, UP, slot, H, entry, top, ef, m, has_mask, VIS, CD, CI,
                  WD, WI, NB, D, I, base, found)  # fmt: skip
    return found
