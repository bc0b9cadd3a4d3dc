"""Per-field columns of metadata, as Lucene's doc values: one metadata key of every row of a
collection, dictionary-encoded from the filter index in one read and kept while the catalog's
stamp is unchanged, so that a filter seen for the first time on a field already read is
evaluated with NumPy (vecstore.fieldeval) instead of SQL. numpy, the standard library and
storage.filters only; must not import the catalog, the index or the collection.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from .lru import LRU
from .storage.filters import KIND_BOOL, KIND_NULL, KIND_NUMBER, KIND_STR

#: Bytes of columns and row-id lists kept for all collections of a store.
FIELD_COLUMN_BYTES = 64 << 20
#: Columns (and row-id lists, and counters of fields not yet read) kept at most.
FIELD_COLUMN_ENTRIES = 256
#: When to read a field into a column (a ski rental): once the filters on it evaluated in SQL
#: at one stamp took as long as reading it is expected to take (its rows times the reading
#: cost per row this process last measured), or once BUILD_AFTER of them ran, whichever comes
#: first. Reading costs as much as 20-500 SQL evaluations of an equality filter (100k rows),
#: so a store whose filters change with every commit keeps answering in SQL, and one
#: answering many filters on a field (a tenant id per query) soon reads it. Which path
#: answers never changes what is answered.
BUILD_AFTER = 64
#: The reading cost per row assumed before this process has read one.
READ_SECONDS_PER_ROW = 0.6e-6
#: Collections with more rows get no columns (every filter stays in SQL).
MAX_COLUMN_ROWS = 4_000_000
#: Bytes a column takes per row at the least (its int32 codes and the 16 bytes of by-value
#: order, as ``FieldColumn.nbytes`` counts them): a collection whose columns could not fit a
#: quarter of the budget gets none, before anything is read.
MIN_BYTES_PER_ROW = 20

_KINDS = (KIND_NULL, KIND_BOOL, KIND_NUMBER, KIND_STR)
_TYPES = {KIND_NULL: (int,), KIND_BOOL: (int,), KIND_NUMBER: (int, float), KIND_STR: (str,)}


class FieldColumn:
    """One metadata key of every row of a collection at one stamp, dictionary-encoded.

    ``values`` holds each distinct ``(elem, kind, value)`` once, sorted, so that the groups
    of one (elem, kind) form a contiguous code range ordered as SQLite orders them (numbers
    numerically, exactly, ints and floats alike; strings by code point, which is UTF-8 byte
    order, SQLite's BINARY collation). ``row_code`` gives, per row of the collection's sorted
    rid list, the code of its scalar value, or ``len(values)`` when it has none (the key is
    missing or holds a list); ``list_pos``/``list_code`` pair rows with the codes of their
    list elements.
    """

    __slots__ = ("values", "spans", "row_code", "list_pos", "list_code", "_by_code", "_parts")

    def __init__(self, values, spans, row_code, list_pos, list_code):
        self.values: list = values
        self.spans: dict[tuple[int, int], tuple[int, int]] = spans
        self.row_code: np.ndarray = row_code
        self.list_pos: np.ndarray = list_pos
        self.list_code: np.ndarray = list_code
        self._by_code: tuple[np.ndarray, np.ndarray] | None = None
        # per part of a snapshot (by segment id): (its rids array, offsets, positions)
        self._parts: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @classmethod
    def build(cls, universe: np.ndarray, groups: Sequence[tuple], rids: np.ndarray):
        """The column over the sorted rids ``universe`` from ``storage.fields.field_groups``'s
        ``(groups, rids)``; None when an entry is not what the filter index may hold (then
        filters on this key stay in SQL)."""
        if len(groups) and sum(g[3] for g in groups) != len(rids):
            return None
        for elem, kind, value, _ in groups:
            types = _TYPES.get(kind)
            if elem not in (0, 1) or types is None or not isinstance(value, types):
                return None
            if isinstance(value, bool):
                return None
        # Within one (elem, kind) the values are of comparable types, so the tuple sort never
        # compares a str with a number.
        order = sorted(range(len(groups)), key=lambda i: groups[i][:3])
        g = len(groups)
        group_code = np.empty(g, dtype=np.int32)
        group_code[order] = np.arange(g, dtype=np.int32)
        values, spans = [], {}
        for code, i in enumerate(order):
            elem, kind, value, _ = groups[i]
            lo, _hi = spans.get((elem, kind), (code, code))
            spans[(elem, kind)] = (lo, code + 1)
            values.append(value)
        counts = np.fromiter((grp[3] for grp in groups), dtype=np.int64, count=g)
        codes = np.repeat(group_code, counts)
        elems = np.repeat(np.fromiter((grp[0] for grp in groups), np.int8, count=g), counts)
        pos = np.searchsorted(universe, rids)
        if len(pos) and (pos.max() >= len(universe) or (universe[pos] != rids).any()):
            return None  # an entry of a row that is not in the collection
        scalar = elems == 0
        row_code = np.full(len(universe), g, dtype=np.int32)
        row_code[pos[scalar]] = codes[scalar]
        if (np.bincount(pos[scalar], minlength=len(universe)) > 1).any():
            return None  # two scalar values for one key of one row
        listed = ~scalar
        return cls(values, spans, row_code, pos[listed], codes[listed])

    @property
    def nbytes(self) -> int:
        # the Python values: about 60 bytes each for short strings and numbers; 16 bytes a
        # row for the by-value orders (``rows_of``, ``positions_of``), built on demand
        return (
            self.row_code.nbytes + self.list_pos.nbytes + self.list_code.nbytes
            + 60 * len(self.values) + 16 * len(self.row_code)
        )  # fmt: skip

    def rows_of(self, code: int) -> np.ndarray:
        """The rows (indices into the column's rows, rising) whose scalar value has ``code``."""
        if self._by_code is None:
            self._by_code = _by_code(self.row_code, len(self.values))
        offsets, order = self._by_code
        return order[offsets[code] : offsets[code + 1]]

    def positions_of(
        self, code: int, seg: Any, part_rids: np.ndarray, universe: np.ndarray
    ) -> np.ndarray:
        """The positions (rising) among ``part_rids`` (one part of a snapshot, any order;
        ``seg`` names it) of the rows whose scalar value has ``code``; ``universe`` is the
        column's sorted rids. Built once per part: then a value costs a slice, not a pass
        over the part (its rows are in inverted-list order, so positions cannot be read off
        a mask over the sorted rids cheaply)."""
        got = self._parts.get(seg)
        if got is None or got[0] is not part_rids:
            g = len(self.values)
            at = np.minimum(np.searchsorted(universe, part_rids), max(len(universe) - 1, 0))
            known = universe[at] == part_rids if len(universe) else np.zeros(len(part_rids), bool)
            codes = np.where(known, self.row_code[at] if len(universe) else g, g)
            got = (part_rids, *_by_code(codes.astype(np.int32), g))
            self._parts[seg] = got
        _, offsets, order = got
        return order[offsets[code] : offsets[code + 1]]

    def span(self, elem: int, kind: int) -> tuple[int, int]:
        """The code range of the entries of one (elem, kind); empty if there are none."""
        return self.spans.get((elem, kind), (0, 0))

    def ranges(self, elem: int, kind: int, op: str, value: Any) -> list[tuple[int, int]]:
        """The code ranges of the entries of ``(elem, kind)`` satisfying ``entry OP value``
        (``op`` one of = > >= < <=), where ``value`` is the SQL value ``kind_of`` gives."""
        lo, hi = self.span(elem, kind)
        if lo == hi:
            return []
        left = bisect.bisect_left(self.values, value, lo, hi)
        right = bisect.bisect_right(self.values, value, lo, hi)
        got = {
            "=": (left, right),
            ">": (right, hi),
            ">=": (left, hi),
            "<": (lo, left),
            "<=": (lo, right),
        }[op]
        return [got] if got[0] < got[1] else []

    def scalar_rows(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """Per row, whether its scalar value's code falls in one of ``ranges``."""
        rc = self.row_code
        if not ranges:
            return np.zeros(len(rc), dtype=bool)
        if len(ranges) == 1:
            lo, hi = ranges[0]
            if hi - lo == 1:
                return rc == lo
            return (rc >= lo) & (rc < hi)
        hit = self._hits(ranges)
        return hit[rc]

    def list_rows(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """Per row, whether one of its list elements' codes falls in one of ``ranges``."""
        out = np.zeros(len(self.row_code), dtype=bool)
        if ranges and len(self.list_code):
            out[self.list_pos[self._hits(ranges)[self.list_code]]] = True
        return out

    def _hits(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        hit = np.zeros(len(self.values) + 1, dtype=bool)
        for lo, hi in ranges:
            hit[lo:hi] = True
        return hit


def _by_code(codes: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of row indices by code (0..g, g the missing value): ``(offsets, order)``, each
    code's rows rising."""
    order = np.argsort(codes, kind="stable").astype(np.int64)
    offsets = np.zeros(g + 2, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=g + 1), out=offsets[1:])
    return offsets, order


class _Seen:
    """How many filters on a field were evaluated in SQL at one stamp, and in how long."""

    __slots__ = ("stamp", "count", "seconds", "refused")

    def __init__(self, stamp: Hashable):
        self.stamp = stamp
        self.count = 0
        self.seconds = 0.0
        self.refused = False  # its column was too large to keep: no second read at this stamp


class FieldColumns:
    """Columns by ``(scope, key)`` and each collection's sorted rid list by scope, each valid
    at one catalog stamp, in one LRU bounded by entries and bytes. ``scope`` is the
    collection's directory name (unique for every collection ever created). Thread-safe
    (two threads may read the same column at once; the last one is kept)."""

    def __init__(self, *, max_bytes: int | None = None, max_entries: int | None = None):
        self._lru = LRU(
            FIELD_COLUMN_ENTRIES if max_entries is None else max_entries,
            max_bytes=FIELD_COLUMN_BYTES if max_bytes is None else max_bytes,
        )
        self.read_seconds_per_row = READ_SECONDS_PER_ROW
        self.built = 0
        self.answered = 0

    def columns(
        self,
        scope: str,
        stamp: Hashable | None,
        keys: Sequence[str],
        nrows: Callable[[], int],
        read_rows: Callable[[], np.ndarray],
        read_field: Callable[[str], tuple[list[tuple], np.ndarray]],
    ) -> tuple[int, np.ndarray, dict[str, FieldColumn]] | None:
        """``(n, rids, columns)`` for a filter on ``keys`` at ``stamp``: the collection's
        sorted rids and every key's column, reading (with ``read_rows``/``read_field``,
        inside the read transaction at ``stamp``) the fields whose SQL evaluations at this
        stamp paid for it (``nrows()``: about how many rows the collection has); None
        otherwise (the filter goes to SQL: report its time with ``charge``)."""
        if stamp is None or not keys:
            return None
        cols: dict[str, FieldColumn] = {}
        wanted = []
        for key in keys:
            col = self._get(("col", scope, key), stamp)
            if col is None:
                wanted.append(key)
            else:
                cols[key] = col
        universe = self._get(("rows", scope), stamp)
        if wanted:
            n = len(universe) if universe is not None else nrows()
            if n > MAX_COLUMN_ROWS or n * MIN_BYTES_PER_ROW > self._lru.max_bytes // 4:
                return None  # no column of it would be kept: never read one
            cost = n * self.read_seconds_per_row
            for key in wanted:
                seen = self._get(("seen", scope, key), stamp)
                if seen is None or seen.refused:
                    return None
                if seen.seconds < cost and seen.count < BUILD_AFTER:
                    return None
        t0 = time.perf_counter()
        if universe is None:
            universe = read_rows()
            if len(universe) > MAX_COLUMN_ROWS:
                return None
            self._lru.put(("rows", scope), (stamp, universe), nbytes=universe.nbytes)
        for key in wanted:
            col = FieldColumn.build(universe, *read_field(key))
            if col is None or col.nbytes > self._lru.max_bytes // 4:
                seen = self._get(("seen", scope, key), stamp)
                if seen is not None:
                    seen.refused = True  # a bad entry, or too large: SQL at this stamp
                return None
            self.built += 1
            self._lru.put(("col", scope, key), (stamp, col), nbytes=col.nbytes)
            cols[key] = col
        if wanted and len(universe):
            per_row = (time.perf_counter() - t0) / (len(universe) * len(wanted))
            self.read_seconds_per_row = max(per_row, 1e-8)
        self.answered += 1
        return len(universe), universe, cols

    def charge(self, scope: str, stamp: Hashable | None, keys: Sequence[str], seconds: float):
        """Count a filter on ``keys`` evaluated in SQL at ``stamp`` in ``seconds``."""
        if stamp is None:
            return
        for key in keys:
            if self._get(("col", scope, key), stamp) is not None:
                continue
            seen = self._get(("seen", scope, key), stamp)
            if seen is None:
                seen = _Seen(stamp)
                self._lru.put(("seen", scope, key), seen, nbytes=100)
            seen.count += 1
            seen.seconds += seconds

    def _get(self, key: tuple, stamp: Hashable) -> Any:
        got = self._lru.get(key)
        if got is None:
            return None
        if isinstance(got, _Seen):
            return got if got.stamp == stamp else None
        at, value = got
        return value if at == stamp else None

    def clear(self) -> None:
        self._lru.clear()

    def drop(self, scope: str) -> None:
        """Forget the columns of one collection (it was deleted)."""
        self._lru.discard(lambda key: key[1] == scope)

    def __len__(self) -> int:
        return len(self._lru)

    def __repr__(self) -> str:
        return f"FieldColumns({len(self)} entries, built={self.built}, answered={self.answered})"
