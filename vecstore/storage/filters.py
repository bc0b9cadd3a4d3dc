"""Compile ``where`` and ``where_document`` filters to parameterized SQL.

The SQL text is built only from a fixed set of fragments chosen by the filter's shape; every
key and value the user wrote travels as a bound parameter. The fragments read the catalog
tables ``rows`` (alias ``r``) and ``mindex`` (see catalog.py). Imports only the standard library.

Semantics (documented in docs/filters.md):
- ``{"k": v}`` is ``{"k": {"$eq": v}}``; several keys, or several operators on one key, AND.
- ``$eq $ne $gt $gte $lt $lte $in $nin`` compare scalar values. Values compare within a kind:
  numbers with numbers (1 == 1.0), strings with strings, booleans with booleans, None with None;
  ``True`` never equals ``1``. A row whose key is missing, or holds a list, never satisfies
  ``$eq $gt $gte $lt $lte $in``, so it does satisfy ``$ne`` and ``$nin`` (they are negations).
- ``$contains`` tests membership in a list value.
- ``$and $or`` take non-empty lists; ``$not`` takes one filter. ``{}`` matches every row.
- ``where_document`` ``$contains`` is a case-sensitive substring test. Given the analyzer's
  ``contains_terms``, it first narrows the candidates through the keyword index to the rows
  having the rarest term every containing document must have, then tests the substring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from ..errors import InvalidFilter

KIND_NULL, KIND_BOOL, KIND_NUMBER, KIND_STR = 0, 1, 2, 3
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 32
MAX_IN_VALUES = 10_000
MAX_PARAMS = 30_000  # SQLite binds at most 32,766 parameters per statement

_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FIELD_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains")
_LOGIC_OPS = ("$and", "$or", "$not")
_DOC_OPS = ("$contains", "$not_contains", "$and", "$or")

_SUBQUERY = "SELECT m.rid FROM mindex m WHERE m.coll = ? AND m.key = ? AND m.elem = ? AND "


def kind_of(value: Any) -> tuple[int, Any] | None:
    """The (kind, SQL value) of a scalar metadata value, or None if it is not a scalar."""
    if value is None:
        return KIND_NULL, 0  # kind alone marks None; a non-NULL value keeps `=` and IN exact
    if isinstance(value, bool):
        return KIND_BOOL, int(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return None
        return KIND_NUMBER, value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return KIND_NUMBER, value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None  # a lone surrogate: SQLite would store bytes it cannot read back
        return KIND_STR, value
    return None


def _scalar(op: str, key: str, value: Any) -> tuple[int, Any]:
    kv = kind_of(value)
    if kv is None:
        raise InvalidFilter(
            f"filter on {key!r}: {op} needs a str, int, float, bool or None; "
            f"got {type(value).__name__} {value!r}"
            + (
                " (use $in for a list of values or $contains for list membership)"
                if isinstance(value, (list, tuple))
                else ""
            )
        )
    return kv


# The rows having the rarest of the given terms (none if the collection lacks one of them).
_HAS_RAREST = (
    "r.rid IN (SELECT p.rid FROM text_postings p WHERE p.tid = (SELECT t.tid FROM text_terms t "
    "WHERE t.coll = ? AND t.term IN (SELECT value FROM json_each(?)) ORDER BY t.df LIMIT 1))"
)


class _Compiler:
    def __init__(self, coll: int, contains_terms: Callable[[str], list[str]] | None = None):
        self.coll = coll
        self.contains_terms = contains_terms
        self.params: list[Any] = []

    def where(self, node: Any, depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"filter nests deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise InvalidFilter(f"a where filter must be a dict; got {type(node).__name__}")
        parts = []
        for key, cond in node.items():
            if not isinstance(key, str):
                raise InvalidFilter(f"filter keys must be strings; got {key!r}")
            if key in _LOGIC_OPS:
                parts.append(self._logic(key, cond, depth))
            elif key.startswith("$"):
                raise InvalidFilter(
                    f"unknown operator {key!r} at the top of a filter; expected a metadata key "
                    f"or one of {', '.join(_LOGIC_OPS)}"
                )
            elif key == "" or kind_of(key) is None:
                raise InvalidFilter(f"filter keys must be non-empty valid Unicode; got {key!r}")
            else:
                parts.append(self._field(key, cond))
        return _join(" AND ", parts)

    def _logic(self, op: str, cond: Any, depth: int) -> str:
        if op == "$not":
            return f"NOT ({self.where(cond, depth + 1)})"
        if not isinstance(cond, (list, tuple)) or not cond:
            raise InvalidFilter(f"{op} needs a non-empty list of filters; got {cond!r}")
        return _join(" AND " if op == "$and" else " OR ", [self.where(c, depth + 1) for c in cond])

    def _field(self, key: str, cond: Any) -> str:
        if not isinstance(cond, dict):
            return self._op(key, "$eq", cond)
        if not cond:
            raise InvalidFilter(f"filter on {key!r} has an empty operator dict")
        return _join(" AND ", [self._op(key, op, value) for op, value in cond.items()])

    def _member(self, key: str, elem: int, tail: str, params: list[Any]) -> str:
        self.params += [self.coll, key, elem, *params]
        return f"r.rid IN ({_SUBQUERY}{tail})"

    def _op(self, key: str, op: Any, value: Any) -> str:
        if op == "$eq":
            return self._member(key, 0, "m.kind = ? AND m.value = ?", list(_scalar(op, key, value)))
        if op == "$ne":
            return f"NOT ({self._op(key, '$eq', value)})"
        if op in _COMPARE:
            kind, sqlv = _scalar(op, key, value)
            if kind not in (KIND_NUMBER, KIND_STR):
                raise InvalidFilter(
                    f"filter on {key!r}: {op} compares numbers or strings; got {value!r}"
                )
            return self._member(key, 0, f"m.kind = ? AND m.value {_COMPARE[op]} ?", [kind, sqlv])
        if op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple)):
                raise InvalidFilter(f"filter on {key!r}: {op} needs a list; got {value!r}")
            if len(value) > MAX_IN_VALUES:
                raise InvalidFilter(
                    f"filter on {key!r}: {op} takes at most {MAX_IN_VALUES} values; "
                    f"got {len(value)}"
                )
            if not value:
                return "0" if op == "$in" else "1"
            params: list[Any] = []
            for v in value:
                params += _scalar(op, key, v)
            # One row-value list, not a chain of ORs: SQLite caps expression depth at 1000.
            tail = "(m.kind, m.value) IN (VALUES " + ",".join(["(?, ?)"] * len(value)) + ")"
            sql = self._member(key, 0, tail, params)
            return sql if op == "$in" else f"NOT ({sql})"
        if op == "$contains":
            return self._member(key, 1, "m.kind = ? AND m.value = ?", list(_scalar(op, key, value)))
        raise InvalidFilter(
            f"unknown operator {op!r} on {key!r}; expected one of {', '.join(_FIELD_OPS)}"
        )

    def document(self, node: Any, depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"where_document nests deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict) or len(node) != 1:
            raise InvalidFilter(
                "where_document must be a dict with one operator, such as "
                f"{{'$contains': 'text'}}; got {node!r}"
            )
        ((op, value),) = node.items()
        if op in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise InvalidFilter(f"{op} needs a non-empty list of filters; got {value!r}")
            sep = " AND " if op == "$and" else " OR "
            return _join(sep, [self.document(v, depth + 1) for v in value])
        if op in ("$contains", "$not_contains"):
            if not isinstance(value, str) or kind_of(value) is None:
                raise InvalidFilter(f"where_document {op} needs a (valid) string; got {value!r}")
            if op == "$contains":
                terms = self.contains_terms(value) if self.contains_terms else []
                if terms:
                    self.params += [self.coll, json.dumps(terms), value]
                    return f"({_HAS_RAREST} AND instr(r.document, ?) > 0)"
                self.params.append(value)
                return "instr(r.document, ?) > 0"
            self.params.append(value)
            return "(r.document IS NULL OR instr(r.document, ?) = 0)"
        raise InvalidFilter(
            f"unknown where_document operator {op!r}; expected one of {', '.join(_DOC_OPS)}"
        )


def _join(sep: str, parts: list[str]) -> str:
    """Join as a balanced tree: a flat chain of thousands of ORs would exceed SQLite's
    expression depth limit (1000), a balanced one is only log2(n) deep."""
    if not parts:
        return "1"
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return f"({parts[0]}{sep}{parts[1]})"
    mid = len(parts) // 2
    return f"({_join(sep, parts[:mid])}{sep}{_join(sep, parts[mid:])})"


def compile_filters(
    coll: int,
    where: Any = None,
    where_document: Any = None,
    contains_terms: Callable[[str], list[str]] | None = None,
) -> tuple[str, list]:
    """Return ``(sql, params)``: a boolean SQL expression over ``rows r`` and its parameters.

    ``coll`` is the collection's catalog id (an int the catalog assigned, bound as a parameter).
    ``contains_terms`` (vecstore.text.contains_terms), if given, lets ``$contains`` use the
    keyword index. Raises ``InvalidFilter`` for a malformed filter.
    """
    c = _Compiler(coll, contains_terms)
    parts = []
    if where is not None:
        parts.append(c.where(where))
    if where_document is not None:
        parts.append(c.document(where_document))
    if len(c.params) > MAX_PARAMS:
        raise InvalidFilter(
            f"filter is too large: {len(c.params)} values and keys; the limit is {MAX_PARAMS}"
        )
    return _join(" AND ", parts), c.params


_LEAF = "r.rid IN (" + _SUBQUERY


def rid_query(sql: str) -> str:
    """A statement selecting the rids a compiled filter keeps, as one comma-separated text
    (``group_concat``: one value to fetch instead of a tuple per row). Its parameters are
    ``(coll, *params)``. A filter that is a single metadata test is answered from the
    metadata index alone, without visiting the rows; the statement then starts with a
    no-op on the extra collection parameter so the parameter list stays the same."""
    if sql.startswith(_LEAF) and sql.endswith(")") and sql.count("r.rid IN (") == 1:
        tests = sql[len("r.rid IN (SELECT m.rid FROM mindex m WHERE ") : -1]
        return f"SELECT group_concat(m.rid) FROM mindex m WHERE ? IS NOT NULL AND {tests}"
    return f"SELECT group_concat(r.rid) FROM rows r WHERE +r.coll = ? AND {sql}"
