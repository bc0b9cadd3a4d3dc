"""The single-query plan of an IVF or IVF-PQ snapshot (``quick.prepare`` hands it out): one
unfiltered vector query answered by one compiled call (``kernels/single_ivf.py``) from the
query vector to the final scores and rids, plus one exact scan per block of rows the index
does not cover yet (pending rows, segments older than the model).

One indexed segment (tombstones masked) whose lists are scanned on the calling thread is
answered in that one call; several segments, or lists large enough for threads, take a call
per step as ``ivf.search`` does for one query, without its Python around them. 4-bit
fast-scan codes and collections big enough that re-ranking must count the pages it maps in
have no plan, and a query that would have to widen its probe is handed back: ``plan.search``
answers those, with the same rows. Uses kernels lazily; no SQL.
"""

from __future__ import annotations

import numpy as np

from . import cold, flat, ivf
from .pages import release_compiler_pages
from .plan import MAPPED_OK_BYTES


class IvfQuick:
    """A snapshot's single-query plan over its IVF segments (``prepare`` makes one)."""

    def __init__(self, indexed: list[flat.Part], others: list[flat.Part], model: ivf.Model,
                 metric: str):  # fmt: skip
        from ..kernels import adc, exact, single_ivf

        self.kernels = single_ivf  # imported once, not per query
        self.adc = adc
        self.exact = exact
        self.model = model
        self.metric = metric
        self.code = ("cosine", "dot", "l2").index(metric)
        self.pq = model.codebooks.size > 0
        # labels as ``ivf.search`` gives them: the indexed segments' rows, then the blocks
        # scanned exactly (pending rows, segments older than the model), in snapshot order
        self.segments, base = [], 0
        for p in indexed:
            mask = np.zeros(0, dtype=np.bool_) if p.alive is None else p.alive
            self.segments.append((p, mask, p.alive is not None, base))
            base += len(p.vectors)
        self.others, seen = [], 0
        for p in others:
            if len(p.vectors):
                self.others.append((p.vectors, p.norms, p.alive, base))
                seen += len(p.vectors) if p.alive is None else int(np.count_nonzero(p.alive))
            base += len(p.vectors)
        self.seen = seen  # rows the exact blocks offer: ``ivf.search`` counts them as seen
        parts = indexed + others
        self.rids = parts[0].rids if len(parts) == 1 else np.concatenate([p.rids for p in parts])

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
        model = self.model
        nlist = model.nlist
        width = max(1, min(nlist, nprobe or model.nprobe))
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
        segments = self.segments
        p, mask, has_mask, _ = segments[0]
        if len(segments) == 1 and not self._threaded(p, width):
            scores = single.ivf_one(xq, self.code, model.centroids_i8, model.centroid_scales,
                                    model.centroid_norms2, model.codebooks_t, width, p.offsets,
                                    p.codes, p.vectors, p.norms, mask, has_mask, self.seen, kc,
                                    D[0], I[0], self.rids, R, lo, hi)  # fmt: skip
        else:
            scores = self._steps(xq, width, kc, D[0], I[0], R, lo, hi)
            if scores is None:
                return None
        if not len(scores):
            status = R[0]
            if status == single.BAD_QUERY:
                return False
            if status == single.TOO_FEW:
                return None
        return scores, R[: len(scores)].tolist()

    def _threaded(self, part: flat.Part, width: int) -> bool:
        """Whether ``ivf.search`` splits this segment's scan over threads."""
        return (int(part.offsets[-1]) * width) // self.model.nlist >= ivf.SERIAL_SCAN_ROWS

    def _steps(self, xq, width, kc, D, I, R, lo, hi):
        """``ivf_one`` for several segments (or a scan split over threads), a call per step
        as ``ivf.search`` takes them (adc.py's wrappers), then ``finish_one``; None when the
        probed lists hold fewer than kc searchable rows (``ivf.search`` would probe more)."""
        adc, model = self.adc, self.model
        qn, qc, order, T = adc.probe_one(xq[0], self.metric, model.centroids_i8,
                                         model.centroid_scales, model.centroid_norms2,
                                         model.codebooks_t, width)  # fmt: skip
        CD, CI = (np.full(kc, -np.inf, dtype=np.float32), np.full(kc, -1, dtype=np.int64))
        if not self.pq:
            CD, CI = D, I
        code = self.code
        total = self.seen
        for p, _, has_mask, base in self.segments:
            scan = adc.scan_lists_threaded if self._threaded(p, width) else adc.scan_lists
            total += scan(qn, qc, code, order, 0, width, p.offsets, p.codes, T, p.vectors,
                          p.norms, p.alive if has_mask else None, base, CD, CI)  # fmt: skip
        if total < kc and width < model.nlist:
            return None
        if self.pq:
            for p, _, _, base in self.segments:
                adc.rerank_one(qn, code, p.vectors, p.norms, CI, base, D, I)
        return self.kernels.finish_one(D, I, code, xq, self.rids, R, lo, hi)


def prepare(snap: flat.Snapshot, metric: str) -> IvfQuick | None:
    """The single-query plan of ``snap`` (with an IVF or IVF-PQ model), or None where
    ``plan.search`` must answer."""
    model = snap.model
    indexed = [p for p in snap.parts if p.offsets is not None]
    if not indexed or any(p.packed is not None for p in snap.parts):
        return None
    if model.codebooks.size:
        if any(snap.fast_layout(p) is not None for p in indexed):
            return None  # 4-bit codes: fastscan.py's kernels
        if sum(p.vectors.nbytes for p in snap.parts if p.release is not None) > MAPPED_OK_BYTES:
            return None  # re-ranking there counts the pages it maps in (plan.ResidentPages)
    others = [p for p in snap.parts if p.offsets is None]
    return IvfQuick(indexed, others, model, metric)
