"""The single-query plan of a snapshot: how one unfiltered vector query on a snapshot that is
kept between queries (``store.Fresh``) is answered in one compiled call, from the query
vector to the final scores and catalog row ids (``kernels/single.py``).

It covers the common shapes: one block of float32 rows scanned exactly on the calling thread
(a small collection), or one segment with its HNSW graph; a snapshot with IVF or IVF-PQ lists
gets ``quick_ivf``'s plan, and one segment of compressed codes scanned exactly gets
``compressed.Quick``. Anything else (several blocks, a block large enough for threads,
kernels not loaded yet) has no plan and is answered by ``plan.search``, as is a graph search
that meets tombstones and finds fewer rows than asked for. Uses kernels lazily; no SQL.
"""

from __future__ import annotations

import threading

import numpy as np

from . import cold, compressed, flat, quick_ivf
from . import graph as graphs
from .pages import release_compiler_pages

_local = threading.local()


class Quick:
    """A snapshot's single-query plan (``prepare`` makes one, or says there is none)."""

    def __init__(self, part: flat.Part, metric: str, graph_ef: int | None):
        from ..kernels import single

        self.kernels = single  # imported once, not per query
        self.part = part
        self.metric = metric
        self.code = ("cosine", "dot", "l2").index(metric)
        self.graph_ef = graph_ef  # the index's beam width, or None: an exact scan
        alive = part.alive
        self.mask = (
            np.zeros(1, dtype=np.uint8 if graph_ef is None else np.bool_)
            if alive is None
            else (alive.view(np.uint8) if graph_ef is None else alive)
        )
        self.has_mask = alive is not None
        self.live = len(part.vectors) if alive is None else int(np.count_nonzero(alive))
        self.n = len(part.vectors)
        if graph_ef is not None:
            g = part.graph
            self.walk = g.walk  # built once per graph, kept with it
            self.width = g.L0.shape[1]
            # the graph arguments of every call, looked up once (not a dozen loads a query)
            self.graph_args = (part.vectors, g.w, g.c, self.walk, g.UP, g.slot, g.H, g.entry,
                               g.top)  # fmt: skip

    def search(self, xq: np.ndarray, k: int, ef: int | None, lo: float, hi: float,
               nprobe: int | None = None):  # fmt: skip
        """``(scores, rids)`` of one query ``xq`` float32 (1, d): float32 (c,) best first
        and a list of c rids; ``None`` when the plan cannot answer it (take ``plan.search``);
        ``False`` when ``xq`` has a component outside [lo, hi] (or NaN, inf). ``nprobe`` is
        an IVF parameter (``quick_ivf``; always None here)."""
        single = self.kernels
        release_compiler_pages()  # LLVM pages a kernel load may have left mapped
        part = self.part
        R = np.empty(k, dtype=np.int64)
        R[0] = 0  # not a status, whatever the kernel leaves
        if not cold.ready():
            return None  # plan.search answers with NumPy while the kernels load
        if self.graph_ef is None:
            scores = single.exact_one(xq, part.vectors, part.norms, self.code, self.mask,
                                      self.has_mask, part.rids, R, lo, hi)  # fmt: skip
            c = len(scores)
        else:
            if ef is None or ef < k:
                ef = max(ef or self.graph_ef, k)
            S = _scratch(self.n, ef, self.width)
            D = np.empty(k, dtype=np.float32)
            c = single.graph_one(xq, self.code, *self.graph_args, ef, self.mask, self.has_mask,
                                 k if k < self.live else self.live, S, part.rids, D, R, lo,
                                 hi)  # fmt: skip
            scores = D if c == k else D[:c]
        if not c and k:
            status = R[0]
            if status == single.BAD_QUERY:
                return False
            if status == single.TOO_FEW:
                return None
        return scores, (R if c == k else R[:c]).tolist()


def prepare(
    snap: flat.Snapshot, metric: str
) -> Quick | quick_ivf.IvfQuick | compressed.Quick | None:
    """The single-query plan of ``snap``, or None where ``plan.search`` must answer."""
    from ..kernels import single

    model = snap.model
    if not graphs.is_graph(model) and any(p.offsets is not None for p in snap.parts):
        return quick_ivf.prepare(snap, metric)  # IVF or IVF-PQ lists
    parts = snap.parts
    if len(parts) != 1:
        return None
    part = parts[0]
    if part.packed is not None:  # compressed codes, scanned where no index is searched
        scanned = not graphs.is_graph(model) and part.offsets is None
        return compressed.quick_plan(part, metric) if scanned else None
    if not len(part.vectors):
        return None
    if graphs.is_graph(model):
        if part.graph is None:
            return None
        return Quick(part, metric, model.ef_search)
    if part.offsets is not None or not single.serial(*part.vectors.shape):
        return None
    return Quick(part, metric, None)


def _scratch(n: int, ef: int, width: int) -> np.ndarray:
    """This thread's buffer for single graph searches (``single.graph_scratch``), grown to
    fit. Its capacities are kept beside it as Python ints: comparing them costs less than
    reading the buffer's header (a microsecond of a query's fixed cost)."""
    got = getattr(_local, "scratch", None)
    if got is not None and n <= got[1] and ef <= got[2] and width <= got[3]:
        return got[0]
    from ..kernels import single

    old = (None, 0, 0, 0) if got is None else got
    n, ef, width = max(n, old[1]), max(ef, old[2]), max(width, old[3])
    _local.scratch = (single.graph_scratch(n, ef, width), n, ef, width)
    return _local.scratch[0]
