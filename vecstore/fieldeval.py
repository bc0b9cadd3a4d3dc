"""A ``where`` filter evaluated with NumPy over per-field columns (vecstore.fieldcols), keeping
exactly the rows its SQL (storage/filters.py, whose grammar and semantics this mirrors) keeps:
a leaf is a set of code ranges of its field's dictionary, then a mask over the collection's
rows. Call only with a filter ``compile_filters`` accepted. numpy, the standard library,
storage.filters and fieldcols only; must not import the catalog, the index or the collection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fieldcols import FieldColumn
from .storage.filters import KIND_NUMBER, KIND_STR, kind_of

_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_EXACT_TYPES = (type(None), bool, int, float, str)


class Unsupported(Exception):
    """The filter has a shape this evaluator does not answer; use its SQL."""


def keys(where: Any) -> list[str] | None:
    """The metadata keys ``where`` tests, in first-seen order; None for a shape this
    evaluator does not answer."""
    out: dict[str, None] = {}
    try:
        _keys(where, out)
    except Unsupported:
        return None
    return list(out)


def _keys(node: Any, out: dict[str, None]) -> None:
    if not isinstance(node, dict):
        raise Unsupported
    for key, cond in node.items():
        if key == "$not":
            _keys(cond, out)
        elif key in ("$and", "$or"):
            if not isinstance(cond, (list, tuple)):
                raise Unsupported
            for c in cond:
                _keys(c, out)
        elif isinstance(key, str) and not key.startswith("$"):
            out[key] = None
        else:
            raise Unsupported


def single_value(where: Any, columns: dict[str, FieldColumn]) -> tuple[str, int | None] | None:
    """For a filter that is one equality, ``{key: v}`` or ``{key: {"$eq": v}}``: its key and
    the code of ``v`` in that key's column (None if no row holds it); else None."""
    if not isinstance(where, dict) or len(where) != 1:
        return None
    ((key, cond),) = where.items()
    if isinstance(cond, dict):
        if len(cond) != 1 or "$eq" not in cond:
            return None
        cond = cond["$eq"]
    col = columns.get(key)
    if col is None or (isinstance(key, str) and key.startswith("$")):
        return None
    try:
        kind, v = _scalar(cond)
    except Unsupported:
        return None
    got = col.ranges(0, kind, "=", v)
    if not got:
        return key, None
    ((lo, hi),) = got
    return (key, lo) if hi - lo == 1 else None


def evaluate(where: Any, n: int, columns: dict[str, FieldColumn]) -> np.ndarray:
    """Per row (``n`` of them, in the order of the columns' rows), whether ``where``
    keeps it: a bool array. Raises ``Unsupported`` for what it does not answer."""
    return _Eval(n, columns).where(where)


class _Eval:
    def __init__(self, n: int, columns: dict[str, FieldColumn]):
        self.n = n
        self.columns = columns

    def everything(self) -> np.ndarray:
        return np.ones(self.n, dtype=bool)

    def nothing(self) -> np.ndarray:
        return np.zeros(self.n, dtype=bool)

    def where(self, node: Any) -> np.ndarray:
        if not isinstance(node, dict):
            raise Unsupported
        out = None
        for key, cond in node.items():
            if key == "$not":
                got = ~self.where(cond)
            elif key in ("$and", "$or"):
                if not isinstance(cond, (list, tuple)) or not cond:
                    raise Unsupported
                got = self.where(cond[0])
                for c in cond[1:]:
                    more = self.where(c)
                    got = (got & more) if key == "$and" else (got | more)
            else:
                got = self.field(key, cond)
            out = got if out is None else (out & got)
        return self.everything() if out is None else out

    def field(self, key: str, cond: Any) -> np.ndarray:
        col = self.columns.get(key)
        if col is None:
            raise Unsupported
        if not isinstance(cond, dict):
            return self.op(col, "$eq", cond)
        if not cond:
            raise Unsupported
        out = None
        for op, value in cond.items():
            got = self.op(col, op, value)
            out = got if out is None else (out & got)
        return out

    def op(self, col: FieldColumn, op: Any, value: Any) -> np.ndarray:
        if op == "$eq":
            kind, v = _scalar(value)
            return col.scalar_rows(col.ranges(0, kind, "=", v))
        if op == "$ne":
            return ~self.op(col, "$eq", value)
        if op in _COMPARE:
            kind, v = _scalar(value)
            if kind not in (KIND_NUMBER, KIND_STR):
                raise Unsupported
            return col.scalar_rows(col.ranges(0, kind, _COMPARE[op], v))
        if op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple)):
                raise Unsupported
            ranges = []
            for x in value:
                kind, v = _scalar(x)
                ranges += col.ranges(0, kind, "=", v)
            got = col.scalar_rows(ranges)
            return got if op == "$in" else ~got
        if op == "$contains":
            kind, v = _scalar(value)
            return col.list_rows(col.ranges(1, kind, "=", v))
        raise Unsupported


def _scalar(value: Any) -> tuple[int, Any]:
    if type(value) not in _EXACT_TYPES:
        raise Unsupported  # a subclass (IntEnum, numpy.float64): as SQLite binds it, or not
    kv = kind_of(value)
    if kv is None:
        raise Unsupported
    return kv
