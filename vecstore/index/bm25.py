"""BM25 top-k over the keyword index, inside the caller's catalog read transaction.

Scores are Okapi BM25 with Lucene's defaults and its always-positive idf:
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`` and
``score(d) = sum_t idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``,
with N, df and avgdl those of the collection alone. Postings of frequent terms are cached per
store, keyed by the term id and its version (which every change to the term's postings bumps),
so a cached list is exactly what the catalog holds. Uses storage only; numpy for the sums.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..storage.catalog import Catalog

K1 = 1.2
B = 0.75
CACHE_POSTINGS = 1_000_000  # about 24 MB of cached postings per store
CACHE_MIN_DF = 64  # rarer terms are cheaper to read than to cache


class PostingCache:
    """LRU cache of decoded posting lists ``(rid, tf, dl)``, bounded in postings."""

    def __init__(self, capacity: int = CACHE_POSTINGS):
        self.capacity = capacity
        self.size = 0
        self._entries: OrderedDict[tuple[str, int], tuple[int, np.ndarray]] = OrderedDict()

    def get(self, key: tuple[str, int], ver: int) -> np.ndarray | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != ver:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[str, int], ver: int, postings: np.ndarray) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        if len(postings) > self.capacity // 4:
            return
        self._entries[key] = (ver, postings)
        self.size += len(postings)
        while self.size > self.capacity:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.size -= len(evicted)

    def drop(self, scope: str) -> None:
        """Forget every entry of one collection (by its directory)."""
        for key in [key for key in self._entries if key[0] == scope]:
            self.size -= len(self._entries.pop(key)[1])


def search(
    cat: Catalog,
    coll: int,
    terms: Sequence[str],
    k: int,
    *,
    allowed: np.ndarray | None = None,
    cache: PostingCache | None = None,
    scope: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows of ``coll`` for the analysed query ``terms``.

    Parameters
    ----------
    terms : list of str
        Distinct analysed terms (vecstore.text.query_terms).
    allowed : int64 ndarray, sorted, optional
        Only these row ids may be returned (a filter's matches).
    cache, scope : the store's posting cache and the collection's key in it.

    Returns ``(scores, rids)``: float32 and int64 ``(n,)``, best first, n <= k; ties are
    ordered by row id. Only rows containing at least one of the terms are returned.
    """
    empty = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    if not terms:
        return empty
    ndocs, ntokens = cat.text_stats(coll)
    found = cat.text_terms(coll, terms) if ndocs else []
    if not found:
        return empty
    lists: dict[int, np.ndarray] = {}
    missing = []
    for tid, _, _, ver in found:
        hit = cache.get((scope, tid), ver) if cache is not None else None
        if hit is None:
            missing.append(tid)
        else:
            lists[tid] = hit
    if missing:
        rows = cat.postings(missing)
        starts = np.flatnonzero(np.r_[True, rows[1:, 0] != rows[:-1, 0]]) if len(rows) else []
        ends = np.r_[starts[1:], len(rows)] if len(rows) else []
        for s, e in zip(starts, ends):
            lists[int(rows[s, 0])] = np.ascontiguousarray(rows[s:e, 1:])
        if cache is not None:
            for tid, _, df, ver in found:
                if tid in missing and df >= CACHE_MIN_DF and tid in lists:
                    cache.put((scope, tid), ver, lists[tid])
    avgdl = max(ntokens / ndocs, 1e-9)
    rids, parts = [], []
    for tid, _, df, _ in found:
        p = lists.get(tid)
        if p is None or not len(p):
            continue
        idf = np.log1p((ndocs - df + 0.5) / (df + 0.5))
        tf = p[:, 1].astype(np.float64)
        norm = K1 * (1.0 - B + B * p[:, 2] / avgdl)
        rids.append(p[:, 0])
        parts.append(idf * tf * (K1 + 1.0) / (tf + norm))
    if not rids:
        return empty
    r = np.concatenate(rids)
    s = np.concatenate(parts)
    if allowed is not None:
        pos = np.searchsorted(allowed, r)
        keep = pos < len(allowed)
        keep[keep] = allowed[pos[keep]] == r[keep]
        r, s = r[keep], s[keep]
    if len(rids) > 1:
        r, inverse = np.unique(r, return_inverse=True)
        s = np.bincount(inverse, weights=s, minlength=len(r))
    return top(s, r, k)


def top(scores: np.ndarray, rids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest ``scores`` (float32) and their ``rids``, ties by smaller rid."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        scores, rids = scores[keep], rids[keep]
    order = np.lexsort((rids, -scores))[:k]
    return scores[order].astype(np.float32), rids[order].astype(np.int64)
