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
    if len(rids) <= _LOOKUP_SHARE * cat.count(coll, "1", []):
        found: dict[int, str] = {}
        step = 50_000
        for lo in range(0, len(rids), step):
            part = json.dumps(rids[lo : lo + step].tolist())
            found.update(
                cat.conn.execute(
                    "SELECT rid, id FROM rows WHERE rid IN (SELECT value FROM json_each(?))",
                    (part,),
                )
            )
        try:
            return [found[r] for r in rids.tolist()]
        except KeyError as exc:
            raise _lost(cat, exc.args[0]) from None
    # One pass in rid order (the unary + keeps SQLite on the primary key, off the (coll, id)
    # index): two columns, not a dict of a million entries.
    rows = cat.conn.execute("SELECT rid, id FROM rows WHERE +coll = ? ORDER BY rid", (coll,))
    all_rids, all_ids = [], []
    for rid, id_ in rows:
        all_rids.append(rid)
        all_ids.append(id_)
    known = np.array(all_rids, dtype=np.int64)
    if not len(known):
        raise _lost(cat, int(rids[0]))
    at = np.minimum(np.searchsorted(known, rids), len(known) - 1)
    bad = np.flatnonzero(known[at] != rids)
    if len(bad):
        raise _lost(cat, int(rids[bad[0]]))
    return [all_ids[i] for i in at.tolist()]


def _lost(cat: Catalog, rid: int) -> CorruptStoreError:
    return CorruptStoreError(
        f"catalog {cat.path}: row {rid} is named by a stored vector but missing from the "
        "catalog; it is damaged (run `vecstore verify`)"
    )


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


def row_ids(cat: Catalog, coll: int) -> np.ndarray:
    """Every rid of ``coll``'s rows (the rows a filter chooses among), sorted (int64)."""
    (text,) = cat.conn.execute(
        "SELECT group_concat(rid) FROM rows WHERE coll = ?", (coll,)
    ).fetchone()
    return np.sort(_rids(cat, text))


def field_groups(cat: Catalog, coll: int, key: str) -> tuple[list[tuple], np.ndarray]:
    """Metadata ``key`` of every row of ``coll``, dictionary-encoded from its filter index
    in one read: ``(groups, rids)`` with one ``(elem, kind, value, count)`` per distinct
    entry (elem 0 a scalar value, 1 a list element; values SQLite compares as equal, such
    as 1 and 1.0, form one group) and the rids of each group's rows, group after group
    (int64, ``count`` of them each, any order within a group)."""
    rows = cat.conn.execute(
        "SELECT elem, kind, value, count(*), group_concat(rid) FROM mindex "
        "WHERE coll = ? AND key = ? GROUP BY elem, kind, value",
        (coll, key),
    ).fetchall()
    rids = _rids(cat, ",".join([r[4] for r in rows]))
    return [r[:4] for r in rows], rids


def _rids(cat: Catalog, text: str | None) -> np.ndarray:
    if not text:
        return np.zeros(0, dtype=np.int64)
    try:
        return np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:
        raise CorruptStoreError(f"{cat.path}: a row id in the catalog is not an integer") from None
