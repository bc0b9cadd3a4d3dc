"""The store's in-process cache of filter results, as Lucene's query cache: the rows a compiled
filter keeps, per collection and per (SQL, parameters), valid while the catalog's stamp is
unchanged (any commit, in any process, changes it), with the per-snapshot positions and masks
the planner reads. A repeated filter then costs no SQL at all. numpy and the standard library
only; must not import the catalog, the index or the collection.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

#: Bytes of row ids, positions and masks kept for all collections of a store.
FILTER_CACHE_BYTES = 64 << 20
#: Filters kept at most (the least recently used is dropped first).
FILTER_CACHE_ENTRIES = 256
#: A filter keeping more rows than this is not cached (its arrays would crowd out the rest).
MAX_CACHED_ROWS = 4_000_000


class Kept(list):
    """Per part of a snapshot, the sorted int64 positions of the live rows a filter keeps
    (what ``Reader.kept`` returns), plus their bool masks and their split by inverted list,
    built once per part on demand and kept while the filter's cache entry lives
    (``plan.kept_mask``, ``plan.kept_lists``). A cached one is shared by every query that
    hits the cache: its arrays are read, never written."""

    def __init__(self, positions: Sequence[np.ndarray]):
        super().__init__(positions)
        self._masks: dict[int, np.ndarray] = {}
        self._lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def mask(self, i: int, n: int, alive: np.ndarray | None) -> np.ndarray:
        """Part ``i``'s mask over its ``n`` rows: True where the filter keeps a live row (the
        positions already leave out tombstoned rows, so ``alive`` is not needed here)."""
        got = self._masks.get(i)
        if got is None or len(got) != n:
            got = np.zeros(n, dtype=bool)
            got[self[i]] = True
            with self._lock:
                self._masks[i] = got
        return got

    def lists(self, i: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Part ``i``'s positions and, per inverted list of ``offsets`` (CSR over the part's
        rows in list order), where its share of them starts: ``(rows, koff)`` with list L's
        kept rows ``rows[koff[L]:koff[L+1]]``."""
        got = self._lists.get(i)
        if got is None or got[0] is not offsets:
            koff = np.searchsorted(self[i], offsets).astype(np.int64)
            got = (offsets, koff)
            with self._lock:
                self._lists[i] = got
        return self[i], got[1]

    @property
    def nbytes(self) -> int:
        masks = sum(m.nbytes for m in self._masks.values())
        return sum(a.nbytes for a in self) + masks + sum(k.nbytes for _, k in self._lists.values())


class _Entry:
    __slots__ = ("stamp", "rids", "snap", "kept")

    def __init__(self, stamp: Hashable, rids: np.ndarray):
        self.stamp = stamp
        self.rids = rids
        self.snap: Any = None  # weak reference to the snapshot ``kept`` belongs to
        self.kept: Kept | None = None

    @property
    def nbytes(self) -> int:
        return self.rids.nbytes + (self.kept.nbytes if self.kept is not None else 0)


class FilterCache:
    """Filter results by ``(scope, sql, params)``, each valid at one catalog stamp.

    ``scope`` is the collection's directory name (unique for every collection ever created).
    A read transaction passes the stamp it reads at; an entry made at another stamp is
    recomputed. A stamp of None (a transaction that may hold uncommitted writes) bypasses
    the cache. Thread-safe.
    """

    def __init__(
        self, *, max_bytes: int = FILTER_CACHE_BYTES, max_entries: int = FILTER_CACHE_ENTRIES
    ):
        self.max_bytes = int(max_bytes)
        self.max_entries = int(max_entries)
        self._items: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def rids(
        self,
        scope: str,
        stamp: Hashable | None,
        sql: str,
        params: Sequence,
        compute: Callable[[], np.ndarray],
    ) -> np.ndarray:
        """The sorted rids the filter keeps at ``stamp``: cached, or ``compute()``'s."""
        entry = self._entry(scope, stamp, sql, params, compute)
        return entry.rids if entry is not None else compute()

    def kept(
        self,
        scope: str,
        stamp: Hashable | None,
        sql: str,
        params: Sequence,
        snap: Any,
        compute: Callable[[], np.ndarray],
        positions: Callable[[np.ndarray], list[np.ndarray]],
    ) -> Kept:
        """Per part of ``snap``, the positions of the rows the filter keeps (``positions``
        maps sorted rids to them), cached with the rids for this snapshot."""
        entry = self._entry(scope, stamp, sql, params, compute)
        if entry is None:
            return Kept(positions(compute()))
        kept = entry.kept
        if kept is None or entry.snap is None or entry.snap() is not snap:
            kept = Kept(positions(entry.rids))
            with self._lock:
                entry.kept, entry.snap = kept, weakref.ref(snap)
                self._trim()
        return kept

    def _entry(self, scope, stamp, sql, params, compute) -> _Entry | None:
        if stamp is None:
            return None
        try:
            key = (scope, sql, tuple(params))
            hash(key)
        except TypeError:
            return None
        with self._lock:
            entry = self._items.get(key)
            if entry is not None and entry.stamp == stamp:
                self._items.move_to_end(key)
                self.hits += 1
                return entry
            self.misses += 1
        rids = compute()
        if len(rids) > MAX_CACHED_ROWS:
            return _Entry(stamp, rids)  # served, not kept
        entry = _Entry(stamp, rids)
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            self._trim()
        return entry

    def _trim(self) -> None:
        total = sum(e.nbytes for e in self._items.values())
        while self._items and (len(self._items) > self.max_entries or total > self.max_bytes):
            _, dropped = self._items.popitem(last=False)
            total -= dropped.nbytes

    def drop(self, scope: str) -> None:
        """Forget every filter of one collection (it was deleted)."""
        with self._lock:
            for key in [key for key in self._items if key[0] == scope]:
                del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"FilterCache({len(self)} filters, hits={self.hits}, misses={self.misses})"
