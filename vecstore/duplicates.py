"""Near-duplicates: every pair of rows scoring at or above a threshold, by an exact blockwise
self-join, and the rows of a new batch that would duplicate stored ones.

The join reads the rows block by block (``Reader.live_rows``) and multiplies each pair of
blocks on or above the diagonal once (``kernels/selfjoin.py``), so memory holds two blocks
and their product, never the n x n matrix, and the work is half of a full n x n product.
Must not import ``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .index import flat
from .reader import LiveRows


@dataclass(frozen=True, eq=False)
class Duplicates:
    """Pairs of rows scoring at least ``threshold``, best first.

    Attributes
    ----------
    ids_a, ids_b : list of str
        The pairs; ``ids_a[i]`` is the one written first (its row is the older).
    scores : float32 ndarray (n,)
        Each pair's score, higher is better: the cosine similarity, the inner product, or
        the negative squared L2 distance, as ``QueryResult.scores``.
    threshold : float
    metric : str
    """

    ids_a: list[str]
    ids_b: list[str]
    scores: np.ndarray
    threshold: float
    metric: str

    def __len__(self) -> int:
        return len(self.ids_a)

    def __iter__(self) -> Iterator[tuple[str, str, float]]:
        """``(id_a, id_b, score)`` per pair, best first."""
        return iter(zip(self.ids_a, self.ids_b, self.scores.tolist()))

    def groups(self) -> list[list[str]]:
        """The connected groups of the pairs (a row duplicating a row that duplicates a
        third puts all three in one group), each in writing order, largest first."""
        parent: dict[str, str] = {}

        def root(a: str) -> str:
            while parent.setdefault(a, a) != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in zip(self.ids_a, self.ids_b):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[rb] = ra
        order = {}
        for a, b in zip(self.ids_a, self.ids_b):
            order.setdefault(a, len(order))
            order.setdefault(b, len(order))
        out: dict[str, list[str]] = {}
        for i in order:
            out.setdefault(root(i), []).append(i)
        return sorted(out.values(), key=lambda g: -len(g))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids_a": list(self.ids_a),
            "ids_b": list(self.ids_b),
            "scores": [float(s) for s in self.scores],
            "threshold": self.threshold,
            "metric": self.metric,
        }

    def to_list(self) -> list[dict[str, Any]]:
        """One ``{"id_a", "id_b", "score"}`` dict per pair, best first."""
        return [{"id_a": a, "id_b": b, "score": s} for a, b, s in self]

    def __repr__(self) -> str:
        head = ", ".join(f"({a!r}, {b!r}): {s:.4f}" for a, b, s in list(self)[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"Duplicates({len(self)} pairs >= {self.threshold:g}, {{{head}{more}}})"


def find(rows: LiveRows, threshold: float, k: int | None) -> Duplicates:
    """Every pair of ``rows`` scoring at least ``threshold``; with ``k``, only pairs among
    the ``k`` best of either of their rows (``Collection.duplicates`` checked the
    arguments)."""
    from .kernels import selfjoin

    size = selfjoin.BLOCK_ROWS
    pairs, n = selfjoin.new_pairs(), 0
    scratch = np.empty(size * size, dtype=np.float32)
    spans = rows.spans(size)
    for i, (start_a, stop_a) in enumerate(spans):
        xa, ta = _block(rows, start_a, stop_a)
        for start_b, stop_b in spans[i:]:
            if start_b == start_a:
                xb, tb = xa, ta
            else:
                xb, tb = _block(rows, start_b, stop_b)
            pairs, n = selfjoin.join_blocks(
                xa, ta, xb, tb, rows.metric, threshold, pairs, n,
                same=start_b == start_a, base_a=start_a, base_b=start_b, S=scratch,
            )  # fmt: skip
    a, b, scores = pairs[0][:n], pairs[1][:n], pairs[2][:n]
    # The older row (lower rid: written first) comes first in each pair.
    swap = rows.rids[a] > rows.rids[b]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    if k is not None and n:
        keep = _among_best(a, b, scores, k)
        a, b, scores = a[keep], b[keep], scores[keep]
    order = np.lexsort((rows.rids[b], rows.rids[a], -scores))
    a, b, scores = a[order], b[order], scores[order]
    return Duplicates(
        [rows.ids[i] for i in a.tolist()],
        [rows.ids[i] for i in b.tolist()],
        np.ascontiguousarray(scores, dtype=np.float32),
        float(threshold),
        rows.metric,
    )


def _block(rows: LiveRows, start: int, stop: int):
    from .kernels import selfjoin

    x, norms = rows.block(start, stop)
    return x, selfjoin.row_terms(norms, rows.metric)


def _among_best(a: np.ndarray, b: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Which pairs are among the ``k`` best of row a's pairs or of row b's."""
    ends = np.concatenate([a, b])
    both = np.concatenate([scores, scores])
    pair = np.concatenate([np.arange(len(a)), np.arange(len(a))])
    order = np.lexsort((pair, -both, ends))  # by row, best first, ties by pair order
    ends, pair = ends[order], pair[order]
    first = np.r_[True, ends[1:] != ends[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(ends)), 0))
    rank = np.arange(len(ends)) - group_start
    keep = np.zeros(len(a), dtype=bool)
    keep[pair[rank < k]] = True
    return keep


def novel(snap: flat.Snapshot, x: np.ndarray, metric: str, threshold: float) -> np.ndarray:
    """Which rows of ``x`` (float32 (n, dim)) to keep so that no kept row scores at least
    ``threshold`` against a live row of ``snap`` or an earlier kept row of ``x``: bool (n,).
    Call under the writer lock, inside the transaction that will add the kept rows."""
    from .kernels import exact, selfjoin

    n = len(x)
    keep = np.ones(n, dtype=bool)
    if not n:
        return keep
    if snap.parts:
        scores, _, counts = flat.search(snap.parts, x, metric, 1)
        keep &= ~((counts > 0) & (scores[:, 0] >= threshold))
    terms = selfjoin.row_terms(exact.row_norms(x), metric)
    pairs, m = selfjoin.new_pairs(), 0
    size = selfjoin.BLOCK_ROWS
    for lo in range(0, n, size):
        ta = (terms[0][lo : lo + size], terms[1][lo : lo + size])
        for lo_b in range(lo, n, size):
            tb = (terms[0][lo_b : lo_b + size], terms[1][lo_b : lo_b + size])
            pairs, m = selfjoin.join_blocks(
                x[lo : lo + size], ta, x[lo_b : lo_b + size], tb, metric, threshold, pairs, m,
                same=lo == lo_b, base_a=lo, base_b=lo_b,
            )  # fmt: skip
    # Greedy in writing order: a row goes if it duplicates an earlier row that stays.
    a, b = pairs[0][:m], pairs[1][:m]
    order = np.argsort(b, kind="stable")
    a, b = a[order], b[order]
    for j, i in zip(b.tolist(), a.tolist()):
        if keep[i]:
            keep[j] = False
    return keep
