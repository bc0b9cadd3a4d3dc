"""How keyword and hybrid queries rank: BM25 alone, or fused with the vector ranking.

The reader runs both halves of a hybrid query in one catalog read transaction over the same
filter matches, so they see one snapshot and the same rows; each contributes its best
``max(k, reader.WINDOW)`` rows, and the fusion keeps the best ``k``.

Fusions, for a row at 1-based rank ``r_v`` in the vector ranking and ``r_t`` in the keyword
ranking (a half that did not return the row contributes 0), with ``w`` = ``weight``:
- ``"rrf"``, reciprocal rank fusion (Cormack, Clarke & Buettcher 2009):
  ``2w / (rrf_k + r_v) + 2(1 - w) / (rrf_k + r_t)``, which is plain RRF at ``w = 0.5``.
- ``"weighted"``, a convex combination of min-max normalised scores (Bruch et al. 2023):
  ``w * norm(vector score) + (1 - w) * norm(BM25)``, each normalised over its half's window.
Pure functions over rankings: no catalog, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import inputs
from .errors import InvalidInput
from .index import bm25

Mode = Literal["vector", "text", "hybrid"]
Fusion = Literal["rrf", "weighted"]
MODES: tuple[Mode, ...] = ("vector", "text", "hybrid")
FUSIONS: tuple[Fusion, ...] = ("rrf", "weighted")
RRF_K = 60
WEIGHT = 0.5


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
        if mode == "vector" and fusion is None and rrf_k is None and weight is None:
            return VECTOR  # the common case, without building an object per query
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
        rrf_k = inputs.number("rrf_k", RRF_K if rrf_k is None else rrf_k, minimum=0)
        if fusion != "rrf" and given["rrf_k"] is not None:
            raise InvalidInput(f"rrf_k only applies to fusion='rrf'; got fusion={fusion!r}")
        weight = inputs.number("weight", WEIGHT if weight is None else weight, minimum=0, maximum=1)
        return cls("hybrid", fusion, rrf_k, weight)


VECTOR = Ranking()


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


def text_only(scores: np.ndarray, rids: np.ndarray) -> tuple:
    """A keyword ranking in the shape ``fuse`` returns."""
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
