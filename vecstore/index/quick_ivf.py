"""The single-query plan of an IVF or IVF-PQ snapshot (``quick.prepare`` hands it out): one
unfiltered vector query answered by one compiled call (``kernels/single_ivf.py``) from the
query vector to the final scores and rids, plus one exact scan per block of rows the index
does not cover yet (pending rows, segments older than the model).

It covers one indexed segment (tombstones masked) with its lists scanned on the calling
thread, as ``ivf.search`` scans them for one query. Anything else (several indexed segments,
4-bit fast-scan codes, lists large enough for threads, a collection big enough that
re-ranking must count the pages it maps in) has no plan, and a query that would have to
widen its probe is handed back: ``plan.search`` answers those, with the same rows. Uses
kernels lazily; no SQL.
"""

from __future__ import annotations

import numpy as np

from . import cold, flat, ivf
from .pages import release_compiler_pages
from .plan import MAPPED_OK_BYTES


class IvfQuick:
    """A snapshot's single-query plan over one IVF segment (``prepare`` makes one)."""

    def __init__(self, part: flat.Part, exact_parts: list[flat.Part], model: ivf.Model,
                 metric: str):  # fmt: skip
        from ..kernels import exact, single_ivf

        self.kernels = single_ivf  # imported once, not per query
        self.exact = exact
        self.part = part
        self.model = model
        self.metric = metric
        self.code = ("cosine", "dot", "l2").index(metric)
        self.pq = model.codebooks.size > 0
        alive = part.alive
        self.mask = np.zeros(0, dtype=np.bool_) if alive is None else alive
        self.has_mask = alive is not None
        # the blocks scanned exactly, as ``plan._exact_parts`` gives them to ``ivf.search``:
        # labels after the segment's, in the snapshot's order
        self.others = []
        base, seen = len(part.vectors), 0
        for p in exact_parts:
            if len(p.vectors):
                self.others.append((p.vectors, p.norms, p.alive, base))
                seen += len(p.vectors) if p.alive is None else int(np.count_nonzero(p.alive))
            base += len(p.vectors)
        self.seen = seen
        self.rids = (
            part.rids
            if not exact_parts
            else np.concatenate([part.rids, *[p.rids for p in exact_parts]])
        )

    def search(self, xq: np.ndarray, k: int, ef: int | None, lo: float, hi: float,
               nprobe: int | None = None):  # fmt: skip
        """``(scores, rids)`` of one query ``xq`` float32 (1, d): float32 (c,) best first
        and a list of c rids, probing ``nprobe`` lists (None: the index's); ``None`` when the
        plan cannot answer it (take ``plan.search``); ``False`` when ``xq`` has a component
        outside [lo, hi] (or NaN, inf). ``ef`` is not an IVF parameter (always None here)."""
        single = self.kernels
        release_compiler_pages()  # LLVM pages a kernel load may have left mapped
        if not cold.ready():
            return None  # plan.search answers with NumPy while the kernels load
        model, part = self.model, self.part
        nlist = model.nlist
        width = max(1, min(nlist, nprobe or model.nprobe))
        offsets = part.offsets
        if (int(offsets[-1]) * width) // nlist >= ivf.SERIAL_SCAN_ROWS:
            return None  # ivf.search splits this scan over threads
        kc = k * model.refine if self.pq else k
        D = np.empty((1, k), dtype=np.float32)
        D.fill(-np.inf)
        I = np.empty((1, k), dtype=np.int64)
        I.fill(-1)
        metric = self.metric
        for xb, norms, alive, base in self.others:
            self.exact.search_into(xq, xb, norms, metric, D, I, mask=alive, base=base)
        R = np.empty(k, dtype=np.int64)
        R[0] = 0  # not a status, whatever the kernel leaves
        scores = single.ivf_one(xq, self.code, model.centroids_i8, model.centroid_scales,
                                model.centroid_norms2, model.codebooks_t, width, offsets,
                                part.codes, part.vectors, part.norms, self.mask, self.has_mask,
                                self.seen, kc, D[0], I[0], self.rids, R, lo, hi)  # fmt: skip
        if not len(scores):
            status = R[0]
            if status == single.BAD_QUERY:
                return False
            if status == single.TOO_FEW:
                return None
        return scores, R[: len(scores)].tolist()


def prepare(snap: flat.Snapshot, metric: str) -> IvfQuick | None:
    """The single-query plan of ``snap`` (with an IVF or IVF-PQ model), or None where
    ``plan.search`` must answer."""
    model = snap.model
    indexed = [p for p in snap.parts if p.offsets is not None]
    if len(indexed) != 1:
        return None
    part = indexed[0]
    if any(p.packed is not None for p in snap.parts) or not len(part.vectors):
        return None
    if model.codebooks.size:
        if snap.fast_layout(part) is not None:
            return None  # 4-bit codes: fastscan.py's kernels
        if sum(p.vectors.nbytes for p in snap.parts if p.release is not None) > MAPPED_OK_BYTES:
            return None  # re-ranking there counts the pages it maps in (plan.ResidentPages)
    others = [p for p in snap.parts if p.offsets is None]
    return IvfQuick(part, others, model, metric)
