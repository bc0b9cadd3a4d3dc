"""The lean path of one filtered vector query (``Reader.quick_filtered``): the filter's SQL form
compiled once per filter shape, and the signal that a filter needs the catalog.

A single query with a ``where`` filter, on the snapshot the last query kept while nothing has
been committed since (``Store.fresh``), is answered without a read transaction when the
filter cache or the per-field columns answer the filter; a filter that needs SQL raises
``NeedsCatalog`` and the query takes the full path. Standard library only; must not import
the reader, the collection or the index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Compiled filters kept (the least recently used is dropped first).
COMPILED_ENTRIES = 512
#: Filters with more parameters than this are compiled every time, not kept (a long ``$in``
#: would hold its values for as long as it stays among the entries).
MAX_KEPT_PARAMS = 64
#: Filters nested deeper than this are not kept (compiling refuses those past 32 levels).
MAX_KEY_DEPTH = 40

# Scalar filter values by type: True == 1 and 1 == 1.0 hash alike, so the type is part of
# the key (the SQL of {"a": True} and {"a": 1} differ).
_SCALARS = (str, int, float, bool, type(None))


class NeedsCatalog(Exception):
    """Raised inside the lean path where answering needs SQL (a read transaction)."""


def shape_key(where: Any, depth: int = 0) -> tuple | None:
    """A hashable key that tells filters apart exactly (values with their types, in their
    order), or None for a filter with anything but dicts, lists and scalars in it, or nested
    deeper than ``MAX_KEY_DEPTH``."""
    t = type(where)
    if t in _SCALARS:
        return (t, where)
    if depth >= MAX_KEY_DEPTH:
        return None
    if t is dict:
        out: list = [dict]
        for key, value in where.items():
            inner = shape_key(value, depth + 1)
            if inner is None or type(key) is not str:
                return None
            out.append((key, inner))
        return tuple(out)
    if t is list:
        out = [list]
        for value in where:
            inner = shape_key(value, depth + 1)
            if inner is None:
                return None
            out.append(inner)
        return tuple(out)
    return None


class CompiledFilters:
    """``compile_filters``'s ``(sql, params)`` for ``where`` filters, kept by their exact
    shape and values (a repeated filter is not compiled again). Thread-safe."""

    def __init__(
        self, compiler: Callable[[Any], tuple[str, list]], entries: int = COMPILED_ENTRIES
    ):
        self._compile = compiler
        self._entries = entries
        self._items: OrderedDict[tuple, tuple[str, tuple]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, where: Any) -> tuple[str, tuple]:
        """``(sql, params)`` of ``where`` (params as a tuple: shared, never changed).
        Raises what compiling raises (``InvalidFilter``)."""
        key = shape_key(where)
        if key is not None:
            with self._lock:
                got = self._items.get(key)
                if got is not None:
                    self._items.move_to_end(key)
                    return got
        sql, params = self._compile(where)
        got = (sql, tuple(params))
        if key is not None and len(params) <= MAX_KEPT_PARAMS:  # a long $in is not kept
            with self._lock:
                self._items[key] = got
                while len(self._items) > self._entries:
                    self._items.popitem(last=False)
        return got
