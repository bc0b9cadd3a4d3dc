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

from . import flat, ivf
from . import graph as graphs
from .pages import release_compiler_pages

#: A filter keeping at most this many rows is always scanned exactly.
EXACT_FILTER_ROWS = 2_000
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
    ef: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k over a snapshot: ``(scores, rids, counts)`` as ``flat.search`` returns them.

    ``allowed`` is, per part, the sorted positions of rows a filter keeps (see
    ``Snapshot.allowed_rids``), or None for no filter. ``pages`` bounds what IVF-PQ
    re-ranking keeps mapped of the collection (None: no bound). ``ef`` is the HNSW beam
    width (None: the index's own).
    """
    release_compiler_pages()  # LLVM pages the previous query's kernel loads left mapped
    parts = snap.parts
    model = snap.model
    if graphs.is_graph(model) and not exact:
        D, I, counts = graphs.search(parts, xq, metric, k, ef or model.ef_search, allowed)
        return D, flat.labels_to_rids(I, [p.rids for p in parts]), counts
    indexed = [i for i, p in enumerate(parts) if p.offsets is not None]
    if model is None or exact or not indexed:
        return flat.search(parts, xq, metric, k, allowed)
    if allowed is not None and _exact_is_cheaper(snap, allowed, k, nprobe, refine):
        return flat.search(parts, xq, metric, k, allowed)
    others = [i for i in range(len(parts)) if parts[i].offsets is None]
    masks = []
    for i in indexed:
        mask = parts[i].alive
        if allowed is not None:
            keep = np.zeros(len(parts[i].vectors), dtype=bool)
            keep[allowed[i]] = True
            mask = keep if mask is None else keep & mask
        masks.append(mask)
    exact_parts = []
    for i in others:
        p = parts[i]
        rows = None if allowed is None else allowed[i]
        exact_parts.append((p.vectors, p.norms, rows, p.alive if rows is None else None))
    D, I, counts = ivf.search(
        [(parts[i].vectors, parts[i].norms, parts[i].offsets, parts[i].codes) for i in indexed],
        model,
        xq,
        metric,
        k,
        nprobe=nprobe,
        refine=refine,
        masks=masks,
        exact_parts=exact_parts,
        layouts=[snap.fast_layout(parts[i]) for i in indexed],
    )
    if model.codebooks.size and pages is not None:
        pages.charge([parts[i] for i in indexed], len(xq) * k * (refine or model.refine))
    return D, flat.labels_to_rids(I, [parts[i].rids for i in indexed + others]), counts


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


def _exact_is_cheaper(snap, allowed, k: int, nprobe: int | None, refine: int | None) -> bool:
    """Compare the values an exact scan of the kept rows reads (rows x dim) with what probing
    reads: the rows of nprobe lists, or of as many lists as it takes to meet k x refine kept
    rows at the filter's selectivity, in bytes per row (m codes, or dim floats for IVF), plus
    the re-ranking."""
    model = snap.model
    n_allowed = sum(len(a) for a in allowed)
    if n_allowed <= EXACT_FILTER_ROWS:
        return True
    n_total = max(1, sum(len(p.vectors) for p in snap.parts))
    d = model.centroids.shape[1]
    m = model.codebooks.shape[0]
    pq = m > 0
    kc = k * (refine or model.refine) if pq else k
    probed = (nprobe or model.nprobe) / model.nlist * n_total
    rows = max(probed, kc * n_total / n_allowed)
    return n_allowed * d <= rows * (m if pq else d) + (kc * d if pq else 0)
