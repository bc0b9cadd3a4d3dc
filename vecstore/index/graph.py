"""HNSW graph indexes: one graph per vector segment, built when the segment is written (sealed,
merged or indexed), stored in an index file beside it, and searched segment by segment.

The collection's "model" file only records the parameters (M, ef_construction, ef_search);
each segment's graph file holds its levels and neighbour lists. A graph file read from disk
is untrusted: ``open_graph`` checks every size and neighbour id before a kernel may follow
them. Parts without a graph (pending rows, segments from before the index) are scanned
exactly into the same heaps. Uses kernels (lazily) and storage's errors; never touches SQL.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptStoreError
from ..storage.arrays import graph_problem
from . import costs, specs

KIND = "hnsw"
#: A filter keeping at most this many rows of a segment is scanned exactly there; a graph
#: search under a filter scores about VISITS_PER_EF * ef / selectivity rows (index/costs.py).
EXACT_FILTER_ROWS = costs.EXACT_FILTER_ROWS
VISITS_PER_EF = costs.VISITS_PER_EF

_local = threading.local()


@dataclass(frozen=True, eq=False)
class GraphModel:
    """The parameters every segment graph of a collection is built and searched with."""

    file: str
    kind: str
    metric: str
    M: int
    ef_construction: int
    ef_search: int
    train_rows: int
    train_err: float = 0.0

    @classmethod
    def from_file(cls, file: str, meta: dict, arrays: dict[str, np.ndarray]) -> GraphModel:
        try:
            M, efc, ef = (int(meta[key]) for key in ("M", "ef_construction", "ef_search"))
            metric = meta["metric"]
            rows = int(meta["train_rows"])
        except (KeyError, TypeError, ValueError):
            raise CorruptStoreError(f"index file {file}: unreadable HNSW parameters") from None
        if not (2 <= M <= 128 and 1 <= efc <= 4096 and 1 <= ef <= 65536) or metric not in (
            "cosine",
            "dot",
            "l2",
        ):
            raise CorruptStoreError(f"index file {file}: HNSW parameters out of range")
        return cls(file, KIND, metric, M, efc, ef, rows)


def is_graph(model) -> bool:
    """Whether a loaded model (``ivf.Model`` or ``GraphModel``) is an HNSW one."""
    return model is not None and model.kind == KIND


def model_file(spec: specs.HNSW, metric: str, nrows: int) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and record of a collection's HNSW model file."""
    ef = spec.ef_search or specs.DEFAULT_EF_SEARCH
    params = np.array([spec.M, spec.ef_construction, ef], dtype=np.int64)
    meta = {
        "kind": KIND,
        "metric": metric,
        "M": spec.M,
        "ef_construction": spec.ef_construction,
        "ef_search": ef,
        "train_rows": int(nrows),
        "train_err": 0.0,
    }
    return {"params": params}, meta


def build(model: GraphModel, vectors: np.ndarray, norms: np.ndarray, *, seed: int = 0):
    """The arrays and record of the graph file of a segment's rows (in segment order)."""
    from ..kernels import graph as kg

    g = kg.build(vectors, norms, model.metric, model.M, model.ef_construction, seed=seed)
    arrays = {"levels": g["levels"], "L0": g["L0"], "UP": g["UP"]}
    meta = {"kind": KIND, "entry": int(g["entry"]), "top": int(g["top"]), "M": model.M}
    return arrays, meta


@dataclass(frozen=True, eq=False)
class Graph:
    """A segment's graph, checked, with the per-row score terms its search needs."""

    levels: np.ndarray  # uint8 (n,)
    L0: np.ndarray  # int32 (n, 2M)
    UP: np.ndarray  # int32 (nu * H, M)
    entry: int
    top: int
    slot: np.ndarray  # int32 (n,)
    H: int
    w: np.ndarray  # float32 (n,)
    c: np.ndarray  # float32 (n,)
    metric: str  # the score terms w/c are this metric's

    @functools.cached_property
    def walk(self) -> np.ndarray:
        """Layer 0 as a search walks it (``kernels.graph.walk_block``: each node's links and
        its neighbours' score terms in one row), built in memory on the first kernel search
        that needs it and kept with the graph (no file holds it). Two threads may both build
        it at once; either result is the same array, and one is kept."""
        from ..kernels import graph as kg

        return kg.walk_block(self.L0, self.w, self.c, self.metric)


def open_graph(
    name: str, model: GraphModel, arrays: dict, meta: dict, vectors: np.ndarray, norms: np.ndarray
) -> Graph:
    """Check a graph file's arrays against its segment and model, then wrap them.

    Every neighbour id must name a row of the segment (or be -1), and every link on layer
    l >= 1 must lead to a node whose level reaches l, so no kernel can read out of bounds;
    anything else raises ``CorruptStoreError``. Loads no Numba kernel (``blas_graph``'s
    terms), so a process's first query can walk the graph before the kernels load."""
    from ..kernels import blas_graph as kg

    problem = graph_problem(arrays, meta, len(vectors), model.M)
    if problem is not None:
        raise CorruptStoreError(f"graph file {name} is corrupt: {problem}")
    levels, L0, UP = arrays["levels"], arrays["L0"], arrays["UP"]
    slot, H2 = kg.upper_slots(levels)
    w, c = kg.row_terms(norms, model.metric)
    entry, top = int(meta["entry"]), int(meta["top"])
    return Graph(levels, L0, UP, entry, top, slot, H2, w, c, model.metric)


def _scratch(n: int, ef: int, width: int):
    """This thread's search buffers, grown to fit (one set per thread, reused by queries)."""
    from ..kernels import graph as kg

    s = getattr(_local, "scratch", None)
    if s is None or s.n < n or s.ef < ef or s.width < width:
        s = kg.Scratch(
            max(n, s.n if s else 0), max(ef, s.ef if s else 0), max(width, s.width if s else 0)
        )
        _local.scratch = s
    return s


def exact_is_cheaper(n_allowed: int, n: int, ef: int) -> bool:
    """Whether scanning a segment's ``n_allowed`` kept rows (of ``n``) beats searching its
    graph under the filter, which scores about VISITS_PER_EF * ef / selectivity rows
    (``costs.graph_cost``; the dimension cancels out)."""
    estimates = [costs.scan_cost(n_allowed, 1), costs.graph_cost(n_allowed, n, 1, ef=ef)]
    return costs.cheapest(estimates, n_allowed).plan == "filtered scan"


def search(
    parts: Sequence,
    xq: np.ndarray,
    metric: str,
    k: int,
    ef: int,
    allowed: Sequence[np.ndarray] | None = None,
    exact_only: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k over the parts: graph search where a part has a graph (``part.graph``), exact
    elsewhere, into shared heaps. Returns ``(D, I, counts)`` as ``exact.finish``, labels being
    positions in the concatenation of the parts.

    ``allowed`` as for ``plan.search``. A graph search that finds fewer than
    ``min(k, kept rows)`` (a filter whose rows the beam did not reach) is redone exactly on
    that part, so a filtered query always returns ``min(k, matches)`` rows.
    """
    from ..kernels import exact
    from ..kernels import graph as kg

    nq = xq.shape[0]
    ef = max(ef, k)
    D, I = exact.new_heaps(nq, k)
    base = 0
    for i, part in enumerate(parts):
        n = part.vectors.shape[0]
        rows = None if allowed is None else allowed[i]
        g = part.graph
        if n == 0 or (rows is not None and rows.size == 0):
            base += n
            continue
        if g is not None and rows is not None and nq == 1 and exact_is_cheaper(rows.size, n, ef):
            kg.scan_rows_into(xq, metric, part.vectors, g.w, g.c, rows, D, I, base=base)
            base += n
            continue
        if g is None or (rows is not None and exact_is_cheaper(rows.size, n, ef)):
            mask = part.alive if rows is None else None
            exact.search_into(xq, part.vectors, part.norms, metric, D, I, rows=rows, mask=mask,
                              base=base)  # fmt: skip
            base += n
            continue
        if rows is None:
            mask = part.alive
        elif getattr(allowed, "mask", None) is not None:  # kept with a cached filter
            mask = allowed.mask(i, n, part.alive)
        else:
            mask = np.zeros(n, dtype=np.bool_)
            mask[rows] = True
        scratch = _scratch(n, ef, g.L0.shape[1]) if nq == 1 else None
        found = kg.search_into(xq, metric, part.vectors, g.w, g.c, (g.slot, g.H), g.L0, g.UP,
                               g.entry, g.top, ef, D, I, mask=mask, base=base,
                               scratch=scratch, walk=g.walk)  # fmt: skip
        if (found < k).any():
            if rows is not None:
                matches = rows.size
            else:
                matches = n if mask is None else int(np.count_nonzero(mask))
            for q in np.flatnonzero(found < min(k, matches)):
                _redo_exactly(xq, q, part, metric, rows, mask if rows is None else None, base, D, I)
        base += n
    return exact.finish(D, I, xq, metric)


def _redo_exactly(xq, q, part, metric, rows, mask, base, D, I) -> None:
    """Drop query q's hits from this part from its heap, then scan the part exactly."""
    from ..kernels import exact

    n = part.vectors.shape[0]
    mine = (I[q] >= base) & (I[q] < base + n)
    D[q, mine] = -np.inf
    I[q, mine] = -1
    order = np.argsort(D[q], kind="stable")  # ascending: a valid min-heap
    D[q] = D[q][order]
    I[q] = I[q][order]
    exact.search_into(xq[q : q + 1], part.vectors, part.norms, metric, D[q : q + 1],
                      I[q : q + 1], rows=rows, mask=mask, base=base)  # fmt: skip
