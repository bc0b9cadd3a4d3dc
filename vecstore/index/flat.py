"""Exact search over a consistent snapshot of a collection's segments and pending vectors.

A ``Snapshot`` is the set of vector blocks ("parts") one catalog version describes: each
published segment, mapped read-only, with a mask of its tombstones, plus the small block of
vectors still pending in the catalog. ``search`` runs the exact kernels over the parts with
shared per-query heaps. Uses kernels (imported lazily) and storage; never touches SQL itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptStoreError
from ..storage import arrays
from ..storage.arrays import ArrayFile, ArrayFileInfo, open_arrays
from ..storage.catalog import Catalog
from ..storage.segments import Segment, open_segment
from . import graph as graphs
from .ivf import Model, fast_layout

#: A part whose rids span at most this many times its rows maps rids to rows by a dense
#: array (4 bytes a rid), not a binary search (5x faster for a filter's thousand rids).
DENSE_SPAN = 4
#: Positions are put in order by marking them in a mask of the part's rows, not sorted,
#: when they are more than 1 / SORT_BY_MASK of its rows.
SORT_BY_MASK = 32
#: Up to this many labels, ``labels_to_rids`` maps them one by one.
_FEW_LABELS = 256


@dataclass(frozen=True, eq=False)
class Part:
    """One block of vectors: ``vectors`` float32 (n, d), ``norms`` (n,), ``rids`` int64 (n,).

    ``alive`` is a bool (n,) mask when some rows are tombstoned, else None. ``seg`` is the
    segment's catalog id, or None for the pending block.
    """

    seg: int | None
    vectors: np.ndarray
    norms: np.ndarray
    rids: np.ndarray
    alive: np.ndarray | None
    # With an ANN model: the rows are in list order, list L being offsets[L]:offsets[L+1],
    # and codes holds their PQ codes (n, m), m = 0 for IVF. None for unindexed parts.
    offsets: np.ndarray | None = None
    codes: np.ndarray | None = None
    # unmaps the segment's pages from the process (None for the pending block)
    release: Callable[[], None] | None = None
    # compressed codes of the rows (``compressed.Codes``) in a collection created with
    # vectors="float16" | "int8" | "binary"; None for float32 collections and pending rows
    packed: Any = None
    # reads rows (sorted int64 positions) into a new array without mapping their pages in
    # (``Segment.read_rows``; None for the pending block)
    read_rows: Callable[[np.ndarray], np.ndarray] | None = None
    # With an HNSW model: the segment's checked graph (``graph.Graph``), else None.
    graph: Any = None
    # The segment's payload checksum when it is still to verify (``segments.SegmentCheck``;
    # see ``load_snapshot(defer_checks=True)``), else None.
    check: Any = None


@dataclass(frozen=True, eq=False)
class Snapshot:
    version: int
    parts: list[Part]
    model: Model | None = None
    # pending vectors by their never-reused pending sequence number, for incremental reloads
    pending_rows: dict[int, np.ndarray] = field(default_factory=dict)
    # per segment id: (its rids array, then a look-up from rid to position, see _rid_lookup),
    # built on the first filtered query and carried over to later snapshots while it lives
    rid_index: dict[int | None, tuple] = field(default_factory=dict)
    # per segment id: (its codes array, their fast-scan layout or None), built on a segment's
    # first ANN query and carried over to later snapshots as rid_index is
    layouts: dict[int | None, tuple] = field(default_factory=dict)

    def verify(self) -> None:
        """Verify the checksums ``load_snapshot(defer_checks=True)`` left to verify (raises
        ``CorruptStoreError``); a no-op once they have passed."""
        for part in self.parts:
            if part.check is not None:
                part.check.run()

    def fast_layout(self, part: Part):
        """``part``'s codes laid out for fast-scan (``ivf.fast_layout``), or None."""
        entry = self.layouts.get(part.seg)
        if entry is None or entry[0] is not part.codes:
            blocks = fast_layout(self.model, part.offsets, part.codes)
            entry = self.layouts[part.seg] = (part.codes, blocks)
        return entry[1]

    def allowed_rids(self, rids: np.ndarray) -> list[np.ndarray]:
        """Per part, the sorted positions of the live rows among ``rids`` (sorted int64)."""
        out = []
        for part in self.parts:
            entry = self.rid_index.get(part.seg)
            if entry is None or entry[0] is not part.rids:
                entry = self.rid_index[part.seg] = (part.rids, *_rid_lookup(part.rids))
            _, lo, dense, srt, order, rising = entry
            if not len(part.rids) or not len(rids):
                out.append(np.zeros(0, dtype=np.int64))
                continue
            if dense is not None:
                a, b = np.searchsorted(rids, (lo, lo + len(dense)))
                pos = dense[rids[a:b] - lo]
                pos = pos[pos >= 0].astype(np.int64)
            else:
                j = np.minimum(np.searchsorted(srt, rids), len(srt) - 1)
                pos = order[j[srt[j] == rids]]
            if part.alive is not None:
                pos = pos[part.alive[pos]]
            if rising or len(pos) < 2:  # rids come sorted
                out.append(pos)
            elif len(pos) * SORT_BY_MASK > len(part.rids):
                # rows in list order (IVF) with many kept: marking them is O(n), a sort
                # O(m log m) (10k of 100k rows: 55 us against 250 us, measured here)
                keep = np.zeros(len(part.rids), dtype=bool)
                keep[pos] = True
                out.append(np.flatnonzero(keep).astype(np.int64, copy=False))
            else:
                out.append(np.sort(pos))
        return out

    def vectors_of(
        self, located: Sequence[tuple[int, int | None, int | None]], dim: int
    ) -> np.ndarray:
        """The stored vectors of ``(rid, seg, pos)`` rows, in that order. Each location is
        checked against the row ids its segment (or the pending buffer) stores, so a damaged
        location in the catalog raises ``CorruptStoreError`` instead of giving another row's
        vector."""
        out = np.empty((len(located), dim), dtype=np.float32)
        index = {p.seg: p for p in self.parts}
        pending = self.parts[-1] if self.parts and self.parts[-1].seg is None else None
        pending_pos = {int(r): i for i, r in enumerate(pending.rids)} if pending else {}
        for i, (rid, seg, pos) in enumerate(located):
            if seg is None:
                j = pending_pos.get(rid)
                part = pending
            else:
                part = index.get(seg)
                j = pos if isinstance(pos, int) and part is not None else None
            if j is None or not 0 <= j < len(part.rids) or part.rids[j] != rid:
                raise CorruptStoreError(
                    f"the catalog places row {rid!r} at segment {seg!r}, position {pos!r}, "
                    "which stores another row or none; the catalog is damaged (run "
                    "`vecstore verify`)"
                )
            out[i] = part.vectors[j]
        return out


def _segment(segments: dict, directory: Path, info, defer: bool) -> Segment:
    """The mapped segment of ``info``, from ``segments`` (keyed by file name, which is never
    reused; segment ids may be), or opened now and kept there."""
    seg = segments.get(info.file)
    if not isinstance(seg, Segment) or seg.info != info:
        seg = segments[info.file] = open_segment(directory / info.file, info, defer=defer)
    return seg


def _pending(seg: Segment):
    """The segment's checksum still to verify (``Segment.check``), or None."""
    return seg.check if seg.check is not None and not seg.check.done else None


def load_snapshot(
    catalog: Catalog,
    coll: int,
    directory: Path,
    dim: int,
    version: int,
    previous: Snapshot | None,
    segments: dict[str, Segment | ArrayFile],
    *,
    defer_checks: bool = False,
) -> Snapshot:
    """Build the snapshot of catalog ``version``; call inside one read transaction.

    ``segments`` caches mapped segment and index files by file name across snapshots (entries
    no longer referenced are evicted). Raises ``FileNotFoundError`` if a referenced file has
    vanished, as it does when a concurrent compaction commits and unlinks it: retry in a
    fresh transaction. With ``defer_checks``, segments mapped now leave their checksum to
    the caller (``Part.check``, see ``Snapshot.verify``), to verify before it trusts them.
    """
    from .compressed import load as load_codes

    records = catalog.segments(coll)
    model_rec, list_recs = catalog.index_files(coll)
    code_recs = catalog.code_files(coll)
    model = load_model(
        catalog, coll, directory, segments, model_rec, previous.model if previous else None
    )
    # a list file seen by the previous snapshot, under the same model, was checked then
    checked, graphs_seen = {}, {}
    if previous is not None and previous.model is model:
        checked = {p.seg: p.codes for p in previous.parts if p.codes is not None}
        graphs_seen = {p.seg: p.graph for p in previous.parts if p.graph is not None}
    hnsw = graphs.is_graph(model)
    dead: dict[int, list[int]] = {}
    for seg, pos in catalog.tombstones(coll):
        dead.setdefault(seg, []).append(pos)
    parts = []
    for rec in records:
        seg = _segment(segments, directory, rec.info, defer_checks)
        alive = None
        if rec.id in dead:
            alive = np.ones(rec.info.count, dtype=bool)
            alive[np.asarray(dead[rec.id], dtype=np.int64)] = False
        offsets = codes = graph = None
        lrec = list_recs.get(rec.id)
        if hnsw and lrec is not None:
            gfile = _open_index(segments, directory, lrec.info)
            graph = _checked_graph(model, gfile, lrec.info.file, seg, graphs_seen.get(rec.id))
        elif model is not None and lrec is not None:
            lists = _open_index(segments, directory, lrec.info)
            offsets, codes = lists.arrays["offsets"], lists.arrays["codes"]
            if checked.get(rec.id) is not codes and (
                lists.meta.get("model") != model.file
                or not lists_fit(model, offsets, codes, rec.info.count)
            ):
                raise CorruptStoreError(
                    f"index file {lrec.info.file} does not match segment {rec.info.file}"
                )
        release = seg.release_pages
        part = Part(rec.id, seg.vectors, seg.norms, seg.rids, alive, offsets, codes, release,
                    graph=graph, check=_pending(seg))  # fmt: skip
        crec = code_recs.get(rec.id)
        if crec is not None:  # compressed vectors: the codes, and re-ranking by pread
            packed = load_codes(_open_index(segments, directory, crec.info), rec.info)
            part = replace(part, packed=packed, read_rows=seg.read_rows)
        parts.append(part)
    live = {rec.info.file for rec in records}
    live |= {r.info.file for r in list_recs.values()}
    live |= {r.info.file for r in code_recs.values()}
    if model_rec is not None:
        live.add(model_rec.info.file)
    for name in [name for name in segments if name not in live]:
        del segments[name]

    pending = catalog.pending(coll)
    rows: dict[int, np.ndarray] = {}
    if pending:
        cached = previous.pending_rows if previous is not None else {}
        missing = [pseq for pseq, _ in pending if pseq not in cached]
        blobs = catalog.pending_vectors(missing) if missing else {}
        for pseq, _ in pending:
            row = cached.get(pseq)
            if row is None:
                blob = blobs[pseq]
                if len(blob) != 4 * dim:
                    raise CorruptStoreError(
                        f"pending vector {pseq} has {len(blob)} bytes, not {4 * dim}"
                    )
                row = np.frombuffer(blob, dtype="<f4")
            rows[pseq] = row
        vectors = np.stack([rows[pseq] for pseq, _ in pending])
        rids = np.fromiter((rid for _, rid in pending), dtype=np.int64, count=len(pending))
        parts.append(Part(None, vectors, _row_norms(vectors), rids, None))
    carried, layouts = {}, {}
    if previous is not None:
        # what the previous snapshot derived from an array this one still holds
        carried = _still_held(previous.rid_index, {p.seg: p.rids for p in parts})
        layouts = _still_held(previous.layouts, {p.seg: p.codes for p in parts})
    return Snapshot(version, parts, model, rows, carried, layouts=layouts)


def _row_norms(x: np.ndarray) -> np.ndarray:
    """The pending rows' norms: with the kernels once they have loaded, else with NumPy (a
    snapshot is loaded before the first query, which must not wait for Numba)."""
    from . import cold

    if cold.ready():
        from ..kernels.exact import row_norms

        return row_norms(x)
    return np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32)).astype(np.float32)


def _checked_graph(model, gfile: ArrayFile, name: str, seg: Segment, seen):
    """The graph of segment ``seg`` in the mapped index file ``gfile``: ``seen`` (the previous
    snapshot's, already checked) while it wraps the same arrays, else checked afresh."""
    if seen is not None and seen.L0 is gfile.arrays.get("L0"):
        return seen
    if gfile.meta.get("model") != model.file:
        raise CorruptStoreError(f"graph file {name} does not match segment {seg.info.file}")
    return graphs.open_graph(name, model, gfile.arrays, gfile.meta, seg.vectors, seg.norms)


def _still_held(derived: dict, arrays: dict) -> dict:
    """The entries ``seg -> (array, ...)`` of ``derived`` whose array is ``arrays[seg]``."""
    return {
        seg: entry
        for seg, entry in derived.items()
        if seg is not None and arrays.get(seg) is entry[0]
    }


def load_model(
    catalog: Catalog,
    coll: int,
    directory: Path,
    cache: dict,
    record: Any = False,
    previous: Model | None = None,
) -> Model | None:
    """The collection's ANN model (None if it has none); ``cache`` as for ``load_snapshot``.
    ``previous`` is returned when it was read from the same, still mapped, file: a model
    derives arrays of its own (int8 centroids, ...), 2-9 ms of work at nlist 1,024-4,096."""
    if record is False:
        record = catalog.index_files(coll)[0]
    if record is None:
        return None
    mfile = _open_index(cache, directory, record.info)
    if mfile.meta.get("kind") == graphs.KIND:
        if previous is not None and previous.file == record.info.file:
            return previous
        return graphs.GraphModel.from_file(record.info.file, mfile.meta, mfile.arrays)
    if (
        previous is not None
        and previous.file == record.info.file
        and previous.centroids is mfile.arrays["centroids"]
    ):
        return previous
    return Model.from_file(record.info.file, mfile.meta, mfile.arrays)


def lists_fit(model: Model, offsets: np.ndarray, codes: np.ndarray, count: int) -> bool:
    """Whether a segment's list arrays fit its ``count`` rows and ``model``
    (``storage.arrays.lists_fit``)."""
    m, ksub = model.codebooks.shape[:2]
    return arrays.lists_fit(offsets, codes, count, model.nlist, m, ksub)


def _open_index(cache: dict, directory: Path, info: ArrayFileInfo) -> ArrayFile:
    got = cache.get(info.file)
    if got is None or got.info != info:
        got = cache[info.file] = open_arrays(directory / info.file, info)
    return got


def search(
    parts: Sequence[Part],
    xq: np.ndarray,
    metric: str,
    k: int,
    allowed: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k over the parts.

    Returns ``(scores, rids, counts)``: float32 (nq, k) best first, int64 (nq, k) catalog row
    ids (-1 past ``counts[i]``), and int64 (nq,) the number of hits per query.
    """
    from ..kernels import exact

    D, I = exact.new_heaps(xq.shape[0], k)
    base = 0
    for i, part in enumerate(parts):
        n = part.vectors.shape[0]
        rows = None if allowed is None else allowed[i]
        if n and (rows is None or rows.size):
            mask = part.alive if rows is None else None
            exact.search_into(
                xq, part.vectors, part.norms, metric, D, I, rows=rows, mask=mask, base=base
            )
        base += n
    D, I, counts = exact.finish(D, I, xq, metric)
    if len(parts) == 1:  # one block (a small collection): its rids at the labels, -1 kept
        rids = parts[0].rids[I]
        rids[I < 0] = -1
        return D, rids, counts
    return D, labels_to_rids(I, [p.rids for p in parts]), counts


def _rid_lookup(rids: np.ndarray) -> tuple:
    """``(lo, dense, sorted, order, rising)`` mapping a part's rids to positions: when its
    rids span at most DENSE_SPAN times its rows (as a segment's rids, written together, do),
    ``dense`` is an int32 array with ``dense[rid - lo]`` the row's position or -1, one random
    read per rid; else ``sorted``/``order`` are its rids sorted and the permutation, for a
    binary search (the other two entries are None). ``rising``: the rids increase with the
    position, so positions looked up in rid order come out sorted."""
    n = len(rids)
    rising = n < 2 or bool((rids[1:] > rids[:-1]).all())
    if n and n < 2**31:
        lo, hi = int(rids.min()), int(rids.max())
        if hi - lo < DENSE_SPAN * n:
            dense = np.full(hi - lo + 1, -1, dtype=np.int32)
            dense[rids - lo] = np.arange(n, dtype=np.int32)
            return lo, dense, None, None, rising
    order = np.argsort(rids, kind="stable")
    return 0, None, rids[order], order, rising


def labels_to_rids(I: np.ndarray, rids_of: Sequence[np.ndarray]) -> np.ndarray:
    """Catalog row ids of heap labels, a label being a position in the concatenation of the
    blocks whose row ids ``rids_of`` lists (-1 stays -1)."""
    starts = [0]
    for r in rids_of:
        starts.append(starts[-1] + len(r))
    rids = np.empty(I.shape, dtype=np.int64)
    rids.fill(-1)
    if I.size <= _FEW_LABELS:  # a single query's k: plain Python beats a dozen NumPy calls
        out = rids.reshape(-1)
        for j, label in enumerate(I.reshape(-1).tolist()):
            if label >= 0:
                p = bisect.bisect_right(starts, label) - 1
                out[j] = rids_of[p][label - starts[p]]
        return rids
    valid = I >= 0
    labels = I[valid]
    bases = np.array(starts, dtype=np.int64)
    which = np.searchsorted(bases, labels, side="right") - 1
    out = np.empty(labels.shape, dtype=np.int64)
    for p in np.flatnonzero(np.bincount(which, minlength=len(rids_of))):
        sel = which == p
        out[sel] = rids_of[p][labels[sel] - bases[p]]
    rids[valid] = out
    return rids
