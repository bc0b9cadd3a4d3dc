"""Column reads over a collection's rows: the ids of many rows, and one metadata field of
every row, without unpacking each row's whole record.

Analyses over a whole collection (clustering, classification, duplicates) need these for
hundreds of thousands of rows at a time. Call inside one catalog read transaction. Imports
numpy, the standard library and the catalog.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import CorruptStoreError
from .catalog import Catalog
from .filters import KIND_BOOL, KIND_NUMBER, KIND_STR

#: Up to this share of a collection's rows, ids are looked up by rid; above it one pass over
#: the collection's rows in rid order is cheaper.
_LOOKUP_SHARE = 0.125


def ids_of(cat: Catalog, coll: int, rids: np.ndarray) -> list[str]:
    """The ids of rows ``rids`` (int64, distinct), in that order. Every rid must exist."""
    if not len(rids):
        return []
    total = cat.count(coll, "1", [])
    found: dict[int, str] = {}
    if len(rids) <= _LOOKUP_SHARE * total:
        step = 50_000
        for lo in range(0, len(rids), step):
            part = json.dumps(rids[lo : lo + step].tolist())
            found.update(
                cat.conn.execute(
                    "SELECT rid, id FROM rows WHERE rid IN (SELECT value FROM json_each(?))",
                    (part,),
                )
            )
    else:
        # The unary + keeps SQLite on the primary key (rid order), off the (coll, id) index.
        found.update(cat.conn.execute("SELECT rid, id FROM rows WHERE +coll = ?", (coll,)))
    try:
        return [found[r] for r in rids.tolist()]
    except KeyError as exc:
        raise CorruptStoreError(
            f"catalog {cat.path}: row {exc.args[0]} is named by a stored vector but missing "
            "from the catalog; it is damaged (run `vecstore verify`)"
        ) from None


def field_values(cat: Catalog, coll: int, key: str) -> tuple[np.ndarray, list[Any]]:
    """``(rids, values)``: the rows whose metadata ``key`` holds a str, number or bool (not
    None, not a list), sorted by rid (int64), and those values as stored."""
    rows = cat.conn.execute(
        "SELECT rid, kind, value FROM mindex WHERE coll = ? AND key = ? AND elem = 0 "
        "AND kind IN (?, ?, ?) ORDER BY rid",
        (coll, key, KIND_BOOL, KIND_NUMBER, KIND_STR),
    ).fetchall()
    rids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    values = [bool(v) if kind == KIND_BOOL else v for _, kind, v in rows]
    return rids, values
