"""More like these: rows similar to positive examples and unlike negative ones, by Qdrant's
two strategies. The examples are stored rows (by id) or vectors; rows given as examples are
never returned.

``"average"``: one query vector, ``2 * mean(positives) - mean(negatives)`` (the positives'
mean alone without negatives; for cosine, each example is first scaled to unit length), then
an ordinary query (through the ANN index if there is one). ``"best_score"``: every kept row is
scored against every example by an exact scan (``kernels/recommend.py``), so its cost grows
with the number of examples; it also works with negative examples alone. Must not import
``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .reader import AnnOptions, Reader
from .results import QueryResult
from .storage.catalog import Catalog

STRATEGIES = ("average", "best_score")
TILE_ROWS = 4096


def recommend(
    reader: Reader,
    positive: list[str | np.ndarray],
    negative: list[str | np.ndarray],
    *,
    k: int,
    where: Any,
    strategy: str,
) -> QueryResult:
    """The ``k`` best rows for the examples (``Collection.recommend`` checked them: each is
    an id or a float32 vector of the collection's dim)."""
    metric = reader.record.metric
    ids = [e for e in positive + negative if isinstance(e, str)]

    def read(cat: Catalog):
        snap = reader.snapshot(cat)
        rids, vectors = reader.examples(cat, snap, ids)
        by_id = dict(zip(ids, vectors))
        pos = _matrix([by_id[e] if isinstance(e, str) else e for e in positive], reader)
        neg = _matrix([by_id[e] if isinstance(e, str) else e for e in negative], reader)
        allowed = reader.kept(cat, snap, where, None, rids)
        if strategy == "average":
            xq = _average(pos, neg, metric)
            scores, got, counts = reader.topk(cat, snap, xq, k, allowed, AnnOptions())
            return scores, got, counts, reader.found(cat, got), "vector"
        from .kernels import recommend as kr

        D, I = kr.new_heap(k)
        examples = np.ascontiguousarray(np.vstack([pos, neg]))
        for i, part in enumerate(snap.parts):
            pos_i = part.alive if allowed is None else allowed[i]
            if pos_i is not None and pos_i.dtype == np.bool_:
                pos_i = np.flatnonzero(pos_i)
            n = len(part.rids) if pos_i is None else len(pos_i)
            for lo in range(0, n, TILE_ROWS):
                hi = min(n, lo + TILE_ROWS)
                at = slice(lo, hi) if pos_i is None else pos_i[lo:hi]
                kr.best_score_into(
                    part.vectors[at], part.norms[at], part.rids[at], examples, len(pos),
                    metric, D, I,
                )  # fmt: skip
        scores, got = kr.finish(D, I)
        counts = np.array([len(got)], dtype=np.int64)
        return scores[None], got[None], counts, reader.found(cat, got), "recommend"

    scores, got, counts, found, mode = reader.consistent(read)
    return reader.results(scores, got, counts, found, mode=mode)[0]


def _matrix(rows: list[np.ndarray], reader: Reader) -> np.ndarray:
    if not rows:
        return np.zeros((0, reader.record.dim), dtype=np.float32)
    return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)


def _average(pos: np.ndarray, neg: np.ndarray, metric: str) -> np.ndarray:
    """Qdrant's average_vector query: ``avg_pos + avg_pos - avg_neg`` (``avg_pos`` alone
    without negatives), on unit vectors for cosine."""
    if metric == "cosine":
        pos, neg = _unit(pos), _unit(neg)
    q = pos.mean(axis=0, dtype=np.float64)
    if len(neg):
        q = 2.0 * q - neg.mean(axis=0, dtype=np.float64)
    return np.ascontiguousarray(q[None, :], dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.sqrt(np.einsum("ij,ij->i", x, x))
    inv = np.zeros_like(n)
    np.divide(1.0, n, out=inv, where=n > 0)
    return x * inv[:, None]
