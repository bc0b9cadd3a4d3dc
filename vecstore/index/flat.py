"""Exact search over a consistent snapshot of a collection's segments and pending vectors.

A ``Snapshot`` is the set of vector blocks ("parts") one catalog version describes: each
published segment, mapped read-only, with a mask of its tombstones, plus the small block of
vectors still pending in the catalog. ``search`` runs the exact kernels over the parts with
shared per-query heaps. Uses kernels (imported lazily) and storage; never touches SQL itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CorruptStoreError
from ..storage.catalog import Catalog
from ..storage.segments import Segment, open_segment


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


@dataclass(frozen=True, eq=False)
class Snapshot:
    version: int
    parts: list[Part]
    # pending vectors by their never-reused pending sequence number, for incremental reloads
    pending_rows: dict[int, np.ndarray] = field(default_factory=dict)

    def allowed(self, located: np.ndarray) -> list[np.ndarray]:
        """Per part, the sorted positions of the given live rows.

        ``located`` is int64 ``(n, 3)``: rid, seg, pos, with seg = pos = -1 for pending rows.
        """
        out = []
        for part in self.parts:
            if part.seg is None:
                rids = located[located[:, 1] == -1, 0]
                order = np.argsort(part.rids)
                found = order[np.searchsorted(part.rids, rids, sorter=order)]
                out.append(np.sort(found))
            else:
                out.append(np.sort(located[located[:, 1] == part.seg, 2]))
        return out

    def vectors_of(
        self, located: Sequence[tuple[int, int | None, int | None]], dim: int
    ) -> np.ndarray:
        """The stored vectors of ``(rid, seg, pos)`` rows, in that order."""
        out = np.empty((len(located), dim), dtype=np.float32)
        index = {p.seg: p for p in self.parts}
        pending = self.parts[-1] if self.parts and self.parts[-1].seg is None else None
        pending_pos = {int(r): i for i, r in enumerate(pending.rids)} if pending else {}
        for i, (rid, seg, pos) in enumerate(located):
            out[i] = pending.vectors[pending_pos[rid]] if seg is None else index[seg].vectors[pos]
        return out


def load_snapshot(
    catalog: Catalog,
    coll: int,
    directory: Path,
    dim: int,
    version: int,
    previous: Snapshot | None,
    segments: dict[str, Segment],
) -> Snapshot:
    """Build the snapshot of catalog ``version``; call inside one read transaction.

    ``segments`` caches mapped segments by file name across snapshots (entries no longer referenced
    are evicted). Raises ``FileNotFoundError`` if a referenced segment file has vanished, as it
    does when a concurrent compaction commits and unlinks it: retry in a fresh transaction.
    """
    from ..kernels.exact import row_norms

    records = catalog.segments(coll)
    dead: dict[int, list[int]] = {}
    for seg, pos in catalog.tombstones(coll):
        dead.setdefault(seg, []).append(pos)
    parts = []
    for rec in records:
        # Keyed by file name, which is never reused (segment ids may be).
        seg = segments.get(rec.info.file)
        if seg is None or seg.info != rec.info:
            seg = segments[rec.info.file] = open_segment(directory / rec.info.file, rec.info)
        alive = None
        if rec.id in dead:
            alive = np.ones(rec.info.count, dtype=bool)
            alive[np.asarray(dead[rec.id], dtype=np.int64)] = False
        parts.append(Part(rec.id, seg.vectors, seg.norms, seg.rids, alive))
    live = {rec.info.file for rec in records}
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
                row = np.frombuffer(blobs[pseq], dtype="<f4")
                if row.shape != (dim,):
                    raise CorruptStoreError(
                        f"pending vector {pseq} has {row.size} values, not {dim}"
                    )
            rows[pseq] = row
        vectors = np.stack([rows[pseq] for pseq, _ in pending])
        rids = np.fromiter((rid for _, rid in pending), dtype=np.int64, count=len(pending))
        parts.append(Part(None, vectors, row_norms(vectors), rids, None))
    return Snapshot(version, parts, rows)


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
    bases = np.zeros(len(parts) + 1, dtype=np.int64)
    for i, part in enumerate(parts):
        bases[i + 1] = bases[i] + part.vectors.shape[0]
        rows = None if allowed is None else allowed[i]
        if part.vectors.shape[0] == 0 or (rows is not None and rows.size == 0):
            continue
        mask = part.alive if rows is None else None
        exact.search_into(
            xq, part.vectors, part.norms, metric, D, I, rows=rows, mask=mask, base=int(bases[i])
        )
    D, I, counts = exact.finish(D, I, xq, metric)
    rids = np.full(I.shape, -1, dtype=np.int64)
    valid = I >= 0
    labels = I[valid]
    which = np.searchsorted(bases, labels, side="right") - 1
    out = np.empty(labels.shape, dtype=np.int64)
    for p in np.unique(which):
        sel = which == p
        out[sel] = parts[p].rids[labels[sel] - bases[p]]
    rids[valid] = out
    return D, rids, counts
