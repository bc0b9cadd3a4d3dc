"""Query planning over a snapshot: exact or ANN, and how a filter is applied.

Without a trained model, or with ``exact=True``, every query is exact. With one, indexed
segments are probed through their inverted lists and the rest (pending rows, segments from
before training) are scanned exactly into the same heaps. A filter that keeps few rows is
served by an exact scan of just those rows; a broader one becomes a mask on the probed lists,
with more lists probed until enough matches are seen. Uses kernels lazily; no SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import cold, compressed, costs, flat, ivf
from . import graph as graphs
from .pages import release_compiler_pages
from .trace import Trace

#: A filter keeping at most this many rows is always scanned exactly.
EXACT_FILTER_ROWS = costs.EXACT_FILTER_ROWS
#: IVF-PQ re-ranking reads a few random rows per query. A collection whose segments hold at
#: most this many bytes of vectors keeps what it maps (at most that much; releasing and
#: faulting the pages back cost about 0.2 ms a query at 100k x 384, a fifth of its time) ...
MAPPED_OK_BYTES = 256 << 20
#: ... a larger one releases its segments' pages once this many bytes may have been mapped
#: in by re-ranking, so the float32 vectors stay on disk (in the page cache), not resident.
RERANK_RESIDENT_BYTES = 16 << 20
# What one random row read may map in: a fault maps the whole page-cache folio it lands in
# (Linux 6.18), and folios of files written in large blocks reach 2 MiB (about 0.5 MiB per
# random row measured on ext4), far beyond the 64 KiB of classic fault-around.
FAULT_AROUND = 2 << 20


def search(
    snap: flat.Snapshot,
    xq: np.ndarray,
    metric: str,
    k: int,
    allowed: Sequence[np.ndarray] | None = None,
    *,
    nprobe: int | None = None,
    refine: int | None = None,
    exact: bool = False,
    pages: ResidentPages | None = None,
    trace: Trace | None = None,
    ef: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k over a snapshot: ``(scores, rids, counts)`` as ``flat.search`` returns them.

    ``allowed`` is, per part, the sorted positions of rows a filter keeps (see
    ``Snapshot.allowed_rids``), or None for no filter. ``pages`` bounds what IVF-PQ
    re-ranking keeps mapped of the collection (None: no bound). ``trace`` records the plan
    chosen, why, and what it touched (``Collection.explain``). ``ef`` is the HNSW beam
    width (None: the index's own).

    Until the kernels have loaded in this process (``cold``), a query is answered with NumPy
    and BLAS (``cold_search``: the same plan, the same rows), and the first one starts
    loading them in the background. Compressed codes are scanned so too (``compressed``
    with ``engine="numpy"``: the same candidates, re-ranked in float32 by BLAS); a filtered
    query on them waits for the kernels.

    Segments the snapshot still has to verify (``Snapshot.verify``) are verified before any
    result is returned: by the exact scan as it reads them on the NumPy path (each block
    checksummed, then scored while in cache), else first.
    """
    coded = not exact and any(p.packed is not None for p in snap.parts)
    exact_scan = allowed is None and (exact or snap.model is None or not any(
        p.offsets is not None or p.graph is not None for p in snap.parts
    ))  # fmt: skip
    # compressed codes the exact scan reads (no index to search): their candidates with
    # NumPy until the kernels have loaded, the same plan (BLAS over the float32 rows would
    # answer exactly: other rows than the codes' candidates may give)
    if coded and exact_scan and not graphs.is_graph(snap.model) and not cold.ready():
        verified = cold.verifying(snap)
        try:
            if trace is not None:
                why = _why_exact(snap, exact, allowed is not None)
                reranked = _reranked(snap.parts, allowed, k, refine, len(xq))
                _note_exact(trace, snap, allowed, why, engine="numpy", reranked=reranked)
            found = _scan(snap.parts, xq, metric, k, allowed, refine, engine="numpy")
        except Exception:
            verified()  # a damaged segment is reported as such
            raise
        verified()
        cold.warm(lambda: kernel_search(snap, xq[:1].copy(), metric, k, allowed, refine=refine))
        snap.verify()
        return found
    if not coded and not cold.ready():
        # a full exact scan verifies segments as it reads them; other plans read a few
        # rows, and verify the segments meanwhile on another thread
        verified = (lambda: None) if exact_scan else cold.verifying(snap)
        try:
            found = cold_search(
                snap, xq, metric, k, allowed, nprobe=nprobe, refine=refine, exact=exact,
                trace=trace, ef=ef,
            )  # fmt: skip
        except Exception:
            verified()  # a damaged segment is reported as such
            raise
        verified()
        cold.warm(
            lambda: kernel_search(
                snap,
                xq[:1].copy(),
                metric,
                k,
                allowed,
                nprobe=nprobe,
                refine=refine,
                exact=exact,
                ef=ef,
            )
        )
        snap.verify()  # a no-op: every path above verified what it read
        return found
    snap.verify()
    release_compiler_pages()  # LLVM pages the previous query's kernel loads left mapped
    return kernel_search(
        snap,
        xq,
        metric,
        k,
        allowed,
        nprobe=nprobe,
        refine=refine,
        exact=exact,
        pages=pages,
        trace=trace,
        ef=ef,
    )


def kernel_search(
    snap: flat.Snapshot,
    xq: np.ndarray,
    metric: str,
    k: int,
    allowed: Sequence[np.ndarray] | None = None,
    *,
    nprobe: int | None = None,
    refine: int | None = None,
    exact: bool = False,
    pages: ResidentPages | None = None,
    trace: Trace | None = None,
    ef: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``search`` through the Numba kernels, whether they have loaded yet or not."""
    parts = snap.parts
    model = snap.model
    if graphs.is_graph(model) and not exact:
        if trace is not None:
            _note_graph(trace, snap, allowed, ef or model.ef_search)
        D, I, counts = graphs.search(parts, xq, metric, k, ef or model.ef_search, allowed)
        return D, flat.labels_to_rids(I, [p.rids for p in parts]), counts
    indexed = [i for i, p in enumerate(parts) if p.offsets is not None]
    if exact:  # exact=True reads the float32 originals, even in a compressed collection
        if trace is not None:
            _note_exact(trace, snap, allowed, _why_exact(snap, exact, allowed is not None))
        return flat.search(parts, xq, metric, k, allowed)
    if model is None or not indexed:
        if trace is not None:
            why = _why_exact(snap, exact, allowed is not None)
            reranked = _reranked(parts, allowed, k, refine, len(xq))
            _note_exact(trace, snap, allowed, why, reranked=reranked)
        return _scan(parts, xq, metric, k, allowed, refine)
    if allowed is not None:
        choice, nprobe = filtered_plan(snap, allowed, k, nprobe, refine)
        if choice.plan == "filtered scan":
            if trace is not None:
                why = _why_filtered_scan(allowed, choice)
                reranked = _reranked(parts, allowed, k, None, len(xq))
                _note_exact(trace, snap, allowed, why, reranked=reranked)
            return _scan(parts, xq, metric, k, allowed, None)
    if trace is not None:
        _note_ann(trace, snap, xq, metric, k, allowed, indexed, nprobe, refine)
    others = [i for i in range(len(parts)) if parts[i].offsets is None]
    kept = None
    if allowed is not None and len(xq) == 1:
        kept = [kept_lists(allowed, i, parts[i]) for i in indexed]
    D, I, counts = ivf.search(
        [(parts[i].vectors, parts[i].norms, parts[i].offsets, parts[i].codes) for i in indexed],
        model,
        xq,
        metric,
        k,
        nprobe=nprobe,
        refine=refine,
        masks=_ivf_masks(parts, indexed, allowed),
        exact_parts=_exact_parts(parts, others, allowed),
        layouts=[snap.fast_layout(parts[i]) for i in indexed],
        kept=kept,
    )
    if model.codebooks.size and pages is not None:
        pages.charge([parts[i] for i in indexed], len(xq) * k * (refine or model.refine))
    return D, flat.labels_to_rids(I, [parts[i].rids for i in indexed + others]), counts


def cold_search(
    snap: flat.Snapshot,
    xq: np.ndarray,
    metric: str,
    k: int,
    allowed: Sequence[np.ndarray] | None = None,
    *,
    nprobe: int | None = None,
    refine: int | None = None,
    exact: bool = False,
    trace: Trace | None = None,
    ef: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kernel_search``'s plan run with NumPy and BLAS (``cold``), without loading the
    kernels: exact scans, IVF and IVF-PQ probes, HNSW walks. Not for compressed codes."""
    parts = snap.parts
    model = snap.model
    if graphs.is_graph(model) and not exact:
        if trace is not None:
            _note_graph(trace, snap, allowed, ef or model.ef_search, engine="numpy")
        D, I, counts = cold.search_graph(parts, xq, metric, k, ef or model.ef_search, allowed)
        return D, flat.labels_to_rids(I, [p.rids for p in parts]), counts
    indexed = [i for i, p in enumerate(parts) if p.offsets is not None]
    choice = None
    if not exact and model is not None and indexed and allowed is not None:
        choice, nprobe = filtered_plan(snap, allowed, k, nprobe, refine)  # as the kernels
    cheaper = choice is not None and choice.plan == "filtered scan"
    if exact or model is None or not indexed or cheaper:
        if trace is not None:
            why = _why_exact(snap, exact, allowed is not None)
            if cheaper:
                why = _why_filtered_scan(allowed, choice)
            _note_exact(trace, snap, allowed, why, engine="numpy")
        return cold.search(parts, xq, metric, k, allowed)
    if trace is not None:
        _note_ann(trace, snap, xq, metric, k, allowed, indexed, nprobe, refine, engine="numpy")
    others = [i for i in range(len(parts)) if parts[i].offsets is None]
    D, I, counts = cold.search_ivf(
        [(parts[i].vectors, parts[i].norms, parts[i].offsets, parts[i].codes) for i in indexed],
        model,
        xq,
        metric,
        k,
        nprobe=nprobe,
        refine=refine,
        masks=_ivf_masks(parts, indexed, allowed),
        exact_parts=_exact_parts(parts, others, allowed),
    )
    return D, flat.labels_to_rids(I, [parts[i].rids for i in indexed + others]), counts


def _ivf_masks(parts, indexed, allowed):
    """Per indexed part, its searchable rows: live and kept by the filter (None: all)."""
    if allowed is None:
        return [parts[i].alive for i in indexed]
    return [kept_mask(allowed, i, parts[i]) for i in indexed]


def _why_filtered_scan(allowed, choice) -> str:
    return (
        f"the filter keeps {sum(len(a) for a in allowed):,} rows: scanning them "
        f"reads less than probing the index (estimated {choice.cost:,.0f} values "
        f"read, {choice.detail}; or they are at most {EXACT_FILTER_ROWS:,})"
    )


def _exact_parts(parts, others, allowed):
    """The parts without lists as ``ivf.search`` scans them exactly."""
    out = []
    for i in others:
        p = parts[i]
        rows = None if allowed is None else allowed[i]
        out.append((p.vectors, p.norms, rows, p.alive if rows is None else None))
    return out


def _scan(parts, xq, metric, k, allowed, oversample, *, engine="numba"):
    """The exact scan: of the compressed codes, re-ranked from float32 (``compressed``),
    where the segments have codes, else of the float32 vectors."""
    codes = [p.packed for p in parts]
    if not any(c is not None for c in codes):
        return flat.search(parts, xq, metric, k, allowed)
    return compressed.search(
        parts, codes, xq, metric, k, allowed, oversample=oversample, engine=engine
    )


def _why_exact(snap: flat.Snapshot, exact: bool, filtered: bool) -> str:
    if exact:
        why = "exact=True bypasses the index"
    elif snap.model is None:
        why = "the collection has no trained ANN index (Flat, or too few rows to train yet)"
    else:
        why = "no segment is indexed yet: every row is pending or older than the model"
    return why + ("; only the rows the filter keeps are scored" if filtered else "")


def _live(part: flat.Part) -> int:
    return len(part.vectors) if part.alive is None else int(part.alive.sum())


def _reranked(parts, allowed, k: int, oversample: int | None, nq: int) -> int:
    """Rows the scan of compressed codes re-ranks from float32 for ``nq`` queries: each coded
    segment's candidates (``compressed.oversampled``), at most the rows it may return."""
    per_query = 0
    for i, p in enumerate(parts):
        if p.packed is not None:
            rows = _live(p) if allowed is None else len(allowed[i])
            per_query += min(compressed.oversampled(p.packed.kind, k, oversample), rows)
    return per_query * nq


def _note_exact(
    trace: Trace, snap, allowed, why: str, *, engine: str = "numba", reranked: int = 0
) -> None:
    parts = snap.parts
    rows = sum(_live(p) for p in parts) if allowed is None else sum(len(a) for a in allowed)
    if not why.startswith("exact=True") and any(p.packed is not None for p in parts):
        why += "; the segments' compressed codes are scanned and the best re-ranked in float32"
    trace.note(
        plan="filtered scan" if allowed is not None else "exact",
        reason=why,
        engine=engine,
        segments=[p.seg for p in parts if p.seg is not None],
        pending_rows=sum(len(p.vectors) for p in parts if p.seg is None),
        candidates_scored=rows,
        rows_reranked=reranked,
    )


def _note_graph(trace: Trace, snap, allowed, ef: int, *, engine: str = "numba") -> None:
    """The HNSW plan's facts: the graphs searched and the rows scanned exactly beside them
    (pending rows, and segments written before the graphs)."""
    parts = snap.parts
    searched = [p for p in parts if p.graph is not None]
    others = [p for p in parts if p.graph is None]
    why = f"the collection has an HNSW index: {len(searched)} segment graph(s), beam width {ef}"
    if allowed is not None:
        kept = sum(len(a) for a in allowed)
        why += (
            f"; the filter keeps {kept:,} rows: each segment scans its kept rows when that "
            "is cheaper, else searches its graph skipping rows the filter drops"
        )
    trace.note(
        plan="HNSW",
        reason=why,
        engine=engine,
        segments=[p.seg for p in parts if p.seg is not None],
        graph_segments=[p.seg for p in searched],
        pending_rows=sum(len(p.vectors) for p in parts if p.seg is None),
        ef=int(ef),
        rows_scanned_exactly=sum(_live(p) for p in others),
    )


def _note_ann(
    trace: Trace, snap, xq, metric, k, allowed, indexed, nprobe, refine, *, engine: str = "numba"
) -> None:
    """The IVF plan's facts: the lists the first query probes (found as the kernels find
    them: the nprobe nearest centroids) and the rows they hold."""
    model, parts = snap.model, snap.parts
    pq = model.codebooks.size > 0
    probe = min(model.nlist, nprobe or model.nprobe)
    c = model.centroids
    q = xq[0]
    if metric == "l2":
        dist = np.einsum("ij,ij->i", c, c) - 2 * (c @ q)
    else:
        dist = -(c @ q)
    lists = np.argsort(dist, kind="stable")[:probe]
    in_lists = sum(
        int((parts[i].offsets[lists + 1] - parts[i].offsets[lists]).sum()) for i in indexed
    )
    others = [p for i, p in enumerate(parts) if i not in indexed]
    exact_rows = sum(_live(p) for p in others)
    what = "IVF-PQ" if pq else "IVF"
    why = f"the collection has an {what} index over {len(indexed)} segment(s)"
    if allowed is not None:
        kept = sum(len(a) for a in allowed)
        why += f"; the filter keeps {kept:,} rows, too many to scan them more cheaply"
        why += (
            " (a mask on the probed lists, the default nprobe widened by 1/sqrt(selectivity)"
            " unless one is given; more lists are probed until k rows match)"
        )
    trace.note(
        plan="IVF-PQ" if pq else "IVF",
        reason=why,
        engine=engine,
        segments=[p.seg for p in parts if p.seg is not None],
        indexed_segments=[parts[i].seg for i in indexed],
        pending_rows=sum(len(p.vectors) for p in parts if p.seg is None),
        nlist=model.nlist,
        lists_probed=int(probe),
        candidates_scored=in_lists + exact_rows,
        rows_scanned_exactly=exact_rows,
        rows_reranked=k * (refine or model.refine) if pq else 0,
    )


class ResidentPages:
    """How much of a collection's mapped segments IVF-PQ re-ranking may have faulted into
    memory since their pages were last released. One per collection, shared by its
    snapshots: the segments' mappings outlive any one snapshot."""

    def __init__(self) -> None:
        self.rows = 0  # re-ranked through the maps since the last release

    def charge(self, parts: Sequence[flat.Part], rows: int) -> None:
        """Count ``rows`` re-ranked from ``parts``; release every segment's pages once that
        may have mapped ``RERANK_RESIDENT_BYTES`` in a collection larger than
        ``MAPPED_OK_BYTES``."""
        big = [p for p in parts if p.release is not None]
        if sum(p.vectors.nbytes for p in big) <= MAPPED_OK_BYTES:
            return
        self.rows += rows
        if self.rows * FAULT_AROUND > RERANK_RESIDENT_BYTES:
            for part in big:
                part.release()
            self.rows = 0


def filtered_plan(
    snap, allowed, k: int, nprobe: int | None, refine: int | None
) -> tuple[costs.Estimate, int]:
    """The cheaper of scanning the rows a filter keeps and probing the IVF index with the
    filter as a mask (``costs``), and the lists the probe would take: the nprobe asked for,
    or the index's default widened for the filter's selectivity (``costs.filtered_nprobe``)."""
    model = snap.model
    n_allowed = sum(len(a) for a in allowed)
    n_total = max(1, sum(_live(p) for p in snap.parts))
    d = model.centroids.shape[1]
    m = model.codebooks.shape[0]
    share = costs.selectivity(n_allowed, n_total)
    probe = nprobe or costs.filtered_nprobe(model.nprobe, model.nlist, share)
    estimates = [
        costs.scan_cost(n_allowed, d),
        costs.index_cost(
            n_allowed, n_total, d, nlist=model.nlist, nprobe=probe, m=m, k=k,
            refine=(refine or model.refine) if m else 1,
        ),
    ]  # fmt: skip
    return costs.cheapest(estimates, n_allowed), probe


def kept_lists(allowed, i: int, part: flat.Part) -> tuple[np.ndarray, np.ndarray]:
    """Part ``i``'s kept rows and, per list, where its share of them starts and ends
    (``ivf.search``'s ``kept``): from ``allowed``'s own cache when it keeps one."""
    cached = getattr(allowed, "lists", None)
    if cached is not None:
        return cached(i, part.offsets)
    rows = allowed[i]
    return rows, np.searchsorted(rows, part.offsets).astype(np.int64)


def kept_mask(allowed, i: int, part: flat.Part) -> np.ndarray:
    """A bool mask of part ``i``'s rows the filter keeps (and that are alive): from
    ``allowed``'s own cache when it keeps one (``filtercache.Kept``), else built here."""
    cached = getattr(allowed, "mask", None)
    if cached is not None:
        return cached(i, len(part.vectors), part.alive)
    keep = np.zeros(len(part.vectors), dtype=bool)
    keep[allowed[i]] = True
    return keep if part.alive is None else keep & part.alive
