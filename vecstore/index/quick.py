"""The single-query plan of a snapshot: how one unfiltered vector query on a snapshot that is
kept between queries (``store.Fresh``) is answered in one compiled call, from the query
vector to the final scores and catalog row ids (``kernels/single.py``).

It covers the common shapes: one block of float32 rows scanned exactly on the calling thread
(a small collection), or one segment with its HNSW graph. Anything else (several blocks, IVF,
compressed codes, a block large enough for threads, kernels not loaded yet) has no plan and
is answered by ``plan.search``, as is a graph search that meets tombstones and finds fewer
rows than asked for. Uses kernels lazily; no SQL.
"""

from __future__ import annotations

import threading

import numpy as np

from . import cold, compressed, flat
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

    def search(self, xq: np.ndarray, k: int, ef: int | None, lo: float, hi: float):
        """``(scores, rids)`` of one query ``xq`` float32 (1, d): float32 (c,) best first
        and a list of c rids; ``None`` when the plan cannot answer it (take ``plan.search``);
        ``False`` when ``xq`` has a component outside [lo, hi] (or NaN, inf)."""
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
        else:
            g = part.graph
            n = len(part.vectors)
            ef = max(ef or self.graph_ef, k)
            s = _scratch(n, ef, g.L0.shape[1])
            scores = single.graph_one(xq, self.code, part.vectors, g.w, g.c, g.L0, g.UP, g.slot,
                                      g.H, g.entry, g.top, ef, self.mask, self.has_mask,
                                      min(k, self.live), s.VIS, s.ST, s.CD, s.CI, s.WD, s.WI,
                                      s.NB, part.rids, R, lo, hi)  # fmt: skip
        if not len(scores) and k:
            status = R[0]
            if status == single.BAD_QUERY:
                return False
            if status == single.TOO_FEW:
                return None
        return scores, R[: len(scores)].tolist()


def prepare(snap: flat.Snapshot, metric: str) -> Quick | None:
    """The single-query plan of ``snap``, or None where ``plan.search`` must answer."""
    from ..kernels import single

    parts = snap.parts
    if len(parts) != 1:
        return None
    part = parts[0]
    model = snap.model
    if part.packed is not None:  # compressed codes, scanned where no index is searched
        scanned = not graphs.is_graph(model) and (model is None or part.offsets is None)
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


class _Scratch:
    """One thread's buffers for single graph searches (graph.py's layout), grown to fit."""

    def __init__(self, n: int, ef: int, width: int):
        self.n, self.ef, self.width = n, ef, width
        self.VIS = np.zeros(max(n, 1), dtype=np.int32)
        self.CD = np.empty(max(n, 1) + 1, dtype=np.float32)
        self.CI = np.empty(max(n, 1) + 1, dtype=np.int32)
        self.WD = np.empty(ef + 1, dtype=np.float32)
        self.WI = np.empty(ef + 1, dtype=np.int32)
        self.NB = np.empty(width, dtype=np.int32)
        self.ST = np.zeros(1, dtype=np.int64)


def _scratch(n: int, ef: int, width: int) -> _Scratch:
    s = getattr(_local, "scratch", None)
    if s is None or s.n < n or s.ef < ef or s.width < width:
        s = _Scratch(
            max(n, s.n if s else 0), max(ef, s.ef if s else 0), max(width, s.width if s else 0)
        )
        _local.scratch = s
    return s
