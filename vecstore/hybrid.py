"""Keyword and hybrid queries: BM25 ranking alone, or fused with the vector ranking.

A mixin of ``Collection`` (like writes.py). Both halves of a hybrid query run in one catalog
read transaction over the same filter matches, so they see one snapshot and the same rows;
each contributes its best ``max(k, WINDOW)`` rows, and the fusion keeps the best ``k``.

Fusions, for a row at 1-based rank ``r_v`` in the vector ranking and ``r_t`` in the keyword
ranking (a half that did not return the row contributes 0), with ``w`` = ``weight``:
- ``"rrf"``, reciprocal rank fusion (Cormack, Clarke & Buettcher 2009):
  ``2w / (rrf_k + r_v) + 2(1 - w) / (rrf_k + r_t)``, which is plain RRF at ``w = 0.5``.
- ``"weighted"``, a convex combination of min-max normalised scores (Bruch et al. 2023):
  ``w * norm(vector score) + (1 - w) * norm(BM25)``, each normalised over its half's window.
Must not import ``collection`` or ``database``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import inputs, text
from .errors import InvalidInput
from .index import bm25
from .results import QueryResult
from .storage import records
from .storage.filters import compile_filters

if TYPE_CHECKING:
    from .database import Database
    from .storage.catalog import CollectionRecord

MODES = ("vector", "text", "hybrid")
FUSIONS = ("rrf", "weighted")
WINDOW = 100  # rows each half contributes to a fusion (k if larger)
RRF_K = 60
WEIGHT = 0.5
SNAPSHOT_RETRIES = 5


@dataclass(frozen=True)
class Ranking:
    """How to rank: ``mode``, and for hybrid queries the ``fusion``, its ``rrf_k`` and the
    vector half's ``weight`` (the keyword half gets ``1 - weight``)."""

    mode: str = "vector"
    fusion: str = "rrf"
    rrf_k: float = RRF_K
    weight: float = WEIGHT

    @classmethod
    def of(cls, mode: Any, fusion: Any, rrf_k: Any, weight: Any) -> Ranking:
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {MODES}; got {mode!r}")
        given = {"fusion": fusion, "rrf_k": rrf_k, "weight": weight}
        if mode != "hybrid":
            extra = [name for name, v in given.items() if v is not None]
            if extra:
                raise InvalidInput(
                    f"{', '.join(extra)} only apply to mode='hybrid'; got mode={mode!r}"
                )
            return cls(mode)
        fusion = "rrf" if fusion is None else fusion
        if fusion not in FUSIONS:
            raise InvalidInput(f"fusion must be one of {FUSIONS}; got {fusion!r}")
        rrf_k = RRF_K if rrf_k is None else rrf_k
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, (int, float)) or not rrf_k >= 0:
            raise InvalidInput(f"rrf_k must be a number >= 0; got {rrf_k!r}")
        if fusion != "rrf" and given["rrf_k"] is not None:
            raise InvalidInput(f"rrf_k only applies to fusion='rrf'; got fusion={fusion!r}")
        weight = WEIGHT if weight is None else weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise InvalidInput(f"weight must be a number from 0 to 1; got {weight!r}")
        return cls("hybrid", fusion, float(rrf_k), float(weight))


def keywords(q: Any, text_: Any, mode: str, *, many: bool) -> list[str] | None:
    """The keyword query of each query, or None in vector mode: ``text_`` (``text=``) if
    given, else ``q``; one str for ``query``, a list of str (one per query) for
    ``query_many``."""
    if mode == "vector":
        if text_ is not None:
            raise InvalidInput("text= is the keyword query of mode='text' or 'hybrid'")
        return None
    if mode == "text" and text_ is not None:
        raise InvalidInput("in mode='text' the keywords are the query itself: pass them as q")
    given = q if text_ is None else text_
    if not many:
        items = [given]
    else:
        items = list(given) if isinstance(given, (list, tuple)) else None
        if items is not None and text_ is not None and len(items) != len(q):
            raise InvalidInput(f"text= has {len(items)} keyword queries for {len(q)} queries")
    if items is None or not all(isinstance(t, str) for t in items):
        what = "a list of str" if many else "a str"
        raise InvalidInput(
            f"mode={mode!r} needs keywords, {what}: as q, or as text= beside vector queries"
        )
    return items


class HybridSearch:
    """The keyword and hybrid search of ``Collection``."""

    _db: Database
    _record: CollectionRecord

    def _ranked(
        self,
        xq: np.ndarray | None,
        texts: list[str],
        k: int,
        where: Any,
        where_document: Any,
        ranking: Ranking,
        ann: Any = None,
    ) -> list[QueryResult]:
        """Keyword (``xq`` None) or hybrid results, one per text; ``ann`` holds the vector
        half's ANN options."""
        k = inputs.top_k(k)
        coll = self._record.id
        filtered = where is not None or where_document is not None
        sql, params = compile_filters(coll, where, where_document, text.contains_terms)
        hybrid = ranking.mode == "hybrid"
        window = max(k, WINDOW) if hybrid else k
        terms = [text.query_terms(t) for t in texts]
        cache = self._db._text_cache
        for _ in range(SNAPSHOT_RETRIES):
            with self._db._reading() as cat:
                self._require(cat)
                allowed = cat.filtered_rids(coll, sql, params) if filtered else None
                halves = [
                    bm25.search(
                        cat, coll, t, window, allowed=allowed, cache=cache, scope=self._record.dir
                    )
                    for t in terms
                ]
                if hybrid:
                    try:
                        snap = self._snapshot(cat)
                    except FileNotFoundError:
                        continue  # a compaction replaced a segment after our snapshot began
                    rows = None if allowed is None else snap.allowed_rids(allowed)
                    vs, vr, vc = self._vector_topk(cat, snap, xq, window, rows, ann)
                    fused = [
                        fuse(vs[i, : vc[i]], vr[i, : vc[i]], *halves[i], k, ranking)
                        for i in range(len(texts))
                    ]
                else:
                    fused = [_text_only(s, r) for s, r in halves]
                wanted = np.concatenate([f[1] for f in fused]) if fused else []
                found = cat.records(list(set(np.asarray(wanted, dtype=np.int64).tolist())))
            return [self._fused_result(f, found, ranking.mode) for f in fused]
        raise self._vanished()

    def _fused_result(self, fused: tuple, found: dict, mode: str) -> QueryResult:
        scores, rids, vrank, trank, vscore, tscore = fused
        rows = [found[int(r)] for r in rids]
        return QueryResult(
            ids=[r[0] for r in rows],
            scores=np.ascontiguousarray(scores, dtype=np.float32),
            documents=[r[1] for r in rows],
            metadata=[records.unpack(r[2]) for r in rows],
            metric=self.metric,
            mode=mode,
            vector_ranks=vrank,
            text_ranks=trank,
            vector_scores=vscore,
            text_scores=tscore,
        )


def _text_only(scores: np.ndarray, rids: np.ndarray) -> tuple:
    return scores, rids, None, np.arange(1, len(rids) + 1, dtype=np.int64), None, scores


def fuse(
    vscores: np.ndarray,
    vrids: np.ndarray,
    tscores: np.ndarray,
    trids: np.ndarray,
    k: int,
    ranking: Ranking,
) -> tuple:
    """Fuse two rankings (each best first, distinct rids) into the best ``k``.

    Returns ``(scores, rids, vector_ranks, text_ranks, vector_scores, text_scores)``, best
    first; ranks are 1-based, 0 where a half lacks the row; its scores NaN there. Ties are
    ordered by row id.
    """
    rids = np.union1d(vrids, trids)
    n = len(rids)
    vpos, tpos = np.searchsorted(rids, vrids), np.searchsorted(rids, trids)
    vrank, trank = np.zeros(n, np.int64), np.zeros(n, np.int64)
    vrank[vpos] = np.arange(1, len(vrids) + 1)
    trank[tpos] = np.arange(1, len(trids) + 1)
    vscore, tscore = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)
    vscore[vpos], tscore[tpos] = vscores, tscores
    w = ranking.weight
    if ranking.fusion == "rrf":
        score = np.zeros(n)
        hv, ht = vrank > 0, trank > 0
        score[hv] += 2 * w / (ranking.rrf_k + vrank[hv])
        score[ht] += 2 * (1 - w) / (ranking.rrf_k + trank[ht])
    else:
        score = np.zeros(n)
        score[vpos] += w * _minmax(vscores)
        score[tpos] += (1 - w) * _minmax(tscores)
    top_scores, top_rids = bm25.top(score, rids, k)
    at = np.searchsorted(rids, top_rids)
    return top_scores, top_rids, vrank[at], trank[at], vscore[at], tscore[at]


def _minmax(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.float64)
    if not len(s):
        return s
    lo, hi = s.min(), s.max()
    return np.ones_like(s) if hi <= lo else (s - lo) / (hi - lo)
